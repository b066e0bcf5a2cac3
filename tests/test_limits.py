"""The work limits of :mod:`symnet.limits`: every request whose work grows without bound is refused
quickly with a :class:`symnet.LimitError` (or, for activations, an ``ActivationError``) naming the limit,
and requests at the limit still work."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import sympy

import symnet
from symnet import Network, activations, limits
from symnet.activations import T

from conftest import evaluate

ONE_THREE_ONE = Network.from_weights([[[0.5, -1.0, 0.3]], [[1.0], [2.0], [-1.5]]], [[0.1, 0.2, 0.3], [0.0]],
                                     ["tanh", "linear"])


#: A busy CI machine stalls a process for a second now and then; the work these tests bound
#: takes minutes or hours unbounded, so a stated budget is checked with this much slack.
SLACK = 5.0


def quickly(seconds: float = 2.0):
    """Assert that the body returns (or raises) within ``seconds`` (times :data:`SLACK`)."""
    class _Timer:
        def __enter__(self) -> None:
            self.start = time.perf_counter()

        def __exit__(self, *exc: object) -> None:
            assert time.perf_counter() - self.start < seconds * SLACK, "took too long: the work is not bounded"
    return _Timer()


# --- derivative and Taylor orders ------------------------------------------------------------------


@pytest.mark.parametrize("order", [limits.MAX_DERIVATIVE_ORDER + 1, 12, 50])
def test_partials_past_the_order_limit_are_refused_before_any_work(order):
    with quickly(), pytest.raises(symnet.LimitError, match=rf"order {order} is above "
                                  rf"symnet.limits.MAX_DERIVATIVE_ORDER = {limits.MAX_DERIVATIVE_ORDER}"):
        symnet.diff(ONE_THREE_ONE, *["x0"] * order)


def test_orders_up_to_the_limit_work(monkeypatch):
    # the limit is read where it is checked: lower it to test the boundary cheaply
    monkeypatch.setattr(limits, "MAX_DERIVATIVE_ORDER", 3)
    third = symnet.diff(ONE_THREE_ONE, "x0", "x0", "x0")
    x = ONE_THREE_ONE.inputs[0]
    assert abs(evaluate(third, (x,), [0.4]) - evaluate(sympy.diff(ONE_THREE_ONE.expr, x, 3), (x,), [0.4])) < 1e-12
    with pytest.raises(symnet.LimitError, match="MAX_DERIVATIVE_ORDER = 3"):
        symnet.diff(ONE_THREE_ONE, *["x0"] * 4)
    with pytest.raises(symnet.LimitError, match="taylor: order 4"):
        symnet.taylor(ONE_THREE_ONE, 0, 4)
    assert len(symnet.taylor(ONE_THREE_ONE, 0, 3)) == 4


def test_taylor_and_activation_derivatives_past_the_limit_are_refused():
    with quickly(), pytest.raises(symnet.LimitError, match="taylor: order 60 is above"):
        symnet.taylor(ONE_THREE_ONE, 0, 60)
    with quickly(), pytest.raises(symnet.LimitError, match="activation 'tanh': derivative: order 40"):
        activations.get("tanh").derivative(40)
    with quickly(), pytest.raises(symnet.LimitError, match="multi_indices: order 30"):
        symnet.program.multi_indices(2, 30)


def test_many_low_order_partials_are_bounded_too(monkeypatch):
    net = Network.from_weights([np.ones((3, 4)), np.ones((4, 1))], None, ["tanh", "linear"])
    symnet.hessian(net)  # 4 + 1 neurons, 10 partials: far below the limit
    monkeypatch.setattr(limits, "MAX_CHAIN_RULE_TERMS", 40)
    with quickly(), pytest.raises(symnet.LimitError, match=r"MAX_CHAIN_RULE_TERMS = 40\b"):
        symnet.hessian(net)
    with quickly(), pytest.raises(symnet.LimitError, match=r"taylor of order 2 in 3 inputs.*MAX_CHAIN_RULE_TERMS"):
        symnet.taylor(net, [0, 0, 0], 2)
    with quickly(), pytest.raises(symnet.LimitError, match="multi-indices of order <= 4 in 5 inputs"):
        symnet.program.multi_indices(5, 4)


def test_bell_numbers_count_the_chain_rule_terms():
    assert [limits.bell(k) for k in range(11)] == [1, 1, 2, 5, 15, 52, 203, 877, 4140, 21147, 115975]
    assert symnet.faa_di_bruno.set_partitions(6).__len__() == limits.bell(6)
    assert limits.taylor_terms(2, 2, neurons=1) == limits.chain_rule_terms([0, 1, 1, 2, 2, 2], neurons=1)


def test_the_cli_refuses_coeffs_order_60(tmp_path, capsys):
    from symnet import cli

    path = symnet.io.save(ONE_THREE_ONE, tmp_path / "net.npz")
    with quickly(5.0):
        status = cli.main(["coeffs", str(path), "--about", "0", "--order", "60"])
    err = capsys.readouterr().err
    assert status != 0 and "MAX_DERIVATIVE_ORDER" in err


# --- polynomial degree -----------------------------------------------------------------------------


def test_coefficients_of_a_huge_degree_are_refused_before_expanding():
    huge = activations.get(lambda t: t ** 10 ** 10)
    net = Network.from_weights([[[1.0]], [[1.0]]], [[0.0], [0.0]], [huge, "linear"])
    with quickly(), pytest.raises(symnet.LimitError, match=r"total degree 10000000000, above "
                                  r"symnet.limits.MAX_POLYNOMIAL_DEGREE = 256.*symnet.taylor"):
        symnet.coefficients(net)
    # the degree multiplies over the layers: square, square, square is degree 8
    deep = Network.from_weights([[[1.0]], [[1.0]], [[1.0]]], None, ["square"] * 3)
    assert symnet.coefficients(deep).numeric() == {(8,): 1.0}


def test_coefficients_with_too_many_monomials_are_refused():
    wide = Network.from_weights([np.ones((30, 1)), [[1.0]], [[1.0]]], None, ["square", "square", "square"])
    with quickly(), pytest.raises(symnet.LimitError, match=r"degree 8 in 30 inputs has up to 48,903,492 monomials"):
        symnet.coefficients(wide)


def test_polynomial_degree_reads_the_tree_without_expanding():
    assert limits.polynomial_degree((T**3 + 1) ** (10**10), T) == 3 * 10**10
    assert limits.polynomial_degree(T * (T + 1) ** 2 + 5, T) == 3
    assert limits.polynomial_degree(sympy.exp(T), T) is None
    assert limits.polynomial_degree(1 / T, T) is None


# --- locating kinks --------------------------------------------------------------------------------


@pytest.mark.parametrize("form, kinks", [
    (sympy.Abs(T - 1), (1.0,)),
    (sympy.Min(1, sympy.Max(0, T)), (0.0, 1.0)),
    (sympy.Abs(T**2 - 2), (-2**0.5, 2**0.5)),
    (sympy.Abs(sympy.Abs(T) - 1), (-1.0, 0.0, 1.0)),
    (sympy.Max(T, 2 * T - 1, 3), (2.0,)),  # t = 1 and t = 3 are ties the Max does not take
    (sympy.Piecewise((T, (T > -2) & (T < 1)), (0, True)), (-2.0, 1.0)),
    (T * sympy.Heaviside(T - sympy.Rational(1, 3)), (1 / 3,)),
    (sympy.Abs(T**2 + 1), ()),
    # strictly monotone functions of polynomials: what Keras' Dense(tanh) + ReLU() and the like compose
    (sympy.Abs(sympy.exp(T) - 2), (float(np.log(2)),)),
    (sympy.Max(0, sympy.tanh(T - 1)), (1.0,)),
    (sympy.Max(0, sympy.tanh(T) - 0.5), (float(np.arctanh(0.5)),)),
    (sympy.Max(0, symnet.sigmoid(T)), ()),
    (sympy.Max(0, T * symnet.sigmoid(T)), (0.0,)),
    (sympy.Max(0, activations.get("gelu").form), (0.0,)),
    (sympy.tanh(T), ()),
])
def test_kinks_of_traced_forms(form, kinks):
    found = activations.from_form(form).kinks
    assert found == pytest.approx(kinks, abs=1e-15)


@pytest.mark.parametrize("form, match", [
    (sympy.Abs(T ** 10 ** 10 - 2), r"polynomial of degree 10000000000.*MAX_KINK_DEGREE = 64"),
    (sympy.Abs(T ** 100 - 2), r"polynomial of degree 100"),
    (sympy.Max(0, sympy.sin(T)), r"the argument sin\(t\) of Max is neither a polynomial in t nor an invertible"),
    (sympy.Abs(sympy.tanh(T) ** 2 - sympy.Rational(1, 4)), r"neither a polynomial"),
    (sympy.floor(T), "floor jumps at infinitely many points"),
    (sympy.Max(0, sympy.Add(*[sympy.Abs(T - k) for k in range(8)]) - 20), "MAX_KINK_BRANCHES = 64"),
])
def test_kinks_that_cannot_be_located_are_refused_never_silently_absent(form, match):
    with quickly(), pytest.raises(symnet.ActivationError, match=rf"cannot locate the kinks of activation form .*{match}"):
        activations.from_form(form)


def test_kinks_can_be_given_by_hand():
    act = activations.from_form(sympy.Abs(sympy.sin(T)), "abs_sin", kinks=(0.0, float(np.pi)))
    assert act.kinks == (0.0, float(np.pi)) and not act.smooth


def test_a_file_whose_form_hides_a_huge_kink_search_is_refused_quickly(tmp_path: Path):
    net = Network.from_weights([[[1.0]]], None, activations.get(lambda t: sympy.Abs(t**2 - 2)))
    path = symnet.io.save(net, tmp_path / "net.npz")
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    meta = json.loads(arrays["symnet"].tobytes())
    meta["layers"][0]["activation"] = {"name": "t -> Abs(t**1000 - 2)", "form": "Abs(t**1000 - 2)"}
    arrays["symnet"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "evil.npz", **arrays)
    with quickly(), pytest.raises(symnet.SymnetError, match=r"cannot locate the kinks.*degree 1000"):
        symnet.load(tmp_path / "evil.npz")


def test_kinks_resolution_is_bounded():
    net = Network.from_weights([[[1.0]], [[1.0]]], None, ["tanh", "relu"])
    with quickly(), pytest.raises(symnet.LimitError, match="MAX_KINK_RESOLUTION"):
        symnet.kinks(net, domain=(-1, 1), resolution=10**12)


# --- exact work over many points --------------------------------------------------------------------


def test_exact_parameter_gradients_over_a_huge_batch_are_refused(monkeypatch):
    net = Network.from_weights([np.ones((2, 4)), np.ones((4, 1))], None, ["tanh", "linear"])  # 17 parameters
    X = np.zeros((1000, 2))
    monkeypatch.setattr(limits, "MAX_SYMBOLIC_POINT_PARAMETERS", 16_999)
    with quickly(), pytest.raises(symnet.LimitError, match=r"1000 points of a network with 17 weights.*compile_loss"):
        symnet.param_grad(net, "mse", (X, np.zeros(1000)))
    symnet.param_grad(net, "mse", (X[:999], np.zeros(999)))  # 16,983: within the limit


# --- activation forms: depth and size (issue 15) -----------------------------------------------------


def _nested(step, depth: int) -> sympy.Expr:
    form = T
    for _ in range(depth):
        form = step(form)
    return form


@pytest.mark.parametrize("step, depth", [
    (sympy.sin, 95), (lambda f: sympy.exp(-f), 40), (lambda f: (f + 1) ** 3 + 1, 40),
    (sympy.sin, limits.MAX_FORM_DEPTH + 1),
])
def test_deeply_nested_activation_forms_are_refused_before_differentiating(step, depth):
    form = _nested(step, depth)
    with quickly(0.5), pytest.raises(symnet.LimitError, match=r"activation form: its form nests more than "
                                     rf"symnet.limits.MAX_FORM_DEPTH = {limits.MAX_FORM_DEPTH} functions"):
        activations.from_form(form)


def test_wide_activation_forms_are_refused_before_differentiating():
    form = _nested(lambda f: sympy.sin(f) * sympy.cos(f), 10)  # depth 10, but some 4,000 nodes
    with quickly(0.5), pytest.raises(symnet.LimitError, match=r"more than symnet.limits.MAX_FORM_SIZE = 2,000 tree"):
        activations.from_form(form)


def test_realistic_activation_forms_are_within_the_form_limits():
    for name in activations.names():
        form = activations.get(name).form
        if form is not None:
            assert limits.form_depth(form, T) <= 3, name
    with quickly():
        activations.from_form(_nested(sympy.sin, limits.MAX_FORM_DEPTH))
        activations.get(lambda t: t * sympy.tanh(sympy.log(1 + sympy.exp(t))))  # mish
        activations.get(lambda t: t * (1 + sympy.erf(t / sympy.sqrt(2))) / 2)  # gelu
    assert limits.form_depth(sympy.exp(-T**2) + (T + 1)**2, T) == 2
    assert limits.form_depth(_nested(sympy.sin, 300), T, limit=10) == 11  # stops early


def test_chain_rule_limit_refuses_what_would_take_minutes():
    net = Network.from_weights([np.full((2, 16), 0.1), np.full((16, 16), 0.1), np.full((16, 1), 0.1)], None,
                               ["tanh", "tanh", "linear"])
    with quickly(), pytest.raises(symnet.LimitError, match=r"about 4,699,794 terms, above "
                                  r"symnet.limits.MAX_CHAIN_RULE_TERMS = 2,000,000"):
        symnet.diff(net, *["x0"] * 10)


def test_coefficients_of_nested_polynomial_compositions_are_quick():
    nested = _nested(lambda f: (f + sympy.Rational(1, 3)) ** 3, 5)  # degree 243: expanding it took 14 s
    net = Network.from_weights([[[1]], [[1]]], [[sympy.Rational(1, 2)], [0]],
                               [activations.from_form(nested, "nested"), "linear"])
    with quickly():
        coeffs = symnet.coefficients(net)
    x = net.inputs[0]
    assert max(k[0] for k in coeffs) == 243
    for point in (sympy.Rational(1, 7), sympy.Rational(-3, 2)):  # exact values agree (expanding is the slow part)
        assert coeffs.as_expr().subs(x, point) == nested.subs(T, point + sympy.Rational(1, 2))
    with quickly():
        wide = activations.from_form(_nested(lambda f: (f + sympy.Rational(1, 3)) ** 11, 2), "wide")  # 121
        symnet.coefficients(Network.from_weights([[[1]], [[1]]], None, [wide, "linear"]))
