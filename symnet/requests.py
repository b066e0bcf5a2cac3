"""The one vocabulary of derivative requests: names <-> multi-indices <-> assembly <-> result shapes.

Every part of symnet that takes a list of derivatives -- :func:`symnet.compile`,
:func:`symnet.export`, :func:`symnet.verify`, the CLI -- reads it here, so a name means the
same thing everywhere.  A request is a set of named *quantities* (:data:`QUANTITIES`) and
explicit partials (tuples of inputs: ``(0, 0, 1)`` is ``d^3 / dx0^2 dx1``).  Each quantity
says which partials (multi-indices, sorted tuples of input positions) it needs, how its
entries are assembled from an output's jet, and the shape of its result.

=============  ============  =======================================  =================
name           aliases       what                                     shape (N points)
=============  ============  =======================================  =================
value                        ``y_k``                                  ``(N, m)``
jacobian       gradient,     ``d y_k / d x_i``                        ``(N, m, d)``
               grad
hessian                      ``d^2 y_k / d x_i d x_j``                ``(N, m, d, d)``
laplacian                    ``sum_i d^2 y_k / d x_i^2``              ``(N, m)``
biharmonic                   ``sum_ij d^4 y_k / d x_i^2 d x_j^2``     ``(N, m)``
=============  ============  =======================================  =================

>>> request = parse(["value", "gradient", "biharmonic", (0, 1, 1)], n_inputs=2)
>>> request.names, request.partials
(('value', 'jacobian', 'biharmonic'), ((0, 1, 1),))
>>> QUANTITIES["biharmonic"].multi_indices(2)
[(0, 0, 0, 0), (0, 0, 1, 1), (1, 1, 1, 1)]
>>> request.shape("partial_0_1_1", n=5, m=1, d=2)
(5, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import sympy

from .errors import InputError

__all__ = ["ALIASES", "QUANTITIES", "Quantity", "Request", "canonical", "parse", "partial_name"]

MultiIndex = tuple[int, ...]
Jet = Mapping[MultiIndex, sympy.Expr]


@dataclass(frozen=True)
class Quantity:
    """One named derivative quantity.

    Attributes:
        name: the canonical name (the attribute of a kernel's result).
        order: the highest derivative order it needs.
        multi_indices: ``multi_indices(d)``, the partials it needs in ``d`` inputs.
        entries: ``entries(jet, d)``, its entries for one output: ``[(index, expression)]``,
            ``index`` a tuple over the axes after the output axis (``()`` for a scalar).
        axes: how many axes of length ``d`` follow the output axis in its result.
        doc: one line for the docs.
    """

    name: str
    order: int
    multi_indices: Callable[[int], list[MultiIndex]]
    entries: Callable[[Jet, int], list[tuple[tuple[int, ...], Any]]]
    axes: int
    doc: str

    def shape(self, n: int, m: int, d: int) -> tuple[int, ...]:
        """The result's shape at ``n`` points of a net with ``m`` outputs and ``d`` inputs."""
        return (n, m) + (d,) * self.axes


def _get(jet: Jet, alpha: MultiIndex) -> Any:
    return jet.get(tuple(sorted(alpha)), sympy.S.Zero)


def _biharmonic_indices(d: int) -> list[MultiIndex]:
    return [(i, i, j, j) for i in range(d) for j in range(i, d)]


def _biharmonic(jet: Jet, d: int) -> list[tuple[tuple[int, ...], Any]]:
    """``sum_i d^4/dx_i^4 + 2 sum_{i<j} d^4/dx_i^2 dx_j^2``: each distinct partial once."""
    terms = [(_get(jet, (i, i, j, j)) if i == j else 2 * _get(jet, (i, i, j, j))) for i in range(d) for j in range(i, d)]
    return [((), sympy.Add(*terms))]


#: The named quantities, in the order results list them.
QUANTITIES: dict[str, Quantity] = {q.name: q for q in (
    Quantity("value", 0, lambda d: [()], lambda jet, d: [((), _get(jet, ()))], 0, "the outputs"),
    Quantity("jacobian", 1, lambda d: [(i,) for i in range(d)],
             lambda jet, d: [((i,), _get(jet, (i,))) for i in range(d)], 1, "first partials d y_k / d x_i"),
    Quantity("hessian", 2, lambda d: [(i, j) for i in range(d) for j in range(i, d)],
             lambda jet, d: [((i, j), _get(jet, (i, j))) for i in range(d) for j in range(d)], 2,
             "second partials d^2 y_k / d x_i d x_j (symmetric; each entry computed once)"),
    Quantity("laplacian", 2, lambda d: [(i, i) for i in range(d)],
             lambda jet, d: [((), sympy.Add(*(_get(jet, (i, i)) for i in range(d))))], 0,
             "sum_i d^2 y_k / d x_i^2"),
    Quantity("biharmonic", 4, _biharmonic_indices, _biharmonic, 0,
             "sum_ij d^4 y_k / d x_i^2 d x_j^2 (the Laplacian of the Laplacian), from d(d+1)/2 fourth partials"),
)}

#: Other names for the quantities.
ALIASES: dict[str, str] = {"gradient": "jacobian", "grad": "jacobian", "jac": "jacobian", "hess": "hessian",
                           "bilaplacian": "biharmonic"}


def partial_name(alpha: MultiIndex) -> str:
    """The result name of an explicit partial: ``partial_0_0_1`` for ``(0, 0, 1)``, ``partial`` for ``()``."""
    return "partial_" + "_".join(map(str, alpha)) if alpha else "partial"


@dataclass(frozen=True)
class Request:
    """A parsed request: named quantities (canonical, in :data:`QUANTITIES` order) and explicit partials.

    Attributes:
        names: the quantities' canonical names.
        partials: the explicit partials, sorted multi-indices, in the order asked.
    """

    names: tuple[str, ...]
    partials: tuple[MultiIndex, ...]

    @property
    def words(self) -> tuple[str, ...]:
        """The same as :attr:`names` (the kernels' older word)."""
        return self.names

    def multi_indices(self, d: int) -> list[MultiIndex]:
        """Every partial the request needs, the value first, without repeats."""
        wanted: dict[MultiIndex, None] = {(): None}
        for name in self.names:
            wanted.update(dict.fromkeys(QUANTITIES[name].multi_indices(d)))
        wanted.update(dict.fromkeys(self.partials))
        return list(wanted)

    @property
    def order(self) -> int:
        return max([QUANTITIES[n].order for n in self.names] + [len(a) for a in self.partials])

    @property
    def outputs(self) -> tuple[str, ...]:
        """The result names: the quantities, then each partial's :func:`partial_name`."""
        return self.names + tuple(partial_name(a) for a in self.partials)

    def shape(self, name: str, n: int, m: int, d: int) -> tuple[int, ...]:
        """The shape of result ``name`` at ``n`` points."""
        quantity = QUANTITIES.get(name)
        return quantity.shape(n, m, d) if quantity is not None else (n, m)

    def entries(self, name: str, jet: Jet, d: int) -> list[tuple[tuple[int, ...], Any]]:
        """Result ``name``'s entries for one output's jet."""
        quantity = QUANTITIES.get(name)
        if quantity is not None:
            return quantity.entries(jet, d)
        alpha = next(a for a in self.partials if partial_name(a) == name)
        return [((), _get(jet, alpha))]


def canonical(name: str) -> str:
    """The canonical name of a quantity or alias; :class:`~symnet.InputError` for an unknown one."""
    word = ALIASES.get(name, name)
    if word not in QUANTITIES:
        raise InputError(f"unknown derivative {name!r}; ask for {', '.join(QUANTITIES)} (or "
                         f"{', '.join(ALIASES)}) or a partial such as (0, 0, 1)")
    return word


def parse(derivatives: Iterable[Any] | str, n_inputs: int,
          input_index: Callable[[Any], int] | None = None, allowed: Sequence[str] | None = None) -> Request:
    """Read a request: names (:data:`QUANTITIES`, :data:`ALIASES`) and partials (tuples of inputs).

    Args:
        derivatives: a name, a partial, or an iterable of them.
        n_inputs: the network's number of inputs.
        input_index: maps an input given by name, symbol or position to its position
            (``net.input_index``); default: positions only.
        allowed: the names a consumer supports (others are an :class:`~symnet.InputError`
            saying so); default all.
    """
    if not isinstance(derivatives, Iterable):
        raise InputError(f"cannot read derivatives={derivatives!r}: give names from {', '.join(QUANTITIES)} "
                         "(e.g. ('value', 'hessian')) or partials such as (0, 0, 1)")
    if isinstance(derivatives, (str, tuple)) and (
            isinstance(derivatives, str) or all(isinstance(i, (int, np.integer)) for i in derivatives)):
        derivatives = [derivatives]
    index = input_index or (lambda i: _position(i, n_inputs))
    names: list[str] = []
    partials: list[MultiIndex] = []
    for item in derivatives:
        if isinstance(item, str):
            word = canonical(item)
            if allowed is not None and word not in allowed:
                raise InputError(f"{item!r} is not available here; ask for {', '.join(allowed)}")
            if word not in names:
                names.append(word)
        elif isinstance(item, (tuple, list)):
            alpha = tuple(sorted(index(i) for i in item))
            if alpha not in partials:
                partials.append(alpha)
        else:
            raise InputError(f"cannot read derivative {item!r}: give a name ('hessian') or a tuple of inputs (0, 1)")
    if not names and not partials:
        raise InputError("derivatives is empty: ask for at least 'value'")
    return Request(tuple(n for n in QUANTITIES if n in names), tuple(partials))


def _position(i: Any, n_inputs: int) -> int:
    if isinstance(i, (int, np.integer)) and not isinstance(i, bool) and 0 <= i < n_inputs:
        return int(i)
    raise InputError(f"{i!r} is not an input position (0..{n_inputs - 1})")
