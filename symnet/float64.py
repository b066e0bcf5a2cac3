"""Exact numbers in float64, evaluated with bounded work.

SymPy's ``evalf`` works at arbitrary precision and can be kept busy for ever by an expression
as small as ``sin(exp(exp(exp(4))))``.  :func:`value` evaluates a number expression in
float64 arithmetic, one operation at a time, so its work is the size of the expression; it
raises where float64 cannot hold the number or any step of it.  Weights entering a
:class:`~symnet.Network` and numbers read from files are checked through it.

>>> import sympy
>>> value(sympy.sqrt(2) / 2)
0.7071067811865476
>>> value(sympy.sin(sympy.exp(sympy.exp(sympy.exp(4)))))
Traceback (most recent call last):
...
OverflowError: math range error
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import sympy

from .functions import sigmoid, softplus

__all__ = ["MAX", "FUNCTIONS", "value"]

#: The largest finite float64.
MAX = float(np.finfo(np.float64).max)

#: The functions :func:`value` evaluates, with their float64 versions.
FUNCTIONS: dict[type, Callable[..., float]] = {
    sympy.exp: math.exp, sympy.log: math.log, sympy.sin: math.sin, sympy.cos: math.cos, sympy.tanh: math.tanh,
    sympy.erf: math.erf, sympy.Abs: abs, sympy.Max: max, sympy.Min: min,
    sigmoid: lambda z: 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z)),
    softplus: lambda z: max(z, 0.0) + math.log1p(math.exp(-abs(z))),
    sympy.Heaviside: lambda z, h=0.5: 1.0 if z > 0 else 0.0 if z < 0 else h,
}


def value(expr: sympy.Expr) -> float:
    """``expr`` (no symbols) in float64.

    Raises:
        OverflowError: a step leaves float64's range (``exp(1000)``, ``10**400``).
        ValueError: the number is not real (``sqrt(-1)``, ``I``), not finite (``oo``, ``nan``,
            ``zoo``), or holds a function outside :data:`FUNCTIONS`.
        ZeroDivisionError: a step divides by zero.
    """
    if expr.is_Number:
        if not (expr.is_Rational or expr.is_Float) or not expr.is_finite:
            raise ValueError(f"{expr} is not a finite real number")
        result = float(expr)
    elif expr is sympy.pi or expr is sympy.E:
        result = float(expr)
    elif expr.is_Add:
        result = math.fsum(value(a) for a in expr.args)
    elif expr.is_Mul:
        result = 1.0
        for a in expr.args:
            result *= value(a)
    elif expr.is_Pow:
        result = value(expr.base) ** value(expr.exp)  # a complex result (a negative base to a fraction) is refused below
    elif expr.func in FUNCTIONS:  # sqrt is a Pow
        result = FUNCTIONS[expr.func](*(value(a) for a in expr.args))
    else:
        raise ValueError(f"{type(expr).__name__} is not a real number symnet evaluates")
    if isinstance(result, complex) or not math.isfinite(result):
        raise ValueError(f"{result} is not a finite real number")
    return float(result)
