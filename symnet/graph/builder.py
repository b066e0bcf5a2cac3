"""Writing a graph in a few lines: functions on :class:`Tensor` handles, then :func:`network`.

Each function returns a new :class:`Tensor` (a node not yet in any graph); ``+``, ``-`` and
``*`` between tensors (or with numbers) build nodes too.  :func:`network` collects every node
the outputs depend on, names them in order, and returns a frozen, shape-checked
:class:`~symnet.Network`.

Weights are numbers or SymPy expressions (numeric, symbolic or mixed); give a layer's number of
units instead of its weights (``dense(x, 16, "tanh")``) for symbolic weights named like
:meth:`Network.symbolic`'s (``w{k}_{i}_{j}``, ``b{k}_{j}`` for the k-th dense layer).

A residual block:

>>> from symnet.graph import input, dense, network
>>> x = input(2)
>>> h = dense(x, [[1.0, 0.5], [-0.5, 1.0]], [0.0, 0.1], "tanh")
>>> h = h + dense(h, [[0.3, 0.0], [0.0, 0.3]], None, "tanh")
>>> net = network(x, dense(h, [[1.0], [1.0]], [0.0]))
>>> net
Network(graph 2 -> 1: z1, a1, z2, a2, add1, z3; numeric)

A two-layer chain written this way is the chain ``Network.from_weights`` builds:

>>> import symnet
>>> x = input(1)
>>> network(x, dense(dense(x, 3, "tanh"), 1)) == symnet.Network.symbolic([1, 3, 1], ["tanh", "linear"])
True
"""

from __future__ import annotations

import builtins
import itertools
import math
from typing import Any, Sequence

import numpy as np
import sympy

from .. import activations as _activations
from ..activations import Activation, T
from ..errors import ActivationError, LimitError, ShapeError, WeightError
from ..limits import MAX_GRAPH_UNITS, MAX_GRAPH_WEIGHTS
from ..weights import brief, matrix as _as_matrix, refuse_masked, shape_of, symbols as symbols_of
from .ir import Graph, Node, check_name

__all__ = ["Tensor", "input", "dense", "activation", "add", "sub", "mul", "scale", "shift", "rescale", "matmul",
           "concat", "slice", "sum", "mean", "softmax", "log_softmax", "layer_norm", "rms_norm", "normalize",
           "batch_norm", "fourier_features", "blend", "inner", "network"]

_ids = itertools.count()


class Tensor:
    """A node under construction: what a builder function returns and takes.

    Attributes:
        width: its number of units (features per point).
    """

    __slots__ = ("op", "args", "params", "attrs", "width", "name", "_id", "names")

    #: numpy must hand ``array * tensor`` to :meth:`__rmul__`, not broadcast over the tensor as
    #: an object (which built an array of tensors, a different network).
    __array_ufunc__ = None

    def __init__(self, op: str, args: Sequence[Tensor], params: dict[str, Any], attrs: dict[str, Any],
                 width: int, name: str | None = None, names: Sequence[str] | None = None) -> None:
        self.op, self.args, self.params, self.attrs = op, tuple(args), params, attrs
        self.width = int(width)
        self.name = None if name is None else check_name(name)
        self.names = names
        self._id = next(_ids)

    def __add__(self, other: Any) -> Tensor:
        return add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return mul(other, self)

    def __neg__(self) -> Tensor:
        return rescale(self, -1, 0)

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, int) and not isinstance(index, bool):
            index = index % self.width if -self.width <= index < self.width else index
            return slice(self, index, index + 1)
        if isinstance(index, builtins.slice) and index.step in (None, 1):
            start, stop, _ = index.indices(self.width)
            return slice(self, start, stop)
        raise ShapeError(f"index a tensor with an integer or a contiguous slice, not {index!r}")

    def __repr__(self) -> str:
        return f"Tensor({self.name or self.op}, width={self.width})"


def _tensor(value: Any, what: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise ShapeError(f"{what} must be a symnet.graph Tensor (from input(), dense(), ...), not {type(value).__name__}")
    return value


def _row(values: Any, width: int | None, where: str) -> sympy.ImmutableMatrix:
    """A row ``(1, n)`` of numbers or expressions; a scalar is ``(1, 1)``."""
    refuse_masked(values, where)
    if isinstance(values, sympy.MatrixBase):
        values = list(values)
    float_array = isinstance(values, np.ndarray) and values.dtype.kind == "f"  # stays floats: the fast path
    array = (values if float_array else np.asarray(values, dtype=object)).reshape(-1)
    n = array.size
    if width is not None and n not in (1, width):
        raise ShapeError(f"{where} has {n} entries but 1 or {width} are needed")
    return _as_matrix(array.reshape(1, n), (1, n), where)


def input(width: int, names: Sequence[str] | None = None, name: str | None = None) -> Tensor:  # noqa: A001
    """An input of ``width`` features (names default to ``x0, x1, ...`` over all inputs of the network).

    Several inputs (a DeepONet's sensors and coordinates) are laid side by side, in the order
    :func:`network` lists them.
    """
    width = check_units(width, "an input's width")
    if names is not None and len(names) != width:
        raise ShapeError(f"{len(names)} names for an input of width {width}")
    return Tensor("input", (), {}, {}, int(width), name, names)


def dense(x: Tensor, weight: Any, bias: Any = None, activation: Any = None, *, name: str | None = None,
          layout: str = "keras", parametrization: str = "plain", **params: Any) -> Tensor:
    """``activation(x @ W + b)``: ``W`` ``(fan_in, units)`` (``layout="torch"``: ``(units, fan_in)``).

    ``weight`` an int gives that many units with symbolic weights (``bias=False`` for none);
    then ``dense(x, 16, "tanh")`` names the activation second.
    ``bias=None`` is a zero bias.  ``activation=None`` adds no activation node.
    ``parametrization="weight_norm"`` takes ``v=`` and ``g=`` (``W[:, j] = g_j v[:, j]/|v[:, j]|``),
    ``"factorized"`` takes ``s=`` and ``V=`` (``W[:, j] = exp(s_j) V[:, j]``); ``weight`` is
    then the number of units.
    """
    x = _tensor(x, "dense's input")
    if isinstance(weight, (int, np.integer)) and not isinstance(weight, bool) and activation is None and \
            isinstance(bias, (str, Activation, sympy.Lambda)):
        bias, activation = None, bias  # dense(x, 16, "tanh")
    if layout not in ("keras", "torch"):
        raise ShapeError(f"layout must be 'keras' or 'torch', not {layout!r}")
    attrs: dict[str, Any] = {}
    if parametrization != "plain":
        if parametrization not in ("weight_norm", "factorized"):
            raise ShapeError(f"parametrization {parametrization!r} is unknown; use 'plain', 'weight_norm' or 'factorized'")
        needed = ("v", "g") if parametrization == "weight_norm" else ("s", "V")
        if set(params) != set(needed):
            raise ShapeError(f"parametrization={parametrization!r} takes {needed[0]}= and {needed[1]}=, "
                             f"got {sorted(params) or 'neither'}")
        units = check_units(weight, "dense units")
        matrices = {k: (_row(v, units, f"dense {k}") if k in ("g", "s")
                        else _weight_matrix(v, x.width, layout, f"dense {k}")) for k, v in params.items()}
        attrs["parametrization"] = parametrization
    elif params:
        raise ShapeError(f"dense got unknown arguments {sorted(params)}")
    elif isinstance(weight, (int, np.integer)) and not isinstance(weight, bool):
        units, matrices = check_units(weight, "dense units"), {"W": None}
        if x.width * units > MAX_GRAPH_WEIGHTS:
            raise LimitError(f"dense of {units:,} units on an input of width {x.width:,} has {x.width * units:,} "
                             f"weights, more than symnet.limits.MAX_GRAPH_WEIGHTS = {MAX_GRAPH_WEIGHTS:,}")
    else:
        matrices = {"W": _weight_matrix(weight, x.width, layout, "dense W")}
        units = matrices["W"].shape[1]
    symbolic = matrices.get("W", 0) is None
    if bias is False or (bias is None and not symbolic):
        matrices["b"] = sympy.ImmutableMatrix.zeros(1, units)
    elif bias is None or bias is True:
        matrices["b"] = None  # symbolic biases b{k}_{j}, named by network()
    else:
        matrices["b"] = _row(bias, None, "dense b")
        if matrices["b"].shape[1] != units:
            raise ShapeError(f"dense b has {matrices['b'].shape[1]} entries but W has {units} columns")
    attrs["units"] = units
    z = Tensor("dense", (x,), matrices, attrs, units, name)
    return z if activation is None else _activate(z, activation)


def check_units(value: Any, where: str) -> int:
    """A width given by the user: a positive integer, at most :data:`~symnet.limits.MAX_GRAPH_UNITS`."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ShapeError(f"{where} must be a positive integer, not {brief(value)}")
    if value > MAX_GRAPH_UNITS:
        raise LimitError(f"{where} is {int(value):,}, more than symnet.limits.MAX_GRAPH_UNITS = {MAX_GRAPH_UNITS:,}")
    return int(value)


def _weight_matrix(values: Any, fan_in: int, layout: str, where: str) -> sympy.ImmutableMatrix:
    refuse_masked(values, where)
    shape = shape_of(values)
    if math.prod(shape) > MAX_GRAPH_WEIGHTS:
        raise LimitError(f"{where} has shape {tuple(shape)}: {math.prod(shape):,} entries, more than "
                         f"symnet.limits.MAX_GRAPH_WEIGHTS = {MAX_GRAPH_WEIGHTS:,}")
    if len(shape) == 0:
        values, shape = [[values]], (1, 1)
    elif len(shape) == 1:
        values = np.asarray(values, dtype=object).reshape(fan_in, -1) if shape[0] % fan_in == 0 else values
        shape = shape_of(values)
    if len(shape) != 2:
        raise ShapeError(f"{where} must be 2-D (fan_in, units) but has shape {shape}")
    if layout == "torch":
        values = (values.T if isinstance(values, np.ndarray) and values.dtype.kind == "f"  # stays floats
                  else np.asarray(values.tolist() if isinstance(values, sympy.MatrixBase) else values, dtype=object).T)
        shape = (shape[1], shape[0])
    if shape[0] != fan_in:
        hint = "; it looks like the (units, fan_in) layout: pass layout='torch'" if shape[1] == fan_in else ""
        raise ShapeError(f"{where} has shape {tuple(shape)} but its input has width {fan_in}{hint}")
    return _as_matrix(values, tuple(shape), where)


def _activate(x: Tensor, spec: Any, name: str | None = None) -> Tensor:
    try:
        act = _activations.get(spec)
    except ActivationError as exc:
        raise ActivationError(f"activation of {name or 'a node'}: {exc}") from exc.__cause__
    return Tensor("activation", (x,), {}, {"activation": act}, x.width, name)


def activation(x: Tensor, spec: Any, *, name: str | None = None) -> Tensor:
    """``f(x)`` unit by unit: a registered name (``"tanh"``, ``"sin"``), an :class:`Activation`, a
    SymPy ``Lambda`` or a traceable callable; ``"softmax"`` and ``"log_softmax"`` act on the whole node."""
    return _activate(_tensor(x, "activation's input"), spec, name)


def add(a: Any, b: Any, *, name: str | None = None) -> Tensor:
    """``a + b`` unit by unit (a width-1 tensor broadcasts; a number or row is a fixed shift)."""
    if not isinstance(a, Tensor):
        a, b = b, a
    a = _tensor(a, "add's input")
    if not isinstance(b, Tensor):
        return _fixed(a, 1, b, name, "+ a constant")
    return Tensor("add", (a, b), {}, {}, _broadcast(a, b, "add"), name)


def sub(a: Any, b: Any, *, name: str | None = None) -> Tensor:
    """``a - b`` unit by unit (a number or row on either side is a fixed shift)."""
    if not isinstance(b, Tensor):
        return _fixed(_tensor(a, "sub's input"), 1, -_row(b, a.width, "sub's constant"), name, "- a constant")
    if not isinstance(a, Tensor):
        return _fixed(b, -1, _row(a, b.width, "sub's constant"), name, "a constant minus a tensor")
    return Tensor("sub", (a, b), {}, {}, _broadcast(a, b, "sub"), name)


def mul(a: Any, b: Any, *, name: str | None = None) -> Tensor:
    """``a * b`` unit by unit (bilinear); a number or row times a tensor is a fixed scale."""
    if not isinstance(a, Tensor):
        a, b = b, a
    a = _tensor(a, "mul's input")
    if not isinstance(b, Tensor):
        return _fixed(a, b, 0, name, "* a constant")
    return Tensor("mul", (a, b), {}, {}, _broadcast(a, b, "mul"), name)


def _fixed(x: Tensor, scale: Any, offset: Any, name: str | None, what: str) -> Tensor:
    """A tensor with a constant on one side of ``+ - *``: a fixed ``rescale``, its errors saying so."""
    try:
        return rescale(x, scale, offset, name=name)
    except ShapeError as exc:
        raise ShapeError(f"tensor {what} (a fixed rescale; scale() and shift() take trainable ones): {exc}") from None


def _broadcast(a: Tensor, b: Tensor, op: str) -> int:
    if a.width != b.width and 1 not in (a.width, b.width):
        raise ShapeError(f"{op}: widths {a.width} and {b.width} differ (only a width-1 tensor broadcasts)")
    return max(a.width, b.width)


def scale(x: Tensor, s: Any, *, name: str | None = None) -> Tensor:
    """``x * s`` with a *trainable* scalar or row ``s`` (a number, a SymPy symbol, or a row of them)."""
    x = _tensor(x, "scale's input")
    return Tensor("scale", (x,), {"s": _row(s, x.width, "scale s")}, {}, x.width, name)


def shift(x: Tensor, t: Any, *, name: str | None = None) -> Tensor:
    """``x + t`` with a *trainable* scalar or row ``t``."""
    x = _tensor(x, "shift's input")
    return Tensor("shift", (x,), {"t": _row(t, x.width, "shift t")}, {}, x.width, name)


def rescale(x: Tensor, scale: Any = 1, offset: Any = 0, *, name: str | None = None) -> Tensor:  # noqa: F811
    """``x * scale + offset`` by fixed constants (not trained): Keras' ``Rescaling``."""
    x = _tensor(x, "rescale's input")
    attrs = {"scale": _constant(scale, x.width, "rescale scale"), "offset": _constant(offset, x.width, "rescale offset")}
    return Tensor("rescale", (x,), {}, attrs, x.width, name)


def _constant(values: Any, width: int | None, where: str) -> sympy.ImmutableMatrix:
    row = _row(values, width, where)
    if row.free_symbols:
        raise ShapeError(f"{where} must be numbers (constants are not parameters); use scale/shift for trainable ones")
    return row


def matmul(x: Tensor, matrix: Any, *, name: str | None = None) -> Tensor:
    """``x @ C`` by a fixed constant matrix ``C`` ``(width, n)`` (not trained)."""
    x = _tensor(x, "matmul's input")
    C = _weight_matrix(matrix, x.width, "keras", "matmul's matrix")
    if C.free_symbols:
        raise ShapeError("matmul's matrix must be numbers; use dense(..., bias=None) for trainable weights")
    return Tensor("matmul", (x,), {}, {"matrix": C}, C.shape[1], name)


def concat(*tensors: Tensor, name: str | None = None) -> Tensor:
    """The features of ``tensors`` side by side."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if not tensors:
        raise ShapeError("concat needs at least one tensor")
    tensors = tuple(_tensor(t, "concat's input") for t in tensors)
    return Tensor("concat", tensors, {}, {}, builtins.sum(t.width for t in tensors), name)


def slice(x: Tensor, start: int, stop: int, *, name: str | None = None) -> Tensor:  # noqa: A001
    """Features ``start .. stop - 1`` (also ``x[start:stop]``, ``x[i]``)."""
    x = _tensor(x, "slice's input")
    if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop <= x.width):
        raise ShapeError(f"slice [{start}:{stop}] is not a non-empty range inside width {x.width}")
    return Tensor("slice", (x,), {}, {"start": start, "stop": stop}, stop - start, name)


def sum(x: Tensor, *, name: str | None = None) -> Tensor:  # noqa: A001
    """The sum of the features (width 1)."""
    return Tensor("sum", (_tensor(x, "sum's input"),), {}, {}, 1, name)


def mean(x: Tensor, *, name: str | None = None) -> Tensor:
    """The mean of the features (width 1)."""
    return Tensor("mean", (_tensor(x, "mean's input"),), {}, {}, 1, name)


# --- composites: written as nodes of the three families --------------------------------------

_RSQRT = _activations.from_form(1 / sympy.sqrt(T))


def softmax(x: Tensor, *, name: str | None = None) -> Tensor:
    """``exp(x_j) / sum_k exp(x_k)``."""
    return _activate(_tensor(x, "softmax's input"), "softmax", name)


def log_softmax(x: Tensor, *, name: str | None = None) -> Tensor:
    """``x_j - log(sum_k exp(x_k))``: exact in the tails, where ``log(softmax(x))`` is ``log(0)``."""
    return _activate(_tensor(x, "log_softmax's input"), "log_softmax", name)


def _eps(eps: Any, where: str) -> float:
    """A norm's ``eps``: a finite number > 0 (``sqrt(var + eps)`` of a constant input is ``sqrt(eps)``)."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)) \
            or not math.isfinite(eps) or eps <= 0:
        raise ShapeError(f"{where}: eps must be a finite number > 0, not {brief(eps)}")
    return float(eps)


def layer_norm(x: Tensor, gamma: Any = 1, beta: Any = 0, eps: float = 1e-5) -> Tensor:
    """``(x - mean(x)) / sqrt(var(x) + eps) * gamma + beta`` (trainable ``gamma``, ``beta``; ``None``
    leaves either out, as PyTorch's ``elementwise_affine=False`` or Keras' ``scale``/``center=False``)."""
    x = _tensor(x, "layer_norm's input")
    eps = _eps(eps, "layer_norm")
    centred = x - mean(x)
    out = centred * activation(rescale(mean(centred * centred), 1, eps), _RSQRT)
    out = out if gamma is None else scale(out, gamma)
    return out if beta is None else shift(out, beta)


def rms_norm(x: Tensor, gamma: Any = 1, eps: float = 1e-6) -> Tensor:
    """``x / sqrt(mean(x^2) + eps) * gamma``."""
    x = _tensor(x, "rms_norm's input")
    eps = _eps(eps, "rms_norm")
    return scale(x * activation(rescale(mean(x * x), 1, eps), _RSQRT), gamma)


def normalize(x: Tensor, mean: Any, std: Any) -> Tensor:  # noqa: F811
    """``(x - mean) / std`` with fixed ``mean`` and ``std`` (input normalisation)."""
    x = _tensor(x, "normalize's input")
    m = _constant(mean, x.width, "normalize mean")
    s = _constant(std, x.width, "normalize std")
    if any(v == 0 for v in s):
        raise ShapeError("normalize: std has a zero entry")
    inv = sympy.ImmutableMatrix(1, s.shape[1], [1 / v for v in s])
    offset = sympy.ImmutableMatrix(1, max(m.shape[1], s.shape[1]),
                                   lambda _, j: -m[0, 0 if m.shape[1] == 1 else j] * inv[0, 0 if inv.shape[1] == 1 else j])
    return rescale(x, inv, offset)


def batch_norm(x: Tensor, mean: Any, var: Any, gamma: Any = 1, beta: Any = 0, eps: float = 1e-3) -> Tensor:
    """BatchNorm at inference: ``(x - mean) / sqrt(var + eps) * gamma + beta``, fixed constants."""
    x = _tensor(x, "batch_norm's input")
    m, v = _constant(mean, x.width, "batch_norm mean"), _constant(var, x.width, "batch_norm var")
    g, b = _constant(gamma, x.width, "batch_norm gamma"), _constant(beta, x.width, "batch_norm beta")
    pick = lambda row, j: row[0, 0 if row.shape[1] == 1 else j]  # noqa: E731
    eps = _eps(eps, "batch_norm")
    for j in range(x.width):
        if not (pick(v, j) + sympy.Float(eps)).is_positive:
            raise ShapeError(f"batch_norm: var[{j}] + eps = {brief(pick(v, j) + sympy.Float(eps))} must be > 0 "
                             "(a variance is >= 0)")
    factor = [pick(g, j) / sympy.sqrt(pick(v, j) + sympy.Float(eps)) for j in range(x.width)]
    return rescale(x, factor, [pick(b, j) - pick(m, j) * factor[j] for j in range(x.width)])


def fourier_features(x: Tensor, B: Any) -> Tensor:
    """``[cos(x B), sin(x B)]`` with a fixed matrix ``B`` ``(width, m)``: width ``2 m``."""
    projected = matmul(x, B)
    return concat(activation(projected, "cos"), activation(projected, "sin"))


def blend(f: Tensor, h: Tensor, alpha: Any) -> Tensor:
    """``alpha * f + (1 - alpha) * h`` with a trainable scalar ``alpha`` (PirateNet's residual)."""
    return add(scale(sub(f, h), alpha), h)


def inner(a: Tensor, b: Tensor) -> Tensor:
    """``sum_k a_k b_k``: a DeepONet's branch . trunk (width 1)."""
    return sum(mul(a, b))


# --- the network -------------------------------------------------------------------------------

def network(inputs: Tensor | Sequence[Tensor], outputs: Tensor | Sequence[Tensor]) -> Any:
    """The :class:`~symnet.Network` computing ``outputs`` (several are laid side by side) from ``inputs``.

    Nodes are named in order of definition (``z1, a1, ...`` for dense layers and their
    activations, ``add1, mul1, ...`` for the others) unless given a ``name``; symbolic dense
    weights are named ``w{k}_{i}_{j}``, ``b{k}_{j}``.
    """
    from ..network import Network

    inputs, outputs = (_tensors(given, what) for given, what in ((inputs, "inputs"), (outputs, "outputs")))
    if not inputs or not outputs:
        raise ShapeError("network needs at least one input and one output")
    for t in inputs:
        if _tensor(t, "an input").op != "input":
            raise ShapeError(f"{t!r} is not an input(); pass the tensors input() returned")
    if len({id(t) for t in inputs}) != len(inputs):
        raise ShapeError("an input is listed twice")
    order = _collect([_tensor(t, "an output") for t in outputs])
    for t in order:
        if t.op == "input" and all(t is not i for i in inputs):
            raise ShapeError(f"the outputs depend on an input ({t.name or 'unnamed'}, width {t.width}) not listed in "
                             "network(inputs, ...)")
    symbols = _input_symbols(inputs)
    names: dict[int, str] = {}
    nodes: list[Node] = []
    counts: dict[str, int] = {}
    taken = {t.name for t in order if t.name} | {"x"}
    if len([t for t in order if t.name]) != len({t.name for t in order if t.name}):
        raise ShapeError("two nodes have the same name; give every node its own")

    def fresh(prefix: str) -> str:
        while True:
            counts[prefix] = counts.get(prefix, 0) + 1
            candidate = f"{prefix}{counts[prefix]}"
            if candidate not in taken:
                taken.add(candidate)
                return candidate

    offset = 0
    dense_count = 0
    for t in inputs:
        if len(inputs) == 1:
            names[t._id] = "x"
        else:
            names[t._id] = t.name or fresh("in")
            nodes.append(Node(names[t._id], "slice", ("x",), {}, {"start": offset, "stop": offset + t.width}, t.width))
        offset += t.width
    given = {symbol.name for t in order for matrix in t.params.values() if matrix is not None
             for symbol in symbols_of(matrix)}
    generated: dict[str, str] = {}  # a generated weight name -> its node's dense number

    def named(text: str, k: int) -> sympy.Symbol:
        generated[text] = f"the {_ordinal(k)} dense node"
        return sympy.Symbol(text, real=True)

    for t in order:
        if t.op == "input":
            continue
        params = dict(t.params)
        if t.op == "dense":
            dense_count += 1
            k = dense_count
            fan_in = t.args[0].width
            if params.get("W", 0) is None:
                params["W"] = sympy.ImmutableMatrix(fan_in, t.width, lambda i, j: named(f"w{k}_{i}_{j}", k))
            if params.get("b", 0) is None:
                params["b"] = sympy.ImmutableMatrix(1, t.width, lambda _, j: named(f"b{k}_{j}", k))
            name = t.name or fresh("z")
            if not t.name:
                counts["a"] = counts["z"] - 1  # the activation after z{k} is a{k}
        elif t.op == "activation":
            name = t.name or fresh("a")
        else:
            name = t.name or fresh(t.op)
        names[t._id] = name
        nodes.append(Node(name, t.op, tuple(names[a._id] for a in t.args), params, t.attrs, t.width))
    clash = sorted(given & generated.keys())
    if clash:
        raise WeightError(f"the symbol {clash[0]!r} you gave is also the name symnet gives a weight of "
                          f"{generated[clash[0]]}, which would tie the two: rename yours, or give that node's "
                          "weights yourself")
    output = names[outputs[0]._id]
    if len(outputs) > 1:
        output = fresh("heads")
        nodes.append(Node(output, "concat", tuple(names[t._id] for t in outputs), {}, {}, 0))
    elif output == "x":
        raise ShapeError("the output is the input itself; add at least one node")
    return Network.from_graph(Graph(symbols, nodes, output))


def _tensors(given: Any, what: str) -> list[Any]:
    """``network``'s inputs or outputs as a list: one tensor, or a list or tuple of them."""
    if isinstance(given, Tensor):
        return [given]
    if isinstance(given, (list, tuple)):
        return list(given)
    raise ShapeError(f"network's {what} must be a symnet.graph Tensor or a list of them (from input(), dense(), "
                     f"...), not {type(given).__name__}")


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def _collect(outputs: list[Tensor]) -> list[Tensor]:
    """Every tensor the outputs depend on, each after its arguments, in order of definition."""
    seen: dict[int, Tensor] = {}
    stack = list(outputs)
    while stack:
        t = stack.pop()
        if t._id in seen:
            continue
        seen[t._id] = t
        stack.extend(t.args)
    return sorted(seen.values(), key=lambda t: t._id)


def _input_symbols(inputs: list[Tensor]) -> tuple[sympy.Symbol, ...]:
    names: list[str] = []
    for t in inputs:
        names += list(t.names) if t.names is not None else [None] * t.width  # type: ignore[list-item]
    total = len(names)
    result = [n if n is not None else f"x{i}" for i, n in enumerate(names)]
    for n in result:
        check_name(n, "input name")
    if len(set(result)) != total:
        raise ShapeError(f"input names {result} must be distinct")
    return tuple(sympy.Symbol(n, real=True) for n in result)
