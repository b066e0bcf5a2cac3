"""The layered strategy on a graph network: Taylor-mode streams node by node, one rule per family.

Every node of a graph (:mod:`symnet.graph`) carries the stacked streams a layer of a chain
carries in :mod:`._layered` -- the value, the tangents ``dz/dx_i``, the Hessian pairs or the
collapsed Laplacian, the entries of order 3 and more -- as one array ``(streams, points,
width)``, and each op family maps all streams at once:

``linear``
    every stream goes through the node's linear map and the offset enters the value only.
    ``dense`` is one BLAS product on the stack ``(streams * points, fan_in) @ W`` (a dense node
    reading the inputs writes its tangents from ``W``'s rows: :func:`._layered.entered`);
    ``add``, ``sub``, ``scale``, ``shift``, ``rescale``, ``matmul``, ``concat``, ``slice``,
    ``sum`` and ``mean`` are numpy operations on the stack; any other linear op goes through
    the constant matrices of its linear terms.
``elementwise``
    the activation's pass of the chain strategy (Faa di Bruno's formula, ``f^(k)`` printed
    from SymPy; one fused numba loop with ``backend="numba"``).
``bilinear``
    Leibniz's rule over the streams: ``d^alpha (a b) = sum over the sub-multi-indices beta of
    alpha of d^beta a * d^(alpha - beta) b``, and for the collapsed Laplacian
    ``a lap(b) + lap(a) b + 2 sum_i da_i db_i`` (:func:`leibniz_terms`); one generated numba
    loop over points (:func:`leibniz_source`), or numpy operations.

Composites (LayerNorm, Fourier features, gates, ...) are nodes of these families already
(:data:`symnet.graph.COMPOSITES`), so they need no rule here.  A softmax node, which mixes the
units of its layer, goes through its parts: ``e = exp(z - z_m)`` (``z_m`` the point's largest
unit, all its streams: softmax does not change, ``e_m = 1`` exactly and every ``e`` is at most
1), ``t = sum(e)`` (at least 1), ``r = 1/t`` and ``e * r``: the elementwise passes of ``exp``
and ``1/t`` and Leibniz's rule with ``r`` broadcast (:meth:`GraphLayeredPlan._softmax`).
Log-softmax is ``(z - z_m) - log(t)``: the same ``e`` and ``t`` (``t - 1`` summed without
``e_m``), the pass of ``log1p`` and a difference.

With ``backend="numba"``, consecutive pointwise nodes (``add``, ``sub``, ``scale``, ``shift``,
``rescale``, ``mul`` of one width: a gate, a blend, a sum of skips) run as one generated loop
that stores only the values read after it (:mod:`._pointwise`).

Buffers follow the values' lifetimes (:class:`Slots`): a node's streams live in a slot from
the node until its last reader (``Graph.last_use``), a skip connection keeps its slot, and an
elementwise or linear node whose input dies with it works in that input's slot.  A chunk of
points takes ``slots * streams * widest node`` numbers, sized to :data:`._layered.MEMORY_BUDGET`
per thread, so a call's memory is its results plus a fixed budget per thread, whatever the
graph's depth, as for chains.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np
from sympy.codegen.cfunctions import log1p

from ..activations import T, Activation, get as get_activation
from ..network import Network
from ..program import MultiIndex
from ..weights import float_array
from ._architecture import graph_slots
from . import _layered
from ._layered import MAX_ORDER, LayeredPlan, _fused_source, _pass_source, entered
from ._loss import linear_matrices
from ._pointwise import pointwise_runs, product_term, run_parameters, run_source
from .codegen import docstring

__all__ = ["GraphLayeredPlan", "Slots", "graph_supports", "leibniz_source", "leibniz_terms"]

#: Linear ops with a rule of their own here (others go through their linear terms' matrices).
_STACK_OPS = ("dense", "add", "sub", "scale", "shift", "rescale", "matmul", "concat", "slice", "sum", "mean")

#: Ops that may write their result into the slot of an input that dies with them (an input of
#: the node's own width), by position of that input.
_IN_PLACE = {"activation": (0,), "add": (0, 1), "sub": (0, 1), "scale": (0,), "shift": (0,), "rescale": (0,)}


#: Whether the numba backend fuses runs of pointwise nodes into one loop (:mod:`._pointwise`);
#: read when a plan is built.  ``benchmarks/threads.py --fusion`` turns it off to time node-by-node evaluation.
FUSE_RUNS = True

#: ``1/t``, the softmax rule's reciprocal of the sum (at least 1 there), as an activation for its pass.
_RECIPROCAL = Activation("reciprocal", 1 / T, np.reciprocal, lambda z: -1 / z ** 2, lambda z: 2 / z ** 3)
#: ``log1p(s)``, the log-softmax rule's log of the sum, ``s`` the sum without the largest unit's
#: ``exp(0) = 1`` (exact however small: ``log`` of the rounded ``1 + s`` would lose it).
_LOG1P = Activation("log1p", log1p(T), np.log1p, lambda z: 1 / (1 + z), lambda z: -1 / (1 + z) ** 2)
#: The second part of each layer-wise activation's rule (the first is ``exp``).
_LAYER_PARTS = {"softmax": _RECIPROCAL, "log_softmax": _LOG1P}


def graph_supports(net: Network, partials: Sequence[MultiIndex]) -> str | None:
    """``None`` if the layered strategy can evaluate this graph, else the reason it cannot."""
    for node in net.graph.nodes[1:]:
        activation = node.activation if node.family == "elementwise" else None
        if activation is not None and not activation.elementwise and activation.name not in _LAYER_PARTS:
            return f"node {node.name!r}: {activation.name} acts on a whole layer, not unit by unit"
        if node.family not in ("linear", "elementwise", "bilinear"):
            return f"node {node.name!r}: no layered rule for the {node.family!r} family"
    if any(len(alpha) > MAX_ORDER for alpha in partials):
        return f"partials of order {MAX_ORDER + 1} or more need the expression strategy"
    return None


def leibniz_terms(n_tan: int, pairs: Sequence[MultiIndex], laplacian: bool,
                  higher: Sequence[MultiIndex]) -> list[list[tuple[int, int, int]]]:
    """Per output stream, the terms ``(count, stream of a, stream of b)`` of the product ``a * b``.

    The streams are in the layered order: value, ``n_tan`` tangents, ``pairs``, the collapsed
    Laplacian if ``laplacian``, ``higher``.  Entry ``alpha`` of the product is the sum over
    the subsets of ``alpha``'s positions (Leibniz), equal terms grouped.

    >>> leibniz_terms(1, [(0, 0)], False, [])   # (ab)'' = a b'' + 2 a' b' + a'' b
    [[(1, 0, 0)], [(1, 0, 1), (1, 1, 0)], [(1, 0, 2), (2, 1, 1), (1, 2, 0)]]
    """
    s0 = 1 + n_tan
    l0 = s0 + len(pairs)
    r0 = l0 + (1 if laplacian else 0)
    rows = {(): 0, **{(i,): 1 + i for i in range(n_tan)}, **{tuple(p): s0 + q for q, p in enumerate(pairs)},
            **{tuple(alpha): r0 + q for q, alpha in enumerate(higher)}}

    def terms_of(alpha: MultiIndex) -> list[tuple[int, int, int]]:
        counts: Counter[tuple[int, int]] = Counter()
        positions = range(len(alpha))
        for size in range(len(alpha) + 1):
            for chosen in itertools.combinations(positions, size):
                beta = tuple(alpha[p] for p in chosen)
                rest = tuple(alpha[p] for p in positions if p not in chosen)
                counts[(rows[beta], rows[rest])] += 1
        return [(count, a, b) for (a, b), count in sorted(counts.items())]

    result = [terms_of(())] + [terms_of((i,)) for i in range(n_tan)] + [terms_of(tuple(p)) for p in pairs]
    if laplacian:
        result.append([(1, 0, l0), (1, l0, 0)] + [(2, 1 + i, 1 + i) for i in range(n_tan)])
    return result + [terms_of(tuple(alpha)) for alpha in higher]


def leibniz_source(terms: list[list[tuple[int, int, int]]], broadcast_a: bool, broadcast_b: bool,
                   cache: bool) -> str:
    """A module whose ``leibniz(A, B, OUT)`` writes the streams of ``A * B`` into ``OUT``, point by point.

    ``A``, ``B`` ``(streams, points, width or 1)``; a width-1 factor (``broadcast_a``/``_b``)
    multiplies every unit.  One loop over the units per output stream, which LLVM vectorises.
    """
    ja, jb = ("0" if broadcast_a else "j"), ("0" if broadcast_b else "j")
    loops = []
    for r, group in enumerate(terms):
        products = " + ".join(product_term(count, f"A[{a}, p, {ja}]", f"B[{b}, p, {jb}]") for count, a, b in group)
        loops.append(f"        for j in range(H):\n            OUT[{r}, p, j] = {products}")
    body = "\n".join(loops)
    return f'''{docstring("Generated by symnet: Leibniz's rule for a product node over the Taylor streams.")}
import numba


@numba.njit(cache={cache}, nogil=True, error_model="numpy", fastmath={{"contract"}})
def leibniz(A, B, OUT):
    H = OUT.shape[2]
    for p in range(OUT.shape[1]):
{body}
'''


class Slots:
    """Which buffer slot holds each node's streams: a slot is taken when the node is computed and
    freed after its last reader (``Graph.last_use``); a node of :data:`_IN_PLACE` takes the slot of
    an input of its own width that dies with it.

    Attributes:
        of: ``{node name: slot}`` for every node computed (and ``"x"`` if a node other than a
            dense one reads the inputs' streams).
        in_place: ``{node name: position of the input whose slot it took}``.
        count: the slots needed at once (the peak of live values).
        live: the nodes the output depends on, in order (others are skipped).
        runs: with ``fuse``, the runs of pointwise nodes evaluated as one loop
            (:func:`._pointwise.pointwise_runs`): only a run's outputs take slots, at its first
            member, and the values it reads live to its last.
        run_of: ``{member name: its run}``.

    ``varies`` (``{node: bool}``) says which nodes carry derivative streams: a node takes an
    input's slot only if both do or neither does.  The values ``kept`` keep their slots to the
    end (the forward-adjoint sweep reads the inputs of every nonlinear node).
    """

    def __init__(self, graph: Any, varies: dict[str, bool] | None = None, kept: frozenset[str] = frozenset(),
                 fuse: bool = False) -> None:
        varies = varies or {}
        needed = {graph.output}
        for node in reversed(graph.nodes[1:]):
            if node.name in needed:
                needed.update(node.inputs)
        self.live = [node for node in graph.nodes[1:] if node.name in needed]
        self.runs = pointwise_runs(self.live, graph.output, kept) if fuse else []
        self.run_of = {node.name: run for run in self.runs for node in run.members}
        position = {node.name: i for i, node in enumerate(graph.nodes)}
        # a run reads all its inputs at its last member; a value read in a run lives to the run's end
        read_at = {node.name: position[run.members[-1].name] for run in self.runs for node in run.members}
        last: dict[str, int] = {graph.output: len(graph.nodes)}  # the last live reader of each value
        for node in reversed(self.live):
            for name in node.inputs:
                last.setdefault(name, read_at.get(node.name, position[node.name]))
        self.of: dict[str, int] = {}
        self.in_place: dict[str, int] = {}
        free: list[int] = []
        self.count = 0

        def take() -> int:
            slot = free.pop() if free else self.count
            self.count = max(self.count, slot + 1)
            return slot

        if any(node.op != "dense" and "x" in node.inputs for node in self.live):
            self.of["x"], self.count = 0, 1
        for node in self.live:
            run = self.run_of.get(node.name)
            if run is not None:  # the run's outputs take slots at its first member; its inputs die at its end
                if node is run.members[0]:
                    for name in run.outputs:
                        self.of[name] = take()
                    end = read_at[node.name]
                    free.extend(sorted(self.of[name] for name in run.inputs
                                       if name in self.of and last[name] == end and name not in kept))
                continue
            here = position[node.name]
            dying = {name for name in node.inputs if name in self.of and last[name] == here and name not in kept}
            taken = None
            for pos in _IN_PLACE.get(node.op, ()):
                name = node.inputs[pos]
                if name in dying and node.input_widths[pos] == node.width and node.inputs.count(name) == 1 \
                        and varies.get(name, True) == varies.get(node.name, True):
                    taken = name
                    self.in_place[node.name] = pos
                    break
            if taken is not None:
                self.of[node.name] = self.of[taken]
                dying.discard(taken)
            else:
                self.of[node.name] = take()
            free.extend(sorted(self.of[name] for name in dying))


def _varies(graph: Any, directions: Sequence[int]) -> dict[str, bool]:
    """``{node: whether it depends on the inputs `directions`}``: the others carry their value only
    (a DeepONet's branch, when the derivatives are along the trunk's coordinates)."""
    varies = {"x": bool(directions)}
    for node in graph.nodes[1:]:
        if node.op == "slice" and node.inputs[0] == "x":
            varies[node.name] = any(node.attrs["start"] <= i < node.attrs["stop"] for i in directions)
        else:
            varies[node.name] = any(varies[name] for name in node.inputs)
    return varies


class GraphLayeredPlan(LayeredPlan):
    """The layered strategy's buffers, passes and node-by-node evaluation for one graph and request."""

    keeps = False  # the inputs of nonlinear nodes keep their slots to the end (the forward-adjoint schedule)

    def __init__(self, net: Network, words: tuple[str, ...], partials: tuple[tuple[int, ...], ...],
                 dtype: np.dtype, backend: str = "numpy", parallel: bool = True, cache: bool = False) -> None:
        graph = net.graph
        self.graph = graph
        self.d, self.m = net.n_inputs, net.n_outputs
        self._lay_out_streams(self.d, words, partials, only_asked=True)
        self.dtype = dtype
        self.backend = backend
        self.varies = _varies(graph, self.directions if self.streams > 1 else [])
        kept = frozenset(name for node in graph.nodes[1:] if node.family != "linear" for name in node.inputs) \
            if self.keeps else frozenset()
        self.layout = Slots(graph, self.varies, kept, fuse=backend == "numba" and FUSE_RUNS)
        self.widths = [self.d] + [node.width for node in self.layout.live]
        self.value_widths = {"x": self.d, **{node.name: node.width for node in graph.nodes[1:]}}
        super(LayeredPlan, self).__init__()
        self.parallel = parallel and backend == "numba"
        # where each node's runtime arrays start in the weights tuple (compile's order)
        self.first_array: dict[str, int] = {}
        offset = 0
        for node in graph.nodes[1:]:
            self.first_array[node.name] = offset
            offset += len(graph_slots(node))
        self.passes: dict[str, Callable[..., None] | None] = {}
        self.separate: set[str] = set()  # activations whose pass reads its input's streams and writes its own
        self.products: dict[str, Callable[..., None] | None] = {}
        self.constants: dict[str, Any] = {}
        self.terms = leibniz_terms(self.n_tan, self.pairs, self.laplacian, self.higher)
        self.softmax: dict[str, tuple[Callable[..., None], Callable[..., None]]] = {}
        self.fused_runs: dict[str, Callable[..., None]] = {}  # first member's name -> its run's loop
        for node in self.layout.live:
            if node.op in ("rescale", "matmul"):
                self.constants[node.name] = {
                    name: float_array(node.attrs[name], f"node {node.name!r}: {name}").astype(dtype)
                    for name in ("scale", "offset", "matrix") if name in node.attrs}
        if self.layout.runs:
            streams = {name: self.streams if self.varies[name] else 1 for name in self.varies}
            for run in self.layout.runs:
                self.fused_runs[run.members[0].name] = self._load(
                    run_source(run, streams, self.value_widths, self.terms, cache), cache).pointwise
        for node in self.layout.live:
            if node.name in self.layout.run_of:
                continue
            if node.family == "elementwise" and not node.activation.elementwise:  # softmax, log_softmax: by parts
                n_tan, pairs, laplacian, higher = (self.n_tan, self.pairs, self.laplacian, self.higher) \
                    if self.varies[node.name] else (0, [], False, ())
                passes = []
                for part in (get_activation("exp"), _LAYER_PARTS[node.activation.name]):
                    header = f"Generated by symnet: the {part.name} pass of a {node.activation.name}."
                    source = _fused_source(part, n_tan, pairs, laplacian, cache, header, higher=higher) \
                        if backend == "numba" else _pass_source(part, header, pairs, higher)
                    passes.append(self._load(source, cache).apply)
                self.softmax[node.name] = (passes[0], passes[1])
                self.products[node.name] = self._load(leibniz_source(self.terms, False, True, cache), cache).leibniz \
                    if backend == "numba" and self.varies[node.name] and node.activation.name == "softmax" else None
            elif node.family == "elementwise":
                activation = node.activation
                if activation.form == T:
                    self.passes[node.name] = None
                    continue
                header = f"Generated by symnet: the {activation.name} pass."
                # a node that does not vary with the directions carries its value only
                n_tan, pairs, laplacian, higher = (self.n_tan, self.pairs, self.laplacian, self.higher) \
                    if self.varies[node.name] else (0, [], False, ())
                source = _fused_source(activation, n_tan, pairs, laplacian, cache, header, higher=higher) \
                    if backend == "numba" else _pass_source(activation, header, pairs, higher)
                self.passes[node.name] = self._load(source, cache).apply
            elif node.family == "bilinear":  # Leibniz's rule when both factors vary
                widths = node.input_widths
                broadcast = (widths[0] == 1 and node.width > 1, widths[1] == 1 and node.width > 1)
                both = all(self.varies[name] for name in node.inputs)
                self.products[node.name] = self._load(leibniz_source(self.terms, *broadcast, cache), cache).leibniz \
                    if backend == "numba" and both else None
            elif node.op not in _STACK_OPS:
                matrices, shift = linear_matrices(node)
                self.constants[node.name] = ([m.astype(dtype) for m in matrices], shift.astype(dtype))
        self.steps = self._steps()

    def chunk_size(self) -> int:
        key = (self.slots, self.memory_budget())  # the passes' scratch may grow while the plan is built
        if getattr(self, "_chunk", (None, 0))[0] != key:
            width = max(self.widths)
            self._chunk = (key, max(1, key[1] // (self._numbers_per_row() * width * self.dtype.itemsize)))
        return self._chunk[1]

    def _numbers_per_row(self) -> int:
        """Numbers per point and unit of the widest node: the slots' streams, the passes' scratch, a temporary."""
        return self.layout.count * self.streams + self.slots + 1 + (self.streams if self.softmax else 0)

    def memory_budget(self) -> int:
        """Bytes of buffers a chunk may use, per thread (:data:`._layered.MEMORY_BUDGET`, read at call time)."""
        return _layered.MEMORY_BUDGET

    def buffer_bytes(self) -> int:
        """The bytes of buffers one thread keeps (every slot, the passes' scratch and a temporary)."""
        width = max(self.widths)
        return self.chunk_size() * self._numbers_per_row() * width * self.dtype.itemsize

    def _run_chunk(self, X: np.ndarray, weights: tuple[np.ndarray, ...], out: dict[str, np.ndarray],
                   partials: dict[str, tuple[int, ...]]) -> None:
        values = self._forward(X, weights)
        final = values[self.graph.output]
        if len(final) < self.streams:  # the output does not depend on the inputs asked for
            final = np.concatenate([final, np.zeros((self.streams - 1,) + final.shape[1:], final.dtype)])
        self._store(final, out, partials)

    def _steps(self) -> list[tuple[str, Any, int]]:
        """``(kind, node, first array)`` per node ``_forward`` evaluates, in order: what does not change from
        chunk to chunk, looked up once when the plan is built (a run's members after its first are left out)."""
        steps = []
        for node in self.layout.live:
            run = self.layout.run_of.get(node.name)
            if run is not None and node is not run.members[0]:
                continue
            kind = "run" if run is not None else "dense_x" if node.op == "dense" and node.inputs[0] == "x" \
                else "dense" if node.op == "dense" else "softmax" if node.name in self.softmax \
                else node.family if node.family in ("elementwise", "bilinear") else "linear"
            steps.append((kind, node, self.first_array[node.name]))
        return steps

    def _views(self, b: int) -> dict[str, np.ndarray]:
        """Every slotted value's ``(streams, b, width)`` view of this thread's slot buffers, made once per chunk
        size (a call has at most two: its full chunks and the last): slicing and reshaping 50 views took a
        noticeable share of a small chunk's time."""
        S, space = self.streams, self._space()
        rows = self.chunk_size() * max(self.widths)
        key = ("views", b)
        cached = space.memo.get(key)
        if cached is None or cached[0] != rows:
            buffers = [space(("slot", k), (rows * S,), self.dtype) for k in range(self.layout.count)]
            widths = self.value_widths
            views = {}
            for name, slot in self.layout.of.items():
                k = S if self.varies[name] else 1
                views[name] = buffers[slot][: k * b * widths[name]].reshape(k, b, widths[name])
            cached = space.memo[key] = (rows, views)
        return cached[1]

    def _forward(self, X: np.ndarray, weights: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
        """Every live node's streams for a chunk of points ``X`` (views of this thread's slots)."""
        b = X.shape[0]
        rows = self.chunk_size() * max(self.widths)
        scratch_buffer = self._space()("scratch", (rows * (self.slots + 1),), self.dtype)
        in_place = self.layout.in_place
        views = self._views(b)
        values: dict[str, np.ndarray] = {}
        if "x" in views:
            xs = views["x"]
            xs[...] = 0
            xs[0] = X
            for q, i in enumerate(self.directions[: self.n_tan]):
                xs[1 + q, :, i] = 1
            values["x"] = xs
        with np.errstate(all="ignore"):  # inf/nan are results here, as in the expression kernels
            for kind, node, first in self.steps:
                name = node.name
                if kind == "run":  # the whole run at its first member; the others are in it
                    run = self.layout.run_of[name]
                    outputs = [views[output] for output in run.outputs]
                    self.fused_runs[name](*(values[i] for i in run.inputs),
                                          *run_parameters(run, weights, self.first_array, self.constants), *outputs)
                    values.update(zip(run.outputs, outputs))
                    continue
                nxt = views[name]
                if kind == "dense_x":
                    W, bias = weights[first], weights[first + 1].reshape(-1)
                    entered(X, W, bias, len(nxt), 0, nxt.reshape(-1))  # dz/dx_i = W[i], the rest 0
                    nxt[1:1 + self.n_tan] = W[self.directions[: self.n_tan], None, :]
                elif kind == "dense":
                    a = values[node.inputs[0]]
                    np.matmul(a.reshape(-1, a.shape[2]), weights[first], out=nxt.reshape(-1, nxt.shape[2]))
                    nxt[0] += weights[first + 1].reshape(-1)
                elif kind == "softmax":
                    self._softmax(node, values[node.inputs[0]], nxt, scratch_buffer)
                elif kind == "elementwise":
                    apply = self.passes[name]
                    if name in self.separate:  # the input stays as it was (kept for the sweep back)
                        self._pass(apply, values[node.inputs[0]], scratch_buffer, *self._kept(name, b, node.width),
                                   nxt[0], nxt[1:])
                    else:
                        if name not in in_place:
                            np.copyto(nxt, values[node.inputs[0]])
                        if apply is not None:
                            self._pass(apply, nxt, scratch_buffer, *self._kept(name, b, node.width))
                elif kind == "bilinear":
                    a, c = values.get(node.inputs[0]), values.get(node.inputs[1])
                    if len(a) == len(c) == 1:  # neither varies: the value only
                        np.multiply(a, c, out=nxt)
                    elif len(a) == len(c):
                        self._product(name, a, c, nxt, scratch_buffer)
                    else:  # a factor without derivatives scales the other's streams
                        np.multiply(a, c[0], out=nxt) if len(c) == 1 else np.multiply(a[0], c, out=nxt)
                else:
                    self._linear(node, [values.get(i) for i in node.inputs], weights, first, nxt)
                values[name] = nxt
        return values

    def _pass(self, apply: Callable[..., None], streams: np.ndarray, scratch_buffer: np.ndarray, *kept: np.ndarray
              ) -> None:
        """An elementwise pass over ``streams`` ``(k, b, width)`` in place (``k = 1``: the value only)."""
        _, b, width = streams.shape
        scratch = scratch_buffer[: self.slots * b * width].reshape(self.slots, b, width)
        if len(streams) > 1:
            t0, s0, l0 = 1, 1 + self.n_tan, 1 + self.n_tan + self.n_sec
            r0 = l0 + self.n_lap
            apply(streams[0], streams[t0:s0], streams[s0:l0], streams[l0:r0], streams[r0:], self.pi, self.pk, scratch,
                  *kept)
        else:
            empty = streams[1:]
            apply(streams[0], empty, empty, empty, empty, self.pi[:0], self.pk[:0], scratch, *kept)

    def _softmax(self, node: Any, z: np.ndarray, out: np.ndarray, scratch_buffer: np.ndarray) -> None:
        """``out`` = the streams of ``softmax(z)`` = ``e * r``, ``e = exp(z - z_m)``, ``r = 1 / sum(e)``,
        or of ``log_softmax(z)`` = ``(z - z_m) - log(sum(e))``."""
        exp_pass, second_pass = self.softmax[node.name]
        k, b, width = out.shape
        space = self._space()
        e = space(("softmax", "e"), (self.chunk_size() * max(self.widths) * self.streams,), self.dtype)
        e = e[: k * b * width].reshape(k, b, width)
        np.copyto(e, z[:k])
        # softmax(z) = softmax(z - z_m) for any unit m, and every stream of z_m: with the point's
        # largest unit, e_m = 1 exactly, every e <= 1, and the sum's derivatives come from the
        # other units only (1 - s_m is not a difference of nearly equal numbers: tails stay exact);
        # likewise log_softmax(z) = (z - z_m) - log(sum(exp(z - z_m))), the log of a sum >= 1
        largest = np.argmax(e[0], axis=-1)
        e -= np.take_along_axis(e, largest[None, :, None], axis=2)
        log = node.activation.name == "log_softmax"
        if log:
            np.copyto(out, e)
        self._pass(exp_pass, e, scratch_buffer)
        if log:  # the sum without unit m's exp(0) = 1 (its other streams are 0): log1p of it, exact
            np.put_along_axis(e[0], largest[:, None], 0.0, axis=-1)
        r = space(("softmax", "r"), (self.chunk_size() * self.streams,), self.dtype)[: k * b].reshape(k, b, 1)
        np.sum(e, axis=-1, keepdims=True, out=r)
        self._pass(second_pass, r, scratch_buffer)
        if log:
            out -= r
        elif k == 1:
            np.multiply(e, r, out=out)
        else:
            self._product(node.name, e, r, out, scratch_buffer)

    def _kept(self, name: str, b: int, width: int) -> tuple[np.ndarray, ...]:
        """Extra arguments of an activation node's pass (the forward-adjoint schedule keeps ``f'``, ``f''``)."""
        return ()

    def _product(self, name: str, a: np.ndarray, b: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> None:
        """``out`` = the streams of ``a * b`` (Leibniz's rule; :func:`leibniz_terms`)."""
        product = self.products[name]
        if product is not None:
            product(a, b, out)
            return
        term = scratch[: out[0].size].reshape(out.shape[1:])
        for r, group in enumerate(self.terms):
            for number, (count, i, k) in enumerate(group):
                target = out[r] if number == 0 else term
                np.multiply(a[i], b[k], out=target)
                if count != 1:
                    target *= count
                if number:
                    out[r] += term

    def _linear(self, node: Any, args: list[np.ndarray], weights: tuple[np.ndarray, ...], first: int,
                out: np.ndarray) -> None:
        """``out`` = every stream of ``args`` through a linear node; its offset enters the value only.

        An input with fewer streams than ``out`` (its value only: it does not vary) has zero derivatives.
        """
        op, k = node.op, len(out)
        if op in ("add", "sub"):
            a, c = args
            if len(a) == len(c):
                (np.add if op == "add" else np.subtract)(a, c, out=out)
            elif len(c) == 1:  # c's derivatives are zero
                if node.name not in self.layout.in_place:
                    np.copyto(out, a)
                (np.add if op == "add" else np.subtract)(out[0], c[0], out=out[0])
            else:  # a's derivatives are zero
                if op == "add":
                    np.copyto(out, c) if node.name not in self.layout.in_place else None
                else:
                    np.negative(c, out=out)
                out[0] += a[0]
            return
        if op == "concat":
            start = 0
            for a, width in zip(args, node.input_widths):
                out[: len(a), :, start:start + width] = a
                out[len(a):, :, start:start + width] = 0
                start += width
            return
        if node.op not in _STACK_OPS:  # the constant matrices of its linear terms
            matrices, shift = self.constants[node.name]
            out[...] = 0
            for a, C in zip(args, matrices):
                out[: len(a)] += (a.reshape(-1, a.shape[2]) @ C).reshape((len(a),) + out.shape[1:])
            out[0] += shift
            return
        a = args[0][:k]  # one input: a slice of the inputs that does not vary reads their value only
        if op == "scale":
            np.multiply(a, weights[first][0], out=out)
        elif op == "shift":
            if node.name not in self.layout.in_place:
                np.copyto(out, a)
            out[0] += weights[first][0]
        elif op == "rescale":
            constants = self.constants[node.name]
            np.multiply(a, constants["scale"][0], out=out)
            out[0] += constants["offset"][0]
        elif op == "matmul":
            np.matmul(a.reshape(-1, a.shape[2]), self.constants[node.name]["matrix"], out=out.reshape(-1, out.shape[2]))
        elif op == "slice":
            np.copyto(out, a[..., node.attrs["start"]:node.attrs["stop"]])
        elif op in ("sum", "mean"):
            np.sum(a, axis=-1, keepdims=True, out=out)
            if op == "mean":
                out /= node.input_widths[0]
