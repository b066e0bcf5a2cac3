"""Central finite differences done right, with an error estimate for every entry.

Three habits separate a finite-difference check that can be trusted from 004's seed code:

* **the step comes from machine epsilon and the scale of x**: ``h = eps**(1/3) * max(1, |x|)``
  balances the truncation error ``~h**2`` of a first-order central difference against the
  round-off ``~eps/h`` (``eps**(1/4)`` for second derivatives, whose round-off is
  ``~eps/h**2``); a step like ``1e-50`` vanishes next to ``x`` (``x + h == x``);
* **the step is exactly representable**: ``h = (x + h) - x``, so the points evaluated are
  exactly ``x +- h`` and the divisor is their true distance;
* **the quotient is** ``(f(x + h) - f(x - h)) / (2 * h)`` -- not ``/ 2 * h``.

Every derivative comes with ``error``, an estimate of its absolute error: the larger of the
differences between the estimates with steps ``h`` and ``2h`` and with ``2h`` and ``4h``,
plus the round-off that the evaluation noise of ``f`` can cause.  A central difference errs
by ``c h**2``, so in the asymptotic regime those differences are ``3 c h**2`` and
``12 c h**2``: the estimate is 12 times the truncation error of the ``h``-estimate.  Where
``f`` varies on the scale of the step the regime does not hold; the second difference is
then the better warning, though no estimate from three steps is a guarantee.

>>> import numpy as np
>>> f = lambda X: X[:, 0] ** 2 + X[:, 1] ** 2          # 004's function_2
>>> fd = finite_differences(f, [[3.0, 4.0], [0.0, 2.0], [3.0, 0.0]])
>>> fd.derivative.round(6)
array([[6., 8.],
       [0., 4.],
       [6., 0.]])
>>> bool(np.all(fd.error < 1e-8))
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import InputError, ShapeError

__all__ = ["FiniteDifferences", "finite_differences", "finite_differences_params"]

_EPS = float(np.finfo(np.float64).eps)
# with the default step, points whose differences are not yet asymptotic are redone with steps
# 4, 16, ... times smaller, at most this many times
_REFINEMENTS = 5


@dataclass(frozen=True)
class FiniteDifferences:
    """Derivatives estimated by central differences, with their estimated absolute error.

    For ``X`` of shape ``(N, d)`` and ``f`` returning ``(N, m)``: ``derivative`` and ``error``
    are ``(N, m, d)`` (``order=1``) or ``(N, m, d, d)`` (``order=2``); the ``m`` axis is absent
    when ``f`` returns ``(N,)`` and the ``N`` axis when ``X`` is one point ``(d,)``.

    Attributes:
        derivative: the estimate (Richardson-extrapolated when asked for).
        error: per entry, ``max(|D(h) - D(2h)|, |D(2h) - D(4h)|)`` (with Richardson, of the
            extrapolated values ``R(h) = (4 D(h) - D(2h)) / 3`` from ``h`` to ``8h``) plus the
            round-off bound ``noise / h`` (first order), ``4 noise / h**2`` (second order,
            diagonal) or ``noise / (h_i h_j)`` (off-diagonal), ``noise`` the absolute error of
            one evaluation of ``f``, and ``eps |derivative|``.
        step: the base step ``h`` per point and coordinate, ``(N, d)``, exactly representable.
        reach: the farthest offset from ``x`` evaluated per coordinate, ``(N, d)``.
        order: 1 or 2.
        richardson: whether Richardson extrapolation was applied.
    """

    derivative: np.ndarray
    error: np.ndarray
    step: np.ndarray
    reach: np.ndarray
    order: int
    richardson: bool


def finite_differences(f: Callable[[np.ndarray], Any], X: Any, order: int = 1, *, step: Any = None,
                       richardson: bool = False, noise: Any = None) -> FiniteDifferences:
    """Gradient/Jacobian (``order=1``) or Hessian (``order=2``) of ``f`` by central differences.

    Args:
        f: maps a batch of points ``(K, d)`` to ``(K,)`` or ``(K, m)`` values; it is called once,
            on every stencil point of every point of ``X`` stacked together (steps ``h``, ``2h``,
            ``4h``: ``6 d`` points per point of ``X`` for ``order=1``, ``3 (2 d**2 + 1)`` for
            ``order=2``).
        X: points ``(N, d)``, or one point ``(d,)``.
        order: 1 for first derivatives, 2 for second derivatives.
        step: base step ``h``, a number or an array broadcastable to ``(N, d)``; by default
            ``eps**(1/3) * max(1, |x|)`` (``order=2``: ``eps**(1/4)``; with Richardson, whose
            truncation error is ``~h**4``: ``eps**(1/5)`` and ``eps**(1/6)``), and points whose
            differences at ``h``, ``2h``, ``4h`` do not shrink as the step halves (``f`` varies
            on the scale of the step) are redone with steps 4, 16, ... (at most ``4**5``) times
            smaller.  Each step is made exactly representable, ``h = (x + h) - x``.
        richardson: combine the steps ``h`` and ``2h`` as ``(4 D(h) - D(2h)) / 3``, which removes
            the ``h**2`` error term; costs a fourth stencil, at ``8h``, for the error estimate.
        noise: absolute error of one evaluation of ``f``, a number or an array broadcastable to
            ``(N, m)`` (``(N,)`` when ``f`` returns ``(N,)``); by default
            ``eps * (max|f| + sum_i |x_i| |df/dx_i|)`` (``max`` over the stencil, slopes from it):
            right for a backward-stable ``f``, exact for an input off by a relative ``eps``, then
            rounded.  Pass more for an ``f`` that loses digits to cancellation inside.

    Returns:
        A :class:`FiniteDifferences` with ``derivative`` and ``error`` ``(N, m, d)`` or
        ``(N, m, d, d)`` (see there for the axes that drop).

    >>> import numpy as np
    >>> fd = finite_differences(lambda X: np.sin(X[:, 0]) * X[:, 1], [0.5, 2.0], order=2)
    >>> fd.derivative.round(6)     # [[-2 sin(0.5), cos(0.5)], [cos(0.5), 0]]
    array([[-0.958851,  0.877583],
           [ 0.877583,  0.      ]])
    """
    if order not in (1, 2):
        raise InputError(f"order must be 1 (gradient/Jacobian) or 2 (Hessian), not {order!r}")
    points, single = _points(X)
    base = _base_step(points, order, richardson, step)
    found = _estimate(f, points, base, order, richardson, noise)
    for refinement in range(1, _REFINEMENTS + 1 if step is None else 1):
        redo = ~found.settled
        if not redo.any():
            break
        again = _estimate(f, points[redo], base[redo] / 4**refinement, order, richardson, found.noise[redo])
        for name in ("derivative", "error", "step", "reach", "settled"):
            getattr(found, name)[redo] = getattr(again, name)

    def shaped(array: np.ndarray) -> np.ndarray:
        array = array[:, 0] if found.vector else array
        return array[0] if single else array

    step_used, reach = (found.step[0], found.reach[0]) if single else (found.step, found.reach)
    return FiniteDifferences(shaped(found.derivative), shaped(found.error), step_used, reach, order, richardson)


def finite_differences_params(loss: Callable[[np.ndarray], Any], params: Any, order: int = 1, *,
                              step: Any = None, richardson: bool = False, noise: Any = None) -> FiniteDifferences:
    """Derivatives of a scalar function of a parameter array, e.g. a loss of a weight matrix.

    Args:
        loss: maps an array of ``params``' shape to a number.
        params: the array ``P`` at which to differentiate, any shape.
        order, step, richardson, noise: as for :func:`finite_differences` (``step`` and
            ``noise`` are numbers here).

    Returns:
        A :class:`FiniteDifferences` whose ``derivative`` and ``error`` have ``P``'s shape
        (``order=2``: ``P.shape + P.shape``) and whose ``step`` and ``reach`` have ``P``'s shape.

    004's ``simpleNet``: the cross-entropy loss of ``softmax(x @ W)`` as a function of ``W (2, 3)``:

    >>> import numpy as np
    >>> x, t = np.array([0.6, 0.9]), np.array([0.0, 0.0, 1.0])
    >>> def loss(W):
    ...     y = np.exp(x @ W) / np.exp(x @ W).sum()
    ...     return -np.sum(t * np.log(y))
    >>> W = np.array([[0.47355232, 0.9977393, 0.84668094], [0.85557411, 0.03563661, 0.69422093]])
    >>> finite_differences_params(loss, W).derivative.round(8)
    array([[ 0.21924763,  0.14356247, -0.36281009],
           [ 0.32887144,  0.2153437 , -0.54421514]])
    """
    array = np.asarray(params, dtype=np.float64)
    shape = array.shape

    def batched(rows: np.ndarray) -> np.ndarray:
        out = np.array([np.asarray(loss(row.reshape(shape)), dtype=np.float64) for row in rows])
        if out.shape != (len(rows),):
            raise ShapeError(f"loss must return one number, but returned an array of shape {out.shape[1:]}")
        return out

    fd = finite_differences(batched, array.reshape(-1), order, step=step, richardson=richardson, noise=noise)
    tensor = shape if order == 1 else shape + shape
    return FiniteDifferences(fd.derivative.reshape(tensor), fd.error.reshape(tensor), fd.step.reshape(shape),
                             fd.reach.reshape(shape), order, richardson)


@dataclass
class _Estimate:
    derivative: np.ndarray  # (N, m, d) or (N, m, d, d)
    error: np.ndarray
    step: np.ndarray  # (N, d)
    reach: np.ndarray  # (N, d)
    settled: np.ndarray  # (N,): every entry's steps look asymptotic
    noise: np.ndarray  # (N, m)
    vector: bool  # f returns (K,)


def _estimate(f: Callable[[np.ndarray], Any], points: np.ndarray, base: np.ndarray, order: int,
              richardson: bool, noise: Any) -> _Estimate:
    """One round of differences at steps ``base * (1, 2, 4[, 8])`` for every point."""
    n = len(points)
    steps = [_representable(points, scale * base) for scale in ((1, 2, 4, 8) if richardson else (1, 2, 4))]
    stencils = [_stencil(points, h, order) for h in steps]  # each (K, N, d)
    values, vector = _call(f, np.concatenate([s.reshape(-1, points.shape[1]) for s in stencils]))
    values = np.split(values, np.cumsum([s.shape[0] * n for s in stencils])[:-1])
    values = [v.reshape(-1, n, v.shape[-1]) for v in values]  # each (K, N, m)
    if noise is None:
        noise = _default_noise(points, stencils[0], values, order)
    noise = np.array(_noise(noise, vector, values[0].shape[1:]))
    rule = _first_order if order == 1 else _second_order
    derivative, error, settled = _combine([rule(s, v, noise) for s, v in zip(stencils, values)], richardson)
    settled = settled.reshape(n, -1).all(axis=1)
    return _Estimate(derivative, error, steps[0], steps[-1], settled, noise, vector)


# --- steps and stencils -----------------------------------------------------------------------


def _points(X: Any) -> tuple[np.ndarray, bool]:
    try:
        points = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ShapeError("X must be an array of numbers of shape (N, d) or (d,)") from exc
    single = points.ndim == 1
    points = points.reshape(1, -1) if single else points
    if points.ndim != 2 or points.shape[1] == 0:
        raise ShapeError(f"X has shape {np.shape(X)}; give points of shape (N, d) or one point of shape (d,)")
    if not np.all(np.isfinite(points)):
        raise InputError("X holds inf or nan; finite differences need finite points")
    return points, single


def _base_step(points: np.ndarray, order: int, richardson: bool, step: Any) -> np.ndarray:
    if step is None:
        # truncation ~h**q (q = 2, or 4 with Richardson) against round-off ~eps/h**order: optimum eps**(1/(q+order))
        power = (4 if richardson else 2) + order
        return _EPS ** (1 / power) * np.maximum(1.0, np.abs(points))
    try:
        base = np.broadcast_to(np.asarray(step, dtype=np.float64), points.shape)
    except ValueError as exc:
        raise ShapeError(f"step has shape {np.shape(step)}; give a number or an array broadcastable to {points.shape}") from exc
    if not np.all(np.isfinite(base) & (base > 0)):
        raise InputError(f"step must be positive and finite, got {step!r}")
    return base


def _representable(points: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``(x + h) - x``: the step that ``x + h`` really takes in float64."""
    exact = (points + h) - points
    vanished = exact == 0
    if np.any(vanished):
        at = tuple(int(i) for i in np.argwhere(vanished)[0])
        raise InputError(f"step {h[at]:.3g} vanishes next to x = {float(points[at])!r} (x + h == x in float64); "
                         "use a larger step or step=None for one chosen from machine epsilon and |x|")
    return exact


def _offsets(h: np.ndarray, signs: tuple[tuple[int, int], ...], pairs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``(len(pairs[0]), N, d)`` offsets ``s_i h_i e_i + s_j h_j e_j`` (``i == j`` moves one coordinate)."""
    n, d = h.shape
    out = np.zeros((len(signs), len(pairs[0]), n, d))
    rows = np.arange(len(pairs[0]))
    for k, (si, sj) in enumerate(signs):
        out[k, rows, :, pairs[0]] = si * h.T[pairs[0]]
        out[k, rows, :, pairs[1]] += sj * h.T[pairs[1]] * (pairs[0] != pairs[1])[:, None]
    return out.reshape(-1, n, d)


def _stencil(points: np.ndarray, h: np.ndarray, order: int) -> np.ndarray:
    """The points to evaluate, ``(K, N, d)``: ``x +- h_i e_i`` for every i, and for ``order=2``
    also ``x`` and ``x +- h_i e_i +- h_j e_j`` for every ``i < j``."""
    d = points.shape[1]
    diagonal = (np.arange(d), np.arange(d))
    parts = [_offsets(h, ((1, 0), (-1, 0)), diagonal)]
    if order == 2:
        parts = [np.zeros((1, *points.shape))] + parts + [_offsets(h, ((1, 1), (1, -1), (-1, 1), (-1, -1)),
                                                                   np.triu_indices(d, 1))]
    return points + np.concatenate(parts)


def _call(f: Callable[[np.ndarray], Any], flat: np.ndarray) -> tuple[np.ndarray, bool]:
    """``f`` on all stencil points at once, as ``(K, m)``, and whether ``f`` returns ``(K,)``."""
    out = np.asarray(f(flat), dtype=np.float64)
    if out.ndim not in (1, 2) or out.shape[0] != len(flat):
        raise ShapeError(f"f returned shape {out.shape} for a batch of shape {flat.shape}; it must map a batch "
                         f"(K, d) to values (K,) or (K, m)")
    return (out[:, None], True) if out.ndim == 1 else (out, False)


def _default_noise(points: np.ndarray, stencil: np.ndarray, values: list[np.ndarray], order: int) -> np.ndarray:
    """``eps * (max|f| + sum_i |x_i| |df/dx_i|)``, ``(N, m)``: the error of a backward-stable ``f``,
    whose result is exact for an input off by a relative ``eps`` (``x`` rounded) and then rounded."""
    d = points.shape[1]
    line = slice(0, 2 * d) if order == 1 else slice(1, 2 * d + 1)  # the points x +- h e_i
    slopes, _ = _first_order(stencil[line], values[0][line], np.zeros(values[0].shape[1:]))
    largest = np.max(np.abs(np.concatenate(values)), axis=0)
    return _EPS * (largest + np.einsum("nmd,nd->nm", np.abs(slopes), np.abs(points)))


def _noise(noise: Any, vector: bool, shape: tuple[int, int]) -> np.ndarray:
    array = np.asarray(noise, dtype=np.float64)
    if vector and array.ndim == 1:
        array = array[:, None]
    try:
        return np.broadcast_to(array, shape)
    except ValueError as exc:
        raise ShapeError(f"noise has shape {np.shape(noise)}; give a number or an array broadcastable to "
                         f"{shape[:1] if vector else shape} (one value per point and output)") from exc


# --- the difference quotients -----------------------------------------------------------------


def _first_order(stencil: np.ndarray, values: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(f(x + h) - f(x - h)) / (2h)`` and its round-off bound, each ``(N, m, d)``."""
    d = stencil.shape[2]
    i = np.arange(d)
    width = stencil[i, :, i] - stencil[d + i, :, i]  # (d, N): the true distance 2h
    quotient = (values[:d] - values[d:]) / width[:, :, None]
    roundoff = 2 * noise[None] / width[:, :, None]
    return np.moveaxis(quotient, 0, 2), np.moveaxis(roundoff, 0, 2)


def _second_order(stencil: np.ndarray, values: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Second differences, ``(N, m, d, d)``, and their round-off bound."""
    d = stencil.shape[2]
    i = np.arange(d)
    center, plus, minus = values[0], values[1:d + 1], values[d + 1:2 * d + 1]
    x = stencil[0][:, i].T  # (d, N)
    up, down = (stencil[1 + i, :, i] - x)[:, :, None], (x - stencil[d + 1 + i, :, i])[:, :, None]
    across = up + down
    # the three-point rule for the (float64-exact) spacings up, down; equal spacings give (f+ - 2 f0 + f-) / h**2
    diagonal = 2 * (plus / (up * across) - center / (up * down) + minus / (down * across))
    diagonal_roundoff = 2 * noise * (1 / (up * across) + 1 / (up * down) + 1 / (down * across))
    n, m = center.shape
    quotient = np.zeros((n, m, d, d))
    roundoff = np.zeros((n, m, d, d))
    quotient[:, :, i, i] = np.moveaxis(diagonal, 0, 2)
    roundoff[:, :, i, i] = np.moveaxis(diagonal_roundoff, 0, 2)
    a, b = np.triu_indices(d, 1)
    if len(a):
        corners = values[2 * d + 1:].reshape(4, len(a), n, m)
        width = (across[a] * across[b])  # (pairs, N, 1): (2 h_i)(2 h_j)
        mixed = np.moveaxis((corners[0] - corners[1] - corners[2] + corners[3]) / width, 0, 2)
        mixed_roundoff = np.moveaxis(4 * noise / width, 0, 2)
        quotient[:, :, a, b] = quotient[:, :, b, a] = mixed
        roundoff[:, :, a, b] = roundoff[:, :, b, a] = mixed_roundoff
    return quotient, roundoff


def _combine(estimates: list[tuple[np.ndarray, np.ndarray]], richardson: bool) -> tuple[np.ndarray, ...]:
    """The answer, its error estimate, and whether the steps look asymptotic, per entry."""
    quotients = [q for q, _ in estimates]
    roundoff = estimates[0][1]
    if richardson:  # (4 D(h) - D(2h)) / 3 removes the h**2 term; its round-off mixes both steps'
        quotients = [(4 * fine - coarse) / 3 for fine, coarse in zip(quotients, quotients[1:])]
        roundoff = (4 * estimates[0][1] + estimates[1][1]) / 3
    best, middle, coarse = quotients[:3]
    fine_gap, coarse_gap = np.abs(best - middle), np.abs(middle - coarse)
    # an error c h**p makes coarse_gap = 2**p fine_gap (p = 2, or 4 with Richardson); a gap that does
    # not shrink as the step halves means f varies on the scale of the step: not asymptotic
    settled = coarse_gap >= 2 ** ((4 if richardson else 2) - 1) * fine_gap - 4 * roundoff
    return best, np.maximum(fine_gap, coarse_gap) + roundoff + _EPS * np.abs(best), settled
