"""Numeric back-propagation: seeds 001 and 004, loss gradients, saturation, the round-off bound."""

import numpy as np
import pytest
import sympy

import symnet
from symnet import ActivationError, InputError, ShapeError, WeightError
from symnet.check import backprop, finite_differences, finite_differences_params

from conftest import SMOOTH, evaluate, random_network, reference_derivative

SIMPLE_W = [[0.47355232, 0.9977393, 0.84668094], [0.85557411, 0.03563661, 0.69422093]]


def all_ones_net():
    """001's network: 2 inputs, 2 sigmoid units (W = b = 1), one linear output (W = 1, b = 0)."""
    return symnet.Network.from_weights([np.ones((2, 2)), np.ones((2, 1))], [np.ones(2), np.zeros(1)],
                                       ["sigmoid", "linear"])


def test_001_jacobian_of_the_all_ones_net():
    result = backprop(all_ones_net(), [1.0, 1.0])
    np.testing.assert_allclose(result.jacobian, [[0.0903533, 0.0903533]], atol=5e-8)
    assert result.value.shape == (1,) and result.jacobian.shape == (1, 2) and result.hessian is None


def test_001_jacobian_of_the_three_layer_net_is_the_chain_rule_product():
    """001's answer: J = J_out . J_L2 . J_L1, layer Jacobians diag(sigma'(z)) W."""
    W = np.ones((2, 2))
    net = symnet.Network.from_weights([W, W, np.ones((2, 1))], [np.ones(2), np.ones(2), np.zeros(1)],
                                      ["sigmoid", "sigmoid", "linear"])
    x = np.array([1.0, 1.0])
    z1 = x @ W + 1
    z2 = 1 / (1 + np.exp(-z1)) @ W + 1
    dsig = lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2  # noqa: E731
    by_hand = np.ones((1, 2)) @ (dsig(z2)[:, None] * W.T) @ (dsig(z1)[:, None] * W.T)
    np.testing.assert_allclose(backprop(net, x).jacobian, by_hand, rtol=1e-14)


def test_004_simple_net_cross_entropy_gradient():
    net = symnet.Network.from_weights([SIMPLE_W], None, "softmax")
    result = backprop(net, [0.6, 0.9], loss="cross_entropy", targets=[0, 0, 1])
    (dW, db), = result.param_grads
    expected = [[0.21924763, 0.14356247, -0.36281009], [0.32887144, 0.2153437, -0.54421514]]
    np.testing.assert_allclose(dW, expected, atol=5e-9)
    assert dW.shape == (2, 3) and db.shape == (3,)
    exact_dW, exact_db = symnet.param_grad(net, "cross_entropy", ([0.6, 0.9], [0, 0, 1]))[0]
    np.testing.assert_allclose(dW, np.array(exact_dW.tolist(), dtype=float), rtol=1e-13)
    np.testing.assert_allclose(db, np.array(exact_db.tolist(), dtype=float).ravel(), rtol=1e-13)


LOSS_CASES = [
    ("mse", ["tanh", "linear"], "values"),
    ("mse", ["sigmoid", "softmax"], "values"),
    ("cross_entropy", ["tanh", "softmax"], "labels"),
    ("cross_entropy", ["silu", "sigmoid"], "probabilities"),
    ("softmax_cross_entropy", ["sin", "linear"], "labels"),
    ("softmax_cross_entropy", ["softplus", "tanh"], "probabilities"),
]


@pytest.mark.parametrize("loss, activations, kind", LOSS_CASES)
def test_parameter_gradients_match_param_grad_and_finite_differences(loss, activations, kind):
    rng = np.random.default_rng(len(loss) + len(kind))
    net = random_network(rng, [2, 3, 3], activations)
    X = rng.normal(size=(4, 2))
    targets = {"values": rng.normal(size=(4, 3)), "labels": np.array([0, 2, 1, 2]),
               "probabilities": rng.dirichlet(np.ones(3), size=4)}[kind]
    result = backprop(net, X, loss=loss, targets=targets)
    exact = symnet.param_grad(net, loss, (X, targets))
    for (dW, db), (eW, eb) in zip(result.param_grads, exact):
        np.testing.assert_allclose(dW, np.array(eW.tolist(), dtype=float), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(db, np.array(eb.tolist(), dtype=float).ravel(), rtol=1e-12, atol=1e-15)
    # and the loss value is what finite differences differentiate
    weights = [layer.weight_array() for layer in net.layers]
    for number, (dW, _) in enumerate(result.param_grads):
        def loss_of(W, number=number):
            changed = weights[:number] + [W] + weights[number + 1:]
            moved = net.with_weights(changed, [layer.bias_array() for layer in net.layers])
            return backprop(moved, X, loss=loss, targets=targets).loss
        fd = finite_differences_params(loss_of, weights[number])
        assert np.all(np.abs(fd.derivative - dW) <= fd.error + 1e-14)


def test_loss_values():
    net = symnet.Network.from_weights([[[2.0]]], [[0.0]], "linear")
    assert backprop(net, [[1.0], [2.0]], loss="mse", targets=[3.0, 3.0]).loss == pytest.approx(1.0)
    simple = symnet.Network.from_weights([SIMPLE_W], None, "softmax")
    ce = backprop(simple, [0.6, 0.9], loss="cross_entropy", targets=[0, 0, 1]).loss
    assert ce == pytest.approx(0.9280685, abs=1e-7)  # 004's loss value
    logits = symnet.Network.from_weights([SIMPLE_W], None, "linear")
    assert backprop(logits, [0.6, 0.9], loss="softmax_cross_entropy", targets=[0, 0, 1]).loss == pytest.approx(ce)


SATURATION = [  # (activation, pre-activation, value, first derivative, second derivative)
    ("tanh", 500.0, 1.0, 0.0, 0.0),
    ("tanh", -500.0, -1.0, 0.0, 0.0),
    ("sigmoid", -800.0, 0.0, 0.0, 0.0),
    ("sigmoid", 800.0, 1.0, 0.0, 0.0),
    ("softplus", -800.0, 0.0, 0.0, 0.0),
    ("softplus", 800.0, 800.0, 1.0, 0.0),
    ("silu", -800.0, 0.0, 0.0, 0.0),
    ("gelu", -800.0, 0.0, 0.0, 0.0),
]


@pytest.mark.parametrize("activation, z, value, first, second", SATURATION)
def test_saturated_units_give_finite_exact_values(activation, z, value, first, second):
    net = symnet.Network.from_weights([[[z / 2]], [[3.0]]], [[0.0], [0.0]], [activation, "linear"])
    result = backprop(net, [[2.0]], hessian=True, roundoff=True)
    scale = z / 2  # dz/dx
    np.testing.assert_array_equal(result.value, [[3 * value]])
    np.testing.assert_array_equal(result.jacobian, [[[3 * first * scale]]])
    np.testing.assert_array_equal(result.hessian, [[[[3 * second * scale**2]]]])
    assert all(np.all(np.isfinite(b)) for b in (result.roundoff.value, result.roundoff.jacobian,
                                                 result.roundoff.hessian))


def test_saturated_softmax():
    net = symnet.Network.from_weights([[[1000.0, 0.0, -1000.0]]], None, "softmax")
    result = backprop(net, [[1.0]], hessian=True, loss="cross_entropy", targets=[[0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(result.value, [[1.0, 0.0, 0.0]])
    assert result.loss == np.inf  # -log(0): the target class has probability 0
    np.testing.assert_array_equal(result.jacobian, np.zeros((1, 3, 1)))
    np.testing.assert_array_equal(result.hessian, np.zeros((1, 3, 1, 1)))
    assert np.all(np.isfinite(result.param_grads[0][0]))


@pytest.mark.parametrize("activation", SMOOTH)
def test_round_off_bound_holds_against_30_digit_arithmetic(activation):
    """|backprop - exact| <= the running error bound, the exact value from sympy.diff in mpmath."""
    rng = np.random.default_rng(SMOOTH.index(activation))
    net = random_network(rng, [2, 3, 1], [activation, "tanh"], scale=1.5)
    point = rng.uniform(-2, 2, 2)
    result = backprop(net, point, hessian=True, roundoff=True)
    assert abs(result.value[0] - evaluate(net.outputs[0], net.inputs, point)) <= result.roundoff.value[0]
    for i in range(2):
        reference = reference_derivative(net, 0, [i], point)
        assert abs(result.jacobian[0, i] - reference) <= result.roundoff.jacobian[0, i]
        for j in range(i, 2):
            reference = reference_derivative(net, 0, [i, j], point)
            assert abs(result.hessian[0, i, j] - reference) <= result.roundoff.hessian[0, i, j]


def test_round_off_bound_is_small_where_nothing_cancels():
    rng = np.random.default_rng(3)
    net = random_network(rng, [3, 8, 8, 2], ["tanh", "sigmoid", "linear"])
    result = backprop(net, rng.normal(size=(5, 3)), hessian=True, roundoff=True)
    for name in ("value", "jacobian", "hessian"):
        bound, size = getattr(result.roundoff, name), np.abs(getattr(result, name)).max()
        assert np.all(bound >= 0) and bound.max() < 1e3 * np.finfo(float).eps * max(size, 1.0)


def test_hessian_matches_finite_differences_of_the_jacobian():
    """Softmax in a hidden layer and at the output: the second-order rule of diag(p) - p p^T."""
    rng = np.random.default_rng(7)
    net = random_network(rng, [3, 4, 3], ["softmax", "softmax"], scale=1.5)
    X = rng.normal(size=(3, 3))
    result = backprop(net, X, hessian=True)
    fd = finite_differences(lambda P: backprop(net, P).jacobian.reshape(len(P), -1), X)
    np.testing.assert_allclose(result.hessian.reshape(3, 9, 3), fd.derivative, atol=1e-8)
    assert np.allclose(result.hessian, np.swapaxes(result.hessian, 2, 3), atol=1e-15)
    assert np.allclose(result.value.sum(axis=1), 1.0) and np.allclose(result.jacobian.sum(axis=1), 0.0)


def test_shapes_and_preactivations():
    net = random_network(np.random.default_rng(0), [3, 4, 2], ["tanh", "linear"])
    X = np.random.default_rng(1).normal(size=(5, 3))
    result = backprop(net, X, hessian=True, roundoff=True)
    assert result.value.shape == (5, 2) and result.jacobian.shape == (5, 2, 3) and result.hessian.shape == (5, 2, 3, 3)
    assert [z.shape for z in result.preactivations] == [(5, 4), (5, 2)]
    assert [dz.shape for dz in result.preactivation_jacobians] == [(5, 4, 3), (5, 2, 3)]
    np.testing.assert_array_equal(result.preactivation_jacobians[0], np.broadcast_to(net.layers[0].weight_array().T, (5, 4, 3)))
    single = backprop(net, X[2], hessian=True, roundoff=True)
    np.testing.assert_allclose(single.hessian, result.hessian[2], rtol=1e-13)
    assert single.roundoff.hessian.shape == (2, 3, 3) and single.preactivations[0].shape == (4,)
    np.testing.assert_array_equal(backprop(net, X.astype(np.float32)).value.dtype, np.float64)


def test_user_activation_uses_its_own_numeric_derivatives():
    cube = symnet.Activation("cube", symnet.activations.T**3, lambda z: z**3, lambda z: 3 * z**2, lambda z: 6 * z)
    net = symnet.Network.from_weights([[[2.0]]], [[1.0]], cube)
    result = backprop(net, [[1.0]], hessian=True)
    assert (result.value[0, 0], result.jacobian[0, 0, 0], result.hessian[0, 0, 0, 0]) == (27.0, 54.0, 72.0)


def test_errors_name_the_problem():
    net = all_ones_net()
    with pytest.raises(ShapeError, match=r"X has shape \(3,\) but the network takes 2 inputs"):
        backprop(net, [1.0, 2.0, 3.0])
    one_input = symnet.Network.from_weights([[[1.0]]], None, "tanh")
    with pytest.raises(ShapeError, match=r"use X.reshape\(-1, 1\)"):
        backprop(one_input, [1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="unknown loss 'hinge'"):
        backprop(net, [1.0, 2.0], loss="hinge", targets=[1.0])
    with pytest.raises(InputError, match="needs targets of shape"):
        backprop(net, [1.0, 2.0], loss="mse")
    with pytest.raises(InputError, match="targets were given without a loss"):
        backprop(net, [1.0, 2.0], targets=[1.0])
    with pytest.raises(ShapeError, match=r"targets have shape \(2,\) but \(1, 1\) is needed"):
        backprop(net, [1.0, 2.0], loss="mse", targets=[1.0, 2.0])
    softmax = symnet.Network.from_weights([SIMPLE_W], None, "softmax")
    with pytest.raises(ShapeError, match="class labels must lie in 0..2"):
        backprop(softmax, [[0.6, 0.9], [0.1, 0.2]], loss="cross_entropy", targets=[0, 3])
    with pytest.raises(WeightError, match="substitute numbers"):
        backprop(symnet.Network.symbolic([1, 1], "tanh"), [1.0])
    no_derivative = symnet.Activation("bare", sympy.sin(symnet.activations.T), np.sin)
    with pytest.raises(ActivationError, match="layer 1: activation 'bare' has no numpy_derivative"):
        backprop(symnet.Network.from_weights([[[1.0]]], None, no_derivative), [1.0])
