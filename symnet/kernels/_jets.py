"""Truncated Taylor jets over a graph, forward and in reverse: derivatives of a network at points,
and the exact gradient of anything computed from them with respect to every parameter.

Every node carries the Taylor coefficients ``c_alpha = d^alpha u / alpha!`` of its units for
the exponents ``alpha`` of one *downward-closed* set (:class:`JetAlgebra`): the partials a
request needs, and every partial below them.  Polynomials truncated to such a set form an
algebra (the exponents outside it are an ideal), so each rule family is exact on them:

* linear ops act on every coefficient alike, the offset on ``c_0`` only: one BLAS product over
  all stacked streams (:class:`~symnet.kernels._loss.GraphSweep`'s rules, reused);
* ``mul`` is the truncated product ``(ab)_g = sum_{a + b = g} a_a b_b`` (Leibniz's rule);
* an elementwise ``f`` is the truncated composition
  ``f(z) = sum_j f^(j)(z_0) / j! * h^j``, ``h = z - z_0``, with ``f^(j)`` printed from SymPy
  (tail-safe, as the layered kernels' passes) and the powers ``h^j`` as truncated products.

:meth:`JetSweep.backward_to_input` runs those rules in reverse (reverse mode over the Taylor
streams): from adjoints of the output's coefficients it gives every parameter's gradient and
the points' own, exactly.  The number of streams is the size of the set: for ``d`` inputs,
``1 + 2d`` for a Laplacian, ``1 + d + d(d+1)/2`` for a Hessian; :attr:`JetAlgebra.size` says.

>>> algebra = JetAlgebra(2, [(0, 0), (1, 1)])     # what a Laplacian in 2 inputs needs
>>> algebra.exponents
[(0, 0), (1, 0), (0, 1), (2, 0), (0, 2)]
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterable, Sequence

import numpy as np
import sympy

from ..errors import InputError
from ..requests import Request
from ._jet_codegen import jet_module
from ._blocks import Workspace
from ._loss import GraphSweep, empty_array

__all__ = ["JetAlgebra", "JetSweep", "Readout"]

Exponent = tuple[int, ...]


class JetAlgebra:
    """The Taylor coefficients a request needs: a downward-closed set of exponents in ``d`` inputs.

    Args:
        d: the number of inputs.
        partials: the partials wanted, as sorted tuples of input positions (``(0, 0, 1)`` is
            ``d^3 / dx0^2 dx1``), as :meth:`symnet.requests.Request.multi_indices` gives them.

        collapse: a Laplacian-only second order (no other second partial, nothing higher) as one
            stream for ``sum_i c_(2 e_i)`` (collapsed Taylor mode) rather than ``d``: its
            product terms are ``sum_i a_(e_i) b_(e_i)``, and the rules need nothing else.

    Attributes:
        exponents: the set, by total degree, the zero exponent first and the unit ones next
            (without the collapsed stream, which comes last when there is one).
        collapsed: whether the last stream is the collapsed Laplacian.
        index: position of each exponent.
        order: the highest total degree.
        size: ``len(exponents)``, the streams each node carries.
        cross: the truncated product's terms beyond ``a_0 b_g + a_g b_0``:
            ``(g, a, b)`` positions with ``a + b = g``, neither zero.
    """

    def __init__(self, d: int, partials: Iterable[Sequence[int]], collapse: bool = False) -> None:
        wanted = {(0,) * d} | {tuple(alpha.count(i) for i in range(d)) for alpha in map(tuple, partials)}
        squares = {tuple(2 * int(k == i) for k in range(d)) for i in range(d)}
        self.collapsed = collapse and d > 1 and squares <= wanted and all(sum(e) < 2 for e in wanted - squares)
        closed: set[Exponent] = set()
        for top in wanted:
            closed.update(itertools.product(*(range(k + 1) for k in top)))
        if self.collapsed:
            closed -= squares
        self.d = d
        self.exponents: list[Exponent] = sorted(closed, key=lambda e: (sum(e), [-k for k in e]))
        self.index = {e: i for i, e in enumerate(self.exponents)}
        self.degree = [sum(e) for e in self.exponents]
        self.cross = [(self.index[g], self.index[a], self.index[tuple(x - y for x, y in zip(g, a))])
                      for g in self.exponents for a in self.exponents
                      if 0 < sum(a) < sum(g) and all(x <= y for x, y in zip(a, g))]
        if self.collapsed:  # one stream for sum_i c_(2 e_i): its product terms are sum_i a_(e_i) b_(e_i)
            laplacian = len(self.exponents)
            self.degree.append(2)
            self.cross += [(laplacian, self.unit(i), self.unit(i)) for i in range(d)]
        self.order = max(self.degree)
        self.size = len(self.degree)
        #: per power j >= 2 of h: the product terms of h^(j-1) * h that can be non-zero
        self.power_terms = {j: [(g, a, b) for g, a, b in self.cross if self.degree[a] >= j - 1]
                            for j in range(2, self.order + 1)}

    def factorial(self, position: int) -> int:
        """``alpha!`` of the exponent at ``position``: ``d^alpha u = alpha! c_alpha``."""
        return math.prod(math.factorial(k) for k in self.exponents[position])

    def jet(self, coefficients: Sequence[Any]) -> dict[tuple[int, ...], Any]:
        """The partials (sorted tuples of input positions) as multiples of the streams' ``coefficients``.

        A collapsed Laplacian stream stands for the sum of the ``d`` pure second partials'
        coefficients: each is given as ``2/d`` of it, so that their sum -- the only thing a
        collapsed request reads -- is exact.
        """
        jet = {tuple(i for i in range(self.d) for _ in range(exponent[i])): self.factorial(s) * coefficients[s]
               for s, exponent in enumerate(self.exponents)}
        if self.collapsed:
            for i in range(self.d):
                jet[(i, i)] = sympy.Rational(2, self.d) * coefficients[-1]
        return jet

    def unit(self, i: int) -> int | None:
        """The position of the exponent of ``d / dx_i`` (``None`` if the set has no first partials)."""
        return self.index.get(tuple(int(k == i) for k in range(self.d)))

    def __repr__(self) -> str:
        return f"JetAlgebra(d={self.d}, order={self.order}, size={self.size})"


class JetSweep(GraphSweep):
    """:class:`~symnet.kernels._loss.GraphSweep` with the streams of a :class:`JetAlgebra`.

    Streams ``(S, N, width)``, ``S = algebra.size``, in the algebra's order; the input node's
    are the points and the unit directions.  :meth:`forward` and :meth:`backward_to_input`
    are the parent's, with the truncated product and composition as the bilinear and
    elementwise rules.

    >>> from symnet.graph import input, dense, network
    >>> from symnet.kernels._loss import graph_arrays
    >>> x = input(1)
    >>> net = network(x, dense(x, [[1.0]], [0.0], "sin"))                # y = sin x
    >>> sweep = JetSweep(net.graph, JetAlgebra(1, [(0, 0, 0)]))
    >>> S, _ = sweep.forward(graph_arrays(net.graph), np.array([[0.0]]))
    >>> S[net.graph.output][:, 0, 0]                                      # sin x = x - x^3/6 + ...
    array([ 0.        ,  1.        ,  0.        , -0.16666667])
    """

    def __init__(self, graph: Any, algebra: JetAlgebra, fused: bool = True) -> None:
        self.algebra = algebra
        super().__init__(graph, tangents=algebra.order > 0)
        # the elementwise rule as one generated numba loop each way (the numpy rule below is the reference)
        self.fused = fused and algebra.size > 1
        self._rule = jet_module(algebra) if self.fused else None

    def _slope_count(self) -> int:
        return self.algebra.order + 2  # f .. f^(K+1): the reverse sweep differentiates f^(K)

    def streams(self, d: int) -> int:
        return self.algebra.size

    def input_streams(self, X: np.ndarray) -> np.ndarray:
        n, d = X.shape
        streams = np.zeros((self.algebra.size, n, d))
        streams[0] = X
        for i in range(d):
            position = self.algebra.unit(i)
            if position is not None:
                streams[position, :, i] = 1.0
        return streams

    def _multiply(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = super()._multiply(a, b)
        for g, p, q in self.algebra.cross:
            out[g] += a[p] * b[q]
        return out

    def _multiply_back(self, g: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
        ga, gb = super()._multiply_back(g, a, b)
        for r, p, q in self.algebra.cross:
            ga[p] += g[r] * b[q]
            gb[q] += g[r] * a[p]
        return [ga, gb]

    def _activate(self, node: Any, z: np.ndarray, space: Workspace | None = None) -> tuple[np.ndarray, Any]:
        entry = self.passes[node.name]
        if entry is None:
            if node.activation.elementwise:  # linear
                return z, None
            if len(z) > 1:
                raise InputError(f"node {node.name!r}: a {node.activation.name} node acts on a whole layer; "
                                 "derivatives through it need elementwise activations")
            return node.activation.numpy(z), None
        apply, slots = entry
        k, n, w = z.shape
        count = self._slope_count()
        F = empty_array(space, ("F", node.name), (count, n, w))
        apply(np.ascontiguousarray(z[0]), *F, np.empty((slots, n, w)))
        if self._rule is not None:
            out = empty_array(space, ("S", node.name), (k, n, w))
            self._rule.forward(np.ascontiguousarray(z).reshape(k, -1), F.reshape(count, -1), out.reshape(k, -1))
            return out, (F, None)
        out = np.empty_like(z)
        out[0] = F[0]
        np.multiply(z[1:], F[1], out=out[1:])
        powers: dict[int, dict[int, np.ndarray]] = {1: {g: z[g] for g in range(1, k)}}
        for j in range(2, self.algebra.order + 1):
            previous, power = powers[j - 1], {}
            for g, p, q in self.algebra.power_terms[j]:
                term = previous[p] * z[q]
                power[g] = power[g] + term if g in power else term
            powers[j] = power
            weight = F[j] / math.factorial(j)
            for g, values in power.items():
                out[g] += weight * values
        return out, (F, powers)

    def _activation_back(self, node: Any, g: np.ndarray, z: np.ndarray, out: np.ndarray, slopes: Any,
                         space: Workspace | None = None) -> np.ndarray:
        if not node.activation.elementwise or slopes is None:
            return super()._activation_back(node, g, z, out, slopes, space)
        F, powers = slopes
        if powers is None:  # the generated rule, which recomputes the powers of h
            k = len(g)
            share = empty_array(space, ("share", node.name), g.shape)
            self._rule.backward(np.ascontiguousarray(z).reshape(k, -1), F.reshape(len(F), -1),  # type: ignore[union-attr]
                                np.ascontiguousarray(g).reshape(k, -1), share.reshape(k, -1))
            return share
        share = np.empty_like(g)
        share[0] = F[1] * g[0]
        share[1:] = F[1] * g[1:]                      # the adjoint of h, from f'(z0) h
        if len(g) > 1:
            share[0] += F[2] * np.sum(z[1:] * g[1:], axis=0)
        upper: dict[int, np.ndarray] = {}             # adjoints of h^j's coefficients from h^(j+1)
        for j in range(self.algebra.order, 1, -1):
            weight = F[j] / math.factorial(j)
            slope = F[j + 1] / math.factorial(j)
            power, below = powers[j], powers[j - 1]
            current = {}
            for r, values in power.items():
                share[0] += slope * values * g[r]
                current[r] = weight * g[r] + upper[r] if r in upper else weight * g[r]
            lower: dict[int, np.ndarray] = {}
            for r, p, q in self.algebra.power_terms[j]:  # h^j = h^(j-1) * h
                bar = current[r]
                if j == 2:
                    share[p] += bar * z[q]
                else:
                    lower[p] = lower[p] + bar * z[q] if p in lower else bar * z[q]
                share[q] += bar * below[p]
            upper = lower
        return share


class Readout:
    """A request's results as linear combinations of the output node's Taylor coefficients.

    Each result entry is ``sum_s weight_s * c_s`` over the algebra's streams: the partial
    ``d^alpha y`` is ``alpha! c_alpha``, and a quantity (a Laplacian, a biharmonic) is the sum the
    request registry (:mod:`symnet.requests`) writes for it.  :meth:`read` applies it,
    :meth:`adjoint` its transpose.
    """

    def __init__(self, request: Request, algebra: JetAlgebra) -> None:
        d = algebra.d
        self.request, self.algebra = request, algebra
        symbols = [sympy.Symbol(f"c{s}") for s in range(algebra.size)]
        jet = algebra.jet(symbols)
        self.entries: dict[str, list[tuple[tuple[int, ...], list[tuple[int, float]]]]] = {}
        for name in request.outputs:
            rows = []
            for index, expr in request.entries(name, jet, d):
                terms = sympy.Add.make_args(sympy.expand(expr))
                combination = []
                for term in terms:
                    if term == 0:
                        continue
                    coefficient, symbol = term.as_coeff_Mul()
                    combination.append((symbols.index(symbol), float(coefficient)))
                rows.append((index, combination))
            self.entries[name] = rows

    def read(self, streams: np.ndarray) -> dict[str, np.ndarray]:
        """The results ``{name: (N, m, ...)}`` from the output's streams ``(S, N, m)``."""
        _, n, m = streams.shape
        d = self.algebra.d
        results = {}
        for name, rows in self.entries.items():
            array = np.zeros(self.request.shape(name, n, m, d))
            for index, combination in rows:
                target = array[(slice(None), slice(None)) + index]
                for s, weight in combination:
                    target += weight * streams[s]
            results[name] = array
        return results

    def adjoint(self, cotangents: dict[str, np.ndarray], n: int, m: int) -> np.ndarray:
        """The adjoint of the output's streams ``(S, N, m)`` from the results' ``{name: (N, m, ...)}``."""
        seed = np.zeros((self.algebra.size, n, m))
        for name, bar in cotangents.items():
            for index, combination in self.entries[name]:
                part = bar[(slice(None), slice(None)) + index]
                for s, weight in combination:
                    seed[s] += weight * part
        return seed
