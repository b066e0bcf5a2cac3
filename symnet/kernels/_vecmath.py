"""``tanh``, ``exp``, the sigmoids and ``sin``/``cos`` as numba code that LLVM vectorises.

numba calls libm one element at a time (``math.tanh`` ran many times slower per element
than ``numpy.tanh`` on this project's 2-core machine), so the layered passes used to compute
transcendental functions with numpy's SIMD ufuncs into scratch arrays and read them back.  These
functions are plain arithmetic -- a Cody-Waite range reduction ``x = k ln 2 + r``, a
degree-13 Taylor polynomial of ``expm1(r)`` on ``|r| <= ln(2)/2`` (truncation error below
1e-17) and ``2**k`` written into the exponent bits -- so LLVM vectorises the loop that calls
them (AVX-512 here: ``tanh`` faster per element than ``numpy.tanh``, no scratch array, no
second pass; the figures are in benchmarks/RESULTS.md, "Measurements behind design choices
in the code").

Accuracy, against glibc's correctly rounded-or-nearly ``math.tanh``/``math.exp``: at most
3 ulp (numpy's SIMD ``tanh`` is at 2-3 ulp on the same points); ``tests/test_vecmath.py``
checks 4 ulp over the whole range.  NaN, ``±inf``, ``±0`` and subnormal results behave as in
libm.  No fast-math flag other than ``contract`` (fused multiply-add) is used, so NaN and
infinities keep their IEEE meaning.  :func:`sin_cos` is within 1 ulp of mpmath for
``|x| <= SIN_COS_LIMIT`` (tested), next to multiples of ``pi/2`` too; beyond it the passes call
libm (:func:`sin_cos_wide`).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

__all__ = ["exp", "exp_call", "exp_nonpositive", "sigmoid", "sigmoid_both", "sigmoid_both_call", "sigmoid_call",
           "sigmoid_pair", "sigmoid_pair_call", "sin_cos", "sin_cos_wide", "tanh", "tanh_call", "tanh_parts",
           "tanh_with_pair", "tanh_with_pair_call"]

_LN2_HI = 6.93147180369123816490e-01  # ln 2 to 32 bits: k * _LN2_HI is exact for |k| < 2**20
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
#: Not cached by numba (``cache=False``): these functions are inlined (``inline="always"``) into
#: the generated passes that call them, whose compiled code symnet's kernel cache keeps
#: (:mod:`._cache`), so they are compiled only with a pass that is not cached yet.  With
#: ``cache=True`` numba would write into the installed package's ``__pycache__`` (or fail to
#: import this module where neither it nor ``~/.cache`` can be written).
_FLAGS = dict(inline="always", error_model="numpy", fastmath={"contract"}, nogil=True, cache=False)


@intrinsic
def _bits_as_float(typingctx, bits):  # type: ignore[no-untyped-def]
    """The float64 whose IEEE bits are the int64 ``bits`` (a register move, not a memory round trip)."""
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@numba.njit(**_FLAGS)
def _two_to(k: float) -> float:
    """``2**k`` for an integral ``k`` in ``[-1022, 1023]``."""
    return _bits_as_float((np.int64(k) + 1023) << 52)


@numba.njit(**_FLAGS)
def _reduced(x: float) -> tuple[float, float]:
    """``(k, expm1(r))`` with ``x = k ln 2 + r``, ``|r| <= ln(2)/2``; ``x`` finite and ``|x| < 2**20``."""
    k = math.floor(x * _INV_LN2 + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 87178291200.0  # 1/14!, then Horner down to 1/2!
    p = p * r + 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    return k, r + r * r * p


@numba.njit(**_FLAGS)
def exp_nonpositive(x: float) -> float:
    """``exp(x)`` for ``x <= 0`` (positive ``x`` gives ``1.0``); subnormal results and ``exp(-inf) = 0``.

    >>> import numpy as np
    >>> from symnet.kernels._vecmath import exp_nonpositive
    >>> bool(abs(exp_nonpositive(-1.0) - np.exp(-1.0)) <= 4 * np.spacing(np.exp(-1.0)))
    True
    """
    clamped = min(max(x, -746.0), 0.0)  # exp(-746) rounds to 0; NaN is restored below
    k, em = _reduced(clamped)
    half = math.floor(k * 0.5)  # 2**k as two factors: k reaches -1076, below the normal range
    result = ((em + 1.0) * _two_to(half)) * _two_to(k - half)
    return result if x == x else x


@numba.njit(**_FLAGS)
def exp(x: float) -> float:
    """``exp(x)`` for any ``x``: ``inf`` past 709.78, subnormal results and 0 below -708.

    >>> import math
    >>> from symnet.kernels._vecmath import exp
    >>> bool(abs(exp(1.5) - math.exp(1.5)) <= 4 * math.ulp(math.exp(1.5))), exp(710.0), exp(-800.0)
    (True, inf, 0.0)
    """
    clamped = min(max(x, -746.0), 710.0)  # exp(-746) rounds to 0 and exp(710) to inf; NaN restored below
    k, em = _reduced(clamped)
    half = math.floor(k * 0.5)  # 2**k as two factors: k spans -1076 to 1024, past the normal exponents
    result = ((em + 1.0) * _two_to(half)) * _two_to(k - half)
    return result if x == x else x


@numba.njit(**_FLAGS)
def sigmoid(x: float) -> float:
    """``1/(1 + exp(-x))`` from ``e = exp(-|x|)``, which never overflows: full relative accuracy in both tails.

    >>> from symnet.kernels._vecmath import sigmoid
    >>> sigmoid(0.0), sigmoid(-800.0), sigmoid(40.0)
    (0.5, 0.0, 1.0)
    """
    e = exp_nonpositive(-abs(x))
    r = 1.0 / (1.0 + e)
    return r if x >= 0 else e * r  # NaN: e is NaN, and so is e * r


@numba.njit(**_FLAGS)
def sigmoid_pair(x: float) -> float:
    """``sigmoid(x) * sigmoid(-x) = e / (1 + e)**2``, ``e = exp(-|x|)``: sigmoid' to full relative accuracy.

    >>> from symnet.kernels._vecmath import sigmoid_pair
    >>> sigmoid_pair(0.0), 0.0 < sigmoid_pair(700.0) < 1e-300
    (0.25, True)
    """
    e = exp_nonpositive(-abs(x))
    return e / ((1.0 + e) * (1.0 + e))


@numba.njit(**_FLAGS)
def sigmoid_both(x: float) -> tuple[float, float]:
    """``(sigmoid(x), sigmoid(-x))`` from one ``e = exp(-|x|)``: the values :func:`sigmoid` gives, bit for bit.

    A unit's sigmoid and its derivatives ``s (1 - s)`` need both; each from its own
    :func:`sigmoid` costs two ``exp``.

    >>> from symnet.kernels._vecmath import sigmoid, sigmoid_both
    >>> sigmoid_both(40.0) == (sigmoid(40.0), sigmoid(-40.0)), sigmoid_both(-800.0)
    (True, (0.0, 1.0))
    """
    e = exp_nonpositive(-abs(x))
    r = 1.0 / (1.0 + e)
    if x >= 0:
        return r, e * r
    return e * r, r  # NaN: e is NaN, and so are both


@numba.njit(**_FLAGS)
def tanh(z: float) -> float:
    """``tanh(z)`` as ``-e / (2 + e)`` with ``e = expm1(-2|z|)`` (no cancellation near 0), sign of ``z``.

    >>> import math
    >>> from symnet.kernels._vecmath import tanh
    >>> tanh(0.5) == math.tanh(0.5), tanh(-800.0), tanh(-0.0)
    (True, -1.0, -0.0)
    """
    x = max(-2.0 * abs(z), -45.0)  # tanh(|z| >= 19.1) rounds to 1; NaN is restored below
    k, em = _reduced(x)
    scale = _two_to(k)
    e = scale * em + (scale - 1.0)  # expm1(x) = 2**k expm1(r) + 2**k - 1
    t = math.copysign(-e / (2.0 + e), z)
    return t if z == z else z


@numba.njit(**_FLAGS)
def tanh_parts(z: float) -> tuple[float, float, float]:
    """``(tanh(z), (1 + |tanh(z)|)/2, (1 - |tanh(z)|)/2)``, the last two to full relative accuracy.

    They are ``sigmoid(2|z|) = 1/(1 + e)`` and ``sigmoid(-2|z|) = e/(1 + e)`` with
    ``e = exp(-2|z|)``, from ``tanh``'s own range reduction and division, so
    ``tanh' = 4 sigmoid(2z) sigmoid(-2z)`` costs a few multiplications and no ``exp`` of its
    own, and keeps its relative accuracy where ``1 - tanh(z)**2`` is 0 (``|z| > 19``) down to
    the smallest subnormal (``|z| = 372``).  ``tanh`` is ``-expm1(-2|z|) / (1 + e)`` as in
    :func:`tanh`, its quotient formed from the shared reciprocal and one Newton step.

    >>> from symnet.kernels._vecmath import tanh_parts
    >>> t, high, low = tanh_parts(20.0)
    >>> t, 4 * high * low
    (1.0, 1.6993417021166355e-17)
    """
    x = max(-2.0 * abs(z), -746.0)  # exp(-746) rounds to 0; NaN is restored below
    k, em = _reduced(x)
    big = _two_to(k + 54.0)  # 2**(k + 54) is normal for k >= -1076; 2**k itself may be subnormal
    scale = big * _TWO_TO_MINUS_54
    m = scale * em + (scale - 1.0)  # expm1(x): -1 once 2**k underflows
    d = 2.0 + m  # 1 + e
    r = 1.0 / d
    q = -m * r
    q = q + (-m - q * d) * r  # one Newton step: as accurate as -m / d, without a second division
    e = ((em + 1.0) * big) * _TWO_TO_MINUS_54  # exp(x), rounded once into the subnormal range
    t = math.copysign(q, z)
    number = z == z  # selects, not an early return for NaN: a loop calling this stays vectorised
    return (t if number else z), (r if number else z), (e * r if number else z)


_TWO_TO_MINUS_54 = 2.0**-54


@numba.njit(**_FLAGS)
def tanh_with_pair(z: float) -> tuple[float, float]:
    """``(tanh(z), sigmoid(2z) sigmoid(-2z))`` from one ``exp`` (:func:`tanh_parts`): ``tanh' = 4 x`` the second.

    >>> from symnet.kernels._vecmath import sigmoid_pair, tanh_with_pair
    >>> t, pair = tanh_with_pair(20.0)
    >>> t, abs(pair - sigmoid_pair(40.0)) <= 2e-16 * pair
    (1.0, True)
    """
    t, high, low = tanh_parts(z)
    return t, high * low


# pi/2 in three 33-bit parts and the rest (fdlibm's __ieee754_rem_pio2): n * part is exact for |n| < 2**20
_PIO2_1 = 1.57079632673412561417e+00
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_3 = 2.02226624871116645580e-21
_PIO2_3T = 8.47842766036889956997e-32
_INV_PIO2 = 6.36619772367581382433e-01
#: :func:`sin_cos` reduces ``|x| <= SIN_COS_LIMIT`` exactly enough for 1 ulp; a point with a larger ``|x|``
#: (or NaN, inf) among its units takes libm's for all of them (:func:`sin_cos_wide`) in the generated passes.
SIN_COS_LIMIT = 2.0**19


@numba.njit(**_FLAGS)
def _two_diff(a: float, b: float) -> tuple[float, float]:
    """``(s, e)`` with ``s = fl(a - b)`` and ``s + e = a - b`` exactly (Knuth's TwoSum)."""
    s = a - b
    v = s - a
    return s, (a - (s - v)) - (b + v)


@numba.njit(**_FLAGS)
def sin_cos(x: float) -> tuple[float, float]:
    """``(sin(x), cos(x))`` for ``|x| <= SIN_COS_LIMIT``, from one range reduction, as arithmetic LLVM vectorises.

    ``x = n pi/2 + r`` with ``r`` carried as a double-double (pi/2 to 152 bits, the
    differences exact by TwoSum), so ``r`` keeps its relative accuracy next to a multiple
    of ``pi/2``; then fdlibm's (musl's) kernels on ``|r| <= pi/4`` and the quadrant as
    selects.  Outside the limit the result is not meaningful: callers test ``|x|`` first.

    >>> import math
    >>> from symnet.kernels._vecmath import sin_cos
    >>> s, c = sin_cos(1e5)
    >>> abs(s - math.sin(1e5)) <= math.ulp(1.0), sin_cos(-0.0)
    (True, (-0.0, 1.0))
    """
    n = math.floor(x * _INV_PIO2 + 0.5)
    n = min(max(n, -2.0**20), 2.0**20)  # NaN and huge x: any quadrant (the result is not used)
    y = x - n * _PIO2_1  # exact
    r1, e1 = _two_diff(y, n * _PIO2_2)
    r2, e2 = _two_diff(r1, n * _PIO2_3)
    lo = (e1 + e2) - n * _PIO2_3T
    r = r2 + lo
    rlo = (r2 - r) + lo
    z = r * r
    v = z * r
    p = 8.33333333332248946124e-03 + z * (-1.98412698298579493134e-04 + z * (
        2.75573137070700676789e-06 + z * (-2.50507602534068634195e-08 + z * 1.58969099521155010221e-10)))
    s = r - ((z * (0.5 * rlo - v * p) - rlo) - v * -1.66666666666666324348e-01)
    w = z * z
    q = z * (4.16666666666666019037e-02 + z * (-1.38888888888741095749e-03 + z * 2.48015872894767294178e-05)) \
        + w * w * (-2.75573143513906633035e-07 + z * (2.08757232129817482790e-09 + z * -1.13596475577881948265e-11))
    hz = 0.5 * z
    one_minus = 1.0 - hz
    c = one_minus + (((1.0 - one_minus) - hz) + (z * q - r * rlo))
    quadrant = np.int64(n) & 3
    sin_r = c if quadrant & 1 else s
    cos_r = s if quadrant & 1 else c
    sin_x = -sin_r if quadrant & 2 else sin_r
    cos_x = -cos_r if (quadrant + 1) & 2 else cos_r
    return (sin_x if x != 0.0 else x), cos_x  # sin(-0.0) = -0.0


@numba.njit(**_FLAGS)
def sin_cos_wide(x: float) -> tuple[float, float]:
    """``(sin(x), cos(x))`` for any ``x``, from libm: the passes' loop for a point with an argument past
    :data:`SIN_COS_LIMIT` (a second inlined :func:`sin_cos` there would double the pass's compile time).

    >>> import math
    >>> from symnet.kernels._vecmath import sin_cos_wide
    >>> sin_cos_wide(1e22) == (math.sin(1e22), math.cos(1e22))
    True
    """
    return math.sin(x), math.cos(x)


#: The same functions compiled once each and called: LLVM inlines the call into the loop
#: and vectorises it as before, while numba's IR-level inlining (``inline="always"``)
#: repeats its work at every call site -- a 2-2-2-1 sigmoid net's expression kernel, a
#: dozen calls, took three times as long to compile with it (benchmarks/RESULTS.md,
#: "Measurements behind design choices in the code").  The expression kernels call these.
_CALLED = {key: value for key, value in _FLAGS.items() if key != "inline"}
exp_call = numba.njit(**_CALLED)(exp.py_func)
tanh_call = numba.njit(**_CALLED)(tanh.py_func)
sigmoid_call = numba.njit(**_CALLED)(sigmoid.py_func)
sigmoid_pair_call = numba.njit(**_CALLED)(sigmoid_pair.py_func)
sigmoid_both_call = numba.njit(**_CALLED)(sigmoid_both.py_func)
tanh_with_pair_call = numba.njit(**_CALLED)(tanh_with_pair.py_func)

