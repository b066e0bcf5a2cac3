import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import symnet
from symnet import Network


def test_seed_003_learned_parabola():
    net = Network.from_weights([-1.3284513, 0.5667597], [-1.328055, 1.0003909], [lambda x: x**2, "linear"])
    c = symnet.coefficients(net)
    assert set(c) == {(2,), (1,), (0,)}
    assert [round(float(c[k]), 7) for k in (2, 1, 0)] == [1.0002078, 1.9998188, 2.000002]
    a, b, w2, d = -1.3284513, -1.328055, 0.5667597, 1.0003909  # by hand, as in the story
    np.testing.assert_allclose([float(c[2]), float(c[1]), float(c[0])], [a * a * w2, 2 * a * b * w2, b * b * w2 + d], rtol=1e-14)


def test_seed_003_formulas_of_the_weights():
    net = Network.symbolic([1, 1, 1], ["square", "linear"])
    a, b, c, d = net.params
    coeffs = symnet.coefficients(net)
    assert coeffs[2] == a**2 * c and coeffs[1] == 2 * a * b * c and coeffs[0] == b**2 * c + d
    assert coeffs[(5,)] == 0 and (5,) not in coeffs
    poly = symnet.coefficients(net, as_poly=True)
    assert isinstance(poly, sympy.Poly) and poly.gens == net.inputs


def test_multi_input_polynomial_net():
    net = Network.from_weights([[[1, 2], [3, 0]], [[1], [1]]], [[0, 1], [0]], ["square", "linear"])
    x0, x1 = net.inputs
    coeffs = symnet.coefficients(net)
    assert sympy.expand(coeffs.as_expr() - ((x0 + 3 * x1) ** 2 + (2 * x0 + 1) ** 2)) == 0
    assert coeffs[(1, 1)] == 6 and coeffs[(0, 0)] == 1
    with pytest.raises(KeyError, match="exponent tuples of length 2"):
        coeffs[2]


def test_non_polynomial_net_points_to_taylor():
    net = Network.from_weights([[[1.0]], [[1.0]]], None, ["square", "tanh"])
    with pytest.raises(symnet.NotPolynomialError, match="layer 2's activation 'tanh'.*symnet.taylor"):
        symnet.coefficients(net)


def test_taylor_of_sine_net_is_exact():
    net = Network.from_weights([[[1]], [[1]]], [[0], [0]], ["sin", "linear"])
    t = symnet.taylor(net, 0, 7)
    assert [t[k] for k in range(8)] == [0, 1, 0, sympy.Rational(-1, 6), 0, sympy.Rational(1, 120), 0, sympy.Rational(-1, 5040)]


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), about=st.floats(-1, 1))
def test_taylor_matches_sympy_series(seed, about):
    rng = np.random.default_rng(seed)
    net = Network.from_weights([rng.normal(size=(1, 2)), rng.normal(size=(2, 1))], [rng.normal(size=2), [0.1]],
                               ["tanh", "linear"])
    x = net.inputs[0]
    twin = Network.symbolic([1, 2, 1], ["tanh", "linear"])
    weights = {p: sympy.Float(float(v)) for p, v in zip(twin.params, [v for la in net.layers for v in (*la.weight, *la.bias)])}
    ours = symnet.taylor(net, about, 4)
    h = sympy.Symbol("h")
    series = sympy.series(twin.expr.xreplace({twin.inputs[0]: about + h}), h, 0, 5).removeO()
    for k in range(5):
        exact = float(series.coeff(h, k).xreplace(weights))
        assert float(ours[k]) == pytest.approx(exact, rel=1e-9, abs=1e-12)
    assert ours.about == (sympy.Float(about),)


def test_taylor_multi_input_and_symbolic_point():
    net = Network.from_weights([[[1], [1]], [[1]]], None, ["exp", "linear"])  # exp(x0 + x1)
    t = symnet.taylor(net, {"x0": 0, "x1": 0}, 2)
    assert t[(1, 1)] == 1 and t[(2, 0)] == sympy.Rational(1, 2) and len(t) == 6
    a = sympy.Symbol("a", real=True)
    sym = symnet.taylor(net, [a, 0], 1)
    assert sym[(0, 1)] == sympy.exp(a)
    with pytest.raises(symnet.InputError, match="about is one number but the network has 2 inputs"):
        symnet.taylor(net, 0.5, 2)
    with pytest.raises(symnet.InputError, match="order must be a non-negative integer"):
        symnet.taylor(net, [0, 0], -1)
    with pytest.raises(symnet.InputError, match="numbers or SymPy"):
        symnet.taylor(net, ["0", 0], 1)


@pytest.mark.parametrize(("about", "message"), [
    (np.zeros((1, 1)), r"about\[x0\] is array\(\[0\.\]\) of type ndarray; about values must be real finite numbers"),
    ([sympy.I], r"about\[x0\] is I; each input's value must be real and finite"),
    ([sympy.oo], r"about\[x0\] is oo; each input's value must be real and finite"),
    ([float("nan")], r"about\[x0\] is nan; each input's value must be a finite number"),
    ([True], r"about\[x0\] is True, a bool; give the number you mean"),
    (1 + 2j, r"about\[x0\] is \(1\+2j\) of type complex"),
    (object(), "about must be a number, a sequence of 1 numbers or a mapping"),
])
def test_taylor_refuses_points_that_are_not_one_real_number_per_input(about, message):
    net = Network.from_weights([[[1.0]]], [[0.0]], ["sigmoid"])
    with pytest.raises(symnet.InputError, match=message):
        symnet.taylor(net, about, 2)
    t = sympy.Symbol("t", real=True)
    assert symnet.taylor(net, [np.int64(0)], 1)[(0,)] == sympy.Rational(1, 2)  # numpy numbers are numbers
    assert symnet.taylor(net, np.float64(0.0), 1)[(1,)] == pytest.approx(0.25)
    assert symnet.taylor(net, {"x0": t}, 0)[(0,)].has(t)
