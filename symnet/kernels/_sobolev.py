"""Exact weight gradients of a loss on a network's values *and* its input derivatives.

A Sobolev loss compares both ``y = net(x)`` and the input Jacobian ``J = dy/dx`` with
targets, any of which may be missing (NaN in the data):

    L = cv * sum_{(n,k) given} (y_nk - t_nk)**2 + cd * sum_{(n,k,i) given} (J_nki - s_nki)**2,

``cv = value_weight / #values given``, ``cd = derivative_weight / #derivatives given`` (the
means over the targets present, weighted).  Its gradient with respect to every weight is
computed exactly, in matrix form, by one of two schedules; for ``d`` inputs and ``m``
outputs the first costs ``3 (1 + d)`` matrix products per layer, the second ``3 (1 + m)``,
so the second runs when ``m < d`` (a 2-input, 1-output net: 6 products instead of 9).

**Tangents forward, then reverse** carries each layer's values ``A`` ``(N, n)`` and input
tangents ``dA_i``, one per input: ``Z = A W + b``, ``dZ_i = dA_i W``, ``A' = f(Z)``,
``dA_i' = f'(Z) dZ_i``; then reverse through both streams, from ``gA = dL/dA`` and
``gT_i = dL/d(dA_i)``:

    gZ  = gA f'(Z) + f''(Z) sum_i gT_i dZ_i        gdZ_i = gT_i f'(Z)
    dW  = A^T gZ + sum_i dA_i^T gdZ_i               db    = sum_n gZ
    gA  = gZ W^T                                    gT_i  = gdZ_i W^T

The ``1 + d`` streams are stacked, ``(1 + d, N, n)``: one matrix product forward and two in
reverse per layer, each over all streams at once.

**Reverse over reverse** computes ``J`` by backpropagation, one stream per output ``k``:
``g_l = dy_k/dZ_l = h_l f'(Z_l)`` with ``h_{l-1} = g_l W_l^T`` (``h`` of the last layer: the
unit vector ``e_k``) and ``J_k = g_1 W_1^T``; then differentiates that computation too.  A
sweep up the layers carries ``gg_l = dL/dg_l`` from ``gg_1 = dL/dJ W_1``:

    dW_1 += dL/dJ^T g_1,   gh_l = gg_l f'(Z_l),   dW_{l+1} += gh_l^T g_{l+1},   gg_{l+1} = gh_l W_{l+1},
    and each layer's share through its slopes, c_l = f''(Z_l) sum_k gg_l h_l;

a sweep down is ordinary backpropagation of the value loss with those shares added:
``gZ_l = gA_l f'(Z_l) + c_l``, ``dW_l += A_{l-1}^T gZ_l``, ``db_l = sum_n gZ_l``,
``gA_{l-1} = gZ_l W_l^T``.

As in :mod:`symnet.kernels._loss`, and for the reasons measured in :mod:`symnet.kernels._blocks`,
arrays are reused from one evaluation to the next (:class:`Workspace`), the points go
through in chunks, and the elementwise passes block by block.

``f, f', f''`` of each activation are printed from SymPy's derivatives of its form (with
``Heaviside(0) = 1/2`` and ``DiracDelta`` as 0: the almost-everywhere values, as every
symnet kernel) by the same three-address emitter as the layered kernels.

>>> import numpy as np
>>> loss = SobolevLoss(["linear"], X=np.array([[1.0], [2.0]]), Y=None, DY=np.array([[[3.0]], [[np.nan]]]))
>>> value, [(dW, db)] = loss([(np.array([[2.0]]), np.array([0.0]))])   # y = 2x: J = 2, target 3
>>> value, dW, db
(1.0, array([[-2.]]), array([0.]))
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..activations import T, Activation
from ..errors import InputError
from ._layered import derivatives_pass
from ._blocks import PerThread, Workspace, back_through, block_rows, blocks, chunk_rows
from ._threads import sum_over_chunks, thread_count
from ._loss import GraphSweep, add_gradients

__all__ = ["GraphSobolevLoss", "SobolevLoss", "Workspace", "derivative_pass"]

Pass = Callable[..., None]


def derivative_pass(activation: Activation) -> tuple[Pass | None, int]:
    """``(apply, slots)``: ``apply(Z, F0, F1, F2, s)`` writes ``f(Z), f'(Z), f''(Z)`` elementwise
    into ``F0, F1, F2``, using ``s``, ``slots`` scratch arrays shaped like ``Z``; ``(None, 0)``
    for linear (``f' = 1``, ``f'' = 0``).

    >>> from symnet import activations
    >>> apply, slots = derivative_pass(activations.get("relu"))
    >>> Z = np.array([-1.0, 0.0, 2.0])
    >>> f, d1, d2 = np.empty(3), np.empty(3), np.empty(3)
    >>> apply(Z, f, d1, d2, np.empty((slots, 3)))
    >>> f, d1, bool(np.all(d2 == 0))      # Heaviside(0) = 1/2; DiracDelta is 0 a.e.
    (array([0., 0., 2.]), array([0. , 0.5, 1. ]), True)
    """
    if not activation.elementwise:
        raise InputError(f"activation {activation.name!r} acts on a whole layer; derivative targets need "
                         "elementwise activations")
    if activation.form == T:
        return None, 0
    return derivatives_pass(activation, 3)


def _masked(targets: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Targets with NaN replaced by 0, and the mask of given ones (``None`` when all are given)."""
    if targets is None:
        return None, None
    given = ~np.isnan(targets)
    if given.all():
        return np.ascontiguousarray(targets), None
    return np.where(given, targets, 0.0), given


def _residual(values: np.ndarray, target: np.ndarray | None, given: np.ndarray | None, scale: float,
              out: np.ndarray) -> float:
    """``scale * sum of (values - target)**2`` over the given targets; ``out`` = its derivative."""
    if target is None or not scale:
        out[...] = 0.0
        return 0.0
    residual = values - target if given is None else np.where(given, values - target, 0.0)
    np.multiply(residual, 2 * scale, out=out)
    return scale * float(np.sum(residual * residual))


class SobolevLoss:
    """The loss above and its exact gradient for one architecture and data set.

    Args:
        activations: per layer, an :class:`~symnet.activations.Activation` (or a spec).
        X: points ``(N, d)``.
        Y: value targets ``(N, m)`` with NaN where none is given, or ``None``.
        DY: derivative targets ``(N, m, d)``, ``DY[n, k, i]`` for ``dy_k/dx_i``, NaN where none
            is given, or ``None``.
        value_weight, derivative_weight: ``>= 0``.
        reverse: the schedule: ``True`` reverse over reverse, ``False`` tangents forward;
            default: the one with fewer matrix products, reverse when ``m < d``.
        parallel: chunks of points on several threads (:mod:`symnet.kernels._threads`).

    ``loss(weights, rows=None)`` with ``weights`` a list of ``(W (fan_in, fan_out), b (fan_out,))``
    returns ``(L, [(dW, db), ...])`` (fresh arrays); ``rows`` (indices) evaluates the loss of
    those points only, its means taken over the targets given among them.  Each thread
    calling it keeps its own buffers (about :data:`~symnet.kernels._blocks.CHUNK_BYTES`).
    ``loss.reverse`` says which schedule runs.
    """

    def __init__(self, activations: Sequence[Any], X: np.ndarray, Y: np.ndarray | None, DY: np.ndarray | None,
                 value_weight: float = 1.0, derivative_weight: float = 1.0, reverse: bool | None = None,
                 parallel: bool = True) -> None:
        from ..activations import get

        self.activations = [get(a) for a in activations]
        self._passes = [derivative_pass(a) for a in self.activations]
        self.X = np.ascontiguousarray(X, dtype=np.float64)
        self.Y, self.Y_given = _masked(None if Y is None else np.asarray(Y, dtype=np.float64))
        DY = None if DY is None else np.asarray(DY, dtype=np.float64)
        self.reverse = DY is not None and (DY.shape[1] < DY.shape[2] if reverse is None else reverse)
        # stored as the streams they are compared with: (m, N, d) in reverse, else (d, N, m)
        DY = None if DY is None else np.ascontiguousarray(np.transpose(DY, (1, 0, 2) if self.reverse else (2, 0, 1)))
        self.DY, self.DY_given = _masked(DY)
        self.value_weight, self.derivative_weight = float(value_weight), float(derivative_weight)
        self._space = PerThread()
        self.parallel = parallel

    def __call__(self, weights: Sequence[tuple[np.ndarray, np.ndarray]],
                 rows: np.ndarray | None = None) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
        X, Y, Y_given, DY, DY_given, count_d, scales = _batch(self, rows)
        n, d = X.shape
        if not count_d:
            DY = DY_given = None
        widths = [W.shape[1] for W, _ in weights]
        if DY is not None and self.reverse:
            sweep, streams = self._reverse_chunk, widths[-1]
            # per point: each layer's f, f', f'', share c and the m streams g and h; two of gg and gA
            per_point = (4 + 2 * streams) * sum(widths) + (2 * streams + 2) * max(widths)
        else:
            sweep, streams = self._tangent_chunk, 1 + d if DY is not None else 1
            # per point: each layer's pre-activations and outputs (all streams), f' and f''; two
            # adjoints.  Budgeted at a quarter: chunks that much larger than the others' ran
            # faster while other virtual machines loaded the memory, slower otherwise, and never
            # slower than whole batches (2-64-64-1 net; benchmarks/RESULTS.md, "Measurements
            # behind design choices in the code")
            per_point = ((2 * streams + 2) * sum(widths) + 2 * streams * max(widths)) // 4
        chunk = chunk_rows(per_point * X.itemsize)
        def work(start: int, stop: int, grads: list) -> float:
            part = slice(start, stop)
            targets = (None if Y is None else Y[part], None if Y_given is None else Y_given[part],
                       None if DY is None else DY[:, part], None if DY_given is None else DY_given[:, part])
            with np.errstate(all="ignore"):
                return sweep(weights, X[part], targets, scales, chunk, grads)

        like = [(np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)) for W, b in weights]
        return sum_over_chunks(n, chunk, work, like, thread_count(self.parallel))

    def _arrays(self, n: int, capacity: int) -> Callable[..., np.ndarray]:
        """``array(name, width, count=1)``: this thread's ``(count, n, width)`` buffer ``name``."""
        space = self._space()

        def array(name: Any, width: int, count: int = 1) -> np.ndarray:
            return space.part(name, (count, n, width), count * capacity * width)

        return array

    def _tangent_chunk(self, weights: Sequence[tuple[np.ndarray, np.ndarray]], X: np.ndarray,
                       targets: tuple[np.ndarray | None, ...], scales: tuple[float, float], capacity: int,
                       grads: list[tuple[np.ndarray, np.ndarray]]) -> float:
        """Tangents forward, then reverse: add this chunk's share of the gradient to ``grads``; return its loss."""
        n, k = X.shape[0], 1 + (X.shape[1] if targets[2] is not None else 0)
        array = self._arrays(n, capacity)
        trace, S = [], None
        for number, ((W, b), (apply, slots)) in enumerate(zip(weights, self._passes)):
            P = array(("P", number), W.shape[1], k)  # pre-activations and their tangents
            if number == 0:
                np.matmul(X, W, out=P[0])
                if k > 1:
                    P[1:] = W[:, None, :]  # dZ/dx_i of the first layer: row i of W at every point
            else:
                np.matmul(S.reshape(k * n, -1), W, out=P.reshape(k * n, -1))  # type: ignore[union-attr]
            if apply is None:  # linear: the streams pass through
                P[0] += b
                out, F1, F2 = P, None, None
            else:
                out = array(("A", number), W.shape[1], k)
                F1, F2 = array(("F", number), W.shape[1], 2)  # f'(Z), f''(Z)
                _activate(self._space, apply, slots, P[0], b, out[0], F1, F2, P[1:], out[1:])
            trace.append((S, P, F1, F2))
            S = out
        G = array(("G", len(trace) % 2), S.shape[2], k)  # dL/dS: [dL/dy; dL/dJ_1; ...; dL/dJ_d]
        Y, Y_given, DY, DY_given = targets
        loss = _residual(S[0], Y, Y_given, scales[0], G[0])
        if k > 1:
            loss += _residual(S[1:], DY, DY_given, scales[1], G[1:])
        ones = _ones(self._space, n, capacity)
        for number in range(len(trace) - 1, -1, -1):
            S_in, P, F1, F2 = trace[number]
            if F1 is not None:
                _tangent_adjoints(self._space, G, P, F1, F2)  # now [gZ; gdZ_i]
            flat = G.reshape(k * n, -1)
            dW, db = grads[number]
            if number == 0:  # the inputs' tangents are the identity
                dW += X.T @ G[0]
                if k > 1:
                    dW += ones @ G[1:]
            else:
                dW += S_in.reshape(k * n, -1).T @ flat
            db += ones @ G[0]
            if number:
                W = weights[number][0]
                G_in = array(("G", number % 2), W.shape[0], k)  # two buffers in turn: G is the other
                back_through(flat, W, G_in.reshape(k * n, -1), None, G_in)
                G = G_in
        return loss

    def _reverse_chunk(self, weights: Sequence[tuple[np.ndarray, np.ndarray]], X: np.ndarray,
                       targets: tuple[np.ndarray | None, ...], scales: tuple[float, float], capacity: int,
                       grads: list[tuple[np.ndarray, np.ndarray]]) -> float:
        """Reverse over reverse: add this chunk's share of the gradient to ``grads``; return its loss."""
        n, last, m = X.shape[0], len(weights) - 1, weights[-1][0].shape[1]
        array = self._arrays(n, capacity)
        A, D, E = [X], [], []  # per layer: f(Z), f'(Z), f''(Z); None for linear
        for number, ((W, b), (apply, slots)) in enumerate(zip(weights, self._passes)):
            if apply is None:
                Z = array(("A", number), W.shape[1])[0]
                np.matmul(A[-1], W, out=Z)
                Z += b
                A.append(Z)
                D.append(None)
                E.append(None)
                continue
            Z = array("Z", W.shape[1])[0]  # read only by the activation pass: one buffer per width
            np.matmul(A[-1], W, out=Z)
            F0, F1, F2 = array(("F", number), W.shape[1], 3)
            _activate(self._space, apply, slots, Z, b, F0, F1, F2)
            A.append(F0)
            D.append(F1)
            E.append(F2)
        # the Jacobian, one stream per output: h (dy_k/dA of each layer) and g (dy_k/dZ)
        h, g = [None] * (last + 1), [None] * (last + 1)
        h[last] = array("seed", m, m)
        h[last][...] = np.eye(m)[:, None, :]  # dy_k/dy = e_k
        g[last] = h[last] if D[last] is None else np.multiply(h[last], D[last], out=array(("g", last), m, m))
        for number in range(last, 0, -1):
            W, slope = weights[number][0], D[number - 1]
            h[number - 1] = array(("h", number - 1), W.shape[0], m)
            g[number - 1] = h[number - 1] if slope is None else array(("g", number - 1), W.shape[0], m)
            for k in range(m):
                back_through(g[number][k], W, h[number - 1][k], slope, g[number - 1][k])
        J = array("J", X.shape[1], m)
        back_through(g[0].reshape(m * n, -1), weights[0][0], J.reshape(m * n, -1), None, J)
        Y, Y_given, DY, DY_given = targets
        gJ = array("gJ", X.shape[1], m)
        loss = _residual(J, DY, DY_given, scales[1], gJ)
        # up: gg = dL/dg, and each layer's share c through its slopes
        grads[0][0][...] += gJ.reshape(m * n, -1).T @ g[0].reshape(m * n, -1)
        gg = array(("gg", 0), weights[0][0].shape[1], m)
        np.matmul(gJ.reshape(m * n, -1), weights[0][0], out=gg.reshape(m * n, -1))
        shares: list[np.ndarray | None] = []
        for number in range(last + 1):
            if D[number] is None:
                shares.append(None)
            else:
                share = array(("c", number), D[number].shape[1])[0]
                _slope_shares(self._space, gg, h[number], D[number], E[number], share, number < last)
                shares.append(share)
            if number < last:  # gg is now gh = dL/dh
                W = weights[number + 1][0]
                grads[number + 1][0][...] += gg.reshape(m * n, -1).T @ g[number + 1].reshape(m * n, -1)
                gg_next = array(("gg", (number + 1) % 2), W.shape[1], m)
                np.matmul(gg.reshape(m * n, -1), W, out=gg_next.reshape(m * n, -1))
                gg = gg_next
        # down: backpropagation of the value loss, each layer's share added
        gZ = array("gy", m)[0]
        loss += _residual(A[-1], Y, Y_given, scales[0], gZ)
        if D[last] is not None:
            gZ *= D[last]
            gZ += shares[last]
        ones = _ones(self._space, n, capacity)
        for number in range(last, -1, -1):
            dW, db = grads[number]
            dW += A[number].T @ gZ
            db += ones @ gZ
            if number:
                W = weights[number][0]
                gA = array(("gA", number % 2), W.shape[0])[0]
                gZ = back_through(gZ, W, gA, D[number - 1], gA, shares[number - 1])
        return loss


def _ones(space: PerThread, n: int, capacity: int) -> np.ndarray:
    """``n`` ones: bias gradients are ``ones @ gZ``, a BLAS product, faster than a sum over the points."""
    ones = space().part("ones", (n,), capacity)
    ones.fill(1.0)
    return ones


def _activate(space: PerThread, apply: Pass, slots: int, Z: np.ndarray, b: np.ndarray, F0: np.ndarray,
              F1: np.ndarray, F2: np.ndarray, tangents: np.ndarray | None = None,
              out: np.ndarray | None = None) -> None:
    """``Z += b``; ``F0, F1, F2 = f(Z), f'(Z), f''(Z)``; ``out = f'(Z) tangents``: block by block."""
    size, scratch = slots * block_rows(Z.shape[1]) * Z.shape[1], space()
    for rows in blocks(*Z.shape):
        z = Z[rows]
        z += b
        apply(z, F0[rows], F1[rows], F2[rows], scratch.part("s", (slots, *z.shape), size))
        if tangents is not None and len(tangents):
            np.multiply(tangents[:, rows], F1[rows], out=out[:, rows])  # type: ignore[index]


def _tangent_adjoints(space: PerThread, G: np.ndarray, P: np.ndarray, F1: np.ndarray, F2: np.ndarray) -> None:
    """In place, from ``G = [gA; gT_i]``: ``[gZ; gdZ_i] = [gA f' + f'' sum_i gT_i dZ_i; gT_i f']``, block by block."""
    for rows in blocks(*G.shape[1:]):
        if len(G) > 1:  # the tangents' term, before G[1:] is overwritten
            term = _sum_of_products(space, G[1:, rows], P[1:, rows])
            term *= F2[rows]
        np.multiply(G[:, rows], F1[rows], out=G[:, rows])
        if len(G) > 1:
            G[0, rows] += term


def _slope_shares(space: PerThread, gg: np.ndarray, h: np.ndarray, D: np.ndarray, E: np.ndarray,
                  share: np.ndarray, onward: bool) -> None:
    """``share = f''(Z) sum_k gg_k h_k``, then (``onward``) ``gg *= f'(Z)`` in place, block by block."""
    for rows in blocks(*D.shape):
        np.multiply(_sum_of_products(space, gg[:, rows], h[:, rows]), E[rows], out=share[rows])
        if onward:
            np.multiply(gg[:, rows], D[rows], out=gg[:, rows])


def _sum_of_products(space: PerThread, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sum_k a[k] * b[k]`` of two stacks of blocks, in scratch."""
    size = block_rows(a.shape[2]) * a.shape[2]
    total, product = (space().part(name, a.shape[1:], size) for name in ("sum", "product"))
    np.multiply(a[0], b[0], out=total)
    for k in range(1, len(a)):
        total += np.multiply(a[k], b[k], out=product)
    return total


class GraphSobolevLoss:
    """The loss above and its exact gradient for a graph network, by tangents forward then reverse.

    Every node carries its values and, with derivative targets, its ``d`` input tangents
    (:class:`~symnet.kernels._loss.GraphSweep`, streams ``(1 + d, N, width)``); the reverse
    sweep goes back through both streams by each node's family rule (for an elementwise
    node ``gZ = gA f'(Z) + f''(Z) sum_i gT_i dZ_i``, ``gdZ_i = gT_i f'(Z)``; for ``mul``,
    Leibniz's rule; linear nodes transpose their coefficients).

    Args:
        graph: the network's :class:`~symnet.graph.Graph` (softmax nodes only without ``DY``).
        X, Y, DY, value_weight, derivative_weight, parallel: as :class:`SobolevLoss`.

    ``loss(params, rows=None)`` with ``params`` ``{node: {parameter: array}}`` returns
    ``(L, {node: {parameter: gradient}})``.

    >>> from symnet.graph import input, dense, network
    >>> x = input(1)
    >>> net = network(x, dense(x, [[2.0]], [0.0]) + x)                  # y = w x + x: J = w + 1 = 3
    >>> loss = GraphSobolevLoss(net.graph, X=np.array([[1.0]]), Y=None, DY=np.array([[[4.0]]]))
    >>> value, grads = loss({"z1": {"W": np.array([[2.0]]), "b": np.array([[0.0]])}})
    >>> value, grads["z1"]["W"]                                          # (3 - 4)^2; 2 (3 - 4)
    (1.0, array([[-2.]]))
    """

    def __init__(self, graph: Any, X: np.ndarray, Y: np.ndarray | None, DY: np.ndarray | None,
                 value_weight: float = 1.0, derivative_weight: float = 1.0, parallel: bool = True) -> None:
        self.graph = graph
        self.sweep = GraphSweep(graph, tangents=DY is not None)
        self._space = PerThread()  # the sweeps' arrays, per thread, reused chunk after chunk and call after call
        self._owners = [node for node in graph.nodes[1:] if node.params]
        self.X = np.ascontiguousarray(X, dtype=np.float64)
        self.Y, self.Y_given = _masked(None if Y is None else np.asarray(Y, dtype=np.float64))
        DY = None if DY is None else np.ascontiguousarray(np.transpose(np.asarray(DY, dtype=np.float64), (2, 0, 1)))
        self.DY, self.DY_given = _masked(DY)  # (d, N, m), as the tangent streams
        self.value_weight, self.derivative_weight = float(value_weight), float(derivative_weight)
        self.parallel = parallel

    def __call__(self, params: dict[str, dict[str, np.ndarray]], rows: np.ndarray | None = None
                 ) -> tuple[float, dict[str, dict[str, np.ndarray]]]:
        X, Y, Y_given, DY, DY_given, count_d, scales = _batch(self, rows)
        n, d = X.shape
        output = self.graph.output
        k = self.sweep.streams(d)
        widths = sum(node.width for node in self.graph.nodes)
        chunk = chunk_rows(3 * k * widths * X.itemsize)

        def work(start: int, stop: int, grads: list) -> float:
            part = slice(start, stop)
            with np.errstate(all="ignore"):
                space = self._space()  # this thread's arrays, reused chunk after chunk
                S, saved = self.sweep.forward(params, X[part], space)
                out = S[output]
                G = np.zeros_like(out)
                loss = _residual(out[0], None if Y is None else Y[part], None if Y_given is None else Y_given[part],
                                 scales[0], G[0])
                if k > 1:
                    loss += _residual(out[1:], DY[:, part], None if DY_given is None else DY_given[:, part],
                                      scales[1], G[1:])
                add_gradients(self.sweep.backward(params, S, saved, {output: G}, space=space), self._owners, grads)
                return loss

        like = [tuple(np.asarray(params[node.name][name], dtype=np.float64) for name in node.params)
                for node in self._owners]
        total, sums = sum_over_chunks(n, chunk, work, like, thread_count(self.parallel))
        return total, {node.name: dict(zip(node.params, group)) for node, group in zip(self._owners, sums)}


def _batch(loss: Any, rows: np.ndarray | None) -> tuple[Any, ...]:
    """The rows of a Sobolev loss's data (all without ``rows``), the derivative targets' count,
    and the two terms' scales (each weight over its count of given targets)."""
    def take(a: np.ndarray | None, axis: int = 0) -> np.ndarray | None:
        return a if a is None or rows is None else np.take(a, rows, axis=axis)

    X, Y, Y_given = take(loss.X), take(loss.Y), take(loss.Y_given)
    DY, DY_given = take(loss.DY, 1), take(loss.DY_given, 1)
    count_v = 0 if Y is None else (Y.size if Y_given is None else int(Y_given.sum()))
    count_d = 0 if DY is None else (DY.size if DY_given is None else int(DY_given.sum()))
    scales = (loss.value_weight / count_v if count_v else 0.0, loss.derivative_weight / count_d if count_d else 0.0)
    return X, Y, Y_given, DY, DY_given, count_d, scales
