import pickle

import numpy as np
import pytest
import sympy

import symnet
from symnet import Network


def parabola_net():
    return Network.from_weights([-1.3284513, 0.5667597], [-1.328055, 1.0003909], ["square", "linear"])


def test_from_weights_scalars_lists_arrays_agree():
    a = parabola_net()
    b = Network.from_weights([[[-1.3284513]], np.array([[0.5667597]])], [np.array([-1.328055]), [1.0003909]],
                             ["square", "linear"])
    assert a == b and hash(a) == hash(b)
    x = a.inputs[0]
    assert a.expr == sympy.Float(0.5667597) * (sympy.Float(-1.3284513) * x + sympy.Float(-1.328055)) ** 2 + sympy.Float(1.0003909)


def test_keras_layout_and_torch_layout():
    W = np.arange(6.0).reshape(2, 3)  # (fan_in=2, fan_out=3)
    keras = Network.from_weights([W], [np.zeros(3)], "tanh")
    torch = Network.from_weights([W.T], [np.zeros(3)], "tanh", layout="torch")
    assert keras == torch
    assert keras.layer_sizes == (2, 3)


def test_wrong_layout_gets_a_hint():
    with pytest.raises(symnet.ShapeError, match=r"layer 2: W has shape \(2, 3\).*outputs 3 values.*layout='torch'"):
        Network.from_weights([np.ones((2, 3)), np.ones((2, 3))], None, "tanh")


def test_mismatched_shapes_name_the_layer():
    with pytest.raises(symnet.ShapeError, match=r"layer 2: W has shape \(4, 1\).*outputs 3 values"):
        Network.from_weights([np.ones((2, 3)), np.ones((4, 1))], None, "tanh")
    with pytest.raises(symnet.ShapeError, match=r"layer 1: b has shape \(2,\) but \(1, 3\) is needed"):
        Network.from_weights([np.ones((2, 3))], [np.ones(2)], "tanh")
    with pytest.raises(symnet.ShapeError, match="2 weight matrices but 1 bias"):
        Network.from_weights([np.ones((2, 3)), np.ones((3, 1))], [np.ones(3)], "tanh")
    with pytest.raises(symnet.ShapeError, match="ragged"):
        Network.from_weights([[[1.0, 2.0], [3.0]]], None, "tanh")


def test_non_finite_and_non_numeric_weights():
    with pytest.raises(symnet.WeightError, match=r"layer 1: W\[0, 1\] is nan"):
        Network.from_weights([[[1.0, np.nan]]], None, "tanh")
    with pytest.raises(symnet.WeightError, match=r"layer 2: b\[0\] is inf"):
        Network.from_weights([[[1.0]], [[1.0]]], [[0.0], [np.inf]], "tanh")
    with pytest.raises(symnet.WeightError, match="strings are never parsed"):
        Network.from_weights([[["__import__('os')"]]], None, "tanh")
    with pytest.raises(symnet.WeightError, match="finite"):
        Network.from_weights([[[sympy.oo]]], None, "tanh")


def test_activation_errors_name_the_layer():
    with pytest.raises(symnet.ActivationError, match="layer 2: unknown activation 'tanhh'"):
        Network.from_weights([[[1.0]], [[1.0]]], None, ["tanh", "tanhh"])
    with pytest.raises(symnet.ActivationError, match="3 activations for 2 layers"):
        Network.from_weights([[[1.0]], [[1.0]]], None, ["tanh", "tanh", "tanh"])


def test_symbolic_parameters_scheme_and_order():
    net = Network.symbolic([1, 1, 1], ["square", "linear"])
    assert [p.name for p in net.params] == ["w1_0_0", "b1_0", "w2_0_0", "b2_0"]
    assert all(p.is_real for p in net.params + net.inputs)
    wide = Network.symbolic([2, 12, 1], "tanh")
    names = [p.name for p in wide.params]
    assert len(names) == len(set(names)) == 2 * 12 + 12 + 12 + 1  # no collisions past 10 units
    assert names[:3] == ["w1_0_0", "w1_0_1", "w1_0_2"] and "w1_1_11" in names and names[-1] == "b2_0"


def test_with_weights_and_subs_make_numeric_and_mixed_nets():
    sym = Network.symbolic([1, 1, 1], ["square", "linear"])
    numeric = sym.with_weights([[[-1.3284513]], [[0.5667597]]], [[-1.328055], [1.0003909]])
    assert numeric == parabola_net() and numeric.is_numeric
    mixed = sym.with_weights([2.0, None], [1.0, None])
    assert [p.name for p in mixed.params] == ["w2_0_0", "b2_0"] and not mixed.is_numeric
    by_subs = sym.subs({"w1_0_0": -1.3284513, sym.params[1]: -1.328055}, w2_0_0=0.5667597, b2_0=1.0003909)
    assert by_subs == parabola_net()
    with pytest.raises(symnet.InputError, match="'w9_0_0' is not a parameter"):
        sym.subs(w9_0_0=1.0)
    torch_style = Network.symbolic([2, 3], "tanh").with_weights([np.ones((3, 2))], None, layout="torch")
    assert torch_style.layers[0].weight.shape == (2, 3)


def test_inputs_outputs_expr():
    net = Network.from_weights([np.ones((2, 3))], None, "linear", input_names=["u", "v"])
    assert [s.name for s in net.inputs] == ["u", "v"]
    assert net.outputs.shape == (3, 1)
    with pytest.raises(symnet.InputError, match="has 3 outputs: use net.outputs"):
        net.expr
    with pytest.raises(symnet.InputError, match="distinct"):
        Network.from_weights([np.ones((2, 1))], None, "linear", input_names=["u", "u"])
    with pytest.raises(symnet.ShapeError, match=r"layer 1: W has shape \(2, 1\).*input_names names 1 inputs"):
        Network.from_weights([np.ones((2, 1))], None, "linear", input_names=["u"])
    with pytest.raises(symnet.InputError, match="also parameter names"):
        Network.symbolic([1, 1], "linear", input_names=["w1_0_0"])


def test_immutable_and_picklable():
    net = parabola_net()
    with pytest.raises(AttributeError, match="immutable"):
        net.layers = ()
    assert pickle.loads(pickle.dumps(net)) == net


def test_repr_str_latex():
    net = parabola_net()
    assert repr(net) == "Network(1 -> 1 -> 1, activations=(square, linear), numeric)"
    assert str(net) == "0.5667597*(-1.3284513*x0 - 1.328055)**2 + 1.0003909"
    assert net.latex().startswith("0.5667597 \\left(")
    assert net._repr_latex_().startswith("$\\displaystyle")
    sig = Network.symbolic([2, 1], "sigmoid", input_names=["a", "b"])
    assert repr(sig) == "Network(2 -> 1, activations=(sigmoid), inputs=(a, b), 3 symbolic parameters)"
    assert "\\sigma" in sig.latex()
    assert "sigmoid(a⋅w" in symnet.pretty(sig)
    traced = Network.from_weights([[[2.0]]], None, lambda x: x**3)
    assert pickle.loads(pickle.dumps(traced)) == traced


def test_weight_arrays():
    net = Network.from_weights([np.arange(6.0).reshape(2, 3)], [np.ones(3)], "tanh")
    np.testing.assert_array_equal(net.layers[0].weight_array(), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(net.layers[0].bias_array(), np.ones(3))
    with pytest.raises(symnet.WeightError, match="symbolic"):
        Network.symbolic([2, 1], "tanh").layers[0].weight_array()


def test_softmax_outputs_sum_to_one():
    net = Network.symbolic([2, 3], "softmax")
    assert sympy.simplify(sum(net.outputs) - 1) == 0


def test_forward_matches_numpy(rng=np.random.default_rng(1)):
    W1, b1, W2, b2 = rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=(4, 2)), rng.normal(size=2)
    net = Network.from_weights([W1, W2], [b1, b2], ["tanh", "linear"])
    x = rng.normal(size=3)
    expected = np.tanh(x @ W1 + b1) @ W2 + b2
    got = np.array(net.outputs.xreplace(dict(zip(net.inputs, map(sympy.Float, x)))).evalf(), float).ravel()
    np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_zero_layers_or_units_refused():
    with pytest.raises(symnet.ShapeError, match="at least one layer"):
        Network([])
    with pytest.raises(symnet.ShapeError, match="all >= 1"):
        Network.symbolic([2, 0, 1], "tanh")


@pytest.mark.parametrize(("value", "message"), [
    (sympy.Float(1e300) ** 1000, r"layer 1: W\[0, 1\] is 1\.0+5e\+300000, beyond float64's range"),
    (sympy.Float("1e400"), r"layer 1: W\[0, 1\] is 1\.0+e\+400, beyond float64's range"),
    (sympy.exp(1000), r"layer 1: W\[0, 1\] is exp\(1000\) = 1\.97e\+434, beyond float64's range"),
    (10**400, r"layer 1: W\[0, 1\] is 1\.0+e\+400, beyond float64's range"),
    (sympy.Rational(10**400, 3), "beyond float64's range"),
    (sympy.sqrt(-1), r"layer 1: W\[0, 1\] is I, which is complex \(1\.0\*I\); weights must be real"),
    (sympy.I + 1, r"layer 1: W\[0, 1\] is 1 \+ I, which is complex"),
    (sympy.log(-2), "which is complex"),
    (sympy.nan, r"layer 1: W\[0, 1\] is nan; weights must be finite"),
    (sympy.Symbol("a", real=True) * sympy.exp(1000), r"W\[0, 1\] = a\*exp\(1000\): its part is exp\(1000\)"),
    (sympy.Symbol("a", real=True) + sympy.I, "its part is I, which is complex"),
    (sympy.Function("f")(1), r"f\(1\), which does not evaluate to a number"),
    (np.complex128(1 + 0j), r"layer 1: W\[0, 1\] is complex"),
    (np.longdouble("1e400"), "weights must be finite"),
    (b"1.0", "strings are never parsed"),
])
def test_out_of_range_weights_are_refused_where_they_enter(value, message):
    with pytest.raises(symnet.WeightError, match=message):
        Network.from_weights([[[1.0, value]]], None, "tanh")


def test_out_of_range_weights_in_biases_arrays_subs_and_dense():
    with pytest.raises(symnet.WeightError, match=r"layer 2: b\[0\] is exp\(1000\)"):
        Network.from_weights([[[1.0]], [[1.0]]], [[0.0], [sympy.exp(1000)]], "tanh")
    with pytest.raises(symnet.WeightError, match=r"layer 1: W\[0, 0\] is complex \(\(1\+0j\)\)"):  # a complex dtype
        Network.from_weights([np.array([[1.0], [1j]])], None, "tanh")
    with pytest.raises(symnet.WeightError, match=r"layer 1: W\[0, 0\] is 1\.0+e\+400"):
        Network.from_weights([np.array([[10**400]], dtype=object)], None, "tanh", layout="torch")
    with pytest.raises(symnet.WeightError, match="strings are never parsed"):
        Network.from_weights([np.array([["1.0"]])], None, "tanh")
    net = Network.symbolic([1, 1, 1], "tanh")
    with pytest.raises(symnet.WeightError, match=r"value for w1_0_0 is 1\.0+e\+400"):
        net.subs(w1_0_0=sympy.Float("1e400"))
    with pytest.raises(symnet.WeightError, match="value for b2_0 is I"):
        net.subs(b2_0=sympy.I)
    a = sympy.Symbol("a", real=True)
    mixed = Network.from_weights([[[a * 1e300]]], None, "tanh")  # symbols are fine
    with pytest.raises(symnet.WeightError, match=r"layer 1: W\[0, 0\] is 1\.0+e\+310"):  # until the product is a number
        mixed.subs(a=1e10)
    dense = symnet.Dense(sympy.ImmutableMatrix([[sympy.Float("1e400")]]), sympy.ImmutableMatrix([[0]]),
                         symnet.activations.get("tanh"))
    with pytest.raises(symnet.WeightError, match=r"layer 1: W\[0, 0\] is 1\.0+e\+400"):
        Network([dense])
    raw = symnet.Dense(np.ones((1, 1)), sympy.ImmutableMatrix([[0]]), symnet.activations.get("tanh"))
    with pytest.raises(symnet.WeightError, match="layer 1: W is a ndarray, not a SymPy matrix"):
        Network([raw])


@pytest.mark.parametrize("activations", [42, 4.2, object(), b"tanh", [42]])
def test_activations_that_are_no_activation(activations):
    with pytest.raises(symnet.ActivationError,
                       match=r"layer 1: cannot use .* as an activation; give a name \(cos, elu"):
        Network.from_weights([[[1.0]]], None, activations)
    with pytest.raises(symnet.ActivationError, match="as an activation"):
        Network.symbolic([1, 1], activations)


def test_a_weight_whose_evaluation_would_not_end_is_refused_at_once():
    """evalf of sin(exp(exp(exp(4)))) runs for ever; float64 evaluation overflows in microseconds."""
    with pytest.raises(symnet.WeightError, match=r"layer 1: W\[0, 0\] is sin\(exp\(exp\(exp\(4\)\)\)\), whose evaluation "
                                          r"leaves float64's range"):
        symnet.Network.from_weights([[[sympy.sin(sympy.exp(sympy.exp(sympy.exp(4))))]]], [[0.0]], ["tanh"])
    net = symnet.Network.from_weights([[[sympy.sqrt(2)]]], [[sympy.gamma(3)]], ["tanh"])  # exact numbers stay exact
    assert net.layers[0].weight[0, 0] == sympy.sqrt(2) and net.layers[0].bias[0] == 2


def test_masked_weights_are_refused():
    masked = np.ma.masked_array([[1.0]], mask=[[True]])
    with pytest.raises(symnet.WeightError, match="layer 1: W is a masked array, and its mask would be ignored"):
        Network.from_weights([masked], [[0.0]], ["linear"])
    with pytest.raises(symnet.WeightError, match="layer 1: b is a masked array"):
        Network.from_weights([[[1.0]]], [np.ma.masked_array([0.0], mask=[True])], ["linear"])
    net = Network.from_weights([[[1.0]]], [[0.0]], ["linear"])
    with pytest.raises(symnet.WeightError, match="layer 1: W is a masked array"):
        net.with_weights([masked])
    with pytest.raises(symnet.WeightError, match="layer 1: W is a masked array"):
        net.with_weights([masked.T], layout="torch")


def test_with_params_rebuilds_chains_and_graphs_and_checks_shapes():
    from symnet.graph import zoo

    chain = symnet.Network.from_weights([[[1.0, 2.0]], [[1.0], [1.0]]], [[0.0, 0.0], [0.0]], ["tanh", "linear"])
    again = chain.with_params({"z1": {"W": [[3.0, 4.0]], "b": [0.5, 0.25]}, "z2": {"W": [[1.0], [-1.0]], "b": [[2.0]]}})
    assert again.is_chain and again.layers[0].weight.tolist() == [[3.0, 4.0]]
    graph = zoo.resnet_mlp(width=3, blocks=1, seed=1)
    params = {node.name: {name: np.array(m.tolist(), dtype=float) * 2 for name, m in node.params.items()}
              for node in graph.graph.nodes[1:] if node.params}
    doubled = graph.with_params(params)
    assert not doubled.is_chain and doubled.graph.nodes[1].params["W"] == 2 * graph.graph.nodes[1].params["W"]
    first = next(iter(params))
    params[first]["W"] = params[first]["W"].T.copy()   # (3, 2) for a (2, 3) W: refused, not reshaped
    with pytest.raises(symnet.ShapeError, match=r"has shape \(3, 2\) but \(2, 3\) is needed"):
        graph.with_params(params)
    with pytest.raises(symnet.ShapeError, match="must give the nodes"):
        graph.with_params({})
