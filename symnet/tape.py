"""Reverse mode over numpy expressions: exact gradients of a residual written in numpy terms.

A training residual is user code -- ``r.laplacian[:, 0] + f(P)``, ``r[(1,)] + 6 * u * r[(0,)] +
r[(0, 0, 0)]`` -- over a kernel's results.  symnet hands it :class:`Traced` arrays in place of
the results: each records the operation that made it (arithmetic, powers, indexing, sums and
the numpy functions in :data:`UFUNCS`), and :func:`gradients` runs the record backwards.  Any
other operation on a traced array is a :class:`~symnet.errors.ResidualError` naming it, never a
silently wrong gradient: a residual symnet cannot differentiate is refused.

>>> x = Traced(np.array([1.0, 2.0]))
>>> y = (np.sin(x) * x ** 2).sum()
>>> [g] = gradients(y, [x])
>>> np.allclose(g, np.cos([1.0, 2.0]) * [1.0, 4.0] + np.sin([1.0, 2.0]) * [2.0, 4.0])
True
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .errors import ResidualError

__all__ = ["Traced", "UFUNCS", "gradients", "value_of"]

_COUNTER = itertools.count()


def value_of(x: Any) -> Any:
    """The plain value of ``x`` (a :class:`Traced` array's, or ``x`` itself)."""
    return x.value if isinstance(x, Traced) else x


def _unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``g`` summed down to ``shape`` over the axes numpy broadcast."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


#: The numpy ufuncs a residual may apply to traced arrays: ``name: (derivative of the input)``
#: for the one-argument ones, as functions of the input and the output.
UFUNCS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "negative": lambda x, y: -np.ones_like(x),
    "positive": lambda x, y: np.ones_like(x),
    "sin": lambda x, y: np.cos(x),
    "cos": lambda x, y: -np.sin(x),
    "tan": lambda x, y: 1.0 + y * y,
    "exp": lambda x, y: y,
    "expm1": lambda x, y: y + 1.0,
    "log": lambda x, y: 1.0 / x,
    "log1p": lambda x, y: 1.0 / (1.0 + x),
    "sqrt": lambda x, y: 0.5 / y,
    "square": lambda x, y: 2.0 * x,
    "tanh": lambda x, y: 1.0 - y * y,
    "sinh": lambda x, y: np.cosh(x),
    "cosh": lambda x, y: np.sinh(x),
    "arctan": lambda x, y: 1.0 / (1.0 + x * x),
    "absolute": lambda x, y: np.sign(x),
}

_BINARY = ("add", "subtract", "multiply", "true_divide", "divide", "power")


class Traced:
    """An array whose operations are recorded for :func:`gradients`.

    Supports ``+ - * / **`` (with arrays, numbers and other traced arrays; a traced exponent
    too), unary minus, indexing and slicing, ``.sum``/``.mean`` (and ``np.sum``/``np.mean``),
    ``.T``, ``.reshape``, ``np.stack``/``np.concatenate``, ``np.dot``/``@`` by constants, and
    the ufuncs of :data:`UFUNCS`.  Comparisons give plain boolean arrays (for masks).
    """

    __array_priority__ = 1000

    def __init__(self, value: Any, parents: Sequence[tuple[Traced, Callable[[np.ndarray], np.ndarray]]] = ()) -> None:
        self.value = np.asarray(value, dtype=np.float64)
        self.parents = tuple(parents)
        self.order = next(_COUNTER)

    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)
    size = property(lambda self: self.value.size)
    dtype = property(lambda self: self.value.dtype)

    def __len__(self) -> int:
        return len(self.value)

    def __repr__(self) -> str:
        return f"Traced(shape={self.shape})"

    # --- arithmetic ---------------------------------------------------------------------------
    def __add__(self, other: Any) -> Traced:
        return _binary("add", self, other)

    def __radd__(self, other: Any) -> Traced:
        return _binary("add", other, self)

    def __sub__(self, other: Any) -> Traced:
        return _binary("subtract", self, other)

    def __rsub__(self, other: Any) -> Traced:
        return _binary("subtract", other, self)

    def __mul__(self, other: Any) -> Traced:
        return _binary("multiply", self, other)

    def __rmul__(self, other: Any) -> Traced:
        return _binary("multiply", other, self)

    def __truediv__(self, other: Any) -> Traced:
        return _binary("true_divide", self, other)

    def __rtruediv__(self, other: Any) -> Traced:
        return _binary("true_divide", other, self)

    def __pow__(self, other: Any) -> Traced:
        return _binary("power", self, other)

    def __rpow__(self, other: Any) -> Traced:
        return _binary("power", other, self)

    def __neg__(self) -> Traced:
        return _unary("negative", self)

    def __pos__(self) -> Traced:
        return self

    def __abs__(self) -> Traced:
        return _unary("absolute", self)

    def __matmul__(self, other: Any) -> Traced:
        return _matmul(self, other)

    def __rmatmul__(self, other: Any) -> Traced:
        if isinstance(other, Traced):
            return _matmul(other, self)
        constant = np.asarray(other, dtype=np.float64)
        if constant.ndim == 1:
            return Traced(constant @ self.value, [(self, lambda g: np.multiply.outer(constant, g))])
        return Traced(constant @ self.value, [(self, lambda g: constant.T @ g)])

    # comparisons: masks without gradient, which refuse to be branched on
    def __lt__(self, other: Any) -> np.ndarray:
        return _mask(self.value < value_of(other))

    def __le__(self, other: Any) -> np.ndarray:
        return _mask(self.value <= value_of(other))

    def __gt__(self, other: Any) -> np.ndarray:
        return _mask(self.value > value_of(other))

    def __ge__(self, other: Any) -> np.ndarray:
        return _mask(self.value >= value_of(other))

    # methods numpy users reach for, as reshapes
    def squeeze(self, axis: Any = None) -> Traced:
        return self.reshape(np.squeeze(self.value, axis=axis).shape)

    def ravel(self) -> Traced:
        return self.reshape(-1)

    flatten = ravel

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # numpy's protocol probes: absent, as for any object
            raise AttributeError(name)
        raise _Unsupported(f"a residual cannot use .{name} of the kernel's results: traced results support "
                           f"{_SUPPORTED}")

    def __bool__(self) -> bool:
        raise ResidualError("a residual cannot branch on a traced value (if/and/or on an array of the kernel's "
                            "results): write the branch with numpy masks (np.where on plain arrays) instead")

    def __float__(self) -> float:
        raise ResidualError("float() of a traced value drops its gradient: keep it an array in the residual")

    __hash__ = object.__hash__

    # --- shape ----------------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> Traced:
        key = tuple(value_of(k) for k in key) if isinstance(key, tuple) else value_of(key)
        shape = self.shape

        def back(g: np.ndarray) -> np.ndarray:
            out = np.zeros(shape)
            np.add.at(out, key, g)
            return out
        return Traced(self.value[key], [(self, back)])

    def sum(self, axis: Any = None, keepdims: bool = False) -> Traced:
        shape = self.shape

        def back(g: np.ndarray) -> np.ndarray:
            if axis is not None and not keepdims:
                g = np.expand_dims(g, axis)
            return np.broadcast_to(g, shape).copy()
        return Traced(self.value.sum(axis=axis, keepdims=keepdims), [(self, back)])

    def mean(self, axis: Any = None, keepdims: bool = False) -> Traced:
        total = self.sum(axis=axis, keepdims=keepdims)
        return total * (total.size / max(1, self.size))

    def reshape(self, *shape: Any) -> Traced:
        old = self.shape
        return Traced(self.value.reshape(*shape), [(self, lambda g: g.reshape(old))])

    @property
    def T(self) -> Traced:  # noqa: N802 - numpy's name
        return Traced(self.value.T, [(self, lambda g: g.T)])

    # --- numpy's protocols ----------------------------------------------------------------------
    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method != "__call__" or kwargs:
            raise ResidualError(f"a residual cannot differentiate np.{ufunc.__name__}.{method} with "
                                f"{', '.join(kwargs) or 'these arguments'}; use the plain call")
        name = ufunc.__name__
        if name in _BINARY and len(inputs) == 2:
            return _binary(name, *inputs)
        if name == "matmul" and len(inputs) == 2:
            a, b = inputs
            return _matmul(a, b) if isinstance(a, Traced) else b.__rmatmul__(a)
        if name in UFUNCS and len(inputs) == 1:
            return _unary(name, inputs[0])
        if name in ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal", "isnan", "isfinite",
                    "sign"):
            return _mask(ufunc(*(value_of(x) for x in inputs)))
        raise ResidualError(f"a residual cannot differentiate np.{name}: traced results support {_SUPPORTED}")

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        name = func.__name__
        if name in ("sum", "mean"):
            return getattr(args[0], name)(*args[1:], **kwargs)
        if name in ("stack", "concatenate"):
            return _join(name, args[0], kwargs.get("axis", args[1] if len(args) > 1 else 0))
        if name == "dot":
            return _matmul(args[0], args[1]) if isinstance(args[0], Traced) else args[1].__rmatmul__(args[0])
        if name in ("reshape",):
            return args[0].reshape(*args[1:], **kwargs)
        if name in ("shape", "ndim", "size"):
            return getattr(args[0], name)
        module = getattr(func, "__module__", "") or ""
        where = "np.linalg." if "linalg" in module else "np."
        raise ResidualError(f"a residual cannot differentiate {where}{name} of the kernel's results: traced results "
                            f"support {_SUPPORTED}")


class _Unsupported(ResidualError, AttributeError):
    """An attribute traced arrays do not have (an :class:`AttributeError` too, for ``hasattr``)."""


class _Mask(np.ndarray):
    """A comparison of traced values: a boolean array for masks, which refuses ``if`` and ``bool()``."""

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if any(isinstance(x, Traced) for x in inputs):
            return NotImplemented  # traced arithmetic with the mask: Traced's rule
        plain = tuple(x.view(np.ndarray) if isinstance(x, _Mask) else x for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(x.view(np.ndarray) if isinstance(x, _Mask) else x for x in kwargs["out"])
        return getattr(ufunc, method)(*plain, **kwargs)  # arithmetic on a mask gives plain arrays

    def __bool__(self) -> bool:
        raise ResidualError("a residual cannot branch on the kernel's results (if, and/or, max() on a comparison "
                            "of them): it would take one branch for a whole chunk of points; use the mask in "
                            "arithmetic instead, e.g. mask * a + (1 - mask) * b")


def _mask(values: Any) -> np.ndarray:
    return np.asarray(values).view(_Mask)


_SUPPORTED = ("+ - * / **, indexing, .sum/.mean, .T, .reshape/.squeeze/.ravel, np.sum/np.mean, np.stack/"
              "np.concatenate, @ and np.dot by constants, comparisons as masks, and np." + ", np.".join(UFUNCS))


def _unary(name: str, x: Traced) -> Traced:
    out = getattr(np, name)(x.value)
    slope = UFUNCS[name](x.value, out)
    return Traced(out, [(x, lambda g: g * slope)])


def _binary(name: str, a: Any, b: Any) -> Traced:
    av, bv = (np.asarray(value_of(x), dtype=np.float64) for x in (a, b))
    out = getattr(np, name)(av, bv)
    parents = []
    if name == "add":
        rules = (lambda g: g, lambda g: g)
    elif name == "subtract":
        rules = (lambda g: g, lambda g: -g)
    elif name == "multiply":
        rules = (lambda g: g * bv, lambda g: g * av)
    elif name in ("true_divide", "divide"):
        rules = (lambda g: g / bv, lambda g: -g * out / bv)
    else:  # power
        def base(g: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore"):
                slope = np.where(bv == 0, 0.0, bv * np.power(av, bv - 1.0))
            return g * slope

        def exponent(g: np.ndarray) -> np.ndarray:
            if np.any(av <= 0):
                raise ResidualError("a traced exponent needs a positive base (its gradient is out * log(base))")
            return g * out * np.log(av)
        rules = (base, exponent)
    for operand, rule in zip((a, b), rules):
        if isinstance(operand, Traced):
            shape = operand.shape
            parents.append((operand, lambda g, rule=rule, shape=shape: _unbroadcast(rule(g), shape)))
    return Traced(out, parents)


def _matmul(a: Traced, b: Any) -> Traced:
    if isinstance(b, Traced):
        raise ResidualError("a residual's @ / np.dot takes a traced array and a constant, not two traced arrays")
    constant = np.asarray(b, dtype=np.float64)
    out = a.value @ constant
    if constant.ndim == 1:
        return Traced(out, [(a, lambda g: np.multiply.outer(g, constant))])
    return Traced(out, [(a, lambda g: g @ constant.T)])


def _join(name: str, parts: Sequence[Any], axis: int) -> Traced:
    values = [np.asarray(value_of(p), dtype=np.float64) for p in parts]
    out = getattr(np, name)(values, axis=axis)
    parents = []
    if name == "stack":
        for i, part in enumerate(parts):
            if isinstance(part, Traced):
                parents.append((part, lambda g, i=i: np.take(g, i, axis=axis)))
    else:
        cuts = np.cumsum([v.shape[axis] for v in values])[:-1]
        for i, part in enumerate(parts):
            if isinstance(part, Traced):
                parents.append((part, lambda g, i=i: np.split(g, cuts, axis=axis)[i]))
    return Traced(out, parents)


def gradients(output: Traced, leaves: Iterable[Traced]) -> list[np.ndarray]:
    """The gradient of the scalar ``output`` with respect to each of ``leaves`` (zeros where none).

    Raises :class:`~symnet.errors.ResidualError` if ``output`` is not a traced scalar.
    """
    leaves = list(leaves)
    if not isinstance(output, Traced):
        raise ResidualError(f"the residual's loss is a {type(output).__name__}, not computed from the kernel's "
                            "results: a residual must use the results it is given")
    if output.size != 1:
        raise ResidualError(f"the loss must be a scalar, not shape {output.shape}")
    # every node reachable from the output, then in reverse creation order (a topological order)
    seen: dict[int, Traced] = {}
    stack = [output]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        stack.extend(parent for parent, _ in node.parents)
    adjoints: dict[int, np.ndarray] = {id(output): np.ones(output.shape)}
    for node in sorted(seen.values(), key=lambda t: t.order, reverse=True):
        g = adjoints.get(id(node))
        if g is None or not node.parents:
            continue
        for parent, rule in node.parents:
            share = rule(g)
            key = id(parent)
            adjoints[key] = adjoints[key] + share if key in adjoints else np.asarray(share, dtype=np.float64)
    return [np.asarray(adjoints.get(id(leaf), np.zeros(leaf.shape))).reshape(leaf.shape) for leaf in leaves]
