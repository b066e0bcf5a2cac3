"""What a kernel is keyed by and what it is handed at run time.

A kernel's source depends on the network's *architecture* (:func:`architecture`: layer sizes
and activations, or a graph's ops, wiring, widths and constants), never on its weights, which
are runtime arrays (:func:`weight_arrays`).  :func:`twin` is the network of the same
architecture with a symbol for every weight, the one the expression kernel's program is built on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy

from ..activations import Activation
from ..errors import InputError
from ..graph import OPS, Graph
from ..graph import Node as GraphNode
from ..network import Network
from ..weights import float_array


def architecture(net: Network) -> tuple[Any, ...]:
    """What the kernel's source depends on (a chain: sizes and activations; a graph: :func:`_graph_architecture`)."""
    if not net.is_chain:
        return _graph_architecture(net.graph)
    return (net.layer_sizes, tuple(a.name if a.form is None else sympy.srepr(a.form) for a in net.activations))


def _activation_key(activation: Activation) -> str:
    return activation.name if activation.form is None else sympy.srepr(activation.form)


def _attribute_key(value: Any) -> Any:
    """A node attribute as part of a cache key: constants by their exact SymPy form."""
    if isinstance(value, Activation):
        return ("activation", _activation_key(value))
    if isinstance(value, sympy.MatrixBase):
        return ("matrix", tuple(value.shape), tuple(sympy.srepr(entry) for entry in value))
    return value


def graph_slots(node: GraphNode) -> list[tuple[str, sympy.ImmutableMatrix]]:
    """A node's runtime arrays: ``(parameter name, matrix)``, in a fixed order.

    A dense node passes its *effective* ``W`` (:attr:`symnet.graph.Node.weight`: a weight-
    normalised or factorised ``W`` evaluated once per network, not once per point) and ``b``;
    other nodes pass their parameters in the op table's order.  Constants (``node.attrs``) are
    not passed: they are printed into the source and are part of the architecture.
    """
    if node.op == "dense":
        return [("W", node.weight), ("b", node.params["b"])]
    return [(name, node.params[name]) for name in OPS[node.op].params]


def _graph_architecture(graph: Graph) -> tuple[Any, ...]:
    """What a graph kernel's source depends on: ops, wiring (by position, not by the user's node
    names), widths, constants, activations and the shapes of the runtime arrays."""
    position = {node.name: k for k, node in enumerate(graph.nodes)}
    nodes = []
    for node in graph.nodes[1:]:
        attrs = tuple(sorted((k, _attribute_key(v)) for k, v in node.attrs.items() if k != "parametrization"))
        shapes = tuple((name, tuple(matrix.shape)) for name, matrix in graph_slots(node))
        nodes.append((node.op, tuple(position[name] for name in node.inputs), node.width, attrs, shapes))
    return ("graph", len(graph.inputs), tuple(nodes), position[graph.output])


def weight_arrays(net: Network, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """The runtime arrays of ``net``, in the order the kernel takes them (a chain: ``W1, b1, W2, ...``)."""
    if not net.is_numeric:
        names = ", ".join(str(p) for p in net.params[:4])
        raise InputError(f"compile needs numeric weights, but {names}... are symbols: substitute numbers with net.subs(...)")
    if not net.is_chain:
        # evaluated in float64 (an effective W of a weight-normalised layer too), then cast
        return tuple(np.ascontiguousarray(float_array(matrix, f"node {node.name!r}: {name}"), dtype)
                     for node in net.graph.nodes[1:] for name, matrix in graph_slots(node))
    arrays = []
    for layer in net.layers:
        arrays += [np.ascontiguousarray(layer.weight_array(dtype)), np.ascontiguousarray(layer.bias_array(dtype))]
    return tuple(arrays)


def twin(net: Network) -> tuple[Network, dict[sympy.Symbol, str], list[str]]:
    """The network of the same architecture with a symbol for every weight, the map from each
    symbol to its array element in the kernel (``W2[3, 0]``), and the arrays' names in order.

    A graph's twin names its nodes by position (``z3``, ``a4``, ``add5``) and its arrays by
    parameter and position (``W3``, ``b3``, ``s7``): the user's node names never reach the source.
    """
    weights: dict[sympy.Symbol, str] = {}
    arrays: list[str] = []
    if net.is_chain:
        twin = Network.symbolic(net.layer_sizes, net.activations)
        for number, layer in enumerate(twin.layers, start=1):
            for i in range(layer.fan_in):
                for j in range(layer.fan_out):
                    weights[layer.weight[i, j]] = f"W{number}[{i}, {j}]"
            for j in range(layer.fan_out):
                weights[layer.bias[0, j]] = f"b{number}[{j}]"
            arrays += [f"W{number}", f"b{number}"]
        return twin, weights, arrays
    graph = net.graph
    renamed = {"x": "x"}
    for k, node in enumerate(graph.nodes[1:], start=1):
        renamed[node.name] = {"dense": "z", "activation": "a"}.get(node.op, node.op) + str(k)
    nodes = []
    for k, node in enumerate(graph.nodes[1:], start=1):
        params = {}
        for name, matrix in graph_slots(node):
            array = f"{name}{k}"
            symbols = sympy.ImmutableMatrix(*matrix.shape, lambda i, j: sympy.Symbol(f"{array}_{i}_{j}", real=True))
            weights.update({symbols[i, j]: f"{array}[{i}, {j}]"
                            for i in range(matrix.shape[0]) for j in range(matrix.shape[1])})
            arrays.append(array)
            params[name] = symbols
        attrs = {key: value for key, value in node.attrs.items() if key != "parametrization"}
        nodes.append(GraphNode(renamed[node.name], node.op, tuple(renamed[i] for i in node.inputs), params, attrs,
                               node.width))
    inputs = [sympy.Symbol(f"x{i}", real=True) for i in range(len(graph.inputs))]
    return Network.from_graph(Graph(inputs, nodes, renamed[graph.output])), weights, arrays
