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
from typing import Any

import numpy as np
import sympy

from . import float64
from .errors import ShapeError, WeightError

__all__ = ["brief", "check_weight", "entry", "matrix", "refuse_masked", "shape_of"]

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
    refuse_masked(values, where)
    if isinstance(values, sympy.MatrixBase):
        rows = values.tolist()
    else:
        try:
            array = np.asarray(values, dtype=object)
        except ValueError as exc:  # ragged nested lists
            raise ShapeError(f"{where} is ragged: every row must have the same length") from exc
        vector = 1 in shape and array.ndim <= 1 or (array.ndim == 2 and 1 in shape and 1 in array.shape)
        if array.size != shape[0] * shape[1] or (array.shape != shape and not vector):
            # a row or column may come flat or turned; any other shape is refused, never reshaped (a
            # transposed matrix of the same size would be read as another matrix)
            raise ShapeError(f"{where} has shape {array.shape} but {shape} is needed")
        rows = array.reshape(shape).tolist()
    matrix = [[entry(v, f"{where}[{i}, {j}]" if shape[0] > 1 or "W" in where else f"{where}[{j}]")
               for j, v in enumerate(row)] for i, row in enumerate(rows)]
    result = sympy.ImmutableMatrix(matrix) if matrix and matrix[0] else sympy.ImmutableMatrix.zeros(*shape)
    if result.shape != shape:
        raise ShapeError(f"{where} has shape {result.shape} but {shape} is needed")
    return result


def shape_of(values: Any) -> tuple[int, ...]:
    refuse_masked(values, "a weight matrix")
    if isinstance(values, sympy.MatrixBase):
        return tuple(values.shape)
    try:
        array = np.asarray(values, dtype=object)
    except ValueError as exc:
        raise ShapeError("a weight matrix is ragged: every row must have the same length") from exc
    if array.dtype == object and any(isinstance(v, (list, tuple, np.ndarray)) for v in array.flat):
        raise ShapeError("a weight matrix is ragged: every row must have the same length")
    return tuple(array.shape)
