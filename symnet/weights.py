"""Weights as exact numbers: the one check every way of building a network goes through.

A weight is a SymPy number (a float kept exactly as given, an integer, a rational) or a SymPy
expression in real symbols.  Every number in it must be real, finite and within float64's
range, the range every numeric path evaluates in.  Strings are never parsed.

>>> matrix([[1, 2.5]], (1, 2), "layer 1: W")
Matrix([[1, 2.5]])
"""

from __future__ import annotations

import math
import numbers
import weakref
from typing import Any

import numpy as np
import sympy
from mpmath.libmp import MPZ
from sympy.core.expr import Expr

from . import float64
from .errors import ShapeError, WeightError

__all__ = ["brief", "check_weight", "entry", "float_array", "is_float_matrix", "is_numeric", "matrix", "refuse_masked", "shape_of",
           "symbols"]

def entry(value: Any, where: str) -> sympy.Expr:
    """One weight as a SymPy number or expression; never parses strings.

    Numbers must be real and within float64's range (``|w| <= 1.8e308``), the range every
    numeric path evaluates in; a symbolic weight may hold symbols, but each of its parts that
    is a number must meet the same rule (:func:`check_weight`).
    """
    if isinstance(value, sympy.Basic):
        if not isinstance(value, sympy.Expr):
            raise WeightError(f"{where}: {value!r} is not a SymPy expression")
        return check_weight(value, where)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Number):
        raise WeightError(
            f"{where} is {brief(value)} of type {type(value).__name__}; weights must be numbers or SymPy "
            "expressions (strings are never parsed)"
        )
    if isinstance(value, numbers.Integral):
        return check_weight(sympy.Integer(int(value)), where)
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        raise WeightError(f"{where} is complex ({value}); weights must be real")
    try:
        as_float = float(value)  # type: ignore[arg-type]
    except OverflowError:  # a Fraction beyond float64
        as_float = math.inf
    if not math.isfinite(as_float):
        raise WeightError(f"{where} is {as_float}; weights must be finite (was the net trained to divergence?)")
    return sympy.Float(as_float)


#: float64's largest finite value: every numeric path evaluates weights in float64.
_FLOAT_MAX = float(np.finfo(np.float64).max)


def brief(value: Any, limit: int = 40) -> str:
    """``value`` for a message, cut to ``limit`` characters (``10**400`` has 401 digits)."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _numeric_parts(expr: sympy.Expr) -> list[sympy.Expr]:
    """The largest subexpressions of ``expr`` without symbols (``exp(1000)`` of ``a*exp(1000)``)."""
    parts, stack = [], [expr]
    while stack:
        node = stack.pop()
        if node.is_Symbol:
            continue
        if not node.free_symbols:
            parts.append(node)
        else:
            stack.extend(node.args)
    return parts


def check_weight(value: sympy.Expr, where: str) -> sympy.Expr:
    """``value`` if every number in it is real, finite and within float64's range, else :class:`WeightError`.

    >>> check_weight(sympy.Symbol("a", real=True) * sympy.exp(1000), "layer 1: W[0, 0]")
    Traceback (most recent call last):
    ...
    symnet.errors.WeightError: layer 1: W[0, 0] = a*exp(1000): its part is exp(1000) = 1.97e+434, beyond ...
    """
    for part in _numeric_parts(value):
        _check_number(part, where if part is value else f"{where} = {brief(value)}: its part")
    return value


def _check_number(number: sympy.Expr, where: str) -> None:
    if number.is_Float or number.is_Rational:  # the common case, without evalf
        try:
            finite = math.isfinite(float(number)) and number.is_finite is not False
        except OverflowError:  # an Integer beyond float64
            finite = False
        if not finite:
            raise WeightError(f"{where} is {brief(sympy.Float(number, 15) if number.is_finite else number)}, "
                              "beyond float64's range (|w| <= 1.8e308); weights must be finite numbers that "
                              "float64 can hold")
        return
    if number.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        raise WeightError(f"{where} is {brief(number)}; weights must be finite")
    try:  # float64 first: bounded work, where evalf can run for ever (sin(exp(exp(exp(4)))))
        float64.value(number)
        return
    except OverflowError:
        if sympy.count_ops(number) > 2:
            raise WeightError(f"{where} is {brief(number)}, whose evaluation leaves float64's range "
                              "(|w| <= 1.8e308); weights must be finite numbers that float64 can hold") from None
    except (ValueError, TypeError, ZeroDivisionError):
        pass  # complex, or a function float64.value does not know: evalf says which, below
    try:
        approx = number.evalf(20, chop=True)
    except (ArithmeticError, ValueError, TypeError) as exc:  # evalf of something absurd
        raise WeightError(f"{where} is {brief(number)}, which cannot be evaluated ({exc}); weights must be "
                          "real numbers") from None
    if not approx.is_Number:
        if approx.has(sympy.I) or approx.is_extended_real is False:
            raise WeightError(f"{where} is {brief(number)}, which is complex ({brief(approx)}); weights must be real")
        raise WeightError(f"{where} is {brief(number)}, which does not evaluate to a number; weights must be "
                          "real numbers or expressions in real symbols")
    if approx.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo) or not abs(float(approx)) <= _FLOAT_MAX:
        raise WeightError(f"{where} is {brief(number)} = {brief(sympy.Float(approx, 3))}, beyond float64's range "
                          "(|w| <= 1.8e308); weights must be finite numbers that float64 can hold")



def refuse_masked(values: Any, where: str) -> None:
    """A masked array's mask would be dropped by ``np.asarray``: refuse it rather than use the masked values."""
    if isinstance(values, np.ma.MaskedArray):
        raise WeightError(f"{where} is a masked array, and its mask would be ignored: give plain numbers "
                          "(np.ma.filled(w, value) with the value you mean)")


def matrix(values: Any, shape: tuple[int, int], where: str) -> sympy.ImmutableMatrix:
    """``values`` as an ``ImmutableMatrix`` of ``shape``, every entry checked by :func:`entry`.

    A float array (any float dtype) takes a fast path: its entries become the same SymPy floats
    :func:`entry` makes, and the matrix remembers the float64 array, so :func:`float_array`,
    :func:`is_numeric` and :func:`symbols` answer without reading a million SymPy numbers back.

    >>> W = matrix(np.array([[0.5, -2.0]]), (1, 2), "layer 1: W")
    >>> W, float_array(W, "layer 1: W"), is_numeric(W)
    (Matrix([[0.5, -2.0]]), array([[ 0.5, -2. ]]), True)
    """
    refuse_masked(values, where)
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return _from_floats(values, shape, where)
    if isinstance(values, sympy.MatrixBase):
        rows = values.tolist()
    else:
        try:
            array = np.asarray(values, dtype=object)
        except ValueError as exc:  # ragged nested lists
            raise ShapeError(f"{where} is ragged: every row must have the same length") from exc
        _check_shape(array, shape, where)
        rows = array.reshape(shape).tolist()
    matrix = [[entry(v, _entry_name(where, shape, i, j)) for j, v in enumerate(row)] for i, row in enumerate(rows)]
    result = sympy.ImmutableMatrix(matrix) if matrix and matrix[0] else sympy.ImmutableMatrix.zeros(*shape)
    if result.shape != shape:
        raise ShapeError(f"{where} has shape {result.shape} but {shape} is needed")
    return result


def shape_of(values: Any) -> tuple[int, ...]:
    refuse_masked(values, "a weight matrix")
    if isinstance(values, np.ndarray) and values.dtype != object:
        return tuple(values.shape)
    if isinstance(values, sympy.MatrixBase):
        return tuple(values.shape)
    try:
        array = np.asarray(values, dtype=object)
    except ValueError as exc:
        raise ShapeError("a weight matrix is ragged: every row must have the same length") from exc
    if array.dtype == object and any(isinstance(v, (list, tuple, np.ndarray)) for v in array.flat):
        raise ShapeError("a weight matrix is ragged: every row must have the same length")
    return tuple(array.shape)


#: The float64 array each matrix built by :func:`_from_floats` holds, by ``id``, with a weak
#: reference to the matrix (an entry leaves with its matrix).
_FLOAT64: dict[int, tuple[weakref.ref, np.ndarray]] = {}

#: Python floats carry 53 bits; ``sympy.Float(x)`` keeps all of them.
_FLOAT_BITS = 53


def _entry_name(where: str, shape: tuple[int, int], i: int, j: int) -> str:
    return f"{where}[{i}, {j}]" if shape[0] > 1 or "W" in where else f"{where}[{j}]"


def _check_shape(array: np.ndarray, shape: tuple[int, int], where: str) -> None:
    vector = 1 in shape and array.ndim <= 1 or (array.ndim == 2 and 1 in shape and 1 in array.shape)
    if array.size != shape[0] * shape[1] or (array.shape != shape and not vector):
        # a row or column may come flat or turned; any other shape is refused, never reshaped (a
        # transposed matrix of the same size would be read as another matrix)
        raise ShapeError(f"{where} has shape {array.shape} but {shape} is needed")


def _from_floats(values: np.ndarray, shape: tuple[int, int], where: str) -> sympy.ImmutableMatrix:
    _check_shape(values, shape, where)
    array = np.array(values, dtype=np.float64).reshape(shape)  # a copy: exact for float16/32, rounded as float() for longdouble
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        i, j = (int(k) for k in bad[0])
        raise WeightError(f"{_entry_name(where, shape, i, j)} is {array[i, j]}; weights must be finite "
                          "(was the net trained to divergence?)")
    result = sympy.ImmutableMatrix._new(shape[0], shape[1], _sympy_floats(array.ravel()), copy=False)
    array.flags.writeable = False
    key = id(result)
    _FLOAT64[key] = (weakref.ref(result), array)
    weakref.finalize(result, _FLOAT64.pop, key, None)
    return result


def _sympy_floats(values: np.ndarray) -> list[sympy.Float]:
    """``[sympy.Float(v) for v in values]``, the same numbers, five times as fast.

    A wide layer has a million weights, and making their SymPy floats was most of the time of
    building it. ``sympy.Float(v)`` stores mpmath's normalised ``(sign, odd mantissa, exponent,
    bit count)`` of ``v`` and its precision, 53 bits; here numpy computes those tuples for all
    ``v`` at once (``frexp`` gives a 53-bit mantissa, exact for subnormals too; its trailing zero
    bits are stripped, and zero is mpmath's one zero), and each number is made as SymPy's own
    ``Float._new`` makes it, less its ``mpf_norm``, which would leave these tuples as they are.
    The tests compare every field with ``sympy.Float(v)`` on zeros, subnormals, the extremes and
    random floats of every exponent, so a SymPy that stores floats otherwise fails them.
    """
    fraction, exponent = np.frexp(np.abs(values))
    mantissa = (fraction * 2.0 ** _FLOAT_BITS).astype(np.int64)  # exact: 53 bits, the top one set
    nonzero = mantissa != 0
    zeros = np.zeros_like(mantissa)
    zeros[nonzero] = np.log2((mantissa & -mantissa)[nonzero]).astype(np.int64)  # a power of two: exact
    mantissa >>= zeros
    exponent = np.where(nonzero, exponent.astype(np.int64) - _FLOAT_BITS + zeros, 0)
    bits = np.where(nonzero, _FLOAT_BITS - zeros, 0)
    sign = (np.signbit(values) & nonzero).astype(np.int64)  # -0.0 is mpmath's one zero, as in sympy.Float(-0.0)
    floats = []
    new, Float = Expr.__new__, sympy.Float
    for s, m, e, b in zip(sign.tolist(), mantissa.tolist(), exponent.tolist(), bits.tolist()):
        number = new(Float)
        number._mpf_ = (s, MPZ(m), e, b)
        number._prec = _FLOAT_BITS
        floats.append(number)
    return floats


def _remembered(matrix: Any) -> np.ndarray | None:
    found = _FLOAT64.get(id(matrix))
    return found[1] if found is not None and found[0]() is matrix else None


def is_float_matrix(matrix: sympy.MatrixBase) -> bool:
    """Whether ``matrix`` was made by :func:`matrix` from a float array: finite float64 numbers,
    checked then, whose array :func:`float_array` gives without reading the entries."""
    return _remembered(matrix) is not None


def is_numeric(matrix: sympy.MatrixBase) -> bool:
    """Whether ``matrix`` holds numbers only (no free symbols).

    >>> is_numeric(matrix([[1.5, sympy.Symbol("a")]], (1, 2), "b"))
    False
    """
    return _remembered(matrix) is not None or not matrix.free_symbols


def symbols(matrix: sympy.MatrixBase) -> tuple[sympy.Symbol, ...]:
    """The free symbols of ``matrix``, entry by entry row-major, each entry's sorted; each once.

    >>> a, b = sympy.symbols("a b", real=True)
    >>> symbols(sympy.ImmutableMatrix([[b * a, 2.0, a]]))
    (a, b)
    """
    if _remembered(matrix) is not None:
        return ()
    seen: dict[sympy.Symbol, None] = {}
    for value in matrix:
        for symbol in sorted(value.free_symbols, key=sympy.default_sort_key):
            seen.setdefault(symbol, None)
    return tuple(seen)


def float_array(matrix: sympy.MatrixBase, where: str) -> np.ndarray:
    """A numeric ``matrix`` as a new float64 array of its shape; :class:`WeightError` naming
    ``where`` if it holds symbols.

    >>> float_array(sympy.ImmutableMatrix([[1, sympy.Rational(1, 4)]]), "b")
    array([[1.  , 0.25]])
    """
    remembered = _remembered(matrix)
    if remembered is not None:
        return remembered.copy()
    if matrix.free_symbols:
        names = ", ".join(sorted(str(s) for s in matrix.free_symbols)[:4])
        raise WeightError(f"{where} is symbolic ({names}, ...); substitute numbers with net.subs(...) first")
    return np.array(matrix.tolist(), dtype=np.float64).reshape(matrix.shape)
