"""The straight-line program: how symnet derives a network without ``sympy.diff`` of the whole.

A derivative of a network is assembled by the chain rule, one layer at a time, over one
symbol per neuron quantity.  For every quantity ``q`` (a pre-activation ``z``, an activation
``a``) the builder keeps a *jet*: the value and the partial derivatives ``d^alpha q`` needed,
keyed by a *multi-index* -- the sorted tuple of input positions differentiated by, so
``(0, 0, 1)`` is ``d^3 / dx0^2 dx1`` and ``()`` the value.  The rules are

* linear ops (a dense layer's ``z = a W + b``, adds, concatenations, ...):
  ``d^alpha z_j = sum_i W_ij d^alpha a_i`` (plus ``b_j`` for the value);
* activation: Faa di Bruno, ``d^alpha f(z) = sum over set partitions P of alpha of
  f^(|P|)(z) prod_{B in P} d^B z``, where ``f^(k)`` is ``sympy.diff`` of the *scalar*
  activation form -- the only place SymPy differentiates anything;
* products of two branches: Leibniz's rule;
* softmax: ``exp``, a sum, a reciprocal and products (Leibniz rule); log-softmax: ``exp``,
  a sum, its ``log`` (Faa di Bruno) and a difference; in programs printed as float code both
  are shifted by the layer's largest unit first (:func:`build`'s ``shift_softmax``).

The builder walks the network's graph (:mod:`symnet.graph`) node by node and reads each node's
rule *family* (linear, elementwise, bilinear), never its op.

Each result is an assignment ``node = expression`` appended to a :class:`Program`.  The flat
closed form in the inputs is made from the program on demand (:meth:`Program.flat`), and
the compiled kernels print the same program.

>>> from symnet import Network
>>> net = Network.from_weights([[[1]], [[2]]], [[0], [0]], ["tanh", "linear"])
>>> program = build(net, [(0, 0)])
>>> print(program)
a1_0 = tanh(x0)
d1a1_0 = 1 - a1_0**2
d2a1_0 = -a1_0*(2 - 2*a1_0**2)
>>> program.jets[0][(0, 0)]
2*d2a1_0
>>> print(program.flat(program.jets[0][(0, 0)]))
-2*(2 - 2*tanh(x0)**2)*tanh(x0)
"""

from __future__ import annotations

import itertools
import warnings
from math import comb
from typing import Any, Iterable, Sequence

import sympy
from sympy.codegen.cfunctions import log1p

from ._substitute import substitute
from .activations import T
from .errors import ExpressionSizeWarning
from .faa_di_bruno import block_index, set_partitions
from .limits import chain_rule_terms, check_order, check_terms

__all__ = ["Program", "build", "closure", "multi_indices"]

MultiIndex = tuple[int, ...]
Jet = dict[MultiIndex, sympy.Expr]

#: Estimated tree size of a flat expression above which :meth:`Program.flat` warns.
FLAT_SIZE_WARNING = 500_000


class Node(sympy.Symbol):
    """A symbol that names one intermediate quantity of a program.

    A subclass so that program nodes can never be confused with a user's input or parameter
    symbol of the same name.
    """

    __slots__ = ()

    def __new__(cls, name: str) -> Node:
        return super().__new__(cls, name, real=True)  # type: ignore[return-value]


class Program:
    """A straight-line program: ordered ``node = expression`` assignments and results over them.

    Attributes:
        inputs: the input symbols.
        assignments: list of ``(Node, expression)``; an expression refers only to inputs,
            parameters and earlier nodes.
        jets: per output of the network, a jet ``{multi-index: expression over nodes}``.
        result: what was asked for (a Matrix or expression over nodes), when set by a
            derivative function with ``form="program"``.
    """

    def __init__(self, inputs: Sequence[sympy.Symbol]) -> None:
        self.inputs = tuple(inputs)
        self.assignments: list[tuple[Node, sympy.Expr]] = []
        self.jets: list[Jet] = []
        self.result: Any = None
        self._names: set[str] = set()

    def assign(self, name: str, expr: sympy.Expr) -> sympy.Expr:
        """Append ``name = expr`` and return the new node; atoms and numbers are returned as is.

        A name used before gets a suffix (``_2``): two nodes are never one symbol.
        """
        if expr.is_Atom or (expr.is_Mul and len(expr.args) == 2 and expr.args[0].is_Number and expr.args[1].is_Atom):
            return expr
        if name in self._names:
            number = 2
            while f"{name}_{number}" in self._names:
                number += 1
            name = f"{name}_{number}"
        self._names.add(name)
        node = Node(name)
        self.assignments.append((node, expr))
        return node

    def needed(self, exprs: Iterable[sympy.Expr]) -> list[tuple[Node, sympy.Expr]]:
        """The assignments that ``exprs`` depend on, in program order."""
        wanted = {s for e in exprs for s in e.free_symbols if isinstance(s, Node)}
        kept = []
        for node, expr in reversed(self.assignments):
            if node in wanted:
                kept.append((node, expr))
                wanted.update(s for s in expr.free_symbols if isinstance(s, Node))
        kept.reverse()
        return kept

    def flat_size(self, exprs: Iterable[sympy.Expr]) -> int:
        """Estimated tree size of ``exprs`` with every node substituted (without building it)."""
        exprs = list(exprs)
        sizes: dict[sympy.Symbol, int] = {}
        for node, expr in self.needed(exprs):
            sizes[node] = _tree_size(expr, sizes)
        return sum(_tree_size(e, sizes) for e in exprs)

    def flat(self, result: Any = None, warn: bool = True) -> Any:
        """``result`` (default :attr:`result`) with every node replaced: a closed form in the inputs.

        Warns with :class:`~symnet.ExpressionSizeWarning` when the flat form is estimated
        to exceed ``FLAT_SIZE_WARNING`` tree nodes.
        """
        result = self.result if result is None else result
        is_matrix = isinstance(result, sympy.MatrixBase)
        exprs = list(result) if is_matrix else [sympy.sympify(result)]
        if warn:
            size = self.flat_size(exprs)
            if size > FLAT_SIZE_WARNING:
                warnings.warn(
                    f"the flat closed form has about {size:,} terms; building and printing it is slow. "
                    "Use form='program' for the structured form, or compile it (symnet.compile).",
                    ExpressionSizeWarning,
                    stacklevel=3,
                )
        values: dict[sympy.Symbol, sympy.Expr] = {}
        for node, expr in self.needed(exprs):
            values[node] = substitute(expr, values)
        flat = [substitute(e, values) for e in exprs]
        return sympy.ImmutableMatrix(result.rows, result.cols, flat) if is_matrix else flat[0]

    def substitute_inputs(self, point: Sequence[sympy.Expr], result: Any = None) -> Any:
        """``result`` evaluated at ``inputs = point``, node by node (fast for numeric points)."""
        result = self.result if result is None else result
        is_matrix = isinstance(result, sympy.MatrixBase)
        exprs = list(result) if is_matrix else [sympy.sympify(result)]
        values: dict[sympy.Symbol, sympy.Expr] = dict(zip(self.inputs, point))
        for node, expr in self.needed(exprs):
            values[node] = substitute(expr, values)
        evaluated = [substitute(e, values) for e in exprs]
        return sympy.ImmutableMatrix(result.rows, result.cols, evaluated) if is_matrix else evaluated[0]

    def __len__(self) -> int:
        return len(self.assignments)

    def __str__(self) -> str:
        lines = [f"{node} = {sympy.sstr(expr, full_prec=False)}" for node, expr in self.needed(self._result_exprs())]
        if self.result is not None:
            lines.append(f"result = {sympy.sstr(self.result, full_prec=False)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Program: {len(self.assignments)} assignments over inputs {', '.join(map(str, self.inputs))}>"

    def _result_exprs(self) -> list[sympy.Expr]:
        if self.result is None:
            return [e for jet in self.jets for e in jet.values()]
        return list(self.result) if isinstance(self.result, sympy.MatrixBase) else [self.result]


def _tree_size(expr: sympy.Expr, sizes: dict[sympy.Symbol, int]) -> int:
    total = 0
    stack = [expr]
    while stack:
        e = stack.pop()
        if e in sizes:
            total += sizes[e]
        else:
            total += 1
            stack.extend(e.args)
    return total


def closure(wanted: Iterable[MultiIndex]) -> list[MultiIndex]:
    """All sub-multi-indices of ``wanted`` (``()`` included), sorted by order then lexically."""
    found: set[MultiIndex] = {()}
    for alpha in wanted:
        alpha = tuple(sorted(alpha))
        for size in range(1, len(alpha) + 1):
            found.update(itertools.combinations(alpha, size))
    return sorted(found, key=lambda a: (len(a), a))


def multi_indices(n_inputs: int, order: int) -> list[MultiIndex]:
    """Every multi-index of total order ``<= order`` over ``n_inputs`` inputs.

    Refused (:class:`~symnet.LimitError`) past :data:`symnet.limits.MAX_DERIVATIVE_ORDER` or
    :data:`symnet.limits.MAX_CHAIN_RULE_TERMS` multi-indices.
    """
    check_order(order, "multi_indices")
    check_terms(comb(n_inputs + order, order), f"multi-indices of order <= {order} in {n_inputs} inputs")
    return [a for k in range(order + 1) for a in itertools.combinations_with_replacement(range(n_inputs), k)]




class _Builder:
    def __init__(self, program: Program, indices: list[MultiIndex], names: Sequence[str],
                 shift_softmax: bool = False) -> None:
        self.program = program
        self.indices = indices
        self.names = names
        self.shift_softmax = shift_softmax

    def label(self, base: str, alpha: MultiIndex) -> str:
        return base if not alpha else f"{base}[{','.join(self.names[i] for i in alpha)}]"

    def linear(self, args: list[list[Jet]], units: list[Any], base: str) -> list[Jet]:
        """The linear family: ``d^alpha out_j = sum_k c_k d^alpha in[k]`` (+ the offset in the value)."""
        out = []
        for j, (terms, offset) in enumerate(units):
            jet: Jet = {}
            for alpha in self.indices:
                parts = [args[p][i][alpha] * c for p, i, c in terms if alpha in args[p][i] and c != 0]
                if not alpha:
                    parts.append(offset)
                expr = sympy.Add(*parts)
                if expr != 0:
                    jet[alpha] = self.program.assign(self.label(f"{base}_{j}", alpha), expr)
            out.append(jet)
        return out

    def bilinear(self, a: list[Jet], b: list[Jet], width: int, base: str) -> list[Jet]:
        """The bilinear family: Leibniz's rule for ``a_j * b_j`` (a width-1 input broadcasts)."""
        return [self.product(a[0 if len(a) == 1 else j], b[0 if len(b) == 1 else j], f"{base}_{j}")
                for j in range(width)]

    def compose(self, derivatives: list[sympy.Expr], jet: Jet, base: str) -> Jet:
        """Faa di Bruno: the jet of ``f(q)`` from ``f^(k)(q)`` (``derivatives[k]``) and the jet of ``q``."""
        out: Jet = {}
        for alpha in self.indices:
            if not alpha:
                expr = derivatives[0]
            else:
                terms = []
                for partition in set_partitions(len(alpha)):
                    if derivatives[len(partition)] == 0:  # linear layers: only the one-block partition
                        continue
                    factors = [jet.get(block_index(alpha, block), sympy.S.Zero) for block in partition]
                    if all(f != 0 for f in factors):
                        terms.append(derivatives[len(partition)] * sympy.Mul(*factors))
                expr = sympy.Add(*terms)
            if expr != 0:
                out[alpha] = self.program.assign(self.label(base, alpha), expr)
        return out

    def product(self, u: Jet, v: Jet, base: str) -> Jet:
        """Leibniz: the jet of ``u * v``."""
        out: Jet = {}
        for alpha in self.indices:
            terms = []
            for mask in itertools.product((0, 1), repeat=len(alpha)):
                left = block_index(alpha, [p for p, m in enumerate(mask) if m])
                right = block_index(alpha, [p for p, m in enumerate(mask) if not m])
                if left in u and right in v:
                    terms.append(u[left] * v[right])
            expr = sympy.Add(*terms)
            if expr != 0:
                out[alpha] = self.program.assign(self.label(base, alpha), expr)
        return out

    def activation(self, jets: list[Jet], base: str, activation: Any) -> list[Jet]:
        """The elementwise family (Faa di Bruno per unit); softmax by its own rule."""
        order = max(len(a) for a in self.indices)
        tag = base[1:] if base[:1] == "a" and base[1:].isdigit() else f"_{base}"  # chains: a3 -> d1a3_0, e3_0
        if activation.elementwise:
            return [self._elementwise(jet, activation, order, f"{base}_{j}", f"{tag}_{j}" if tag[0] != "_" else None)
                    for j, jet in enumerate(jets)]
        if activation.name == "softmax":
            return self._softmax(jets, order, tag, base)
        if activation.name == "log_softmax":
            return self._log_softmax(jets, order, tag, base)
        raise NotImplementedError(activation.name)  # pragma: no cover - registry guards this

    def _elementwise(self, jet: Jet, activation: Any, order: int, base: str, suffix: str | None) -> Jet:
        z = jet.get((), sympy.S.Zero)
        value = activation(z)
        node = self.program.assign(base, value)
        derivatives = [node]
        for k in range(1, order + 1):
            expr = substitute(activation.derivative(k), {T: z})
            if value != node:
                expr = substitute(expr, {value: node})  # reuse the activation node: 1 - a**2 for tanh
            derivatives.append(self.program.assign(f"d{k}a{suffix}" if suffix else f"d{k}_{base}", expr))
        return self.compose(derivatives, jet, base)

    def _softmax(self, jets: list[Jet], order: int, layer: str, base: str) -> list[Jet]:
        if self.shift_softmax:
            if len(jets) == 1:  # exp(z) / exp(z): 1 with no derivatives (unshifted, exp(800) overflows)
                return [{(): sympy.Float(1.0)}]
            jets, _ = self._shifted(jets, layer)
        exps, total = self._exp_sum(jets, order, layer)
        r = self.program.assign(f"r{layer}", 1 / total[()])
        reciprocal = [r] + [sympy.Integer((-1) ** k * sympy.factorial(k)) * r ** (k + 1) for k in range(1, order + 1)]
        inverse = self.compose(reciprocal, total, f"r{layer}")
        return [self.product(e, inverse, f"{base}_{j}") for j, e in enumerate(exps)]

    def _log_softmax(self, jets: list[Jet], order: int, layer: str, base: str) -> list[Jet]:
        """``z_j - log(sum_k exp(z_k))``; in float code ``(z_j - z_m) - log1p(sum_{k != m} exp(z_k - z_m))``.

        The shifted sum is at least 1 (unit ``m`` contributes ``exp(0)``), so its ``log`` is
        finite and ``log^(k)(S) = (-1)^(k-1) (k-1)! / S^k`` never divides by a tiny number; its
        value is ``log1p`` of the other units' sum, so the largest unit's ``-L`` keeps its
        relative accuracy where the others are far below it (``log(S)`` rounds ``S`` to 1 there).
        """
        if self.shift_softmax:
            if len(jets) == 1:  # z - log(exp(z)) = 0 exactly (unshifted, exp(800) overflows)
                return [{(): sympy.Float(0.0)}]
            jets, first = self._shifted(jets, layer)
        exps, total = self._exp_sum(jets, order, layer)
        if self.shift_softmax:  # the sum without unit m's exp(0) = 1: exact however small
            others = sympy.Add(*((1 - flag) * e[()] for flag, e in zip(first, exps)))
            logarithm = [self.program.assign(f"L{layer}", log1p(self.program.assign(f"Sm{layer}", others)))]
        else:
            logarithm = [self.program.assign(f"L{layer}", sympy.log(total[()]))]
        r = self.program.assign(f"r{layer}", 1 / total[()]) if order else None
        logarithm += [sympy.Integer((-1) ** (k - 1) * sympy.factorial(k - 1)) * r ** k for k in range(1, order + 1)]
        return self._minus(jets, self.compose(logarithm, total, f"L{layer}"), base)

    def _minus(self, jets: list[Jet], common: Jet, base: str) -> list[Jet]:
        """The jets of ``u_j - c`` for each unit's jet ``u_j`` and one jet ``c``."""
        out = []
        for j, jet in enumerate(jets):
            unit: Jet = {}
            for alpha in self.indices:
                expr = jet.get(alpha, sympy.S.Zero) - common.get(alpha, sympy.S.Zero)
                if expr != 0:
                    unit[alpha] = self.program.assign(self.label(f"{base}_{j}", alpha), expr)
            out.append(unit)
        return out

    def _exp_sum(self, jets: list[Jet], order: int, layer: str) -> tuple[list[Jet], Jet]:
        """The jets of ``exp(z_j)`` (one per unit) and of their sum ``S``."""
        exps = []
        for j, jet in enumerate(jets):
            e = self.program.assign(f"e{layer}_{j}", sympy.exp(jet.get((), sympy.S.Zero)))
            exps.append(self.compose([e] * (order + 1), jet, f"e{layer}_{j}"))
        total: Jet = {}
        for alpha in self.indices:
            expr = sympy.Add(*(e[alpha] for e in exps if alpha in e))
            if expr != 0:
                total[alpha] = self.program.assign(self.label(f"S{layer}", alpha), expr)
        return exps, total

    def _shifted(self, jets: list[Jet], layer: str) -> tuple[list[Jet], list[sympy.Expr]]:
        """The jets of ``z_j - z_m``, ``m`` the first unit with the largest value at the point, and
        the 0/1 flags ``first_k`` that pick ``m``.

        ``first_k`` is 1 at the first largest unit and 0 elsewhere, so the shift's jet -- the
        maximum for the value, ``sum_k first_k d^alpha z_k`` for a derivative -- is exactly
        ``d^alpha z_m``, and unit ``m``'s shifted jet is exactly 0: its ``exp`` is 1 with no
        derivatives, and the others' are at most 1.
        """
        values = [jet.get((), sympy.S.Zero) for jet in jets]
        largest = values[0]
        for value in values[1:]:  # a running maximum: one comparison per unit in the printed code
            largest = self.program.assign(f"zmax{layer}", sympy.Max(largest, value))
        first: list[sympy.Expr] = []
        taken: sympy.Expr = sympy.S.Zero  # 1 once an earlier unit was the first largest
        for k, value in enumerate(values):
            is_largest = sympy.Piecewise((sympy.S.One, sympy.Eq(value, largest)), (sympy.S.Zero, True))
            first.append(self.program.assign(f"first{layer}_{k}", is_largest * (1 - taken)))
            if k < len(values) - 1:
                taken = self.program.assign(f"taken{layer}_{k}", taken + first[-1])
        shift: Jet = {(): largest}  # the value itself: no 0 * (-inf) from a unit whose logit overflowed
        for alpha in self.indices[1:]:  # indices start with the value's ()
            expr = sympy.Add(*(w * jet[alpha] for w, jet in zip(first, jets) if alpha in jet))
            if expr != 0:
                shift[alpha] = self.program.assign(self.label(f"zshift{layer}", alpha), expr)
        return self._minus(jets, shift, f"zs{layer}"), first


def build(network: Any, wanted: Iterable[MultiIndex], *, shift_softmax: bool = False) -> Program:
    """The program computing the jets ``wanted`` (multi-indices) of every network output.

    The returned program's ``jets[k][alpha]`` is ``d^alpha`` of output ``k`` over nodes.
    ``shift_softmax=True`` (for programs printed as float code: the kernels, exported source)
    evaluates a softmax layer as ``exp(z - z_m) / sum(exp(z - z_m))``, shifted by the jet of its
    first largest unit ``z_m`` (chosen point by point): no ``exp`` overflows and no derivative
    cancels in the tails (``1 - s_m`` is never formed where ``s_m`` is near 1).  Off, the
    program holds the plain ``exp(z) / sum(exp(z))``, which reads better as a formula.
    Raises :class:`~symnet.LimitError` for a partial above
    :data:`symnet.limits.MAX_DERIVATIVE_ORDER` or more than
    :data:`symnet.limits.MAX_CHAIN_RULE_TERMS` chain-rule terms in all.
    """
    wanted = [tuple(alpha) for alpha in wanted]
    for alpha in wanted:
        check_order(len(alpha), "a partial derivative")
    indices = closure(wanted)
    graph = network.graph
    neurons = graph.neurons
    check_terms(chain_rule_terms((len(alpha) for alpha in indices), neurons),
                f"{len(indices)} partials over {neurons} neurons")
    names = [s.name for s in network.inputs]
    program = Program(network.inputs)
    builder = _Builder(program, indices, names, shift_softmax)
    jets: list[Jet] = [{(): x, (i,): sympy.S.One} if (i,) in indices else {(): x}
                       for i, x in enumerate(network.inputs)]
    units: dict[str, list[Jet]] = {"x": jets}
    last_use = graph.last_use
    for position, node in enumerate(graph.nodes[1:], start=1):
        args = [units[name] for name in node.inputs]
        family = node.family
        if family == "linear":
            units[node.name] = builder.linear(args, node.linear_terms, node.name)
        elif family == "elementwise":
            units[node.name] = builder.activation(args[0], node.name, node.activation)
        elif family == "bilinear":
            units[node.name] = builder.bilinear(args[0], args[1], node.width, node.name)
        else:  # pragma: no cover - the op table admits only these families
            raise NotImplementedError(family)
        for name in node.inputs:  # a value lives until its last use
            if last_use[name] == position:
                units.pop(name, None)
    program.jets = units[graph.output]
    return program
