import numpy as np
import pytest
import sympy

import symnet
from symnet import activations
from symnet.activations import T


ELEMENTWISE = [n for n in activations.names() if activations.get(n).elementwise]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_numeric_functions_match_sympy_form(name):
    """The hand-written numpy functions agree with the SymPy form and its derivatives."""
    act = activations.get(name)
    z = np.array([-3.1, -1.2, -0.4, 0.3, 0.9, 2.7])  # no kinks here
    for order, fn in enumerate([act.numpy, act.numpy_derivative, act.numpy_second_derivative]):
        exact = np.array([float(sympy.N(sympy.diff(act.form, T, order).subs(T, sympy.Float(v, 30)), 30)) for v in z])
        np.testing.assert_allclose(fn(z), exact, rtol=1e-12, atol=1e-14, err_msg=f"{name} order {order}")


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu"])
def test_kinks_and_midpoint_convention(name):
    act = activations.get(name)
    assert act.kinks == (0.0,)
    assert not act.smooth
    # SymPy's Heaviside(0) = 1/2: the derivative at the kink is the mean of both sides
    left, right = act.numpy_derivative(np.array([-1e-300, 1e-300]))
    symbolic_at_zero = sympy.diff(act.form, T).subs(T, 0)
    assert float(act.numpy_derivative(np.array([0.0]))[0]) == pytest.approx(float(symbolic_at_zero))
    assert float(symbolic_at_zero) == pytest.approx((left + right) / 2)


def test_relu_second_derivative_is_dirac():
    assert sympy.diff(activations.get("relu").form, T, 2) == sympy.DiracDelta(T)


def test_parameters_by_name_and_in_strings():
    assert activations.get("leaky_relu(0.2)").name == "leaky_relu(alpha=0.2)"
    assert activations.get("leaky_relu(alpha=0.2)").numpy(np.array([-1.0]))[0] == pytest.approx(-0.2)
    assert activations.activation("elu", alpha=0.5).numpy(np.array([-50.0]))[0] == pytest.approx(-0.5)
    assert activations.get("swish").name == "silu"
    assert activations.get(None).name == "linear"


def test_unknown_activation_lists_known_ones():
    with pytest.raises(symnet.ActivationError, match="unknown activation 'tanhh'.*sigmoid.*tanh"):
        activations.get("tanhh")


def test_bad_parameters():
    with pytest.raises(symnet.ActivationError, match="takes parameters"):
        activations.activation("tanh", alpha=1.0)
    with pytest.raises(symnet.ActivationError, match="use numbers"):
        activations.get("leaky_relu(__import__('os'))")


def test_callable_is_traced():
    act = activations.get(lambda x: x**2)
    assert act.form == T**2
    assert act.polynomial
    assert act.numpy_derivative(np.array([3.0]))[0] == 6.0
    gauss = activations.get(lambda x: sympy.exp(-x**2))
    assert not gauss.polynomial
    assert gauss.derivative(1) == -2 * T * sympy.exp(-T**2)


def test_untraceable_callable_names_itself():
    def np_tanh(x):
        return np.tanh(x)

    with pytest.raises(symnet.ActivationError, match="np_tanh cannot be traced by SymPy.*sympy.exp"):
        activations.get(np_tanh)


def test_callable_returning_other_symbols_is_refused():
    y = sympy.Symbol("y")
    with pytest.raises(symnet.ActivationError, match="must return an expression in its one argument"):
        activations.get(lambda x: x + y)


def test_sympy_lambda():
    u = sympy.Symbol("u")
    act = activations.get(sympy.Lambda(u, u**3))
    assert act.form == T**3 and act.polynomial


def test_traced_kinks():
    assert activations.get(lambda x: sympy.Abs(x - 1)).kinks == (1.0,)
    assert activations.get(lambda x: sympy.Max(x, 2)).kinks == (2.0,)


def test_register_is_one_entry():
    activations.register("cube_test", symnet.Activation("cube_test", T**3, lambda z: z**3, lambda z: 3 * z**2, lambda z: 6 * z))
    try:
        net = symnet.Network.from_weights([[[2]]], [[0]], ["cube_test"])
        assert net.expr == 8 * net.inputs[0] ** 3
        assert symnet.coefficients(net)[3] == 8
    finally:
        activations.unregister("cube_test")
    assert "cube_test" not in activations.names()
    with pytest.raises(symnet.ActivationError, match="no activation named 'cube_test'"):
        activations.unregister("cube_test")


def test_register_rejects_bad_names():
    with pytest.raises(symnet.ActivationError, match="identifier"):
        activations.register("not valid", activations.get("tanh"))


def test_softmax_is_layerwise():
    act = activations.get("softmax")
    assert not act.elementwise
    with pytest.raises(symnet.ActivationError, match="whole layer"):
        act(T)
    probabilities = act.numpy(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    np.testing.assert_allclose(probabilities, [[0.5, 0.5], [0.25, 0.75]])


@pytest.mark.parametrize("spec", [("leaky_relu", float("inf")), ("elu", float("nan")), ("elu", -float("inf")),
                                  ("leaky_relu", True), ("elu", "1.0"), ("elu", 1 + 1j), ("leaky_relu", 1e400)])
def test_parameters_must_be_finite_real_numbers(spec):
    name, alpha = spec
    with pytest.raises(symnet.ActivationError, match=rf"{name}: alpha=.* must be a finite real number"):
        activations.activation(name, alpha=alpha)


def test_parameters_out_of_range_in_strings():
    with pytest.raises(symnet.ActivationError, match=r"leaky_relu: alpha=inf must be a finite real number"):
        activations.get("leaky_relu(1e400)")
    with pytest.raises(symnet.ActivationError, match="use numbers"):
        activations.get("elu(nan)")


def test_numpy_parameters_give_plain_names():
    assert activations.activation("leaky_relu", alpha=np.float64(0.2)).name == "leaky_relu(alpha=0.2)"
    assert activations.get(activations.activation("elu", alpha=np.float32(0.5)).name).name == "elu(alpha=0.5)"


@pytest.mark.parametrize("spec, message", [
    ("leaky_relu(alpha=0.2,alpha=0.3)", r"gives parameter 'alpha' more than once"),
    ("leaky_relu(0.2, alpha=0.3)", r"gives parameter 'alpha' more than once"),
    ("leaky_relu(alpha=\uff12)", r"cannot read parameter 'alpha=\uff12'.*use numbers"),  # fullwidth 2
    ("leaky_relu(alpha=\u0663)", r"cannot read parameter 'alpha=\u0663'.*use numbers"),  # Arabic-Indic 3
    ("leaky_relu(alpha=1e-400)", r"parameter 'alpha' = 1e-400 .* is too small for a float64 \(it would read as 0\)"),
])
def test_activation_names_are_read_strictly(spec, message):
    with pytest.raises(symnet.ActivationError, match=message):
        activations.get(spec)
    assert activations.get("leaky_relu(alpha=0e-400)").name == "leaky_relu(alpha=0.0)"  # a zero is a zero
