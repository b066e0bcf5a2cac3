"""The losses symnet differentiates, and the one rule that reads their targets.

Every function that takes a loss -- :func:`symnet.param_grad`, :func:`symnet.check.backprop`,
:func:`symnet.compile_loss` and :func:`symnet.fit` -- checks the loss name against
:data:`LOSSES` and reads its targets with :func:`parse_targets`, so the same targets give
the same loss (or the same error) everywhere.  The losses, over ``N`` points and ``m``
outputs ``y``:

* ``"mse"``: ``mean_n mean_k (y_k - t_k)**2`` (Keras' MSE);
* ``"cross_entropy"``: ``-mean_n sum_k t_k log(y_k)``, for networks whose outputs are
  probabilities (a softmax last layer);
* ``"softmax_cross_entropy"``: the same with softmax applied to the outputs (logits).

The targets rule:

* a 2-D array ``(N, m)`` is one target row per point: values for ``mse``, probabilities
  (one-hot rows included) for the cross entropies;
* for one output, ``(N,)`` is the same as ``(N, 1)``; for one point, ``(m,)`` the same as
  ``(1, m)``;
* for the cross entropies, a 1-D **integer** array ``(N,)`` holds class indices
  ``0..m-1``, read as one-hot rows.  With one output this is refused: a cross entropy over
  one class ignores every label 0 (``-t log y`` with ``t = 0`` is 0), which is not the binary
  cross entropy a user with 0/1 labels means.  Give two outputs with a softmax last layer
  (or use ``softmax_cross_entropy`` on two logits) and labels ``0``/``1``.
* targets are real numbers: complex, date, string and non-number object arrays are refused,
  and so are masked arrays (their mask would be ignored: drop the rows, or give NaN for a
  missing ``mse`` target in :func:`symnet.fit`); cross entropy targets lie in ``[0, 1]``; a
  cross entropy that is identically 0 -- ``softmax_cross_entropy``, or ``cross_entropy`` on a
  softmax layer, with one output -- is refused.

>>> parse_targets("cross_entropy", [2, 0], n_points=2, n_outputs=3)
array([[0., 0., 1.],
       [1., 0., 0.]])
>>> parse_targets("mse", [1.5, 2.5], n_points=2, n_outputs=1)
array([[1.5],
       [2.5]])
>>> parse_targets("cross_entropy", [0, 1, 1, 0], n_points=4, n_outputs=1)
Traceback (most recent call last):
...
symnet.errors.ShapeError: cross_entropy with one output: integer labels [0, 1, 1, 0] ...
"""

from __future__ import annotations

import decimal
import numbers
from typing import Any

import numpy as np

from .errors import InputError, ShapeError

__all__ = ["LOSSES", "check_loss", "output_activation", "parse_targets"]

#: The loss names every loss-taking function accepts.
LOSSES = ("mse", "cross_entropy", "softmax_cross_entropy")


def check_loss(loss: Any) -> str:
    """``loss`` if it is one of :data:`LOSSES`, else an :class:`~symnet.InputError`.

    >>> check_loss("mse")
    'mse'
    """
    if not isinstance(loss, str) or loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    return loss


def output_activation(net: Any) -> str:
    """The name of the activation whose values a network outputs, for :func:`parse_targets`.

    A chain: its last layer's activation.  A graph: the output node's activation if the output
    node is an activation node, else ``"linear"``.

    >>> import symnet
    >>> output_activation(symnet.Network.symbolic([2, 3], "softmax"))
    'softmax'
    """
    if net.is_chain:
        return net.activations[-1].name
    node = net.graph.by_name[net.graph.output]
    return node.activation.name if node.op == "activation" else "linear"


def _shown(values: np.ndarray) -> str:
    items = values.ravel().tolist()
    return "[" + ", ".join(map(str, items[:6])) + (", ...]" if len(items) > 6 else "]")


def parse_targets(loss: str, targets: Any, n_points: int, n_outputs: int, *, exact: bool = False,
                  missing: bool = False, name: str = "targets", last_activation: str | None = None) -> np.ndarray:
    """The targets of ``loss`` for ``n_points`` points of ``n_outputs`` outputs, as an ``(N, m)`` array.

    Args:
        loss: one of :data:`LOSSES`.
        targets: as the module docstring says: ``(N, m)``; ``(N,)`` for one output; ``(m,)`` for
            one point; integer class indices ``(N,)`` for the cross entropies (two or more outputs).
        n_points, n_outputs: ``N`` and ``m``.
        exact: return an object array of SymPy numbers (integers stay exact; SymPy expressions,
            symbolic ones included, are kept) instead of float64.
        missing: allow NaN as "no target here" (``fit``'s ``mse`` with gaps); otherwise every
            target must be finite.
        name: what the caller calls the targets, for messages (``"Y"``, ``"y"``).
        last_activation: the name of the network's last activation, if known: a
            ``cross_entropy`` on a one-output ``softmax`` layer is refused (it is identically 0).

    Raises:
        ShapeError: a shape that fits none of the forms, labels out of range, integer labels
            for one output with a cross entropy, or ragged nesting.
        InputError: a non-finite target (NaN unless ``missing``), an unknown loss, targets
            that are complex, dates, strings, non-number objects or a masked array, cross
            entropy targets outside ``[0, 1]``, or a cross entropy that is identically 0 (a
            ``softmax_cross_entropy``, or a ``cross_entropy`` on a softmax layer, with one output).

    >>> parse_targets("mse", [[1, 2]], n_points=1, n_outputs=2, exact=True)
    array([[1, 2]], dtype=object)
    """
    check_loss(loss)
    n, m = int(n_points), int(n_outputs)
    verb = "have" if name == "targets" else "has"
    if isinstance(targets, np.ma.MaskedArray):
        raise InputError(f"{name} is a masked array, and its mask would be ignored: drop the masked rows, "
                         "or (fit with loss='mse') give NaN for a missing target")
    symbolic = exact and _has_sympy(targets)
    if symbolic:
        raw = np.asarray(targets, dtype=object)
        _check_kinds(raw, name)
    else:
        try:
            raw = np.asarray(targets)
        except (TypeError, ValueError) as exc:
            raise ShapeError(f"{name} must be an array of numbers of shape ({n}, {m})") from exc
        _check_kinds(raw, name)
        if raw.dtype.kind not in "biuf":
            try:
                raw = raw.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise ShapeError(f"{name} must be numbers of shape ({n}, {m}), not {raw.dtype} values") from exc
    labels = loss != "mse" and raw.ndim == 1 and raw.dtype.kind in "iu" and len(raw) == n
    if labels and m == 1:
        raise ShapeError(
            f"{loss} with one output: integer labels {_shown(raw)} are ambiguous. A cross entropy over one class "
            "ignores every label 0 (-t*log(y) is 0 for t = 0), so it is not binary cross entropy: give the network "
            "two outputs (a softmax last layer, or loss='softmax_cross_entropy' on two logits) and labels 0/1, or "
            f"float targets of shape ({n}, 1) if -t*log(y) is what you mean"
        )
    _check_loss_outputs(loss, m, last_activation)
    if labels:
        if raw.min(initial=0) < 0 or raw.max(initial=0) >= m:
            raise ShapeError(f"class labels must lie in 0..{m - 1}, got {raw.min()}..{raw.max()}")
        one_hot = np.eye(m, dtype=int)[raw.astype(np.intp)]
        return _exact(one_hot, name) if exact else one_hot.astype(np.float64)
    if raw.ndim == 1 and m == 1 and len(raw) == n:
        raw = raw.reshape(n, 1)
    elif raw.ndim == 1 and n == 1 and len(raw) == m:
        raw = raw.reshape(1, m)
    if raw.shape != (n, m):
        also = [f"({n},) for one output"] if m == 1 else [f"({m},) for one point"] if n == 1 else []
        also += [f"integer class labels ({n},)"] if loss != "mse" and m > 1 else []
        raise ShapeError(f"{name} {verb} shape {raw.shape} but ({n}, {m}) is needed"
                         + (f" (or {', or '.join(also)})" if also else "") + ": one target row per point of X")
    if symbolic:
        exact_values = _exact(raw, name)
        if loss != "mse":
            known = [v for v in exact_values.ravel() if v.is_number]
            _check_probabilities(np.array([float(v) for v in known]), loss, name)
        return exact_values
    values = raw.astype(np.float64)
    bad = np.isinf(values) | (np.isnan(values) if not missing else False)
    if np.any(bad):
        raise InputError(f"{name} {'hold' if verb == 'have' else 'holds'} {values[bad].ravel()[0]}; every "
                         "target must be a finite number" + (" (NaN marks a missing target)" if missing else ""))
    if missing and loss != "mse" and np.isnan(values).any():
        raise InputError(f"{name} holds NaN; the {loss} loss needs a complete target per point (use loss='mse')")
    if loss != "mse":
        _check_probabilities(values, loss, name)
    if exact:
        return _exact(raw, name)
    return values


def _check_loss_outputs(loss: str, m: int, last_activation: str | None) -> None:
    """Refuse a cross entropy that is identically 0 (softmax over one output is always 1) or that
    reads log-probabilities as probabilities (a log_softmax output)."""
    if loss == "cross_entropy" and last_activation == "log_softmax":
        raise InputError("cross_entropy reads the outputs as probabilities, but a log_softmax layer gives "
                         "log-probabilities: use loss='softmax_cross_entropy' (the softmax of log_softmax(z) is "
                         "softmax(z), so it is the negative log-likelihood of these outputs), or a softmax layer")
    if m != 1:
        return
    if loss == "softmax_cross_entropy":
        raise InputError("softmax_cross_entropy with one output is identically 0 (softmax of one logit is 1): "
                         "give the network two outputs (logits for classes 0 and 1), or use loss='mse'")
    if loss == "cross_entropy" and last_activation == "softmax":
        raise InputError("cross_entropy on a softmax layer with one output is identically 0 (softmax of one "
                         "value is 1): give the last layer two outputs (classes 0 and 1), or use loss='mse'")


def _check_kinds(raw: np.ndarray, name: str) -> None:
    """Refuse complex, date, string and non-number targets: each would be dropped or misread."""
    kind = raw.dtype.kind
    if kind == "c":
        raise InputError(f"{name} is complex ({raw.dtype}); targets must be real numbers: pass the real part "
                         "(np.real) if that is what you mean")
    if kind in "mM":
        raise InputError(f"{name} holds dates or durations ({raw.dtype}); targets must be real numbers: "
                         "convert them to floats (e.g. seconds) first")
    if kind in "USV":
        raise InputError(f"{name} holds {'strings' if kind == 'U' else 'bytes'} ({raw.dtype}); targets must be "
                         "real numbers: convert them with float() first")
    if kind == "O":
        for v in raw.ravel():
            _check_object(v, name)


def _check_object(v: Any, name: str) -> None:
    import sympy

    if isinstance(v, sympy.Basic):
        if not isinstance(v, sympy.Expr) or (v.is_number and v.is_real is False):
            raise InputError(f"{name} holds {v}; targets must be real numbers or real SymPy expressions")
        return
    if isinstance(v, (np.datetime64, np.timedelta64)):
        raise InputError(f"{name} holds the date or duration {v}; targets must be real numbers: "
                         "convert them to floats first")
    if isinstance(v, (bool, np.bool_, numbers.Real, np.integer, np.floating, decimal.Decimal)):
        return
    if isinstance(v, (str, bytes)):
        raise InputError(f"{name} holds the string {v!r}; targets must be real numbers: convert with float() first")
    if isinstance(v, (complex, np.complexfloating)):
        raise InputError(f"{name} holds the complex number {v}; targets must be real numbers")
    raise InputError(f"{name} holds {type(v).__name__} {v!r:.60}; targets must be real numbers")


def _check_probabilities(values: np.ndarray, loss: str, name: str) -> None:
    """Cross entropy targets are probabilities: outside ``[0, 1]`` the loss has no minimum."""
    outside = (values < 0) | (values > 1)
    if np.any(outside):
        raise InputError(f"{name} holds {values[outside].ravel()[0]}; {loss} targets are probabilities in [0, 1] "
                         "(one-hot rows, or integer class labels): use loss='mse' for other values")


def _has_sympy(targets: Any) -> bool:
    import sympy  # here, not at the top: the numeric oracle (symnet.check.backprop) shares this rule

    if isinstance(targets, sympy.Basic):
        return True
    if isinstance(targets, (list, tuple)):
        return any(_has_sympy(t) for t in targets)
    return isinstance(targets, np.ndarray) and targets.dtype == object and \
        any(isinstance(t, sympy.Basic) for t in targets.ravel())


def _exact(values: np.ndarray, name: str) -> np.ndarray:
    """Entries as SymPy numbers: integers stay integers, floats become ``Float``, SymPy expressions are kept."""
    import sympy

    def one(v: Any) -> sympy.Expr:
        if isinstance(v, sympy.Basic):
            if v.is_number and not v.is_finite:
                raise InputError(f"{name} holds {v}; every target must be a finite number")
            return v  # type: ignore[return-value]
        if isinstance(v, (bool, np.bool_)):
            return sympy.Integer(int(v))
        if isinstance(v, (int, np.integer)):
            return sympy.Integer(int(v))
        try:
            number = float(v)
        except (TypeError, ValueError) as exc:
            raise ShapeError(f"{name} must be numbers or SymPy expressions, not {v!r}") from exc
        if not np.isfinite(number):
            raise InputError(f"{name} holds {number}; every target must be a finite number")
        return sympy.Float(number)
    return np.vectorize(one, otypes=[object])(values)
