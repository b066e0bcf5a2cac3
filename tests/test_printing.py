
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


# --- big closed forms: a summary, and a way to ask for the whole -------------------------------------


def _realistic(sizes, acts):
    return random_network(np.random.default_rng(3), sizes, acts)


@pytest.mark.parametrize("show", [str, repr, lambda net: net._repr_latex_(), symnet.pretty, symnet.latex,
                                  lambda net: net.latex()])
def test_a_realistic_net_prints_at_once_and_says_how_to_see_the_whole(show, monkeypatch):
    net = _realistic([2, 64, 64, 64, 1], ["tanh", "tanh", "tanh", "linear"])

    def refuse(*args, **kwargs):
        raise AssertionError("printing built the closed form")

    # What "at once" means, without a wall clock in the suite: the closed form is never built.
    monkeypatch.setattr(Network, "forward", refuse)
    text = show(net)
    assert "outputs" not in net.__dict__
    assert "2 -> 64 -> 64 -> 64 -> 1" in text or r"2 $\to$ 64 $\to$ 64 $\to$ 64 $\to$ 1" in text
    if show is not repr:
        assert "closed form of about" in text and "full=True" in text and "net.expr" in text


def test_the_summary_latex_is_valid_text():
    net = Network.symbolic([3, 40, 40, 2], ["tanh", "sigmoid", "softmax"], input_names=["u_1", "v", "w"])
    tex = net._repr_latex_()
    assert tex.startswith("$\\displaystyle \\text{Network(3 $\\to$ 40") and tex.endswith("}$")
    assert "inputs=(u\\_1, v, w)" in tex and "net.expr" in tex


def test_small_nets_print_in_full_and_full_true_prints_any_net(monkeypatch):
    net = Network.from_weights([-1.3284513, 0.5667597], [-1.328055, 1.0003909], ["square", "linear"])
    assert str(net) == "0.5667597*(-1.3284513*x0 - 1.328055)**2 + 1.0003909"  # the README's example
    medium = _realistic([2, 8, 8, 1], ["tanh", "tanh", "linear"])
    whole = sympy.sstr(medium.expr, full_prec=False)
    assert str(medium) == whole
    monkeypatch.setattr(symnet.limits, "MAX_PRINT_SIZE", 100)  # now medium counts as big
    assert "closed form of about" in str(medium) and "closed form of about" in symnet.pretty(medium)
    assert symnet.pretty(medium, full=True) == sympy.pretty(medium.expr, full_prec=False)
    assert medium.latex(full=True) == symnet.latex(medium, full=True) == sympy.latex(medium.expr, full_prec=False)
    assert symnet.pretty(medium.expr) == sympy.pretty(medium.expr, full_prec=False)  # expressions: always whole


@pytest.mark.parametrize("sizes, acts", [([1, 1, 1], ["square", "linear"]), ([2, 8, 8, 1], ["tanh", "tanh", "linear"]),
                                         ([2, 6, 6, 1], ["sigmoid", "silu", "linear"]),
                                         ([1, 4, 4, 4, 1], ["relu", "elu", "gelu", "linear"]), ([2, 3], ["softmax"]),
                                         ([3, 10, 10, 2], ["tanh", "tanh", "linear"])])
def test_the_size_estimate_follows_the_real_closed_form(sizes, acts):
    net = _realistic(sizes, acts)
    real = sum(symnet.limits.tree_size(e) for e in net.outputs)
    assert 0.7 * real <= symnet.limits.closed_form_size(net) <= 1.5 * real
