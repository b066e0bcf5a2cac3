"""Loss-gradient kernels: a loss and its exact gradient with respect to every weight, for a batch.

Reverse mode through the layers, in matrix form: the forward pass keeps each layer's
activations ``A`` and slopes ``f'(Z)`` (printed from SymPy's derivative of the scalar
activation by the same emitter as the layered strategy), then

    delta_L = dloss/dZ_L,   dW_l = A_{l-1}^T delta_l,   db_l = sum_points delta_l,
    delta_{l-1} = (delta_l W_l^T) * f'(Z_{l-1}),

one BLAS product per layer and direction.  Weights are runtime arguments: a training loop
calls the same kernel with new weights every step.

For training loops, which call a kernel thousands of times on one batch, the per-point
arrays live in buffers kept from call to call, the points go through in chunks and the
activation passes block by block (:mod:`symnet.kernels._blocks` says why); bias gradients
are a product with a vector of ones rather than a sum over an axis, and a one-unit layer's
``delta W^T`` an outer product formed block by block rather than a BLAS call.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..activations import T, Activation
from ..losses import LOSSES, check_loss, parse_targets
from ..errors import InputError, ShapeError
from ..network import Network
from . import _cache
from ._blocks import PerThread, back_through, block_rows, blocks, chunk_rows
from ._layered import derivatives_source
from ._threads import sum_over_chunks, thread_count

__all__ = ["LossKernel", "LOSSES"]


class LossKernel:
    """``kernel(X, Y) -> (loss, [(dW, db), ...])`` for one architecture and loss.

    Args of the call: ``X`` ``(N, d)``; ``Y`` targets read by :func:`symnet.losses.parse_targets`
    (``(N, m)``, or ``(N,)`` for one output; integer class labels ``(N,)`` for the cross entropies
    of two or more outputs); optional ``weights=``: a network of
    the same architecture, or a list of ``(W, b)`` arrays per layer, whose weights to use
    (default: the network compiled).
    Returns the mean loss (a float) and per layer ``dW`` ``(fan_in, fan_out)`` and ``db``
    ``(fan_out,)``, in float64 (new arrays), matching :func:`symnet.param_grad`.

    Threads may call one kernel at once: each keeps its own buffers (about
    :data:`~symnet.kernels._blocks.CHUNK_BYTES`) for as long as the kernel and the thread live.
    """

    def __init__(self, net: Network, loss: str, parallel: bool = True) -> None:
        check_loss(loss)
        for number, activation in enumerate(net.activations[:-1], start=1):
            if not activation.elementwise:
                raise InputError(f"layer {number}: {activation.name!r} is supported only as the last layer")
        last = net.activations[-1]
        if not last.elementwise and loss != "cross_entropy":
            raise InputError(f"a {last.name} output layer is supported with loss='cross_entropy' only")
        self.net, self.loss = net, loss
        self._passes: list[Callable[..., None] | None] = []
        self.slots = 1
        for activation in net.activations:
            if not activation.elementwise or activation.form == T:
                self._passes.append(None)
                continue
            source = derivatives_source(activation, 2)  # apply(Z, A, D, s): A = f(Z), D = f'(Z)
            module, _, _ = _cache.load_or_write(_cache.key_of(source), source, lambda: source, use_disk=False)
            self._passes.append(module.apply)
            self.slots = max(self.slots, module.SLOTS)
        # per point and layer: an activation pass's input, output and slope, and an adjoint
        self.chunk = chunk_rows(4 * sum(net.layer_sizes[1:]) * np.dtype(np.float64).itemsize)
        self._ones = np.ones(self.chunk)  # bias gradients: ones @ delta
        self._space = PerThread()
        self.parallel = parallel

    @property
    def threads(self) -> int:
        """Threads a call spreads its chunks of points over (:mod:`symnet.kernels._threads`)."""
        return thread_count(self.parallel)

    def __reduce__(self) -> tuple[Any, ...]:
        # activation passes of exec'd modules and per-thread buffers do not pickle: rebuild them
        return (LossKernel, (self.net, self.loss, self.parallel))

    def __call__(self, X: Any, Y: Any, weights: Network | Sequence[tuple[Any, Any]] | None = None
                 ) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
        net = self.net
        if weights is None:
            Ws = [layer.weight_array() for layer in net.layers]
            bs = [layer.bias_array() for layer in net.layers]
        elif isinstance(weights, Network):
            if weights.layer_sizes != net.layer_sizes:
                raise ShapeError(f"weights has layer sizes {weights.layer_sizes}, the kernel {net.layer_sizes}")
            Ws = [layer.weight_array() for layer in weights.layers]
            bs = [layer.bias_array() for layer in weights.layers]
        else:  # (W, b) arrays per layer: no SymPy round trip, for training loops
            Ws, bs = _arrays(weights, net)
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != net.n_inputs:
            raise ShapeError(f"X has shape {X.shape} but the network takes {net.n_inputs} inputs: give (N, {net.n_inputs})")
        n = X.shape[0]
        targets = _targets(Y, n, net.n_outputs, self.loss, net.activations[-1].name)
        def work(start: int, stop: int, grads: list) -> float:
            with np.errstate(all="ignore"):  # saturation gives inf/0 here as in the closed form
                return self._chunk(X[start:stop], targets[start:stop], Ws, bs, grads)

        total, grads = sum_over_chunks(n, self.chunk, work, list(zip(Ws, bs)), self.threads)
        for dW, db in grads:
            dW /= max(n, 1)
            db /= max(n, 1)
        return total / n if n else float("nan"), grads

    def _chunk(self, X: np.ndarray, targets: np.ndarray, Ws: list[np.ndarray], bs: list[np.ndarray],
               grads: list[tuple[np.ndarray, np.ndarray]]) -> float:
        """Add this chunk's sums of the gradients to ``grads``; return its sum of the loss."""
        space, rows, last = self._space(), X.shape[0], len(Ws) - 1

        def array(name: Any, width: int) -> np.ndarray:
            return space.part(name, (rows, width), self.chunk * width)

        activations, slopes = [X], []
        for number, (W, b, apply, activation) in enumerate(zip(Ws, bs, self._passes, self.net.activations)):
            width = W.shape[1]
            if apply is not None:
                Z = array("Z", width)  # needed only until the pass has read it: one buffer per width
                np.matmul(activations[-1], W, out=Z)
                A, D = array(("A", number), width), array(("D", number), width)
                self._activate(apply, Z, b, A, D)
            else:
                A = array(("A", number), width)
                np.matmul(activations[-1], W, out=A)
                A += b
                D = None  # linear: f' = 1
                if not activation.elementwise:  # softmax output; its cross entropy gives dloss/dZ
                    A = activation.numpy(A)
            activations.append(A)
            slopes.append(D)
        value, delta = _loss_and_delta(self.loss, activations[-1], targets, self.net.activations[-1])
        if slopes[last] is not None:
            delta *= slopes[last]
        for number in range(last, -1, -1):
            dW, db = grads[number]
            dW += activations[number].T @ delta
            db += self._ones[:rows] @ delta
            if number:
                # f'(Z) is not needed again: the next delta takes its place
                G, D = array(("G", number % 2), Ws[number].shape[0]), slopes[number - 1]
                delta = back_through(delta, Ws[number], G, D, G if D is None else D)
        return value

    def _activate(self, apply: Callable[..., None], Z: np.ndarray, b: np.ndarray, A: np.ndarray,
                  D: np.ndarray) -> None:
        """``A = f(Z + b)``, ``D = f'(Z + b)``, block by block: the pass's scratch stays in the cache."""
        size = self.slots * block_rows(Z.shape[1]) * Z.shape[1]
        space = self._space()
        for rows in blocks(*Z.shape):
            z = Z[rows]
            z += b
            apply(z, A[rows], D[rows], space.part("s", (self.slots, *z.shape), size))


def _arrays(weights: Sequence[tuple[Any, Any]], net: Network) -> tuple[list[np.ndarray], list[np.ndarray]]:
    pairs = list(weights)
    if len(pairs) != len(net.layers):
        raise ShapeError(f"weights has {len(pairs)} (W, b) pairs but the network has {len(net.layers)} layers")
    Ws, bs = [], []
    for number, ((W, b), layer) in enumerate(zip(pairs, net.layers), start=1):
        W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64).reshape(-1)
        if W.shape != (layer.fan_in, layer.fan_out) or b.shape != (layer.fan_out,):
            raise ShapeError(f"layer {number}: W {W.shape} and b {b.shape} given, "
                             f"({layer.fan_in}, {layer.fan_out}) and ({layer.fan_out},) needed")
        Ws.append(W)
        bs.append(b)
    return Ws, bs


def _targets(Y: Any, n: int, m: int, loss: str, last: str) -> np.ndarray:
    """``Y`` as float ``(N, m)`` by the rule of :func:`symnet.losses.parse_targets` (labels become one-hot)."""
    return parse_targets(loss, Y, n, m, name="Y", last_activation=last)


def _loss_and_delta(loss: str, y: np.ndarray, t: np.ndarray, last: Activation) -> tuple[float, np.ndarray]:
    """The loss summed over the points and ``dloss_n/dA`` (or ``dloss_n/dZ`` for a softmax output) per point."""
    m = y.shape[1]
    if loss == "mse":
        residual = y - t
        return float(np.sum(residual * residual)) / m, residual * (2 / m)
    if loss == "softmax_cross_entropy":
        shifted = y - y.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-np.sum(t * log_p)), np.exp(log_p) * t.sum(axis=1, keepdims=True) - t
    # 0 * log(0) is 0: a class the target gives no weight costs nothing, even if its probability underflows
    cross = float(-np.sum(np.where(t != 0, t * np.log(np.where(t != 0, y, 1.0)), 0.0)))
    if not last.elementwise:  # softmax then cross entropy: dloss/dZ = p * sum(t) - t
        return cross, y * t.sum(axis=1, keepdims=True) - t
    return cross, np.where(t != 0, -t / np.where(t != 0, y, 1.0), 0.0)
