"""Exact weight gradients of a loss on a network's values *and* its input derivatives.

A Sobolev loss compares both ``y = net(x)`` and the input Jacobian ``J = dy/dx`` with
targets, any of which may be missing (NaN in the data):

    L = cv * sum_{(n,k) given} (y_nk - t_nk)**2 + cd * sum_{(n,k,i) given} (J_nki - s_nki)**2,

``cv = value_weight / #values given``, ``cd = derivative_weight / #derivatives given`` (the
means over the targets present, weighted).  Its gradient with respect to every weight is
computed exactly in two sweeps over the layers, in matrix form:

* **forward**, carrying each layer's values ``A`` ``(N, n)`` and input tangents ``dA_i``
  ``(N, n)``, one per input: ``Z = A W + b``, ``dZ_i = dA_i W``, ``A' = f(Z)``,
  ``dA_i' = f'(Z) dZ_i``;
* **reverse**, through both streams, from ``gA = dL/dA`` and ``gT_i = dL/d(dA_i)``:

      gZ  = gA f'(Z) + f''(Z) sum_i gT_i dZ_i        gdZ_i = gT_i f'(Z)
      dW  = A^T gZ + sum_i dA_i^T gdZ_i               db    = sum_n gZ
      gA  = gZ W^T                                    gT_i  = gdZ_i W^T

The ``1 + d`` streams are stacked, ``(1 + d, N, n)``, so each layer costs one matrix
product forward and two in reverse, each over all streams at once.  Arrays are reused from
one evaluation to the next (:class:`Workspace`): for a 2-64-64-1 net on 10,000 points,
fresh ones cost more in page faults than the arithmetic.

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

from .activations import T, Activation
from .errors import InputError
from .kernels import _cache
from .kernels._layered import derivatives_source

__all__ = ["SobolevLoss", "Workspace", "derivative_pass"]

Pass = Callable[..., tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]


class Workspace:
    """Arrays kept from one evaluation to the next, by name and shape.

    Large fresh arrays come from the operating system as zero-filled pages, one fault per
    page on first touch; reusing them saves that.  An array handed out is valid until the
    next request of the same name and shape: one evaluation at a time.
    """

    def __init__(self) -> None:
        self._arrays: dict[tuple[Any, ...], np.ndarray] = {}

    def __call__(self, name: Any, shape: tuple[int, ...]) -> np.ndarray:
        key = (name, shape)
        array = self._arrays.get(key)
        if array is None:
            array = self._arrays[key] = np.empty(shape)
        return array


def _fresh(name: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.empty(shape)


def derivative_pass(activation: Activation) -> Pass:
    """``(Z, space=None, tag=0) -> (f(Z), f'(Z), f''(Z))`` elementwise; ``None`` stands for 1 and 0 (linear).

    With a :class:`Workspace` ``space`` the results (and scratch) live in its arrays named by ``tag``.

    >>> from symnet import activations
    >>> f, d1, d2 = derivative_pass(activations.get("relu"))(np.array([-1.0, 0.0, 2.0]))
    >>> f, d1, bool(np.all(d2 == 0))      # Heaviside(0) = 1/2; DiracDelta is 0 a.e.
    (array([0., 0., 2.]), array([0. , 0.5, 1. ]), True)
    """
    if not activation.elementwise:
        raise InputError(f"activation {activation.name!r} acts on a whole layer; derivative targets need "
                         "elementwise activations")
    if activation.form == T:
        return lambda Z, space=None, tag=0: (Z, None, None)
    source = derivatives_source(activation, 3)
    module, _, _ = _cache.load_or_write(_cache.key_of(source), source, lambda: source, use_disk=False)
    apply, slots = module.apply, module.SLOTS

    def run(Z: np.ndarray, space: Workspace | None = None,
            tag: Any = 0) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        new = space or _fresh
        F0, F1, F2 = (new((tag, name), Z.shape) for name in ("F0", "F1", "F2"))
        with np.errstate(all="ignore"):  # saturation gives inf/0 here as in the closed form
            apply(Z, F0, F1, F2, new((tag, "s"), (slots, *Z.shape)))
        return F0, F1, F2

    return run


def _masked(targets: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Targets with NaN replaced by 0, and the mask of given ones (``None`` when all are given)."""
    if targets is None:
        return None, None
    given = ~np.isnan(targets)
    if given.all():
        return np.ascontiguousarray(targets), None
    return np.where(given, targets, 0.0), given


class SobolevLoss:
    """The loss above and its exact gradient for one architecture and data set.

    Args:
        activations: per layer, an :class:`~symnet.activations.Activation` (or a spec).
        X: points ``(N, d)``.
        Y: value targets ``(N, m)`` with NaN where none is given, or ``None``.
        DY: derivative targets ``(N, m, d)``, ``DY[n, k, i]`` for ``dy_k/dx_i``, NaN where none
            is given, or ``None``.
        value_weight, derivative_weight: ``>= 0``.

    ``loss(weights, rows=None)`` with ``weights`` a list of ``(W (fan_in, fan_out), b (fan_out,))``
    returns ``(L, [(dW, db), ...])`` (fresh arrays); ``rows`` (indices) evaluates the loss of
    those points only, its means taken over the targets given among them.  One evaluation at
    a time per instance (its :class:`Workspace` is reused).
    """

    def __init__(self, activations: Sequence[Any], X: np.ndarray, Y: np.ndarray | None, DY: np.ndarray | None,
                 value_weight: float = 1.0, derivative_weight: float = 1.0) -> None:
        from .activations import get

        self.activations = [get(a) for a in activations]
        self._passes = [derivative_pass(a) for a in self.activations]
        self.X = np.ascontiguousarray(X, dtype=np.float64)
        self.Y, self.Y_given = _masked(None if Y is None else np.asarray(Y, dtype=np.float64))
        DY = None if DY is None else np.ascontiguousarray(np.transpose(np.asarray(DY, dtype=np.float64), (2, 0, 1)))
        self.DY, self.DY_given = _masked(DY)  # stored (d, N, m), as the tangent streams
        self.value_weight, self.derivative_weight = float(value_weight), float(derivative_weight)
        self._space = Workspace()

    def _forward(self, weights: Sequence[tuple[np.ndarray, np.ndarray]], X: np.ndarray,
                 k: int) -> tuple[list[tuple[Any, ...]], np.ndarray]:
        """The streams stacked, ``S`` ``(k, N, width)``: value, then tangents; one product per layer for all."""
        space, n = self._space, X.shape[0]
        trace = []
        S = None
        for number, ((W, b), apply) in enumerate(zip(weights, self._passes)):
            P = space(("P", number), (k, n, W.shape[1]))  # pre-activations and their tangents
            if number == 0:
                np.matmul(X, W, out=P[0])
                if k > 1:
                    P[1:] = W[:, None, :]  # dZ/dx_i of the first layer: row i of W at every point
            else:
                np.matmul(S.reshape(k * n, -1), W, out=P.reshape(k * n, -1))  # type: ignore[union-attr]
            P[0] += b
            F0, F1, F2 = apply(P[0], space, number)
            if F1 is None:  # linear: the streams pass through
                out = P
            else:
                out = space(("A", number), P.shape)
                out[0] = F0
                np.multiply(P[1:], F1, out=out[1:])
            trace.append((S, P, F1, F2))
            S = out
        return trace, S  # type: ignore[return-value]

    def __call__(self, weights: Sequence[tuple[np.ndarray, np.ndarray]],
                 rows: np.ndarray | None = None) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
        def take(a: np.ndarray | None, axis: int = 0) -> np.ndarray | None:
            return a if a is None or rows is None else np.take(a, rows, axis=axis)

        X, Y, Y_given = take(self.X), take(self.Y), take(self.Y_given)
        DY, DY_given = take(self.DY, 1), take(self.DY_given, 1)
        n, d = X.shape
        count_v = 0 if Y is None else (Y.size if Y_given is None else int(Y_given.sum()))
        count_d = 0 if DY is None else (DY.size if DY_given is None else int(DY_given.sum()))
        tangents = count_d > 0
        k = 1 + d if tangents else 1  # streams: the value, then one tangent per input
        space = self._space
        with np.errstate(all="ignore"):
            trace, S = self._forward(weights, X, k)
            loss = 0.0
            G = space(("G", len(trace)), S.shape)  # dL/dS: [dL/dy; dL/dJ_1; ...; dL/dJ_d]
            G.fill(0.0)
            if count_v:
                residual = S[0] - Y if Y_given is None else np.where(Y_given, S[0] - Y, 0.0)
                scale = self.value_weight / count_v
                loss += scale * float(np.sum(residual * residual))
                np.multiply(residual, 2 * scale, out=G[0])
            if tangents:
                residual = S[1:] - DY if DY_given is None else np.where(DY_given, S[1:] - DY, 0.0)
                scale = self.derivative_weight / count_d
                loss += scale * float(np.sum(residual * residual))
                np.multiply(residual, 2 * scale, out=G[1:])
            grads = []
            for number in range(len(trace) - 1, -1, -1):
                S_in, P, F1, F2 = trace[number]
                W = weights[number][0]
                H = G if F1 is None else np.multiply(G, F1, out=space(("H", number), G.shape))  # [gZ; gdZ_i]
                if tangents and F2 is not None:
                    H[0] += F2 * np.einsum("inj,inj->nj", G[1:], P[1:])
                flat = H.reshape(k * n, -1)
                if number == 0:  # the inputs' tangents are the identity
                    dW = X.T @ H[0] + (H[1:].sum(axis=1) if tangents else 0.0)
                else:
                    dW = S_in.reshape(k * n, -1).T @ flat
                grads.append((dW, H[0].sum(axis=0)))
                if number:
                    G = space(("G", number), (k, n, W.shape[0]))
                    np.matmul(flat, W.T, out=G.reshape(k * n, -1))
        return loss, grads[::-1]
