"""Which strategy and schedule a kernel takes, and why (``kernel.strategy_reason``)."""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import ExpressionSizeWarning, InputError
from ..network import Network
from ..program import closure
from ..requests import Request
from ._adjoint import adjoint_unsupported, cheaper
from ._graph_adjoint import graph_adjoint_cheaper, graph_adjoint_unsupported
from ._graph_layered import graph_supports
from ._layered import forward_streams, supports

#: ``strategy="auto"`` prints the expression program while it has at most this many
#: weight-times-stream terms.  Why a size limit: the unrolled expression kernel evaluates
#: faster than the layered one on small nets, but numba's compile time grows with its length
#: while the layered passes compile once, whatever the size; this limit is where the compile
#: time stops paying (the measurements: docs/kernels.md, "Strategies").
EXPRESSION_LIMIT = 200

#: Past this many weight-times-stream terms a numba expression kernel's ``compile`` warns
#: (:class:`~symnet.ExpressionSizeWarning`) before generating its source, since numba's compile
#: time grows with the unrolled program's length: ten times :data:`EXPRESSION_LIMIT`'s
#: (docs/kernels.md).  ``auto`` never goes there; ``strategy="expression"`` on a large graph may.
EXPRESSION_WARNING = 2000


def node_by_node(net: Network) -> bool:
    """Whether the layered strategy evaluates ``net`` node by node: a graph, or a chain with a
    softmax layer (whose rule, through its parts, is the graph plan's)."""
    return not net.is_chain or not all(activation.elementwise for activation in net.activations)


def choose(net: Network, request: Request, strategy: str) -> tuple[str, str]:
    """The strategy and why (``kernel.strategy_reason``)."""
    reason = graph_supports(net, request.partials) if node_by_node(net) else \
        supports(net, request.words, request.partials)
    if strategy == "layered" and reason:
        raise InputError(f"strategy='layered' cannot evaluate this request: {reason}; use strategy='expression'")
    if strategy != "auto":
        return strategy, f"strategy={strategy!r} was asked for"
    if reason:
        return "expression", f"auto: the layered strategy cannot evaluate this request: {reason}"
    if net.is_chain:
        streams = len(closure(request.multi_indices(net.n_inputs)))
        terms = sum(layer.fan_in * layer.fan_out + _softmax_terms(activation, layer.fan_out)
                    for layer, activation in zip(net.layers, net.activations)) * streams
    else:
        terms = _graph_terms(net, request)
    if terms <= EXPRESSION_LIMIT:
        return "expression", (f"auto: {terms} weight-times-stream terms, at most EXPRESSION_LIMIT "
                              f"({EXPRESSION_LIMIT}): the unrolled expression kernel evaluates faster")
    return "layered", (f"auto: {terms} weight-times-stream terms, more than EXPRESSION_LIMIT ({EXPRESSION_LIMIT}): "
                       "the expression kernel would take long to compile")


#: A softmax unit's statements in the expression program, per stream, counted as terms: its share
#: of the running maximum, its 0/1 flag, its shifted jet, ``exp``, the sum and the product with
#: the reciprocal.  numba's compile time follows the statements: a 1 -> 200 softmax layer (value
#: only, 200 weights) took 55-63 s to compile unrolled, 0.4-0.8 s layered (2026-12-07).
SOFTMAX_UNIT_TERMS = 8


def _softmax_terms(activation: Any, width: int) -> int:
    return SOFTMAX_UNIT_TERMS * width if not activation.elementwise else 0


def _graph_terms(net: Network, request: Request) -> int:
    """The weight-times-stream terms of a graph's expression program: each linear node's
    coefficients and each other node's units (a softmax node's :data:`SOFTMAX_UNIT_TERMS` per
    unit), times the derivative streams."""
    streams = len(closure(request.multi_indices(net.n_inputs)))
    units = sum(sum(len(terms) for terms, _ in node.linear_terms) if node.family == "linear" else
                node.width + (_softmax_terms(node.activation, node.width) if node.family == "elementwise" else 0)
                for node in net.graph.nodes[1:])
    return units * streams


def warn_if_large(net: Network, request: Request) -> None:
    terms = _graph_terms(net, request)
    if terms > EXPRESSION_WARNING:
        warnings.warn(f"this graph network's expression kernel has about {terms:,} weight-times-stream terms "
                      f"(more than EXPRESSION_WARNING, {EXPRESSION_WARNING:,}): numba's compile time grows with its "
                      "length, so this may take a minute or more; strategy='layered' compiles a few passes whatever "
                      "the size, and backend='numpy' compiles nothing.",
                      ExpressionSizeWarning, stacklevel=5)


def schedule_of(net: Network, request: Request, strategy: str, backend: str, schedule: str) -> str | None:
    if strategy != "layered":
        if schedule != "auto":
            raise InputError(f"schedule={schedule!r} is for the layered strategy; this kernel uses {strategy!r}: "
                             "pass strategy='layered' too")
        return None
    if node_by_node(net):
        reason = graph_adjoint_unsupported(net, request.words, request.partials)
        if schedule == "forward-adjoint" and reason:
            raise InputError(f"schedule='forward-adjoint' cannot evaluate this request: {reason}; use schedule='forward'")
        if schedule != "auto":
            return schedule
        # with fewer streams through the products the sweep measured faster on graphs without
        # products (ResNet, Fourier features) and on wide gated ones, slower on narrow gated ones
        # (graph_adjoint_cheaper)
        streams = forward_streams(net.n_inputs, request.words, request.partials, only_asked=True)
        sweep = backend == "numba" and graph_adjoint_cheaper(net, request.words, request.partials, streams)
        return "forward-adjoint" if sweep else "forward"
    if schedule == "forward-adjoint":
        reason = adjoint_unsupported(net, request.words, request.partials, backend)
        if reason:
            raise InputError(f"schedule='forward-adjoint' cannot evaluate this request: {reason}; use schedule='forward'")
        return schedule
    if schedule == "auto":
        return "forward-adjoint" if backend == "numba" and cheaper(net, request.words, request.partials) else "forward"
    return schedule
