"""The graph IR: a network as a straight-line program of tensor operations, frozen and shape-checked.

A :class:`Graph` is a topologically ordered tuple of :class:`Node` equations
``name = op(inputs; params, attrs)``, as a jaxpr is.  The first node is the ``input`` node (its
units are the network's input symbols); the last is the output.  Every node holds one feature
vector per point, of ``node.width`` units.  Parameters are SymPy matrices (numbers, symbols or
expressions of them, checked by :mod:`symnet.weights`); constants (a Fourier matrix, a
normalisation's mean) are attributes and are not trained.

Build graphs with :mod:`symnet.graph.builder` (``h = dense(x, W, b, "tanh")``, ``h + g``) or
from a chain (:meth:`Graph.from_chain`); :class:`~symnet.Network` wraps one.

>>> import sympy
>>> from symnet.graph.builder import input, dense, network
>>> x = input(1)
>>> net = network(x, dense(x, [[2.0]], [1.0], "square") + x)
>>> net.graph.nodes[-1]
Node('add1' = add(a1, x))
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable, Mapping, Sequence

import sympy

from ..activations import Activation
from ..errors import ShapeError, WeightError
from ..weights import symbols
from .ops import OPS, dense_weight

__all__ = ["Graph", "Node", "check_name"]


def check_name(name: Any, what: str = "node name") -> str:
    """``name`` if it is an ASCII identifier (it names program nodes and generated code), else an error."""
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii() or len(name) > 64:
        raise ShapeError(f"{what} {name!r} must be an ASCII identifier of at most 64 characters, such as 'res1'")
    return name


@dataclass(frozen=True, eq=False)
class Node:
    """One equation of a graph: ``name = op(inputs; params, attrs)``.

    Attributes:
        name: unique in its graph, an ASCII identifier.
        op: a key of :data:`symnet.graph.ops.OPS` (``"input"`` for the first node).
        inputs: names of earlier nodes.
        params: trainable parameters by name, each an ``ImmutableMatrix``.
        attrs: fixed attributes (``activation``, ``units``, constants as ``ImmutableMatrix``,
            slice bounds).
        width: the number of units (features) it computes per point.
        input_widths: the widths of its inputs, in order.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    params: Mapping[str, sympy.ImmutableMatrix]
    attrs: Mapping[str, Any]
    width: int
    input_widths: tuple[int, ...] = ()

    @property
    def family(self) -> str:
        """The op's rule family (``"input"`` for the input node)."""
        return "input" if self.op == "input" else OPS[self.op].family

    @property
    def activation(self) -> Activation:
        """The activation of an ``activation`` node."""
        return self.attrs["activation"]

    @cached_property
    def weight(self) -> sympy.ImmutableMatrix:
        """A dense node's effective ``W`` ``(fan_in, units)`` (see :func:`symnet.graph.ops.dense_weight`)."""
        return dense_weight(self)

    @cached_property
    def linear_terms(self) -> list[Any]:
        """A linear node's units: ``([(input position, unit, coefficient)], offset)`` each."""
        return OPS[self.op].linear(self)  # type: ignore[misc]

    def __repr__(self) -> str:
        what = self.attrs["activation"].name if self.op == "activation" else self.op
        return f"Node({self.name!r} = {what}({', '.join(self.inputs)}))"

    def key(self) -> tuple[Any, ...]:
        """Everything that defines the node, for equality and hashing."""
        attrs = tuple(sorted((k, (v.name, v.form) if isinstance(v, Activation) else v)
                             for k, v in self.attrs.items()))
        return (self.name, self.op, self.inputs, tuple(sorted(self.params.items())), attrs, self.width)



class Graph:
    """A frozen, shape-checked DAG of tensor ops; the first node is the input, the last the output.

    Args:
        inputs: the input symbols (real), one per unit of the input node.
        nodes: the nodes after the input node, each after the nodes it reads.
        output: the output node's name (default: the last node).

    Raises :class:`~symnet.ShapeError` naming the node at fault: an unknown op or input, a
    duplicate name, a wrong number of inputs, widths that do not fit, a parameter of the wrong
    shape.
    """

    def __init__(self, inputs: Sequence[sympy.Symbol], nodes: Iterable[Node], output: str | None = None) -> None:
        inputs = tuple(inputs)
        if not inputs:
            raise ShapeError("a graph needs at least one input")
        if len(set(inputs)) != len(inputs) or len({getattr(s, "name", s) for s in inputs}) != len(inputs):
            names = ", ".join(str(s) for s in inputs[:8])
            raise ShapeError(f"the graph's input names ({names}{', ...' if len(inputs) > 8 else ''}) must be "
                             "distinct: two inputs of one name would be one variable")
        first = Node("x", "input", (), {}, {}, len(inputs))
        checked: list[Node] = [first]
        widths: dict[str, int] = {"x": len(inputs)}
        for node in nodes:
            checked.append(_check_node(node, widths))
            widths[node.name] = checked[-1].width
        if len(checked) < 2:
            raise ShapeError("a graph needs at least one node after its input")
        output = checked[-1].name if output is None else output
        if output not in widths:
            raise ShapeError(f"output node {output!r} is not a node of the graph")
        if output == "x":
            raise ShapeError("the output is the input itself; a network's output is a node after it")
        self.inputs = inputs
        self.nodes = tuple(checked)
        self.output = output
        self.by_name = {node.name: node for node in self.nodes}

    @property
    def n_outputs(self) -> int:
        return self.by_name[self.output].width

    @cached_property
    def params(self) -> tuple[sympy.Symbol, ...]:
        """The free symbols of every parameter, node by node, each matrix row-major."""
        seen: dict[sympy.Symbol, None] = {}
        for node in self.nodes:
            for matrix in node.params.values():
                for symbol in symbols(matrix):
                    seen.setdefault(symbol, None)
        return tuple(seen)

    @property
    def is_numeric(self) -> bool:
        return not self.params

    @cached_property
    def neurons(self) -> int:
        """Units of the nonlinear nodes (elementwise and bilinear): what the chain rule's work grows with.

        A chain's count is its number of neurons (the sum of its layer sizes).
        """
        return max(1, sum(node.width for node in self.nodes[1:] if node.family != "linear"))

    @cached_property
    def last_use(self) -> dict[str, int]:
        """For each node, the position of the last node that reads it (a value's lifetime)."""
        last = {node.name: i for i, node in enumerate(self.nodes)}
        for i, node in enumerate(self.nodes):
            for name in node.inputs:
                last[name] = i
        last[self.output] = len(self.nodes)
        return last

    def forward(self, values: Sequence[sympy.Expr]) -> list[sympy.Expr]:
        """The output units at input ``values`` (SymPy expressions), node by node, by family rule."""
        units: dict[str, list[sympy.Expr]] = {"x": list(values)}
        for node in self.nodes[1:]:
            args = [units[name] for name in node.inputs]
            units[node.name] = apply(node, args)
        return units[self.output]

    def replace(self, mapping: Mapping[sympy.Symbol, sympy.Expr]) -> Graph:
        """A copy with parameters replaced (``xreplace``), checked again."""
        nodes = [Node(n.name, n.op, n.inputs, {k: v.xreplace(mapping) for k, v in n.params.items()}, n.attrs, n.width)
                 for n in self.nodes[1:]]
        return Graph(self.inputs, nodes, self.output)

    def with_inputs(self, inputs: Sequence[sympy.Symbol]) -> Graph:
        return Graph(inputs, self.nodes[1:], self.output)

    def key(self) -> tuple[Any, ...]:
        return (self.inputs, tuple(node.key() for node in self.nodes), self.output)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Graph) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return f"<Graph: {len(self.nodes) - 1} nodes, {len(self.inputs)} -> {self.n_outputs}>"

    def describe(self) -> str:
        """One line per node: ``name = op(inputs)  [width]``, with activations and parameter shapes."""
        lines = [f"x = input()  [{len(self.inputs)}: {', '.join(s.name for s in self.inputs)}]"]
        for node in self.nodes[1:]:
            what = node.activation.name if node.op == "activation" else node.op
            extra = "".join(f", {k}{tuple(v.shape)}" for k, v in node.params.items())
            if node.op == "dense" and node.attrs.get("parametrization", "plain") != "plain":
                extra += f", {node.attrs['parametrization']}"
            if node.op == "slice":
                extra += f", [{node.attrs['start']}:{node.attrs['stop']}]"
            lines.append(f"{node.name} = {what}({', '.join(node.inputs)}{extra})  [{node.width}]")
        if self.output != self.nodes[-1].name:
            lines.append(f"output = {self.output}")
        return "\n".join(lines)

    # --- chains ----------------------------------------------------------------------------

    @classmethod
    def from_chain(cls, layers: Sequence[Any], inputs: Sequence[sympy.Symbol]) -> Graph:
        """The graph of a chain of ``Dense`` layers: nodes ``z1, a1, z2, a2, ...``."""
        nodes, previous = [], "x"
        for number, layer in enumerate(layers, start=1):
            nodes.append(Node(f"z{number}", "dense", (previous,), {"W": layer.weight, "b": layer.bias},
                              {"units": layer.fan_out}, layer.fan_out))
            nodes.append(Node(f"a{number}", "activation", (f"z{number}",), {}, {"activation": layer.activation},
                              layer.fan_out))
            previous = f"a{number}"
        return cls(inputs, nodes)

    def chain_layers(self) -> list[tuple[sympy.ImmutableMatrix, sympy.ImmutableMatrix, Activation | None]] | None:
        """``[(W, b, activation or None)]`` when the graph is a chain of plain dense layers, each
        followed by at most one activation, else ``None``."""
        layers: list[Any] = []
        previous = "x"
        nodes = self.nodes[1:]
        i = 0
        while i < len(nodes):
            node = nodes[i]
            if node.op != "dense" or node.inputs != (previous,) or node.attrs.get("parametrization", "plain") != "plain":
                return None
            activation = None
            previous = node.name
            if i + 1 < len(nodes) and nodes[i + 1].op == "activation" and nodes[i + 1].inputs == (node.name,):
                activation = nodes[i + 1].activation
                previous = nodes[i + 1].name
                i += 1
            layers.append((node.params["W"], node.params["b"], activation))
            i += 1
        return layers if self.output == previous else None


def _check_node(node: Any, widths: Mapping[str, int]) -> Node:
    if not isinstance(node, Node):
        raise ShapeError(f"a graph is made of symnet.graph.Node objects, not {type(node).__name__}")
    name = check_name(node.name)
    where = f"node {name!r} ({node.op})"
    if name in widths:
        raise ShapeError(f"{where}: the name {name!r} is used twice; give every node its own name")
    op = OPS.get(node.op)
    if op is None:
        raise ShapeError(f"{where}: unknown op {node.op!r}; the ops are {', '.join(sorted(OPS))}")
    for name_in in node.inputs:
        if name_in not in widths:
            raise ShapeError(f"{where}: input {name_in!r} is not an earlier node")
    if op.arity is not None and len(node.inputs) != op.arity:
        raise ShapeError(f"{where}: takes {op.arity} input(s), got {len(node.inputs)}")
    if not node.inputs:
        raise ShapeError(f"{where}: takes at least one input")
    if set(node.params) != set(_param_names(op, node)):
        raise ShapeError(f"{where}: parameters {sorted(node.params)} but {sorted(_param_names(op, node))} are needed")
    missing = [a for a in op.attrs if a not in node.attrs and a != "parametrization"]
    if missing:
        raise ShapeError(f"{where}: attributes {missing} are missing")
    in_widths = tuple(widths[n] for n in node.inputs)
    probe = Node(node.name, node.op, tuple(node.inputs), dict(node.params), dict(node.attrs), 0, in_widths)
    try:
        width = op.width(in_widths, probe)
        shapes = op.param_shapes(in_widths, width, probe)
    except ShapeError as exc:
        raise ShapeError(f"{where}: {exc}") from None
    if width < 1:
        raise ShapeError(f"{where}: has no units")
    for pname, shape in shapes.items():
        given = tuple(node.params[pname].shape)
        if given != tuple(shape):
            raise ShapeError(f"{where}: parameter {pname} has shape {given} but {tuple(shape)} is needed")
    if op.family == "elementwise" and not isinstance(node.attrs.get("activation"), Activation):
        raise ShapeError(f"{where}: the activation must be a symnet Activation")
    if node.op == "dense" and node.attrs.get("parametrization") == "weight_norm":
        v = node.params["v"]
        for j in range(v.shape[1]):
            if all(entry.is_zero for entry in v[:, j]):  # symbols are not zero: is_zero is None
                raise WeightError(f"{where}: column {j} of v is zero, so W[:, {j}] = g v / |v| divides by 0; "
                                  "weight normalisation needs a nonzero direction per unit")
    return Node(node.name, node.op, tuple(node.inputs), dict(node.params), dict(node.attrs), width, in_widths)


def _param_names(op: Any, node: Any) -> tuple[str, ...]:
    if node.op == "dense":
        kind = node.attrs.get("parametrization", "plain")
        return {"plain": ("W", "b"), "weight_norm": ("v", "g", "b"), "factorized": ("s", "V", "b")}.get(kind, op.params)
    return op.params


def apply(node: Node, args: list[list[sympy.Expr]]) -> list[sympy.Expr]:
    """The node's units as SymPy expressions of its inputs' units ``args``, by family rule."""
    family = node.family
    if family == "linear":
        return [sympy.Add(*(args[k][i] * c for k, i, c in terms), offset) for terms, offset in node.linear_terms]
    if family == "elementwise":
        return node.activation.apply_layer(args[0])
    if family == "bilinear":
        a, b = args
        return [a[0 if len(a) == 1 else j] * b[0 if len(b) == 1 else j] for j in range(node.width)]
    raise ShapeError(f"node {node.name!r}: no rule for family {family!r}")  # pragma: no cover
