"""The graph IR, the builder and the Network facade (symnet.graph.ir, symnet.graph.builder, symnet.network)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import sympy

import symnet
from symnet import NotAChainError, ShapeError
from symnet.graph import Graph, Node, batch_norm, concat, dense, input, layer_norm, network, rms_norm
from symnet.program import build


def _residual(symbolic: bool = False) -> symnet.Network:
    x = input(2)
    if symbolic:
        h = dense(x, 2, "tanh")
        return network(x, dense(h + dense(h, 2, "tanh"), 1))
    h = dense(x, [[1.0, 0.5], [-0.5, 1.0]], [0.0, 0.1], "tanh")
    h = h + dense(h, [[0.3, -0.2], [0.1, 0.3]], [0.05, 0.0], "tanh")
    return network(x, dense(h, [[1.0], [-1.5]], [0.2]))


def test_chain_written_as_graph_is_the_chain():
    x = input(2)
    net = network(x, dense(dense(x, [[1.0, 2.0], [3.0, 4.0]], [0.5, -0.5], "sigmoid"), [[1.0], [2.0]], [0.0]))
    chain = symnet.Network.from_weights([[[1.0, 2.0], [3.0, 4.0]], [[1.0], [2.0]]], [[0.5, -0.5], [0.0]],
                                        ["sigmoid", "linear"])
    assert net.is_chain and net == chain and hash(net) == hash(chain)
    assert [n.name for n in chain.graph.nodes] == ["x", "z1", "a1", "z2", "a2"]


def test_symbolic_graph_names_parameters_like_symbolic_chains():
    net = _residual(symbolic=True)
    assert not net.is_chain
    names = [p.name for p in net.params]
    assert names[:6] == ["w1_0_0", "w1_0_1", "w1_1_0", "w1_1_1", "b1_0", "b1_1"]
    assert len(names) == 6 + 6 + 3 and all(p.is_real for p in net.params)


def test_chain_programs_are_unchanged():
    """The graph walker writes a chain's program exactly as the layer walker did (names and expressions)."""
    net = symnet.Network.from_weights([[[1]], [[2]]], [[0], [0]], ["tanh", "linear"])
    program = build(net, [(0, 0)])
    assert str(program).splitlines() == ["a1_0 = tanh(x0)", "d1a1_0 = 1 - a1_0**2", "d2a1_0 = -a1_0*(2 - 2*a1_0**2)"]
    soft = symnet.Network.symbolic([2, 3], "softmax")
    names = [str(node) for node, _ in build(soft, [(0,)]).assignments]
    assert names[:3] == ["z1_0", "z1_1", "z1_2"]
    assert {"e1_0", "e1_0[x0]", "S1", "r1", "a1_0", "a1_2[x0]"} <= set(names)


def test_graph_closed_form_and_derivatives_match_sympy():
    net = _residual()
    x0, x1 = net.inputs
    a = [sympy.tanh(1.0 * x0 - 0.5 * x1), sympy.tanh(0.5 * x0 + 1.0 * x1 + 0.1)]
    b = [sympy.tanh(0.3 * a[0] + 0.1 * a[1] + 0.05), sympy.tanh(-0.2 * a[0] + 0.3 * a[1])]
    truth = 1.0 * (a[0] + b[0]) - 1.5 * (a[1] + b[1]) + 0.2
    point = {x0: sympy.Float("0.3", 30), x1: sympy.Float("-0.7", 30)}
    assert abs(sympy.N((net.expr - truth).subs(point), 30)) < 1e-25
    for wrt in [(x0,), (x0, x1), (x1, x1, x0)]:
        ours = symnet.diff(net, *wrt).subs(point)
        ref = sympy.diff(truth, *wrt).subs(point)
        assert abs(sympy.N(ours - ref, 30)) < 1e-20 * max(1, abs(sympy.N(ref)))


@pytest.mark.parametrize("build_nodes, message", [
    (lambda: [Node("a", "add", ("x", "nope"), {}, {}, 0)], "input 'nope' is not an earlier node"),
    (lambda: [Node("a", "frobnicate", ("x",), {}, {}, 0)], "unknown op 'frobnicate'"),
    (lambda: [Node("a", "slice", ("x",), {}, {"start": 0, "stop": 5}, 0)], "node 'a' (slice)"),
    (lambda: [Node("x1 y", "sum", ("x",), {}, {}, 0)], "ASCII identifier"),
    (lambda: [Node("s", "sum", ("x",), {}, {}, 0), Node("s", "sum", ("x",), {}, {}, 0)], "used twice"),
    (lambda: [Node("d", "dense", ("x",), {"W": sympy.ImmutableMatrix([[1.0]]), "b": sympy.ImmutableMatrix([[0.0]])},
                   {"units": 1}, 0)], "parameter W has shape (1, 1) but (2, 1)"),
])
def test_graph_errors_name_the_node(build_nodes, message):
    with pytest.raises(ShapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Graph(sympy.symbols("x0 x1", real=True), build_nodes())


def test_builder_shape_errors():
    x = input(3)
    with pytest.raises(ShapeError, match="widths 3 and 2"):
        x + dense(x, np.ones((3, 2)))
    with pytest.raises(ShapeError, match="layout='torch'"):
        dense(x, np.ones((2, 3)))
    with pytest.raises(ShapeError, match="not listed"):
        network(input(1), x + input(3))


def test_graph_networks_refuse_chain_views_clearly():
    net = _residual()
    for view in ("layers", "layer_sizes", "activations"):
        with pytest.raises(NotAChainError, match="graph"):
            getattr(net, view)
    with pytest.raises(NotAChainError):
        net.with_weights([None])
    with pytest.raises(NotAChainError, match="matrix notation"):
        symnet.formula(net)


def test_graph_network_is_frozen_pickles_and_substitutes():
    sym = _residual(symbolic=True)
    with pytest.raises(AttributeError):
        sym.foo = 1
    assert pickle.loads(pickle.dumps(sym)) == sym
    values = {p.name: 0.1 * (i + 1) for i, p in enumerate(sym.params)}
    numeric = sym.subs(values)
    assert numeric.is_numeric and not numeric.is_chain and numeric != sym
    x0, x1 = sym.inputs
    point = {x0: 0.4, x1: -0.2}
    assert abs(float(numeric.expr.subs(point)) - float(sym.expr.subs({**point, **{p: values[p.name] for p in sym.params}}))) < 1e-12


def test_two_inputs_and_two_heads():
    u, y = input(3, name="sensors"), input(2, names=["s", "t"])
    branch = dense(u, np.full((3, 2), 0.5), [0.1, 0.2], "tanh")
    trunk = dense(y, np.array([[1.0, 0.0], [0.0, 1.0]]), None, "tanh")
    net = network([u, y], [dense(branch * trunk, [[1.0], [1.0]]), concat(branch, trunk)[1:3]])
    assert [s.name for s in net.inputs] == ["x0", "x1", "x2", "s", "t"]
    assert net.n_outputs == 3
    values = [sympy.Float(v) for v in (0.1, 0.2, 0.3, -0.4, 0.5)]
    out = net.forward(values)
    branch_v = [np.tanh(0.5 * 0.6 + b) for b in (0.1, 0.2)]
    trunk_v = [np.tanh(-0.4), np.tanh(0.5)]
    assert abs(float(out[0]) - sum(b * t for b, t in zip(branch_v, trunk_v))) < 1e-14
    assert abs(float(out[1]) - branch_v[1]) < 1e-14 and abs(float(out[2]) - trunk_v[0]) < 1e-14


def test_neurons_count_nonlinear_units():
    assert symnet.Network.symbolic([2, 3, 1], ["tanh", "linear"]).graph.neurons == 4
    assert _residual().graph.neurons == 4


def test_polynomial_graph_coefficients_are_exact():
    x = input(1)
    h = dense(x, [[2]], [1], "square")  # (2x + 1)^2
    g = dense(x, [[1]], [0], "square")  # x^2
    net = network(x, h * g + h)  # (2x+1)^2 x^2 + (2x+1)^2
    coefficients = dict(symnet.coefficients(net))
    truth = sympy.Poly(sympy.expand((2 * net.inputs[0] + 1) ** 2 * (net.inputs[0] ** 2 + 1)), net.inputs[0])
    assert coefficients == {m: c for m, c in truth.terms()}
    with pytest.raises(symnet.NotPolynomialError, match="node 'a1'"):
        x = input(1)
        symnet.coefficients(network(x, dense(x, [[1.0]], None, "tanh") * x))


def test_a_numpy_array_on_either_side_builds_the_same_network():
    import numpy as np

    from symnet.graph import input, network

    x = input(2)
    for left, right in ((np.array([1.0, 2.0]) * x, x * np.array([1.0, 2.0])),
                        (np.array([1.0, 2.0]) + x, x + np.array([1.0, 2.0])),
                        (np.array([1.0, 2.0]) - x, -(x - np.array([1.0, 2.0])))):
        assert network(x, left).outputs.shape == (2, 1)
        assert sympy.simplify(network(x, left).outputs - network(x, right).outputs) == sympy.zeros(2, 1)


@pytest.mark.parametrize("build, error, message", [
    (lambda x: dense(x, -1), ShapeError, r"dense units must be a positive integer, not -1"),
    (lambda x: dense(x, 10**9), symnet.LimitError, r"dense units is 1,000,000,000, more than symnet\.limits\.MAX_GRAPH_UNITS"),
    (lambda x: dense(input(20), 60_000), symnet.LimitError, r"1,200,000 weights, more than symnet\.limits\.MAX_GRAPH_WEIGHTS"),
    (lambda x: dense(x, np.zeros((2, 600_000))), symnet.LimitError, r"dense W has shape \(2, 600000\)"),
    (lambda x: input(0), ShapeError, r"an input's width must be a positive integer, not 0"),
    (lambda x: layer_norm(x, eps=-1), ShapeError, r"layer_norm: eps must be a finite number > 0, not -1"),
    (lambda x: rms_norm(x, eps=float("nan")), ShapeError, r"rms_norm: eps must be a finite number > 0"),
    (lambda x: batch_norm(x, 0, -1.0), ShapeError, r"batch_norm: var\[0\] \+ eps = -0\.999.* must be > 0"),
    (lambda x: network(x, dense(x, 2, parametrization="weight_norm", v=[[0, 1], [0, 1]], g=[1, 1])),
     symnet.WeightError, r"node 'z1' \(dense\): column 0 of v is zero"),
])
def test_the_builder_refuses_what_would_hang_or_give_nan(build, error, message):
    with pytest.raises(error, match=message):
        build(input(2))


def test_zoo_sizes_are_checked():
    from symnet.graph import zoo

    with pytest.raises(ShapeError, match="width must be a positive integer, not 0"):
        zoo.resnet_mlp(width=0)
    with pytest.raises(symnet.LimitError, match="width is 1,000,000, more than symnet.limits.MAX_GRAPH_UNITS"):
        zoo.resnet_mlp(width=10**6)


def test_graph_inputs_must_be_distinct():
    x0 = sympy.Symbol("x0", real=True)
    with pytest.raises(ShapeError, match=r"input names \(x0, x0\) must be distinct"):
        Graph([x0, x0], [Node("z1", "dense", ("x",), {"W": sympy.ImmutableMatrix([[1.0], [1.0]]),
                                                       "b": sympy.ImmutableMatrix([[0.0]])}, {"units": 1}, 1)])


def test_a_given_symbol_named_like_a_generated_weight_is_refused_not_tied():
    x = input(2)
    inner = dense(x, [[sympy.Symbol("w2_0_0", real=True)], [1]])
    with pytest.raises(symnet.WeightError, match=r"the symbol 'w2_0_0' you gave is also the name symnet gives a "
                                                 r"weight of the 2nd dense node"):
        network(x, dense(inner, 1))
    mine = sympy.Symbol("a", real=True)  # any other name is the user's own parameter
    assert mine in network(x, dense(dense(x, [[mine], [1]]), 1)).params


def test_errors_of_a_constant_beside_a_tensor_say_which_operator():
    x = input(2)
    with pytest.raises(ShapeError, match=r"tensor \+ a constant \(a fixed rescale.*offset has 3 entries"):
        x + [1, 2, 3]
    with pytest.raises(ShapeError, match=r"tensor \* a constant \(a fixed rescale.*must be numbers"):
        x * sympy.Symbol("k")
    with pytest.raises(ShapeError, match=r"network's outputs must be a symnet.graph Tensor or a list of them.*not Node"):
        network(x, network(x, x * 2).graph.nodes[1])
