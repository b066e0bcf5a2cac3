import numpy as np
import pytest
import sympy

import symnet
from symnet import Network

from conftest import evaluate, random_network


def test_simplify_gives_textbook_forms_and_keeps_the_value():
    x = sympy.Symbol("x", real=True)
    sig = 1 / (1 + sympy.exp(-x))
    assert symnet.simplify(sympy.diff(sig, x)) == symnet.sigmoid(x) * (1 - symnet.sigmoid(x))
    assert symnet.simplify(sympy.diff(sympy.log(1 + sympy.exp(x)), x)) == symnet.sigmoid(x)
    assert symnet.simplify(1 / sympy.cosh(x) ** 2) == 1 - sympy.tanh(x) ** 2
    second = sympy.diff(sig, x, 2)
    for v in (-2.0, 0.3, 1.7):
        assert abs(evaluate(symnet.simplify(second), (x,), [v]) - evaluate(second, (x,), [v])) < 1e-15


def test_simplify_on_a_network_derivative_written_with_exp():
    net = Network.symbolic([2, 1], "sigmoid")
    plain = net.expr.rewrite(sympy.exp)
    grad = sympy.Matrix([sympy.diff(plain, x) for x in net.inputs])
    assert symnet.simplify(grad) == symnet.grad(net)


def test_pretty_and_latex():
    net = Network.from_weights([-1.3284513, 0.5667597], [-1.328055, 1.0003909], ["square", "linear"])
    text = symnet.pretty(net)
    assert "0.5667597" in text and "0.566759700000000" not in text
    assert symnet.latex(Network.symbolic([1, 1], "sigmoid")).startswith("\\sigma\\left(")
    assert symnet.latex(np.float64(1.5) * sympy.Symbol("x")) == "1.5 x"


def test_formula_in_matrix_notation():
    net = Network.symbolic([2, 3, 2], ["relu", "softmax"])
    assert symnet.formula(net) == ("J = \\left(\\operatorname{diag}(p_{2}) - p_{2} p_{2}^{T}\\right) W_{2}^{T} "
                                   "\\operatorname{diag}\\left(\\operatorname{relu}'(z_{1})\\right) W_{1}^{T}")
    with pytest.raises(symnet.InputError, match="layer 2's softmax is not elementwise"):
        symnet.formula(net, "hessian")
    with pytest.raises(symnet.InputError, match="formula knows 'value', 'jacobian', 'hessian'"):
        symnet.formula(net, "gradient of the loss")


def _stated_hessian(net, x, k):
    """H_k = sum_l J_zl^T diag(delta_l * f_l''(z_l)) J_zl, exactly as formula(net, "hessian") states it."""
    Ws = [layer.weight_array() for layer in net.layers]
    bs = [layer.bias_array() for layer in net.layers]
    acts = net.activations
    a, J, zs, Js = x, np.eye(len(x)), [], []
    for W, b, act in zip(Ws, bs, acts):
        z, Jz = W.T @ a + b, W.T @ J
        zs.append(z)
        Js.append(Jz)
        a, J = act.numpy(z), act.numpy_derivative(z)[:, None] * Jz
    delta = np.eye(net.n_outputs)[k]
    H = np.zeros((len(x), len(x)))
    for n in range(len(Ws) - 1, -1, -1):  # delta = dy_k/da_n, from the output back
        H += Js[n].T @ np.diag(delta * acts[n].numpy_second_derivative(zs[n])) @ Js[n]
        delta = Ws[n] @ (acts[n].numpy_derivative(zs[n]) * delta)
    return H


@pytest.mark.parametrize("sizes, acts", [([2, 3, 3, 1], ["tanh", "sigmoid", "linear"]),
                                         ([3, 4, 2], ["softplus", "tanh"]), ([2, 2, 2, 2, 1], ["sin", "elu", "silu", "linear"])])
def test_second_order_formulas_state_the_exact_hessian(sizes, acts):
    net = random_network(np.random.default_rng(7), sizes, acts)
    text = symnet.formula(net, "hessian")
    for n, act in enumerate(acts, start=1):  # one term per curved layer, none for linear ones
        assert (f"J_{{z_{{{n}}}}}^{{T}}" in text.splitlines()[0]) == (act != "linear")
    x = np.random.default_rng(8).normal(size=sizes[0])
    exact = symnet.compile(net, "hessian", backend="numpy")(x).hessian
    laplacian_text = symnet.formula(net, "laplacian")
    assert laplacian_text.startswith("\\Delta y") and "\\nabla z" in laplacian_text
    for k in range(net.n_outputs):
        np.testing.assert_allclose(_stated_hessian(net, x, k), exact[k], rtol=1e-12, atol=1e-12)


def test_second_order_formula_of_a_linear_network_is_zero():
    assert symnet.formula(Network.symbolic([2, 3, 1], ["linear", "linear"]), "hessian") == "H = 0"
