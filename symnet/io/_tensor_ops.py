"""Arithmetic between symnet tensors and constants, shared by the importers that map a framework's graph.

A framework's ``a + b`` may be two computed tensors (``add``), a tensor and a constant, or two
constants (folded in numpy here); these helpers decide which, and refuse what symnet's ops
cannot hold with a message naming ``where``.  A constant is fixed (a ``rescale`` node: numbers,
buffers, ONNX initializers, anything folded) unless it is one of the framework's trainable
parameters as it stands (a PyTorch ``nn.Parameter`` used in arithmetic), which becomes a
``scale``/``shift`` parameter of the graph, trained by ``fit`` and differentiated by
``param_grad`` as the framework would.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from .. import activations as _activations
from ..graph import builder as g
from .format import UnsupportedLayerError

__all__ = ["Const", "FORMS", "binary", "extremum", "form_activation", "node_name", "number", "power", "prelu", "row",
           "scaled", "tensor"]

#: Elementwise functions the frameworks have and symnet's registry names no activation for, by
#: the name the importers give them: their SymPy forms in ``t`` (kinks and poles are the forms').
FORMS = {"abs": sympy.Abs(_activations.T), "sqrt": sympy.sqrt(_activations.T), "rsqrt": 1 / sympy.sqrt(_activations.T),
         "reciprocal": 1 / _activations.T, "log": sympy.log(_activations.T), "erf": sympy.erf(_activations.T)}


def form_activation(x: g.Tensor, name: str) -> g.Tensor:
    """The activation node of :data:`FORMS`' ``name`` on ``x`` (named by its form, ``t -> 1/t``, as
    files store a form that is no registered activation)."""
    return g.activation(x, _activations.from_form(FORMS[name]))


@dataclass(frozen=True)
class Const:
    """A buffer, parameter, initializer or number folded from them: a numpy array (float64) or a float.

    ``trainable``: the framework trains this value itself (an ``nn.Parameter`` read as it is, not
    folded with anything), so the graph holds it as a parameter rather than a fixed constant.
    """

    value: Any
    trainable: bool = False


def _is_parameter(value: Any) -> bool:
    return isinstance(value, Const) and value.trainable


def number(value: Any, where: str) -> Any:
    """A constant's value (an array or a float); a tensor or anything else is an error."""
    if isinstance(value, Const):
        return value.value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise UnsupportedLayerError(f"{where}: expected a tensor or a number, got {type(value).__name__}")
    return float(value)


def row(value: Any, width: int, where: str) -> Any:
    """A constant as a scalar or a ``(width,)`` row for ``shift``/``scale``; other shapes refused."""
    array = np.asarray(number(value, where), dtype=np.float64)
    if array.size == 1:
        return float(array.reshape(()))
    if array.shape in ((width,), (1, width)):
        return array.reshape(width)
    raise UnsupportedLayerError(f"{where}: a constant of shape {array.shape} does not broadcast over "
                                f"{width} features per point as symnet's (N, {width}) tensors do")


def tensor(value: Any, where: str) -> g.Tensor:
    """``value`` if it is a computed tensor, else an error."""
    if isinstance(value, g.Tensor):
        return value
    raise UnsupportedLayerError(f"{where}: this op needs a tensor computed from the inputs here, got a "
                                f"{'constant' if isinstance(value, Const) else type(value).__name__}")


def binary(kind: str, a: Any, b: Any, where: str) -> Any:
    """``a + b``, ``a - b``, ``a * b`` or ``a / b`` (``kind`` add, sub, mul, div) of tensors and constants."""
    if not isinstance(a, g.Tensor) and not isinstance(b, g.Tensor):
        x, y = (np.asarray(number(v, where), dtype=np.float64) for v in (a, b))
        return Const({"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide}[kind](x, y))
    if kind == "add":
        if isinstance(a, g.Tensor) and isinstance(b, g.Tensor):
            return g.add(a, b)
        t, c = (a, b) if isinstance(a, g.Tensor) else (b, a)
        return g.shift(t, row(c, t.width, where)) if _is_parameter(c) else g.rescale(t, 1.0, row(c, t.width, where))
    if kind == "sub":
        if isinstance(a, g.Tensor) and isinstance(b, g.Tensor):
            return g.sub(a, b)
        if isinstance(a, g.Tensor):
            offset = -np.asarray(row(b, a.width, where))  # x - p: a shift by -p, trained as such
            return g.shift(a, offset) if _is_parameter(b) else g.rescale(a, 1.0, offset)
        if _is_parameter(a):
            return g.shift(g.rescale(b, -1.0), row(a, b.width, where))
        return g.rescale(b, -1.0, row(a, b.width, where))
    if kind == "mul":
        if isinstance(a, g.Tensor) and isinstance(b, g.Tensor):
            return g.mul(a, b)
        t, c = (a, b) if isinstance(a, g.Tensor) else (b, a)
        return g.scale(t, row(c, t.width, where)) if _is_parameter(c) else g.rescale(t, row(c, t.width, where))
    if isinstance(b, g.Tensor):  # a / b = a * (1/b): the reciprocal an activation (its pole where b = 0)
        return binary("mul", a, form_activation(b, "reciprocal"), where)
    divisor = np.asarray(row(b, a.width, where), dtype=np.float64)
    if np.any(divisor == 0):
        raise UnsupportedLayerError(f"{where}: division by a constant with a zero entry")
    reciprocal = 1.0 / divisor if divisor.ndim else 1.0 / float(divisor)
    return g.scale(a, reciprocal) if _is_parameter(b) else g.rescale(a, reciprocal)  # x / p: a scale by 1/p


def extremum(kind: str, a: Any, b: Any, where: str) -> Any:
    """``max(a, b)`` or ``min(a, b)`` (``kind`` max, min) unit by unit, written with one relu:
    ``a + relu(b - a)`` and ``a - relu(a - b)``; with a constant ``c``, ``t + relu(c - t)`` and
    ``t - relu(t - c)`` (``relu(t)`` itself for ``max(t, 0)``).  The relu's kink is
    where the two are equal, and there symnet's ``relu'(0) = 1/2`` gives the mean of the two slopes."""
    if kind not in ("max", "min"):
        raise ValueError(f"extremum: kind {kind!r}")
    if not isinstance(a, g.Tensor) and not isinstance(b, g.Tensor):
        x, y = (np.asarray(number(v, where)) for v in (a, b))
        return Const((np.maximum if kind == "max" else np.minimum)(x, y))
    if isinstance(a, g.Tensor) and isinstance(b, g.Tensor):
        if kind == "max":
            return g.add(a, g.activation(g.sub(b, a), "relu"))
        return g.sub(a, g.activation(g.sub(a, b), "relu"))
    t, c = (a, b) if isinstance(a, g.Tensor) else (b, a)
    c = np.asarray(row(c, t.width, where), dtype=np.float64)
    if not np.all(np.isfinite(c)):
        raise UnsupportedLayerError(f"{where}: {kind} with a constant that is not finite")
    if kind == "max" and not np.any(c):
        return g.activation(t, "relu")
    if c.ndim == 0 or np.all(c == c.reshape(-1)[0]):  # one bound: Max(t, c) itself, exact for any t, inf too
        bound = sympy.Float(float(c.reshape(-1)[0]))
        form = (sympy.Max if kind == "max" else sympy.Min)(_activations.T, bound)
        return g.activation(t, _activations.from_form(form))
    # a bound per feature: max(t, c) = t + relu(c - t), min(t, c) = t - relu(t - c), exactly t on
    # t's side of c (the form c - relu(c - t) cancels there); an infinite t gives NaN
    sign = 1.0 if kind == "max" else -1.0
    kinked = g.activation(g.rescale(t, -sign, sign * c), "relu")
    return g.add(t, kinked) if kind == "max" else g.sub(t, kinked)


def prelu(x: g.Tensor, alpha: Any, trainable: bool = True) -> g.Tensor:
    """``max(0, x) + alpha * min(0, x)`` (PReLU) as ``relu(x) + alpha * (x - relu(x))``: one relu
    node (its kink at 0), a ``sub`` and a ``scale`` whose ``s`` is ``alpha`` -- a parameter of the
    network, trained with the rest (a number, or one per feature); a fixed ``rescale`` when the
    framework does not train ``alpha`` (``trainable=False``: a buffer, ``requires_grad=False``)."""
    positive = g.activation(x, "relu")
    negative = g.sub(x, positive)
    return g.add(positive, g.scale(negative, alpha) if trainable else g.rescale(negative, alpha))


def scaled(value: Any, factor: float, where: str) -> Any:
    """``factor * value`` for a tensor (a fixed ``rescale``) or a constant."""
    if isinstance(value, g.Tensor):
        return g.rescale(value, factor)
    return Const(np.asarray(number(value, where), dtype=np.float64) * factor)


def power(base: Any, exponent: Any, where: str) -> Any:
    """``base ** exponent`` with a constant exponent: ``square``, or a natural power as an activation."""
    if not isinstance(base, g.Tensor):
        if isinstance(exponent, g.Tensor):
            raise UnsupportedLayerError(f"{where}: a power with a tensor exponent is not supported")
        return Const(np.power(np.asarray(number(base, where), dtype=np.float64), number(exponent, where)))
    p = np.asarray(number(exponent, where), dtype=np.float64)
    if p.size != 1 or not math.isfinite(float(p.reshape(-1)[0])):
        raise UnsupportedLayerError(f"{where}: the exponent must be one finite number, got shape {p.shape}")
    p = float(p.reshape(-1)[0])
    if p == 2:
        return g.activation(base, "square")
    if p == 1:
        return base
    named = {-1.0: "reciprocal", 0.5: "sqrt", -0.5: "rsqrt"}
    if p in named:
        return form_activation(base, named[p])
    if p != int(p) or p < 0:
        raise UnsupportedLayerError(f"{where}: x ** {p:g}; symnet imports powers with a natural exponent, and "
                                    "x ** -1, x ** 0.5 and x ** -0.5 (reciprocal, sqrt, rsqrt)")
    return g.activation(base, _activations.from_form(_activations.T ** int(p)))


def node_name(name: str, taken: set[str], prefix: str) -> str:
    """A framework's node or layer name as a symnet node name: an ASCII identifier of at most 60
    characters, starting with a letter (else ``prefix`` + ``_``), never the input's ``x``, not in ``taken``
    (which it joins).

    >>> taken = set()
    >>> node_name("/0/Gemm", taken, "n"), node_name("/0/Gemm", taken, "n"), node_name("x", taken, "n")
    ('n_0_Gemm', 'n_0_Gemm_1', 'n_x')
    """
    base = re.sub(r"[^A-Za-z0-9_]", "_", name)[:56].strip("_") or "node"
    base = base if base[0].isalpha() else f"{prefix}_{base}"
    base = f"{prefix}_x" if base == "x" else base
    candidate, k = base, 1
    while candidate in taken:
        candidate, k = f"{base}_{k}", k + 1
    taken.add(candidate)
    return candidate
