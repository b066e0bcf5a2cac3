"""The op table: every tensor operation a network graph is made of, one entry each, by rule family.

A node of a graph computes one feature vector (per point) from the vectors of earlier nodes.
Each op belongs to one *family*, and every consumer of a graph (the chain-rule program, the
closed form, the kernels, the file format, the printers) reads the family's rule, never the
op's name:

``linear``
    each output unit is ``sum_k c_k * input[k]`` plus an offset (:meth:`Op.linear_terms`):
    derivatives pass through unchanged (``d^alpha out = sum_k c_k d^alpha input[k]``), and the
    offset enters the value only.  ``dense`` (``x @ W + b``), ``add``, ``sub``, ``scale``,
    ``shift``, ``rescale`` (constants), ``matmul`` by a constant matrix, ``concat``, ``slice``,
    ``sum``, ``mean``.
``elementwise``
    ``f`` of one input, unit by unit (``activation``): Faa di Bruno's formula with
    ``f^(k)`` from SymPy.  Softmax and log-softmax, activations that mix the units of a
    layer, keep their own rules (exponentials, a sum, a reciprocal or a log, products).
``bilinear``
    the product of two inputs, unit by unit (``mul``): Leibniz's rule.

*Composites* (LayerNorm, RMSNorm, input normalisation, BatchNorm at inference, Fourier
features, the blended residual, a DeepONet's inner product, weight normalisation and
factorisation) are not ops: the builder (:mod:`symnet.graph.builder`) writes them as nodes of
these families, so every consumer handles them with no rule of its own
(:data:`COMPOSITES` lists them).

Adding an op is one :func:`register` call here; it is checked when registered.

>>> OPS["add"].family, OPS["mul"].family, OPS["activation"].family
('linear', 'bilinear', 'elementwise')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import sympy

from ..errors import ShapeError

__all__ = ["COMPOSITES", "FAMILIES", "OPS", "Op", "register"]

#: The rule families, in the order the docs list them.
FAMILIES = ("linear", "elementwise", "bilinear")

#: One output unit of a linear op: ``([(input position, unit, coefficient), ...], offset)``.
LinearUnit = tuple[list[tuple[int, int, sympy.Expr]], sympy.Expr]


@dataclass(frozen=True)
class Op:
    """One kind of node.

    Attributes:
        name: the key in :data:`OPS` and in files.
        family: one of :data:`FAMILIES`.
        arity: how many input nodes it takes (``None``: one or more, as ``concat``).
        params: names of its trainable parameter matrices, in order (``("W", "b")``).
        attrs: names of its fixed attributes (constants, slice bounds, the activation).
        width: ``width(input_widths, node) -> int``, the output width; raises
            :class:`~symnet.ShapeError` (without the node's name: the graph adds it).
        param_shapes: ``param_shapes(input_widths, width, node) -> {name: (rows, cols)}``.
        linear: for the linear family, ``linear(node) -> [LinearUnit per output unit]``.
        doc: one line for the docs' op table.
    """

    name: str
    family: str
    arity: int | None
    params: tuple[str, ...]
    attrs: tuple[str, ...]
    width: Callable[[Sequence[int], Any], int]
    param_shapes: Callable[[Sequence[int], int, Any], Mapping[str, tuple[int, int]]]
    linear: Callable[[Any], list[LinearUnit]] | None = None
    doc: str = ""


#: Every op, by name.
OPS: dict[str, Op] = {}


def register(op: Op) -> None:
    """Add ``op`` to :data:`OPS` (checked: a known family, and a linear rule exactly for linear ops)."""
    if op.family not in FAMILIES:
        raise ValueError(f"op {op.name!r}: family must be one of {FAMILIES}, not {op.family!r}")
    if (op.family == "linear") != (op.linear is not None):
        raise ValueError(f"op {op.name!r}: linear ops, and only they, give their linear terms")
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} is registered already")
    OPS[op.name] = op


# --- shape rules -------------------------------------------------------------------------------

def _same(widths: Sequence[int], node: Any) -> int:
    """Two inputs of one width, or one of width 1 broadcast against the other."""
    a, b = widths
    if a != b and 1 not in (a, b):
        raise ShapeError(f"widths {a} and {b} differ (only a width-1 input broadcasts)")
    return max(a, b)


def _first(widths: Sequence[int], node: Any) -> int:
    return widths[0]


def _no_params(widths: Sequence[int], width: int, node: Any) -> dict[str, tuple[int, int]]:
    return {}


def _unit_at(width: int, unit: int) -> int:
    """The unit of an input of ``width`` that output ``unit`` reads (width 1 broadcasts)."""
    return 0 if width == 1 else unit


# --- linear rules ------------------------------------------------------------------------------

def _dense_terms(node: Any) -> list[LinearUnit]:
    weight, bias = node.weight, node.params["b"]
    return [([(0, i, weight[i, j]) for i in range(weight.shape[0])], bias[0, j]) for j in range(node.width)]


def _matmul_terms(node: Any) -> list[LinearUnit]:
    matrix = node.attrs["matrix"]
    return [([(0, i, matrix[i, j]) for i in range(matrix.shape[0])], sympy.S.Zero) for j in range(node.width)]


def _combine_terms(sign: int) -> Callable[[Any], list[LinearUnit]]:
    def terms(node: Any) -> list[LinearUnit]:
        a, b = node.input_widths
        return [([(0, _unit_at(a, j), sympy.S.One), (1, _unit_at(b, j), sympy.Integer(sign))], sympy.S.Zero)
                for j in range(node.width)]
    return terms


def _scale_terms(node: Any) -> list[LinearUnit]:
    s = node.params["s"]
    return [([(0, j, s[0, _unit_at(s.shape[1], j)])], sympy.S.Zero) for j in range(node.width)]


def _shift_terms(node: Any) -> list[LinearUnit]:
    t = node.params["t"]
    return [([(0, j, sympy.S.One)], t[0, _unit_at(t.shape[1], j)]) for j in range(node.width)]


def _rescale_terms(node: Any) -> list[LinearUnit]:
    scale, offset = node.attrs["scale"], node.attrs["offset"]
    return [([(0, j, scale[0, _unit_at(scale.shape[1], j)])], offset[0, _unit_at(offset.shape[1], j)])
            for j in range(node.width)]


def _concat_terms(node: Any) -> list[LinearUnit]:
    return [([(k, i, sympy.S.One)], sympy.S.Zero) for k, w in enumerate(node.input_widths) for i in range(w)]


def _slice_terms(node: Any) -> list[LinearUnit]:
    start = node.attrs["start"]
    return [([(0, start + j, sympy.S.One)], sympy.S.Zero) for j in range(node.width)]


def _sum_terms(node: Any) -> list[LinearUnit]:
    return [([(0, i, sympy.S.One) for i in range(node.input_widths[0])], sympy.S.Zero)]


def _mean_terms(node: Any) -> list[LinearUnit]:
    n = node.input_widths[0]
    return [([(0, i, sympy.Rational(1, n)) for i in range(n)], sympy.S.Zero)]


# --- shape rules with parameters ---------------------------------------------------------------

def _dense_width(widths: Sequence[int], node: Any) -> int:
    return int(node.attrs["units"])


def _dense_params(widths: Sequence[int], width: int, node: Any) -> dict[str, tuple[int, int]]:
    kind = node.attrs.get("parametrization", "plain")
    if kind == "plain":
        return {"W": (widths[0], width), "b": (1, width)}
    if kind == "weight_norm":
        return {"v": (widths[0], width), "g": (1, width), "b": (1, width)}
    if kind == "factorized":
        return {"s": (1, width), "V": (widths[0], width), "b": (1, width)}
    raise ShapeError(f"parametrization {kind!r} is unknown; use 'plain', 'weight_norm' or 'factorized'")


#: Dense layers' weight parametrisations: how ``W`` is made of the node's parameters.
PARAMETRIZATIONS = ("plain", "weight_norm", "factorized")


def dense_weight(node: Any) -> sympy.ImmutableMatrix:
    """The effective ``W`` of a dense node, ``(fan_in, units)``, as expressions of its parameters.

    ``weight_norm``: ``W[:, j] = g_j v[:, j] / |v[:, j]|`` (Salimans & Kingma);
    ``factorized``: ``W[:, j] = exp(s_j) V[:, j]`` (jaxpi's random weight factorisation).
    """
    kind = node.attrs.get("parametrization", "plain")
    p = node.params
    if kind == "plain":
        return p["W"]
    if kind == "weight_norm":
        v, g = p["v"], p["g"]
        norms = [sympy.sqrt(sympy.Add(*(v[i, j] ** 2 for i in range(v.shape[0])))) for j in range(v.shape[1])]
        return sympy.ImmutableMatrix(v.shape[0], v.shape[1], lambda i, j: g[0, j] * v[i, j] / norms[j])
    s, V = p["s"], p["V"]
    return sympy.ImmutableMatrix(V.shape[0], V.shape[1], lambda i, j: sympy.exp(s[0, j]) * V[i, j])


def _vector_params(name: str) -> Callable[[Sequence[int], int, Any], dict[str, tuple[int, int]]]:
    def shapes(widths: Sequence[int], width: int, node: Any) -> dict[str, tuple[int, int]]:
        given = node.params[name].shape
        if given not in ((1, 1), (1, width)):
            raise ShapeError(f"{name} has shape {given} but (1, {width}) or (1, 1) is needed")
        return {name: given}
    return shapes


def _matmul_width(widths: Sequence[int], node: Any) -> int:
    matrix = node.attrs["matrix"]
    if matrix.shape[0] != widths[0]:
        raise ShapeError(f"the constant matrix has shape {matrix.shape} but the input has width {widths[0]}")
    return int(matrix.shape[1])


def _rescale_width(widths: Sequence[int], node: Any) -> int:
    for name in ("scale", "offset"):
        shape = node.attrs[name].shape
        if shape not in ((1, 1), (1, widths[0])):
            raise ShapeError(f"{name} has shape {shape} but (1, {widths[0]}) or (1, 1) is needed")
    return widths[0]


def _slice_width(widths: Sequence[int], node: Any) -> int:
    start, stop = node.attrs["start"], node.attrs["stop"]
    if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop <= widths[0]):
        raise ShapeError(f"slice [{start}:{stop}] is not a non-empty range inside width {widths[0]}")
    return stop - start


def _activation_width(widths: Sequence[int], node: Any) -> int:
    return widths[0]


register(Op("dense", "linear", 1, ("W", "b"), ("units", "parametrization"), _dense_width, _dense_params,
            _dense_terms, "x @ W + b (W may be weight-normalised or factorised: `parametrization`)"))
register(Op("matmul", "linear", 1, (), ("matrix",), _matmul_width, _no_params, _matmul_terms,
            "x @ C by a fixed constant matrix C (Fourier features' B)"))
register(Op("add", "linear", 2, (), (), _same, _no_params, _combine_terms(1), "a + b (width 1 broadcasts)"))
register(Op("sub", "linear", 2, (), (), _same, _no_params, _combine_terms(-1), "a - b (width 1 broadcasts)"))
register(Op("scale", "linear", 1, ("s",), (), _first, _vector_params("s"), _scale_terms,
            "x * s, s a trainable scalar (1, 1) or vector (1, width)"))
register(Op("shift", "linear", 1, ("t",), (), _first, _vector_params("t"), _shift_terms,
            "x + t, t a trainable scalar (1, 1) or vector (1, width)"))
register(Op("rescale", "linear", 1, (), ("scale", "offset"), _rescale_width, _no_params, _rescale_terms,
            "x * scale + offset by fixed constants (input normalisation, BatchNorm at inference)"))
register(Op("concat", "linear", None, (), (), lambda widths, node: sum(widths), _no_params, _concat_terms,
            "the inputs' features side by side"))
register(Op("slice", "linear", 1, (), ("start", "stop"), _slice_width, _no_params, _slice_terms,
            "features start .. stop - 1"))
register(Op("sum", "linear", 1, (), (), lambda widths, node: 1, _no_params, _sum_terms, "the sum of the features"))
register(Op("mean", "linear", 1, (), (), lambda widths, node: 1, _no_params, _mean_terms, "the mean of the features"))
register(Op("activation", "elementwise", 1, (), ("activation",), _activation_width, _no_params, None,
            "f(x) unit by unit, any registered, traced or user-registered activation "
            "(softmax, log_softmax: the layer)"))
register(Op("mul", "bilinear", 2, (), (), _same, _no_params, None, "a * b unit by unit (width 1 broadcasts)"))

#: The composites the builder writes as nodes of the families above (name -> what it is).
COMPOSITES: dict[str, str] = {
    "softmax": "exp(z_j) / sum_k exp(z_k): the softmax activation on a node",
    "log_softmax": "z_j - log(sum_k exp(z_k)): the log_softmax activation on a node",
    "layer_norm": "(h - mean) / sqrt(var + eps) * gamma + beta: mean, sub, mul, mean, rescale, 1/sqrt, mul, scale, shift",
    "rms_norm": "h / sqrt(mean(h^2) + eps) * gamma: mul, mean, rescale, 1/sqrt, mul, scale",
    "normalize": "(x - mean) / std with fixed mean and std: rescale",
    "batch_norm": "BatchNorm at inference: rescale by fixed constants",
    "fourier_features": "[cos(x B), sin(x B)] with fixed B: matmul, two activations, concat",
    "blend": "alpha * f + (1 - alpha) * h with a trainable alpha: sub, scale, add",
    "inner": "sum_k a_k b_k (a DeepONet's branch . trunk): mul, sum",
    "weight_norm": "dense with W = g v / |v| (parametrization='weight_norm')",
    "factorized": "dense with W = diag(exp(s)) V (parametrization='factorized')",
}
