"""The import check: symnet's network against the framework's own forward pass, layer by layer.

:func:`~symnet.io.from_torch` and :func:`~symnet.io.from_keras` call :func:`check_import`
before they return.  It evaluates both at :data:`CHECK_POINTS` seeded random points drawn
uniformly from ``[-CHECK_RANGE, CHECK_RANGE]`` in every input, in float64:

1. layer by layer: the framework's modules of symnet's layer ``k``, fed the framework's own
   output of layer ``k - 1``, against symnet's layer ``k`` fed the same values.  Values agree
   when ``|symnet - framework| <= CHECK_RTOL * scale``, ``scale`` being 1 plus the largest
   magnitude of the layer's input times its weights (``max |h| * max_j sum_i |W_ij| +
   max |b|``) or of its output, whichever is larger;
2. end to end: the whole model's own call (``module(x)``, ``model(x)``) against symnet's
   network, to the same tolerance scaled by the largest value met on the way, times
   ``1000 * eps`` of the framework's compute precision instead of ``CHECK_RTOL`` where that
   is coarser (Keras computes float64 matrix products in float32).

The first layer that differs, or a whole model that differs while every layer agrees (a
``forward`` that skips, repeats or adds what its children in order do not), raises
:class:`~symnet.ImportMismatchError` with the largest difference.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..errors import ImportMismatchError
from ..network import Dense, Network

CHECK_POINTS = 8
CHECK_SEED = 0
CHECK_RANGE = 2.0
CHECK_RTOL = 1e-8

_ADVICE = "pass check=False to import the structure as read anyway"


def check_points(n_inputs: int) -> np.ndarray:
    """The points of the import check: ``(CHECK_POINTS, n_inputs)``, seeded, uniform in ``[-2, 2]``.

    >>> check_points(3).shape
    (8, 3)
    """
    return np.random.default_rng(CHECK_SEED).uniform(-CHECK_RANGE, CHECK_RANGE, size=(CHECK_POINTS, n_inputs))


def _layer(layer: Dense, h: np.ndarray) -> tuple[np.ndarray, float]:
    """Symnet's layer on ``h`` (N, fan_in) in float64, and the magnitude of its affine terms."""
    weight, bias = layer.weight_array(), layer.bias_array()
    with np.errstate(all="ignore"):
        out = np.asarray(layer.activation.numpy(h @ weight + bias), dtype=np.float64)
        scale = float(np.max(np.abs(h), initial=0.0) * np.max(np.abs(weight).sum(axis=0), initial=0.0)
                      + np.max(np.abs(bias), initial=0.0))
    return out, scale


def _difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    """The largest ``|ours - theirs|``; equal non-finite values agree, any other non-finite value is ``inf``."""
    if ours.shape != theirs.shape:
        return float("inf")
    same = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs))
    with np.errstate(all="ignore"):
        gap = np.where(same, 0.0, np.abs(ours - theirs))
    gap = np.where(np.isnan(gap), np.inf, gap)
    return float(np.max(gap, initial=0.0))


def _finite_max(*arrays: np.ndarray) -> float:
    values = [np.abs(a[np.isfinite(a)]) for a in arrays]
    return float(max((np.max(v, initial=0.0) for v in values), default=0.0))


def check_import(
    net: Network,
    framework_layer: Callable[[int, np.ndarray], np.ndarray],
    framework_whole: Callable[[np.ndarray], np.ndarray],
    describe: Callable[[int], str],
    where: str,
    framework: str,
    whole_eps: float = 0.0,
    whole_note: str = "",
) -> None:
    """Raise :class:`~symnet.ImportMismatchError` unless ``net`` computes what the framework does.

    Args:
        net: the imported network.
        framework_layer: ``(k, h) -> values`` of the framework's modules of symnet's layer ``k``.
        framework_whole: ``x -> values`` of the whole framework model's own call.
        describe: ``k -> "modules '2' (Linear), '3' (Tanh)"`` for messages.
        where: what was imported, for messages.
        framework: ``"PyTorch"`` or ``"Keras"``.
        whole_eps: the framework's own precision for the end-to-end call (0: float64).
        whole_note: added to the end-to-end message (why the tolerance is what it is).

    >>> import symnet
    >>> net = symnet.Network.from_weights([[[2.0]]], [[1.0]], ["tanh"])
    >>> check_import(net, lambda k, h: np.tanh(2 * h + 1), lambda x: np.tanh(2 * x + 1), str, "f", "numpy")
    >>> check_import(net, lambda k, h: np.tanh(2 * h), lambda x: np.tanh(2 * x), str, "f", "numpy")
    Traceback (most recent call last):
    ...
    symnet.errors.ImportMismatchError: f: symnet's layer 0 (0) computes other values than numpy's ...
    """
    x = check_points(net.n_inputs)
    theirs_h = x
    ours_h = x
    largest = _finite_max(x)
    for k, layer in enumerate(net.layers):
        theirs = _run(lambda: framework_layer(k, theirs_h), where, framework, f"layer {k} ({describe(k)})")
        ours, scale = _layer(layer, theirs_h)
        tolerance = CHECK_RTOL * (1.0 + max(scale, _finite_max(theirs)))
        gap = _difference(ours, theirs)
        if not gap <= tolerance:
            raise ImportMismatchError(
                f"{where}: symnet's layer {k} ({describe(k)}) computes other values than {framework}'s at the "
                f"check points: largest difference {gap:.3g} (tolerance {tolerance:.3g}, {CHECK_POINTS} seeded "
                f"points in [-{CHECK_RANGE:g}, {CHECK_RANGE:g}]^{net.n_inputs}); the import does not read this "
                f"layer correctly: report it, or {_ADVICE}"
            )
        ours_h, step_scale = _layer(layer, ours_h)
        largest = max(largest, step_scale, _finite_max(theirs, ours_h))
        theirs_h = theirs
    whole = _run(lambda: framework_whole(x), where, framework, "the whole model")
    rtol = max(CHECK_RTOL, 1000.0 * whole_eps)
    tolerance = rtol * (1.0 + largest)
    gap = _difference(ours_h, whole)
    if not gap <= tolerance:
        raise ImportMismatchError(
            f"{where}: every layer agrees with {framework}, but the whole model's own call computes something "
            f"else: largest difference {gap:.3g} (tolerance {tolerance:.3g}{whole_note}); its forward does not "
            f"run its layers once each in order (a custom forward or call, a skip or residual connection, a "
            f"hook?), so symnet's chain of layers is not this model; {_ADVICE}"
        )


def _run(compute: Callable[[], np.ndarray], where: str, framework: str, what: str) -> np.ndarray:
    try:
        values = compute()
    except ImportMismatchError:
        raise
    except Exception as exc:  # the framework's own code: any exception means the check cannot be made
        raise ImportMismatchError(f"{where}: {framework} could not compute {what} at the check points "
                                  f"({type(exc).__name__}: {str(exc)[:200]}); {_ADVICE}") from None
    return np.asarray(values, dtype=np.float64)


def describe_modules(groups: Sequence[Sequence[tuple[str, str]]], noun: str = "modules") -> Callable[[int], str]:
    """``k -> "modules '2' (Linear), '3' (Tanh)"`` from ``[[(name, type), ...] per layer]``.

    >>> describe_modules([[("0", "Linear"), ("1", "Tanh")]])(0)
    "modules '0' (Linear), '1' (Tanh)"
    """
    return lambda k: f"{noun} " + ", ".join(f"{name!r} ({kind})" for name, kind in groups[k])
