"""Reading the mathematics: textbook forms, pretty printing and LaTeX.

:func:`simplify` rewrites the shapes SymPy gives for activation derivatives into their
textbook forms -- ``exp(-x)/(1 + exp(-x))**2`` becomes ``sigmoid(x)*(1 - sigmoid(x))`` and
``1/cosh(x)**2`` becomes ``1 - tanh(x)**2`` -- without changing the value.

>>> import sympy
>>> x = sympy.Symbol("x", real=True)
>>> simplify(sympy.diff(1 / (1 + sympy.exp(-x)), x))
(1 - sigmoid(x))*sigmoid(x)
>>> simplify(sympy.diff(sympy.log(1 + sympy.exp(x)), x))
sigmoid(x)
"""

from __future__ import annotations

from typing import Any

import sympy

from .functions import sigmoid

__all__ = ["formula", "simplify", "pretty", "latex", "summary", "latex_text"]


def _reciprocal_logistic(expr: sympy.Basic) -> bool:
    """``(1 + exp(w))**(-n)`` for a positive integer ``n``."""
    if not (expr.is_Pow and expr.exp.is_Integer and expr.exp < 0 and expr.base.is_Add and len(expr.base.args) == 2):
        return False
    one, other = sorted(expr.base.args, key=lambda a: not a.is_Number)
    return one == 1 and isinstance(other, sympy.exp)


def _to_sigmoid(expr: sympy.Pow) -> sympy.Expr:
    other = [a for a in expr.base.args if not a.is_Number][0]
    return sigmoid(-other.args[0]) ** (-expr.exp)


def _exp_times_sigmoid(expr: sympy.Basic) -> bool:
    """A product holding ``exp(w)`` and ``sigmoid(-w)``: ``exp(w)*sigmoid(-w) = sigmoid(w)``."""
    if not expr.is_Mul:
        return False
    exps = [f.args[0] for f in expr.args if isinstance(f, sympy.exp)]
    sigmoids = [_sigmoid_arg(f) for f in expr.args]
    return any(-w in sigmoids for w in exps)


def _sigmoid_arg(factor: sympy.Expr) -> sympy.Expr | None:
    base = factor.base if factor.is_Pow and factor.exp.is_Integer and factor.exp > 0 else factor
    return base.args[0] if isinstance(base, sigmoid) else None


def _cancel_exp(expr: sympy.Mul) -> sympy.Expr:
    factors = list(expr.args)
    for f in factors:
        if isinstance(f, sympy.exp):
            w = f.args[0]
            for g in factors:
                if _sigmoid_arg(g) == -w:
                    power = g.exp if g.is_Pow else 1
                    factors.remove(f)
                    factors.remove(g)
                    # exp(w)*sigmoid(-w) = sigmoid(w); keep the argument without a leading minus
                    logistic = 1 - sigmoid(-w) if w.could_extract_minus_sign() else sigmoid(w)
                    factors += [logistic, sigmoid(-w) ** (power - 1)]
                    return sympy.Mul(*factors)
    return expr  # pragma: no cover - guarded by _exp_times_sigmoid


def simplify(expr: Any) -> Any:
    """Rewrite activation derivatives into textbook form (``sigmoid``, ``1 - tanh**2``); value unchanged.

    Works on expressions and matrices.  Unlike ``sympy.simplify`` it never expands or
    factors anything else, so it is fast on large closed forms.
    """
    if isinstance(expr, sympy.MatrixBase):
        return expr.applyfunc(simplify)
    expr = sympy.sympify(expr)
    expr = expr.replace(_reciprocal_logistic, _to_sigmoid)
    for _ in range(8):  # each pass removes one exp/sigmoid pair per product
        new = expr.replace(_exp_times_sigmoid, _cancel_exp)
        if new == expr:
            break
        expr = new
    expr = expr.replace(lambda e: e.is_Pow and e.exp == -2 and isinstance(e.base, sympy.cosh),
                        lambda e: 1 - sympy.tanh(e.base.args[0]) ** 2)
    expr = expr.replace(lambda e: e.is_Pow and e.exp == 2 and isinstance(e.base, sympy.sech),
                        lambda e: 1 - sympy.tanh(e.base.args[0]) ** 2)
    return expr


def _shown(obj: Any) -> Any:
    from .network import Network

    if isinstance(obj, Network):
        return obj.outputs[0] if obj.n_outputs == 1 else obj.outputs
    return obj


def summary(net: Any) -> str | None:
    """A one-line description of a network too big to print, or ``None`` if it prints in reasonable time.

    Decided from :func:`symnet.limits.closed_form_size`, an estimate from the architecture:
    nothing is built.  Above :data:`symnet.limits.MAX_PRINT_SIZE` nodes ``str(net)``,
    ``net.latex()``, :func:`pretty` and :func:`latex` show this line; ``full=True`` (or
    ``net.expr`` / ``net.outputs``) gives the whole closed form.

    >>> from symnet import Network
    >>> print(summary(Network.symbolic([2, 64, 64, 64, 1], ["tanh", "tanh", "tanh", "linear"])))
    Network(2 -> 64 -> 64 -> 64 -> 1, activations=(tanh, tanh, tanh, linear), 8577 symbolic parameters): closed form of about 3,200,000 nodes, too big to print quickly; print(symnet.pretty(net, full=True)) or net.expr to see it
    >>> summary(Network.symbolic([1, 1, 1], ["square", "linear"])) is None
    True
    """
    from .limits import MAX_PRINT_SIZE, closed_form_size

    size = closed_form_size(net)
    if size <= MAX_PRINT_SIZE:
        return None
    rounded = float(f"{size:.2g}")  # an estimate: two significant digits
    return (f"{net!r}: closed form of about {rounded:,.0f} nodes, too big to print quickly; "
            "print(symnet.pretty(net, full=True)) or net.expr to see it")


def latex_text(text: str) -> str:
    """``text`` as LaTeX that shows it verbatim (``\\text{...}`` with the special characters escaped).

    >>> print(latex_text("a_1 -> {b}"))
    \\text{a\\_1 $\\to$ \\{b\\}}
    """
    escapes = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "^": r"\^{}", "#": r"\#",
               "$": r"\$", "%": r"\%", "&": r"\&", "~": r"\~{}"}
    escaped = "".join(escapes.get(c, c) for c in text).replace("->", "$\\to$")
    return f"\\text{{{escaped}}}"


def pretty(obj: Any, full: bool = False) -> str:
    """A network's closed form, or any expression, as 2-D text; floats without trailing zeros.

    A network whose closed form is too big to print quickly gives its :func:`summary` unless
    ``full=True``.
    """
    from .network import Network

    if isinstance(obj, Network) and not full:
        short = summary(obj)
        if short is not None:
            return short
    return sympy.pretty(_shown(obj), full_prec=False)


def latex(obj: Any, full: bool = False) -> str:
    """A network's closed form, or any expression, as LaTeX (``sigmoid`` prints as ``\\sigma``).

    A network whose closed form is too big to print quickly gives its :func:`summary` (as
    ``\\text{...}``) unless ``full=True``.
    """
    from .network import Network

    if isinstance(obj, Network) and not full:
        short = summary(obj)
        if short is not None:
            return latex_text(short)
    return sympy.latex(_shown(obj), full_prec=False)


_TEX_NAMES = {"sigmoid": r"\sigma", "tanh": r"\tanh", "softplus": r"\operatorname{softplus}", "sin": r"\sin",
              "cos": r"\cos", "exp": r"\exp"}


def _tex_activation(activation: Any) -> str:
    return _TEX_NAMES.get(activation.name, r"\operatorname{%s}" % activation.name.split("(")[0].replace("_", r"\_"))


def formula(net: Any, what: str = "jacobian") -> str:
    """The layer-wise closed form in matrix notation, as LaTeX (column vectors, ``z_l = W_l^T a_{l-1} + b_l``).

    ``what="value"`` gives the forward pass, ``"jacobian"`` the chain rule
    ``J = diag(f_L'(z_L)) W_L^T ... diag(f_1'(z_1)) W_1^T`` (a linear layer contributes
    ``W^T`` alone; a softmax layer its Jacobian ``diag(p) - p p^T``, a log_softmax layer
    ``I - 1 p^T``).

    ``"hessian"`` and ``"laplacian"`` give the exact second derivatives of output ``y_k`` as
    one term per nonlinear layer -- what the layered kernels compute in Taylor mode:

        H_k = sum_l J_{z_l}^T diag(delta_l * f_l''(z_l)) J_{z_l},
        Laplacian y_k = sum_l sum_j delta_{l,j} f_l''(z_{l,j}) |grad z_{l,j}|^2,

    where ``J_{z_l} = dz_l/dx`` is the Jacobian chain up to layer ``l`` and
    ``delta_l = dy_k/da_l`` flows back from ``delta_L = e_k`` through
    ``delta_{l-1} = W_l diag(f_l'(z_l)) delta_l``: the lines after the first define them.

    >>> from symnet import Network
    >>> net = Network.symbolic([2, 3, 3, 1], ["tanh", "sigmoid", "linear"])
    >>> print(formula(net, "jacobian"))
    J = W_{3}^{T} \\operatorname{diag}\\left(\\sigma'(z_{2})\\right) W_{2}^{T} \\operatorname{diag}\\left(\\tanh'(z_{1})\\right) W_{1}^{T}
    >>> print(formula(net, "value"))
    y = W_{3}^{T} \\sigma\\left(W_{2}^{T} \\tanh\\left(W_{1}^{T} x + b_{1}\\right) + b_{2}\\right) + b_{3}
    >>> print(formula(net, "hessian"))
    H = J_{z_{1}}^{T} \\operatorname{diag}\\left(\\delta_{1} \\odot \\tanh''(z_{1})\\right) J_{z_{1}} + J_{z_{2}}^{T} \\operatorname{diag}\\left(\\delta_{2} \\odot \\sigma''(z_{2})\\right) J_{z_{2}}
    J_{z_{1}} = W_{1}^{T}
    J_{z_{2}} = W_{2}^{T} \\operatorname{diag}\\left(\\tanh'(z_{1})\\right) W_{1}^{T}
    \\delta_{2} = W_{3}
    \\delta_{1} = W_{2} \\operatorname{diag}\\left(\\sigma'(z_{2})\\right) \\delta_{2}
    """
    from .errors import InputError, NotAChainError

    if not net.is_chain:
        raise NotAChainError("formula writes a chain of dense layers in matrix notation (W_1, b_1, ...), and this "
                             "network is a graph: print(net) or symnet.latex(net) show its closed form, "
                             "net.graph.describe() its nodes")
    if what == "value":
        inner = "x"
        for number, layer in enumerate(net.layers, start=1):
            inner = f"W_{{{number}}}^{{T}} {inner} + b_{{{number}}}"
            if layer.activation.name != "linear":
                inner = f"{_tex_activation(layer.activation)}\\left({inner}\\right)"
        return f"y = {inner}"
    if what == "jacobian":
        return "J = " + _chain(net.layers)
    if what in ("hessian", "laplacian"):
        return _second_order(net, what)
    raise InputError(f"formula knows 'value', 'jacobian', 'hessian' and 'laplacian', not {what!r}")


def _slope(layer: Any, number: int) -> str | None:
    """The factor a layer's activation puts in a Jacobian chain (``None`` for linear)."""
    name = layer.activation.name
    if name == "softmax":
        return f"\\left(\\operatorname{{diag}}(p_{{{number}}}) - p_{{{number}}} p_{{{number}}}^{{T}}\\right)"
    if name == "log_softmax":  # d(z - logsumexp z)/dz = I - 1 p^T, p the layer's softmax
        return f"\\left(I - \\mathbf{{1}} p_{{{number}}}^{{T}}\\right)"
    if name == "linear":
        return None
    return f"\\operatorname{{diag}}\\left({_tex_activation(layer.activation)}'(z_{{{number}}})\\right)"


def _chain(layers: Any, last_slope: bool = True) -> str:
    """``f_L' W_L^T ... f_1' W_1^T`` over ``layers`` (without the last slope if ``last_slope`` is false)."""
    factors = []
    for number, layer in enumerate(layers, start=1):
        factors.append(f"W_{{{number}}}^{{T}}")
        slope = _slope(layer, number)
        if slope and (last_slope or number < len(layers)):
            factors.append(slope)
    return " ".join(reversed(factors))


def _second_order(net: Any, what: str) -> str:
    from .errors import InputError

    layers = net.layers
    for number, layer in enumerate(layers, start=1):
        if not layer.activation.elementwise:
            raise InputError(f"formula(net, {what!r}): layer {number}'s {layer.activation.name} is not elementwise; "
                             "the exact second derivatives are symnet.hessian(net) and symnet.laplacian(net)")
    curved = [n for n, layer in enumerate(layers, start=1) if layer.activation.name != "linear"]
    output = "y" if net.n_outputs == 1 else "y_{k}"
    if not curved:
        return ("H" if what == "hessian" else f"\\Delta {output}") + " = 0"
    terms = []
    for n in curved:
        second = f"{_tex_activation(layers[n - 1].activation)}''(z_{{{n}}})"
        if what == "hessian":
            terms.append(f"J_{{z_{{{n}}}}}^{{T}} \\operatorname{{diag}}\\left(\\delta_{{{n}}} \\odot {second}\\right) "
                         f"J_{{z_{{{n}}}}}")
        else:
            terms.append(f"\\sum_{{j}} \\left(\\delta_{{{n}}} \\odot {second}\\right)_{{j}} "
                         f"\\left\\lVert \\nabla z_{{{n},j}} \\right\\rVert^{{2}}")
    head = ("H" if net.n_outputs == 1 else "H_{k}") if what == "hessian" else f"\\Delta {output}"
    lines = [f"{head} = " + " + ".join(terms)]
    lines += [f"J_{{z_{{{n}}}}} = " + _chain(layers[:n], last_slope=False) for n in curved]
    if what == "laplacian":
        lines.append("\\nabla z_{l,j}^{T} = \\text{row } j \\text{ of } J_{z_{l}}")
    L = len(layers)
    if L in curved:
        lines.append(f"\\delta_{{{L}}} = " + ("e_{k}" if net.n_outputs > 1 else "1"))
    for n in range(L - 1, min(curved) - 1, -1):  # delta_n = dy/da_n, back from the output
        factors = [f"W_{{{n + 1}}}", _slope(layers[n], n + 1)]
        factors.append(f"\\delta_{{{n + 1}}}" if n + 1 < L or L in curved else
                       ("e_{k}" if net.n_outputs > 1 else None))
        lines.append(f"\\delta_{{{n}}} = " + " ".join(f for f in factors if f))
    return "\n".join(lines)
