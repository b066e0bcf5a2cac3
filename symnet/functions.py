"""SymPy functions that symnet adds: the logistic sigmoid and softplus.

SymPy has no logistic function; written as ``1/(1 + exp(-x))`` its derivative prints as
``exp(-x)/(exp(-x) + 1)**2``, which nobody recognises.  :class:`sigmoid` is a proper SymPy
function whose derivative is the textbook ``sigmoid(x)*(1 - sigmoid(x))``, which evaluates
numerically, prints as :math:`\\sigma(x)` in LaTeX, lambdifies to numpy and rewrites to
``exp`` on request:

>>> x = sympy.Symbol("x", real=True)
>>> sympy.diff(sigmoid(x), x)
(1 - sigmoid(x))*sigmoid(x)
>>> sigmoid(x).rewrite(sympy.exp)
1/(1 + exp(-x))
>>> sigmoid(0)
1/2
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import sympy

__all__ = ["sigmoid", "softplus", "erfc_neg", "tail_safe", "tail_safe_program"]


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
        # exp(-|x|) never overflows: 1/(1 + exp(-x)) was 0 for x < -709.8, where sigmoid(x) > 5e-324
        exp = printer._module_format("math.exp")  # type: ignore[attr-defined]
        x = printer._print(self.args[0])  # type: ignore[attr-defined]
        return "(1/(1 + %s(-(%s))) if (%s) >= 0 else %s(%s)/(1 + %s(%s)))" % (exp, x, x, exp, x, exp, x)

    def _ccode(self, printer: object) -> str:
        x = printer._print(self.args[0])  # type: ignore[attr-defined]
        return "((%s) >= 0 ? 1.0/(1.0 + exp(-(%s))) : exp(%s)/(1.0 + exp(%s)))" % (x, x, x, x)


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


class erfc_neg(sympy.Function):  # noqa: N801 - SymPy functions are lower case
    """``erfc(-x) = 1 + erf(x)``, kept whole: ``1 + erf(x)`` is 0 in floats for ``x < -5.9``.

    SymPy evaluates ``erfc(-x)`` to ``2 - erfc(x)``, which cancels the same way, so the
    reflected complement is a function of its own.  It prints as ``erfc(-x)``:

    >>> x = sympy.Symbol("x", real=True)
    >>> erfc_neg(x).rewrite(sympy.erf)
    erf(x) + 1
    >>> float(erfc_neg(-10))
    2.088487583762545e-45
    """

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        if argindex != 1:
            raise sympy.ArgumentIndexError(self, argindex)
        return 2 / sympy.sqrt(sympy.pi) * sympy.exp(-self.args[0] ** 2)

    def _eval_rewrite_as_erf(self, arg: sympy.Expr, **kwargs: object) -> sympy.Expr:
        return 1 + sympy.erf(arg)

    def _eval_evalf(self, prec: int) -> sympy.Expr:
        return sympy.erfc(-self.args[0])._eval_evalf(prec)

    def _eval_is_extended_real(self) -> bool | None:
        return self.args[0].is_extended_real

    def _numpycode(self, printer: object) -> str:
        return "%s(-(%s))" % (printer._module_format("scipy.special.erfc"),  # type: ignore[attr-defined]
                              printer._print(self.args[0]))  # type: ignore[attr-defined]

    def _pythoncode(self, printer: object) -> str:
        erfc = printer._module_format("math.erfc")  # type: ignore[attr-defined]
        return "%s(-(%s))" % (erfc, printer._print(self.args[0]))  # type: ignore[attr-defined]

    def _ccode(self, printer: object) -> str:
        return "erfc(-(%s))" % printer._print(self.args[0])  # type: ignore[attr-defined]


#: Expressions larger than this (operations), or of higher degree in tanh/sigmoid, are not
#: factored (their sums are still rewritten): factoring them costs more than it can save, and
#: can be made to take forever by a form read from a file; the built-ins' derivatives to order
#: 8 are far smaller (tanh's 7th is of degree 8).
_FACTOR_LIMIT = 400
_FACTOR_DEGREE = 16


def tail_safe(expr: sympy.Expr, definitions: Mapping[sympy.Symbol, sympy.Expr] | None = None) -> sympy.Expr:
    """``expr`` rewritten, with the same value, so that floats keep their relative accuracy in the tails.

    Polynomials in ``tanh``/``sigmoid`` are factored and each factor that vanishes where
    the function saturates becomes a sigmoid, which floats hold to full relative accuracy:
    ``1 - tanh(u) = 2 sigmoid(-2u)``, ``1 + tanh(u) = 2 sigmoid(2u)``, ``1 - sigmoid(u) =
    sigmoid(-u)``; and ``1 + erf(u) = erfc(-u)`` (:class:`erfc_neg`), ``1 - erf(u) =
    erfc(u)``, ``exp(u) - 1 = expm1(u)``.  ``tanh'(z) = 1 - tanh(z)**2`` is 0 in floats for
    ``|z| > 19``; ``4 sigmoid(2z) sigmoid(-2z)`` is right to a few ulp down to 5e-324.
    ``definitions`` maps symbols that stand for ``tanh(u)`` or ``sigmoid(u)`` (a kernel's
    nodes) to what they stand for.

    >>> z, a = sympy.symbols("z a", real=True)
    >>> tail_safe(1 - sympy.tanh(z)**2)
    4*sigmoid(-2*z)*sigmoid(2*z)
    >>> tail_safe(1 - a**2, {a: sympy.tanh(z)})
    4*sigmoid(-2*z)*sigmoid(2*z)
    >>> tail_safe(sigmoid(z)*(1 - sigmoid(z)))
    sigmoid(-z)*sigmoid(z)
    """
    definitions = {s: d for s, d in (definitions or {}).items()
                   if isinstance(d, (sympy.tanh, sigmoid)) and s in expr.free_symbols}
    saturating = set(expr.atoms(sympy.tanh, sigmoid)) | set(definitions)
    degrees = [p.exp for p in expr.atoms(sympy.Pow) if p.base in saturating]
    if saturating and sympy.count_ops(expr) <= _FACTOR_LIMIT \
            and all(d.is_Integer and abs(d) <= _FACTOR_DEGREE for d in degrees):
        expr = sympy.factor(expr)
    if not expr.has(sympy.erf, sympy.exp, sympy.tanh, sigmoid, *definitions):
        return expr
    return expr.replace(lambda e: e.is_Add, lambda e: _complement(e, definitions))


def _complement(add: sympy.Expr, definitions: Mapping[sympy.Symbol, sympy.Expr]) -> sympy.Expr:
    """``R g(u) - R`` (or ``+ R``) as ``R`` times the complement function that does not cancel.

    ``R`` is any factor (a number, ``t``): ``t sigmoid(t) - t = -t sigmoid(-t)``.
    """
    from sympy.codegen.cfunctions import expm1

    if not add.is_Add:
        return add
    terms = list(add.args)
    for n, term in enumerate(terms):
        for g in sympy.Mul.make_args(term):
            g_def = definitions.get(g, g)
            if not isinstance(g_def, (sympy.erf, sympy.exp, sympy.tanh, sigmoid)):
                continue
            rest = sympy.Mul(*[f for f in sympy.Mul.make_args(term) if f is not g])
            for m, other in enumerate(terms):
                if m == n or other not in (rest, -rest):
                    continue
                u, same = g_def.args[0], other == rest  # R g + R, else R g - R
                if isinstance(g_def, sympy.erf):
                    new = rest * (erfc_neg(u) if same else -sympy.erfc(u))
                elif isinstance(g_def, sympy.tanh):
                    new = 2 * rest * (sigmoid(2 * u) if same else -sigmoid(-2 * u))
                elif isinstance(g_def, sigmoid) and not same:
                    new = -rest * sigmoid(-u)
                elif isinstance(g_def, sympy.exp) and not same:
                    new = rest * expm1(u)
                else:
                    continue
                return _complement(sympy.Add(new, *[t for k, t in enumerate(terms) if k not in (n, m)]), definitions)
    return add


def tail_safe_program(assignments: Iterable[tuple[sympy.Symbol, sympy.Expr]],
                      weights: Iterable[sympy.Symbol] = ()) -> Callable[[sympy.Expr], sympy.Expr]:
    """:func:`tail_safe` for the expressions of a straight-line program, each form rewritten once.

    ``assignments`` are the program's ``(node, expression)`` pairs; a node assigned ``tanh(u)``
    or ``sigmoid(u)`` stands for it in the rewrite.  Expressions holding ``weights`` (the affine
    maps) are left alone; the activation-derivative expressions of different units differ only
    in their symbols, so each form is rewritten once and renamed.  Every consumer that prints a
    program as code (the kernels, :func:`symnet.io.export`) rewrites through this.

    >>> z, a, d = sympy.symbols("z a d", real=True)
    >>> safe = tail_safe_program([(a, sympy.tanh(z)), (d, 1 - a**2)])
    >>> safe(1 - a**2)
    4*sigmoid(-2*z)*sigmoid(2*z)
    """
    weight_set = set(weights)
    definitions = {node: expr for node, expr in assignments if isinstance(expr, (sympy.tanh, sigmoid))}
    done: dict[sympy.Expr, sympy.Expr] = {}

    def rewrite(expr: sympy.Expr) -> sympy.Expr:
        symbols = expr.free_symbols
        if symbols & weight_set or not expr.has(sympy.Function, *definitions):
            return expr
        symbols |= {s for d in symbols & definitions.keys() for s in definitions[d].free_symbols}
        to_dummy = {s: sympy.Symbol(f"_s{k}", real=True) for k, s in enumerate(sorted(symbols, key=str))}
        form = expr.xreplace(to_dummy)
        renamed = {to_dummy[s]: d.xreplace(to_dummy) for s, d in definitions.items() if s in to_dummy}
        # the definitions are part of the form: sigmoid(1.0*x) and sigmoid(3.0*x) (numbers inlined,
        # as export does) rename alike, and must not share a rewrite
        key = (form, tuple(sorted(renamed.items(), key=str)))
        if key not in done:
            done[key] = tail_safe(form, renamed)
        return done[key].xreplace({d: s for s, d in to_dummy.items()})

    return rewrite
