"""``verify``: three independent derivations of a network's derivatives, compared.

* **exact**: the compiled SymPy kernel (``symnet.compile``), or any kernel you pass;
* **backprop**: the plain-numpy forward/backward propagation of :mod:`symnet.check.backprop`;
* **finite differences**: central differences of the network's value
  (:mod:`symnet.check.finite_differences`), second differences for the Hessian.

Each pair is compared per output and derivative, entry by entry, against a tolerance made of
what each side can err by: the float64 round-off bound of the running error analysis
(:mod:`symnet.check._roundoff`) for exact and backprop, and the finite differences' own error
estimate.  See ``docs/verify.md``.

>>> import symnet
>>> net = symnet.Network.from_weights([[[1, 1], [1, 1]], [[1], [1]]], [[1, 1], [0]], ["sigmoid", "linear"])
>>> verify(net).ok
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError, NotAChainError, ShapeError, SymnetError
from ._lambdify_kernel import lambdify_kernel
from .backprop import Backprop, GraphBackprop, backprop, forward
from ..requests import ALIASES
from .backprop import _points as _as_points
from .finite_differences import FiniteDifferences, finite_differences

__all__ = ["Comparison", "VerifyReport", "VerificationError", "verify"]

_DERIVATIVES = ("jacobian", "hessian")
_EXACT, _BACKPROP, _FD = "exact", "backprop", "finite differences"


class VerificationError(SymnetError, AssertionError):
    """Two derivations of a network's derivatives disagree beyond their error bounds.

    ``error.report`` holds the whole :class:`VerifyReport`.
    """

    def __init__(self, message: str, report: VerifyReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Comparison:
    """One pair of derivations compared on one output and one derivative.

    Attributes:
        output: the output index ``k``.
        derivative: ``"value"``, ``"jacobian"`` or ``"hessian"``.
        first, second: the two derivations (``"exact"``, ``"backprop"``, ``"finite differences"``).
        max_abs: largest ``|first - second|`` over the points checked and the entries.
        max_rel: largest ``|first - second| / max(|first|, |second|)``.
        ratio: largest ``|first - second| / tolerance``; the comparison passes when ``<= 1``.
        tolerance: the tolerance at the entry where ``ratio`` is largest (the worst entry).
        point: index in ``X`` of the worst entry's point.
        entry: the worst entry's input indices: ``()`` for a value, ``(i,)`` for
            ``d y_k/dx_i``, ``(i, j)`` for ``d2 y_k/dx_i dx_j``.
        values: ``(first, second)`` at the worst entry.
    """

    output: int
    derivative: str
    first: str
    second: str
    max_abs: float
    max_rel: float
    ratio: float
    tolerance: float
    point: int
    entry: tuple[int, ...]
    values: tuple[float, float]

    @property
    def ok(self) -> bool:
        return bool(self.ratio <= 1)


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found; ``repr`` is a table with one row per :class:`Comparison`.

    Attributes:
        comparisons: every comparison made, by output, derivative and pair.
        X: the points, ``(N, d)``.
        near_kink: ``(N,)`` booleans: points whose pre-activations lie so close to a kink of
            their activation that a finite-difference stencil may cross it; excluded from
            every comparison.
        exact_source: which exact evaluator was used.
        exact, backprop, finite_differences: the raw results, for a closer look.
    """

    comparisons: tuple[Comparison, ...]
    X: np.ndarray
    near_kink: np.ndarray
    exact_source: str
    exact: Any = field(repr=False, default=None)
    backprop: Backprop | GraphBackprop | None = field(repr=False, default=None)
    finite_differences: dict[str, FiniteDifferences] = field(repr=False, default_factory=dict)

    @property
    def n_points(self) -> int:
        return int(len(self.X))

    @property
    def n_near_kink(self) -> int:
        return int(self.near_kink.sum())

    @property
    def n_checked(self) -> int:
        return self.n_points - self.n_near_kink

    @property
    def failures(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.ok]

    @property
    def ok(self) -> bool:
        """Every comparison passed, on at least one point."""
        return self.n_checked > 0 and not self.failures

    def message(self) -> str:
        """One paragraph on the first failure (or on why nothing was checked); ``""`` when ok."""
        if self.n_checked == 0:
            return (f"verify checked no point: all {self.n_points} lie near a kink of a non-smooth activation; "
                    "pass other points X or a larger n_points")
        if not self.failures:
            return ""
        c = self.failures[0]
        x = np.array2string(self.X[c.point], precision=6, separator=", ")
        entry = "" if not c.entry else f", entry {c.entry}"
        text = (f"verify failed: output {c.output}, {c.derivative}, {c.first} vs {c.second}: worst at point "
                f"{c.point} (x = {x}){entry}: {c.first} = {c.values[0]:.10g}, {c.second} = {c.values[1]:.10g}, "
                f"|difference| = {abs(c.values[0] - c.values[1]):.3g} > tolerance {c.tolerance:.3g}")
        suspect = _odd_one_out([k for k in self.comparisons if (k.output, k.derivative) == (c.output, c.derivative)])
        if suspect:
            text += f"; {suspect} disagrees with the other two, which agree"
        if len(self.failures) > 1:
            text += f" ({len(self.failures)} comparisons failed)"
        return text

    def __repr__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        head = (f"VerifyReport: {verdict}; {self.n_checked} of {self.n_points} points checked, "
                f"{self.n_near_kink} near a kink; exact = {self.exact_source}")
        rows = [("output", "derivative", "pair", "max abs", "max rel", "err/tol", "tolerance", "worst at", "")]
        for c in self.comparisons:
            where = f"{c.point} {c.entry}" if c.entry else f"{c.point}"
            rows.append((str(c.output), c.derivative, f"{c.first} vs {c.second}", f"{c.max_abs:.1e}",
                         f"{c.max_rel:.1e}", f"{c.ratio:.2g}", f"{c.tolerance:.1e}", where, "ok" if c.ok else "FAIL"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join([head, *lines])


def verify(
    net: Any,
    X: Any = None,
    derivatives: Sequence[str] = _DERIVATIVES,
    *,
    n_points: int = 8,
    seed: int = 0,
    kernel: Callable[[np.ndarray], Any] | str | None = None,
    richardson: bool = False,
    raise_on_failure: bool = False,
) -> VerifyReport:
    """Compare the exact kernel, numeric backprop and finite differences of a numeric network.

    Args:
        net: a numeric :class:`symnet.Network`.
        X: points ``(N, d)`` (or one point ``(d,)``); ``None`` draws ``n_points`` standard normal
            points from ``numpy.random.default_rng(seed)``.
        derivatives: a subset of ``("jacobian", "hessian")``; the value is always compared.
        n_points, seed: the random points when ``X`` is ``None``.
        kernel: the exact evaluator, a callable ``X (N, d) -> result`` with ``result.value``
            ``(N, m)``, ``result.jacobian`` ``(N, m, d)`` and ``result.hessian`` ``(N, m, d, d)``
            as asked; ``None`` uses ``symnet.compile(net, backend="numpy")`` when symnet has it
            and else the lambdified chain-rule program, which ``"lambdify"`` asks for always.
        richardson: Richardson-extrapolate the finite differences (finite-difference
            tolerances some 100 times tighter, for a fourth stencil of evaluations).
        raise_on_failure: raise :class:`VerificationError` instead of returning a failed report.

    Returns:
        A :class:`VerifyReport`; ``report.ok`` says whether everything agreed.

    Tolerances, per entry: exact vs backprop, the sum of both round-off bounds (each taken as
    backprop's running error bound); either vs finite differences, the finite differences'
    error estimate plus that side's round-off bound.

    >>> import symnet
    >>> net = symnet.Network.from_weights([[[0.5, -1.0]], [[2.0], [1.0]]], [[0.1, 0.2], [0.0]], ["tanh", "linear"])
    >>> report = verify(net, n_points=4)
    >>> report.ok, report.n_checked, len(report.comparisons)
    (True, 4, 7)
    """
    wanted = _wanted(derivatives)
    points = _points(net, X, n_points, seed)
    numeric = backprop(net, points, hessian="hessian" in wanted, roundoff=True)
    exact, source = _exact(net, points, wanted, kernel)
    assert numeric.roundoff is not None
    noise = numeric.roundoff.value  # what one evaluation of the value can err by, per point and output
    differences = {name: finite_differences(lambda P: forward(net, P), points, order, noise=noise,
                                            richardson=richardson)
                   for name, order in (("jacobian", 1), ("hessian", 2)) if name in wanted}
    near = _near_kink(net, numeric, [fd.reach for fd in differences.values()])
    comparisons = []
    for k in range(net.n_outputs):
        for name in ("value", *wanted):
            rounding = getattr(numeric.roundoff, name)[:, k]
            sides = {_EXACT: getattr(exact, name)[:, k], _BACKPROP: getattr(numeric, name)[:, k]}
            tolerances = {(_EXACT, _BACKPROP): 2 * rounding}
            if name in differences:
                sides[_FD] = differences[name].derivative[:, k]
                tolerances[(_EXACT, _FD)] = tolerances[(_BACKPROP, _FD)] = differences[name].error[:, k] + rounding
            comparisons += [_compare(k, name, first, second, sides[first], sides[second], tolerance, ~near)
                            for (first, second), tolerance in tolerances.items()]
    report = VerifyReport(tuple(comparisons), points, near, source, exact, numeric, differences)
    if raise_on_failure and not report.ok:
        raise VerificationError(report.message() + "\n" + repr(report), report)
    return report


def _wanted(derivatives: Sequence[str]) -> tuple[str, ...]:
    names = (derivatives,) if isinstance(derivatives, str) else tuple(derivatives)
    names = tuple(ALIASES.get(d, d) if isinstance(d, str) else d for d in names)  # symnet.requests' vocabulary
    unknown = [d for d in names if d not in _DERIVATIVES]
    if unknown:
        raise InputError(f"derivatives {unknown} are unknown; choose from {_DERIVATIVES} (the value is always compared)")
    return tuple(d for d in _DERIVATIVES if d in names)


def _points(net: Any, X: Any, n_points: int, seed: int) -> np.ndarray:
    if X is not None:
        return _as_points(X, net.n_inputs)[0]
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 1:
        raise InputError(f"n_points must be a positive integer, not {n_points!r}")
    return np.random.default_rng(seed).standard_normal((int(n_points), net.n_inputs))


def _exact(net: Any, points: np.ndarray, wanted: tuple[str, ...], kernel: Any) -> tuple[Any, str]:
    if kernel is None:
        import symnet  # at call time: symnet imports this package

        if hasattr(symnet, "compile"):
            try:
                kernel = symnet.compile(net, derivatives=("value", *wanted), backend="numpy")
                source = "symnet.compile(backend='numpy')"
            except NotAChainError as exc:  # a graph symnet.compile cannot take yet: said in the report
                if net.is_chain:
                    raise
                kernel = lambdify_kernel(net, wanted)
                source = f"lambdified chain-rule program (symnet.compile refused this graph: {exc})"
        else:
            kernel, source = lambdify_kernel(net, wanted), "lambdified chain-rule program (no symnet.compile)"
    elif isinstance(kernel, str):
        if kernel != "lambdify":
            raise InputError(f"kernel={kernel!r}: give a callable, None or 'lambdify'")
        kernel, source = lambdify_kernel(net, wanted), "lambdified chain-rule program"
    elif callable(kernel):
        source = f"the kernel passed in ({getattr(kernel, '__name__', type(kernel).__name__)})"
    else:
        raise InputError(f"kernel must be a callable X -> result, None or 'lambdify', not {type(kernel).__name__}")
    result = kernel(points)
    n, d, m = len(points), net.n_inputs, net.n_outputs
    shapes = {"value": (n, m), "jacobian": (n, m, d), "hessian": (n, m, d, d)}
    for name in ("value", *wanted):
        got = np.shape(getattr(result, name, None))
        if got != shapes[name]:
            raise ShapeError(f"the exact kernel ({source}) gave {name} of shape {got}, but {shapes[name]} is needed")
    return result, source


def _near_kink(net: Any, numeric: Backprop | GraphBackprop, reaches: list[np.ndarray]) -> np.ndarray:
    """Points with a pre-activation within reach of a kink of its activation.

    A stencil that moves ``x`` by at most ``r_i`` in coordinate ``i`` moves ``z`` by about
    ``sum_i |dz/dx_i| r_i``; twice that is the margin, for the curvature of ``z`` along the way.
    """
    n = len(numeric.value)
    near = np.zeros(n, dtype=bool)
    reach = np.max(reaches, axis=0) if reaches else np.zeros((n, net.n_inputs))
    if net.is_chain:
        pairs = [(layer.activation, z, dz) for layer, z, dz in
                 zip(net.layers, numeric.preactivations, numeric.preactivation_jacobians)]
    else:  # every activation node, at its input
        pairs = [(node.activation, numeric.nodes[node.inputs[0]], numeric.node_jacobians[node.inputs[0]])
                 for node in net.graph.nodes[1:] if node.op == "activation"]
    for activation, z, dz in pairs:
        kinks = activation.kinks
        if kinks:
            margin = 2 * np.einsum("nji,ni->nj", np.abs(dz), reach)
            distance = np.min(np.abs(z[..., None] - np.asarray(kinks, dtype=np.float64)), axis=-1)
            near |= np.any(distance <= margin, axis=1)
    return near


def _compare(output: int, derivative: str, first: str, second: str, a: np.ndarray, b: np.ndarray,
             tolerance: np.ndarray, keep: np.ndarray) -> Comparison:
    """``a``, ``b``, ``tolerance``: ``(N, ...)`` for one output; only points in ``keep`` count."""
    a, b, tolerance = a[keep], b[keep], tolerance[keep]
    points = np.flatnonzero(keep)
    with np.errstate(invalid="ignore", over="ignore"):
        difference = np.where(a == b, 0.0, np.abs(a - b))  # equal infinities agree
        difference = np.where(np.isnan(difference), np.inf, difference)  # a NaN never agrees
        scale = np.maximum(np.abs(a), np.abs(b))
        relative = np.where(difference == 0, 0.0, difference / np.where(scale == 0, 1.0, scale))
        ratio = np.where(difference == 0, 0.0, difference / tolerance)
    if ratio.size == 0:
        return Comparison(output, derivative, first, second, 0.0, 0.0, 0.0, 0.0, -1, (), (np.nan, np.nan))
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return Comparison(output, derivative, first, second, float(difference.max()), float(relative.max()),
                      float(ratio[worst]), float(tolerance[worst]), int(points[worst[0]]),
                      tuple(int(i) for i in worst[1:]), (float(a[worst]), float(b[worst])))


def _odd_one_out(comparisons: list[Comparison]) -> str | None:
    """The derivation in both failing pairs when exactly the third pair passes."""
    if len(comparisons) != 3:
        return None
    failing = [{c.first, c.second} for c in comparisons if not c.ok]
    if len(failing) != 2:
        return None
    (common,) = failing[0] & failing[1]
    return common
