"""The forward-adjoint schedule on a graph network: Hessians from ``1 + d`` forward streams and
``m`` adjoint streams, instead of forward mode's ``1 + d + d(d+1)/2``.

The Hessian of an output ``y`` of a graph is a sum over its nonlinear nodes (linear nodes have no
second derivative):

    H = sum over activations a = f(z) of  sum_units  g_a f''(z) dz_i dz_k
      + sum over products   c = a * b of  sum_units  g_c (da_i db_k + da_k db_i),

where ``g`` is a node's adjoint ``dy/dnode`` and ``dz_i`` its input's tangent ``dz/dx_i``.  So
the forward sweep pushes the value and the ``d`` tangents through every node
(:class:`._graph_layered.GraphLayeredPlan`, keeping the inputs of every nonlinear node), and one reverse sweep pushes
the ``m`` outputs' adjoints back, by family (linear ops transpose, activations multiply by
``f'``, products by the other factor), adding each nonlinear node's term point by point.  The
matrix products carry ``1 + d + m`` streams in all: 4 against forward mode's 6 for two inputs
and one output, 5 against 10 for three.  ``f'`` and ``f''`` are printed from SymPy's
derivatives of the activation, as in the forward passes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..activations import T
from ..network import Network
from ._graph_layered import GraphLayeredPlan
from ._layered import _fused_source, derivatives_source, pair_indices, store
from .codegen import docstring
from ._loss import _LINEAR, linear_matrices

__all__ = ["GraphAdjointPlan", "graph_adjoint_unsupported"]

#: Points a chunk holds at most: the sweep's many small steps per chunk (two per node) want chunks of
#: a few hundred points, and a chunk much wider than that leaves the caches (benchmarks/RESULTS.md,
#: "Measurements behind design choices in the code").
CHUNK_POINTS = 224

#: Bytes of kept streams a chunk of points may use, per thread: the inputs of nonlinear nodes keep
#: their values and tangents for the reverse sweep, so a deep graph's chunk is narrower than
#: :data:`CHUNK_POINTS` within this bound.
MEMORY_BUDGET = 32 * 2**20


def graph_adjoint_unsupported(net: Network, words: tuple[str, ...], partials: tuple[tuple[int, ...], ...]
                              ) -> str | None:
    """``None`` if the forward-adjoint schedule can evaluate this graph request, else why not."""
    if any(len(alpha) >= 3 for alpha in partials) or "biharmonic" in words:
        return "partials of order 3 or more are propagated forward (Taylor mode)"
    if "hessian" not in words and not any(len(alpha) == 2 for alpha in partials):
        return "it computes Hessian entries, and none was asked for (a Laplacian alone goes forward)"
    for node in net.graph.nodes[1:]:
        if node.family == "elementwise" and not node.activation.elementwise:
            return f"node {node.name!r}: its reverse sweep has no rule for {node.activation.name}, which mixes units"
    return None


#: ``auto`` gives a graph with products (gates, blends) the forward-adjoint schedule only while its
#: pointwise units per multiply-add of its dense nodes stay below this: the sweep passes over each
#: product twice and keeps its factors' tangents, and the streams it saves pay off only where
#: the matrix products dominate.  It lies between the measured crossover's two sides (wide
#: PirateNets and ModifiedMlps faster with the sweep, narrow ones with forward mode;
#: ``benchmarks/threads.py --schedules``, figures in benchmarks/RESULTS.md, "Measurements behind
#: design choices in the code").
GATED_UNITS_PER_MAC = 0.035


def pointwise_units_per_mac(net: Network) -> float:
    """The units of a graph's nodes other than dense ones, per multiply-add of the dense nodes that do
    not read the inputs (a first layer's product is cheap on either schedule); ``inf`` without any.

    >>> from symnet.graph import zoo
    >>> round(pointwise_units_per_mac(zoo.pirate_net(2, 128, 2, 1)), 4)
    0.0302
    """
    nodes = net.graph.nodes[1:]
    macs = sum(node.input_widths[0] * node.width for node in nodes if node.op == "dense" and node.inputs[0] != "x")
    units = sum(node.width for node in nodes if node.op != "dense")
    return units / macs if macs else float("inf")


def graph_adjoint_cheaper(net: Network, words: tuple[str, ...], partials: tuple[tuple[int, ...], ...],
                          forward_streams: int) -> bool:
    """Whether ``auto`` gives this graph request the forward-adjoint schedule: it can evaluate it,
    pushes fewer streams through the products (``1 + d + m`` against forward mode's
    ``forward_streams``: ``1 + d + d(d+1)/2`` for a whole Hessian, fewer for a few partials,
    whose tangents go along the inputs they name only), and the graph has no bilinear node or
    few pointwise units per multiply-add (:data:`GATED_UNITS_PER_MAC`)."""
    if graph_adjoint_unsupported(net, words, partials):
        return False
    if any(node.family == "bilinear" for node in net.graph.nodes[1:]) \
            and pointwise_units_per_mac(net) >= GATED_UNITS_PER_MAC:
        return False
    return 1 + net.n_inputs + net.n_outputs < forward_streams


class GraphAdjointPlan(GraphLayeredPlan):
    """Value and tangents forward through every node, then one adjoint sweep adding the Hessian terms."""

    schedule = "forward-adjoint"
    keeps = True

    def __init__(self, net: Network, words: tuple[str, ...], partials: tuple[tuple[int, ...], ...],
                 dtype: np.dtype, backend: str = "numpy", parallel: bool = True, cache: bool = False) -> None:
        super().__init__(net, ("value", "jacobian"), (), dtype, backend, parallel, cache)
        d = self.d
        self.hessian_pairs = [(i, k) for i in range(d) for k in range(i, d)]
        # the values whose adjoints the sweep carries: those with tangents behind them (no Hessian term otherwise)
        self.adjoined = frozenset(name for name, varies in self.varies.items() if varies and name != "x")
        self.hp, self.hk = pair_indices(self.hessian_pairs)
        self.slopes: dict[str, Any] = {}  # apply(Z, F0, F1, F2, s): f, f', f'' of each activation node
        self.transposes: dict[str, Any] = {}
        self.fused = backend == "numba"
        self.backs: dict[str, Any] = {}  # the numba backward loops of activation and product nodes
        for node in self.layout.live:
            if node.family == "elementwise" and node.activation.form != T:
                if self.fused and self.varies[node.name]:  # the pass keeps f' and f'' for the sweep back
                    header = f"Generated by symnet: the {node.activation.name} pass, keeping f' and f''."
                    self.passes[node.name] = self._load(_fused_source(node.activation, self.n_tan, [], False, cache,
                                                                      header, keep=True, separate=True), cache).apply
                    self.separate.add(node.name)  # its input is kept: written beside it, not copied first
                    self.backs[node.name] = self._load(_activation_back_source(cache), cache).back
                else:  # f' (and f'') from the value on the way back
                    module = self._load(derivatives_source(node.activation, 3), False)
                    self.slopes[node.name] = (module.apply, module.SLOTS)
            elif node.family == "bilinear" and self.fused:
                widths = node.input_widths
                self.backs[node.name] = self._load(_product_back_source(widths[0] == 1 and node.width > 1,
                                                                        widths[1] == 1 and node.width > 1, cache),
                                                   cache).back
            elif node.family == "linear" and node.op not in ("dense",) and node.op not in _TRANSPOSED:
                matrices, _ = linear_matrices(node)
                self.transposes[node.name] = [C.T.astype(dtype) for C in matrices]

    def memory_budget(self) -> int:
        return MEMORY_BUDGET

    def chunk_size(self) -> int:
        return min(CHUNK_POINTS, super().chunk_size())

    def _numbers_per_row(self) -> int:  # f' and f'' of every activation node are kept too
        return super()._numbers_per_row() + 2 * sum(1 for node in self.layout.live if node.name in self.backs
                                                    and node.family == "elementwise")

    def _kept(self, name: str, b: int, width: int) -> tuple[np.ndarray, ...]:
        if not self.fused or not self.varies[name]:
            return ()
        slopes = self._space().part(("kept", name), (2, b, width), 2 * self.chunk_size() * width, self.dtype)
        return slopes[0], slopes[1]

    def _run_chunk(self, X: np.ndarray, weights: tuple[np.ndarray, ...], out: dict[str, np.ndarray],
                   partials: dict[str, tuple[int, ...]]) -> None:
        values = self._forward(X, weights)
        graph, m, b = self.graph, self.m, X.shape[0]
        pairs = self.hessian_pairs
        H = np.zeros((len(pairs), b, m), dtype=self.dtype)
        seed = np.zeros((m, b, m), dtype=self.dtype)
        for j in range(m):
            seed[j, :, j] = 1
        G: dict[str, np.ndarray] = {graph.output: seed}
        space = self._space()
        with np.errstate(all="ignore"):
            for node in reversed(self.layout.live):
                g = G.pop(node.name, None)
                if g is None or node.family == "linear" and self.adjoined.isdisjoint(node.inputs):
                    continue  # no adjoint to pass back, and a linear node has no Hessian term
                args = [values.get(name) for name in node.inputs]
                shares = self._back(node, g, args, weights, H, space)
                for name, width, share in zip(node.inputs, node.input_widths, shares):
                    if name not in self.adjoined:
                        continue
                    if width == 1 and share.shape[-1] != 1:
                        share = share.sum(axis=-1, keepdims=True)
                    G[name] = G[name] + share if name in G else share
        final = values[graph.output]
        store(out, partials, final[0], final[1:1 + self.d], pairs, lambda q: H[q])

    def _back(self, node: Any, g: np.ndarray, args: list[np.ndarray], weights: tuple[np.ndarray, ...],
              H: np.ndarray, space: Any) -> list[np.ndarray | None]:
        """The adjoints of ``node``'s inputs from its own ``g`` ``(m, b, width)``; its Hessian term into ``H``."""
        op, first, pairs = node.op, self.first_array[node.name], self.hessian_pairs
        m, b, w = g.shape
        if op == "dense":
            W = weights[first]
            return [(g.reshape(-1, w) @ W.T).reshape(m, b, W.shape[0])]
        if node.family == "elementwise":
            z = args[0]
            if node.name in self.backs:  # f' and f'' kept by the forward pass; one loop
                share = np.empty_like(g)
                self.backs[node.name](z[1:], g, *self._kept(node.name, b, w), share, H, self.hp, self.hk)
                return [share]
            if node.name not in self.slopes:  # linear: f' = 1, f'' = 0
                return [g]
            apply, slots = self.slopes[node.name]
            rows = self.chunk_size() * max(self.widths)
            F = space.part("F", (3, b, w), 3 * rows, self.dtype)
            apply(z[0], F[0], F[1], F[2], space.part("s", (slots, b, w), slots * rows, self.dtype))
            if len(z) > 1:
                weighted = g * F[2]  # g f''(z)
                for q, (i, k) in enumerate(pairs):
                    H[q] += np.einsum("jbu,bu->bj", weighted, z[1 + i] * z[1 + k])
            return [g * F[1]]
        if node.family == "bilinear" and self.fused:
            a, c = args
            if len(a) > 1 and len(c) > 1:
                ga = np.empty((m, b, a.shape[2]), self.dtype)
                gc = np.empty((m, b, c.shape[2]), self.dtype)
                self.backs[node.name](a, c, g, ga, gc, H, self.hp, self.hk)
                return [ga, gc]
            return [g * c[0], g * a[0]]
        if node.family == "bilinear":
            a, c = args
            if len(a) > 1 and len(c) > 1:
                for q, (i, k) in enumerate(pairs):
                    cross = a[1 + i] * c[1 + k] + a[1 + k] * c[1 + i]
                    H[q] += np.einsum("jbu,bu->bj", g, np.broadcast_to(cross, (b, w)))
            return [g * c[0], g * a[0]]
        if op in _TRANSPOSED:
            return _TRANSPOSED[op](node, g, weights, first, self.constants.get(node.name))
        return [g @ C for C in self.transposes[node.name]]


#: The transposes of the linear ops with a rule of their own: ``(node, g, weights, first array,
#: constants) -> the inputs' adjoints``; other linear ops go through their terms' matrices.
_TRANSPOSED = {
    "add": lambda node, g, *_: [g, g],
    "sub": lambda node, g, *_: [g, -g],
    "scale": lambda node, g, weights, first, _: [g * weights[first][0]],
    "shift": lambda node, g, *_: [g],
    "rescale": lambda node, g, weights, first, constants: [g * constants["scale"][0]],
    "matmul": lambda node, g, weights, first, constants: [g @ constants["matrix"].T],
    # the loss kernels' transposes (symnet.kernels._loss), which read only the node and g
    **{op: (lambda rule: lambda node, g, *_: rule(node, g, None, None)[0])(_LINEAR[op][1])
       for op in ("concat", "slice", "sum", "mean")},
}


_FLAGS = 'nogil=True, error_model="numpy", fastmath={"contract", "reassoc"}'


def _activation_back_source(cache: bool) -> str:
    """``back(TZ, G, F1, F2, GOUT, H, pi, pk)`` for an activation node ``a = f(z)``, point by point:
    ``GOUT = G f'(z)`` and ``H[q] += sum_units G f''(z) dz_i dz_k`` for each pair ``(i, k) = (pi[q], pk[q])``.

    ``reassoc`` lets LLVM vectorise the sums over units (their order may change; inf and NaN keep
    their meaning), as in the chains' forward-adjoint sweep.
    """
    return f'''{docstring("Generated by symnet: the sweep back through an activation node, adding its Hessian term.")}
import numba


@numba.njit(cache={cache}, {_FLAGS})
def back(TZ, G, F1, F2, GOUT, H, pi, pk):
    m, b, w = G.shape
    for p in range(b):
        for j in range(m):
            for q in range(pi.shape[0]):
                i = pi[q]
                k = pk[q]
                acc = 0.0
                for u in range(w):
                    acc += G[j, p, u] * F2[p, u] * TZ[i, p, u] * TZ[k, p, u]
                H[q, p, j] += acc
            for u in range(w):
                GOUT[j, p, u] = G[j, p, u] * F1[p, u]
'''


def _product_back_source(broadcast_a: bool, broadcast_c: bool, cache: bool) -> str:
    """``back(A, C, G, GA, GC, H, pi, pk)`` for a product node ``a * c``, point by point: the factors'
    adjoints ``G c`` and ``G a`` (summed over the units for a width-1 factor) and the cross terms
    ``H[q] += sum_units G (da_i dc_k + da_k dc_i)``.
    """
    ua, uc = ("0" if broadcast_a else "u"), ("0" if broadcast_c else "u")
    share_a = ("GA[j, p, 0] += G[j, p, u] * C[0, p, {uc}]" if broadcast_a else "GA[j, p, u] = G[j, p, u] * C[0, p, {uc}]")
    share_c = ("GC[j, p, 0] += G[j, p, u] * A[0, p, {ua}]" if broadcast_c else "GC[j, p, u] = G[j, p, u] * A[0, p, {ua}]")
    zero = "".join(f"            {name}[j, p, 0] = 0.0\n" for name, flag in (("GA", broadcast_a), ("GC", broadcast_c)) if flag)
    return f'''{docstring("Generated by symnet: the sweep back through a product node, adding its Hessian cross terms.")}
import numba


@numba.njit(cache={cache}, {_FLAGS})
def back(A, C, G, GA, GC, H, pi, pk):
    m, b, w = G.shape
    for p in range(b):
        for j in range(m):
            for q in range(pi.shape[0]):
                i = pi[q] + 1
                k = pk[q] + 1
                acc = 0.0
                for u in range(w):
                    acc += G[j, p, u] * (A[i, p, {ua}] * C[k, p, {uc}] + A[k, p, {ua}] * C[i, p, {uc}])
                H[q, p, j] += acc
{zero}            for u in range(w):
                {share_a.format(uc=uc)}
                {share_c.format(ua=ua)}
'''
