"""Loss-gradient kernels: a loss and its exact gradient with respect to every weight, for a batch.

Reverse mode through the layers, in matrix form: the forward pass keeps each layer's
activations ``A`` and slopes ``f'(Z)`` (printed from SymPy's derivative of the scalar
activation by the same emitter as the layered strategy), then

    delta_L = dloss/dZ_L,   dW_l = A_{l-1}^T delta_l,   db_l = sum_points delta_l,
    delta_{l-1} = (delta_l W_l^T) * f'(Z_{l-1}),

one BLAS product per layer and direction.  Weights are runtime arguments: a training loop
calls the same kernel with new weights every step.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..activations import T, Activation
from ..derivatives import LOSSES
from ..errors import InputError, ShapeError
from ..network import Network
from . import _cache
from ._layered import derivatives_source

__all__ = ["LossKernel", "LOSSES"]



class LossKernel:
    """``kernel(X, Y) -> (loss, [(dW, db), ...])`` for one architecture and loss.

    Args of the call: ``X`` ``(N, d)``; ``Y`` ``(N, m)`` targets (or ``(N,)`` for one output;
    integer class labels ``(N,)`` for the cross entropies); optional ``weights=``: a network of
    the same architecture, or a list of ``(W, b)`` arrays per layer, whose weights to use
    (default: the network compiled).
    Returns the mean loss (a float) and per layer ``dW`` ``(fan_in, fan_out)`` and ``db``
    ``(fan_out,)``, in float64, matching :func:`symnet.param_grad`.
    """

    def __init__(self, net: Network, loss: str) -> None:
        if loss not in LOSSES:
            raise InputError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
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

    def __reduce__(self) -> tuple[Any, ...]:
        # activation passes of exec'd modules and per-thread buffers do not pickle: rebuild them
        return (LossKernel, (self.net, self.loss))

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
        targets = _targets(Y, X.shape[0], net.n_outputs, self.loss)
        activations, slopes = [X], []
        with np.errstate(all="ignore"):  # saturation gives inf/0 here as in the closed form
            for W, b, apply, activation in zip(Ws, bs, self._passes, net.activations):
                Z = activations[-1] @ W + b
                if apply is not None:
                    A, D = np.empty_like(Z), np.empty_like(Z)
                    apply(Z, A, D, np.empty((self.slots, *Z.shape)))
                elif activation.elementwise:  # linear
                    A, D = Z, np.ones_like(Z)
                else:  # softmax output
                    A, D = activation.numpy(Z), None
                activations.append(A)
                slopes.append(D)
            value, delta = _loss_and_delta(self.loss, activations[-1], targets, net.activations[-1])
        n = X.shape[0]
        grads: list[tuple[np.ndarray, np.ndarray]] = []
        with np.errstate(all="ignore"):  # as in the forward pass: inf/nan are results, not warnings
            for number in range(len(Ws) - 1, -1, -1):
                if slopes[number] is not None and not (number == len(Ws) - 1 and self._merged()):
                    delta = delta * slopes[number]
                grads.append((activations[number].T @ delta / n, delta.sum(axis=0) / n))
                if number:
                    delta = delta @ Ws[number].T
        return float(value), grads[::-1]

    def _merged(self) -> bool:
        """Softmax with cross entropy: delta is already dloss/dZ."""
        return not self.net.activations[-1].elementwise


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


def _targets(Y: Any, n: int, m: int, loss: str) -> np.ndarray:
    Y = np.asarray(Y)
    if loss != "mse" and Y.ndim == 1 and Y.shape[0] == n and Y.dtype.kind in "iu" and m > 1:
        if Y.min(initial=0) < 0 or Y.max(initial=0) >= m:
            raise ShapeError(f"class labels must lie in 0..{m - 1}")
        return np.eye(m)[Y]
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1 and m == 1:
        Y = Y.reshape(-1, 1)
    if Y.shape != (n, m):
        raise ShapeError(f"Y has shape {Y.shape} but ({n}, {m}) is needed: one target row per point of X")
    return Y


def _loss_and_delta(loss: str, y: np.ndarray, t: np.ndarray, last: Activation) -> tuple[float, np.ndarray]:
    """The mean loss and ``dloss/dA`` (or ``dloss/dZ`` for a softmax output) per point."""
    n, m = y.shape
    if loss == "mse":
        residual = y - t
        return float(np.mean(residual**2)), 2 * residual / m
    if loss == "softmax_cross_entropy":
        shifted = y - y.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-np.sum(t * log_p) / n), np.exp(log_p) * t.sum(axis=1, keepdims=True) - t
    # 0 * log(0) is 0: a class the target gives no weight costs nothing, even if its probability underflows
    cross = float(-np.sum(np.where(t != 0, t * np.log(np.where(t != 0, y, 1.0)), 0.0)) / n)
    if not last.elementwise:  # softmax then cross entropy: dloss/dZ = p * sum(t) - t
        return cross, y * t.sum(axis=1, keepdims=True) - t
    return cross, np.where(t != 0, -t / np.where(t != 0, y, 1.0), 0.0)
