"""Print a chain-rule program as Python source: a numba per-point loop or a numpy batch function.

The printers are SymPy code printers (``PythonCodePrinter`` for numba's scalar code,
``SciPyPrinter`` for numpy arrays) with three changes: weights print as array elements
(``W2[3, 0]``), program nodes and inputs as local variables, and the non-smooth functions
print their almost-everywhere values with NaN propagated (``Max``, ``Heaviside`` with
SymPy's ``Heaviside(0) = 1/2``, ``DiracDelta`` as 0).  Floats print with ``repr`` so they
round-trip exactly.  A printer refuses what it cannot print (``strict``) rather than
emitting partial code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import sympy
from sympy.printing.numpy import SciPyPrinter
from sympy.printing.pycode import PythonCodePrinter

from ..program import Program

__all__ = ["Output", "generate"]


@dataclass(frozen=True)
class Output:
    """One array the kernel fills: ``name[p, *index] = expr`` for each (index, expr)."""

    name: str
    entries: tuple[tuple[tuple[int, ...], sympy.Expr], ...]


class _Names:
    """Identifiers for every symbol of the program, deterministic and collision-free."""

    def __init__(self, program: Program, weights: dict[sympy.Symbol, str]) -> None:
        self.map: dict[sympy.Symbol, str] = dict(weights)
        taken = {"X", "p", "n", "math", "numpy", "numba", "scipy"} | set(weights.values())
        for i, x in enumerate(program.inputs):
            self.map[x] = self._fresh(f"x{i}", taken)
        for node, _ in program.assignments:
            self.map[node] = self._fresh(re.sub(r"\W+", "_", node.name).strip("_"), taken)

    @staticmethod
    def _fresh(name: str, taken: set[str]) -> str:
        candidate, k = name, 1
        while candidate in taken or not candidate.isidentifier():
            candidate, k = f"{name}_{k}", k + 1
        taken.add(candidate)
        return candidate


def _nan_max(printer: PythonCodePrinter, args: Sequence[sympy.Expr], greater: str) -> str:
    """max/min that propagate NaN (Python's max(0.0, nan) is 0.0)."""
    result = printer._print(args[0])
    for arg in args[1:]:
        a, b = result, printer._print(arg)
        result = f"(({a}) if ({a}) {greater}= ({b}) else (({b}) if ({b}) {greater} ({a}) else ({a}) + ({b})))"
    return result


class _ScalarPrinter(PythonCodePrinter):
    """Per-point scalar code for numba."""

    def __init__(self, names: dict[sympy.Symbol, str]) -> None:
        super().__init__({"fully_qualified_modules": True, "strict": True})
        self._names = names

    def _print_Symbol(self, expr: sympy.Symbol) -> str:
        if expr not in self._names:
            raise ValueError(f"symbol {expr} has no place in the kernel")
        return self._names[expr]

    def _print_Float(self, expr: sympy.Float) -> str:
        return repr(float(expr))

    def _print_Max(self, expr: sympy.Max) -> str:
        return _nan_max(self, expr.args, ">")

    def _print_Min(self, expr: sympy.Min) -> str:
        return _nan_max(self, expr.args, "<")

    def _print_Heaviside(self, expr: sympy.Heaviside) -> str:
        x = self._print(expr.args[0])
        at_zero = self._print(expr.args[1]) if len(expr.args) > 1 else "0.5"
        return f"(1.0 if ({x}) > 0 else (0.0 if ({x}) < 0 else ({at_zero} if ({x}) == 0 else ({x}))))"

    def _print_DiracDelta(self, expr: sympy.DiracDelta) -> str:
        return f"(0.0 * ({self._print(expr.args[0])}))"  # 0 almost everywhere, NaN stays NaN


def _nested(printer: SciPyPrinter, function: str, args: Sequence[sympy.Expr]) -> str:
    result = printer._print(args[0])
    for arg in args[1:]:
        result = f"{function}({result}, {printer._print(arg)})"
    return result


class _ArrayPrinter(SciPyPrinter):
    """Whole-batch numpy code."""

    def __init__(self, names: dict[sympy.Symbol, str]) -> None:
        super().__init__({"fully_qualified_modules": True, "strict": True})
        self._names = names

    _print_Symbol = _ScalarPrinter._print_Symbol
    _print_Float = _ScalarPrinter._print_Float

    def _print_Max(self, expr: sympy.Max) -> str:
        return _nested(self, "numpy.maximum", expr.args)  # numpy.maximum propagates NaN

    def _print_Min(self, expr: sympy.Min) -> str:
        return _nested(self, "numpy.minimum", expr.args)

    def _print_Heaviside(self, expr: sympy.Heaviside) -> str:
        at_zero = self._print(expr.args[1]) if len(expr.args) > 1 else "0.5"
        return f"numpy.heaviside({self._print(expr.args[0])}, {at_zero})"

    def _print_DiracDelta(self, expr: sympy.DiracDelta) -> str:
        return f"(0.0 * ({self._print(expr.args[0])}))"


def generate(
    program: Program,
    weights: dict[sympy.Symbol, str],
    weight_arrays: Sequence[str],
    outputs: Sequence[Output],
    backend: str,
    parallel: bool,
    header: str,
    cache: bool = True,
) -> str:
    """The source of a module defining ``kernel(X, <weight arrays>, <output arrays>)``."""
    names = _Names(program, weights)
    exprs = [e for out in outputs for _, e in out.entries]
    needed = program.needed(exprs)
    args = ", ".join(["X", *weight_arrays, *(o.name for o in outputs)])
    lines = [f'"""{header}"""', "import math", "", "import numpy", "import scipy.special"]
    if backend == "numba":
        printer: PythonCodePrinter = _ScalarPrinter(names.map)
        loop = "numba.prange" if parallel else "range"
        lines += ["import numba", "", "",
                  f"@numba.njit(parallel={parallel}, cache={cache}, nogil=True, error_model='numpy')",
                  f"def kernel({args}):", f"    for p in {loop}(X.shape[0]):"]
        indent = " " * 8
        inputs = [f"{indent}{names.map[x]} = X[p, {i}]" for i, x in enumerate(program.inputs)]
        target = "{name}[p, {index}]"
    else:
        printer = _ArrayPrinter(names.map)
        lines += ["", "", f"def kernel({args}):"]
        indent = " " * 4
        inputs = [f"{indent}{names.map[x]} = X[:, {i}]" for i, x in enumerate(program.inputs)]
        target = "{name}[:, {index}]"
    lines += inputs
    for node, expr in needed:
        lines.append(f"{indent}{names.map[node]} = {printer.doprint(expr)}")
    shared: dict[sympy.Expr, str] = {}  # an expression stored twice (symmetric Hessian) is computed once
    uses = {}
    for e in exprs:
        uses[e] = uses.get(e, 0) + 1
    for out in outputs:
        for index, expr in out.entries:
            text = shared.get(expr)
            if text is None:
                text = printer.doprint(expr)
                if uses[expr] > 1 and not expr.is_Atom:
                    temp = names._fresh("t", set(names.map.values()) | set(shared.values()))
                    lines.append(f"{indent}{temp} = {text}")
                    text = temp
                shared[expr] = text
            lines.append(f"{indent}{target.format(name=out.name, index=', '.join(map(str, index)))} = {text}")
    if backend != "numba":
        lines.append(f"{indent}return None")
    return "\n".join(lines) + "\n"
