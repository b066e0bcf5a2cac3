"""symnet.kernels._vecmath: tanh, exp and the sigmoids against libm and mpmath, to a few ulp, with IEEE special values."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symnet.kernels import _vecmath

ULP = 4  # measured at most 3 over 1.6 million points; numpy's SIMD tanh is at 2-3 on the same points


@numba.njit(error_model="numpy", fastmath={"contract"})
def _tanh_loop(z, out):  # the way the layered passes call it: inside a loop LLVM vectorises
    for p in range(z.shape[0]):
        out[p] = _vecmath.tanh(z[p])


@numba.njit(error_model="numpy", fastmath={"contract"})
def _exp_loop(x, out):
    for p in range(x.shape[0]):
        out[p] = _vecmath.exp_nonpositive(x[p])


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Distance in units of the last place of ``want`` (subnormal spacing below the normal range)."""
    return np.abs(got - want) / np.spacing(np.abs(want))


def _run(loop, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    loop(x, out)
    return out


@pytest.mark.parametrize("scale", [1e-300, 1e-8, 1e-3, 0.1, 1.0, 3.0, 10.0, 30.0, 1e3])
def test_tanh_within_ulps_of_libm(scale):
    z = np.random.default_rng(1).normal(size=20_000) * scale
    want = np.array([math.tanh(v) for v in z])
    assert _ulps(_run(_tanh_loop, z), want).max() <= ULP


@pytest.mark.parametrize("low, high", [(-1e-8, 0.0), (-1.0, 0.0), (-40.0, -1.0), (-700.0, -40.0),
                                       (-708.5, -700.0), (-745.2, -708.4)])
def test_exp_within_ulps_of_libm(low, high):
    x = np.random.default_rng(2).uniform(low, high, 20_000)
    want = np.array([math.exp(v) for v in x])
    got = _run(_exp_loop, x)
    normal = want >= np.finfo(float).tiny
    assert _ulps(got[normal], want[normal]).max(initial=0.0) <= ULP
    # subnormal results carry fewer bits: absolute error within a few of their spacing
    assert np.all(np.abs(got[~normal] - want[~normal]) <= ULP * 5e-324)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_tanh_any_float(z):
    want = math.tanh(z)
    got = _vecmath.tanh(z)
    assert abs(got - want) <= ULP * np.spacing(abs(want)) and math.copysign(1, got) == math.copysign(1, want)


@settings(max_examples=300, deadline=None)
@given(st.floats(max_value=0.0, allow_nan=False, width=64))
def test_exp_any_nonpositive_float(x):
    want = math.exp(x)
    assert abs(_vecmath.exp_nonpositive(x) - want) <= ULP * np.spacing(want)


def test_special_values():
    z = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 800.0, -800.0, 19.0, -19.1, 5e-324, -1e-310])
    assert np.array_equal(_run(_tanh_loop, z), np.tanh(z), equal_nan=True)
    assert np.array_equal(np.signbit(_run(_tanh_loop, z)), np.signbit(np.tanh(z)))
    x = np.array([0.0, -0.0, -np.inf, np.nan, -746.0, -1e4, -5e-324])
    assert np.array_equal(_run(_exp_loop, x), np.exp(x), equal_nan=True)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, width=64))
def test_tanh_parts_any_float(z):
    """tanh within ULP of libm; sigmoid(±2|z|) = (1 ± |tanh z|)/2 to a few ulp of mpmath, down to 5e-324."""
    import mpmath

    t, high, low = _vecmath.tanh_parts(z)
    want = math.tanh(z)
    assert abs(t - want) <= ULP * np.spacing(abs(want)) and math.copysign(1, t) == math.copysign(1, want)
    with mpmath.workdps(60):
        x = 2 * abs(mpmath.mpf(z))
        exact_low = 1 / (1 + mpmath.exp(x)) if z != math.inf else mpmath.mpf(0)
        exact_high = 1 - exact_low
    for got, exact in ((high, exact_high), (low, exact_low)):
        assert abs(got - exact) <= ULP * np.spacing(float(exact)) + 2**-1074, (z, got, exact)


def test_tanh_parts_in_the_tails():
    # 4 sigmoid(2z) sigmoid(-2z) = tanh'(z): 1 - tanh(z)**2 is 0 from |z| = 19.1 on
    for z, slope in ((20.0, 1.6993417021166355e-17), (-40.0, 7.219405551381661e-35), (300.0, 1.0601586212017243e-260)):
        t, high, low = _vecmath.tanh_parts(z)
        assert abs(t) == 1.0 and 4 * high * low == pytest.approx(slope, rel=4e-16)
    assert _vecmath.tanh_parts(800.0) == (1.0, 1.0, 0.0)
    assert all(math.isnan(v) for v in _vecmath.tanh_parts(math.nan))


@numba.njit(error_model="numpy", fastmath={"contract"})
def _exp_any_loop(x, out):  # the way the expression kernels' block loops call it
    for p in range(x.shape[0]):
        out[p] = _vecmath.exp(x[p])


@pytest.mark.parametrize("low, high", [(-1.0, 1.0), (1.0, 40.0), (40.0, 700.0), (700.0, 709.78),
                                       (-745.2, -700.0)])
def test_exp_any_sign_within_ulps_of_libm(low, high):
    x = np.random.default_rng(3).uniform(low, high, 20_000)
    want = np.array([math.exp(v) for v in x])
    got = _run(_exp_any_loop, x)
    normal = want >= np.finfo(float).tiny
    assert _ulps(got[normal], want[normal]).max(initial=0.0) <= ULP
    assert np.all(np.abs(got[~normal] - want[~normal]) <= ULP * 5e-324)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, max_value=709.78, width=64))
def test_exp_any_float(x):
    want = math.exp(x)
    assert abs(_vecmath.exp(x) - want) <= ULP * np.spacing(want)


def test_exp_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 709.79, 710.0, 1e4, -746.0, -1e4, 5e-324])
    with np.errstate(over="ignore"):
        want = np.exp(x)
    assert np.array_equal(_run(_exp_any_loop, x), want, equal_nan=True)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, width=64))
def test_sigmoid_and_its_pair_any_float(x):
    """sigmoid(x) and sigmoid(x) sigmoid(-x) to a few ulp of mpmath, in both tails down to 5e-324."""
    import mpmath

    with mpmath.workdps(60):
        e = mpmath.exp(-abs(mpmath.mpf(x)))
        exact = 1 / (1 + e) if x >= 0 else e / (1 + e)
        exact_pair = e / (1 + e) ** 2
    for got, want in ((_vecmath.sigmoid(x), exact), (_vecmath.sigmoid_pair(x), exact_pair)):
        assert abs(got - want) <= ULP * np.spacing(float(want)) + 2**-1074, (x, got, want)


def test_sigmoid_special_values():
    assert math.isnan(_vecmath.sigmoid(math.nan)) and math.isnan(_vecmath.sigmoid_pair(math.nan))
    assert (_vecmath.sigmoid(-math.inf), _vecmath.sigmoid(math.inf), _vecmath.sigmoid_pair(math.inf)) == (0.0, 1.0, 0.0)
    assert _vecmath.sigmoid_pair(-40.0) == pytest.approx(4.248354255291589e-18, rel=4e-16)  # 1 - s is 0 there


@settings(max_examples=300, deadline=None)
@given(st.floats(width=64))
def test_sigmoid_both_is_the_two_sigmoids_from_one_exp(x):
    """(sigmoid(x), sigmoid(-x)) bit for bit as two sigmoid calls give them, NaN and infinities too."""
    both = _vecmath.sigmoid_both(x)
    want = (_vecmath.sigmoid(x), _vecmath.sigmoid(-x))
    assert np.array_equal(np.array(both), np.array(want), equal_nan=True), (x, both, want)


@settings(max_examples=300, deadline=None)
@given(st.floats(width=64))
def test_tanh_with_pair_any_float(x):
    """tanh as tanh_parts gives it, and sigmoid(2x) sigmoid(-2x) to a few ulp of mpmath down to 5e-324."""
    import mpmath

    t, pair = _vecmath.tanh_with_pair(x)
    if math.isnan(x):
        assert math.isnan(t) and math.isnan(pair)
        return
    assert t == _vecmath.tanh_parts(x)[0]
    with mpmath.workdps(60):
        e = mpmath.exp(-2 * abs(mpmath.mpf(x))) if abs(x) != math.inf else mpmath.mpf(0)
        exact = float(e / (1 + e) ** 2)
    assert abs(pair - exact) <= ULP * np.spacing(exact) + 2**-1074, (x, pair, exact)
    assert 4 * _vecmath.tanh_with_pair(20.0)[1] == pytest.approx(1.6993417021166355e-17, rel=4e-16)


@numba.njit(error_model="numpy", fastmath={"contract"})
def _sin_cos_loop(x, s, c):  # as the layered passes call it
    for p in range(x.shape[0]):
        s[p], c[p] = _vecmath.sin_cos(x[p])


def _exact_sin_cos(x: float) -> tuple[float, float]:
    import mpmath

    with mpmath.workdps(80):  # |x| <= 2**19: 80 digits leave 60 after the reduction
        return float(mpmath.sin(mpmath.mpf(x))), float(mpmath.cos(mpmath.mpf(x)))


SIN_COS_ULP = 1.5  # measured at most 1 (a correctly rounded result is within 0.5)


@pytest.mark.parametrize("scale", [1e-8, 0.5, 3.0, 100.0, 1e4, _vecmath.SIN_COS_LIMIT])
def test_sin_cos_within_an_ulp_of_mpmath_in_a_vectorised_loop(scale):
    x = np.random.default_rng(3).uniform(-scale, scale, 2_000)
    s, c = np.empty_like(x), np.empty_like(x)
    _sin_cos_loop(x, s, c)
    want = np.array([_exact_sin_cos(v) for v in x])
    assert _ulps(s, want[:, 0]).max() <= SIN_COS_ULP
    assert _ulps(c, want[:, 1]).max() <= SIN_COS_ULP


def test_sin_cos_next_to_multiples_of_half_pi_keeps_relative_accuracy():
    """sin(n pi/2) for the doubles nearest n pi/2 is ~1e-16 n: a reduction carrying pi/2 to 53 bits loses it all."""
    import mpmath

    xs = []
    for n in (1, 2, 3, 4, 7, 100, 1001, 12345, 333331):
        with mpmath.workdps(80):
            nearest = float(mpmath.mpf(n) * mpmath.pi / 2)
        xs += [nearest, np.nextafter(nearest, 0.0), np.nextafter(nearest, np.inf)]
    for x in xs:
        want = _exact_sin_cos(x)
        got = _vecmath.sin_cos(x)
        for g, w in zip(got, want):
            assert abs(g - w) <= SIN_COS_ULP * np.spacing(abs(w)), (x, got, want)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-_vecmath.SIN_COS_LIMIT, max_value=_vecmath.SIN_COS_LIMIT))
def test_sin_cos_any_float_within_the_limit(x):
    want = _exact_sin_cos(x)
    for got, w in zip(_vecmath.sin_cos(x), want):
        assert abs(got - w) <= SIN_COS_ULP * np.spacing(abs(w)) + 2**-1074, (x, got, w)


@settings(max_examples=200, deadline=None)
@given(st.floats(width=64))
def test_sin_cos_wide_any_float(x):
    """libm's sin and cos, NaN for NaN and infinities; within the limit an ulp from sin_cos's."""
    got = _vecmath.sin_cos_wide(x)
    if math.isfinite(x):
        assert got == (math.sin(x), math.cos(x))
    else:
        assert math.isnan(got[0]) and math.isnan(got[1])
    if abs(x) <= _vecmath.SIN_COS_LIMIT:
        for wide, narrow in zip(got, _vecmath.sin_cos(x)):
            assert abs(wide - narrow) <= 2 * np.spacing(abs(wide)) + 2**-1074, (x, got)


def test_sin_cos_special_values():
    assert _vecmath.sin_cos(0.0) == (0.0, 1.0) and math.copysign(1.0, _vecmath.sin_cos(-0.0)[0]) == -1.0
    assert _vecmath.sin_cos(5e-324) == (5e-324, 1.0)
