"""Derivative kernels with exact reverse mode: the gradient of anything computed from a network's
derivatives with respect to its parameters and its points.

:class:`VJPKernel` evaluates a derivative request (values, gradients, Hessians, Laplacians,
biharmonics, partials of any order) with the truncated Taylor jets of :mod:`._jets`, and runs
them backwards: :meth:`VJPKernel.vjp` gives, for cotangents of the results, the exact gradient
of every parameter and of the points; :meth:`VJPKernel.value_and_grad` the same for a scalar loss
written in numpy terms of the results (recorded by :mod:`symnet.tape`).  The points go through
in chunks -- threads sharing them as the other kernels do, the sums added in the points' order
so a call gives the same bits every time -- and the reverse sweep recomputes each chunk's
forward sweep, so memory stays bounded whatever the number of points.

>>> import numpy as np, symnet
>>> net = symnet.Network.from_weights([[[1.0, -1.0]], [[1.0], [1.0]]], [[0.0, 0.0], [0.0]], ["tanh", "linear"])
>>> kernel = compile_vjp(net, ("value", "laplacian"))
>>> X = np.array([[0.5]])
>>> result = kernel(X)
>>> round(float(result.laplacian[0, 0]), 12)       # tanh(x) - tanh(x): 0 everywhere
0.0
>>> grads, dX = kernel.vjp(X, {"laplacian": np.ones((1, 1))})
>>> sorted(grads), grads["z1"]["W"].shape
(['z1', 'z2'], (1, 2))
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import numpy as np

from ..errors import InputError, ShapeError
from ..network import Network
from ..requests import parse, partial_name
from ..tape import Traced, gradients
from ._blocks import PerThread, Workspace
from ._jets import JetAlgebra, JetSweep, Readout
from ._loss import GraphParams, graph_arrays
from ._result import KernelResult
from ._threads import blas_on_one_thread, over_chunks, sum_over_chunks, thread_count

__all__ = ["CHUNK_BYTES_VJP", "KEEP_BYTES", "Pullback", "VJPKernel", "compile_vjp"]

#: :meth:`VJPKernel.forward` keeps its streams for the pullback up to about this many bytes.
KEEP_BYTES = 512 * 2**20

#: The arrays one chunk of points needs, per thread, about.
CHUNK_BYTES_VJP = 64 * 2**20

#: Threads share a call's points from twice this many on: a point's jets cost far more than the
#: forward kernels' values, so sharing pays sooner (the Poisson step of a 2-64-64-64-1 tanh net
#: on 2 threads: 500 points 12.0 -> 7.4 ms, 2,000 points 42 -> 28 ms; 200 points 2.5 -> 3.3 ms;
#: benchmarks/RESULTS.md).
SMALLEST_SHARE_VJP = 256

#: ``loss(P, rows, result) -> traced scalar``: a chunk's share of a loss, from its points ``P``
#: ``(n, d)``, their positions ``rows`` (a slice of the call's points) and traced results.
ChunkLoss = Callable[[np.ndarray, slice, KernelResult], Any]


class VJPKernel:
    """Derivatives of a network at points, and their exact vector-Jacobian products.

    Args:
        net: a numeric network, a chain or a graph (chains run as their graph: parameters are
            named by its nodes, ``z1``, ``z2``, ...).
        derivatives: a request, as :func:`symnet.compile` takes it (``"value"``,
            ``"laplacian"``, ``(0, 0, 1)``, ...).
        parallel: share the chunks among :func:`~symnet.kernels._threads.thread_count` threads.

    Attributes:
        request: the parsed request; ``outputs`` lists the results' names.
        algebra: the Taylor coefficients each node carries (``algebra.size`` streams).
        threads: how many threads a call uses.

    Calls take ``weights=``: ``None`` (the network's own), a network of the same graph, a dict
    ``{node: {parameter: array}}``, or for a chain a list of ``(W, b)`` per layer.

    Memory: ``vjp`` and ``value_and_grad`` run each chunk forward and back in arrays that each
    thread keeps for its next chunk and call (about :data:`CHUNK_BYTES_VJP` per thread, for as
    long as the kernel lives): fresh pages cost as much as the arithmetic on them.
    """

    def __init__(self, net: Network, derivatives: Iterable[Any] | str = ("value",), parallel: bool = True) -> None:
        if not isinstance(net, Network):
            raise InputError(f"compile_vjp takes a symnet.Network, not {type(net).__name__}")
        self.net, self.graph = net, net.graph
        self.d, self.m = net.n_inputs, net.n_outputs
        if isinstance(derivatives, (tuple, list)) and not derivatives:
            raise InputError("compile_vjp needs at least one derivative to compute: derivatives=('value', ...)")
        self.request = parse(derivatives, self.d)
        # an explicit second partial d^2/dx_i^2 reads its own stream: no collapse then
        collapse = all(len(alpha) < 2 for alpha in self.request.partials)
        self.algebra = JetAlgebra(self.d, self.request.multi_indices(self.d), collapse=collapse)
        self.sweep = JetSweep(self.graph, self.algebra)
        self.readout = Readout(self.request, self.algebra)
        self.threads = thread_count(parallel)
        self._space = PerThread()  # the sweeps' arrays of a chunk, per thread, reused by the next
        self.owners = [(node.name, name) for node in self.graph.nodes[1:] for name in node.params]
        widths = sum(node.width for node in self.graph.nodes)
        # per point: every node's streams, kept through a chunk's reverse sweep, and as much again
        # for the adjoints and the elementwise rule's f^(j) and powers of h
        self.bytes_per_point = 16 * self.algebra.size * widths
        # chunks of CHUNK_BYTES_VJP: larger products than the forward kernels' (which are numba loops)
        # pay, as one BLAS call per node and direction does better on more rows (RESULTS.md)
        self.chunk = max(8, CHUNK_BYTES_VJP // self.bytes_per_point)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The results' names, in order."""
        return self.request.outputs

    def __repr__(self) -> str:
        return (f"VJPKernel({', '.join(self.outputs)}; {self.algebra.size} Taylor streams per node, "
                f"{len(self.graph.nodes) - 1} nodes, {self.threads} thread(s))")

    # --- inputs -----------------------------------------------------------------------------------
    def params(self, weights: Any = None) -> GraphParams:
        """The parameters as float64 arrays ``{node: {parameter: array}}`` (checked)."""
        if isinstance(weights, (list, tuple)):
            if not self.net.is_chain:
                raise ShapeError("a list of (W, b) pairs is the weights of a chain; this network is a graph: "
                                 "give {node: {parameter: array}}")
            dense = [node.name for node in self.graph.nodes[1:] if node.op == "dense"]
            if len(weights) != len(dense):
                raise ShapeError(f"{len(weights)} (W, b) pairs for a chain of {len(dense)} layers")
            weights = {name: {"W": np.asarray(W, dtype=np.float64),
                              "b": np.asarray(b, dtype=np.float64).reshape(1, -1)}
                       for name, (W, b) in zip(dense, weights)}
        return graph_arrays(self.graph, weights)

    def points(self, X: Any) -> np.ndarray:
        """``X`` as float64 ``(N, d)`` (``(N,)`` for one input), checked finite."""
        P = np.asarray(X, dtype=np.float64)
        if P.ndim == 1 and self.d == 1:
            P = P[:, None]
        if P.ndim != 2 or P.shape[1] != self.d:
            raise ShapeError(f"points must have shape (N, {self.d}), not {np.shape(X)}")
        if not np.all(np.isfinite(P)):
            raise InputError("points must be finite numbers (found NaN or inf)")
        return P

    # --- calls ------------------------------------------------------------------------------------
    def _forward(self, params: GraphParams, P: np.ndarray, space: Workspace | None = None
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        with np.errstate(over="ignore", invalid="ignore"):
            return self.sweep.forward(params, P, space)

    def _backward(self, params: GraphParams, S: dict[str, np.ndarray], saved: dict[str, Any],
                  seed: np.ndarray, space: Workspace | None = None) -> tuple[GraphParams, np.ndarray]:
        with np.errstate(over="ignore", invalid="ignore"):
            grads, into_input = self.sweep.backward_to_input(params, S, saved, {self.graph.output: seed},
                                                             space=space)
        dX = np.zeros(S[self.graph.nodes[0].name].shape[1:]) if into_input is None else into_input[0]
        return grads, dX

    def __call__(self, X: Any, weights: Any = None) -> KernelResult:
        """The requested derivatives at ``X`` ``(N, d)``: a :class:`~symnet.KernelResult`."""
        params, P = self.params(weights), self.points(X)
        n = len(P)
        results = {name: np.empty(self.request.shape(name, n, self.m, self.d)) for name in self.outputs}

        def work(start: int, stop: int) -> None:
            S, _ = self._forward(params, P[start:stop])
            for name, array in self.readout.read(S[self.graph.output]).items():
                results[name][start:stop] = array
        with blas_on_one_thread():
            over_chunks(n, self.chunk, work, threads=self.threads, smallest_share=SMALLEST_SHARE_VJP)
        return KernelResult(results)

    def forward(self, X: Any, weights: Any = None) -> tuple[KernelResult, Pullback]:
        """The results at ``X``, and a :class:`Pullback` for their vector-Jacobian products.

        Like ``jax.vjp``: the pullback reuses this forward sweep's streams where they fit in
        :data:`KEEP_BYTES` (``pullback.kept`` says; otherwise it sweeps forward again, chunk by
        chunk), so a framework op's forward and backward together cost one forward and one
        reverse sweep.
        """
        params, P = self.params(weights), self.points(X)
        n = len(P)
        results = {name: np.empty(self.request.shape(name, n, self.m, self.d)) for name in self.outputs}
        keep = n * self.bytes_per_point <= KEEP_BYTES
        states: dict[int, tuple[int, Any, Any]] = {}

        def work(start: int, stop: int) -> None:
            S, saved = self._forward(params, P[start:stop])
            for name, array in self.readout.read(S[self.graph.output]).items():
                results[name][start:stop] = array
            if keep:
                states[start] = (stop, S, saved)
        with blas_on_one_thread():
            over_chunks(n, self.chunk, work, threads=self.threads, smallest_share=SMALLEST_SHARE_VJP)
        return KernelResult(results), Pullback(self, params, P, states)

    def vjp(self, X: Any, cotangents: Mapping[str, Any], weights: Any = None) -> tuple[GraphParams, np.ndarray]:
        """``sum over results of <cotangent, d result>``'s gradients: ``({node: {parameter: array}}, dX (N, d))``.

        ``cotangents`` maps result names (a subset of :attr:`outputs`; a partial by its name or
        its tuple, ``(0, 1)``) to arrays of the results' shapes.
        """
        params, P = self.params(weights), self.points(X)
        n = len(P)
        bars = self._cotangents(cotangents, n)

        def seed_of(start: int, stop: int, results: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
            return 0.0, self.readout.adjoint({k: v[start:stop] for k, v in bars.items()}, stop - start, self.m)
        _, grads, dX = self._sweep(params, P, seed_of)
        return grads, dX

    def value_and_grad(self, X: Any, loss: ChunkLoss, weights: Any = None) -> tuple[float, GraphParams, np.ndarray]:
        """A scalar loss of the results and its exact gradients: ``(loss, {node: {parameter: array}}, dX)``.

        ``loss(P, rows, result)`` is called once per chunk of points with the chunk's points
        ``P`` ``(n, d)``, their ``rows`` (a slice into ``X``) and its results as traced arrays
        (:class:`symnet.tape.Traced`), and returns the chunk's share of the loss (a traced
        scalar); the shares add up.  A loss must therefore be a sum over points -- a mean is a
        sum divided by ``N`` -- which every residual loss is.
        """
        params, P = self.params(weights), self.points(X)

        def seed_of(start: int, stop: int, results: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
            traced = {name: Traced(array) for name, array in results.items()}
            value = loss(P[start:stop], slice(start, stop), KernelResult(traced))
            bars = gradients(value, list(traced.values()))
            return float(np.asarray(value.value).reshape(())), self.readout.adjoint(
                dict(zip(traced, bars)), stop - start, self.m)
        return self._sweep(params, P, seed_of)

    def _cotangents(self, cotangents: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
        cotangents = {k if isinstance(k, str) else partial_name(tuple(sorted(int(i) for i in k))): v
                      for k, v in cotangents.items()}  # a partial by its tuple, as results are read
        unknown = sorted(set(cotangents) - set(self.outputs))
        if unknown:
            raise InputError(f"cotangents for {unknown}, which the kernel does not compute; it computes "
                             f"{', '.join(self.outputs)}")
        bars = {}
        for name, value in cotangents.items():
            array = np.asarray(value, dtype=np.float64)
            shape = self.request.shape(name, n, self.m, self.d)
            if array.shape != shape:
                raise ShapeError(f"the cotangent of {name!r} has shape {array.shape}; {name} has shape {shape}")
            bars[name] = array
        return bars

    def _sweep(self, params: GraphParams, P: np.ndarray,
               seed_of: Callable[[int, int, dict[str, np.ndarray]], tuple[float, np.ndarray]],
               states: Mapping[int, tuple[int, Any, Any]] | None = None) -> tuple[float, GraphParams, np.ndarray]:
        n = len(P)
        dX = np.zeros_like(P)
        like = [tuple(np.zeros_like(params[node][name]) for node, name in self.owners)]

        def work(start: int, stop: int, sums: list) -> float:
            kept = states.get(start) if states else None
            # this thread's arrays, reused chunk after chunk and call after call; a fresh set when
            # seed_of's loss calls this kernel again from inside the chunk (a re-entrant call)
            with self._space.lease() as space:
                if kept is not None and kept[0] == stop:  # the same chunks as the forward call's
                    _, S, saved = kept
                else:
                    S, saved = self._forward(params, P[start:stop], space)
                value, seed = seed_of(start, stop, self.readout.read(S[self.graph.output]))
                grads, dX[start:stop] = self._backward(params, S, saved, seed, space)
            for total, (node, name) in zip(sums[0], self.owners):
                part = grads.get(node, {}).get(name)
                if part is not None:
                    total += part
            return value
        with blas_on_one_thread():  # small products, one chunk at a time (threads share the chunks)
            value, [sums] = sum_over_chunks(n, self.chunk, work, like, threads=self.threads,
                                            smallest_share=SMALLEST_SHARE_VJP)
        grads: GraphParams = {}
        for total, (node, name) in zip(sums, self.owners):
            grads.setdefault(node, {})[name] = total
        return value, grads, dX


class Pullback:
    """``pullback(cotangents) -> ({node: {parameter: array}}, dX)``: :meth:`VJPKernel.vjp` at the
    points and weights of one :meth:`VJPKernel.forward` call.

    Attributes:
        kept: whether the forward sweep's streams were kept (else each call sweeps forward again).
    """

    def __init__(self, kernel: VJPKernel, params: GraphParams, points: np.ndarray,
                 states: dict[int, tuple[int, Any, Any]]) -> None:
        self.kernel, self.params, self.points, self.states = kernel, params, points, states

    @property
    def kept(self) -> bool:
        return bool(self.states) or len(self.points) == 0

    def __call__(self, cotangents: Mapping[str, Any]) -> tuple[GraphParams, np.ndarray]:
        kernel, n = self.kernel, len(self.points)
        bars = kernel._cotangents(cotangents, n)  # noqa: SLF001 - the kernel's own check

        def seed_of(start: int, stop: int, results: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
            return 0.0, kernel.readout.adjoint({k: v[start:stop] for k, v in bars.items()}, stop - start, kernel.m)
        _, grads, dX = kernel._sweep(self.params, self.points, seed_of, self.states)  # noqa: SLF001
        return grads, dX


def compile_vjp(net: Network, derivatives: Iterable[Any] | str = ("value",), parallel: bool = True) -> VJPKernel:
    """A :class:`VJPKernel`: ``net``'s ``derivatives`` at points, with exact gradients of what is computed from them.

    Args:
        net: a numeric network (chain or graph); the weights may change from call to call.
        derivatives: what to compute, as :func:`symnet.compile` takes it.
        parallel: thread the chunks of points.

    Returns: a :class:`VJPKernel`; ``kernel(X)`` the results, ``kernel.vjp(X, cotangents)`` and
    ``kernel.value_and_grad(X, loss)`` the exact gradients w.r.t. every parameter and the points.

    >>> import numpy as np, symnet
    >>> net = symnet.Network.from_weights([[[2.0]]], [[0.0]], ["square"])      # y = (w x)^2, w = 2
    >>> kernel = compile_vjp(net, ("hessian",))
    >>> loss, grads, dX = kernel.value_and_grad([[1.0]], lambda P, rows, r: r.hessian.sum())
    >>> loss, grads["z1"]["W"]                           # d2y/dx2 = 2 w^2 = 8; d/dw = 4 w = 8
    (8.0, array([[8.]]))
    """
    return VJPKernel(net, derivatives, parallel=parallel)
