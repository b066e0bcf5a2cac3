"""Runs of pointwise arithmetic on a graph's Taylor streams, fused into one loop.

A graph's gates, blends and residual sums are strings of small ops -- jaxpi's gate
``h * u + (1 - h) * v`` is a ``mul``, a ``rescale``, a ``mul`` and an ``add`` -- and node by
node each one reads and writes every stream of a whole layer: the gate moves 66 streams' worth
of memory for 24 streams of inputs and result.  A *run* is a string of consecutive nodes
(in the graph's order) of the ops in :data:`POINTWISE_OPS`, all of one width; the layered
strategy evaluates it in one generated numba loop over points and units
(:func:`run_source`), which loads each input stream once, keeps every member's streams in
registers and stores only the members read after the run (:attr:`Run.outputs`).

Consecutive nodes form a convex piece of the graph (a path leaving the run and coming back
would pass a node between two members, which is a member), so reading every input before
writing any output computes what node-by-node evaluation computes.  The rules are those of
the node-by-node evaluation (:mod:`._graph_layered`): linear ops act on every stream, their
offsets on the value only; a product is Leibniz's rule over the streams
(:func:`._graph_layered.leibniz_terms`); a width-1 input broadcasts over the units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .codegen import docstring

__all__ = ["MAX_RUN", "POINTWISE_OPS", "Run", "pointwise_runs", "product_term", "run_parameters", "run_source"]

#: The ops a run may hold: unit-by-unit arithmetic of one or two inputs.
POINTWISE_OPS = ("add", "sub", "scale", "shift", "rescale", "mul")

#: The most nodes one run holds: a longer string (a sum of a thousand skips, from a file) is cut
#: into runs of this many, so that no generated loop grows with the graph (numba's compile time
#: grows with a function's length, and its registers are spilled anyway long before).
MAX_RUN = 16


@dataclass(frozen=True)
class Run:
    """Consecutive pointwise nodes evaluated as one loop.

    Attributes:
        members: the nodes, in the graph's order (two or more, all of one width).
        inputs: the values the members read from outside the run, in order of first reading.
        outputs: the members read after the run (by a later node, as the graph's output, or
            kept for a reverse sweep), in the members' order; the others are never stored.
    """

    members: tuple[Any, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def product_term(count: int, a: str, b: str) -> str:
    """One of Leibniz's terms as source: ``count * a * b``, the count left out when it is 1.

    >>> product_term(1, "a0", "b1"), product_term(2, "A[1, p, j]", "B[1, p, j]")
    ('a0 * b1', '2.0 * A[1, p, j] * B[1, p, j]')
    """
    return ("" if count == 1 else f"{float(count)!r} * ") + f"{a} * {b}"


def pointwise_runs(live: Sequence[Any], output: str, kept: frozenset[str] = frozenset()) -> list[Run]:
    """The runs of ``live`` (a graph's nodes in order): maximal strings of two or more
    consecutive nodes of :data:`POINTWISE_OPS` with one width, at most :data:`MAX_RUN` long.

    >>> from symnet.graph import zoo
    >>> net = zoo.modified_mlp(d_in=2, width=3, depth=1)
    >>> [([m.op for m in run.members], run.outputs) for run in pointwise_runs(net.graph.nodes[1:], net.graph.output)]
    [(['mul', 'rescale', 'mul', 'add'], ('add1',))]
    """
    groups: list[list[Any]] = []
    for node in live:
        if node.op not in POINTWISE_OPS:
            groups.append([])
        elif groups and groups[-1] and groups[-1][0].width == node.width and len(groups[-1]) < MAX_RUN:
            groups[-1].append(node)
        else:
            groups.append([node])
    readers: dict[str, set[str]] = {}  # value -> the nodes reading it, built once (linear in the graph)
    for node in live:
        for name in node.inputs:
            readers.setdefault(name, set()).add(node.name)
    runs = []
    for group in groups:
        if len(group) < 2:
            continue
        names = {node.name for node in group}
        inputs = list(dict.fromkeys(name for node in group for name in node.inputs if name not in names))
        outputs = tuple(node.name for node in group
                        if node.name == output or node.name in kept or not readers.get(node.name, set()) <= names)
        runs.append(Run(tuple(group), tuple(inputs), outputs))
    return runs


def run_source(run: Run, streams: dict[str, int], widths: dict[str, int], terms: list[list[tuple[int, int, int]]],
               cache: bool) -> str:
    """A module whose ``pointwise(*inputs, *parameters, *outputs)`` evaluates ``run`` point by point.

    ``streams[name]`` is the number of streams a value carries (all of them, or 1 for a value
    that does not vary with the directions asked for: its other streams are zero and are not
    read); ``widths[name]`` its width (1 broadcasts); ``terms`` Leibniz's terms of a product per
    stream.  Inputs and outputs are ``(streams, points, width)`` arrays; the parameters are
    ``(1, 1)`` or ``(1, width)``: a ``scale``'s ``s``, a ``shift``'s ``t``, a ``rescale``'s
    ``scale`` and ``offset``, in the members' order (:func:`run_parameters`).
    """
    width = run.members[0].width
    loads: dict[str, str] = {}  # local name -> its load, for the streams some member reads
    lines: list[str] = []
    value_of: dict[str, list[str | None]] = {}  # value -> a local name per stream, None for a zero stream

    def unit(full: int) -> str:
        return "j" if full > 1 or width == 1 else "0"

    for e, name in enumerate(run.inputs):
        index = unit(widths[name])
        local = [f"i{e}_{r}" for r in range(streams[name])]
        for r, symbol in enumerate(local):
            loads[symbol] = f"I{e}[{r}, p, {index}]"
        value_of[name] = list(local)
    used: set[str] = set()
    parameters: list[str] = []
    hoisted: list[str] = []  # the scalar parameters, read once

    def stream(name: str, r: int) -> str | None:
        got = value_of[name]
        symbol = got[r] if r < len(got) else None
        if symbol is not None:
            used.add(symbol)
        return symbol

    def parameter(shape: tuple[int, int]) -> str:
        name = f"P{len(parameters)}"
        parameters.append(name)
        if shape[1] > 1 and width > 1:
            return f"{name}[0, j]"
        hoisted.append(f"{name.lower()} = {name}[0, 0]")  # read before the loops: LLVM then vectorises them
        return name.lower()

    for n, node in enumerate(run.members):
        k = streams[node.name]
        result: list[str | None] = []
        op = node.op
        scale = offset = None
        if op in ("scale", "shift"):
            factor = parameter(tuple(node.params["s" if op == "scale" else "t"].shape))
            scale, offset = (factor, None) if op == "scale" else (None, factor)
        elif op == "rescale":
            scale, offset = parameter(tuple(node.attrs["scale"].shape)), parameter(tuple(node.attrs["offset"].shape))
        for r in range(k):
            if op == "mul":
                a, c = node.inputs
                products = []
                for count, i, q in terms[r]:
                    x, y = stream(a, i), stream(c, q)
                    if x is not None and y is not None:
                        products.append(product_term(count, x, y))
                expr = " + ".join(products) if products else None
            elif op in ("add", "sub"):
                x, y = stream(node.inputs[0], r), stream(node.inputs[1], r)
                sign = "+" if op == "add" else "-"
                if x is not None and y is not None:
                    expr = f"{x} {sign} {y}"
                elif y is None:
                    expr = x
                else:
                    expr = y if op == "add" else f"-{y}"
            else:
                x = stream(node.inputs[0], r)
                expr = x if x is None or scale is None else f"{scale} * {x}"
                if r == 0 and offset is not None:
                    expr = f"{expr} + {offset}"
            if expr is None or expr.isidentifier():
                result.append(expr)  # a zero stream, or an input's stream passed on: no new local
                continue
            local = f"n{n}_{r}"
            lines.append(f"{local} = {expr}")
            result.append(local)
        value_of[node.name] = result
    stores = []
    for o, name in enumerate(run.outputs):
        for r in range(streams[name]):
            symbol = stream(name, r)
            stores.append(f"O{o}[{r}, p, j] = {symbol if symbol is not None else '0.0'}")
    per_point = [f"{symbol} = {load}" for symbol, load in loads.items() if symbol in used and load.endswith(", 0]")]
    body = [f"{symbol} = {load}" for symbol, load in loads.items()
            if symbol in used and not load.endswith(", 0]")] + lines + stores
    indent = " " * 12
    arguments = [f"I{e}" for e in range(len(run.inputs))] + parameters + [f"O{o}" for o in range(len(run.outputs))]
    ops = ", ".join(node.op for node in run.members)
    return f'''{docstring(f"Generated by symnet: a run of pointwise nodes ({ops}) over the Taylor streams, fused.")}
import numba


@numba.njit(cache={cache}, nogil=True, error_model="numpy", fastmath={{"contract"}})
def pointwise({", ".join(arguments)}):
    W = O0.shape[2]
{"".join(f"    {line}{chr(10)}" for line in hoisted)}    for p in range(O0.shape[1]):
{"".join(f"        {line}{chr(10)}" for line in per_point)}        for j in range(W):
{chr(10).join(indent + line for line in body)}
'''


def run_parameters(run: Run, weights: tuple[Any, ...], first_array: dict[str, int], constants: dict[str, Any]
                   ) -> list[Any]:
    """The parameter arrays of ``run``'s kernel, in :func:`run_source`'s order."""
    found: list[Any] = []
    for node in run.members:
        if node.op in ("scale", "shift"):
            found.append(weights[first_array[node.name]])
        elif node.op == "rescale":
            found += [constants[node.name]["scale"], constants[node.name]["offset"]]
    return found
