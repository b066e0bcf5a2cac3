"""SymPy functions that symnet adds: the logistic sigmoid and softplus.

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

__all__ = ["sigmoid", "softplus"]


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
        from sympy.printing.numpy import SciPyPrinter

        if isinstance(printer, SciPyPrinter):  # expit never overflows
            return "%s(%s)" % (printer._module_format("scipy.special.expit"), printer._print(self.args[0]))
        exp = printer._module_format(printer._module + ".exp")  # type: ignore[attr-defined]
        return "1/(1 + %s(-(%s)))" % (exp, printer._print(self.args[0]))  # type: ignore[attr-defined]

    def _pythoncode(self, printer: object) -> str:
        exp = printer._module_format("math.exp")  # type: ignore[attr-defined]
        return "1/(1 + %s(-(%s)))" % (exp, printer._print(self.args[0]))  # type: ignore[attr-defined]

    def _ccode(self, printer: object) -> str:
        return "1.0/(1.0 + exp(-(%s)))" % printer._print(self.args[0])  # type: ignore[attr-defined]


class softplus(sympy.Function):  # noqa: N801 - SymPy functions are lower case
    """``log(1 + exp(x))``, with derivative ``sigmoid(x)`` and overflow-free numeric code.

    >>> x = sympy.Symbol("x", real=True)
    >>> sympy.diff(softplus(x), x)
    sigmoid(x)
    >>> softplus(x).rewrite(sympy.log)
    log(exp(x) + 1)
    """

    nargs = 1

    @classmethod
    def eval(cls, arg: sympy.Expr) -> sympy.Expr | None:
        if arg.is_zero:
            return sympy.log(2)
        if arg is sympy.S.NegativeInfinity:
            return sympy.S.Zero
        if arg is sympy.S.Infinity:
            return sympy.S.Infinity
        if arg.is_Float:
            return sympy.log(1 + sympy.exp(arg))
        return None

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        if argindex != 1:
            raise sympy.ArgumentIndexError(self, argindex)
        return sigmoid(self.args[0])

    def _eval_rewrite_as_log(self, arg: sympy.Expr, **kwargs: object) -> sympy.Expr:
        return sympy.log(1 + sympy.exp(arg))

    _eval_rewrite_as_exp = _eval_rewrite_as_log

    def _eval_evalf(self, prec: int) -> sympy.Expr:
        return self.rewrite(sympy.log)._eval_evalf(prec)

    def _eval_is_extended_real(self) -> bool | None:
        return self.args[0].is_extended_real

    def _eval_is_positive(self) -> bool | None:
        return True if self.args[0].is_extended_real else None

    def _latex(self, printer: object, exp: str | None = None) -> str:
        tex = r"\operatorname{softplus}\left(%s\right)" % printer._print(self.args[0])  # type: ignore[attr-defined]
        return tex if exp is None else r"%s^{%s}" % (tex, exp)

    def _numpycode(self, printer: object) -> str:
        logaddexp = printer._module_format(printer._module + ".logaddexp")  # type: ignore[attr-defined]
        return "%s(0, %s)" % (logaddexp, printer._print(self.args[0]))  # type: ignore[attr-defined]

    def _pythoncode(self, printer: object) -> str:
        # max(x, 0) + log1p(exp(-|x|)) never overflows
        arg = printer._print(self.args[0])  # type: ignore[attr-defined]
        log1p, exp = printer._module_format("math.log1p"), printer._module_format("math.exp")  # type: ignore[attr-defined]
        return "((%s) + %s(%s(-(%s))) if (%s) > 0 else %s(%s(%s)))" % (arg, log1p, exp, arg, arg, log1p, exp, arg)

    def _ccode(self, printer: object) -> str:
        arg = printer._print(self.args[0])  # type: ignore[attr-defined]
        return "(fmax(%s, 0.0) + log1p(exp(-fabs(%s))))" % (arg, arg)
