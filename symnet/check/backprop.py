"""Numeric back-propagation: the plain-numpy oracle that shares no code with the SymPy path.

It reads only the layer list -- each layer's ``weight_array()`` and ``bias_array()`` and its
activation's hand-written ``numpy``, ``numpy_derivative`` and ``numpy_second_derivative`` --
and never imports SymPy or symnet's chain-rule program, so a bug there cannot hide here.

* **Input derivatives** by exact second-order *forward* propagation: every layer carries the
  triple (value ``a``, tangents ``da/dx_i``, second-order tangents ``d2a/dx_i dx_j``) through
  ``z = a @ W + b`` (linear, so each part is multiplied by ``W``) and the activation
  (``da = f'(z) dz``, ``d2a = f''(z) dz_i dz_j + f'(z) d2z``; softmax by its Jacobian
  ``diag(p) - p p^T`` and the matching second derivatives).
* **Parameter gradients of a loss** by reverse accumulation (textbook back-propagation).
* **Round-off bounds** (``roundoff=True``): a first-order running error analysis beside the
  forward propagation (:mod:`symnet.check._roundoff`), which ``verify`` turns into tolerances.

>>> import symnet
>>> net = symnet.Network.from_weights([[[1, 1], [1, 1]], [[1], [1]]], [[1, 1], [0]], ["sigmoid", "linear"])
>>> result = backprop(net, [1.0, 1.0])        # 001's all-ones net at x = (1, 1)
>>> result.jacobian.round(7)
array([[0.0903533, 0.0903533]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import ActivationError, InputError, ShapeError
from ..losses import LOSSES, check_loss, parse_targets
from ._roundoff import roundoff_bounds

__all__ = ["Derivatives", "Backprop", "backprop", "forward", "LOSSES"]

# LOSSES (the meaning of :func:`symnet.param_grad`) and the targets rule: symnet.losses.  The
# oracle shares the reading of its inputs, never the mathematics.


@dataclass(frozen=True)
class Derivatives:
    """A network's value and input derivatives at ``N`` points (the exact kernel's contract).

    Attributes:
        value: ``(N, m)``.
        jacobian: ``(N, m, d)``, ``jacobian[n, k, i] = d y_k / d x_i``, or ``None``.
        hessian: ``(N, m, d, d)``, ``hessian[n, k, i, j] = d2 y_k / dx_i dx_j``, or ``None``.
    """

    value: np.ndarray
    jacobian: np.ndarray | None = None
    hessian: np.ndarray | None = None


@dataclass(frozen=True)
class Backprop(Derivatives):
    """What :func:`backprop` computes (a single point ``X`` of shape ``(d,)`` drops the ``N`` axis).

    Attributes:
        value, jacobian, hessian: see :class:`Derivatives`; ``hessian`` only when asked for.
        preactivations: per layer, ``z`` of shape ``(N, fan_out)``.
        preactivation_jacobians: per layer, ``dz/dx`` of shape ``(N, fan_out, d)``.
        roundoff: with ``roundoff=True``, bounds on the absolute float64 error of ``value``,
            ``jacobian`` and ``hessian``, in the same shapes; else ``None``.
        loss: the loss value (a float) when a loss was given.
        param_grads: per layer ``(dW (fan_in, fan_out), db (fan_out,))`` when a loss was given.
    """

    preactivations: tuple[np.ndarray, ...] = ()
    preactivation_jacobians: tuple[np.ndarray, ...] = ()
    roundoff: Derivatives | None = None
    loss: float | None = None
    param_grads: list[tuple[np.ndarray, np.ndarray]] | None = None


def backprop(net: Any, X: Any, *, hessian: bool = False, loss: str | None = None, targets: Any = None,
             roundoff: bool = False) -> Backprop:
    """Value, input Jacobian, optionally Hessian, and loss gradients of a numeric network in numpy.

    Args:
        net: a numeric :class:`symnet.Network`.
        X: points, ``(N, d)``; one point ``(d,)`` gives results without the ``N`` axis.
        hessian: also propagate second-order tangents, giving ``hessian`` ``(N, m, d, d)``.
        loss: ``"mse"`` (mean over points and outputs of the squared error),
            ``"cross_entropy"`` (``-mean_n sum_k t_k log y_k``) or ``"softmax_cross_entropy"``
            (softmax applied to the outputs, then cross entropy); ``None`` for no loss.
        targets: with a loss, read by :func:`symnet.losses.parse_targets`: ``(N, m)`` (or
            ``(N,)`` for one output, ``(m,)`` for one point); for the cross entropies also integer
            class labels ``(N,)`` (two or more outputs).
        roundoff: also bound the float64 error of every entry (``result.roundoff``): errors are
            propagated through ``|W|`` and ``|f^(k)(z)|`` like the tangents, and each sum and
            activation formula adds its own rounding (see :mod:`symnet.check._roundoff`).

    Returns:
        A :class:`Backprop`: ``value`` ``(N, m)``, ``jacobian`` ``(N, m, d)``, ``hessian``
        ``(N, m, d, d)``; with a loss, ``loss`` and ``param_grads`` (one ``(dW, db)`` per layer,
        the numbers :func:`symnet.param_grad` gives exactly).

    >>> import symnet
    >>> W = [[0.47355232, 0.9977393, 0.84668094], [0.85557411, 0.03563661, 0.69422093]]
    >>> simple_net = symnet.Network.from_weights([W], None, "softmax")   # 004's simpleNet
    >>> dW, db = backprop(simple_net, [0.6, 0.9], loss="cross_entropy", targets=[0, 0, 1]).param_grads[0]
    >>> dW.round(8)
    array([[ 0.21924763,  0.14356247, -0.36281009],
           [ 0.32887144,  0.2153437 , -0.54421514]])
    """
    layers = net.layers
    points, single = _points(X, net.n_inputs)
    if loss is not None:
        check_loss(loss)
    if loss is None and targets is not None:
        raise InputError("targets were given without a loss; pass loss='mse', 'cross_entropy' or 'softmax_cross_entropy'")
    if loss is not None and targets is None:
        raise InputError(f"loss {loss!r} needs targets of shape ({len(points)}, {net.n_outputs})")
    weights = [(layer.weight_array(), layer.bias_array()) for layer in layers]
    n, d = points.shape
    a = points
    da = np.broadcast_to(np.eye(d), (n, d, d))
    d2a = np.zeros((n, d, d, d)) if hessian else None
    trace = []  # per layer: its input triple (a, da, d2a) and pre-activation triple (z, dz, d2z)
    for number, (layer, (W, b)) in enumerate(zip(layers, weights), start=1):
        z, dz, d2z = a @ W + b, da @ W, None if d2a is None else d2a @ W
        trace.append((a, da, d2a, z, dz, d2z))
        a, da, d2a = _activate(layer.activation, number, z, dz, d2z)
    inputs, zs = [step[0] for step in trace], [step[3] for step in trace]
    fields: dict[str, Any] = {
        "value": a,
        "jacobian": np.swapaxes(da, 1, 2),
        "hessian": None if d2a is None else np.moveaxis(d2a, 3, 1),
        "preactivations": tuple(zs),
        "preactivation_jacobians": tuple(np.swapaxes(step[4], 1, 2) for step in trace),
    }
    if roundoff:
        value_bound, jacobian_bound, hessian_bound = roundoff_bounds(layers, weights, trace)
        fields["roundoff"] = Derivatives(value_bound, np.swapaxes(jacobian_bound, 1, 2),
                                         None if hessian_bound is None else np.moveaxis(hessian_bound, 3, 1))
    if loss is not None:
        t = _targets(targets, loss, n, net.n_outputs, net.activations[-1].name)
        fields["loss"] = _loss_value(loss, a, t)
        fields["param_grads"] = _param_grads(layers, weights, inputs, zs, a, t, loss)
    if single:
        fields = {key: _drop_batch(key, value) for key, value in fields.items()}
    return Backprop(**fields)


def forward(net: Any, X: Any) -> np.ndarray:
    """The network's values only, ``(N, m)`` for ``X`` of shape ``(N, d)`` (``(m,)`` for ``(d,)``).

    >>> import symnet
    >>> forward(symnet.Network.from_weights([[[2.0]]], [[1.0]], "linear"), [[1.0], [2.0]])
    array([[3.],
           [5.]])
    """
    a, single = _points(X, net.n_inputs)
    for number, layer in enumerate(net.layers, start=1):
        _check_numeric(layer.activation, number, 0)
        a = layer.activation.numpy(a @ layer.weight_array() + layer.bias_array())
    return a[0] if single else a


# --- input derivatives ----------------------------------------------------------------------


def _points(X: Any, n_inputs: int) -> tuple[np.ndarray, bool]:
    """``X`` as float64 ``(N, d)``, and whether it was a single point ``(d,)``."""
    try:
        points = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"X must be an array of numbers of shape (N, {n_inputs}) or ({n_inputs},)") from exc
    single = points.ndim == 1
    if single:
        points = points.reshape(1, -1)
    if points.ndim != 2 or points.shape[1] != n_inputs:
        hint = f"; for {points.shape[-1]} points of one input use X.reshape(-1, 1)" \
            if n_inputs == 1 and single and points.shape[1] != 1 else ""
        raise ShapeError(f"X has shape {np.shape(X)} but the network takes {n_inputs} inputs: "
                         f"give (N, {n_inputs}) or ({n_inputs},){hint}")
    return points, single


def _check_numeric(activation: Any, number: int, order: int) -> None:
    if not activation.elementwise:
        if activation.name != "softmax":
            raise ActivationError(f"layer {number}: activation {activation.name!r} acts on a whole layer and "
                                  "backprop knows only softmax's rule among those")
        return
    needed = ("numpy", "numpy_derivative", "numpy_second_derivative")[: order + 1]
    missing = [name for name in needed if getattr(activation, name) is None]
    if missing:
        raise ActivationError(f"layer {number}: activation {activation.name!r} has no {missing[0]}; give it to "
                              "Activation(...) or build the activation with activations.from_form")


def _center(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``t - sum_i p_i t_i`` along the last axis: the softmax Jacobian ``diag(p) - p p^T`` is ``p * _center``."""
    return t - (t * p).sum(axis=-1, keepdims=True)


def _activate(activation: Any, number: int, z: np.ndarray, dz: np.ndarray,
              d2z: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The activation applied to the triple: ``z (N, n)``, ``dz (N, d, n)``, ``d2z (N, d, d, n)``."""
    _check_numeric(activation, number, 1 if d2z is None else 2)
    if not activation.elementwise:  # softmax
        p = activation.numpy(z)
        pt = p[:, None, :]
        centered = _center(dz, pt)
        if d2z is None:
            return p, pt * centered, None
        # d2 p_k = p_k [(u_k - u.p)(v_k - v.p) - sum_i p_i (u_i - u.p)(v_i - v.p)] + p_k (w_k - w.p)
        outer = centered[:, :, None, :] * centered[:, None, :, :]
        return p, pt * centered, p[:, None, None, :] * _center(outer + d2z, p[:, None, None, :])
    first = activation.numpy_derivative(z)
    da = first[:, None, :] * dz
    if d2z is None:
        return activation.numpy(z), da, None
    second = activation.numpy_second_derivative(z)
    d2a = second[:, None, None, :] * dz[:, :, None, :] * dz[:, None, :, :] + first[:, None, None, :] * d2z
    return activation.numpy(z), da, d2a


def _drop_batch(key: str, value: Any) -> Any:
    if key in ("value", "jacobian", "hessian"):
        return None if value is None else value[0]
    if key in ("preactivations", "preactivation_jacobians"):
        return tuple(v[0] for v in value)
    if key == "roundoff":
        return Derivatives(*(None if v is None else v[0] for v in (value.value, value.jacobian, value.hessian)))
    return value


# --- losses and parameter gradients ----------------------------------------------------------


def _targets(targets: Any, loss: str, n: int, m: int, last: str) -> np.ndarray:
    """Targets as float ``(N, m)`` by the rule of :func:`symnet.losses.parse_targets` (labels become one-hot)."""
    return parse_targets(loss, targets, n, m, last_activation=last)


def _log_softmax(y: np.ndarray) -> np.ndarray:
    shifted = y - y.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _loss_value(loss: str, y: np.ndarray, t: np.ndarray) -> float:
    if loss == "mse":
        return float(np.mean((y - t) ** 2))
    if loss == "softmax_cross_entropy":
        return float(-np.sum(t * _log_softmax(y)) / len(y))
    # 0 log 0 = 0: take the log only where a target is non-zero; log 0 = -inf where one is not
    with np.errstate(divide="ignore"):
        logs = np.log(y, out=np.zeros_like(y), where=t != 0)
    return float(-np.sum(t * logs) / len(y))


def _through(activation: Any, z: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """``dL/dz`` from ``dL/da`` (both ``(N, n)``) through one layer's activation."""
    if activation.elementwise:
        return grad * activation.numpy_derivative(z)
    p = activation.numpy(z)
    return p * _center(grad, p)


def _output_delta(loss: str, activation: Any, y: np.ndarray, z: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``dL/dz`` of the last layer, before dividing by the number of points."""
    if loss == "mse":
        return _through(activation, z, 2 * (y - t) / y.shape[1])
    if loss == "softmax_cross_entropy":
        q = np.exp(_log_softmax(y))
        return _through(activation, z, q * t.sum(axis=1, keepdims=True) - t)
    if not activation.elementwise:  # softmax then cross entropy: dL/dz = p sum(t) - t
        return y * t.sum(axis=1, keepdims=True) - t
    with np.errstate(divide="ignore", invalid="ignore"):  # t/y is infinite where y = 0 < t, as the maths says
        return _through(activation, z, -t / y)


def _param_grads(layers: Sequence[Any], weights: list[tuple[np.ndarray, np.ndarray]], inputs: list[np.ndarray],
                 zs: list[np.ndarray], y: np.ndarray, t: np.ndarray, loss: str) -> list[tuple[np.ndarray, np.ndarray]]:
    delta = _output_delta(loss, layers[-1].activation, y, zs[-1], t) / len(y)
    grads = []
    for number in range(len(layers) - 1, -1, -1):
        grads.append((inputs[number].T @ delta, delta.sum(axis=0)))
        if number:
            delta = _through(layers[number - 1].activation, zs[number - 1], delta @ weights[number][0].T)
    return grads[::-1]
