import itertools

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symnet
from symnet import Network

from conftest import SMOOTH, evaluate, random_network, reference_derivative


@st.composite
def networks(draw, max_depth=3, max_width=3, max_inputs=3, max_outputs=2, activations=tuple(SMOOTH)):
    depth = draw(st.integers(1, max_depth))
    sizes = [draw(st.integers(1, max_inputs))] + [draw(st.integers(1, max_width)) for _ in range(depth - 1)]
    sizes.append(draw(st.integers(1, max_outputs)))
    acts = [draw(st.sampled_from(activations)) for _ in range(depth)]
    seed = draw(st.integers(0, 2**32 - 1))
    return random_network(np.random.default_rng(seed), sizes, acts)


def close(a, b, rtol=1e-10):
    assert abs(a - b) <= rtol * (1 + abs(b)), (a, b)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net=networks(), seed=st.integers(0, 1000))
def test_jacobian_and_hessian_match_sympy_diff(net, seed):
    """The chain-rule program agrees with sympy.diff of the flat expression (an independent route)."""
    point = np.random.default_rng(seed).uniform(-1.5, 1.5, net.n_inputs)
    J = symnet.jacobian(net)
    assert J.shape == (net.n_outputs, net.n_inputs)
    for k in range(net.n_outputs):
        H = symnet.hessian(net, output=k)
        assert H == H.T
        for i in range(net.n_inputs):
            close(evaluate(J[k, i], net.inputs, point), reference_derivative(net, k, [i], point))
            for j in range(i, net.n_inputs):
                close(evaluate(H[i, j], net.inputs, point), reference_derivative(net, k, [i, j], point))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net=networks(max_depth=2, max_width=2, max_inputs=2, max_outputs=1), seed=st.integers(0, 1000),
       order=st.integers(1, 4))
def test_any_mixed_partial_matches_sympy_diff(net, seed, order):
    rng = np.random.default_rng(seed)
    wrt = list(rng.integers(0, net.n_inputs, order))
    point = rng.uniform(-1, 1, net.n_inputs)
    ours = symnet.diff(net, *wrt)
    close(evaluate(ours, net.inputs, point), reference_derivative(net, 0, wrt, point))


@settings(max_examples=15, deadline=None)
@given(net=networks(max_outputs=1))
def test_laplacian_is_trace_of_hessian(net):
    lap = symnet.laplacian(net)
    H = symnet.hessian(net)
    point = np.linspace(-0.7, 0.9, net.n_inputs)
    close(evaluate(lap, net.inputs, point), evaluate(H.trace(), net.inputs, point))


def test_softmax_layer_derivatives():
    net = random_network(np.random.default_rng(3), [2, 3, 3], ["tanh", "softmax"])
    J = symnet.jacobian(net)
    point = np.array([0.3, -0.8])
    for k, i in itertools.product(range(3), range(2)):
        close(evaluate(J[k, i], net.inputs, point), reference_derivative(net, k, [i], point))
    H = symnet.hessian(net, output=2)
    close(evaluate(H[0, 1], net.inputs, point), reference_derivative(net, 2, [0, 1], point))
    # the outputs sum to one, so their derivatives sum to zero
    assert abs(sum(evaluate(J[k, 0], net.inputs, point) for k in range(3))) < 1e-14


def test_symbolic_weights_give_formulas():
    net = Network.symbolic([1, 1, 1], ["tanh", "linear"])
    x = net.inputs[0]
    assert sympy.simplify(symnet.diff(net, x) - sympy.diff(net.expr, x)) == 0
    w1, b1, w2, b2 = net.params
    assert symnet.diff(net, x) == w1 * w2 * (1 - sympy.tanh(b1 + w1 * x) ** 2)


def test_textbook_sigmoid_derivative():
    net = Network.from_weights([[[1]], [[1]]], [[0], [0]], ["sigmoid", "linear"])
    x = net.inputs[0]
    assert symnet.diff(net, x) == symnet.sigmoid(x) * (1 - symnet.sigmoid(x))


def test_seed_001_all_ones_jacobian():
    """001: 2-2-1 with W = b = 1 then W = 1: J = 2a/(1+a)^2 (1, 1), a = exp(-3), = 0.0903533."""
    net = Network.from_weights([np.ones((2, 2), int), np.ones((2, 1), int)], [np.ones(2, int), [0]], ["sigmoid", "linear"])
    J = symnet.jacobian(net).xreplace({x: 1 for x in net.inputs})
    a = sympy.exp(-3)
    assert sympy.simplify((J[0, 0] - 2 * a / (1 + a) ** 2).rewrite(sympy.exp)) == 0
    assert float(J[0, 1]) == pytest.approx(0.0903533, abs=5e-8)


def test_seed_001_three_layers_against_numpy_chain_rule():
    net = Network.from_weights([np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 1))],
                               [np.ones(2), np.ones(2), np.ones(1)], "sigmoid")
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    x = np.array([1.0, 1.0])
    J = np.eye(2)
    a = x
    for W, b in [(np.ones((2, 2)), np.ones(2)), (np.ones((2, 2)), np.ones(2)), (np.ones((2, 1)), np.ones(1))]:
        a = sig(a @ W + b)
        J = (a * (1 - a))[:, None] * W.T @ J
    ours = np.array(symnet.jacobian(net).xreplace(dict(zip(net.inputs, x))).evalf(), float)
    np.testing.assert_allclose(ours, J, rtol=1e-14)


def test_explicit_partials_and_indices():
    net = random_network(np.random.default_rng(0), [2, 3, 1], ["tanh", "linear"])
    x0, x1 = net.inputs
    assert symnet.diff(net, x0, x0, x1) == symnet.diff(net, "x0", 1, 0)
    assert symnet.diff(net) == net.expr
    with pytest.raises(symnet.InputError, match="'x7' is not an input.*x0, x1"):
        symnet.diff(net, "x7")
    with pytest.raises(symnet.InputError, match="5 is not an input"):
        symnet.diff(net, 5)


def test_multi_output_selection():
    net = random_network(np.random.default_rng(0), [2, 3, 2], ["tanh", "linear"])
    with pytest.raises(symnet.InputError, match="has 2 outputs; pick one with output=0..1"):
        symnet.grad(net)
    with pytest.raises(symnet.InputError, match="out of range"):
        symnet.hessian(net, output=2)
    assert symnet.grad(net, output=1).T == symnet.jacobian(net)[1, :]
    assert symnet.laplacian(net).shape == (2, 1)
    assert symnet.diff(net, 0, output=1) == symnet.jacobian(net)[1, 0]


def test_parameter_is_not_an_input():
    net = Network.symbolic([1, 1], "tanh")
    with pytest.raises(symnet.InputError, match="is a parameter, not an input; use symnet.param_grad"):
        symnet.diff(net, net.params[0])


def test_program_form():
    net = random_network(np.random.default_rng(0), [2, 4, 1], ["tanh", "linear"])
    program = symnet.hessian(net, form="program")
    assert isinstance(program, symnet.Program)
    assert program.flat() == symnet.hessian(net)
    assert "a1_0 = tanh(" in str(program) and "result = Matrix" in str(program)
    with pytest.raises(symnet.InputError, match="form must be one of"):
        symnet.hessian(net, form="tree")


def test_relu_derivatives_are_honest():
    net = Network.from_weights([[[1.0, -1.0]], [[1.0], [1.0]]], None, ["relu", "linear"])
    x = net.inputs[0]
    first = symnet.diff(net, x)
    assert first.has(sympy.Heaviside)
    second = symnet.diff(net, x, x)
    assert second.has(sympy.DiracDelta)  # |x| has f'' = 2 delta(x): zero away from the kink
    assert second.subs(x, 0.5) == 0


def test_scale_1_32_32_1_tanh_takes_seconds():
    """The issue's scale check; the timing itself is reported in the README, not asserted here."""
    net = random_network(np.random.default_rng(0), [1, 32, 32, 1], ["tanh", "tanh", "linear"])
    H = symnet.hessian(net)
    x = net.inputs[0]
    h = 1e-4
    f = sympy.lambdify(x, net.expr, "mpmath")
    import mpmath
    mpmath.mp.dps = 40
    numeric = float(mpmath.diff(f, mpmath.mpf("0.3"), 2))
    close(float(H[0].subs(x, sympy.Float(0.3, 40))), numeric, rtol=1e-9)
