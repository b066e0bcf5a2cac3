"""The activation registry: the one place that knows each activation.

An :class:`Activation` carries everything the rest of symnet needs about one activation:

* ``form``: its SymPy expression in the variable :data:`T` (``tanh(t)``); every symbolic
  derivative ``sigma^(k)`` is ``sympy.diff`` of this scalar form, never of a network;
* ``numpy``, ``numpy_derivative``, ``numpy_second_derivative``: numeric versions written by
  hand for the built-ins, so the numeric back-propagation oracle shares no code with the
  SymPy path (for user activations they are lambdified from ``form``);
* ``kinks``: the points ``t`` where the activation is not smooth (``relu``: ``0``);
* ``elementwise``: ``False`` for ``softmax``, which acts on a whole layer.

Adding an activation is one :func:`register` call.  Look one up with :func:`get`, which
takes a registered name (``"tanh"``, ``"leaky_relu(0.2)"``), an :class:`Activation`, a
SymPy ``Lambda`` or any Python callable that SymPy can trace:

>>> get("tanh").form
tanh(t)
>>> get("leaky_relu(0.2)").name
'leaky_relu(alpha=0.2)'
>>> get(lambda x: x**2).form
t**2
>>> get(lambda x: x**2).polynomial
True

The convention at a kink follows SymPy's ``Heaviside(0) = 1/2``: ``relu'(0) = 1/2``, in the
symbolic forms and in the numeric functions alike.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np
import scipy.special
import sympy

from ._substitute import substitute
from .errors import ActivationError
from .functions import sigmoid, softplus

__all__ = ["Activation", "T", "get", "register", "unregister", "names", "activation", "from_form"]

#: The variable in which every activation ``form`` is written.
T = sympy.Symbol("t", real=True)

NumericFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class Activation:
    """One activation function and its derivative rules.

    Attributes:
        name: the name shown in ``repr`` and saved in files (``"tanh"``, ``"leaky_relu(alpha=0.2)"``).
        form: SymPy expression in :data:`T`; ``None`` only for layer-wise activations (softmax).
        numpy: numeric ``f(z)`` on arrays of any shape (softmax: along the last axis).
        numpy_derivative: numeric ``f'(z)``, elementwise; ``None`` for softmax.
        numpy_second_derivative: numeric ``f''(z)`` (0 between kinks for piecewise-linear ones).
        kinks: values of ``t`` where ``form`` is not infinitely differentiable.
        elementwise: ``False`` when the activation mixes the units of a layer (softmax).
    """

    name: str
    form: sympy.Expr | None
    numpy: NumericFn
    numpy_derivative: NumericFn | None = None
    numpy_second_derivative: NumericFn | None = None
    kinks: tuple[float, ...] = ()
    elementwise: bool = True
    _derivatives: dict[int, sympy.Expr] = field(default_factory=dict, repr=False, compare=False)

    def __call__(self, z: sympy.Expr) -> sympy.Expr:
        """The activation applied to a scalar SymPy expression ``z``."""
        if not self.elementwise:
            raise ActivationError(
                f"activation {self.name!r} acts on a whole layer; use apply_layer(z_vector) instead"
            )
        return substitute(self.form, {T: z})  # type: ignore[arg-type]

    def derivative(self, order: int) -> sympy.Expr:
        """``d^order f / dt^order`` as a SymPy expression in :data:`T` (cached).

        >>> get("sigmoid").derivative(1)
        (1 - sigmoid(t))*sigmoid(t)
        """
        if not self.elementwise:
            raise ActivationError(f"activation {self.name!r} has no scalar derivative")
        if order not in self._derivatives:
            previous = self.form if order == 0 else self.derivative(order - 1)
            self._derivatives[order] = previous if order == 0 else sympy.diff(previous, T)
        return self._derivatives[order]

    def apply_layer(self, z: list[sympy.Expr]) -> list[sympy.Expr]:
        """The activation applied to all pre-activations ``z`` of one layer."""
        if self.elementwise:
            return [self(zj) for zj in z]
        if self.name == "softmax":
            exps = [sympy.exp(zj) for zj in z]
            total = sympy.Add(*exps)
            return [e / total for e in exps]
        raise ActivationError(f"activation {self.name!r} has no layer rule")  # pragma: no cover

    @cached_property
    def polynomial(self) -> bool:
        """Whether ``form`` is a polynomial in ``t`` (then nets built from it are polynomials)."""
        return self.form is not None and bool(self.form.is_polynomial(T))

    @cached_property
    def smooth(self) -> bool:
        """Whether the activation is infinitely differentiable everywhere."""
        return not self.kinks

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # numeric functions may be lambdas: pickle the recipe, not the functions
        try:
            if get(self.name).form == self.form:
                return (get, (self.name,))
        except ActivationError:
            pass
        if self.form is None:
            raise TypeError(f"activation {self.name!r} cannot be pickled: register it under its name first")
        return (from_form, (self.form, self.name))


_Factory = Callable[..., Activation]
_REGISTRY: dict[str, _Factory] = {}
_ALIASES: dict[str, str] = {}


def register(name: str, factory: _Factory | Activation, *, aliases: tuple[str, ...] = ()) -> None:
    """Add an activation to the registry.

    ``factory`` is an :class:`Activation` or a function of keyword parameters that returns
    one (``leaky_relu(alpha=...)``).  Registering a name again replaces the entry.

    >>> register("cube", Activation("cube", T**3, lambda z: z**3, lambda z: 3*z**2, lambda z: 6*z))
    >>> get("cube").derivative(2)
    6*t
    >>> unregister("cube")
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ActivationError(f"activation name {name!r} must be an identifier")
    _REGISTRY[name] = factory if callable(factory) and not isinstance(factory, Activation) else (lambda: factory)  # type: ignore[misc,return-value]
    for alias in aliases:
        _ALIASES[alias] = name


def unregister(name: str) -> None:
    """Remove an activation (and its aliases) from the registry."""
    if name not in _REGISTRY:
        raise ActivationError(f"no activation named {name!r} is registered")
    del _REGISTRY[name]
    for alias in [a for a, target in _ALIASES.items() if target == name]:
        del _ALIASES[alias]


def names() -> list[str]:
    """The registered activation names, sorted (aliases not included)."""
    return sorted(_REGISTRY)


def activation(name: str, **params: float) -> Activation:
    """A registered activation with explicit parameters: ``activation("leaky_relu", alpha=0.2)``."""
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise ActivationError(
            f"unknown activation {name!r}; known activations: {', '.join(names())} "
            "(or pass a SymPy Lambda or a Python callable such as lambda x: x**2)"
        )
    try:
        return _REGISTRY[key](**params)
    except TypeError as exc:
        accepted = list(inspect.signature(_REGISTRY[key]).parameters)
        raise ActivationError(
            f"activation {name!r} takes parameters {accepted or 'none'}, not {sorted(params)}"
        ) from exc


_CALL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*")
_ARG = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)\s*=\s*)?([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*")


def _parse_spec(spec: str) -> Activation:
    """``"tanh"`` or ``"leaky_relu(0.2)"`` / ``"leaky_relu(alpha=0.2)"``; numbers only, never eval."""
    match = _CALL.fullmatch(spec)
    if not match:
        raise ActivationError(f"cannot read activation {spec!r}; write a name such as 'tanh' or 'leaky_relu(0.2)'")
    name, arg_text = match.groups()
    params: dict[str, float] = {}
    if arg_text and arg_text.strip():
        key = _ALIASES.get(name, name)
        positional = list(inspect.signature(_REGISTRY[key]).parameters) if key in _REGISTRY else []
        for i, part in enumerate(arg_text.split(",")):
            arg = _ARG.fullmatch(part)
            if not arg:
                raise ActivationError(f"cannot read parameter {part.strip()!r} of activation {spec!r}; use numbers")
            pname = arg.group(1) or (positional[i] if i < len(positional) else f"arg{i}")
            params[pname] = float(arg.group(2))
    return activation(name, **params)


def get(spec: Any) -> Activation:
    """Resolve an activation given as a name, an :class:`Activation`, a SymPy ``Lambda`` or a callable.

    ``None`` means ``linear``.  A callable is traced by calling it on a real SymPy symbol; it
    must build its result from SymPy functions and operators (``lambda x: x**2``,
    ``lambda x: sympy.exp(-x**2)``), not numpy ones.
    """
    if spec is None:
        return activation("linear")
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        return _parse_spec(spec)
    if isinstance(spec, sympy.Lambda):
        if len(spec.variables) != 1:
            raise ActivationError(f"activation {spec} must take exactly one variable")
        return from_form(spec.expr.xreplace({spec.variables[0]: T}), name=f"t -> {spec.expr.xreplace({spec.variables[0]: T})}")
    if callable(spec):
        return _trace(spec)
    raise ActivationError(
        f"cannot use {spec!r} of type {type(spec).__name__} as an activation; give a name "
        f"({', '.join(names())}), a SymPy Lambda or a callable"
    )


def _trace(fn: Callable[..., Any]) -> Activation:
    label = getattr(fn, "__name__", type(fn).__name__)
    try:
        result = fn(T)
        form = sympy.sympify(result, strict=True)
    except Exception as exc:  # any failure of user code means: not traceable
        raise ActivationError(
            f"activation {label} cannot be traced by SymPy: calling it on a SymPy symbol raised "
            f"{type(exc).__name__}: {exc}. Write it with SymPy functions and operators "
            "(sympy.exp, sympy.tanh, x**2), not numpy's, or register it with symnet.activations.register"
        ) from exc
    if not isinstance(form, sympy.Expr) or not form.free_symbols <= {T}:
        raise ActivationError(
            f"activation {label} must return an expression in its one argument, but returned {form!r}"
        )
    return from_form(form, name=f"t -> {form}")


def from_form(form: sympy.Expr, name: str | None = None) -> Activation:
    """An activation from its SymPy form in :data:`T`; numeric functions are lambdified from it.

    >>> from_form(T**2).numpy_derivative(np.array([3.0]))
    array([6.])
    """
    first, second = sympy.diff(form, T), sympy.diff(form, T, 2)
    kinks = _kinks_of(form)
    return Activation(
        name=name or f"t -> {form}",
        form=form,
        numpy=_lambdify(form),
        numpy_derivative=_lambdify(first),
        numpy_second_derivative=_lambdify(second),
        kinks=kinks,
    )


def _lambdify(expr: sympy.Expr) -> NumericFn:
    # numeric functions take almost-everywhere values: a Dirac delta is 0 away from its kink
    expr = expr.replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)
    compiled = sympy.lambdify(T, expr, modules=["scipy", "numpy"])
    return lambda z: np.broadcast_to(compiled(z), np.shape(z)).astype(np.result_type(z, np.float64))


def _kinks_of(form: sympy.Expr) -> tuple[float, ...]:
    """Where a traced form stops being smooth: zeros of Max/Min/Abs/Heaviside/Piecewise arguments."""
    points: set[float] = set()
    for node in sympy.preorder_traversal(form):
        args: list[sympy.Expr] = []
        if isinstance(node, (sympy.Max, sympy.Min)) and len(node.args) == 2:
            args = [node.args[0] - node.args[1]]
        elif isinstance(node, (sympy.Abs, sympy.Heaviside, sympy.sign)):
            args = [node.args[0]]
        elif isinstance(node, sympy.Piecewise):
            args = [c.lhs - c.rhs for _, c in node.args if isinstance(c, sympy.core.relational.Relational)]
        for arg in args:
            try:
                roots = sympy.solve(arg, T)
            except NotImplementedError:
                roots = []
            points.update(float(r) for r in roots if r.is_real)
    return tuple(sorted(points))


# --- the built-in activations ------------------------------------------------------------


def _elementwise(name: str, form: sympy.Expr, f: NumericFn, d1: NumericFn, d2: NumericFn,
                 kinks: tuple[float, ...] = ()) -> Activation:
    return Activation(name, form, f, d1, d2, kinks)


def _sig(z: np.ndarray) -> np.ndarray:
    return scipy.special.expit(z)


def _half_at_zero(z: np.ndarray, positive: Any, negative: Any) -> np.ndarray:
    """Piecewise values with the midpoint at exactly 0 (SymPy's Heaviside(0) = 1/2)."""
    z = np.asarray(z, dtype=np.result_type(z, np.float64))
    positive = np.broadcast_to(positive, z.shape)
    negative = np.broadcast_to(negative, z.shape)
    return np.where(z > 0, positive, np.where(z < 0, negative, (positive + negative) / 2))


def _leaky_relu(alpha: float = 0.01) -> Activation:
    a = sympy.Float(alpha)
    return _elementwise(
        f"leaky_relu(alpha={alpha!r})",
        a * T + (1 - a) * sympy.Max(0, T),
        lambda z: np.where(z > 0, z, alpha * z),
        lambda z: _half_at_zero(z, 1.0, alpha),
        lambda z: np.zeros_like(np.asarray(z, dtype=float)),
        kinks=(0.0,),
    )


def _elu(alpha: float = 1.0) -> Activation:
    a = sympy.Float(alpha)
    return _elementwise(
        f"elu(alpha={alpha!r})",
        sympy.Max(0, T) + a * (sympy.exp(sympy.Min(0, T)) - 1),
        lambda z: np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0))),
        lambda z: _half_at_zero(z, 1.0, alpha * np.exp(np.minimum(z, 0))),
        lambda z: _half_at_zero(z, 0.0, alpha * np.exp(np.minimum(z, 0))),
        kinks=(0.0,),
    )


def _softmax_numpy(z: np.ndarray) -> np.ndarray:
    shifted = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


_SQRT2 = np.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)

register("linear", _elementwise("linear", T, lambda z: np.asarray(z, float) * 1.0,
                                lambda z: np.ones_like(np.asarray(z, float)),
                                lambda z: np.zeros_like(np.asarray(z, float))),
         aliases=("identity", "none"))
register("sigmoid", _elementwise("sigmoid", sigmoid(T), _sig,
                                 lambda z: _sig(z) * (1 - _sig(z)),
                                 lambda z: _sig(z) * (1 - _sig(z)) * (1 - 2 * _sig(z))),
         aliases=("logistic",))
register("tanh", _elementwise("tanh", sympy.tanh(T), np.tanh,
                              lambda z: 1 - np.tanh(z) ** 2,
                              lambda z: -2 * np.tanh(z) * (1 - np.tanh(z) ** 2)))
register("relu", _elementwise("relu", sympy.Max(0, T), lambda z: np.maximum(z, 0),
                              lambda z: _half_at_zero(z, 1.0, 0.0),
                              lambda z: np.zeros_like(np.asarray(z, float)), kinks=(0.0,)))
register("leaky_relu", _leaky_relu)
register("elu", _elu)
register("softplus", _elementwise("softplus", softplus(T), lambda z: np.logaddexp(0.0, z),
                                  _sig, lambda z: _sig(z) * (1 - _sig(z))))
register("silu", _elementwise("silu", T * sigmoid(T), lambda z: z * _sig(z),
                              lambda z: _sig(z) * (1 + z * (1 - _sig(z))),
                              lambda z: _sig(z) * (1 - _sig(z)) * (2 + z * (1 - 2 * _sig(z)))),
         aliases=("swish",))
register("gelu", _elementwise("gelu", T / 2 * (1 + sympy.erf(T / sympy.sqrt(2))),
                              lambda z: z / 2 * (1 + scipy.special.erf(z / _SQRT2)),
                              lambda z: (1 + scipy.special.erf(z / _SQRT2)) / 2 + z * _INV_SQRT_2PI * np.exp(-z * z / 2),
                              lambda z: _INV_SQRT_2PI * np.exp(-z * z / 2) * (2 - z * z)))
register("sin", _elementwise("sin", sympy.sin(T), np.sin, np.cos, lambda z: -np.sin(z)))
register("cos", _elementwise("cos", sympy.cos(T), np.cos, lambda z: -np.sin(z), lambda z: -np.cos(z)))
register("exp", _elementwise("exp", sympy.exp(T), np.exp, np.exp, np.exp))
register("square", _elementwise("square", T**2, lambda z: np.square(z), lambda z: 2 * np.asarray(z, float),
                                lambda z: np.full_like(np.asarray(z, float), 2.0)))
register("softmax", Activation("softmax", None, _softmax_numpy, elementwise=False))
