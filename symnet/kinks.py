"""Where a network with non-smooth activations (relu, leaky_relu, elu, traced ``Max``/``Abs``/...) has kinks.

A neuron with activation ``f`` has a kink wherever its pre-activation ``z`` equals one of
``f.kinks`` (the points where ``f`` is not infinitely differentiable; 0 for relu).  symnet's
conventions at those points:

* symbolic first derivatives contain ``Heaviside``, with SymPy's ``Heaviside(0) = 1/2``
  (so ``d relu(z)/dz`` at exactly ``z = 0`` reads 1/2, the midpoint of the two slopes);
* symbolic second derivatives show their ``DiracDelta`` terms;
* numeric kernels, :func:`symnet.check.backprop` and :func:`symnet.verify` return the
  almost-everywhere values: the same ``Heaviside(0) = 1/2``, ``DiracDelta`` as 0.

:func:`kinks` reports which points of ``X`` lie within ``tol`` of a kink (of which neuron
in which layer) and, for one-input networks, every kink location on the input axis.

>>> import symnet
>>> net = symnet.Network.from_weights([[[1.0, -1.0]], [[1.0], [1.0]]], [[-1.0, -1.0], [0.0]], ["relu", "linear"])
>>> report = kinks(net, X=[[0.5], [1.0], [-1.0]])   # relu(x - 1) + relu(-x - 1)
>>> report.locations
array([-1.,  1.])
>>> report.jumps[:, 0]                               # the slope jumps by +1 at each kink
array([1., 1.])
>>> report.near                                      # which points of X sit on a kink
array([False,  True,  True])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import sympy

from .activations import T, Activation
from .check.backprop import backprop
from .errors import InputError, LimitError
from .io import safe_text
from .limits import MAX_FORM_SIZE, MAX_KINK_RESOLUTION, tree_size
from .network import Network

__all__ = ["kinks", "KinkReport", "KinkHit", "Crossing"]

_EPS = float(np.finfo(np.float64).eps)
_MAX_ROWS = 20  # rows of the repr tables


class KinkHit(NamedTuple):
    """A point of ``X`` whose pre-activation ``z`` lies within ``tol`` of a kink ``kink``.

    ``layer`` counts a chain's layers from 1; on a graph it is the activation node's position
    in ``net.graph.nodes`` (the input is 0).  ``node`` names the activation node either way
    (a chain's are ``a1, a2, ...``).
    """

    point: int
    layer: int  # counted from 1 (a graph: the node's position)
    neuron: int  # counted from 0
    z: float
    kink: float
    node: str = ""


class Crossing(NamedTuple):
    """A neuron's pre-activation crosses a kink of its activation at input ``x`` (one-input nets).

    ``layer`` and ``node`` as in :class:`KinkHit`.
    """

    x: float
    layer: int  # counted from 1 (a graph: the node's position)
    neuron: int  # counted from 0
    kink: float
    node: str = ""


class _Site(NamedTuple):
    """Where kinks can be: an activation, with what feeds it and whether all before it is affine."""

    number: int  # a chain's layer, from 1; a graph's node position
    node: str  # the activation node's name
    source: str | None  # a graph: the node whose values are the pre-activation; a chain: None
    activation: Activation
    affine_before: bool  # every nonlinear node before it is a piecewise-linear activation
    curved_by: str = ""  # otherwise, the first that is not, in words


def _sites(net: Network) -> tuple[list[_Site], bool]:
    """The activations of ``net`` in evaluation order (a chain's layers; a graph's activation
    nodes), and whether the whole net is piecewise linear."""
    sites: list[_Site] = []
    culprit = ""  # the first nonlinear node that is not a piecewise-linear activation
    if net.is_chain:
        for number, layer in enumerate(net.layers, start=1):
            sites.append(_Site(number, f"a{number}", None, layer.activation, not culprit, culprit))
            if not culprit and not _piecewise_linear(layer.activation):
                culprit = f"a layer that is not piecewise linear ({layer.activation.name})"
        return sites, not culprit
    for position, node in enumerate(net.graph.nodes):
        if node.op == "activation":
            sites.append(_Site(position, node.name, node.inputs[0], node.activation, not culprit, culprit))
            if not culprit and not _piecewise_linear(node.activation):
                culprit = f"node {safe_text(repr(node.name), 40)}, not piecewise linear ({node.activation.name})"
        elif node.family == "bilinear" and not culprit:  # a product of affine pieces is not affine
            culprit = f"node {safe_text(repr(node.name), 40)}, a product of two branches (not piecewise linear)"
    return sites, not culprit


@dataclass(frozen=True, eq=False)
class KinkReport:
    """What :func:`kinks` found.

    Attributes:
        X: the points checked, ``(N, d)``; ``None`` when no ``X`` was given.
        tol: the distance in pre-activation below which a point counts as on a kink.
        near: ``(N,)`` booleans: points with some pre-activation within ``tol`` of a kink.
        hits: every (point, layer, neuron) within ``tol`` of a kink, as :class:`KinkHit`.
        crossings: for one-input nets, every neuron's crossing of a kink value, sorted by
            ``x``, as :class:`Crossing`; ``None`` for nets with several inputs.
        method: how the locations were found (exactly, or by bracketing), in words.
        n_inputs, input_name: the net's number of inputs and the name of its first.
    """

    X: np.ndarray | None
    tol: float
    near: np.ndarray
    hits: tuple[KinkHit, ...]
    crossings: tuple[Crossing, ...] | None
    method: str
    n_inputs: int
    input_name: str
    _locations: np.ndarray | None = field(default=None, repr=False)
    _jumps: np.ndarray | None = field(default=None, repr=False)
    _sources: tuple[tuple[tuple[int, int], ...], ...] = field(default=(), repr=False)
    _node_names: dict[int, str] | None = field(default=None, repr=False)  # a graph's: position -> name

    def _one_input(self, what: str) -> np.ndarray:
        if self._locations is None:
            raise InputError(
                f"{what} exist for one-input networks only; this one has {self.n_inputs} inputs, whose kinks are "
                "surfaces: pass points X to kinks(net, X) and read .near and .hits"
            )
        return self._locations if what == "locations" else self._jumps  # type: ignore[return-value]

    @property
    def locations(self) -> np.ndarray:
        """Every kink on the input axis, sorted, ``(K,)`` (one-input nets only).

        Crossings of several neurons closer than ``64 eps max(1, |x|)`` count as one location.
        """
        return self._one_input("locations")

    @property
    def jumps(self) -> np.ndarray:
        """``(K, m)``: per location, the jump of ``dy_k/dx`` across it (right minus left).

        The second derivative of the net holds ``jumps[i, k] * DiracDelta(x - locations[i])``;
        a zero jump is a kink of a neuron that the output does not feel.
        """
        return self._one_input("jumps")

    @property
    def sources(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """Per location, the ``(layer, neuron)`` pairs whose pre-activation crosses a kink there
        (a graph: ``(node position, unit)``; :attr:`Crossing.node` names the node)."""
        self._one_input("locations")
        return self._sources

    @property
    def n_near(self) -> int:
        return int(self.near.sum())

    def __repr__(self) -> str:
        lines = ["KinkReport:"]
        if self._locations is not None:
            count = len(self._locations)
            lines.append(f"  {count} kink location{'s' * (count != 1)} on the {self.input_name} axis; {self.method}")
            if count:
                names = self._node_names
                crossed = "crossed by (layer, neuron)" if names is None else "crossed by node[unit]"
                rows = [(f"{self.input_name}", "jump of dy/dx", crossed)]
                for x, jump, src in list(zip(self._locations, self._jumps, self._sources))[:_MAX_ROWS]:
                    jumps = ", ".join(f"{j:.6g}" for j in jump)  # type: ignore[union-attr]
                    who = (" ".join(f"({la}, {ne})" for la, ne in src) if names is None
                           else " ".join(f"{safe_text(names[la], 40)}[{ne}]" for la, ne in src))
                    rows.append((f"{x:.10g}", jumps, who))
                lines += _table(rows)
                if count > _MAX_ROWS:
                    lines.append(f"    ... {count - _MAX_ROWS} more in .locations")
        else:
            lines.append(f"  a {self.n_inputs}-input net: kinks are surfaces, not points; {self.method}")
        if self.X is not None:
            lines.append(f"  {self.n_near} of {len(self.X)} points within tol={self.tol:g} of a kink")
            if self.hits:
                graph = self._node_names is not None
                rows = [("point", "node" if graph else "layer", "unit" if graph else "neuron", "z", "kink")]
                for hit in self.hits[:_MAX_ROWS]:
                    where = safe_text(hit.node, 40) if graph else str(hit.layer)
                    rows.append((str(hit.point), where, str(hit.neuron), f"{hit.z:.6g}", f"{hit.kink:g}"))
                lines += _table(rows)
                if len(self.hits) > _MAX_ROWS:
                    lines.append(f"    ... {len(self.hits) - _MAX_ROWS} more in .hits")
        return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["    " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def kinks(net: Network, X: Any = None, tol: float = 1e-8, *, domain: tuple[float, float] | None = None,
          resolution: int = 512) -> KinkReport:
    """The kinks of a numeric network: near which points of ``X``, and (one input) where on the axis.

    Args:
        net: a numeric :class:`~symnet.Network` (a chain or a graph).
        X: points ``(N, d)`` (one point ``(d,)``; for one-input nets also ``(N,)``), or ``None``.
            A point is *near a kink* when some pre-activation ``z`` of a layer lies within
            ``tol`` of a kink of that layer's activation (``layer.activation.kinks``).
        tol: that distance, in units of ``z``; ``>= 0``.
        domain: ``(lo, hi)``: look for locations on this interval only.  Needed only where
            bracketing is (see below); ``None`` is the whole real line.
        resolution: grid points per piece for bracketing.

    Returns:
        A :class:`KinkReport`: ``near`` ``(N,)``, ``hits``; for one-input nets ``locations``
        ``(K,)``, ``jumps`` ``(K, m)``, ``sources`` and ``crossings``.

    How the locations of a one-input net are found.  Layer by layer: the kinks already found
    cut the axis into pieces on which every earlier neuron stays on one smooth branch of its
    activation, so each pre-activation of the next layer is an explicit function there.

    * If every earlier layer is piecewise linear (relu, leaky_relu, linear, hard limits such
      as ``Min(1, Max(0, t))``), that function is affine on each piece: its value and slope
      at one interior point give the crossing of each kink value by one linear solve, on the
      whole real line.  Every crossing is found; each is exact up to float64 rounding.
    * Otherwise (an elu or a smooth layer before a kinked one) the crossings are bracketed
      by sign changes on a grid of ``resolution`` points per piece of ``domain`` and refined
      by :func:`scipy.optimize.brentq`.  A pre-activation that touches a kink value without
      crossing it, or crosses twice within one grid step, can be missed there; ``domain``
      must then be bounded.

    A kinked layer with only piecewise-linear layers before it (the first layer, say) is
    always solved linearly, ``domain`` or not.  A graph is read the same way, activation node
    by activation node in evaluation order: its pre-activation is the node's input, and a
    product of two branches (``h * g``) counts as not piecewise linear.  A neuron whose
    pre-activation stays *equal* to a kink value on a whole interval has no isolated kink
    and is not reported.

    >>> import symnet
    >>> net = symnet.Network.from_weights([[[1.0, 1.0]], [[1.0], [-2.0]], [[1.0]]],
    ...                                   [[0.0, -1.0], [-0.5], [0.0]], ["relu", "relu", "linear"])
    >>> kinks(net).locations       # layer 1 at 0 and 1; layer 2 where x - 2 relu(x - 1) = 0.5
    array([0. , 0.5, 1. , 1.5])
    >>> kinks(net).sources[1], kinks(net).jumps[:, 0]
    (((2, 0),), array([ 0.,  1., -2.,  1.]))
    """
    if not isinstance(net, Network):
        raise InputError(f"kinks needs a symnet.Network, not {type(net).__name__}")
    if not net.is_numeric:
        names = ", ".join(str(p) for p in net.params[:4])
        raise InputError(f"kinks needs numeric weights, but {names}... are symbols: substitute numbers with "
                         "net.subs(...)")
    if not isinstance(tol, (int, float, np.floating)) or not math.isfinite(tol) or tol < 0:
        raise InputError(f"tol must be a finite number >= 0, not {tol!r}")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 3:
        raise InputError(f"resolution must be an integer >= 3, not {resolution!r}")
    if resolution > MAX_KINK_RESOLUTION:
        raise LimitError(f"resolution={resolution} is above symnet.limits.MAX_KINK_RESOLUTION = "
                         f"{MAX_KINK_RESOLUTION:,} grid points per piece; bracketing that finely needs gigabytes: "
                         "give a smaller domain instead")
    lo, hi = _domain(domain)
    sites, piecewise_linear = _sites(net)
    points, near, hits = None, np.zeros(0, dtype=bool), ()
    if X is not None:
        points, near, hits = _hits(net, sites, X, float(tol))
    crossings = locations = jumps = None
    sources: tuple[tuple[tuple[int, int], ...], ...] = ()
    if not any(site.activation.kinks for site in sites):
        method = "every activation is smooth: no kinks"
    elif net.n_inputs == 1:
        crossings, method = _crossings(net, sites, lo, hi, int(resolution))
        locations, sources = _cluster(crossings)
        jumps = _jumps(net, locations, lo, hi, piecewise_linear)
    else:
        method = "locations are found for one-input nets only"
    if crossings is None and net.n_inputs == 1:
        crossings, locations, jumps = (), np.zeros(0), np.zeros((0, net.n_outputs))
    names = None if net.is_chain else {site.number: site.node for site in sites}
    return KinkReport(points, float(tol), near, hits, crossings, method, net.n_inputs, net.inputs[0].name,
                      locations, jumps, sources, names)


# --- points near kinks ----------------------------------------------------------------------


def _hits(net: Network, sites: list[_Site], X: Any,
          tol: float) -> tuple[np.ndarray, np.ndarray, tuple[KinkHit, ...]]:
    if net.n_inputs == 1 and np.ndim(X) == 1:  # N points of one input
        X = np.reshape(X, (-1, 1))
    result = backprop(net, X)  # checks X: (N, d) or one point (d,)
    points = np.asarray(X, dtype=np.float64).reshape(-1, net.n_inputs)
    near = np.zeros(len(points), dtype=bool)
    hits: list[KinkHit] = []
    for site in sites:
        if not site.activation.kinks:
            continue
        z = np.atleast_2d(result.preactivations[site.number - 1] if site.source is None
                          else result.nodes[site.source])
        for kink in site.activation.kinks:
            rows, cols = np.nonzero(np.abs(z - kink) <= tol)
            near[rows] = True
            hits += [KinkHit(int(r), site.number, int(c), float(z[r, c]), float(kink), site.node)
                     for r, c in zip(rows, cols)]
    hits.sort(key=lambda h: (h.point, h.layer, h.neuron))
    return points, near, tuple(hits)


# --- locations on the axis of a one-input net ----------------------------------------------


def _domain(domain: tuple[float, float] | None) -> tuple[float, float]:
    if domain is None:
        return -math.inf, math.inf
    try:
        lo, hi = (float(v) for v in domain)
    except (TypeError, ValueError) as exc:
        raise InputError(f"domain must be a pair (lo, hi) of numbers, not {domain!r}") from exc
    if math.isnan(lo) or math.isnan(hi) or not lo < hi:
        raise InputError(f"domain must satisfy lo < hi, got {domain!r}")
    return lo, hi


@lru_cache(maxsize=None)
def _piecewise_linear_form(form: sympy.Expr) -> bool:
    if tree_size(form, MAX_FORM_SIZE) > MAX_FORM_SIZE:  # sympy.simplify of a huge form would not finish
        raise LimitError(f"an activation form of more than symnet.limits.MAX_FORM_SIZE = {MAX_FORM_SIZE} nodes is "
                         "too big to test for piecewise linearity; kinks() cannot locate its kinks")
    second = sympy.diff(form, T, 2)
    second = second.replace(lambda e: isinstance(e, sympy.DiracDelta), lambda e: sympy.S.Zero)
    return bool(second == 0 or sympy.simplify(second) == 0)


def _piecewise_linear(activation: Activation) -> bool:
    """Whether the activation is affine between its kinks (``f''`` is 0 away from them)."""
    return activation.form is not None and _piecewise_linear_form(activation.form)


def _pieces(breaks: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """The intervals that ``breaks`` cut ``[lo, hi]`` into: their ends ``(P,)``, ``(P,)``."""
    inside = breaks[(breaks > lo) & (breaks < hi)]
    return np.concatenate([[lo], inside]), np.concatenate([inside, [hi]])


def _interior(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """One point strictly inside each interval (ends may be infinite)."""
    with np.errstate(invalid="ignore"):  # infinite ends are replaced below
        mid = left + (right - left) / 2
    both_inf = np.isinf(left) & np.isinf(right)
    mid[both_inf] = 0.0
    only_left = np.isinf(left) & ~both_inf
    mid[only_left] = right[only_left] - np.maximum(1.0, np.abs(right[only_left]))
    only_right = np.isinf(right) & ~both_inf
    mid[only_right] = left[only_right] + np.maximum(1.0, np.abs(left[only_right]))
    return mid


def _preactivation(net: Network, site: _Site, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pre-activations at ``site`` and their slopes ``dz/dx`` at points ``x`` ``(P,)``: ``(P, n)`` each."""
    result = backprop(net, x.reshape(-1, 1))
    if site.source is None:
        return result.preactivations[site.number - 1], result.preactivation_jacobians[site.number - 1][:, :, 0]
    return result.nodes[site.source], result.node_jacobians[site.source][:, :, 0]


def _crossings(net: Network, sites: list[_Site], lo: float, hi: float,
               resolution: int) -> tuple[tuple[Crossing, ...], str]:
    found: list[Crossing] = []
    breaks = np.zeros(0)
    bracketed = False
    for site in sites:
        activation = site.activation
        if activation.kinks:
            left, right = _pieces(breaks, lo, hi)
            if site.affine_before:
                new = _solve_affine(net, site, left, right)
            else:
                if not (math.isfinite(lo) and math.isfinite(hi)):
                    where = f"layer {site.number}" if site.source is None else f"node {site.node!r}"
                    raise InputError(
                        f"{where} ({activation.name}) follows {site.curved_by}, so its kinks are found by "
                        "bracketing on a bounded interval: pass domain=(lo, hi)"
                    )
                new = _solve_bracketing(net, site, left, right, resolution)
                bracketed = True
            found += new
            breaks = np.unique(np.concatenate([breaks, [c.x for c in new]]))
    found.sort(key=lambda c: (c.x, c.layer, c.neuron))
    if bracketed:
        method = (f"bracketing (scipy.optimize.brentq) on a grid of {resolution} points per piece of "
                  f"[{lo:g}, {hi:g}] for layers after a non-piecewise-linear one: a kink value touched without "
                  "crossing, or crossed twice within one grid step, can be missed")
    else:
        method = "exact: each piece's pre-activations are affine, crossings solved linearly"
    return tuple(found), method


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 64 * _EPS * max(1.0, abs(a), abs(b))


def _dedupe(found: list[Crossing]) -> list[Crossing]:
    """A crossing at a piece boundary is found from both sides: keep one per neuron and kink."""
    found.sort(key=lambda c: (c.neuron, c.kink, c.x))
    kept: list[Crossing] = []
    for c in found:
        if kept and (kept[-1].neuron, kept[-1].kink) == (c.neuron, c.kink) and _close(kept[-1].x, c.x):
            continue
        kept.append(c)
    return kept


def _solve_affine(net: Network, site: _Site, left: np.ndarray, right: np.ndarray) -> list[Crossing]:
    """On each piece ``z(x) = z(s) + z'(s) (x - s)``: solve ``z(x) = kink`` for every neuron and kink."""
    s = _interior(left, right)
    z, dz = _preactivation(net, site, s)  # (P, n), (P, n)
    slack = 4 * _EPS * np.maximum(1.0, np.maximum(np.abs(np.where(np.isinf(left), 0, left)),
                                                  np.abs(np.where(np.isinf(right), 0, right))))
    found: list[Crossing] = []
    for kink in site.activation.kinks:
        with np.errstate(divide="ignore", invalid="ignore"):
            x = s[:, None] + (kink - z) / dz
        ok = (dz != 0) & np.isfinite(x) & (x >= (left - slack)[:, None]) & (x <= (right + slack)[:, None])
        for piece, neuron in zip(*np.nonzero(ok)):
            value = float(np.clip(x[piece, neuron], left[piece], right[piece]))
            found.append(Crossing(value, site.number, int(neuron), float(kink), site.node))
    return _dedupe(found)


def _solve_bracketing(net: Network, site: _Site, left: np.ndarray, right: np.ndarray,
                      resolution: int) -> list[Crossing]:
    """Sign changes of ``z - kink`` on a grid per piece, refined by ``brentq``."""
    grid = np.linspace(left, right, resolution, axis=1)  # (P, R)
    z, _ = _preactivation(net, site, grid.reshape(-1))
    z = z.reshape(*grid.shape, -1)  # (P, R, n)
    found: list[Crossing] = []
    for kink in site.activation.kinks:
        g = z - kink
        for piece, step, neuron in zip(*np.nonzero(g == 0)):
            found.append(Crossing(float(grid[piece, step]), site.number, int(neuron), float(kink), site.node))
        for piece, step, neuron in zip(*np.nonzero(g[:, :-1] * g[:, 1:] < 0)):
            def residual(x: float, neuron: int = int(neuron), kink: float = float(kink)) -> float:
                return float(_preactivation(net, site, np.array([x]))[0][0, neuron] - kink)

            a, b = float(grid[piece, step]), float(grid[piece, step + 1])
            import scipy.optimize  # lazily: most reports never bracket a root

            root = scipy.optimize.brentq(residual, a, b, xtol=1e-15 * max(1.0, abs(a), abs(b)), rtol=4 * _EPS)
            found.append(Crossing(float(root), site.number, int(neuron), float(kink), site.node))
    return _dedupe(found)


def _cluster(crossings: tuple[Crossing, ...]) -> tuple[np.ndarray, tuple[tuple[tuple[int, int], ...], ...]]:
    """Locations (crossings within rounding of each other merged) and who crosses there."""
    locations: list[float] = []
    sources: list[list[tuple[int, int]]] = []
    for c in crossings:  # sorted by x
        if locations and _close(locations[-1], c.x):
            sources[-1].append((c.layer, c.neuron))
        else:
            locations.append(c.x)
            sources.append([(c.layer, c.neuron)])
    return np.array(locations, dtype=np.float64), tuple(tuple(s) for s in sources)


def _jumps(net: Network, locations: np.ndarray, lo: float, hi: float, linear: bool) -> np.ndarray:
    """``dy/dx`` just right minus just left of each location, ``(K, m)``.

    Between neighbouring locations a piecewise-linear net is affine, so any point there gives
    the one-sided slope exactly.  Otherwise each one-sided limit is extrapolated linearly from
    the slopes ``h`` and ``2h`` away, ``h = 1e-6 max(1, |x|)`` (or less near a neighbour): an
    error of order ``h**2`` times the third derivative.
    """
    if not len(locations):
        return np.zeros((0, net.n_outputs))
    edges = np.concatenate([[lo], locations, [hi]])
    gaps = np.minimum(np.diff(edges)[:-1], np.diff(edges)[1:])  # to the nearer neighbour (or domain end)
    step = np.where(np.isfinite(gaps), gaps / 2, 1.0)
    if linear:
        offsets = [step, -step]
    else:
        step = np.minimum(step / 2, 1e-6 * np.maximum(1.0, np.abs(locations)))
        offsets = [step, 2 * step, -step, -2 * step]
    points = np.concatenate([locations + offset for offset in offsets]).reshape(-1, 1)
    parts = np.split(backprop(net, points).jacobian[:, :, 0], len(offsets))
    if linear:
        return parts[0] - parts[1]
    return (2 * parts[0] - parts[1]) - (2 * parts[2] - parts[3])
