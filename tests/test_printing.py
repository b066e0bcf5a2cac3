import numpy as np
import sympy

import symnet
from symnet import Network

from conftest import evaluate


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
    import pytest
    with pytest.raises(symnet.InputError, match="formula knows 'value' and 'jacobian'"):
        symnet.formula(net, "hessian")
