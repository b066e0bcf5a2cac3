"""SymPy functions that symnet adds: the logistic sigmoid.

SymPy has no logistic function; written as ``1/(1 + exp(-x))`` its derivative prints as
``exp(-x)/(exp(-x) + 1)**2``, which nobody recognises.  :class:`sigmoid` is a proper SymPy
function whose derivative is the textbook ``sigmoid(x)*(1 - sigmoid(x))``, which evaluates
numerically, prints as :math:`\\sigma(x)` in LaTeX, lambdifies to numpy and rewrites to
``exp`` on request:

>>> import sympy
>>> x = sympy.Symbol("x", real=True)
>>> sympy.diff(sigmoid(x), x)
(1 - sigmoid(x))*sigmoid(x)
>>> sigmoid(x).rewrite(sympy.exp)
1/(1 + exp(-x))
>>> sigmoid(0)
1/2
"""

from __future__ import annotations

import sympy

__all__ = ["sigmoid"]


class sigmoid(sympy.Function):  # noqa: N801 - SymPy functions are lower case
    """The logistic function ``1/(1 + exp(-x))``."""

    nargs = 1

    @classmethod
    def eval(cls, arg: sympy.Expr) -> sympy.Expr | None:
        if arg.is_zero:
            return sympy.S.Half
        if arg is sympy.S.Infinity:
            return sympy.S.One
        if arg is sympy.S.NegativeInfinity:
            return sympy.S.Zero
        if arg.is_Float:
            return 1 / (1 + sympy.exp(-arg))
        return None

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        if argindex != 1:
            raise sympy.ArgumentIndexError(self, argindex)
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, arg: sympy.Expr, **kwargs: object) -> sympy.Expr:
        return 1 / (1 + sympy.exp(-arg))

    def _eval_rewrite_as_tanh(self, arg: sympy.Expr, **kwargs: object) -> sympy.Expr:
        return (1 + sympy.tanh(arg / 2)) / 2

    def _eval_evalf(self, prec: int) -> sympy.Expr:
        return self.rewrite(sympy.exp)._eval_evalf(prec)

    def _eval_is_extended_real(self) -> bool | None:
        return self.args[0].is_extended_real

    def _eval_is_positive(self) -> bool | None:
        return True if self.args[0].is_extended_real else None

    def _latex(self, printer: object, exp: str | None = None) -> str:
        tex = r"\sigma\left(%s\right)" % printer._print(self.args[0])  # type: ignore[attr-defined]
        return tex if exp is None else r"%s^{%s}" % (tex, exp)

    def _numpycode(self, printer: object) -> str:
        exp = printer._module_format(printer._module + ".exp")  # type: ignore[attr-defined]
        return "1/(1 + %s(-(%s)))" % (exp, printer._print(self.args[0]))  # type: ignore[attr-defined]

    def _pythoncode(self, printer: object) -> str:
        exp = printer._module_format("math.exp")  # type: ignore[attr-defined]
        return "1/(1 + %s(-(%s)))" % (exp, printer._print(self.args[0]))  # type: ignore[attr-defined]

    def _ccode(self, printer: object) -> str:
        return "1.0/(1.0 + exp(-(%s)))" % printer._print(self.args[0])  # type: ignore[attr-defined]
