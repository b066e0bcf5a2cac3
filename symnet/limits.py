"""The work limits: every bound symnet puts on symbolic work, in one place.

Symbolic work can grow without bound in an argument -- the order of a derivative, the degree
of a polynomial, the size of a closed form -- and an activation read from a file can ask for
any of them.  Each limit below is far above what a legitimate use needs and low enough that
symnet refuses before a computation that would not finish; a refusal is a
:class:`~symnet.LimitError` whose message names the limit and what to do instead.

==============================  =========================================================
limit                           where it applies
==============================  =========================================================
:data:`MAX_DERIVATIVE_ORDER`    ``diff``, ``taylor`` (``order``), ``coeffs --order``,
                                every chain-rule program (:func:`symnet.program.build`)
:data:`MAX_CHAIN_RULE_TERMS`    the same, counted over all partials and neurons
:data:`MAX_POLYNOMIAL_DEGREE`   :func:`symnet.coefficients`: the network's total degree
:data:`MAX_MONOMIALS`           :func:`symnet.coefficients`: monomials of that degree
:data:`MAX_KINK_DEGREE`         locating an activation's kinks (polynomial arguments)
:data:`MAX_KINK_BRANCHES`       the same, for ``Max``/``Abs``/... nested in an argument
:data:`MAX_KINK_RESOLUTION`     :func:`symnet.kinks.kinks`: grid points per piece
:data:`MAX_FORM_SIZE`           an activation form built (:func:`symnet.activations.from_form`),
                                searched for kinks or tested for linearity
:data:`MAX_FORM_DEPTH`          an activation form (:func:`symnet.activations.from_form`):
                                functions and powers nested in one another
:data:`MAX_SYMBOLIC_POINT_PARAMETERS`  :func:`symnet.param_grad`: points times weights
:data:`MAX_PRINT_SIZE`          ``str``/``_repr_latex_``/``pretty``/``latex`` of a network:
                                a summary above it (``full=True`` prints the whole)
==============================  =========================================================

>>> check_order(4, "diff")
>>> check_order(60, "taylor")
Traceback (most recent call last):
...
symnet.errors.LimitError: taylor: order 60 is above symnet.limits.MAX_DERIVATIVE_ORDER = 10 ...
"""

from __future__ import annotations

from math import comb
from typing import Any, Iterable

import sympy

from .errors import LimitError

__all__ = [
    "MAX_DERIVATIVE_ORDER",
    "MAX_CHAIN_RULE_TERMS",
    "MAX_POLYNOMIAL_DEGREE",
    "MAX_MONOMIALS",
    "MAX_KINK_DEGREE",
    "MAX_KINK_BRANCHES",
    "MAX_KINK_RESOLUTION",
    "MAX_FORM_SIZE",
    "MAX_FORM_DEPTH",
    "MAX_SYMBOLIC_POINT_PARAMETERS",
    "MAX_PRINT_SIZE",
    "bell",
    "check_order",
    "check_polynomial_size",
    "check_form_depth",
    "form_depth",
    "check_terms",
    "chain_rule_terms",
    "taylor_terms",
    "polynomial_degree",
    "tree_size",
    "closed_form_size",
]

#: The highest total order of a symbolic partial derivative (and of a Taylor expansion).
#: Faa di Bruno's formula for an order-``k`` partial of ``f(z)`` has one term per set partition
#: of ``k`` positions, the Bell number ``B(k)``: ``B(10) = 115,975``, ``B(12) = 4,213,597``,
#: ``B(50) ~ 1.9e47``, per neuron.  PDEs and Taylor models use orders up to 4 to 6; order 10 is
#: still done in seconds on a small net.  The layered kernels stop at their own, lower order
#: (:data:`symnet.kernels._layered.MAX_ORDER`) and hand higher ones to the expression strategy,
#: which this limit also bounds.
MAX_DERIVATIVE_ORDER = 10

#: The most Faa di Bruno terms one chain-rule program may enumerate: the sum over the
#: partials it needs of ``B(order)``, times the number of neurons.  An order-10 partial of a
#: 1-3-1 net is about 0.6 million terms, a Hessian of a 10-64-64-64-1 net about 23 thousand,
#: a Taylor expansion of order 6 in 3 inputs of a 3-64-64-1 net about 1 million.  Each term is
#: some SymPy arithmetic: 2 million take under a minute, an order-10 partial of a 2-16-16-1
#: net (about 3.8 million) is refused.
MAX_CHAIN_RULE_TERMS = 2_000_000

#: The highest total degree :func:`symnet.coefficients` expands a network to: the product of
#: its layers' polynomial degrees (``square`` -> ``square`` -> ``linear``: 4).  Expanding is
#: dense in the degree, and a form such as ``t**10**10`` would never finish.
MAX_POLYNOMIAL_DEGREE = 256

#: The most monomials :func:`symnet.coefficients` may produce: ``C(n_inputs + degree, degree)``.
MAX_MONOMIALS = 200_000

#: The highest degree of a polynomial whose real roots are taken as the kinks of an
#: activation (``Abs(t**2 - 1)``: degree 2, kinks -1 and 1).  Roots are isolated exactly
#: (``sympy.Poly.real_roots``), fast up to this degree.
MAX_KINK_DEGREE = 64

#: The most branches tried when a kink argument itself contains ``Max``/``Min``/``Abs``/
#: ``Heaviside``/``sign``/``Piecewise`` (``Min(1, Max(0, t))``: 2 branches): each nested one
#: doubles the count.
MAX_KINK_BRANCHES = 64

#: The most grid points per piece :func:`symnet.kinks.kinks` brackets crossings on
#: (``resolution``, default 512): each point is a forward pass held in memory.
MAX_KINK_RESOLUTION = 1_000_000

#: The most tree nodes of an activation form (or of one kink argument) that symnet builds into
#: an activation, searches for kinks or tests for piecewise linearity; the built-ins have under
#: 20.  Building one differentiates and compiles it, some seconds at this size.
MAX_FORM_SIZE = 2_000

#: The most functions and powers of the variable nested in one another in an activation form
#: (``t*sigmoid(t)``: 1, mish ``t*tanh(log(1 + exp(t)))``: 3, ``sin(sin(t))``: 2).  Building an
#: activation differentiates and compiles its form, work that grows about cubically with this
#: depth: ``sin`` nested 12 deep takes a tenth of a second, 95 deep a minute.
MAX_FORM_DEPTH = 12

#: The most points times parameters :func:`symnet.param_grad` back-propagates in exact SymPy
#: arithmetic (each is a few SymPy multiply-adds, some ten thousand a second).  Exact
#: gradients are for checking a few points; :func:`symnet.compile_loss` gives float64 ones for
#: any batch.
MAX_SYMBOLIC_POINT_PARAMETERS = 1_000_000

#: Estimated tree nodes of a network's closed form above which ``str``, ``_repr_latex_``,
#: :func:`symnet.pretty` and :func:`symnet.latex` print a one-line summary instead (a
#: 2-64-64-64-1 net has millions; SymPy prints some ten thousand nodes a second).  Ask for
#: the whole with ``symnet.pretty(net, full=True)``, ``net.latex(full=True)`` or ``net.expr``.
MAX_PRINT_SIZE = 10_000

#: The most units one node of a graph written with :mod:`symnet.graph` may have, and the most
#: entries one of its parameter matrices may have (the bounds a file is read with,
#: ``symnet.io.format.MAX_UNITS`` and ``MAX_WEIGHTS``): every entry is a SymPy number or symbol,
#: some hundred thousand a second to build, so a mistyped width would otherwise hang.
MAX_GRAPH_UNITS = 100_000
MAX_GRAPH_WEIGHTS = 1_000_000


def bell(k: int) -> int:
    """The Bell number ``B(k)``: set partitions of ``k`` items (Faa di Bruno terms of order ``k``).

    >>> [bell(k) for k in range(7)]
    [1, 1, 2, 5, 15, 52, 203]
    """
    row = [1]
    for _ in range(k):
        new = [row[-1]]
        for value in row:
            new.append(new[-1] + value)
        row = new
    return row[0]


def check_order(order: int, what: str) -> None:
    """Refuse a derivative or Taylor order above :data:`MAX_DERIVATIVE_ORDER` (a :class:`~symnet.LimitError`)."""
    if order > MAX_DERIVATIVE_ORDER:
        raise LimitError(
            f"{what}: order {order} is above symnet.limits.MAX_DERIVATIVE_ORDER = {MAX_DERIVATIVE_ORDER} "
            f"(an order-k partial has Bell(k) chain-rule terms per neuron: {bell(min(order, 60)):.3g} here). "
            "Use a lower order (PDEs and Taylor models rarely need more than 4 to 6)"
        )


def taylor_terms(n_inputs: int, order: int, neurons: int) -> int:
    """:func:`chain_rule_terms` of every partial of total order ``<= order`` in ``n_inputs`` inputs, counted.

    >>> taylor_terms(1, 2, neurons=3)
    12
    """
    return neurons * sum(comb(n_inputs + k - 1, k) * bell(k) for k in range(order + 1))


def chain_rule_terms(orders: Iterable[int], neurons: int) -> int:
    """Faa di Bruno terms a chain-rule program enumerates for partials of these ``orders``.

    >>> chain_rule_terms([0, 1, 2], neurons=3)
    12
    """
    return neurons * sum(bell(k) for k in orders)


def tree_size(expr: sympy.Basic, limit: int | None = None) -> int:
    """Nodes of ``expr``'s tree, counting repeated subtrees each time; stops counting past ``limit``.

    >>> tree_size(sympy.Symbol("t") ** 2 + 1)
    5
    """
    total, stack = 0, [expr]
    while stack:
        node = stack.pop()
        total += 1
        if limit is not None and total > limit:
            return total
        stack.extend(node.args)
    return total


def polynomial_degree(expr: sympy.Expr, var: sympy.Symbol) -> int | None:
    """The degree of ``expr`` as a polynomial in ``var``, read from its tree without expanding.

    ``None`` when ``expr`` is not visibly a polynomial in ``var`` (a negative or symbolic power,
    a function of ``var``).  It is an upper bound: cancelling terms are not noticed.

    >>> t = sympy.Symbol("t")
    >>> polynomial_degree((t**3 + 1)**(10**10) - 2, t)
    30000000000
    >>> polynomial_degree(sympy.exp(t), t) is None
    True
    """
    degrees: dict[sympy.Basic, int | None] = {}
    stack: list[tuple[sympy.Basic, bool]] = [(expr, False)]
    while stack:  # post-order without recursion: a file's form may nest thousands deep
        node, ready = stack.pop()
        if node in degrees:
            continue
        if not ready and (node.is_Add or node.is_Mul or node.is_Pow) and node.has(var):
            stack.append((node, True))
            stack.extend((arg, False) for arg in node.args)
            continue
        degrees[node] = _degree_of(node, var, degrees)
    return degrees[expr]


def _degree_of(node: sympy.Basic, var: sympy.Symbol, degrees: dict[sympy.Basic, int | None]) -> int | None:
    if node == var:
        return 1
    if not node.has(var):
        return 0
    if node.is_Add or node.is_Mul:
        parts = [degrees[a] for a in node.args]
        if None in parts:
            return None
        return max(parts) if node.is_Add else sum(parts)  # type: ignore[type-var,arg-type]
    if node.is_Pow and node.exp.is_Integer and node.exp >= 0:
        base = degrees[node.base]
        return None if base is None else base * int(node.exp)
    return None


def closed_form_size(net: Any) -> int:
    """Estimated tree nodes of a network's closed form, from its architecture alone (nothing is built).

    A neuron's pre-activation repeats the closed form of every neuron feeding it, so the size
    multiplies by the fan-in at each layer: a 2-64-64-64-1 tanh net has about 2.7 million.

    >>> from symnet import Network
    >>> closed_form_size(Network.symbolic([1, 1, 1], ["square", "linear"])) < 100
    True
    """
    if not net.is_chain:
        return _graph_form_size(net.graph)
    size = 1  # an input symbol
    total = 0
    for layer in net.layers:
        # z_j = sum_i W_ij a_i + b_j: per term a product node, the weight and a_i; the sum and bias
        z = layer.fan_in * (size + 2) + 2
        activation = layer.activation
        if activation.elementwise:
            form = 1 if activation.form is None else tree_size(activation.form, MAX_PRINT_SIZE)
            size = z * max(1, _occurrences(activation.form)) + form
        else:  # softmax: exp(z_j) over the sum of every exp(z_i); log_softmax: z_j - log of that sum
            size = (layer.fan_out + 1) * (z + 2) + 2
        total = size * layer.fan_out
    return total


def _graph_form_size(graph: Any) -> int:
    """:func:`closed_form_size` of a graph, node by node by rule family (each unit the largest)."""
    sizes: dict[str, int] = {"x": 1}
    for node in graph.nodes[1:]:
        args = [sizes[name] for name in node.inputs]
        if node.family == "linear":
            size = max((sum(args[k] + 2 for k, _, _ in terms) + 2 for terms, _ in node.linear_terms), default=1)
        elif node.family == "bilinear":
            size = args[0] + args[1] + 1
        elif node.activation.elementwise:
            form = node.activation.form
            size = args[0] * max(1, _occurrences(form)) + (1 if form is None else tree_size(form, MAX_PRINT_SIZE))
        else:  # softmax, log_softmax
            size = (node.width + 1) * (args[0] + 2) + 2
        sizes[node.name] = min(size, 10**18)
    return sizes[graph.output] * graph.n_outputs


def _occurrences(form: sympy.Expr | None) -> int:
    """How many times the variable appears in a form (``Max(0, t)``: 1; ``t*sigmoid(t)``: 2)."""
    if form is None:
        return 1
    count, stack = 0, [form]
    while stack:
        node = stack.pop()
        if node.is_Symbol:
            count += 1
        stack.extend(node.args)
        if count > 1000:
            break
    return count


def form_depth(expr: sympy.Basic, var: sympy.Symbol, limit: int | None = None) -> int:
    """The most functions and powers containing ``var`` nested in one another along one path of ``expr``.

    Sums and products do not count.  Each distinct subtree is visited once (no recursion: a form
    may nest thousands deep); the count stops a little past ``limit``.

    >>> t = sympy.Symbol("t")
    >>> form_depth(t * sympy.tanh(sympy.log(1 + sympy.exp(t))), t)
    3
    >>> form_depth((t + 1)**2 + sympy.exp(-t**2), t)
    2
    """
    depths: dict[sympy.Basic, int | None] = {}  # None: the subtree does not contain var
    stack: list[tuple[sympy.Basic, bool]] = [(expr, False)]
    while stack:  # post-order, each distinct node once
        node, ready = stack.pop()
        if node in depths:
            continue
        if not node.args:
            depths[node] = 0 if node == var else None
            continue
        if not ready:
            stack.append((node, True))
            stack.extend((arg, False) for arg in node.args if arg not in depths)
            continue
        below = [d for d in (depths[arg] for arg in node.args) if d is not None]
        depths[node] = None if not below else max(below) + (0 if node.is_Add or node.is_Mul else 1)
        if limit is not None and (depths[node] or 0) > limit:
            return depths[node]  # type: ignore[return-value]
    return depths[expr] or 0


def check_form_depth(form: sympy.Expr, var: sympy.Symbol, what: str) -> None:
    """Refuse an activation form larger than :data:`MAX_FORM_SIZE` or nested deeper than :data:`MAX_FORM_DEPTH`.

    >>> t = sympy.Symbol("t")
    >>> check_form_depth(sympy.sin(sympy.sin(t)), t, "activation")
    """
    size = tree_size(form, MAX_FORM_SIZE)
    if size > MAX_FORM_SIZE:
        raise LimitError(
            f"{what}: its form has more than symnet.limits.MAX_FORM_SIZE = {MAX_FORM_SIZE:,} tree nodes; "
            "differentiating and compiling it would take minutes. Use a smaller form, or "
            "build a symnet.activations.Activation with its numeric functions yourself"
        )
    if form_depth(form, var, MAX_FORM_DEPTH) > MAX_FORM_DEPTH:
        raise LimitError(
            f"{what}: its form nests more than symnet.limits.MAX_FORM_DEPTH = {MAX_FORM_DEPTH} functions or powers "
            "of t in one another; differentiating and compiling it would take minutes. Use a shallower form, or "
            "build a symnet.activations.Activation with its numeric functions yourself"
        )


def check_terms(terms: int, what: str) -> None:
    """Refuse a chain-rule program of more than :data:`MAX_CHAIN_RULE_TERMS` terms."""
    if terms > MAX_CHAIN_RULE_TERMS:
        raise LimitError(
            f"{what}: the chain rule enumerates about {terms:,} terms, above "
            f"symnet.limits.MAX_CHAIN_RULE_TERMS = {MAX_CHAIN_RULE_TERMS:,}: it would not finish. Ask for fewer "
            "or lower-order partials, or evaluate them numerically (symnet.compile)"
        )


def check_polynomial_size(degree: int, n_inputs: int, what: str) -> None:
    """Refuse expanding a polynomial of this total degree in ``n_inputs`` variables past the limits."""
    if degree > MAX_POLYNOMIAL_DEGREE:
        raise LimitError(
            f"{what}: the network is a polynomial of total degree {degree}, above "
            f"symnet.limits.MAX_POLYNOMIAL_DEGREE = {MAX_POLYNOMIAL_DEGREE}; expanding it would not finish. "
            "Use symnet.taylor(net, about=..., order=...) for low-order coefficients"
        )
    monomials = comb(n_inputs + degree, degree)
    if monomials > MAX_MONOMIALS:
        raise LimitError(
            f"{what}: a polynomial of degree {degree} in {n_inputs} inputs has up to {monomials:,} monomials, above "
            f"symnet.limits.MAX_MONOMIALS = {MAX_MONOMIALS:,}. Use symnet.taylor(net, about=..., order=...) "
            "for low-order coefficients"
        )
