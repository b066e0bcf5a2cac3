"""Closed-form coefficients: the polynomial a network computes, or its Taylor expansion.

Both return a :class:`Coefficients` mapping from exponent tuples to coefficients, so
``{(2,): a, (1,): b, (0,): c}`` is ``a*x0**2 + b*x0 + c``.  For 003's parabola net with
symbolic weights the coefficients are formulas of the weights:

>>> from symnet import Network
>>> net = Network.symbolic([1, 1, 1], ["square", "linear"])
>>> coefficients(net)
{(2,): w1_0_0**2*w2_0_0, (1,): 2*b1_0*w1_0_0*w2_0_0, (0,): b1_0**2*w2_0_0 + b2_0}
>>> coefficients(net)[2]  # one input: a plain exponent works too
w1_0_0**2*w2_0_0
"""

from __future__ import annotations

import math
import numbers
from math import factorial
from typing import Any, Mapping, Sequence

import numpy as np
import sympy

from .activations import T
from .errors import InputError, NotPolynomialError
from .limits import check_order, check_polynomial_size, check_terms, polynomial_degree, taylor_terms
from .network import Network
from .program import build, multi_indices

__all__ = ["Coefficients", "coefficients", "taylor"]


class Coefficients(dict):
    """``{exponent tuple: coefficient}``; a monomial that is absent has coefficient 0.

    For one-input networks an integer exponent is accepted as a key: ``coeffs[2]``.
    """

    def __init__(self, items: Any, inputs: Sequence[sympy.Symbol], about: Sequence[sympy.Expr] | None = None) -> None:
        super().__init__(items)
        self.inputs = tuple(inputs)
        self.about = tuple(about) if about is not None else None

    def _key(self, key: Any) -> tuple[int, ...]:
        if isinstance(key, int) and len(self.inputs) == 1:
            key = (key,)
        if not (isinstance(key, tuple) and len(key) == len(self.inputs) and all(isinstance(k, int) and k >= 0 for k in key)):
            raise KeyError(f"{key!r}: coefficients are keyed by exponent tuples of length {len(self.inputs)}")
        return key

    def __getitem__(self, key: Any) -> sympy.Expr:
        key = self._key(key)
        return super().get(key, sympy.S.Zero)

    def __contains__(self, key: object) -> bool:
        try:
            return super().__contains__(self._key(key))
        except KeyError:
            return False

    def as_expr(self) -> sympy.Expr:
        """The polynomial these coefficients describe (in ``x - about`` for a Taylor expansion)."""
        shifts = self.about or (0,) * len(self.inputs)
        return sympy.Add(*(c * sympy.Mul(*((x - a) ** e for x, a, e in zip(self.inputs, shifts, k)))
                           for k, c in self.items()))

    def numeric(self) -> dict[tuple[int, ...], float]:
        """The coefficients as Python floats (all must be numbers)."""
        return {k: float(v) for k, v in self.items()}


def coefficients(net: Network, output: int | None = None, as_poly: bool = False) -> Coefficients | sympy.Poly:
    """The polynomial coefficients of a network whose activations are polynomials.

    Returns a :class:`Coefficients` mapping (exponent tuple -> coefficient), or a SymPy
    ``Poly`` in the inputs with ``as_poly=True``.  Raises :class:`~symnet.NotPolynomialError`
    for other networks; use :func:`taylor` there.  The total degree (the product of the layers'
    degrees) is checked before anything is expanded: past
    :data:`symnet.limits.MAX_POLYNOMIAL_DEGREE` or :data:`symnet.limits.MAX_MONOMIALS` it is a
    :class:`~symnet.LimitError`.
    """
    k = net.output_index(output)
    if not net.is_chain:
        degree = _graph_degree(net.graph)
        check_polynomial_size(degree, net.n_inputs, "coefficients")
        poly = _poly(net.outputs[k], tuple(net.inputs))
        return poly if as_poly else Coefficients(((m, c) for m, c in poly.terms() if c != 0), net.inputs)
    for number, layer in enumerate(net.layers, start=1):
        if not layer.activation.polynomial:
            raise NotPolynomialError(
                f"layer {number}'s activation {layer.activation.name!r} is not a polynomial, so the network "
                "is not a polynomial in its inputs; use symnet.taylor(net, about=..., order=...) for its "
                "Taylor coefficients instead"
            )
    degree = 1
    for layer in net.layers:
        layer_degree = polynomial_degree(layer.activation.form, T)
        degree *= 1 if layer_degree is None else max(layer_degree, 1)
    check_polynomial_size(degree, net.n_inputs, "coefficients")
    poly = _poly(net.outputs[k], tuple(net.inputs))
    if as_poly:
        return poly
    return Coefficients(((m, c) for m, c in poly.terms() if c != 0), net.inputs)


def _graph_degree(graph: Any) -> int:
    """The total degree of a graph whose activations are polynomials, node by node by family
    (linear: the largest of its inputs; elementwise: times the activation's degree; product: the sum);
    :class:`~symnet.NotPolynomialError` naming the first node that is not a polynomial."""
    degrees: dict[str, int] = {"x": 1}
    for node in graph.nodes[1:]:
        args = [degrees[name] for name in node.inputs]
        if node.family == "elementwise":
            activation = node.activation
            if not activation.polynomial:
                raise NotPolynomialError(
                    f"node {node.name!r}'s activation {activation.name!r} is not a polynomial, so the network is "
                    "not a polynomial in its inputs; use symnet.taylor(net, about=..., order=...) for its Taylor "
                    "coefficients instead")
            form_degree = polynomial_degree(activation.form, T)
            degrees[node.name] = args[0] * (1 if form_degree is None else max(form_degree, 1))
        elif node.family == "bilinear":
            degrees[node.name] = args[0] + args[1]
        else:
            degrees[node.name] = max(args)
    return degrees[graph.output]


def _poly(expr: sympy.Expr, gens: tuple[sympy.Symbol, ...]) -> sympy.Poly:
    """``expr`` as a ``Poly`` in ``gens``, built by polynomial arithmetic node by node.

    ``sympy.Poly(expr)`` expands first, and expanding a power of a sum term by term makes every
    multinomial term (``((t + 1/3)**11 + 1/3)**11``: some 700 thousand); ``Poly`` powers multiply
    dense coefficient lists instead.  Each distinct subtree is converted once (a network's
    closed form repeats each neuron in every neuron it feeds).
    """
    done: dict[sympy.Basic, sympy.Poly] = {}
    stack: list[tuple[sympy.Basic, bool]] = [(expr, False)]
    while stack:  # post-order without recursion
        node, ready = stack.pop()
        if node in done:
            continue
        if not (node.is_Add or node.is_Mul or (node.is_Pow and node.exp.is_Integer and node.exp >= 0)):
            done[node] = sympy.Poly(node, *gens)
        elif not ready:
            stack.append((node, True))
            stack.extend((arg, False) for arg in node.args if arg not in done)
        elif node.is_Pow:
            done[node] = done[node.base] ** int(node.exp)
        else:
            parts = [done[arg] for arg in node.args]
            result = parts[0]
            for part in parts[1:]:
                result = result + part if node.is_Add else result * part
            done[node] = result
    return done[expr]


def taylor(net: Network, about: Any, order: int, output: int | None = None) -> Coefficients:
    """Exact Taylor coefficients of one output at the point ``about``, up to total ``order``.

    ``about`` is a number (one-input networks), a sequence with one value per input, or a
    mapping from input (symbol or name) to value; values may be SymPy expressions.  The
    coefficient of ``(x - about)**e`` is ``d^e f(about) / e!``; every exponent up to
    ``order`` is listed, zeros included.  Computed from the chain-rule program evaluated at
    the point, never by ``sympy.series`` of the whole network.  ``order`` is at most
    :data:`symnet.limits.MAX_DERIVATIVE_ORDER` (else a :class:`~symnet.LimitError`).

    >>> net = Network.from_weights([[[1]], [[1]]], [[0], [0]], ["sin", "linear"])
    >>> taylor(net, 0, 5)
    {(0,): 0, (1,): 1, (2,): 0, (3,): -1/6, (4,): 0, (5,): 1/120}
    """
    k = net.output_index(output)
    if not isinstance(order, int) or order < 0:
        raise InputError(f"order must be a non-negative integer, not {order!r}")
    check_order(order, "taylor")
    check_terms(taylor_terms(net.n_inputs, order, net.graph.neurons),
                f"taylor of order {order} in {net.n_inputs} inputs")
    point = _point(net, about)
    indices = multi_indices(net.n_inputs, order)
    program = build(net, indices)
    jet = program.jets[k]
    values = program.substitute_inputs(point, sympy.ImmutableMatrix([jet.get(a, sympy.S.Zero) for a in indices]))
    result = {}
    for alpha, value in zip(indices, values):
        exponent = tuple(alpha.count(i) for i in range(net.n_inputs))
        denominator = 1
        for e in exponent:
            denominator *= factorial(e)
        result[exponent] = value / denominator
    return Coefficients(result, net.inputs, point)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (numbers.Number, np.number, np.bool_, sympy.Basic, str, bytes)) or \
        (isinstance(value, np.ndarray) and value.ndim == 0)


def _about_value(v: Any, name: Any) -> sympy.Expr:
    """One coordinate of ``about``: a real finite number, or a SymPy expression that may be real."""
    wrong = f"about[{name}] is {v!r:.60}"
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, sympy.Basic):
        if not isinstance(v, sympy.Expr) or v.is_real is False or v.has(sympy.nan, sympy.zoo, sympy.oo, sympy.S.NegativeInfinity):
            raise InputError(f"{wrong}; each input's value must be real and finite (a number or a real SymPy "
                             "expression or symbol)")
        if v.is_number and not (v.is_real and v.is_finite):
            raise InputError(f"{wrong}; each input's value must be a real finite number")
        return v
    if isinstance(v, (bool, np.bool_)):
        raise InputError(f"{wrong}, a bool; give the number you mean (1 or 0)")
    if isinstance(v, (numbers.Integral, np.integer)):
        return sympy.Integer(int(v))
    if isinstance(v, (numbers.Real, np.floating)):
        number = float(v)
        if not math.isfinite(number):
            raise InputError(f"{wrong}; each input's value must be a finite number")
        return sympy.Float(number)
    raise InputError(f"{wrong} of type {type(v).__name__}; about values must be real finite numbers or SymPy "
                     "expressions, one per input (a flat sequence, or a mapping from input to value)")


def _point(net: Network, about: Any) -> list[sympy.Expr]:
    if isinstance(about, Mapping):
        values: list[Any] = [None] * net.n_inputs
        for key, value in about.items():
            values[net.input_index(key)] = value
        if any(v is None for v in values):
            raise InputError(f"about must give a value for every input: {', '.join(map(str, net.inputs))}")
    elif _is_scalar(about):
        if net.n_inputs != 1:
            raise InputError(f"about is one number but the network has {net.n_inputs} inputs; give a sequence")
        values = [about]
    else:
        try:
            values = list(about)
        except TypeError as exc:
            raise InputError(f"about must be a number, a sequence of {net.n_inputs} numbers or a mapping from "
                             f"input to number, not {type(about).__name__}") from exc
        if len(values) != net.n_inputs:
            raise InputError(f"about has {len(values)} values but the network has {net.n_inputs} inputs")
    point = [_about_value(v, name) for v, name in zip(values, net.inputs)]
    return point
