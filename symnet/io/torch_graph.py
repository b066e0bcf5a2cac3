"""Import any PyTorch module whose ``forward`` is a graph of supported ops, through ``torch.fx``.

:func:`~symnet.io.from_torch` sends every module that is not a plain ``nn.Sequential`` here:
a custom ``class Net(nn.Module)`` with its own ``forward``, residual blocks, gates, Fourier
features, input normalisation by buffers, ``nn.ModuleList`` loops, modules used several
times, several outputs, ``torch.compile`` wrappers.

**Capture.** ``torch.fx``'s symbolic tracer runs ``forward`` once on proxies, in the user's
own process, and records each operation as a node (loops unroll, a shared module is called
at each use).  It keeps PyTorch's modules (``nn.Linear``, ``nn.Tanh``...) as nodes of their
own, so a node and its error name the user's module and the line of ``forward`` it came
from.  ``forward`` that branches on the values of its input cannot be traced: that is an
:class:`~symnet.io.UnsupportedLayerError` saying so.  Chosen over ``torch.export`` (which
lowers to ATen and needs example shapes) because every op here keeps its module name and
line, and tracing needs no input size.

**Mapping.** Every node goes through one table, :data:`OPS` (module classes, functions and
methods, by name), to :mod:`symnet.graph.builder` calls: ``Linear`` and ``F.linear`` are
``dense``; activation modules and functions are activation nodes; ``+ - *`` between tensors
are ``add``/``sub``/``mul``, with numbers or buffers a fixed ``rescale`` (with a bare
``nn.Parameter`` a trainable ``shift``/``scale``); ``/`` by a number or buffer a ``rescale``, by
a tensor a ``mul`` by its reciprocal; ``torch.maximum``/``minimum`` ``a + relu(b - a)``/
``a - relu(a - b)``; ``nn.PReLU`` and ``F.prelu`` ``relu(x) + w (x - relu(x))`` with ``w`` a
``scale``'s parameter; ``@`` by a buffer ``matmul``; ``cat``/``split``/``chunk``/slicing of the
feature axis ``concat``/``slice``; ``sum``/``mean`` over the features; ``LayerNorm``,
``BatchNorm1d`` (eval mode: its running statistics), ``Softmax``, ``LogSoftmax``; ``view``,
``reshape``, ``flatten``, ``squeeze``, ``unsqueeze`` the identity where they keep ``(N, w)`` (or turn
an ``(N, 1)`` column into ``(N,)`` and back), their targets computed from ``x.size(0)``/``x.shape``
with the batch size a symbol (:mod:`symnet.io.shapes`, the rule ONNX's ``Reshape`` is read by; see
"shapes" below).  Buffers and
parameters a ``forward`` reads (``self.mean``, ``self.B``) are constants, folded with numbers in
numpy.
Anything else raises :class:`~symnet.io.UnsupportedLayerError` naming the node, the op and
the line of ``forward``.

**Check.** Before returning, the network is compared with the module itself at
:func:`~symnet.io._compare.check_points` in float64 (a float64 copy in eval mode: the
module is left as it was): node by node against the traced graph, then end to end against
``module(x)`` itself; the first node that differs raises :class:`~symnet.ImportMismatchError`
(``check=False`` skips it).
"""

from __future__ import annotations

import builtins
import copy
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .. import activations as _activations
from ..errors import ImportMismatchError, InputError, SymnetError
from ..graph import builder as g
from ..network import Network
from ._compare import CHECK_RTOL, _difference, check_points
from ._tensor_ops import Const as _Const, binary, form_activation, number as _number, power, row as _row, \
    scaled as _scaled
from ._tensor_ops import extremum, node_name, prelu, tensor as _tensor
from .format import UnsupportedLayerError
from .shapes import BATCH, combine, holds_batch, resolve, shown

__all__ = ["OPS", "from_torch_graph", "op_table", "supported_ops"]


@dataclass(frozen=True)
class _Rule:
    """How one PyTorch op becomes builder calls: ``convert(capture, node, args, kwargs) -> value``.

    ``elementwise``: 1 for an op that acts on each number of its one tensor alone (an activation,
    ``neg``, ``dropout``...), 2 for one between tensors of one shape (``add``, ``maximum``...), 0
    otherwise: such ops keep a width (which the capture reads off a later op) and keep a column
    PyTorch holds as ``(N,)`` so.

    ``shapes``: what the op reads of shapes (see "shapes" below): ``"reshape"`` (``view``,
    ``reshape``, ``flatten``, ``squeeze``, ``unsqueeze``...: reads the batch size N in its target, a
    value held with axes of length 1 added, an ``(N,)`` column, and says itself how its result is
    held), ``"query"`` (``size``, ``.shape``: reads any value's shape), ``"entries"`` (arithmetic
    and indexing, which may read N and whole numbers from shapes), or ``""`` (none of these).
    """

    convert: Callable[..., Any]
    summary: str
    elementwise: int = 0
    shapes: str = ""


def _line(node: Any) -> str:
    """``forward``'s line that made ``node``: ``'net.py:12 in forward: h = self.fc(x)'`` (printable ASCII only)."""
    torch_dir = os.path.dirname(os.path.dirname(__import__("torch").__file__))
    frames = re.findall(r'File "([^"]*)", line (\d+), in (\S+)\n +(.*)', node.stack_trace or "")
    own = [f for f in frames if not os.path.abspath(f[0]).startswith(os.path.join(torch_dir, "torch"))]
    if not own:
        return ""
    file, number, function, code = own[-1]
    text = f"{os.path.basename(file)}:{number} in {function}: {code.strip()}"
    return "".join(c if 32 <= ord(c) < 127 else f"<U+{ord(c):04X}>" for c in text)[:200]


def _where(node: Any) -> str:
    line = _line(node)
    return f"node {node.name!r} ({_op_name(node)})" + (f" at {line}" if line else "")


def _op_name(node: Any) -> str:
    if node.op == "call_module":
        return f"module {node.target!r}"
    if node.op == "call_method":
        return f"method .{node.target}()"
    return f"function {getattr(node.target, '__name__', str(node.target))}"


# --- values --------------------------------------------------------------------------------


def _feature_dim(dim: Any, where: str) -> None:
    if dim not in (-1, 1):
        raise UnsupportedLayerError(f"{where}: dim={dim!r}; symnet's tensors are (N, features) and its ops act "
                                    "on the features (dim=-1 or 1)")


# --- shapes --------------------------------------------------------------------------------
#
# ``x.size(0)``, ``x.shape[0]`` and ``x.size()`` are read as shapes that hold the batch size N as
# a symbol (symnet.io.shapes.BATCH, as the ONNX importer reads a dynamic-batch export): an
# ``(N, w)`` tensor's shape is ``(N, w)``, an ``(N,)`` column's ``(N,)``; its entries are Python
# integers and N, and arithmetic on them keeps N only where it stays N (``N * 1``, ``N + 0``).
# ``view``/``reshape`` to such a target (``-1`` inferred), ``flatten``, ``squeeze`` and
# ``unsqueeze`` are the identity when the value is held as ``(N, w)`` again, and turn an
# ``(N, 1)`` column into ``(N,)`` and back.  Between, a value may be held with axes of length 1
# added (``x.unsqueeze(-1)``: ``(N, w, 1)``), which only these ops read.  Anything else -- a
# reshape of the features into ``(N, a, b)``, one that would merge or split the points, N read by
# any other op or in any other arithmetic -- is refused with the node named.


@dataclass(frozen=True)
class _Held:
    """An ``(N, w)`` tensor that PyTorch holds with axes of length 1 added (``x.unsqueeze(-1)``:
    ``shape`` ``(N, w, 1)``; ``(1, N, w)``...): N once, only 1s before it.  Read only by the ops
    whose rule has ``shapes="reshape"`` or ``"query"``, which give it back as ``(N, w)``."""

    tensor: g.Tensor
    shape: tuple[Any, ...]


def _is_entry(value: Any) -> bool:
    """A whole number or N: an entry of a shape (``bool`` is not one)."""
    return value is BATCH or (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)))


def _no_batch(values: Any, where: str) -> None:
    if holds_batch(values):
        raise UnsupportedLayerError(f"{where} computes with the batch size N (x.size(0), x.shape[0]); symnet keeps N "
                                    "a symbol of shapes: it reads N in view/reshape targets and in arithmetic where "
                                    "it stays N (N * 1, N + 0), not as a number the network computes with")


def _target(args: list[Any], kwargs: dict[str, Any], where: str) -> list[Any]:
    """``view``'s and ``reshape``'s target: ``x.view(a, b)``, ``x.view((a, b))``, ``torch.reshape(x, (a, b))``,
    entries whole numbers or N."""
    shape = list(args[1:]) if len(args) > 1 else [kwargs.get("shape", kwargs.get("size"))]
    if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
        shape = list(shape[0])
    for k, v in enumerate(shape):
        if not _is_entry(v):
            raise UnsupportedLayerError(f"{where}: entry {k} of the target shape is "
                                        f"{'a tensor' if isinstance(v, (g.Tensor, _Const)) else type(v).__name__}; "
                                        "symnet reads whole numbers and the batch size (x.size(0), x.shape[0])")
    return [v if v is BATCH else int(v) for v in shape]


def _constant_shaped(value: _Const, shape: Any, where: str) -> _Const:
    """A buffer or parameter reshaped (``self.mean.view(1, -1)``): the same numbers, trained if they were."""
    if holds_batch(shape):
        raise UnsupportedLayerError(f"{where}: a constant reshaped to {shown(shape)}, which holds the batch size N")
    return _Const(np.reshape(np.asarray(value.value, dtype=np.float64), tuple(shape)), value.trainable)


def _axis(dim: Any, ndim: int, where: str, what: str) -> int:
    """``dim`` of a value with ``ndim`` axes (negative from the end), as PyTorch reads it."""
    if not _is_entry(dim) or dim is BATCH or not -ndim <= int(dim) < ndim:
        raise UnsupportedLayerError(f"{where}: {what} {dim!r} of a value with {ndim} axes")
    return int(dim) % ndim


# --- rules ---------------------------------------------------------------------------------


def _binary(kind: str) -> Callable[..., Any]:
    def convert(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        where = _where(node)
        if len(args) != 2 or set(kwargs) - {"alpha"}:
            raise UnsupportedLayerError(f"{where}: takes two operands, got {len(args)} and {sorted(kwargs)}")
        a, b = args
        if not kwargs and _is_entry(a) and _is_entry(b) and kind != "div":
            return combine(kind, a, b, where)  # x.size(1) * 2, x.size(0) * 1: whole numbers, or N where it stays N
        _no_batch((a, b, kwargs), where)
        if "alpha" in kwargs:  # torch.add(a, b, alpha=c) is a + c*b
            b = _scaled(b, _number(kwargs["alpha"], where), where)
        return binary(kind, a, b, where)
    return convert


def _floordiv(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """``//`` between whole numbers of shapes (``x.size(1) // 2``); of tensors (piecewise constant) refused."""
    where = _where(node)
    if len(args) == 2 and not kwargs and _is_entry(args[0]) and _is_entry(args[1]):
        return combine("floordiv", args[0], args[1], where)
    _no_batch((args, kwargs), where)
    raise UnsupportedLayerError(f"{where}: floor division of a tensor, which is piecewise constant; symnet reads // "
                                "between whole numbers of shapes (x.size(1) // 2)")


def _pow(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    base = args[0] if args else kwargs.get("input", kwargs.get("self"))
    return power(base, args[1] if len(args) > 1 else kwargs.get("exponent"), _where(node))


def _neg(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return _scaled(args[0], -1.0, _where(node))


def _rsub(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return _binary("sub")(cap, node, [args[1], args[0]], kwargs)


def _activation_rule(name: str) -> Callable[..., Any]:
    """An activation function or method: its extra arguments (``negative_slope``, ``beta``...) read by name."""
    def convert(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        where = _where(node)
        extra = dict(zip(_EXTRA_ARGS.get(name, ()), args[1:]), **kwargs)
        extra.pop("inplace", None)
        for key, value in extra.items():
            if isinstance(value, (g.Tensor, _Const)):
                raise UnsupportedLayerError(f"{where}: {key} is a tensor; symnet reads numbers there")
        return g.activation(_tensor(args[0], where), _activation_of(name, extra, where))
    return convert


def _form_rule(form: str) -> Callable[..., Any]:
    """``torch.abs``, ``sqrt``, ``rsqrt``, ``reciprocal``, ``log``, ``erf``: an activation of its SymPy form
    (``form``, a key of :data:`~symnet.io._tensor_ops.FORMS`)."""
    def convert(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        where = _where(node)
        if len(args) != 1 or kwargs:
            raise UnsupportedLayerError(f"{where}: {form} takes one tensor here")
        return form_activation(_tensor(args[0], where), form)
    return convert


_EXTRA_ARGS = {"leaky_relu": ("negative_slope",), "elu": ("alpha",), "softplus": ("beta", "threshold"),
               "gelu": ("approximate",), "hardtanh": ("min_val", "max_val")}


def _activation_of(name: str, extra: dict[str, Any], where: str) -> Any:
    from .torch import SOFTPLUS_MIN_THRESHOLD

    allowed = {"leaky_relu": {"negative_slope"}, "elu": {"alpha"}, "softplus": {"beta", "threshold"},
               "gelu": {"approximate"}, "hardtanh": {"min_val", "max_val"}}.get(name, set())
    if set(extra) - allowed:
        raise UnsupportedLayerError(f"{where}: arguments {sorted(set(extra) - allowed)} are not read by symnet's {name}")
    if name == "leaky_relu":
        return _activations.activation("leaky_relu", alpha=float(extra.get("negative_slope", 0.01)))
    if name == "elu":
        return _activations.activation("elu", alpha=float(extra.get("alpha", 1.0)))
    if name == "softplus":
        if not float(extra.get("threshold", 20.0)) >= SOFTPLUS_MIN_THRESHOLD:
            raise UnsupportedLayerError(f"{where}: softplus with threshold={extra['threshold']} returns x itself above "
                                        f"it; use threshold >= {SOFTPLUS_MIN_THRESHOLD:g}")
        return _activations.activation("softplus", beta=float(extra.get("beta", 1.0)))
    if name == "gelu":
        approximate = extra.get("approximate", "none")
        if approximate not in ("none", "tanh"):
            raise UnsupportedLayerError(f"{where}: gelu(approximate={approximate!r}) is not 'none' or 'tanh'")
        return _activations.activation("gelu_tanh" if approximate == "tanh" else "gelu")
    if name == "hardtanh":
        return _activations.activation("hardtanh", min_val=float(extra.get("min_val", -1.0)),
                                       max_val=float(extra.get("max_val", 1.0)))
    return _activations.activation(name)


def _module_rule(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    from .torch import _module_activation

    module = cap.module_at(node.target)
    kind = type(module).__name__
    where = _where(node)
    if kind == "Flatten" and type(module) is cap.nn.Flatten and len(args) == 1 and not kwargs:
        return _flattened(cap, args[0], node.args[0], module.start_dim, module.end_dim, where)
    x = _tensor(args[0], where) if args else None
    if x is None or len(args) != 1 or kwargs:
        raise UnsupportedLayerError(f"{where}: a {kind} module called with {len(args)} arguments and "
                                    f"{sorted(kwargs)}; symnet reads calls on one tensor")
    if kind == "Linear" or (kind == "ParametrizedLinear" and isinstance(module, cap.nn.Linear)
                            and _parametrized(module)):
        # a parametrization (weight_norm, spectral_norm) is evaluated to the weight it gives now, in
        # float64 on the check's float64 copy (in float32 it differs from that by rounding); the
        # check compares the result with the module
        weight = cap.array((cap.double().get_submodule(node.target) if _parametrized(module) else module).weight,
                           where)
        bias = None if module.bias is None else cap.array(module.bias, where)
        return g.dense(x, weight, bias, layout="torch")
    if kind in ("Identity", "Dropout", "AlphaDropout"):
        return x
    if kind == "LayerNorm":
        if tuple(module.normalized_shape) != (x.width,):
            raise UnsupportedLayerError(f"{where}: LayerNorm over {tuple(module.normalized_shape)} on {x.width} "
                                        "features; symnet normalises over the features")
        gamma = None if module.weight is None else cap.array(module.weight, where)
        beta = None if getattr(module, "bias", None) is None else cap.array(module.bias, where)
        return g.layer_norm(x, gamma, beta, eps=float(module.eps))
    if kind == "PReLU" and type(module) is cap.nn.PReLU:
        return _prelu_of(x, cap.array(module.weight, where), where, bool(module.weight.requires_grad))
    if kind == "BatchNorm1d":
        if module.running_mean is None or module.running_var is None:
            raise UnsupportedLayerError(f"{where}: BatchNorm1d(track_running_stats=False) normalises by each batch's "
                                        "own statistics, which is not a function of one point")
        gamma = 1.0 if module.weight is None else cap.array(module.weight, where)
        beta = 0.0 if module.bias is None else cap.array(module.bias, where)
        return g.batch_norm(x, cap.array(module.running_mean, where), cap.array(module.running_var, where),
                            gamma, beta, eps=float(module.eps))
    if kind == "Sequential" or kind not in _ACTIVATION_MODULES or type(module) is not getattr(cap.nn, kind, None):
        raise UnsupportedLayerError(f"{where}: {kind} is not a module symnet reads; it reads "
                                    f"{', '.join(sorted(_MODULES))} (torch.nn's own classes)")
    activation = _module_activation(module, where)
    return g.activation(x, activation)


def _prelu_of(x: g.Tensor, weight: Any, where: str, trainable: bool) -> g.Tensor:
    """PReLU's weight is one number or one per channel, and on ``(N, C)`` the channels are the features."""
    alpha = np.asarray(weight, dtype=np.float64)
    if alpha.size == 1:
        return prelu(x, float(alpha.reshape(-1)[0]), trainable)
    if alpha.shape != (x.width,):
        raise UnsupportedLayerError(f"{where}: a PReLU weight of shape {alpha.shape} on {x.width} features; symnet "
                                    "reads one weight, or one per feature (num_parameters = the features)")
    return prelu(x, alpha, trainable)


def _prelu_fn(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    where = _where(node)
    x = _tensor(args[0] if args else kwargs.get("input"), where)
    weight = args[1] if len(args) > 1 else kwargs.get("weight")
    if isinstance(weight, g.Tensor):
        raise UnsupportedLayerError(f"{where}: prelu with a weight computed from the inputs; symnet reads a "
                                    "parameter or buffer there")
    return _prelu_of(x, _number(weight, where), where, isinstance(weight, _Const) and weight.trainable)


def _extremum(kind: str) -> Callable[..., Any]:
    """``torch.maximum(a, b)`` / ``torch.minimum`` (and ``torch.max(a, b)`` of two tensors) unit by unit."""
    def convert(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        where = _where(node)
        operands = [*args, *(kwargs[k] for k in ("other",) if k in kwargs)]
        if len(operands) != 2 or set(kwargs) - {"other"} or \
                not all(isinstance(v, (g.Tensor, _Const)) for v in operands):
            raise UnsupportedLayerError(f"{where}: symnet reads the elementwise {kind}imum of two tensors "
                                        f"(torch.{kind}imum(a, b)), not a reduction over a dim")
        return extremum(kind, operands[0], operands[1], where)
    return convert


def _parametrized(module: Any) -> bool:
    from torch.nn.utils import parametrize

    return bool(parametrize.is_parametrized(module))


_ACTIVATION_MODULES = ("Tanh", "Sigmoid", "ReLU", "SiLU", "LeakyReLU", "Softplus", "ELU", "GELU", "Softmax",
                       "LogSoftmax", "Mish", "SELU", "Softsign", "ReLU6", "Hardsigmoid", "Hardtanh")
_MODULES = ("Linear", "ParametrizedLinear", "Identity", "Dropout", "AlphaDropout", "Flatten", "LayerNorm", "BatchNorm1d",
            "PReLU", *_ACTIVATION_MODULES)


def _cat(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    where = _where(node)
    tensors = args[0] if args else kwargs.get("tensors")
    _feature_dim(args[1] if len(args) > 1 else kwargs.get("dim", 0), where)
    if not isinstance(tensors, (list, tuple)) or not tensors:
        raise UnsupportedLayerError(f"{where}: cat needs a list of tensors")
    return g.concat(*(_tensor(t, where) for t in tensors))


def _getitem(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    where = _where(node)
    value, index = args
    if isinstance(value, (list, tuple)):  # an element of split(), chunk(), a returned tuple, a shape
        if _is_entry(index) and index is not BATCH and not -len(value) <= index < len(value):  # n, w = (N,)
            what = f"the shape {shown(value)}" if holds_batch(value) else "a tuple"
            raise UnsupportedLayerError(f"{where}: index {index} of {what} of {len(value)} entries")
        return value[index]
    x = _tensor(value, where)
    index = index if isinstance(index, tuple) else (index,)
    if index and index[0] is Ellipsis:
        index = (slice(None),) + index[1:]
    if len(index) == 1 and index[0] == slice(None):
        return x
    if len(index) != 2 or index[0] != slice(None):
        raise UnsupportedLayerError(f"{where}: indexing {index!r}; symnet reads x[:, a:b] and x[:, i] "
                                    "(every point, some features)")
    feature = index[1]
    if isinstance(feature, int) and not isinstance(feature, bool):
        i = feature + x.width if feature < 0 else feature
        if not 0 <= i < x.width:
            raise UnsupportedLayerError(f"{where}: feature {feature} of {x.width}")
        return cap.squeezed(g.slice(x, i, i + 1))
    if isinstance(feature, slice) and feature.step in (None, 1):
        start, stop, _ = feature.indices(x.width)
        if stop <= start:
            raise UnsupportedLayerError(f"{where}: the slice {feature!r} of {x.width} features is empty")
        return x if (start, stop) == (0, x.width) else g.slice(x, start, stop)
    raise UnsupportedLayerError(f"{where}: indexing the features by {feature!r}; symnet reads a:b and i")


def _split(chunks: bool) -> Callable[..., Any]:
    def convert(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        where = _where(node)
        x = _tensor(args[0], where)
        size = args[1] if len(args) > 1 else kwargs.get("chunks" if chunks else "split_size_or_sections")
        _feature_dim(args[2] if len(args) > 2 else kwargs.get("dim", 0), where)
        if chunks:
            step = -(-x.width // int(size))
            sizes = [min(step, x.width - s) for s in range(0, x.width, step)]
        elif isinstance(size, int):
            sizes = [min(size, x.width - s) for s in range(0, x.width, size)]
        else:
            sizes = [int(s) for s in size]
        if builtins.sum(sizes) != x.width or min(sizes) < 1:
            raise UnsupportedLayerError(f"{where}: sizes {sizes} do not split {x.width} features")
        bounds = np.cumsum([0, *sizes])
        return tuple(g.slice(x, int(a), int(b)) for a, b in zip(bounds, bounds[1:]))
    return convert


def _reduce(mean: bool) -> Callable[..., Any]:
    def convert(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        where = _where(node)
        x = _tensor(args[0], where)
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        dim = dim[0] if isinstance(dim, (list, tuple)) and len(dim) == 1 else dim
        _feature_dim(dim, where)
        keep = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
        out = g.mean(x) if mean else g.sum(x)
        return out if keep else cap.squeezed(out)
    return convert


def _matmul(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    where = _where(node)
    a, b = args
    if isinstance(b, g.Tensor):
        raise UnsupportedLayerError(f"{where}: a product of two computed tensors' matrices; symnet multiplies a "
                                    "tensor by a constant matrix (x @ B with B a buffer or parameter)")
    if not isinstance(a, g.Tensor):
        return _Const(np.asarray(_number(a, where)) @ np.asarray(_number(b, where)))
    matrix = np.asarray(_number(b, where), dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != a.width:
        raise UnsupportedLayerError(f"{where}: x @ B with B of shape {matrix.shape} on {a.width} features")
    return g.matmul(a, matrix)


def _linear_fn(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    where = _where(node)
    x = _tensor(args[0], where)
    weight = args[1] if len(args) > 1 else kwargs.get("weight")
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    if isinstance(weight, g.Tensor) or isinstance(bias, g.Tensor):
        raise UnsupportedLayerError(f"{where}: F.linear with computed weights; symnet reads constant weights")
    return g.dense(x, np.asarray(_number(weight, where), dtype=np.float64),
                   None if bias is None else np.asarray(_number(bias, where), dtype=np.float64), layout="torch")


def _layer_norm_fn(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    where = _where(node)
    x = _tensor(args[0], where)
    shape = tuple(args[1] if len(args) > 1 else kwargs["normalized_shape"])
    if shape != (x.width,):
        raise UnsupportedLayerError(f"{where}: layer_norm over {shape} on {x.width} features")
    weight = args[2] if len(args) > 2 else kwargs.get("weight")
    bias = args[3] if len(args) > 3 else kwargs.get("bias")
    eps = args[4] if len(args) > 4 else kwargs.get("eps", 1e-5)
    return g.layer_norm(x, None if weight is None else _row(weight, x.width, where),
                        None if bias is None else _row(bias, x.width, where), eps=float(eps))


def _softmax_fn(name: str) -> Callable[..., Any]:
    """``softmax``/``log_softmax`` (function or method) over the features."""
    def rule(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        where = _where(node)
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        if dim is not None:  # no dim: PyTorch's implicit choice for (N, features) is dim 1 (the check confirms)
            _feature_dim(dim, where)
        return g.activation(_tensor(args[0], where), name)
    return rule


def _same(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Ops that change nothing symnet holds: dropout at inference, ``float()``/``double()``, ``contiguous()``."""
    return args[0]


def _data(args: list[Any], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs.get("input", kwargs.get("self"))


def _reshape(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """``x.view(...)``, ``x.reshape(...)``, ``torch.reshape(x, ...)``: the identity when the target keeps
    ``(N, w)`` (``x.view(x.size(0), -1)``, ``x.reshape(-1, w)``), ``(N, 1)`` to ``(N,)`` and back."""
    where = _where(node)
    x = _data(args, kwargs)
    target = _target(args, {k: v for k, v in kwargs.items() if k != "input"}, where)
    if isinstance(x, _Const):
        return _constant_shaped(x, target, where)
    held = cap.shape_of(x, node.args[0] if node.args else node.kwargs.get("input"), where)
    op = str(node.target) if node.op == "call_method" else "reshape"
    return cap.shaped(x, resolve(target, held, where, zero_copies=False, op=op), where)


def _reshape_as(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """``x.view_as(y)``, ``x.reshape_as(y)``: to ``y``'s shape, read as :func:`_reshape` reads a target."""
    where = _where(node)
    x, other = args[0], args[1] if len(args) > 1 else kwargs["other"]
    if isinstance(other, _Const):
        target = list(np.shape(other.value))
    else:
        target = cap.shape_of(other, node.args[1] if len(node.args) > 1 else node.kwargs["other"], where)
    if isinstance(x, _Const):
        return _constant_shaped(x, target, where)
    held = cap.shape_of(x, node.args[0], where)
    return cap.shaped(x, resolve(target, held, where, zero_copies=False, op=str(node.target)), where)


def _flattened(cap: _Capture, x: Any, arg: Any, start: Any, end: Any, where: str) -> Any:
    """``x`` with axes ``start`` to ``end`` merged (``torch.flatten``, ``nn.Flatten``): the identity on
    ``(N, w)`` for ``start=1``; merging N with anything but axes of length 1 is refused."""
    if isinstance(x, _Const):
        shape = list(np.shape(x.value)) or [1]
    else:
        shape = cap.shape_of(x, arg, where)
    first, last = (_axis(d, len(shape), where, "flatten's dim") for d in (start, end))
    if last < first:
        raise UnsupportedLayerError(f"{where}: flatten(start_dim={start}, end_dim={end}): the end is before the start")
    merged = shape[first:last + 1]
    if BATCH in merged and any(v != 1 for v in merged if v is not BATCH):
        raise UnsupportedLayerError(f"{where}: flatten(start_dim={start}, end_dim={end}) of an {shown(shape)} value "
                                    "would merge the points with the features; symnet reads flatten(1) of (N, w) "
                                    "tensors")
    size = BATCH if BATCH in merged else int(np.prod(merged, dtype=np.int64))
    result = [*shape[:first], size, *shape[last + 1:]]
    return _constant_shaped(x, result, where) if isinstance(x, _Const) else cap.shaped(x, result, where)


def _flatten_fn(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
    end = args[2] if len(args) > 2 else kwargs.get("end_dim", -1)
    return _flattened(cap, _data(args, kwargs), node.args[0] if node.args else node.kwargs.get("input"), start, end,
                      _where(node))


def _unsqueeze(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """``x.unsqueeze(d)``: an ``(N,)`` column back to ``(N, 1)``; an ``(N, w)`` value held with an axis
    of length 1 added (``(N, w, 1)``), which only the shape ops read."""
    where = _where(node)
    x, dim = _data(args, kwargs), args[1] if len(args) > 1 else kwargs.get("dim")
    shape = list(np.shape(x.value)) if isinstance(x, _Const) else cap.shape_of(x, node.args[0], where)
    at = _axis(dim, len(shape) + 1, where, "unsqueeze's dim")
    result = [*shape[:at], 1, *shape[at:]]
    return _constant_shaped(x, result, where) if isinstance(x, _Const) else cap.shaped(x, result, where)


def _squeeze(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """``x.squeeze(d)``: the axes ``d`` of length 1 removed (an ``(N, 1)`` column is ``(N,)`` from here),
    others kept, as PyTorch does; ``squeeze()`` without a dim, and of the batch axis, refused."""
    where = _where(node)
    x, dim = _data(args, kwargs), args[1] if len(args) > 1 else kwargs.get("dim")
    if dim is None:
        raise UnsupportedLayerError(f"{where}: squeeze() without a dim also drops the batch axis when N == 1; name "
                                    "the axes (x.squeeze(-1), x.squeeze(1))")
    shape = list(np.shape(x.value)) if isinstance(x, _Const) else cap.shape_of(x, node.args[0], where)
    axes = {_axis(d, len(shape), where, "squeeze's dim") for d in (dim if isinstance(dim, (tuple, list)) else [dim])}
    if any(shape[a] is BATCH for a in axes):
        raise UnsupportedLayerError(f"{where}: squeeze of the batch axis of an {shown(shape)} value, which PyTorch "
                                    "drops only when N == 1; symnet reads squeeze of the feature axes")
    result = [v for a, v in enumerate(shape) if a not in axes or v != 1]
    return _constant_shaped(x, result, where) if isinstance(x, _Const) else cap.shaped(x, result, where)


def _size(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """``x.size()`` (a tuple of whole numbers and N) and ``x.size(d)`` (one of them)."""
    where = _where(node)
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    shape = cap.query(args[0], node, where)
    return shape if dim is None else shape[_axis(dim, len(shape), where, "size's dim")]


def _getattr(cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """``x.shape``, as ``x.size()``; any other attribute of a traced value is refused."""
    where = _where(node)
    if len(args) != 2 or args[1] != "shape":
        raise UnsupportedLayerError(f"{where}: reads the attribute {str(args[1])[:40]!r} of a traced value; symnet "
                                    "reads .shape")
    return cap.query(args[0], node, where)


#: Activation functions and methods by name, and the registry's activation each is.
_ACTIVATIONS = {"tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu", "sin": "sin", "cos": "cos", "exp": "exp",
                "silu": "silu", "square": "square", "special_expit": "sigmoid", "gelu": "gelu", "elu": "elu",
                "leaky_relu": "leaky_relu", "softplus": "softplus", "mish": "mish", "selu": "selu",
                "softsign": "softsign", "relu6": "relu6", "hardsigmoid": "hard_sigmoid", "hardtanh": "hardtanh"}
#: Elementwise functions and methods with no registered activation, by name, and their form (``FORMS``).
_FORM_OPS = {"abs": "abs", "absolute": "abs", "sqrt": "sqrt", "rsqrt": "rsqrt", "reciprocal": "reciprocal",
             "log": "log", "erf": "erf", "special_erf": "erf"}
_ON_SHAPES = "; of shapes, N kept where it stays N (N * 1)"
_ADD = "add, or rescale by a fixed offset (shift by a parameter)" + _ON_SHAPES
_SUB = "sub, or rescale by a fixed offset (shift by a parameter)" + _ON_SHAPES
_MUL = "mul, or rescale by a fixed factor (scale by a parameter)" + _ON_SHAPES
_DIV = "rescale by the reciprocal of a fixed constant (scale by 1/parameter); by a tensor, mul by its reciprocal"
_SAME = "the identity (symnet computes in the kernel's dtype)"
_RESHAPE = "the identity where it keeps (N, w) (x.view(x.size(0), -1), x.reshape(-1, w)); (N, 1) to (N,) and back"
_FLATTEN = "the identity on (N, features) (flatten(1)); (N, 1) to (N,) (flatten())"

#: Every PyTorch function and method symnet reads, by name (``torch.tanh``, ``F.tanh`` and
#: ``x.tanh()`` alike; ``torch.special.expit`` is ``special_expit``), and what it becomes; the
#: aliases PyTorch gives one op (``torch.absolute``, ``multiply``, ``torch.special.erf``...) are
#: entries of their own, with the op's rule.  Modules are :data:`_MODULES`.
OPS: dict[str, _Rule] = {
    **{name: _Rule(_activation_rule(act), f"activation {act}", 1) for name, act in _ACTIVATIONS.items()},
    **{name: _Rule(_form_rule(form), f"activation {form}(t)", 1) for name, form in _FORM_OPS.items()},
    **{name: _Rule(_binary("add"), _ADD, 2, shapes="entries") for name in ("add", "iadd")},
    **{name: _Rule(_binary("sub"), _SUB, 2, shapes="entries") for name in ("sub", "isub", "subtract")},
    "rsub": _Rule(_rsub, "sub", 2),
    **{name: _Rule(_binary("mul"), _MUL, 2, shapes="entries") for name in ("mul", "imul", "multiply")},
    **{name: _Rule(_binary("div"), _DIV, 2) for name in ("truediv", "div", "divide", "true_divide")},
    **{name: _Rule(_neg, "rescale by -1", 1) for name in ("neg", "negative")},
    "pow": _Rule(_pow, "square, or a natural power as an activation", 1),
    "maximum": _Rule(_extremum("max"), "a + relu(b - a); with a constant c, the activation Max(t, c) "
                                       "(a row c: x + relu(c - x))", 2),
    "minimum": _Rule(_extremum("min"), "a - relu(a - b); with a constant c, the activation Min(t, c) "
                                       "(a row c: x - relu(x - c))", 2),
    "max": _Rule(_extremum("max"), "of two tensors: as maximum (a reduction is refused)", 2),
    "min": _Rule(_extremum("min"), "of two tensors: as minimum (a reduction is refused)", 2),
    "prelu": _Rule(_prelu_fn, "relu(x) + w * (x - relu(x)), w a scale's parameter"),
    "matmul": _Rule(_matmul, "matmul by a constant matrix"),
    "linear": _Rule(_linear_fn, "dense"),
    **{name: _Rule(_cat, "concat over the features") for name in ("cat", "concat", "concatenate")},
    "getitem": _Rule(_getitem, "slice of the features; an entry of a shape", shapes="entries"),
    "split": _Rule(_split(False), "slices of the features"),
    "chunk": _Rule(_split(True), "slices of the features"),
    "sum": _Rule(_reduce(False), "sum over the features"),
    "mean": _Rule(_reduce(True), "mean over the features"),
    "layer_norm": _Rule(_layer_norm_fn, "layer_norm"),
    **{name: _Rule(_softmax_fn("softmax"), "softmax over the features") for name in ("softmax", "special_softmax")},
    **{name: _Rule(_softmax_fn("log_softmax"), "log_softmax over the features")
       for name in ("log_softmax", "special_log_softmax")},
    "dropout": _Rule(_same, "the identity (inference)", 1),
    "float": _Rule(_same, _SAME, 1),
    "double": _Rule(_same, _SAME, 1),
    "contiguous": _Rule(_same, "the identity", 1),
    "flatten": _Rule(_flatten_fn, _FLATTEN, shapes="reshape"),
    **{name: _Rule(_reshape, _RESHAPE, shapes="reshape") for name in ("view", "reshape")},
    **{name: _Rule(_reshape_as, _RESHAPE, shapes="reshape") for name in ("view_as", "reshape_as")},
    "unsqueeze": _Rule(_unsqueeze, "an (N,) column back to (N, 1); an axis of length 1 added, to be squeezed or "
                                   "viewed back", shapes="reshape"),
    "squeeze": _Rule(_squeeze, "one column held as (N,); axes of length 1 removed (a dim named)", shapes="reshape"),
    "size": _Rule(_size, "the shape, N a symbol (for view/reshape)", shapes="query"),
    "getattr": _Rule(_getattr, ".shape: as size()", shapes="query"),
    "floordiv": _Rule(_floordiv, "// of whole numbers of shapes", shapes="entries"),
}


def supported_ops() -> list[tuple[str, str]]:
    """``(PyTorch op, what symnet makes of it)`` for every function, method and module :func:`from_torch` reads.

    >>> dict(supported_ops())["Linear"]
    'dense'
    """
    modules = [(name, "dense" if name == "Linear" else "dense, its parametrization (weight_norm...) evaluated"
                if name == "ParametrizedLinear" else "activation" if name in _ACTIVATION_MODULES
                else {"LayerNorm": "layer_norm", "BatchNorm1d": "batch_norm (running statistics)",
                      "PReLU": "relu(x) + w * (x - relu(x)), w a scale's parameter (one, or one per feature)",
                      "Flatten": "as flatten(x, start_dim, end_dim)"}.get(name, "identity"))
               for name in _MODULES]
    return sorted(modules + [(name, rule.summary) for name, rule in OPS.items()])


def op_table() -> str:
    """:func:`supported_ops` as the Markdown table of docs/io.md (a test keeps the two the same).

    >>> print(op_table().splitlines()[0])
    | PyTorch | symnet |
    """
    rows = [f"| `{name}` | {summary} |" for name, summary in supported_ops()]
    return "\n".join(["| PyTorch | symnet |", "|---|---|", *rows])


# --- the capture ---------------------------------------------------------------------------


class _Capture:
    """One traced module: its fx graph, the values each node became, and the names to check."""

    def __init__(self, module: Any, input_sizes: Sequence[int] | None) -> None:
        import torch
        import torch.fx as fx

        self.nn = torch.nn
        self.module = module
        tracer = fx.Tracer()  # n, w = x.shape: two getitems of the shape (UNPACK_SEQUENCE read by fx's Proxy)
        tracer.record_stack_traces = True
        modes = [(m, m.training) for m in module.modules()]
        module.eval()  # what is imported is the module at inference (dropout off, batch norm's running statistics)
        try:
            self.graph = tracer.trace(module)
        except Exception as exc:  # noqa: BLE001 - any failure of tracing user code is reported, with its type
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise UnsupportedLayerError(
                f"from_torch could not trace {type(module).__name__}.forward with torch.fx "
                f"({type(exc).__name__}: {first}); symnet reads a forward whose operations do not depend on the "
                "values of its input (no `if x.sum() > 0`, no loops over x's entries)") from None
        finally:
            for m, training in modes:
                m.training = training
        self.placeholders = [n for n in self.graph.nodes if n.op == "placeholder"]
        self.sizes = self._input_sizes(input_sizes)
        self.values: dict[Any, Any] = {}
        self.named: list[tuple[Any, str]] = []  # (fx node, symnet node name) in graph order
        self._squeezed: set[str] = set()  # fx nodes whose value PyTorch holds as (N,)
        self._current: Any = None
        self._taken: set[str] = set()
        self._double: Any = None

    def module_at(self, target: str) -> Any:
        return self.module.get_submodule(target)

    def array(self, tensor: Any, where: str) -> np.ndarray:
        """A parameter or buffer as float64 numpy (float32 weights arrive exactly)."""
        if not tensor.is_floating_point():
            raise UnsupportedLayerError(f"{where}: a {tensor.dtype} constant; symnet reads floating-point weights")
        return tensor.detach().cpu().double().numpy().copy()

    def double(self) -> Any:
        """A float64 copy of the module in eval mode (made once): what the check runs, and where
        parametrized weights are evaluated."""
        if self._double is None:
            import torch

            try:
                self._double = copy.deepcopy(self.module).to(torch.float64).eval()
            except Exception as exc:  # noqa: BLE001 - a module that cannot be copied
                raise SymnetError(f"from_torch: cannot make a float64 copy of {type(self.module).__name__} "
                                  f"({type(exc).__name__}); pass check=False to import it unchecked") from None
        return self._double

    def squeezed(self, tensor: g.Tensor) -> g.Tensor:
        """Mark the node being converted as one PyTorch holds as ``(N,)`` (``x[:, i]``, a sum without keepdim)."""
        self._squeezed.add(self._current.name)
        return tensor

    def is_squeezed(self, arg: Any) -> bool:
        return getattr(arg, "name", None) in self._squeezed

    def shape_of(self, value: Any, arg: Any, where: str) -> list[Any]:
        """The shape PyTorch holds ``value`` (of the fx node ``arg``) in: ``[N, w]``, ``[N]`` for an
        ``(N,)`` column, a :class:`_Held` value's own."""
        if isinstance(value, _Held):
            return list(value.shape)
        return [BATCH] if self.is_squeezed(arg) else [BATCH, _tensor(value, where).width]

    def query(self, value: Any, node: Any, where: str) -> tuple[Any, ...]:
        """``value.size()`` as a tuple of whole numbers and N (of a constant, its numpy shape)."""
        if isinstance(value, _Const):
            return tuple(int(v) for v in np.shape(value.value))
        return tuple(self.shape_of(value, node.args[0], where))

    def shaped(self, value: Any, shape: list[Any], where: str) -> Any:
        """``value``'s tensor held as ``shape`` (whole numbers and N): itself for ``[N, w]``, an ``(N,)``
        column for ``[N]`` of one feature, a :class:`_Held` value for axes of length 1 added; a shape
        that splits the features or moves the points off the first axis is refused."""
        x = value.tensor if isinstance(value, _Held) else _tensor(value, where)
        if shape == [BATCH, x.width]:
            return x
        if shape == [BATCH] and x.width == 1:
            return self.squeezed(x)
        core = [v for v in shape if v is BATCH or v != 1]  # the axes of length 1 left out: N first, then w
        if core == [BATCH, x.width] or (core == [BATCH] and x.width == 1):
            return _Held(x, tuple(shape))
        raise UnsupportedLayerError(f"{where}: gives an {shown(shape)} value from an (N, {x.width}) one; symnet's "
                                    f"tensors are (N, features): it reads reshapes that keep (N, {x.width}), turn an "
                                    "(N, 1) column into (N,) and back, or add axes of length 1 that are removed again")

    def shapes_read(self, node: Any, rule: _Rule | None) -> str:
        """What ``node`` reads of shapes (:attr:`_Rule.shapes`); of modules, ``nn.Flatten`` is a reshape."""
        if node.op == "call_module":
            return "reshape" if type(self.module_at(node.target)) is self.nn.Flatten else ""
        return rule.shapes if rule is not None else ""

    def _check_shapes(self, node: Any, rule: _Rule | None, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Refuse N read by an op that does not read shapes, and a value held with added axes read by one
        that is not a reshape or a shape query."""
        reads = self.shapes_read(node, rule)
        if reads == "":
            _no_batch((args, kwargs), _where(node))
        if reads not in ("reshape", "query"):
            for value in [*args, *kwargs.values()]:
                if isinstance(value, _Held):
                    raise UnsupportedLayerError(
                        f"{_where(node)} reads an {shown(value.shape)} value (an (N, {value.tensor.width}) tensor with "
                        "axes of length 1 added); symnet reads it only back to (N, w): squeeze, view, reshape or "
                        "flatten it first")

    def _follow_squeezed(self, node: Any, name: str, result: Any) -> None:
        """An op on tensors PyTorch holds as ``(N,)``: elementwise keeps them so, ``unsqueeze`` gives the column
        back; mixing them with ``(N, w)`` ones (which PyTorch broadcasts to ``(N, N)``) is an error."""
        inputs = [a for a in node.all_input_nodes if isinstance(self.values.get(a), g.Tensor)]
        flags = [a.name in self._squeezed for a in inputs]
        rule = OPS.get(name) if node.op != "call_module" else None
        if not any(flags) or not isinstance(result, g.Tensor) or self.shapes_read(node, rule) in ("reshape", "query"):
            return  # view, unsqueeze... say themselves how their result is held
        if rule is not None and (rule.elementwise == 1 or (rule.elementwise == 2 and all(flags))):
            self._squeezed.add(node.name)
            return
        raise UnsupportedLayerError(f"{_where(node)} reads a tensor PyTorch holds as (N,) (x[:, i], a sum without "
                                    "keepdim) together with (N, w) ones, which PyTorch broadcasts to (N, N); keep "
                                    "the feature axis (x[:, i:i+1], keepdim=True, or .unsqueeze(1))")

    def _input_sizes(self, given: Sequence[int] | None) -> list[int]:
        if not self.placeholders:
            raise UnsupportedLayerError(f"{type(self.module).__name__}.forward takes no input")
        for p in self.placeholders:
            if p.args or str(p.target).startswith("*"):
                raise UnsupportedLayerError(f"{type(self.module).__name__}.forward's argument {p.target!r} has a default "
                                            "or collects several (*args); symnet reads positional tensor inputs")
        if given is not None:
            if not isinstance(given, (list, tuple)) or not all(
                    isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in given):
                raise InputError(f"input_sizes={given!r}: give a list of whole numbers, one width per input")
            sizes = [int(s) for s in given]
            if len(sizes) != len(self.placeholders) or min(sizes) < 1:
                raise UnsupportedLayerError(f"input_sizes={list(given)}: forward takes {len(self.placeholders)} "
                                            f"input(s) ({', '.join(p.target for p in self.placeholders)}), each >= 1")
            return sizes
        sizes = []
        for p in self.placeholders:
            size = self._size_from_users(p)
            if size is None:
                raise UnsupportedLayerError(
                    f"cannot tell the width of forward's input {p.target!r} from the first op that reads it; give "
                    f"from_torch(module, input_sizes=[...]) with one width per input")
            sizes.append(size)
        return sizes

    def _size_from_users(self, node: Any, depth: int = 0) -> int | None:
        """The width of ``node``'s values, read off the first op using it that fixes it: a module's
        ``in_features``, a constant operand's length, a weight's columns; ops that keep the width
        (activations, arithmetic with numbers) pass the question on to their own users."""
        if depth > 50:
            return None
        for user in node.users:
            name = str(getattr(user.target, "__name__", user.target)).strip("_")
            if user.op == "call_module":
                m = self.module_at(user.target)
                for attr in ("in_features", "num_features"):
                    if isinstance(getattr(m, attr, None), int):
                        return int(getattr(m, attr))
                if type(m).__name__ == "LayerNorm" and len(m.normalized_shape) == 1:
                    return int(m.normalized_shape[0])
                if type(m).__name__ == "PReLU" and m.num_parameters > 1:
                    return int(m.num_parameters)
                keeps = type(m).__name__ in _ACTIVATION_MODULES + ("Identity", "Dropout", "AlphaDropout", "Flatten",
                                                                   "PReLU")
            elif user.op in ("call_function", "call_method"):
                constants = [self._attr(a.target) for a in user.args if getattr(a, "op", None) == "get_attr"]
                if name == "linear" and len(user.args) > 1 and getattr(user.args[1], "op", None) == "get_attr":
                    return int(self._attr(user.args[1].target).shape[1])
                if name == "matmul" and constants and user.args[0] is node:
                    return int(constants[0].shape[0])
                rule = OPS.get(name)
                if rule is not None and rule.elementwise == 2:
                    for c in constants:
                        if c.dim() >= 1 and c.shape[-1] > 1:
                            return int(c.shape[-1])
                # a reshape passes the width on (one that does not keep (N, w) is refused when converted)
                keeps = rule is not None and (rule.elementwise > 0 or (rule.shapes == "reshape" and user.args
                                                                       and user.args[0] is node))
            else:
                keeps = False
            if keeps:
                found = self._size_from_users(user, depth + 1)
                if found is not None:
                    return found
        return None

    def _attr(self, target: str) -> Any:
        owner, _, name = target.rpartition(".")
        return getattr(self.module.get_submodule(owner) if owner else self.module, name)

    def run(self) -> tuple[list[g.Tensor], list[g.Tensor]]:
        import torch

        inputs = [g.input(size) for size in self.sizes]
        outputs: list[Any] = []
        for node in self.graph.nodes:
            if node.op == "placeholder":
                self.values[node] = inputs[self.placeholders.index(node)]
                continue
            if node.op == "output":
                outputs = self._outputs(node)
                continue
            if node.op == "get_attr":
                value = self._attr(node.target)
                if not isinstance(value, torch.Tensor):
                    raise UnsupportedLayerError(f"{_where(node)}: reads {type(value).__name__}, not a tensor")
                trainable = isinstance(value, torch.nn.Parameter) and value.requires_grad  # what PyTorch trains
                self.values[node] = _Const(self.array(value, _where(node)), trainable)
                continue
            self._current = node
            args = [self._value(a) for a in node.args]
            kwargs = {k: self._value(v) for k, v in node.kwargs.items()}
            if node.op == "call_module":
                self._check_shapes(node, None, args, kwargs)
                result = _converted(_module_rule, self, node, args, kwargs)
                name = "module"
            else:
                name = str(getattr(node.target, "__name__", node.target) if node.op == "call_function" else node.target)
                if name.startswith("__") and name.endswith("__"):
                    name = name[2:-2]  # Tensor.__getitem__, Tensor.__add__
                elif name.endswith("_") or kwargs.get("inplace") is True:
                    raise UnsupportedLayerError(
                        f"{_where(node)} changes a tensor in place, which tracing records as an op whose result "
                        "nothing reads; write it out of place (x = torch.relu(x), not x.relu_())")
                rule = OPS.get(name)
                if rule is None:
                    raise UnsupportedLayerError(
                        f"{_where(node)} is not an op symnet reads; it reads {', '.join(sorted(OPS))} and the modules "
                        f"{', '.join(sorted(_MODULES))}. Write the op with these, or build the network with "
                        "symnet.graph")
                self._check_shapes(node, rule, args, kwargs)
                result = _converted(rule.convert, self, node, args, kwargs)
            self._follow_squeezed(node, name, result)
            self.values[node] = result
            if isinstance(result, g.Tensor) and result.op != "input" and result.name is None:
                result.name = node_name(node.name, self._taken, "t")
                self.named.append((node, result.name))
        return inputs, outputs

    def _value(self, arg: Any) -> Any:
        import torch.fx as fx

        if isinstance(arg, fx.Node):
            return self.values[arg]
        if isinstance(arg, (list, tuple)):
            return type(arg)(self._value(a) for a in arg)
        if isinstance(arg, dict):
            return {k: self._value(v) for k, v in arg.items()}
        return arg

    def _outputs(self, node: Any) -> list[g.Tensor]:
        result = self._value(node.args[0])
        items = list(result) if isinstance(result, (list, tuple)) else [result]
        if isinstance(result, dict) or not items:
            raise UnsupportedLayerError(f"{type(self.module).__name__}.forward returns "
                                        f"{'a dict' if isinstance(result, dict) else 'nothing'}; symnet reads a tensor "
                                        "or a tuple of tensors")
        for k, item in enumerate(items):
            if isinstance(item, _Held):
                raise UnsupportedLayerError(f"{type(self.module).__name__}.forward's output {k} is held as "
                                            f"{shown(item.shape)}; symnet's outputs are (N, w) or (N,): squeeze or "
                                            "view it back")
            if not isinstance(item, g.Tensor) or item.op == "input":
                raise UnsupportedLayerError(f"{type(self.module).__name__}.forward's output {k} is "
                                            f"{'an input itself' if isinstance(item, g.Tensor) else 'not computed from the inputs'}")
        return items


def _converted(rule: Callable[..., Any], cap: _Capture, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """``rule``'s result; a call it cannot read (wrong argument types or counts) as an error naming the node."""
    try:
        return rule(cap, node, args, kwargs)
    except SymnetError:
        raise
    except (IndexError, KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError) as exc:
        raise UnsupportedLayerError(f"{_where(node)}: symnet cannot read this call's arguments "
                                    f"({type(exc).__name__}: {str(exc)[:160]})") from None


def from_torch_graph(module: Any, *, check: bool = True, input_sizes: Sequence[int] | None = None) -> Network:
    """The symnet network of any module whose ``forward`` is a graph of supported ops (see the module docstring).

    Args:
        module: an ``nn.Module`` (a ``torch.compile`` wrapper is unwrapped).
        check: compare with the module, node by node and end to end, in float64 (see the module docstring).
        input_sizes: the width of each of ``forward``'s inputs, where the first op reading it cannot tell.

    Several inputs are laid side by side in the order ``forward`` takes them: the network's
    ``X`` is ``[x1, x2, ...]``.  Several outputs are laid side by side too; an output PyTorch
    holds as ``(N,)`` (``x.sum(-1)``) is one column.

    >>> import torch
    >>> class Residual(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.inner, self.head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    ...     def forward(self, x):
    ...         return self.head(x + torch.tanh(self.inner(x)))
    >>> from_torch_graph(Residual())
    Network(graph 2 -> 1: inner, tanh, add, head; numeric)
    """
    module = getattr(module, "_orig_mod", module)  # torch.compile's OptimizedModule
    capture = _Capture(module, input_sizes)
    inputs, outputs = capture.run()
    net = g.network(inputs, outputs)
    if check:
        _check(net, capture)
    return net


def _check(net: Network, capture: _Capture) -> None:
    """Node by node against the traced graph run on a float64 copy, then ``module(x)`` itself."""
    import torch
    import torch.fx as fx

    from ..check.backprop import node_values

    double = capture.double()
    points = check_points(builtins.sum(capture.sizes))
    bounds = np.cumsum([0, *capture.sizes])

    def inputs() -> list[Any]:  # fresh copies each run: forward may change its inputs in place
        return [torch.tensor(points[:, a:b]) for a, b in zip(bounds, bounds[1:])]

    seen: dict[str, np.ndarray] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n: Any) -> Any:
            out = super().run_node(n)
            if isinstance(out, torch.Tensor):
                seen[n.name] = out.detach().double().numpy().copy()
            return out

    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Recorder(fx.GraphModule(double, capture.graph)).run(*inputs())
            whole = double(*inputs())
    except Exception as exc:  # noqa: BLE001 - the user's forward can raise anything
        raise ImportMismatchError(
            f"from_torch({type(capture.module).__name__}): running the module on the check's points failed "
            f"({type(exc).__name__}: {str(exc)[:200]}), so the import cannot be checked; pass check=False to import "
            "the structure as read anyway") from None
    ours = node_values(net, points)
    scale = 1.0
    for node, name in capture.named:
        if name not in ours:  # a traced graph that is a plain chain becomes a chain network, named z1, a1, ...
            continue  # checked end to end below
        theirs = seen[node.name].reshape(len(points), -1)
        mine = ours[name]
        scale = max(scale, float(np.max(np.abs(theirs), initial=0.0)))
        gap = _difference(mine, theirs)
        if not gap <= CHECK_RTOL * scale:
            raise ImportMismatchError(
                f"from_torch({type(capture.module).__name__}): {_where(node)} gives values that differ from "
                f"PyTorch's by {gap:.3g} (symnet node {name!r}); pass check=False to import the structure as read "
                "anyway")
    items = list(whole) if isinstance(whole, (tuple, list)) else [whole]
    theirs = np.concatenate([np.asarray(t.detach().double().numpy()).reshape(len(points), -1) for t in items], axis=1)
    gap = _difference(ours[net.graph.output], theirs)
    if not gap <= CHECK_RTOL * scale:
        raise ImportMismatchError(
            f"from_torch({type(capture.module).__name__}): module(x) differs from the traced graph by {gap:.3g} "
            "although every node agreed: forward does something tracing did not record; pass check=False to "
            "import the structure as read anyway")
