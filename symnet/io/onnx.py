"""Import ONNX models: the protobuf is parsed, never executed, and mapped op by op to a symnet graph.

ONNX is the way in for any framework symnet has no importer of its own for: JAX/Flax
(``jax2onnx``), TensorFlow (``tf2onnx``), scikit-learn, and PyTorch or Keras models saved as
``.onnx``.  :func:`from_onnx` reads the file with the ``onnx`` package (``onnx.load`` with
``load_external_data=False``: nothing in the file runs, no file it names is read yet), then
maps each node through one opset-aware table, :data:`OPS`, to :mod:`symnet.graph.builder`
calls; initializers and ``Constant`` nodes are constants, folded in numpy where an op combines
only constants.  Shape vectors that hold the batch size (``x.view(x.size(0), -1)`` exported
with a dynamic batch) are evaluated with N kept as a symbol, so that their Reshape can be read
(see the shapes section below).  Gemm/MatMul weights and a PRelu slope are the graph's parameters; any other
constant an op applies to a tensor (``Add``, ``Mul``, ``Div``...) is a fixed ``rescale``: an ONNX
file does not say which tensors its framework trained.

Safety, as for every file: the model's size is bounded before parsing
(:data:`MAX_ONNX_BYTES`), every constant's size before it is converted
(:data:`MAX_TENSOR_VALUES`); a tensor stored as external data is read only from a plain file
inside the model's own folder (no absolute path, no ``..``, no link leading out), within its
declared offset and length; ONNX functions and custom domains are refused; names from the file
are printed only through :func:`~symnet.io.safe_text`.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import activations as _activations
from ..graph import builder as g
from ..network import Network
from ._expr import safe_text
from ._tensor_ops import Const, binary, extremum, form_activation, node_name, number, power, prelu, row, scaled, tensor
from ..errors import SymnetError
from .format import FileFormatError, UnsupportedLayerError
from .shapes import BATCH, MAX_SHAPE_ENTRIES, combine, resolve, shown

__all__ = ["MAX_ONNX_BYTES", "MAX_SHAPE_ENTRIES", "MAX_TENSOR_VALUES", "OPS", "from_onnx", "op_table"]

#: The largest ``.onnx`` file :func:`from_onnx` parses (checked before reading it).
MAX_ONNX_BYTES = 2**31 - 1
#: The most numbers one initializer or constant may hold (checked from its declared shape).
MAX_TENSOR_VALUES = 100_000_000
#: The most nodes a graph may have.
MAX_ONNX_NODES = 10_000
#: The most features one feature may be expanded to (``Expand`` of an ``(N, 1)`` value).
MAX_EXPANDED_FEATURES = 100_000


class _Node:
    """One ONNX node as a converter sees it: its attributes decoded, its inputs' values, where it is."""

    def __init__(self, proto: Any, inputs: list[Any], opset: int, where: str, squeezed: set[str],
                 uses: Counter[str]) -> None:
        import onnx

        self.proto, self.inputs, self.opset, self.where = proto, inputs, opset, where
        self.uses = uses  # how many nodes and outputs read each value
        self.squeezed = squeezed  # names of the values ONNX holds as (N,): one column here
        self.attrs: dict[str, Any] = {}
        for attr in proto.attribute:
            value = onnx.helper.get_attribute_value(attr)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            self.attrs[attr.name] = value

    def attr(self, name: str, default: Any) -> Any:
        return self.attrs.get(name, default)

    def x(self, k: int = 0) -> g.Tensor:
        return tensor(self.inputs[k], self.where)

    def const(self, k: int, what: str) -> np.ndarray:
        if k >= len(self.inputs) or self.inputs[k] is None:
            raise UnsupportedLayerError(f"{self.where}: needs its {what} input")
        value = self.inputs[k]
        if isinstance(value, (g.Tensor, _Batched)):
            raise UnsupportedLayerError(f"{self.where}: its {what} is computed from the inputs; symnet reads a "
                                        "constant there")
        if isinstance(value, _Dims):
            raise UnsupportedLayerError(f"{self.where}: its {what} is {value}, which depends on the batch size N; "
                                        "symnet reads a constant there")
        return np.asarray(number(value, self.where))

    def squeeze(self, t: g.Tensor) -> g.Tensor:
        """Mark this node's outputs as values ONNX holds as ``(N,)`` (a scalar Gather, a reduction without
        keepdims)."""
        self.squeezed.update(name for name in self.proto.output if name)
        return t

    def is_squeezed(self, k: int) -> bool:
        return k < len(self.proto.input) and self.proto.input[k] in self.squeezed

    def optional(self, k: int) -> Any:
        return self.inputs[k] if k < len(self.inputs) and self.inputs[k] is not None else None


def _feature_axis(axis: Any, where: str) -> None:
    if axis not in (-1, 1):
        raise UnsupportedLayerError(f"{where}: axis {axis!r}; symnet's tensors are (N, features) and its ops act on "
                                    "the features (axis 1 or -1)")


def _activation(name: str, **params: float) -> Callable[[_Node], Any]:
    def convert(node: _Node) -> Any:
        return g.activation(node.x(), _activations.activation(name, **params) if params else name)
    return convert


def _binary(kind: str) -> Callable[[_Node], Any]:
    def convert(node: _Node) -> Any:
        a, b = node.inputs[0], node.inputs[1]
        if isinstance(a, Const) and isinstance(b, Const) and np.asarray(a.value).dtype.kind in "iu" \
                and np.asarray(b.value).dtype.kind in "iu":  # ONNX integer arithmetic: Div truncates
            x, y = np.asarray(a.value), np.asarray(b.value)
            if kind == "div":
                if np.any(y == 0):
                    raise UnsupportedLayerError(f"{node.where}: integer division by zero")
                return Const(np.trunc(x / y).astype(np.int64))
            return Const({"add": np.add, "sub": np.subtract, "mul": np.multiply}[kind](x, y))
        if kind == "add":
            biased = _bias_of_matmul(node)
            if biased is not None:
                return biased
        return binary(kind, a, b, node.where)
    return convert


def _bias_of_matmul(node: _Node) -> g.Tensor | None:
    """``MatMul`` then ``Add`` of a constant row, the MatMul read by this Add alone: one dense node
    whose bias is that row -- a parameter, as the framework that wrote ``x @ W + b`` trained it
    (any other constant an ``Add`` applies is fixed)."""
    for k in (0, 1):
        t, c = node.inputs[k], node.inputs[1 - k]
        if not (isinstance(t, g.Tensor) and t.op == "dense" and isinstance(c, Const)) or \
                node.uses[node.proto.input[k]] != 1 or t.attrs.get("parametrization", "plain") != "plain":
            continue
        bias = np.asarray(number(c, node.where), dtype=np.float64)
        if bias.shape not in ((t.width,), (1, t.width)) or any(v != 0 for v in t.params["b"]):
            continue
        return g.dense(t.args[0], t.params["W"], bias.reshape(t.width))
    return None


def _gemm(node: _Node) -> Any:
    a = node.x()
    if node.attr("transA", 0):
        raise UnsupportedLayerError(f"{node.where}: Gemm with transA=1 transposes the points; symnet reads transA=0")
    b = node.const(1, "B").astype(np.float64)
    b = b.T if node.attr("transB", 0) else b
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    bias = None
    if node.optional(2) is not None:
        c = np.asarray(number(node.inputs[2], node.where), dtype=np.float64)
        if c.size not in (1, b.shape[1]):
            raise UnsupportedLayerError(f"{node.where}: a bias C of shape {c.shape} for {b.shape[1]} units")
        bias = beta * np.broadcast_to(c.reshape(-1) if c.size > 1 else c.reshape(()), (b.shape[1],))
    return g.dense(a, alpha * b, bias)


def _matmul(node: _Node) -> Any:
    a, b = node.inputs[0], node.inputs[1]
    if isinstance(a, _Batched) or isinstance(b, _Batched):
        return _batched_matmul(node)
    if not isinstance(a, g.Tensor):
        return Const(np.asarray(number(a, node.where)) @ np.asarray(number(b, node.where)))
    matrix = node.const(1, "second factor").astype(np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != a.width:
        raise UnsupportedLayerError(f"{node.where}: x @ B with B of shape {matrix.shape} on {a.width} features")
    return g.dense(a, matrix, None)


def _batched_matmul(node: _Node) -> _Batched:
    """``(N, 1, w) @ (N, w, 1)``: one number per point, the inner product of the two ``(N, w)``
    tensors (``sum_k a_k b_k``, Keras' ``Dot`` as its exporter writes it)."""
    a, b = node.inputs[0], node.inputs[1]
    if isinstance(a, _Batched) and isinstance(b, _Batched) and a.shape == (1, a.tensor.width) \
            and b.shape == (b.tensor.width, 1) and a.tensor.width == b.tensor.width:
        return _Batched(g.inner(a.tensor, b.tensor), (1, 1))
    kinds = [shown([BATCH, *v.shape]) if isinstance(v, _Batched) else "(N, w)" if isinstance(v, g.Tensor)
             else "a constant" for v in (a, b)]
    raise UnsupportedLayerError(f"{node.where}: a batched MatMul of {kinds[0]} by {kinds[1]}; symnet reads a row "
                                "(N, 1, w) by a column (N, w, 1) of the same w, the inner product (Keras' Dot)")


def _leaky(node: _Node) -> Any:
    return g.activation(node.x(), _activations.activation("leaky_relu", alpha=float(node.attr("alpha", 0.01))))


def _elu(node: _Node) -> Any:
    return g.activation(node.x(), _activations.activation("elu", alpha=float(node.attr("alpha", 1.0))))


def _celu(node: _Node) -> Any:
    """``max(0, x) + min(0, a (exp(x / a) - 1))``, which is ``a elu(x / a)``: elu itself at ``a = 1``."""
    alpha = float(node.attr("alpha", 1.0))
    if not math.isfinite(alpha) or alpha <= 0:
        raise UnsupportedLayerError(f"{node.where}: Celu(alpha={alpha}) needs a finite alpha > 0")
    elu = _activations.activation("elu", alpha=1.0)
    if alpha == 1.0:
        return g.activation(node.x(), elu)
    return g.rescale(g.activation(g.rescale(node.x(), 1 / alpha), elu), alpha)


def _selu(node: _Node) -> Any:
    alpha, gamma = float(node.attr("alpha", 1.67326319217681884765625)), float(node.attr("gamma", 1.05070102214813232421875))
    if abs(alpha - 1.6732632423543772) > 1e-6 or abs(gamma - 1.0507009873554805) > 1e-6:
        raise UnsupportedLayerError(f"{node.where}: Selu(alpha={alpha}, gamma={gamma}) is not the standard selu")
    return g.activation(node.x(), "selu")


def _gelu(node: _Node) -> Any:
    approximate = node.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise UnsupportedLayerError(f"{node.where}: Gelu(approximate={safe_text(approximate, 20)})")
    return g.activation(node.x(), "gelu_tanh" if approximate == "tanh" else "gelu")


def _hard_sigmoid(node: _Node) -> Any:
    alpha, beta = float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))
    if abs(alpha - 1 / 6) > 1e-7 or beta != 0.5:
        raise UnsupportedLayerError(f"{node.where}: HardSigmoid(alpha={alpha}, beta={beta}); symnet's hard_sigmoid is "
                                    "alpha=1/6, beta=0.5 (PyTorch's and Keras 3's)")
    return g.activation(node.x(), "hard_sigmoid")


def _clip(node: _Node) -> Any:
    if node.opset < 11:
        low, high = node.attr("min", -math.inf), node.attr("max", math.inf)
    else:
        low = float(node.const(1, "min")) if node.optional(1) is not None else -math.inf
        high = float(node.const(2, "max")) if node.optional(2) is not None else math.inf
    if low == 0 and high == math.inf:
        return g.activation(node.x(), "relu")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise UnsupportedLayerError(f"{node.where}: Clip to [{low}, {high}]; symnet reads two finite bounds or [0, inf)")
    return g.activation(node.x(), _activations.activation("hardtanh", min_val=low, max_val=high))


def _prelu(node: _Node) -> Any:
    """``x < 0 ? slope * x : x`` with a constant slope, one or one per feature (unidirectional
    broadcasting on ``(N, C)``): ``relu(x) + slope * (x - relu(x))``, the slope a ``scale``'s parameter."""
    x = node.x()
    return prelu(x, row(Const(node.const(1, "slope").astype(np.float64)), x.width, node.where))


def _extremum(kind: str) -> Callable[[_Node], Any]:
    """``Max``/``Min`` of one or more inputs, folded left: ``a + relu(b - a)``, ``a - relu(a - b)``."""
    def convert(node: _Node) -> Any:
        if not node.inputs or any(v is None for v in node.inputs):
            raise UnsupportedLayerError(f"{node.where}: needs one or more inputs")
        out = node.inputs[0]
        for value in node.inputs[1:]:
            out = extremum(kind, out, value, node.where)
        return out
    return convert


def _pow(node: _Node) -> Any:
    return power(node.inputs[0], node.inputs[1], node.where)


def _neg(node: _Node) -> Any:
    return scaled(node.inputs[0], -1.0, node.where)


def _identity(node: _Node) -> Any:
    return node.inputs[0]


def _constant(node: _Node) -> Any:
    """A Constant's ``value`` tensor, or its ``value_int(s)``/``value_float(s)`` (opset 12, as PyTorch's
    newer exporter writes shapes)."""
    import onnx

    keys = sorted(node.attrs)
    if keys == ["value"]:
        return Const(_array(node.attrs["value"], node.where, onnx))
    if keys in (["value_int"], ["value_ints"], ["value_float"], ["value_floats"]) and node.opset >= 12:
        given = node.attrs[keys[0]]
        if isinstance(given, (list, tuple)) and len(given) > MAX_TENSOR_VALUES:
            raise FileFormatError(f"{node.where}: {len(given):,} values, more than symnet.io.onnx.MAX_TENSOR_VALUES")
        array = np.asarray(given, dtype=np.int64 if "int" in keys[0] else np.float64)
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise FileFormatError(f"{node.where}: holds a non-finite value")
        return Const(array)
    raise UnsupportedLayerError(f"{node.where}: a Constant given by {safe_text(keys, 60)}; symnet reads value=, "
                                "value_int(s) and value_float(s)")


def _concat(node: _Node) -> Any:
    """Concat of tensors over the features; of constants and shape vectors folded (any axis)."""
    if not any(isinstance(v, g.Tensor) for v in node.inputs):
        axis = int(node.attr("axis", 0))
        if _has_dims(node):
            return _dims(np.concatenate([_entries(v, node.where) for v in node.inputs], axis=axis), node.where)
        return Const(np.concatenate([np.asarray(number(v, node.where)) for v in node.inputs], axis=axis))
    if _has_dims(node):
        raise UnsupportedLayerError(f"{node.where}: concatenates tensors with a shape vector holding the batch "
                                    "size N")
    _feature_axis(node.attr("axis", None), node.where)
    return g.concat(*(tensor(v, node.where) for v in node.inputs))


def _slice_args(node: _Node) -> tuple[list[int], list[int], list[int] | None, list[int] | None]:
    """Slice's starts, ends, axes and steps: attributes before opset 10, inputs from it."""
    if node.opset < 10:
        if "starts" not in node.attrs or "ends" not in node.attrs or len(node.inputs) > 1:
            raise UnsupportedLayerError(f"{node.where}: opset {node.opset}'s Slice takes starts and ends as attributes")
        starts, ends, axes = node.attr("starts", []), node.attr("ends", []), node.attr("axes", None)
        steps = None
    else:
        starts, ends = node.const(1, "starts").tolist(), node.const(2, "ends").tolist()
        axes = node.const(3, "axes").tolist() if node.optional(3) is not None else None
        steps = node.const(4, "steps").tolist() if node.optional(4) is not None else None
    if node.opset >= 10 and {"starts", "ends", "axes"} & set(node.attrs):
        raise UnsupportedLayerError(f"{node.where}: opset {node.opset}'s Slice takes starts and ends as inputs")
    return list(starts), list(ends), None if axes is None else list(axes), None if steps is None else list(steps)


def _slice(node: _Node) -> Any:
    """A slice of the features; of constants and shape vectors folded (any axes and steps, as numpy slices)."""
    starts, ends, axes, steps = _slice_args(node)
    data = node.inputs[0]
    if not isinstance(data, g.Tensor):
        array = _entries(data, node.where) if isinstance(data, _Dims) else np.asarray(number(data, node.where))
        index = [slice(None)] * array.ndim
        for axis, start, end, step in zip(range(len(starts)) if axes is None else axes, starts, ends,
                                          steps or [1] * len(starts)):
            index[int(axis)] = slice(int(start), int(end), int(step))  # numpy clamps as ONNX does
        part = array[tuple(index)]
        return _dims(part, node.where) if isinstance(data, _Dims) else Const(part)
    x = node.x()
    axes = list(range(len(starts))) if axes is None else list(axes)
    if len({a % 2 for a in axes}) != len(axes):
        raise UnsupportedLayerError(f"{node.where}: a Slice naming one axis twice")
    if len(starts) != len(ends) or len(axes) != len(starts) or any(s not in (None, 1) for s in steps or []):
        raise UnsupportedLayerError(f"{node.where}: a Slice with steps or mismatched starts/ends")
    bounds = (0, x.width)
    for axis, start, end in zip(axes, starts, ends):
        if axis == 0 and start == 0 and end >= 2**62:
            continue  # every point
        _feature_axis(axis, node.where)
        bounds = slice(int(start), int(min(end, 2**62))).indices(x.width)[:2]
    if bounds[1] <= bounds[0]:
        raise UnsupportedLayerError(f"{node.where}: an empty slice of {x.width} features")
    return x if bounds == (0, x.width) else g.slice(x, *bounds)


def _split(node: _Node) -> Any:
    x = node.x()
    _feature_axis(node.attr("axis", 0), node.where)
    outputs = len(node.proto.output)
    if (node.opset >= 13 and "split" in node.attrs) or (node.opset < 13 and len(node.inputs) > 1):
        raise UnsupportedLayerError(f"{node.where}: split given as {'an attribute' if 'split' in node.attrs else 'an input'}"
                                    f", which opset {node.opset} does not have")
    if outputs < 1:
        raise UnsupportedLayerError(f"{node.where}: a Split with no outputs")
    if node.opset >= 13 and node.optional(1) is not None:
        sizes = [int(v) for v in node.const(1, "split").tolist()]
    elif node.opset < 13 and "split" in node.attrs:
        sizes = [int(v) for v in node.attrs["split"]]
    else:
        step = -(-x.width // outputs)
        sizes = [min(step, x.width - s) for s in range(0, x.width, step)]
    if sum(sizes) != x.width or len(sizes) != outputs or min(sizes) < 1:
        raise UnsupportedLayerError(f"{node.where}: sizes {sizes} do not split {x.width} features into {outputs}")
    edges = np.cumsum([0, *sizes])
    return tuple(g.slice(x, int(a), int(b)) for a, b in zip(edges, edges[1:]))


def _gather(node: _Node) -> Any:
    data = node.inputs[0]
    if isinstance(data, _Dims):
        return _dims(np.take(data.dims, node.const(1, "indices").astype(np.int64), axis=int(node.attr("axis", 0))),
                     node.where)
    if not isinstance(data, g.Tensor):
        return Const(np.take(np.asarray(number(data, node.where)), node.const(1, "indices").astype(np.int64),
                             axis=int(node.attr("axis", 0))))
    _feature_axis(node.attr("axis", 0), node.where)
    index = node.const(1, "indices")
    if index.ndim > 1 or index.size != 1:
        raise UnsupportedLayerError(f"{node.where}: Gather of {index.size} features; symnet reads one index")
    i = int(index.reshape(-1)[0])
    i = i + data.width if i < 0 else i
    if not 0 <= i < data.width:
        raise UnsupportedLayerError(f"{node.where}: feature {i} of {data.width}")
    column = g.slice(data, i, i + 1)
    return node.squeeze(column) if index.ndim == 0 else column  # a 0-d index drops the axis: (N,)


def _transpose(node: _Node) -> Any:
    """Transpose: folded on constants (any permutation); the identity on ``(N, features)`` only
    for ``perm=[0, 1]`` (any other swaps the points with the features)."""
    data, perm = node.inputs[0], node.attr("perm", None)
    if isinstance(data, g.Tensor):
        if node.is_squeezed(0) and perm in (None, [0]) or list(perm or []) == [0, 1]:
            return data
        raise UnsupportedLayerError(f"{node.where}: Transpose(perm={perm}) of an (N, {data.width}) value swaps the "
                                    "points with the features; symnet reads Transpose of constants (a weight "
                                    "matrix) and perm=[0, 1]")
    array = np.asarray(number(data, node.where))
    perm = list(range(array.ndim))[::-1] if perm is None else [int(p) for p in perm]
    if sorted(perm) != list(range(array.ndim)):
        raise UnsupportedLayerError(f"{node.where}: perm {perm} is not a permutation of the {array.ndim} axes")
    return Const(np.transpose(array, perm))


def _expand(node: _Node) -> Any:
    """Expand (numpy broadcasting both ways): folded on constants; on ``(N, w)`` the identity
    when the features stay ``w``, ``w`` copies of a single feature otherwise."""
    data, shape = node.inputs[0], node.const(1, "shape").astype(np.int64).reshape(-1)
    if not isinstance(data, g.Tensor):
        array = np.asarray(number(data, node.where))
        try:
            target = np.broadcast_shapes(array.shape, tuple(int(s) for s in shape))
        except ValueError:
            raise UnsupportedLayerError(f"{node.where}: shape {array.shape} does not broadcast to "
                                        f"{tuple(int(s) for s in shape)}") from None
        if math.prod(target) > MAX_TENSOR_VALUES:
            raise UnsupportedLayerError(f"{node.where}: expands to {target}, more than "
                                        "symnet.io.onnx.MAX_TENSOR_VALUES numbers")
        return Const(np.array(np.broadcast_to(array, target)))
    held = "(N,)" if node.is_squeezed(0) else f"(N, {data.width})"
    keeps_points = shape.size == 0 or (shape.size == 1 and not node.is_squeezed(0)) or \
        (shape.size == 1 and shape[0] == 1) or (shape.size == 2 and shape[0] == 1 and not node.is_squeezed(0))
    if not keeps_points or (shape.size and shape[-1] < 1):
        raise UnsupportedLayerError(f"{node.where}: Expand of an {held} value to shape {shape.tolist()}; symnet "
                                    "reads shapes that keep the points: (1, w) or (w,) (ONNX would broadcast "
                                    "another against the points)")
    features = int(shape[-1]) if shape.size else 1
    if features in (1, data.width):
        return data
    if data.width != 1:
        raise UnsupportedLayerError(f"{node.where}: {data.width} features do not broadcast to {features}")
    if features > MAX_EXPANDED_FEATURES:
        raise UnsupportedLayerError(f"{node.where}: one feature expanded to {features:,}, more than "
                                    f"symnet.io.onnx.MAX_EXPANDED_FEATURES ({MAX_EXPANDED_FEATURES:,})")
    return g.concat(*([data] * features))


_FOLD = {"ReduceSum": np.sum, "ReduceMean": np.mean, "ReduceL2": lambda a, axis, keepdims: np.sqrt(
    np.sum(a * a, axis=axis, keepdims=keepdims))}
#: The opset from which each reduction takes its axes as an input rather than an attribute.
_AXES_INPUT_FROM = {"ReduceSum": 13}


def _reduce(kind: str) -> Callable[[_Node], Any]:
    """A reduction: over the features of a tensor (sum, mean), or folded on constants (any axes, also L2)."""
    def convert(node: _Node) -> Any:
        axes_as_input = node.opset >= _AXES_INPUT_FROM.get(kind, 18)  # where the opset moved axes to an input
        if ("axes" in node.attrs) == axes_as_input and ("axes" in node.attrs or node.optional(1) is not None):
            raise UnsupportedLayerError(f"{node.where}: axes given as {'an attribute' if 'axes' in node.attrs else 'an input'}"
                                        f", which opset {node.opset} does not have")
        axes = node.attr("axes", None)
        if axes is None and node.optional(1) is not None:
            axes = node.const(1, "axes").tolist()
        keep = bool(node.attr("keepdims", 1))
        if "noop_with_empty_axes" in node.attrs and not axes_as_input:
            raise UnsupportedLayerError(f"{node.where}: noop_with_empty_axes, which opset {node.opset}'s {kind} "
                                        "does not have")
        if node.attr("noop_with_empty_axes", 0) and not axes:
            return node.inputs[0]  # no axes and the flag: the input unchanged
        if not isinstance(node.inputs[0], g.Tensor):
            value = np.asarray(number(node.inputs[0], node.where), dtype=np.float64)
            axis = None if axes is None or len(axes) == 0 else tuple(int(a) for a in axes)
            return Const(np.asarray(_FOLD[kind](value, axis=axis, keepdims=keep)))
        if kind not in ("ReduceSum", "ReduceMean"):
            raise UnsupportedLayerError(f"{node.where}: {kind} of computed values; symnet folds it on constants only")
        x = node.x()
        if axes is None or list(axes) not in ([1], [-1]):
            raise UnsupportedLayerError(f"{node.where}: a reduction over axes {axes}; symnet reduces over the "
                                        "features (axes [1] or [-1])")
        out = g.mean(x) if kind == "ReduceMean" else g.sum(x)
        return out if keep else node.squeeze(out)
    return convert


def _reshape(node: _Node) -> Any:
    """Reshape: of a tensor the identity when its ``(N, w)`` is kept -- the target a constant or a
    shape vector computed from N (``x.view(x.size(0), -1)``), 0 copying an axis (unless
    ``allowzero``), -1 inferred -- or ``(N, 1)`` to ``(N,)`` and back; of constants folded."""
    data, allowzero = node.inputs[0], node.attr("allowzero", 0)
    target = node.inputs[1] if len(node.inputs) > 1 else None
    shape = _entries(target, node.where).tolist() if isinstance(target, _Dims) else \
        [int(v) for v in node.const(1, "shape").reshape(-1).tolist()]
    if not isinstance(data, (g.Tensor, _Batched)):
        if isinstance(target, _Dims):
            raise UnsupportedLayerError(f"{node.where}: a constant reshaped to {target}, which depends on the batch "
                                        "size N")
        array = _entries(data, node.where) if isinstance(data, _Dims) else np.asarray(number(data, node.where))
        if not allowzero:
            shape = [array.shape[k] if v == 0 and k < array.ndim else v for k, v in enumerate(shape)]
        part = array.reshape(shape)
        return _dims(part, node.where) if isinstance(data, _Dims) else Const(part)
    held = [BATCH, *data.shape] if isinstance(data, _Batched) else [BATCH] if node.is_squeezed(0) else \
        [BATCH, data.width]
    resolved = resolve(shape, held, node.where, zero_copies=not allowzero)
    if isinstance(data, _Batched):
        return _unbatched(data, resolved, node)
    if resolved == [BATCH, data.width]:
        return data  # an (N,) value reshaped to (N, 1) is the column again
    if resolved == [BATCH] and data.width == 1:
        return node.squeeze(data)
    raise UnsupportedLayerError(f"{node.where}: Reshape of an {shown(held)} value to {shown(resolved)}; symnet "
                                f"reads reshapes that keep {shown(held)}")


def _axes(node: _Node) -> list[int]:
    """Unsqueeze's and Squeeze's axes: an attribute before opset 13, an input from it."""
    if node.opset < 13:
        return list(node.attr("axes", []))
    return [int(a) for a in node.const(1, "axes").reshape(-1).tolist()] if node.optional(1) is not None else []


def _unsqueeze(node: _Node) -> Any:
    """An ``(N,)`` value back to ``(N, 1)``; an ``(N, w)`` tensor to ``(N, 1, w)`` (axis 1) or
    ``(N, w, 1)`` (axis 2), a batched MatMul's factor; constants and shape vectors folded."""
    data, axes = node.inputs[0], _axes(node)
    if not isinstance(data, g.Tensor):
        array = _entries(data, node.where) if isinstance(data, _Dims) else np.asarray(number(data, node.where))
        part = np.expand_dims(array, tuple(axes))  # negative axes count from the result's end, as ONNX's do
        return _dims(part, node.where) if isinstance(data, _Dims) else Const(part)
    if node.is_squeezed(0) and axes in ([1], [-1]):
        return data
    if not node.is_squeezed(0) and axes in ([1], [-2]):
        return _Batched(data, (1, data.width))
    if not node.is_squeezed(0) and axes in ([2], [-1]):
        return _Batched(data, (data.width, 1))
    held = "(N,)" if node.is_squeezed(0) else f"(N, {data.width})"
    raise UnsupportedLayerError(f"{node.where}: Unsqueeze over axes {axes} of an {held} value; symnet reads "
                                "Unsqueeze(axes=[1]) of an (N,) value, and of an (N, w) value at axis 1 or 2 as a "
                                "factor of a batched MatMul (Keras' Dot)")


def _squeeze(node: _Node) -> Any:
    """One column to ``(N,)``; an ``(N, 1, w)``/``(N, w, 1)``/``(N, 1, 1)`` value back to ``(N, w)``;
    constants and shape vectors folded."""
    data, axes = node.inputs[0], _axes(node)
    if isinstance(data, _Batched):
        picked = sorted({a % 3 for a in axes})
        if not axes or 0 in picked or any(data.shape[a - 1] != 1 for a in picked):
            raise UnsupportedLayerError(f"{node.where}: Squeeze over axes {axes} of an "
                                        f"{shown([BATCH, *data.shape])} value; symnet reads Squeeze of its axes 1 "
                                        "or 2 of length 1")
        return _unbatched(data, [BATCH, *(v for a, v in enumerate(data.shape, 1) if a not in picked)], node)
    if not isinstance(data, g.Tensor):
        array = _entries(data, node.where) if isinstance(data, _Dims) else np.asarray(number(data, node.where))
        part = np.squeeze(array, axis=tuple(axes) if axes else None)
        return _dims(part, node.where) if isinstance(data, _Dims) else Const(part)
    x = node.x()
    if axes not in ([1], [-1]) or x.width != 1:
        raise UnsupportedLayerError(f"{node.where}: Squeeze over axes {axes} of {x.width} features; symnet "
                                    "reads Squeeze(axes=[1]) of one column")
    return node.squeeze(x)


def _flatten(node: _Node) -> Any:
    """The identity on ``(N, features)`` (an ``(N,)`` value becomes the column), ``(N, 1, w)`` back
    to ``(N, w)``; constants folded."""
    data, axis = node.inputs[0], int(node.attr("axis", 1))
    if not isinstance(data, (g.Tensor, _Batched)):
        array = np.asarray(number(data, node.where))
        axis = axis + array.ndim if axis < 0 else axis
        return Const(array.reshape(math.prod(array.shape[:axis]), -1))
    if axis != 1:
        raise UnsupportedLayerError(f"{node.where}: Flatten(axis={axis}); symnet reads axis=1")
    return _unbatched(data, [BATCH, math.prod(data.shape)], node) if isinstance(data, _Batched) else data


def _layer_norm(node: _Node) -> Any:
    x = node.x()
    _feature_axis(node.attr("axis", -1), node.where)
    gamma = node.const(1, "scale").astype(np.float64).reshape(-1)
    beta = node.const(2, "bias").astype(np.float64).reshape(-1) if node.optional(2) is not None else None
    return g.layer_norm(x, gamma, beta, eps=float(node.attr("epsilon", 1e-5)))


def _batch_norm(node: _Node) -> Any:
    if node.attr("training_mode", 0):
        raise UnsupportedLayerError(f"{node.where}: BatchNormalization in training mode uses each batch's statistics")
    x = node.x()
    gamma, beta, mean, var = (node.const(k, what).astype(np.float64).reshape(-1)
                              for k, what in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
    return g.batch_norm(x, mean, var, gamma, beta, eps=float(node.attr("epsilon", 1e-5)))


def _softmax(name: str) -> Callable[[_Node], Any]:
    """Softmax and LogSoftmax over the features (the axis default changed at opset 13; on (N, features)
    both defaults are the features)."""
    def rule(node: _Node) -> Any:
        axis = node.attr("axis", -1 if node.opset >= 13 else 1)
        _feature_axis(axis, node.where)
        return g.activation(node.x(), name)
    return rule


_FLOAT_TYPES = (1, 10, 11, 16)  # TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16
_INTEGER_TYPES = (2, 3, 4, 5, 6, 7, 12, 13)  # UINT8, INT8, UINT16, INT16, INT32, INT64, UINT32, UINT64


def _cast(node: _Node) -> Any:
    import onnx

    value, to = node.inputs[0], int(node.attr("to", 0))
    if isinstance(value, _Dims):
        if to not in _INTEGER_TYPES:
            raise UnsupportedLayerError(f"{node.where}: a Cast of {value}, which holds the batch size N, to "
                                        f"{safe_text(onnx.TensorProto.DataType.Name(to), 20)}; symnet keeps N a "
                                        "symbol of shapes, not a number the network computes with")
        return value
    if isinstance(value, _Batched):
        if to not in _FLOAT_TYPES:
            raise UnsupportedLayerError(f"{node.where}: a Cast of computed values to "
                                        f"{safe_text(onnx.TensorProto.DataType.Name(to), 20)} rounds them")
        return value
    if isinstance(value, g.Tensor):
        if to not in _FLOAT_TYPES:
            raise UnsupportedLayerError(f"{node.where}: a Cast of computed values to "
                                        f"{safe_text(onnx.TensorProto.DataType.Name(to), 20)} rounds them; symnet "
                                        "reads casts between floating-point types")
        return value
    dtype = onnx.helper.tensor_dtype_to_np_dtype(to)
    array = np.asarray(number(value, node.where)).astype(dtype)
    return Const(array.astype(np.float64) if array.dtype.kind == "f" else array.astype(np.int64))


# --- shapes: a small evaluator for the shape arithmetic exporters write --------------------
#
# ``x.view(x.size(0), -1)`` in a dynamic-batch export, and Keras' Flatten/Reshape, reach their
# Reshape through ``Shape -> Gather -> Unsqueeze -> Concat``: a vector of a few whole numbers, one
# of them the batch size N, which no file can give as a constant.  Those vectors are evaluated
# here with N kept as a symbol (:data:`~symnet.io.shapes.BATCH`; the arithmetic and the reading
# of a Reshape's target are symnet.io.shapes', shared with the PyTorch importer), entry by entry,
# only through the ops of :data:`_SHAPE_OPS` and only up to :data:`MAX_SHAPE_ENTRIES` entries; a
# vector without N is an ordinary integer constant again.  What the evaluator cannot decide (N * 2, N as a float, a
# shape that merges points) is refused with the node named.


#: The ops that read a shape vector holding N.
_SHAPE_OPS = frozenset({"Shape", "Gather", "Slice", "Unsqueeze", "Squeeze", "Concat", "Cast", "Mul", "Add", "Sub",
                       "Div", "Reshape", "Identity"})


@dataclass(frozen=True)
class _Dims:
    """A shape vector (0-d or 1-d, integer) whose entries are whole numbers and at least one N:
    ``dims`` a numpy object array of ``int`` and :data:`BATCH`."""

    dims: np.ndarray

    def __str__(self) -> str:
        return str(self.dims.tolist()) if self.dims.ndim else str(self.dims.item())


def _dims(array: np.ndarray, where: str) -> Any:
    """``array`` (entries ``int`` or N) as a :class:`_Dims` when it holds N, else an int64 constant."""
    array = np.asarray(array, dtype=object)
    if array.ndim > 1 or array.size > MAX_SHAPE_ENTRIES:
        raise UnsupportedLayerError(f"{where}: a shape of shape {array.shape} computed from the batch size N; "
                                    f"symnet evaluates shape vectors of up to {MAX_SHAPE_ENTRIES} entries")
    if any(v is BATCH for v in array.reshape(-1)):
        return _Dims(array)
    return Const(np.array([int(v) for v in array.reshape(-1)], dtype=np.int64).reshape(array.shape))


def _entries(value: Any, where: str) -> np.ndarray:
    """A shape vector's entries (an object array of ``int`` and N), from a :class:`_Dims` or an integer constant."""
    if isinstance(value, _Dims):
        return value.dims
    if isinstance(value, (g.Tensor, _Batched)):
        raise UnsupportedLayerError(f"{where}: combines the batch size N with values computed from the inputs; "
                                    "symnet keeps N a symbol of shapes, not a number the network computes with")
    array = np.asarray(number(value, where))
    if array.dtype.kind not in "iu":
        raise UnsupportedLayerError(f"{where}: combines the batch size N with a {array.dtype} constant; symnet "
                                    "evaluates shapes of whole numbers")
    if array.size > MAX_SHAPE_ENTRIES:
        raise UnsupportedLayerError(f"{where}: combines the batch size N with {array.size:,} numbers; symnet "
                                    f"evaluates shape vectors of up to {MAX_SHAPE_ENTRIES} entries")
    out = np.empty(array.shape, dtype=object)
    out.reshape(-1)[:] = [int(v) for v in array.reshape(-1)]
    return out


def _has_dims(node: _Node) -> bool:
    return any(isinstance(v, _Dims) for v in node.inputs)


def _shape(node: _Node) -> Any:
    """Shape of a tensor: ``[N, w]`` (``[N]`` for a value ONNX holds as ``(N,)``, ``[N, 1, w]`` for an
    unsqueezed one); of a constant or a shape vector, a constant.  ``start``/``end`` (opset 15) slice it."""
    value = node.inputs[0]
    if isinstance(value, g.Tensor):
        full = [BATCH] if node.is_squeezed(0) else [BATCH, value.width]
    elif isinstance(value, _Batched):
        full = [BATCH, *value.shape]
    elif isinstance(value, _Dims):
        full = list(value.dims.shape)
    else:
        full = list(np.asarray(number(value, node.where)).shape)
    if ("start" in node.attrs or "end" in node.attrs) and node.opset < 15:
        raise UnsupportedLayerError(f"{node.where}: start and end, which opset {node.opset}'s Shape does not have")
    start, end = int(node.attr("start", 0)), node.attr("end", None)
    picked = full[slice(*slice(start, None if end is None else int(end)).indices(len(full))[:2])]
    return _dims(np.array(picked, dtype=object), node.where)


def _dims_binary(kind: str) -> Callable[[_Node], Any]:
    """Arithmetic on shape vectors holding N, entry by entry (:func:`~symnet.io.shapes.combine`):
    whole numbers fold as ONNX computes them (Div truncates); N is kept only where it stays N."""

    def convert(node: _Node) -> Any:
        a, b = (_entries(v, node.where) for v in node.inputs[:2])
        a, b = np.broadcast_arrays(a, b)
        out = np.empty(a.shape, dtype=object)
        for k, (x, y) in enumerate(zip(a.reshape(-1), b.reshape(-1))):
            out.reshape(-1)[k] = combine(kind, x, y, node.where)
        return _dims(out, node.where)
    return convert


def _shape_rule(rule: Callable[[_Node], Any], on_dims: Callable[[_Node], Any]) -> Callable[[_Node], Any]:
    """``rule``, except on a node reading a shape vector that holds N: ``on_dims``."""
    def convert(node: _Node) -> Any:
        return on_dims(node) if _has_dims(node) else rule(node)
    return convert


@dataclass(frozen=True)
class _Batched:
    """An ``(N, w)`` tensor that ONNX holds with one more axis of length 1: ``shape`` ``(1, w)`` (an
    ``Unsqueeze`` at axis 1) or ``(w, 1)`` (at axis 2); ``(1, 1)``: the batched product of the two,
    one number per point.  Keras' exporter writes ``Dot`` so; symnet reads such a value only in a
    batched MatMul and back to ``(N, w)`` by Squeeze, Reshape or Flatten."""

    tensor: g.Tensor
    shape: tuple[int, int]


#: The ops that read an unsqueezed ``(N, 1, w)`` value (:class:`_Batched`).
_BATCHED_OPS = frozenset({"MatMul", "Squeeze", "Reshape", "Flatten", "Cast", "Identity", "Dropout", "Shape"})


def _unbatched(value: _Batched, shape: list[Any], node: _Node) -> Any:
    """``value`` reshaped to ``shape`` (resolved: N and whole numbers): back to ``(N, w)``, or ``(N,)``."""
    width = math.prod(value.shape)
    if shape == [BATCH, width]:
        return value.tensor
    if shape == [BATCH] and width == 1:
        return node.squeeze(value.tensor)
    raise UnsupportedLayerError(f"{node.where}: an (N, {value.shape[0]}, {value.shape[1]}) value to "
                                f"{shown(shape)}; symnet reads it back to (N, {width})")


#: Every ONNX op (default domain) symnet reads, what it becomes, and the opsets it is read in.
OPS: dict[str, tuple[Callable[[_Node], Any], str]] = {
    "Gemm": (_gemm, "dense (alpha, beta, transB read)"),
    "MatMul": (_matmul, "dense without bias, by a constant matrix; (N, 1, w) @ (N, w, 1) inner (Keras' Dot)"),
    "Add": (_shape_rule(_binary("add"), _dims_binary("add")), "add, or rescale by a fixed offset"),
    "Sub": (_shape_rule(_binary("sub"), _dims_binary("sub")), "sub, or rescale by a fixed offset"),
    "Mul": (_shape_rule(_binary("mul"), _dims_binary("mul")), "mul, or rescale by a fixed factor; on shapes, N * 1 "
                                                              "is N"),
    "Div": (_shape_rule(_binary("div"), _dims_binary("div")), "rescale by the reciprocal of a fixed constant; by a "
                                                              "tensor, mul by its reciprocal"),
    "Abs": (lambda node: form_activation(node.x(), "abs"), "activation abs(t) (a kink at 0)"),
    "Sqrt": (lambda node: form_activation(node.x(), "sqrt"), "activation sqrt(t)"),
    "Reciprocal": (lambda node: form_activation(node.x(), "reciprocal"), "activation 1/t"),
    "Neg": (_neg, "rescale by -1"),
    "Max": (_extremum("max"), "a + relu(b - a), folded left; with a constant c, the activation Max(t, c) "
                              "(a row c: x + relu(c - x))"),
    "Min": (_extremum("min"), "a - relu(a - b), folded left; with a constant c, the activation Min(t, c) "
                              "(a row c: x - relu(x - c))"),
    "PRelu": (_prelu, "relu(x) + slope * (x - relu(x)), the slope (one, or one per feature) a scale's parameter"),
    "Pow": (_pow, "square, or a natural power, with a constant exponent"),
    "Tanh": (_activation("tanh"), "activation tanh"),
    "Sigmoid": (_activation("sigmoid"), "activation sigmoid"),
    "Relu": (_activation("relu"), "activation relu"),
    "LeakyRelu": (_leaky, "activation leaky_relu(alpha)"),
    "Elu": (_elu, "activation elu(alpha)"),
    "Celu": (_celu, "activation elu(1); alpha * elu(x / alpha) for another alpha"),
    "Selu": (_selu, "activation selu"),
    "Softplus": (_activation("softplus"), "activation softplus"),
    "Softsign": (_activation("softsign"), "activation softsign"),
    "Mish": (_activation("mish"), "activation mish"),
    "Gelu": (_gelu, "activation gelu or gelu_tanh"),
    "HardSigmoid": (_hard_sigmoid, "activation hard_sigmoid (alpha 1/6, beta 0.5)"),
    "Clip": (_clip, "activation relu or hardtanh(min, max)"),
    "Exp": (_activation("exp"), "activation exp"),
    "Sin": (_activation("sin"), "activation sin"),
    "Cos": (_activation("cos"), "activation cos"),
    "Erf": (lambda node: form_activation(node.x(), "erf"), "activation erf(t)"),
    "Log": (lambda node: form_activation(node.x(), "log"), "activation log(t)"),
    "Concat": (_concat, "concat over the features; folded on constants and shapes"),
    "Slice": (_slice, "slice of the features; folded on constants and shapes"),
    "Split": (_split, "slices of the features"),
    "Gather": (_gather, "one feature (constant index), or folded on constants and shapes"),
    "ReduceSum": (_reduce("ReduceSum"), "sum over the features (any axes on constants)"),
    "ReduceMean": (_reduce("ReduceMean"), "mean over the features (any axes on constants)"),
    "ReduceL2": (_reduce("ReduceL2"), "folded on constants (weight_norm's norms)"),
    "Reshape": (_reshape, "the identity, when (N, features) is kept (the shape a constant or computed from N: "
                          "0, -1 read); (N, 1) to (N,) and back"),
    "Flatten": (_flatten, "the identity on (N, features); (N, 1, w) to (N, w)"),
    "Shape": (_shape, "the shape [N, w], N the batch size kept a symbol (for Reshape)"),
    "Unsqueeze": (_unsqueeze, "an (N,) value back to (N, 1); (N, w) to (N, 1, w) or (N, w, 1) for a batched "
                              "MatMul; folded on constants and shapes"),
    "Squeeze": (_squeeze, "one column held as (N,); (N, 1, w), (N, w, 1) back to (N, w); folded on constants and "
                          "shapes"),
    "LayerNormalization": (_layer_norm, "layer_norm"),
    "BatchNormalization": (_batch_norm, "batch_norm (inference)"),
    "Softmax": (_softmax("softmax"), "softmax over the features"),
    "LogSoftmax": (_softmax("log_softmax"), "log_softmax over the features"),
    "Identity": (_identity, "the identity"),
    "Transpose": (_transpose, "folded on constants; the identity on (N, features) for perm=[0, 1]"),
    "Expand": (_expand, "folded on constants; on (N, w) the identity, or copies of one feature"),
    "Dropout": (_identity, "the identity (inference)"),
    "Cast": (_cast, "the identity (symnet computes in the kernel's dtype); shapes to whole numbers"),
    "Constant": (_constant, "a constant (value, value_int(s), value_float(s))"),
}


def op_table() -> str:
    """:data:`OPS` as the Markdown table of docs/io.md (a test keeps the two the same).

    >>> print(op_table().splitlines()[3])
    | `Add` | add, or rescale by a fixed offset |
    """
    rows = [f"| `{name}` | {summary} |" for name, (_, summary) in sorted(OPS.items())]
    return "\n".join(["| ONNX op | symnet |", "|---|---|", *rows])


# --- the file ------------------------------------------------------------------------------


def from_onnx(path: str | os.PathLike[str]) -> Network:
    """The symnet network of an ``.onnx`` model (see the module docstring for what is read and how).

    Inputs are the graph's inputs that are not initializers, each ``(N, d)``, laid side by side in
    the graph's order; several outputs are laid side by side too.  Node names are the ONNX
    node names (made identifiers) where the file gives them.
    """
    import onnx

    path = Path(path)
    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise FileFormatError(f"{safe_text(path)}: {size:,} bytes, more than symnet.io.onnx.MAX_ONNX_BYTES")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError, and more, on damaged bytes
        raise FileFormatError(f"{safe_text(path)}: not a readable ONNX model ({type(exc).__name__}: "
                              f"{safe_text(exc, 200)})") from None
    where = safe_text(path)
    opsets = {o.domain or "ai.onnx": int(o.version) for o in model.opset_import}
    if "ai.onnx" not in opsets:
        raise UnsupportedLayerError(f"{where}: no opset of the default ONNX domain is imported")
    if not 1 <= opsets["ai.onnx"] <= 100:
        raise FileFormatError(f"{where}: opset version {opsets['ai.onnx']} of the default domain is not one ONNX has")
    if model.functions:
        raise UnsupportedLayerError(f"{where}: the model defines ONNX functions; symnet reads plain graphs")
    graph = model.graph
    if len(graph.node) > MAX_ONNX_NODES:
        raise FileFormatError(f"{where}: {len(graph.node):,} nodes, more than symnet.io.onnx.MAX_ONNX_NODES")
    values: dict[str, Any] = {}
    for init in graph.initializer:
        values[init.name] = Const(_array(init, f"{where}: initializer {safe_text(init.name, 60)}", onnx, path.parent))
    inputs = []
    for value_info in graph.input:
        if value_info.name in values:
            continue
        x = g.input(_input_width(value_info, where))
        values[value_info.name] = x
        inputs.append(x)
    if not inputs:
        raise UnsupportedLayerError(f"{where}: the graph has no input")
    taken: set[str] = set()
    squeezed: set[str] = set()
    uses = Counter(name for proto in graph.node for name in proto.input)
    uses.update(value_info.name for value_info in graph.output)
    for k, proto in enumerate(graph.node):
        label = safe_text(proto.name or f"#{k}", 60)
        here = f"{where}: node {label} ({safe_text(proto.op_type, 40)})"
        if proto.domain not in ("", "ai.onnx"):
            raise UnsupportedLayerError(f"{here}: domain {safe_text(proto.domain, 40)}; symnet reads the default "
                                        "ONNX domain")
        if proto.op_type not in OPS:
            raise UnsupportedLayerError(f"{here} is not an op symnet reads; it reads {', '.join(sorted(OPS))}")
        args = []
        for name in proto.input:
            if name == "":
                args.append(None)
            elif name not in values:
                raise FileFormatError(f"{here}: reads {safe_text(name, 60)}, which no earlier node computes")
            else:
                args.append(values[name])
        _check_shapes(proto.op_type, args, here)
        _check_squeezed(proto, args, squeezed, here)
        result = _converted(OPS[proto.op_type][0], proto, args, opsets["ai.onnx"], here, squeezed, uses)
        results = result if isinstance(result, tuple) else (result,)
        if proto.op_type not in _OWN_SQUEEZE and any(name in squeezed for name in proto.input):
            squeezed.update(name for name in proto.output if name)  # elementwise of (N,) values stays (N,)
        if len(results) < len([o for o in proto.output if o]):
            raise UnsupportedLayerError(f"{here}: gives {len(results)} outputs, the file names {len(proto.output)}")
        for name, value in zip(proto.output, results):
            if isinstance(value, g.Tensor) and value.name is None and value.op != "input" and proto.name:
                value.name = node_name(proto.name, taken, "n")
            values[name] = value
    outputs = []
    for value_info in graph.output:
        value = values.get(value_info.name)
        if isinstance(value, (_Dims, _Batched)):
            raise UnsupportedLayerError(f"{where}: output {safe_text(value_info.name, 60)} is "
                                        f"{'a shape vector' if isinstance(value, _Dims) else 'held as (N, 1, w)'}; "
                                        "symnet's outputs are (N, d) tensors")
        if not isinstance(value, g.Tensor) or value.op == "input":
            raise UnsupportedLayerError(f"{where}: output {safe_text(value_info.name, 60)} is not computed from the "
                                        "inputs")
        outputs.append(value)
    return g.network(inputs, outputs)


#: Ops that keep an ``(N,)`` tensor ``(N,)``: elementwise ones of one tensor.
_ELEMENTWISE = {"Neg", "Pow", "PRelu", "Tanh", "Sigmoid", "Relu", "LeakyRelu", "Elu", "Celu", "Selu", "Softplus",
                "Softsign", "Mish", "Gelu", "HardSigmoid", "Clip", "Exp", "Sin", "Cos", "Erf", "Log", "Abs", "Sqrt",
                "Reciprocal", "Identity", "Dropout", "Cast"}


#: Ops whose rules say themselves whether their result is held as ``(N,)``.
_OWN_SQUEEZE = frozenset({"Unsqueeze", "Shape", "Reshape", "Flatten"})


def _check_shapes(op: str, args: list[Any], where: str) -> None:
    """Refuse an op outside :data:`_SHAPE_OPS` reading a shape vector that holds N, and one outside
    :data:`_BATCHED_OPS` reading an ``(N, 1, w)`` value."""
    for value in args:
        if isinstance(value, _Dims) and op not in _SHAPE_OPS:
            raise UnsupportedLayerError(f"{where}: reads the shape {value}, which holds the batch size N; symnet "
                                        f"evaluates such shapes through {', '.join(sorted(_SHAPE_OPS))} (to give "
                                        "Reshape its target), not this op")
        if isinstance(value, _Batched) and op not in _BATCHED_OPS:
            raise UnsupportedLayerError(f"{where}: reads an {shown([BATCH, *value.shape])} value (an Unsqueeze of "
                                        "an (N, w) one); symnet reads it only in a batched MatMul of a row by a "
                                        "column (Keras' Dot) and back to (N, w) by Squeeze, Reshape or Flatten")


def _check_squeezed(proto: Any, args: list[Any], squeezed: set[str], where: str) -> None:
    """Refuse what would broadcast an ``(N,)`` value against an ``(N, w)`` one (ONNX gives ``(N, N)``)."""
    flags = [name in squeezed for name, a in zip(proto.input, args) if isinstance(a, g.Tensor)]
    if not any(flags) or proto.op_type in _OWN_SQUEEZE:
        return
    if proto.op_type in _ELEMENTWISE or (proto.op_type in ("Add", "Sub", "Mul", "Div", "Max", "Min") and all(flags)):
        return
    raise UnsupportedLayerError(f"{where}: reads a value ONNX holds as (N,) (from a scalar Gather, keepdims=0 or "
                                "Squeeze) together with (N, w) ones, which ONNX broadcasts to (N, N); symnet reads "
                                "(N,) values through elementwise ops, Unsqueeze and outputs")


def _converted(rule: Callable[[_Node], Any], proto: Any, args: list[Any], opset: int, where: str,
               squeezed: set[str], uses: Counter[str]) -> Any:
    """``rule``'s result; a node it cannot read (missing inputs, attributes of the wrong type) as an error."""
    try:
        return rule(_Node(proto, args, opset, where, squeezed, uses))
    except (UnsupportedLayerError, FileFormatError):
        raise
    except SymnetError as exc:
        raise UnsupportedLayerError(f"{where}: {exc}") from None
    except (IndexError, KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError, np.exceptions.AxisError,
            OverflowError) as exc:
        raise UnsupportedLayerError(f"{where}: symnet cannot read this node's inputs or attributes "
                                    f"({type(exc).__name__}: {safe_text(exc, 160)})") from None


def _input_width(value_info: Any, where: str) -> int:
    dims = value_info.type.tensor_type.shape.dim
    shown = safe_text(value_info.name, 60)
    if len(dims) != 2 or not dims[1].HasField("dim_value") or dims[1].dim_value < 1:
        raise UnsupportedLayerError(f"{where}: input {shown} has shape "
                                    f"{[d.dim_value if d.HasField('dim_value') else d.dim_param for d in dims]}; "
                                    "symnet reads inputs of shape (N, d) with d known")
    return int(dims[1].dim_value)


def _array(proto: Any, where: str, onnx: Any, folder: Path | None = None) -> np.ndarray:
    """A TensorProto as a float64 (or int64) array; sizes bounded, external data read only inside ``folder``."""
    count = int(np.prod([int(d) for d in proto.dims], dtype=object)) if proto.dims else 1
    if count > MAX_TENSOR_VALUES:
        raise FileFormatError(f"{where}: declares {count:,} values, more than symnet.io.onnx.MAX_TENSOR_VALUES")
    if proto.data_location == onnx.TensorProto.EXTERNAL:
        if folder is None:
            raise FileFormatError(f"{where}: external data where symnet reads none")
        _load_external(proto, where, onnx, folder)
    try:
        array = onnx.numpy_helper.to_array(proto)
    except Exception as exc:  # noqa: BLE001 - malformed raw data raises ValueError and more
        raise FileFormatError(f"{where}: unreadable tensor data ({type(exc).__name__}: {safe_text(exc, 120)})") from None
    if array.dtype.kind == "f":
        array = array.astype(np.float64)
        if not np.all(np.isfinite(array)):
            raise FileFormatError(f"{where}: holds a non-finite value")
    elif array.dtype.kind in "iub":
        array = array.astype(np.int64)
    else:
        raise FileFormatError(f"{where}: a {array.dtype} tensor; symnet reads numbers")
    return array


def _load_external(proto: Any, where: str, onnx: Any, folder: Path) -> None:
    info = {entry.key: entry.value for entry in proto.external_data}
    location = info.get("location", "")
    relative = Path(location)
    if not location or "\x00" in location or relative.is_absolute() or ".." in relative.parts \
            or location.startswith(("\\", "/")):
        raise FileFormatError(f"{where}: external data at {safe_text(location, 80)}, outside the model's folder; "
                              "symnet reads external data only from a file beside the model")
    step = folder
    for part in relative.parts:  # no link anywhere on the way: a link may lead out of the folder
        step = step / part
        if step.is_symlink():
            raise FileFormatError(f"{where}: external data at {safe_text(location, 80)} passes through a link; "
                                  "symnet does not follow links out of the model's folder")
    resolved = (folder / relative).resolve()
    if folder.resolve() not in resolved.parents:
        raise FileFormatError(f"{where}: external data at {safe_text(location, 80)} leads outside the model's folder")
    if not resolved.is_file():
        raise FileFormatError(f"{where}: external data file {safe_text(location, 80)} is missing or not a file")
    try:
        offset = int(info.get("offset") or 0)
        length = None if info.get("length") in (None, "") else int(info["length"])
    except ValueError:
        raise FileFormatError(f"{where}: external data offset {safe_text(info.get('offset'), 20)} or length "
                              f"{safe_text(info.get('length'), 20)} is not a whole number") from None
    count = int(np.prod([int(d) for d in proto.dims], dtype=object)) if proto.dims else 1
    expected = count * onnx.helper.tensor_dtype_to_np_dtype(proto.data_type).itemsize
    length = expected if length is None else length
    if length != expected:
        raise FileFormatError(f"{where}: external data of {length:,} bytes for a tensor of {expected:,}")
    size = resolved.stat().st_size
    if offset < 0 or length < 0 or offset + length > size:
        raise FileFormatError(f"{where}: external data range [{offset}, {offset + length}) outside the "
                              f"{size:,}-byte file")
    with open(resolved, "rb") as stream:
        stream.seek(offset)
        proto.raw_data = stream.read(length)
    del proto.external_data[:]
    proto.data_location = onnx.TensorProto.DEFAULT
