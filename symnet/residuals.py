"""Residual losses: a PDE's residual, boundary and initial conditions, written in numpy terms of a
network's exact derivatives, with the loss's exact gradient.

A :class:`Residual` is one term: points, a function ``fn(P, r)`` of the points ``P`` ``(n, d)``
and the kernel's results ``r`` at them (``r.value``, ``r.jacobian``, ``r.hessian``,
``r.laplacian``, ``r.biharmonic``, ``r[(0, 0, 1)]`` for ``d^3 / dx0^2 dx1``, each ``(n, m, ...)``),
returning the residual ``(n,)`` or ``(n, k)``; and a weight.  The loss is

    sum over terms of  weight * mean over points and entries of fn(P, r)**2.

symnet reads which derivatives a term needs from what its function reads (a first call on two
points; or give ``derivatives=``), computes them with :func:`symnet.compile_vjp`, and
differentiates the function exactly through :mod:`symnet.tape` -- arithmetic, powers, indexing
and the numpy functions there; anything else is a :class:`~symnet.errors.ResidualError`.  The
function is called on chunks of points and must act point by point (row ``n`` of its result
depends on point ``n`` only), as a residual does.

>>> import numpy as np, symnet
>>> net = symnet.Network.from_weights([[[1.0]], [[1.0]]], [[0.0], [0.0]], ["square", "linear"])   # u = x^2
>>> term = Residual(np.array([[0.5], [1.0]]), lambda P, r: r.laplacian[:, 0] - 2.0)             # u'' = 2
>>> ResidualLoss(net, [term])(ResidualLoss(net, [term]).kernels[0].params())[0]
0.0
>>> term.derivatives_read(net)
('laplacian',)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .errors import InputError, ResidualError, ShapeError
from .kernels import KernelResult, compile_vjp
from .network import Network
from .requests import QUANTITIES, parse
from .tape import Traced

__all__ = ["Residual", "ResidualLoss"]

ResidualFn = Callable[[np.ndarray, KernelResult], Any]


class _Probe:
    """A stand-in for a kernel's results that records what a residual reads (traced ones)."""

    def __init__(self, n: int, m: int, d: int) -> None:
        self.n, self.m, self.d = n, m, d
        self.read: dict[Any, None] = {}

    def _array(self, shape: tuple[int, ...]) -> Traced:
        return Traced(np.full(shape, 0.5))

    def __getattr__(self, name: str) -> Traced:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            canonical = parse([name], self.d).names[0]
        except Exception as exc:
            raise ResidualError(f"a residual read r.{name}, which is no derivative symnet computes; results are "
                                f"{', '.join(QUANTITIES)} and partials r[(i, j, ...)]") from exc
        self.read[canonical] = None
        return self._array(QUANTITIES[canonical].shape(self.n, self.m, self.d))

    def __getitem__(self, key: Any) -> Traced:
        if isinstance(key, str):
            return self.__getattr__(key)
        try:
            alpha = parse([tuple(key)], self.d).partials[0]
        except Exception as exc:
            raise ResidualError(f"a residual read r[{key!r}]: partials are tuples of input positions "
                                f"0..{self.d - 1}, as (0, 0, 1) for d^3/dx0^2 dx1") from exc
        self.read[alpha] = None
        return self._array((self.n, self.m))


@dataclass(frozen=True, eq=False)
class Residual:
    """One term of a residual loss.

    Attributes:
        points: ``(n, d)`` points (``(n,)`` for one input).
        fn: ``fn(P, r)``: the residual at points ``P`` ``(n, d)`` from the results ``r`` there,
            ``(n,)`` or ``(n, k)``.
        weight: the term's weight, ``>= 0``.
        derivatives: what ``r`` holds; ``None``: what ``fn`` reads (:meth:`derivatives_read`).
        name: for messages and progress.
        data: per-point data (measurements, boundary values): an array with one row per point,
            or a tuple or dict of such arrays; ``fn`` then takes it as ``fn(P, r, data)``, the
            rows of the chunk's points.
    """

    points: Any
    fn: ResidualFn
    weight: float = 1.0
    derivatives: Sequence[Any] | None = None
    name: str | None = None
    data: Any = None

    def derivatives_read(self, net: Network) -> tuple[Any, ...]:
        """What ``fn`` reads of its results (:attr:`derivatives` if given), from calls on two and three points."""
        return _probe(self, net, "the residual")[0]

    def _label(self) -> str:
        return f"residual {self.name!r}" if self.name else "the residual"


class ResidualLoss:
    """``loss(params) -> (value, {node: {parameter: gradient}})`` for residual terms.

    Args:
        net: the network (chain or graph; its weights are the default ``params``).
        terms: :class:`Residual` terms, or private data terms (see :func:`symnet.fit`).

    Attributes:
        kernels: one :class:`~symnet.VJPKernel` per term.
        last_terms: after a call on all points (``rows=None``), each term's share of the loss
            (its weight times its mean square), in the order of ``terms``: they add up to the loss.
    """

    def __init__(self, net: Network, terms: Sequence[Any]) -> None:
        if not terms:
            raise InputError("a residual loss needs at least one term")
        self.net = net
        self.terms: list[_Term] = []
        self.kernels = []
        self.last_terms: list[float] = []
        shared: dict[tuple[Any, ...], Any] = {}
        for position, term in enumerate(terms):
            if not isinstance(term, (Residual, _Term)):
                raise InputError(f"term {position}: a symnet.Residual(points, fn, weight), not {type(term).__name__}")
            prepared = term if isinstance(term, _Term) else _Term.of(term, net, position)
            key = parse(prepared.derivatives, net.n_inputs)
            if key not in shared:
                shared[key] = compile_vjp(net, prepared.derivatives)
            self.terms.append(prepared)
            self.kernels.append(shared[key])

    def __call__(self, params: Any, rows: np.ndarray | None = None) -> tuple[float, dict[str, dict[str, np.ndarray]]]:
        """The loss and its gradient at ``params`` (``rows``: a subset of the first term's points)."""
        total, grads, shares = 0.0, None, []
        for position, (term, kernel) in enumerate(zip(self.terms, self.kernels)):
            if term.weight == 0:
                shares.append(0.0)
                continue
            points, count = term.points, term.count
            if rows is not None and position == 0:
                points, count = points[rows], count * len(rows) / len(points)
                chunk_loss = term.chunk_loss(count, rows)
            else:
                chunk_loss = term.chunk_loss(count, None)
            value, term_grads, _ = kernel.value_and_grad(points, chunk_loss, weights=params)
            total += value
            shares.append(float(value))
            if grads is None:
                grads = term_grads
            else:
                for node, group in term_grads.items():
                    for name, g in group.items():
                        grads[node][name] = grads[node][name] + g
        if rows is None:
            self.last_terms = shares
        return total, grads if grads is not None else {}


def why_not_finite(loss: ResidualLoss, params: Any) -> str:
    """Which term makes the loss at ``params`` not finite, and whether the network or the function is to blame."""
    for term, kernel in zip(loss.terms, loss.kernels):
        with np.errstate(all="ignore"):
            results = kernel(term.points, weights=params)
            value = term.fn(term.points, slice(None), KernelResult(
                {name: Traced(array) for name, array in results.as_dict().items()}))
        residual = np.asarray(value.value if isinstance(value, Traced) else value)
        if np.all(np.isfinite(residual)):
            continue
        bad = [name for name, array in results.as_dict().items() if not np.all(np.isfinite(array))]
        if bad:
            return (f"{term.label}: the network's {', '.join(bad)} is not finite at the starting weights (overflow); "
                    "start from other weights or scale the points")
        rows = np.flatnonzero(~np.all(np.isfinite(residual.reshape(len(residual), -1)), axis=1))
        return (f"{term.label}: the residual is not finite at {len(rows)} of its points (the first: point "
                f"{rows[0]}) although the network's results there are finite: the function of P or its data "
                "gives nan or inf there (a log, a division by zero, a NaN in the data)")
    return "the loss is not finite at the starting weights; start from other weights"


@dataclass
class _Term:
    """A term ready to run: points checked, derivatives known, the residual's entries per point."""

    points: np.ndarray
    fn: Callable[[np.ndarray, slice | np.ndarray, KernelResult], Any]
    weight: float
    derivatives: tuple[Any, ...]
    count: float
    label: str

    @classmethod
    def of(cls, term: Residual, net: Network, position: int) -> _Term:
        label = f"term {position}" + (f" ({term.name})" if term.name else "")
        d = net.n_inputs
        points = np.asarray(term.points, dtype=np.float64)
        if points.ndim == 1 and d == 1:
            points = points[:, None]
        if points.ndim != 2 or points.shape[1] != d or len(points) == 0:
            raise ShapeError(f"{label}: points must have shape (n, {d}) with n >= 1, not {np.shape(term.points)}")
        if not np.all(np.isfinite(points)):
            raise InputError(f"{label}: points must be finite (found NaN or inf)")
        weight = float(term.weight)
        if not np.isfinite(weight) or weight < 0:
            raise InputError(f"{label}: weight must be a finite number >= 0, not {term.weight!r}")
        if not callable(term.fn):
            raise InputError(f"{label}: fn must be a function fn(P, r), not {type(term.fn).__name__}")
        if term.data is not None:
            lengths = {len(np.asarray(a)) for a in (term.data.values() if isinstance(term.data, dict) else
                                                    term.data if isinstance(term.data, tuple) else (term.data,))}
            if lengths != {len(points)}:
                raise ShapeError(f"{label}: data must have one row per point ({len(points)}), not {sorted(lengths)}")
        derivatives, width = _probe(term, net, label)
        fn, data = term.fn, term.data
        if data is None:
            return cls(points, lambda P, rows, r: fn(P, r), weight, derivatives, float(len(points) * width), label)
        return cls(points, lambda P, rows, r: fn(P, r, _rows(data, rows)), weight, derivatives,
                   float(len(points) * width), label)

    def chunk_loss(self, count: float, rows: np.ndarray | None) -> Callable[[np.ndarray, slice, KernelResult], Any]:
        scale = self.weight / count
        label, fn = self.label, self.fn

        def loss(P: np.ndarray, chunk: slice, r: KernelResult) -> Any:
            where = chunk if rows is None else rows[chunk]
            value = fn(P, where, r)
            if not isinstance(value, Traced):
                raise ResidualError(f"{label}: the residual does not depend on the network's results")
            if value.ndim == 0 or value.shape[0] != len(P):
                raise ResidualError(f"{label}: the residual has shape {value.shape} at {len(P)} points; it must be "
                                    f"({len(P)},) or ({len(P)}, k): one row per point")
            return (value * value).sum() * scale
        return loss


def _probe(term: Residual, net: Network, label: str) -> tuple[tuple[Any, ...], int]:
    """What ``term.fn`` reads, and how many entries its residual has per point: calls on two and on
    three points with stand-in results (so it works for symbolic weights too)."""
    d = net.n_inputs
    points = np.asarray(term.points, dtype=np.float64).reshape(-1, d)
    widths, read = [], {}
    for n in (2, 3):
        probe = _Probe(n, net.n_outputs, d)
        rows = np.arange(n) % len(points)
        args = (points[rows], probe) if term.data is None else (points[rows], probe, _rows(term.data, rows))
        try:
            with np.errstate(all="ignore"):
                value = term.fn(*args)  # type: ignore[arg-type]
        except ResidualError:
            raise
        except Exception as exc:
            raise ResidualError(f"{label} failed on {n} stand-in points ({type(exc).__name__}: {exc}); it is called "
                                "on chunks of points as fn(P, r): compute per-point data from P, or give it as "
                                "Residual(points, fn, data=array) and take it as fn(P, r, data)") from exc
        if not probe.read:
            raise ResidualError(f"{label} reads none of its results (r.value, r.laplacian, r[(0, 0)], ...): a "
                                "residual is a function of the network's derivatives")
        if not isinstance(value, Traced):
            raise ResidualError(f"{label} does not depend on the network's results (it returned a "
                                f"{type(value).__name__} not computed from r)")
        if value.ndim not in (1, 2) or value.shape[0] != n:
            raise ResidualError(f"{label} has shape {value.shape} at {n} points; it must be ({n},) or ({n}, k): "
                                "one row per point")
        widths.append(1 if value.ndim == 1 else value.shape[1])
        read.update(probe.read)
    if widths[0] != widths[1]:
        raise ResidualError(f"{label} has {widths[0]} entries per point at 2 points and {widths[1]} at 3: it "
                            "broadcasts one point against the others, as an (n, 1) result minus an (n,) array "
                            "does; index the output: r.laplacian[:, 0]")
    read = tuple(read)
    if term.derivatives is not None:
        given = parse(_request(term.derivatives), d)
        missing = [name for name in read if name not in given.names and name not in given.partials]
        if missing:
            raise ResidualError(f"{label} reads {missing}, which derivatives={tuple(term.derivatives)!r} leaves out")
        read = _request(term.derivatives)
    return read, widths[0]


def _request(derivatives: Any) -> tuple[Any, ...]:
    """``derivatives=`` as a tuple: one name alone (``"gradient"``) is a request of one."""
    return (derivatives,) if isinstance(derivatives, str) else tuple(derivatives)


def _rows(data: Any, rows: Any) -> Any:
    """Rows ``rows`` of a term's per-point data: an array, or a tuple or dict of arrays."""
    if isinstance(data, dict):
        return {key: np.asarray(value)[rows] for key, value in data.items()}
    if isinstance(data, tuple):
        return tuple(np.asarray(value)[rows] for value in data)
    return np.asarray(data)[rows]


def data_terms(net: Network, X: np.ndarray, Y: np.ndarray | None, DY: np.ndarray | None,
               value_weight: float, derivative_weight: float) -> list[_Term]:
    """:func:`symnet.fit`'s value and derivative targets as residual terms (NaN: no target)."""
    terms = []
    for targets, weight, name, label in ((Y, value_weight, "value", "values y"),
                                         (DY, derivative_weight, "jacobian", "derivatives dy")):
        if targets is None:
            continue
        given = ~np.isnan(targets)
        count = float(given.sum())
        if count == 0:
            continue
        filled = np.where(given, targets, 0.0)

        def fn(P: np.ndarray, rows: Any, r: KernelResult, name: str = name, filled: np.ndarray = filled,
               given: np.ndarray = given) -> Any:
            return ((getattr(r, name) - filled[rows]) * given[rows]).reshape(len(P), -1)
        terms.append(_Term(X, fn, weight, (name,), count, label))
    return terms
