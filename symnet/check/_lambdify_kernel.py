"""The fallback exact evaluator: symnet's chain-rule program printed by ``sympy.lambdify``.

:func:`~symnet.check.verify` evaluates the exact derivatives with ``symnet.compile`` when that
exists.  Without it (or with ``kernel="lambdify"``), this module prints the straight-line
program of :func:`symnet.hessian` / :func:`symnet.jacobian` (``form="program"``) as one numpy
function, each program node a local variable (lambdify's ``cse`` hook).  The flat closed form
is not used: it grows exponentially with depth (even a 3-16-16-1 net is slow to lambdify;
benchmarks/RESULTS.md, "Measurements behind design choices in the code").

Non-smooth functions get their almost-everywhere values: ``DiracDelta`` is 0, ``Heaviside``
keeps SymPy's ``Heaviside(0) = 1/2``.  Floats print with ``repr``, so weights round-trip exactly.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import sympy
from sympy.printing.numpy import SciPyPrinter

from .. import derivatives as _derivatives
from .backprop import Derivatives

__all__ = ["lambdify_kernel"]


def lambdify_kernel(net: Any, derivatives: Sequence[str]) -> Callable[[np.ndarray], Derivatives]:
    """A function ``X (N, d) -> Derivatives`` with ``value`` and the asked ``derivatives``.

    >>> import symnet
    >>> net = symnet.Network.from_weights([[[2.0]]], [[0.0]], "tanh")
    >>> lambdify_kernel(net, ["jacobian"])(np.array([[0.0]])).jacobian
    array([[[2.]]])
    """
    d, m = net.n_inputs, net.n_outputs
    want_hessian = "hessian" in derivatives
    program = (_derivatives.hessian(net, output=0, form="program") if want_hessian
               else _derivatives.jacobian(net, form="program"))
    keys: list[tuple[int, ...]] = [()] + [(i,) for i in range(d)]
    if want_hessian:
        keys += [(i, j) for i in range(d) for j in range(i, d)]
    exprs = [program.jets[k].get(alpha, sympy.S.Zero) for k in range(m) for alpha in keys]
    steps = program.needed(exprs)
    # program nodes are named like "z2_0[x0]", not identifiers: print them as dummies
    rename = {node: sympy.Dummy() for node, _ in steps}
    steps = [(rename[node], _printable(expr, rename)) for node, expr in steps]
    exprs = [_printable(e, rename) for e in exprs]
    # no user text in the printed function: the inputs are dummies (dummify), and the printer
    # refuses other symbols and functions it does not know (an unknown name would be code)
    printer = _Printer({"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": False,
                        "strict": True})
    fn = sympy.lambdify(net.inputs, exprs, ["scipy", "numpy"], cse=lambda _: (steps, exprs), printer=printer,
                        dummify=True)

    def kernel(X: np.ndarray) -> Derivatives:
        X = np.asarray(X, dtype=np.float64)
        with np.errstate(over="ignore"):  # 1/(1 + exp(800)) is 0, as it should be
            flat = fn(*X.T)
        columns = np.stack([np.broadcast_to(np.asarray(v, dtype=np.float64), (len(X),)) for v in flat], axis=1)
        table = columns.reshape(len(X), m, len(keys))
        jacobian = table[:, :, 1:d + 1]
        hessian = None
        if want_hessian:
            hessian = np.zeros((len(X), m, d, d))
            for column, alpha in enumerate(keys[d + 1:], start=d + 1):
                hessian[:, :, alpha[0], alpha[1]] = hessian[:, :, alpha[1], alpha[0]] = table[:, :, column]
        return Derivatives(table[:, :, 0], jacobian, hessian)

    return kernel


class _Printer(SciPyPrinter):
    """SciPy's printer (``erf`` from ``scipy.special``) with floats that round-trip exactly:
    the default prints 15 digits, which moves a weight by up to an ulp."""

    def _print_Float(self, expr: sympy.Float) -> str:
        return repr(float(expr))

    def _print_Symbol(self, expr: sympy.Symbol) -> str:
        if not isinstance(expr, sympy.Dummy):  # inputs and program nodes are dummies by now
            raise ValueError(f"symbol {expr.name!r} has no place in the lambdified program")
        return super()._print_Symbol(expr)


def _printable(expr: sympy.Expr, rename: dict[Any, sympy.Dummy]) -> sympy.Expr:
    return expr.xreplace(rename).replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)
