"""Parameter gradients of losses (symnet.param_grad), against independent computations."""

import numpy as np
import pytest
import sympy

import symnet
from symnet import Network

from conftest import random_network


def numeric(matrix):
    return np.array(matrix.evalf(), dtype=float)


def loss_value(net, loss, X, Y):
    """The loss computed directly from the closed form, for finite differences and sympy.diff."""
    outs = [net.outputs.xreplace(dict(zip(net.inputs, map(sympy.Float, x)))) for x in X]
    if loss == "mse":
        return sum(sum((o[k] - y[k]) ** 2 for k in range(len(y))) / len(y) for o, y in zip(outs, Y)) / len(X)
    if loss == "softmax_cross_entropy":
        outs = [[sympy.exp(v) / sum(sympy.exp(u) for u in o) for v in o] for o in outs]
    return -sum(sum(t * sympy.log(v) for t, v in zip(y, o)) for o, y in zip(outs, Y)) / len(X)


@pytest.mark.parametrize("loss, last", [("mse", "linear"), ("mse", "tanh"), ("cross_entropy", "softmax"),
                                        ("cross_entropy", "sigmoid"), ("softmax_cross_entropy", "linear")])
def test_param_grad_matches_sympy_diff_of_the_loss(loss, last):
    rng = np.random.default_rng(7)
    net = random_network(rng, [2, 3, 2], ["tanh", last])
    X = rng.normal(size=(3, 2))
    Y = rng.dirichlet([1, 1], size=3) if loss != "mse" else rng.normal(size=(3, 2))
    grads = symnet.param_grad(net, loss, (X, Y))
    twin = Network.symbolic(net.layer_sizes, net.activations)
    values = {p: float(v) for p, v in zip(twin.params, [v for la in net.layers for v in (*la.weight, *la.bias)])}
    L = loss_value(twin, loss, X, Y)
    flat = [g for dW, db in grads for g in (*numeric(dW).ravel(), *numeric(db).ravel())]
    for p, ours in zip(twin.params, flat):
        exact = float(sympy.diff(L, p).xreplace(values).evalf(30))
        assert ours == pytest.approx(exact, rel=1e-10, abs=1e-13), p


def test_seed_004_simple_net_cross_entropy_gradient():
    """004's simpleNet: loss = cross_entropy(softmax(x @ W), t), dL/dW = outer(x, softmax(x @ W) - t)."""
    W = np.array([[0.47355232, 0.9977393, 0.84668094], [0.85557411, 0.03563661, 0.69422093]])
    x, t = np.array([0.6, 0.9]), np.array([0, 0, 1])
    net = Network.from_weights([W], None, "softmax")
    dW, db = symnet.param_grad(net, "cross_entropy", (x, t))[0]
    p = np.exp(x @ W) / np.exp(x @ W).sum()
    np.testing.assert_allclose(numeric(dW), np.outer(x, p - t), rtol=1e-13)
    # the numbers the book prints for these weights (central differences there, so 1e-6)
    np.testing.assert_allclose(numeric(dW), [[0.21924763, 0.14356247, -0.36281009],
                                             [0.32887144, 0.2153437, -0.54421514]], atol=1e-6)
    # integer class labels mean the same as one-hot targets
    dW_labels, _ = symnet.param_grad(net, "cross_entropy", ([x], [2]))[0]
    np.testing.assert_allclose(numeric(dW_labels), numeric(dW), rtol=1e-14)


def test_symbolic_gradient_of_one_sigmoid_neuron():
    """002: dC/dw = (y_hat - y) sigma'(z) x for C = (y_hat - y)^2 / 2 -- ours is mse = (y_hat - y)^2, twice that."""
    net = Network.symbolic([1, 1], "sigmoid")
    w, b = net.params
    x, y = sympy.symbols("x y", real=True)
    (dW, db), = symnet.param_grad(net, "mse", ([[x]], [[y]]))
    z = w * x + b
    expected = 2 * (symnet.sigmoid(z) - y) * symnet.sigmoid(z) * (1 - symnet.sigmoid(z)) * x
    assert sympy.simplify(dW[0, 0] - expected) == 0
    assert sympy.simplify(db[0, 0] - expected / x) == 0


def test_param_grad_input_errors():
    net = Network.from_weights([np.ones((2, 1))], None, "linear")
    with pytest.raises(symnet.InputError, match="unknown loss 'l1'"):
        symnet.param_grad(net, "l1", ([[1, 2]], [[1]]))
    with pytest.raises(symnet.ShapeError, match=r"X has shape \(1, 3\) but the network takes 2 inputs"):
        symnet.param_grad(net, "mse", ([[1, 2, 3]], [[1]]))
    with pytest.raises(symnet.ShapeError, match=r"Y has shape"):
        symnet.param_grad(net, "mse", ([[1, 2]], [[1, 2]]))
    with pytest.raises(symnet.InputError, match="pair"):
        symnet.param_grad(net, "mse", [[1, 2]])
    soft = Network.from_weights([np.ones((2, 3))], None, "softmax")
    with pytest.raises(symnet.ShapeError, match="class labels must lie in 0..2"):
        symnet.param_grad(soft, "cross_entropy", ([[1, 2], [3, 4]], [0, 3]))
