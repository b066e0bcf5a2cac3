"""Relative accuracy of every built-in activation and its derivatives in the tails, in every path.

Each path -- the hand-written numpy rules (the back-propagation oracle's), the expression
kernels (numpy and numba backends) and the layered kernels (numpy, and numba as a first and as
a later layer) -- is compared with mpmath at 60+ digits, by RELATIVE error, at ``|z|`` up to 700.
``1 - tanh(z)**2`` was 0 for ``|z| > 19`` (exact 1.7e-17 at 20), ``1 + erf`` made ``gelu(-10)``
0 (exact -7.6e-23), ``sigmoid(z)(1 - sigmoid(z))`` lost 8 digits at 20.  The tolerance is
1e-13 relative up to order 2 and 1e-12 for orders 3 to 6 (their polynomials in ``tanh`` or
``sigmoid`` cancel a little between the terms); results below the smallest normal float
(2.2e-308) come from subnormal intermediates, which hold fewer digits, and are checked to
an absolute 2**-1034.  A result is 0 only where the exact value is below 5e-324.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy

import symnet
from symnet.activations import T, get
from symnet.check import backprop
from symnet.functions import sigmoid, softplus, tail_safe
from symnet.kernels import compile as compile_kernel

ELEMENTWISE = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "silu", "gelu", "sin", "cos",
               "exp", "square"]
TAILS = [s * v for v in (10.0, 20.0, 30.0, 38.0, 80.0, 200.0, 350.0, 500.0, 700.0) for s in (1, -1)]
LOW = [s * v for v in (1e-10, 0.3, 4.0) for s in (1, -1)]  # no root of f, f', f'' of any built-in nearby
NEAR_UNDERFLOW = 2.0**-1000  # below, intermediates such as exp(-z**2/2) may be subnormal (fewer digits)
SMALLEST_SUBNORMAL = 2.0**-1074
_forms: dict[tuple[str, int], object] = {}


def exact(name: str, k: int, z: float) -> mpmath.mpf:
    """``f^(k)(z)`` from SymPy's derivative, written with ``exp``, in mpmath with digits to spare.

    Shares nothing with the paths under test but SymPy's ``diff`` (``tail_safe`` is not used).
    """
    with mpmath.workdps(60 + int(abs(z))):  # 1 - tanh(z)**2 needs |z| digits before it has any
        x = mpmath.mpf(z)
        if name == "gelu" and k < 2:  # 1 + erf(x) cancels at any precision: Phi and the density
            return x * mpmath.ncdf(x) if k == 0 else mpmath.ncdf(x) + x * mpmath.npdf(x)
        if (name, k) not in _forms:
            form = get(name).derivative(k).rewrite(sympy.exp)
            form = form.replace(sigmoid, lambda u: 1 / (1 + sympy.exp(-u)))
            form = form.replace(softplus, lambda u: sympy.log(1 + sympy.exp(u)))
            form = form.replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)  # 0 away from the kink
            _forms[(name, k)] = sympy.lambdify(T, form, modules="mpmath")
        return mpmath.re(_forms[(name, k)](x))


def assert_accurate(name: str, k: int, zs: list[float], got: np.ndarray, path: str) -> None:
    rtol = 1e-13 if k <= 2 else 1e-12
    for z, value in zip(zs, np.asarray(got, dtype=float).ravel()):
        truth = exact(name, k, z)
        where = f"{path}: {name}^({k})({z}) = {value!r}, exact {mpmath.nstr(truth, 17)}"
        assert not np.isnan(value), where
        if abs(truth) < SMALLEST_SUBNORMAL / 2:
            assert value == 0 or abs(value) <= SMALLEST_SUBNORMAL, where
        elif abs(truth) < NEAR_UNDERFLOW:
            assert abs(value - truth) <= 2.0**-1034, where
        else:
            assert value != 0, where
            assert abs((value - truth) / truth) <= rtol, where


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_numpy_rules_keep_relative_accuracy(name):
    activation = get(name)
    rules = [activation.numpy, activation.numpy_derivative, activation.numpy_second_derivative]
    for k, rule in enumerate(rules):
        zs = TAILS + LOW
        assert_accurate(name, k, zs, rule(np.array(zs)), "numpy rule")


def test_issue_examples():
    tanh, sig, gelu = get("tanh"), get("sigmoid"), get("gelu")
    assert tanh.numpy_derivative(np.array([20.0]))[0] == pytest.approx(1.6993417021166355e-17, rel=1e-14)
    assert tanh.numpy_second_derivative(np.array([40.0]))[0] == pytest.approx(-1.443881110276332e-34, rel=1e-14)
    assert gelu.numpy(np.array([-10.0]))[0] == pytest.approx(-7.619853024160526e-23, rel=1e-14)
    assert sig.numpy_derivative(np.array([40.0]))[0] == pytest.approx(4.248354255291589e-18, rel=1e-14)


ORDERS = 6  # the layered strategy's highest order (symnet.kernels._layered.MAX_ORDER)
WORDS = ["value"] + [(0,) * k for k in range(1, ORDERS + 1)]


def _run(net: symnet.Network, zs: list[float], orders: int, **options) -> list[np.ndarray]:
    kernel = compile_kernel(net, WORDS[: orders + 1], parallel=False, **options)
    result = kernel(np.array(zs).reshape(-1, 1))
    return [result["value"]] + [result[(0,) * k] for k in range(1, orders + 1)]


PATHS = {
    "expression, numpy": (False, dict(backend="numpy", strategy="expression")),
    "expression, numba": (False, dict(backend="numba", strategy="expression")),
    "layered, numpy": (False, dict(backend="numpy", strategy="layered")),
    "layered, numba, first layer": (False, dict(backend="numba", strategy="layered")),
    "layered, numba, later layer": (True, dict(backend="numba", strategy="layered")),
}


#: Activations whose derivatives saturate or cancel in the tails run through every path; the
#: others (``exp``, ``sin``, ``relu``, ...: nothing to cancel) through the paths that compile
#: nothing.  The numba first-layer pass computes f, f', ... in the same loop rows as a later
#: layer's (only the streams differ), so tanh stands for it.  Every path prints the same
#: tail-safe SymPy forms, so the numba paths (5-10 s of compiling each) go to order 6 for
#: tanh and sigmoid and to order 2 for the others; the numpy paths go to order 6 for all.
SATURATING = ["tanh", "sigmoid", "softplus", "silu", "gelu", "elu"]
CASES = [(name, path) for name in ELEMENTWISE if name != "linear" for path in PATHS
         if "numpy" in path or (name in SATURATING and ("first" not in path or name == "tanh"))]


@pytest.mark.parametrize(("name", "path"), CASES)
def test_kernels_keep_relative_accuracy_to_order_6(name, path):
    later, options = PATHS[path]
    net = (symnet.Network.from_weights([[[1.0]], [[1.0]]], [[0.0], [0.0]], ["linear", name]) if later
           else symnet.Network.from_weights([[[1.0]]], [[0.0]], [name]))
    zs = TAILS + LOW
    orders = ORDERS if "numpy" in path or name in ("tanh", "sigmoid") else 2
    results = _run(net, zs, orders, **options)
    for k, got in enumerate(results):
        # sigmoid''(z) = -(2 sigmoid(z) - 1) ... has its root at 0; orders 3+ have roots below |z| = 5
        keep = [i for i, z in enumerate(zs) if k <= 1 or (k == 2 and abs(z) > 1e-5) or abs(z) >= 5]
        assert_accurate(name, k, [zs[i] for i in keep], np.ravel(got)[keep], path)


def test_elu_near_zero_uses_expm1_when_compiled():
    net = symnet.Network.from_weights([[[1.0]]], [[0.0]], ["elu"])
    for backend in ("numpy", "numba"):
        value = compile_kernel(net, ["value"], backend=backend, strategy="expression")(np.array([[-1e-10]])).value
        assert value[0, 0] == pytest.approx(-9.9999999995e-11, rel=1e-15)  # exp(z) - 1: -1.000000082740371e-10


def test_tail_safe_forms():
    z, a = sympy.symbols("z a", real=True)
    assert tail_safe(1 - sympy.tanh(z) ** 2) == 4 * sigmoid(2 * z) * sigmoid(-2 * z)
    assert tail_safe(1 - a**2, {a: sympy.tanh(z)}) == 4 * sigmoid(2 * z) * sigmoid(-2 * z)
    assert tail_safe(z * sigmoid(z) - z) == -z * sigmoid(-z)
    assert tail_safe(sympy.exp(z) - 1).func.__name__ == "expm1"
    assert str(tail_safe((1 + sympy.erf(z)) / 2)) == "erfc_neg(z)/2"
    for name in ("tanh", "sigmoid", "silu", "gelu", "softplus"):  # same values, where floats agree
        for k in range(4):
            form = get(name).derivative(k)
            rewritten = tail_safe(form)
            for point in (sympy.Rational(-13, 10), sympy.Rational(2, 5), sympy.Rational(5, 2)):
                difference = (rewritten.subs(T, point) - form.subs(T, point)).evalf(40)
                assert abs(difference) <= 1e-30, (name, k, point)


# --- w = 1e300: a zero derivative factor first, then the weights ---------------------------------


def _hessians(net: symnet.Network, X: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for label, options in [("expression, numpy", dict(backend="numpy", strategy="expression")),
                           ("expression, numba", dict(backend="numba", strategy="expression")),
                           ("layered, numpy", dict(backend="numpy", strategy="layered")),
                           ("layered, numba", dict(backend="numba", strategy="layered", schedule="forward"))]:
        result = compile_kernel(net, ["hessian", "laplacian"], parallel=False, **options)(X)
        out[label] = result.hessian
        out[label + ", laplacian"] = result.laplacian
    return out


def test_huge_weights_give_zero_not_nan_where_the_second_derivative_vanishes():
    # f''(5e299) = 0 exactly, and (f'' w) w = 0; f'' (w w) = 0 * inf was NaN.  At x = 1e-300, z = 1
    # and the exact Hessian f''(1) * 1e600 overflows: -inf is right there.
    net = symnet.Network.from_weights([[[1e300]], [[1.0]]], [[0.0], [0.0]], ["tanh", "linear"])
    X = np.array([[0.5], [-0.5], [1e-300]])
    for label, hessian in _hessians(net, X).items():
        assert list(np.ravel(hessian)) == [0.0, 0.0, -np.inf], label
    with np.errstate(over="ignore"):  # the oracle's own f''(1) * 1e300 * 1e300 overflows, rightly
        assert list(backprop(net, X, hessian=True).hessian.ravel()) == [0.0, 0.0, -np.inf]


def test_huge_weights_in_every_schedule():
    net = symnet.Network.from_weights([[[1e300, 1.0], [1.0, 1e300]], [[1.0, 1.0], [1.0, 1.0]], [[1.0], [1.0]]],
                                      None, ["tanh", "tanh", "linear"])
    X = np.array([[0.5, 0.5], [-0.25, 0.5]])
    expected = backprop(net, X, hessian=True).hessian
    assert np.isfinite(expected).all()
    for label, hessian in _hessians(net, X).items():
        if "laplacian" not in label:
            np.testing.assert_array_equal(hessian, expected, err_msg=label)
    adjoint = compile_kernel(net, ["hessian"], backend="numba", strategy="layered", schedule="forward-adjoint",
                             parallel=False)(X)
    np.testing.assert_array_equal(adjoint.hessian, expected)
    higher = compile_kernel(net, [(0, 0, 1)], backend="numba", strategy="layered", parallel=False)(X)
    assert np.isfinite(higher[(0, 0, 1)]).all()


def test_user_forms_get_tail_safe_numeric_rules():
    # lambdified from the form (the built-ins' rules are written by hand)
    traced = get(lambda x: 3 * sympy.tanh(x))
    assert traced.numpy_derivative(np.array([20.0]))[0] == pytest.approx(3 * 1.6993417021166355e-17, rel=1e-14)
    assert traced.numpy_second_derivative(np.array([40.0]))[0] == pytest.approx(3 * -1.443881110276332e-34, rel=1e-14)
    assert get(lambda x: x * (1 + sympy.erf(x / sympy.sqrt(2)))).numpy(np.array([-10.0]))[0] == pytest.approx(
        -2 * 7.619853024160526e-23, rel=1e-13)
    assert get(lambda x: 2 * (sympy.exp(x) - 1)).numpy(np.array([1e-10]))[0] == pytest.approx(2.0000000001e-10,
                                                                                             rel=1e-15)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_exported_python_keeps_the_tails(name):
    """symnet.io.export prints the kernels' tail-safe forms: its Python is as accurate as they are."""
    net = symnet.Network.from_weights([[[1.0]], [[1.0]]], [[0.0], [0.0]], [name, "linear"])
    namespace: dict = {}
    exec(symnet.io.export(net, "python", derivatives=("value", "jacobian", "hessian")), namespace)  # noqa: S102
    zs = [z for z in TAILS + LOW if not (name in ("exp",) and z > 700)]
    results = [namespace["network"](z) for z in zs]
    for k, pick in enumerate((lambda r: r[0], lambda r: r[1][0], lambda r: r[2][0][0])):
        keep = [i for i, z in enumerate(zs) if k <= 1 or abs(z) > 1e-5]  # sigmoid'' has its root at 0
        assert_accurate(name, k, [zs[i] for i in keep], np.array([pick(results[i]) for i in keep]), "export python")


@pytest.mark.parametrize("alpha", [0.2, 1e10, 1e17])
def test_leaky_relu_with_a_large_slope_does_not_cancel(alpha):
    """Its form is Max(0, t) + a*Min(0, t): a*t + (1 - a)*Max(0, t) gave 0 for t > 0 at a = 1e17."""
    net = symnet.Network.from_weights([[[1.0]]], [[0.0]], [f"leaky_relu(alpha={alpha!r})"])
    X = np.array([[1.5], [0.3], [-0.3]])
    for strategy in ("expression", "layered"):
        for backend in ("numba", "numpy"):
            result = compile_kernel(net, ("value", "jacobian"), strategy=strategy, backend=backend, parallel=False)(X)
            np.testing.assert_array_equal(result.value.ravel(), [1.5, 0.3, -0.3 * alpha], err_msg=f"{strategy} {backend}")
            np.testing.assert_array_equal(result.jacobian.ravel(), [1.0, 1.0, alpha], err_msg=f"{strategy} {backend}")


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if n != "linear"])
def test_the_compiled_derivatives_pass_keeps_relative_accuracy(name):
    """The numba pass of f, f', f'', f''' that the loss, Sobolev and jet kernels call (symnet.kernels._layered)."""
    from symnet.kernels._layered import derivatives_pass

    zs = np.array(TAILS + LOW)
    apply, slots = derivatives_pass(get(name), 4)
    F = np.empty((4, len(zs)))
    apply(zs.copy(), *F, np.empty((slots, len(zs))))
    for k in range(4):
        # sigmoid''(z) = -(2 sigmoid(z) - 1) ... has its root at 0; orders 3+ have roots below |z| = 5
        keep = [i for i, z in enumerate(zs) if k <= 1 or (k == 2 and abs(z) > 1e-5) or abs(z) >= 5]
        assert_accurate(name, k, list(zs[keep]), F[k][keep], "compiled derivatives pass")


def test_the_compiled_derivatives_pass_takes_nan_infinities_and_refuses_strided_arrays():
    from symnet.kernels._layered import derivatives_pass

    for name in ("tanh", "sigmoid", "gelu"):
        numba_pass, numpy_pass = derivatives_pass(get(name), 3), derivatives_pass(get(name), 3, "numpy")
        Z = np.array([[np.nan, np.inf], [-np.inf, 0.0]])
        got, want = np.empty((3, 2, 2)), np.empty((3, 2, 2))
        with np.errstate(all="ignore"):
            numba_pass[0](Z, *got, np.empty((numba_pass[1], 2, 2)))
            numpy_pass[0](Z.copy(), *want, np.empty((numpy_pass[1], 2, 2)))
        np.testing.assert_array_equal(got, want, err_msg=name)
        with pytest.raises(ValueError, match="C-contiguous"):
            numba_pass[0](np.zeros((2, 4))[:, ::2], *got, None)


def test_a_function_numba_cannot_compile_is_said_and_runs_as_numpy():
    from symnet.activations import from_form
    from symnet.kernels import CompiledPassWarning
    from symnet.kernels._layered import derivatives_pass

    activation = from_form(sympy.besselj(0, T))
    with pytest.warns(CompiledPassWarning, match="besselj"):
        apply, slots = derivatives_pass(activation, 3)
    Z = np.array([0.5, 2.0, -1.5])
    got = np.empty((3, 3))
    apply(Z, *got, np.empty((slots, 3)))
    np.testing.assert_allclose(got[1], [-float(sympy.besselj(1, z)) for z in Z], rtol=1e-14)
    net = symnet.Network.from_weights([[[1.0, -0.5]], [[1.0], [2.0]]], [[0.1, 0.2], [0.0]], [activation, "linear"])
    X, Y = np.array([[0.3], [1.2]]), np.array([[0.5], [-0.5]])
    with pytest.warns(CompiledPassWarning):
        loss, grads = symnet.compile_loss(net, "mse")(X, Y)
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for pair in grads for g in pair)


def test_integers_beyond_int64_in_a_form_compile_with_numba():
    """gelu_tanh's fourth derivative has coefficients such as -53658000000000000000, which numba
    cannot type as int64 literals: they are printed as floats, so the derivatives pass of an
    order-4 jet (compile_vjp's biharmonic) compiles, and so do numba kernels of order 4."""
    import warnings

    from symnet.kernels._layered import derivatives_pass

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no CompiledPassWarning: the numba pass itself
        numba_pass = derivatives_pass(get("gelu_tanh"), 5)
    numpy_pass = derivatives_pass(get("gelu_tanh"), 5, "numpy")
    Z = np.array([-30.0, -3.0, -0.4, 0.0, 0.7, 2.5, 40.0])
    got, want = np.empty((5, 7)), np.empty((5, 7))
    numba_pass[0](Z, *got, np.empty((numba_pass[1], 7)))
    numpy_pass[0](Z.copy(), *want, np.empty((numpy_pass[1], 7)))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
    net = symnet.Network.from_weights([[[1.0, -0.5]], [[1.0], [0.5]]], [[0.0, 0.0], [0.0]], ["gelu_tanh", "linear"])
    X = np.array([[0.3], [1.2], [-3.0]])
    want4 = compile_kernel(net, ("value", (0, 0, 0, 0)), strategy="expression", backend="numpy")(X)
    got4 = compile_kernel(net, ("value", (0, 0, 0, 0)), strategy="expression", backend="numba", parallel=False)(X)
    np.testing.assert_allclose(got4.partial_0_0_0_0, want4.partial_0_0_0_0, rtol=1e-12)


def test_a_form_with_a_free_symbol_is_refused_by_every_pass():
    """A symbol of the form named like a pass's own input (z) would be read as it: refused, named."""
    from symnet.activations import from_form
    from symnet.errors import ActivationError
    from symnet.kernels._layered import derivatives_pass

    activation = from_form(T * sympy.Symbol("z", real=True) + T)
    for backend in ("numba", "numpy"):
        with pytest.raises(ActivationError, match="symbols other than t \\(z\\)"):
            derivatives_pass(activation, 3, backend)
    net = symnet.Network.from_weights([[[1.0]], [[1.0]]], [[0.0], [0.0]], [activation, "linear"])
    with pytest.raises(ActivationError, match="symbols other than t"):
        compile_kernel(net, ["value", "hessian"], strategy="layered", backend="numba")
