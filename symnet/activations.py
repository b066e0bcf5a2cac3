"""The activation registry: the one place that knows each activation.

An :class:`Activation` carries everything the rest of symnet needs about one activation:

* ``form``: its SymPy expression in the variable :data:`T` (``tanh(t)``); every symbolic
  derivative ``sigma^(k)`` is ``sympy.diff`` of this scalar form, never of a network;
* ``numpy``, ``numpy_derivative``, ``numpy_second_derivative``: numeric versions written by
  hand for the built-ins, so the numeric back-propagation oracle shares no code with the
  SymPy path (for user activations they are lambdified from ``form``);
* ``kinks``: the points ``t`` where the activation is not smooth (``relu``: ``0``);
* ``elementwise``: ``False`` for ``softmax`` and ``log_softmax``, which act on a whole layer
  (:meth:`Activation.apply_layer`, :meth:`Activation.layer_vjp`).

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

import dataclasses
import inspect
import math
import numbers
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np
import scipy.special
import sympy

from ._substitute import substitute
from .errors import ActivationError
from .functions import sigmoid, softplus, tail_safe

__all__ = ["Activation", "T", "get", "register", "unregister", "names", "activation", "from_form"]

#: The variable in which every activation ``form`` is written.
T = sympy.Symbol("t", real=True)

NumericFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class Activation:
    """One activation function and its derivative rules.

    Attributes:
        name: the name shown in ``repr`` and saved in files (``"tanh"``, ``"leaky_relu(alpha=0.2)"``).
        form: SymPy expression in :data:`T`; ``None`` only for layer-wise activations (softmax,
            log_softmax).
        numpy: numeric ``f(z)`` on arrays of any shape (softmax: along the last axis).
        numpy_derivative: numeric ``f'(z)``, elementwise; ``None`` for softmax.
        numpy_second_derivative: numeric ``f''(z)`` (0 between kinks for piecewise-linear ones).
        kinks: values of ``t`` where ``form`` is not infinitely differentiable.
        elementwise: ``False`` when the activation mixes the units of a layer (softmax, log_softmax).
        legacy_forms: forms of the same function that earlier symnet versions wrote to files
            (which therefore still load), e.g. ``leaky_relu``'s ``a*t + (1 - a)*Max(0, t)``.
    """

    name: str
    form: sympy.Expr | None
    numpy: NumericFn
    numpy_derivative: NumericFn | None = None
    numpy_second_derivative: NumericFn | None = None
    kinks: tuple[float, ...] = ()
    elementwise: bool = True
    legacy_forms: tuple[sympy.Expr, ...] = ()
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
            from .limits import check_order

            check_order(order, f"activation {self.name!r}: derivative")
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
        if self.name == "log_softmax":
            total = sympy.log(sympy.Add(*(sympy.exp(zj) for zj in z)))
            return [zj - total for zj in z]
        raise ActivationError(f"activation {self.name!r} has no layer rule")  # pragma: no cover

    def layer_vjp(self, z: list[sympy.Expr], g: list[sympy.Expr]) -> list[sympy.Expr]:
        """``dL/dz`` from ``g = dL/da`` through a layer-wise activation, as SymPy expressions.

        softmax: ``J = diag(p) - p p^T``, so ``p_j (g_j - sum_k g_k p_k)``; log_softmax:
        ``J = I - 1 p^T``, so ``g_j - p_j sum_k g_k`` (``p`` the softmax of ``z``).

        >>> a, b = sympy.symbols("a b")
        >>> get("log_softmax").layer_vjp([a, a], [1, 0])
        [1/2, -1/2]
        """
        exps = [sympy.exp(zj) for zj in z]
        total = sympy.Add(*exps)
        p = [e / total for e in exps]
        if self.name == "softmax":
            inner = sympy.Add(*(gk * pk for gk, pk in zip(g, p)))
            return [pj * (gj - inner) for pj, gj in zip(p, g)]
        if self.name == "log_softmax":
            total_g = sympy.Add(*g)
            return [gj - pj * total_g for pj, gj in zip(p, g)]
        raise ActivationError(f"activation {self.name!r} has no layer rule")

    def numpy_layer_vjp(self, a: np.ndarray, g: np.ndarray) -> np.ndarray:
        """``dL/dz`` from the layer's outputs ``a`` and ``g = dL/da``, ``(..., width)`` each (numeric).

        >>> get("softmax").numpy_layer_vjp(np.array([0.5, 0.5]), np.array([1.0, 0.0]))
        array([ 0.25, -0.25])
        """
        if self.name == "softmax":
            return a * (g - np.sum(g * a, axis=-1, keepdims=True))
        if self.name == "log_softmax":
            return g - np.exp(a) * np.sum(g, axis=-1, keepdims=True)
        raise ActivationError(f"activation {self.name!r} has no layer rule")

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
# [0-9], not \d: \d matches every Unicode digit ('２', '٣'), which float() reads too
_ARG = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)\s*=\s*)?([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*")


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
            if pname in params:
                raise ActivationError(f"activation {spec!r} gives parameter {pname!r} more than once")
            value = float(arg.group(2))
            # a nonzero text that underflows (1e-400) is refused; one that overflows reads as inf, which
            # the factories refuse as not finite
            if value == 0 and re.search(r"[1-9]", arg.group(2).lower().split("e")[0]):
                raise ActivationError(f"parameter {pname!r} = {arg.group(2)} of activation {spec!r} is "
                                      "too small for a float64 (it would read as 0)")
            params[pname] = value
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


def from_form(form: sympy.Expr, name: str | None = None, kinks: tuple[float, ...] | None = None) -> Activation:
    """An activation from its SymPy form in :data:`T`; numeric functions are lambdified from it.

    >>> from_form(T**2).numpy_derivative(np.array([3.0]))
    array([6.])
    """
    from .limits import check_form_depth

    label = "form" if name is None else repr(name if len(name) <= 60 else name[:57] + "...")
    check_form_depth(form, T, f"activation {label}")
    try:
        first, second = sympy.diff(form, T), sympy.diff(form, T, 2)
    except RecursionError:  # SymPy on forms such as t % 2
        raise ActivationError(f"activation {label}: SymPy cannot differentiate {_brief_form(form)}") from None
    kinks = _kinks_of(form) if kinks is None else tuple(sorted(float(k) for k in kinks))
    return Activation(
        name=name or f"t -> {form}",
        form=form,
        numpy=_lambdify(form),
        numpy_derivative=_lambdify(first),
        numpy_second_derivative=_lambdify(second),
        kinks=kinks,
    )


def _brief_form(form: sympy.Expr, limit: int = 60) -> str:
    """A form for a message, cut to ``limit`` characters."""
    text = str(form)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def compose(outer: Activation, inner: Activation) -> Activation:
    """``outer(inner(t))`` as one activation; its numeric derivatives follow the chain rule from the parts'.

    An :class:`~symnet.ActivationError` when either part acts on a whole layer (softmax).

    >>> compose(get("square"), get("tanh")).name
    't -> tanh(t)**2'
    """
    if inner.name == "linear":
        return outer
    if outer.name == "linear":
        return inner
    if outer.form is None or inner.form is None:
        raise ActivationError(f"{outer.name} after {inner.name} cannot be written as one activation; softmax must "
                              "be the only activation of its layer")
    form = outer.form.xreplace({T: inner.form})
    composed = from_form(form, name=f"t -> {form}")
    f, g = outer, inner
    if None in (f.numpy_derivative, f.numpy_second_derivative, g.numpy_derivative, g.numpy_second_derivative):
        return composed  # pragma: no cover - every registered elementwise activation has both

    def first(z: np.ndarray) -> np.ndarray:
        return f.numpy_derivative(g.numpy(z)) * g.numpy_derivative(z)  # type: ignore[misc]

    def second(z: np.ndarray) -> np.ndarray:
        inner_value, slope = g.numpy(z), g.numpy_derivative(z)  # type: ignore[misc]
        return (f.numpy_second_derivative(inner_value) * slope**2  # type: ignore[misc]
                + f.numpy_derivative(inner_value) * g.numpy_second_derivative(z))  # type: ignore[misc]

    return dataclasses.replace(composed, numpy=lambda z: f.numpy(g.numpy(z)), numpy_derivative=first,
                               numpy_second_derivative=second, _derivatives={})


def _lambdify(expr: sympy.Expr) -> NumericFn:
    # numeric functions take almost-everywhere values: a Dirac delta is 0 away from its kink
    expr = expr.replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)
    # tail-safe forms (symnet.functions.tail_safe): 1 - tanh(t)**2 is 0 in floats for |t| > 19
    compiled = sympy.lambdify(T, tail_safe(expr), modules=["scipy", "numpy"])
    return lambda z: np.broadcast_to(compiled(z), np.shape(z)).astype(np.result_type(z, np.float64))


def _kinks_of(form: sympy.Expr) -> tuple[float, ...]:
    """Where a traced form stops being smooth: real zeros of the arguments of Max/Min/Abs/Heaviside/sign
    and of Piecewise conditions.

    Only what is cheap and exact is solved: each argument (each branch of a ``Max``/``Abs``...
    nested in it) must be a polynomial in ``t`` of degree at most
    :data:`symnet.limits.MAX_KINK_DEGREE`, whose real roots are isolated exactly
    (``sympy.Poly.real_roots``), or a product of such pieces, or ``a*g(u) + c`` for a strictly
    monotone ``g`` (``exp``, ``tanh``, ``sigmoid``, ``erf``...; see ``_INVERSES``) of such a
    piece ``u``.  Anything else -- ``sin(t)``, ``floor``, a degree or size past the limits --
    is an :class:`ActivationError` saying so, never a silent "no kinks"; pass ``kinks=`` to
    :func:`from_form` to give them yourself.

    >>> _kinks_of(sympy.Min(1, sympy.Max(0, T)))
    (0.0, 1.0)
    >>> _kinks_of(sympy.Abs(T**2 - 2))
    (-1.4142135623730951, 1.4142135623730951)
    >>> _kinks_of(sympy.Max(0, sympy.tanh(T - 1)))
    (1.0,)
    """
    from .limits import MAX_FORM_SIZE, MAX_KINK_BRANCHES, MAX_KINK_DEGREE, polynomial_degree, tree_size

    shown = sympy.sstr(form)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."

    def refuse(why: str) -> ActivationError:
        return ActivationError(
            f"cannot locate the kinks of activation form {shown}: {why}. symnet solves where the arguments of "
            "Max, Min, Abs, Heaviside, sign and Piecewise conditions vanish when they are polynomials in t "
            f"(degree <= symnet.limits.MAX_KINK_DEGREE = {MAX_KINK_DEGREE}), products of them, or exp, tanh, "
            "sigmoid, erf... of them; give the kinks yourself with "
            "symnet.activations.from_form(form, name, kinks=(...))"
        )

    def branches(expr: sympy.Expr) -> list[sympy.Expr]:
        """``expr`` with each nested non-smooth function replaced by each of its smooth pieces."""
        found = [expr]
        while True:
            nested = next((node for e in found for node in sympy.preorder_traversal(e) if _pieces(node)), None)
            if nested is None:
                return found
            found = [e.xreplace({nested: piece}) for e in found for piece in _pieces(nested)]  # type: ignore[union-attr]
            if len(found) > MAX_KINK_BRANCHES:
                raise refuse(f"its nested Max/Min/Abs/... make more than symnet.limits.MAX_KINK_BRANCHES = "
                             f"{MAX_KINK_BRANCHES} branches")

    def zeros(arg: sympy.Expr, where: str, guard: sympy.Expr | None) -> set[float]:
        if tree_size(arg, MAX_FORM_SIZE) > MAX_FORM_SIZE:
            raise refuse(f"the argument of {where} has more than symnet.limits.MAX_FORM_SIZE = "
                         f"{MAX_FORM_SIZE} nodes")
        found: set[float] = set()
        for piece in branches(arg):
            try:
                roots = real_zeros(piece, where)
            except RecursionError:
                raise refuse(f"the argument of {where} nests too deeply") from None
            for root in roots:
                # a root of one branch is a kink only where that branch is the one taken (and, for a
                # Max/Min of more than two, where the two equal arguments are the ones it takes)
                checks = ([] if piece == arg else [arg]) + ([] if guard is None else [guard])
                at = {T: sympy.Float(root, 30)}
                if all(_vanishes(c, at) for c in checks):
                    found.add(root + 0.0)
        return found

    def real_zeros(piece: sympy.Expr, where: str) -> list[float]:
        """The real zeros of a smooth piece: a polynomial, a product, or ``a*g(u) + c`` for an invertible ``g``."""
        degree = polynomial_degree(piece, T)
        if degree is not None:
            if degree > MAX_KINK_DEGREE:
                raise refuse(f"the argument of {where} is a polynomial of degree {degree}")
            poly = sympy.Poly(piece, T) if degree else None
            if poly is None or poly.is_zero:
                return []  # constant: no isolated zero (or zero on a whole interval: no kink)
            try:
                return [float(r) for r in poly.real_roots()]
            except (NotImplementedError, sympy.polys.polyerrors.PolynomialError):
                return [float(sympy.re(r)) for r in poly.nroots()
                        if abs(sympy.im(r)) <= 1e-12 * max(1.0, abs(float(sympy.re(r))))]
        if piece.is_Mul:  # zero where a factor is
            return [root for factor in piece.args if factor.has(T) for root in real_zeros(factor, where)]
        if piece.is_Pow and piece.exp.is_number and piece.exp.is_real:
            return real_zeros(piece.base, where) if piece.exp > 0 else []
        constant, rest = piece.as_independent(T, as_Add=True)
        coefficient, inner = rest.as_independent(T, as_Add=False)
        inverse = _INVERSES.get(type(inner))  # type: ignore[arg-type]
        if inverse is not None and len(inner.args) == 1 and (-constant / coefficient).is_real:
            value = sympy.Float(-constant / coefficient, 30)
            solved = inverse(value)
            return [] if solved is None else real_zeros(inner.args[0] - solved, where)
        text = sympy.sstr(piece)
        raise refuse(f"the argument {text if len(text) <= 60 else text[:57] + '...'} of {where} is neither a "
                     "polynomial in t nor an invertible function of one")

    points: set[float] = set()
    for node in sympy.preorder_traversal(form):
        if isinstance(node, (sympy.floor, sympy.ceiling, sympy.frac, sympy.Mod)):
            raise refuse(f"{type(node).__name__} jumps at infinitely many points")
        where = type(node).__name__
        args: list[tuple[sympy.Expr, sympy.Expr | None]] = []  # (argument, what must vanish too)
        if isinstance(node, (sympy.Max, sympy.Min)):
            many = len(node.args) > 2  # a and b equal is a kink only where the Max/Min takes them
            args = [(a - b, node - a if many else None) for i, a in enumerate(node.args) for b in node.args[i + 1:]]
        elif isinstance(node, (sympy.Abs, sympy.Heaviside, sympy.sign)):
            args = [(node.args[0], None)]
        elif isinstance(node, sympy.Piecewise):
            where = "a Piecewise condition"
            for _, condition in node.args:
                if isinstance(condition, sympy.Basic) and not isinstance(condition, sympy.logic.boolalg.BooleanAtom):
                    relations = [condition] if isinstance(condition, sympy.core.relational.Relational) else \
                        sorted(condition.atoms(sympy.core.relational.Relational), key=sympy.default_sort_key)
                    args += [(r.lhs - r.rhs, None) for r in relations]
        for arg, guard in args:
            points.update(zeros(arg, where, guard))
    return tuple(sorted(points))


def _vanishes(expr: sympy.Expr, at: dict[sympy.Symbol, sympy.Expr]) -> bool:
    """Whether ``expr`` is 0 at the point ``at``, relative to the size of its terms there."""
    try:
        terms = [complex(term.xreplace(at).evalf(30)) for term in sympy.Add.make_args(expr)]
    except (TypeError, ValueError):  # not a finite number there
        return False
    return abs(sum(terms)) <= 1e-9 * max(1e-300, sum(abs(t) for t in terms))


def _inverse_in(lo: float, hi: float, fn: Callable[[sympy.Expr], sympy.Expr]) -> Callable[[sympy.Expr], Any]:
    """``fn`` where ``lo < value < hi`` (the open range of the function it inverts), else ``None``."""
    return lambda value: fn(value).evalf(30) if lo < value < hi else None


#: Strictly monotone functions whose level sets symnet solves for kinks of composed forms
#: (a Keras ``Dense(tanh)`` followed by a ``ReLU`` layer is ``Max(0, tanh(t))``): inverse on the range.
_INVERSES: dict[type, Callable[[sympy.Expr], Any]] = {
    sympy.exp: _inverse_in(0, np.inf, sympy.log),
    sympy.tanh: _inverse_in(-1, 1, sympy.atanh),
    sigmoid: _inverse_in(0, 1, lambda v: sympy.log(v / (1 - v))),
    softplus: _inverse_in(0, np.inf, lambda v: sympy.log(sympy.exp(v) - 1)),
    sympy.erf: _inverse_in(-1, 1, sympy.erfinv),
    sympy.atan: _inverse_in(-np.pi / 2, np.pi / 2, sympy.tan),
    sympy.sinh: _inverse_in(-np.inf, np.inf, sympy.asinh),
    sympy.asinh: _inverse_in(-np.inf, np.inf, sympy.sinh),
    sympy.atanh: _inverse_in(-np.inf, np.inf, sympy.tanh),
    sympy.log: _inverse_in(-np.inf, np.inf, sympy.exp),
}


def _pieces(node: sympy.Basic) -> tuple[sympy.Expr, ...]:
    """The smooth expressions a non-smooth function takes piece by piece (empty for anything else)."""
    if isinstance(node, (sympy.Max, sympy.Min)):
        return tuple(node.args)
    if isinstance(node, sympy.Abs):
        return (node.args[0], -node.args[0])
    if isinstance(node, sympy.Heaviside):
        return (sympy.S.Zero, sympy.S.One)
    if isinstance(node, sympy.sign):
        return (-sympy.S.One, sympy.S.One)
    if isinstance(node, sympy.Piecewise):
        return tuple(expr for expr, _ in node.args)
    return ()


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


def _parameter(activation: str, name: str, value: Any) -> float:
    """An activation parameter as a finite real float, else :class:`ActivationError`.

    >>> _parameter("elu", "alpha", float("nan"))
    Traceback (most recent call last):
    ...
    symnet.errors.ActivationError: elu: alpha=nan must be a finite real number
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, sympy.Expr)):
        raise ActivationError(f"{activation}: {name}={value!r} of type {type(value).__name__} must be a finite "
                              "real number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number):
        raise ActivationError(f"{activation}: {name}={value!r} must be a finite real number")
    return number


def _leaky_relu(alpha: float = 0.01) -> Activation:
    alpha = _parameter("leaky_relu", "alpha", alpha)
    a = sympy.Float(alpha)
    # Max(0, t) + a*Min(0, t), never a*t + (1 - a)*Max(0, t): for t > 0 that cancels, losing
    # log10(a) digits (a = 1e17 gave 0 for every positive t); the older form still loads from files
    return Activation(
        f"leaky_relu(alpha={alpha!r})",
        sympy.Max(0, T) + a * sympy.Min(0, T),
        lambda z: np.where(z > 0, z, alpha * z),
        lambda z: _half_at_zero(z, 1.0, alpha),
        lambda z: np.zeros_like(np.asarray(z, dtype=float)),
        kinks=(0.0,),
        legacy_forms=(a * T + (1 - a) * sympy.Max(0, T),),
    )


def _elu(alpha: float = 1.0) -> Activation:
    alpha = _parameter("elu", "alpha", alpha)
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


def _log_softmax_numpy(z: np.ndarray) -> np.ndarray:
    """``z - logsumexp(z)`` along the last axis: ``(z - z_m) - log1p(sum_{k != m} exp(z_k - z_m))``,
    ``m`` the largest unit (no overflow, and the largest unit's small value keeps its digits)."""
    z = np.asarray(z, dtype=np.result_type(z, np.float32))
    largest = np.argmax(z, axis=-1)[..., None]
    shifted = z - np.take_along_axis(z, largest, axis=-1)
    e = np.exp(shifted)
    np.put_along_axis(e, largest, 0.0, axis=-1)
    return shifted - np.log1p(e.sum(axis=-1, keepdims=True))


_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)

# The rules below keep relative accuracy over the whole float64 range (tests/test_tails.py
# checks them against mpmath): no ``1 - tanh(z)**2`` (0 for |z| > 19) or ``1 - sigmoid(z)``
# (0 for z > 37), whose exact values are far above the smallest float.


def _sig_slope(z: np.ndarray) -> np.ndarray:
    """``sigmoid'(z) = sigmoid(z) sigmoid(-z)``: each factor is ``expit``, exact to an ulp or two."""
    z = np.asarray(z, dtype=np.result_type(z, np.float64))
    return _sig(z) * _sig(-z)


def _tanh_slope(z: np.ndarray) -> np.ndarray:
    """``tanh'(z) = 1 - tanh(z)**2 = 4 sigmoid(2z) sigmoid(-2z)``."""
    return 4 * _sig_slope(2 * np.asarray(z, dtype=np.result_type(z, np.float64)))


def _two_product(a: np.ndarray, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(p, r)`` with ``p = fl(a*b)`` and ``a*b = p + r`` exactly (Dekker; ``|a|, |b| < 1e150``)."""
    def split(x: Any) -> tuple[Any, Any]:
        c = 134217729.0 * x  # 2**27 + 1: halves of 26 bits, whose products are exact
        hi = c - (c - x)
        return hi, x - hi
    p = a * b
    (ah, al), (bh, bl) = split(a), split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _phi(z: np.ndarray) -> np.ndarray:
    """The normal density ``exp(-z**2/2)/sqrt(2 pi)``, with ``z**2`` exact.

    ``exp(-z*z/2)`` inherits ``z*z``'s rounding error times ``z**2/2`` (up to 1.4e-13 at
    ``|z| = 38``); with ``z*z = p + r`` exactly, ``exp(-(p + r)/2) = exp(-p/2) (1 - r/2)``.
    """
    z = np.abs(np.asarray(z, dtype=np.result_type(z, np.float64)))
    p, r = _two_product(np.minimum(z, 40.0), np.minimum(z, 40.0))  # exp(-800) is 0; NaN stays NaN
    return _INV_SQRT_2PI * np.exp(-p / 2) * (1 - r / 2)


def _clip40(z: np.ndarray) -> np.ndarray:
    """``z`` clipped to ``[-40, 40]``, for polynomials multiplying ``_phi(z)``: past 40 the
    product is below the smallest float (0), where ``z**2 * 0`` would be ``inf * 0 = NaN``."""
    return np.clip(np.asarray(z, dtype=np.result_type(z, np.float64)), -40.0, 40.0)


def _phi_cdf(z: np.ndarray) -> np.ndarray:
    """``Phi(z) = erfc(-z/sqrt 2)/2``: ``(1 + erf(z/sqrt 2))/2`` is 0 in floats for ``z < -8.3``.

    The argument ``x = z/sqrt 2`` is rounded, which costs up to ``z**2`` ulp in the lower
    tail (``scipy.special.ndtr`` too), so it gets Taylor's first-order correction from the
    rounding error ``dx = (z - x sqrt 2)/sqrt 2``, formed exactly with Dekker's product.
    """
    z = np.asarray(z, dtype=np.result_type(z, np.float64))
    x = z * _INV_SQRT2
    value = scipy.special.erfc(-x) / 2
    inner = np.abs(x) < 40.0  # erfc is 0 or 2 beyond; keeps the products finite
    xs, zs = np.where(inner, x, 0.0), np.where(inner, z, 0.0)
    p, r = _two_product(xs, _SQRT2_HI)
    dx = (((zs - p) - r) - xs * _SQRT2_LO) * _INV_SQRT2
    return value + np.where(inner, dx * np.exp(-xs * xs) / np.sqrt(np.pi), 0.0)


def _softplus(beta: float = 1.0) -> Activation:
    """``log(1 + exp(beta t)) / beta`` (PyTorch's ``Softplus(beta)``); ``beta = 1`` is plain ``softplus``."""
    beta = _parameter("softplus", "beta", beta)
    if beta <= 0:
        raise ActivationError(f"softplus: beta={beta!r} must be > 0")
    if beta == 1.0:
        return _elementwise("softplus", softplus(T), lambda z: np.logaddexp(0.0, z), _sig, _sig_slope)
    b = sympy.Float(beta)
    return _elementwise(f"softplus(beta={beta!r})", softplus(b * T) / b,
                        lambda z: np.logaddexp(0.0, beta * np.asarray(z, float)) / beta,
                        lambda z: _sig(beta * np.asarray(z, float)),
                        lambda z: beta * _sig_slope(beta * np.asarray(z, float)))


def _mish_parts(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(z, tanh(s), sech(s)**2, sigmoid(z))`` with ``s = softplus(z)``; ``sech**2`` to full relative accuracy."""
    z = np.asarray(z, dtype=np.result_type(z, np.float64))
    s = np.logaddexp(0.0, z)
    return z, np.tanh(s), _tanh_slope(s), _sig(z)


def _mish_second(z: np.ndarray) -> np.ndarray:
    z, t, sech2, sg = _mish_parts(z)
    # d/dz of tanh(s) + z sech2 sigma, with d sech2/dz = -2 sech2 tanh sigma and sigma' = sigma (1 - sigma)
    return sech2 * sg * (2 + z * (_sig(-z) - 2 * t * sg))


_GELU_C = math.sqrt(2 / math.pi)
_GELU_A = 0.044715


def _gelu_tanh_parts(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(z, u, u', sech(u)**2)`` for ``u = sqrt(2/pi) (z + 0.044715 z**3)``."""
    z = np.asarray(z, dtype=np.result_type(z, np.float64))
    u = _GELU_C * (z + _GELU_A * z**3)
    return z, u, _GELU_C * (1 + 3 * _GELU_A * z * z), _tanh_slope(u)


def _gelu_tanh_first(z: np.ndarray) -> np.ndarray:
    z, u, du, sech2 = _gelu_tanh_parts(z)
    return _sig(2 * u) + np.where(sech2 == 0, 0.0, z / 2 * sech2 * du)  # (1 + tanh u)/2 = sigmoid(2u)


def _gelu_tanh_second(z: np.ndarray) -> np.ndarray:
    z, u, du, sech2 = _gelu_tanh_parts(z)
    with np.errstate(invalid="ignore", over="ignore"):
        value = sech2 * (du + z / 2 * (6 * _GELU_C * _GELU_A * z - 2 * np.tanh(u) * du * du))
    return np.where(sech2 == 0, 0.0, value)  # 0 * inf past |z| ~ 1e102, where the exact value is 0


_SELU_ALPHA = sympy.Float("1.6732632423543772848170429916717", 40)
_SELU_SCALE = sympy.Float("1.0507009873554804934193349852946", 40)


def _clamp(name: str, low: float, high: float, shift: int = 0, divisor: int = 1) -> Activation:
    """``min(max((t + shift) / divisor, low), high)``: piecewise linear, kinks where it meets each bound."""
    if not low < high:
        raise ActivationError(f"{name}: the lower bound {low!r} must be below the upper bound {high!r}")
    inner = (T + shift) / divisor if (shift, divisor) != (0, 1) else T

    def inner_numpy(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.result_type(z, np.float64))
        return (z + shift) / divisor if (shift, divisor) != (0, 1) else z * 1.0

    def slope(z: np.ndarray) -> np.ndarray:
        v = inner_numpy(z)
        inside = np.where((v > low) & (v < high), 1.0 / divisor, 0.0)
        return np.where((v == low) | (v == high), 0.5 / divisor, np.where(np.isnan(v), v, inside))

    return _elementwise(name, sympy.Min(sympy.Max(inner, sympy.Float(low)), sympy.Float(high)),
                        lambda z: np.clip(inner_numpy(z), low, high), slope,
                        lambda z: np.zeros_like(np.asarray(z, float)),
                        kinks=(low * divisor - shift, high * divisor - shift))


def _hardtanh(min_val: float = -1.0, max_val: float = 1.0) -> Activation:
    low, high = _parameter("hardtanh", "min_val", min_val), _parameter("hardtanh", "max_val", max_val)
    return _clamp(f"hardtanh(min_val={low!r}, max_val={high!r})" if (low, high) != (-1.0, 1.0) else "hardtanh",
                  low, high)


def _softsign_second(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.result_type(z, np.float64))
    return -2 * np.sign(z) / (1 + np.abs(z)) ** 3  # sign(0) = 0: the mean of both sides


_SQRT2_HI = 1.4142135623730951  # sqrt 2 = _SQRT2_HI + _SQRT2_LO to 106 bits
_SQRT2_LO = float(sympy.sqrt(2).evalf(40) - sympy.Float(_SQRT2_HI, 40))
_INV_SQRT2 = 1.0 / _SQRT2_HI

register("linear", _elementwise("linear", T, lambda z: np.asarray(z, float) * 1.0,
                                lambda z: np.ones_like(np.asarray(z, float)),
                                lambda z: np.zeros_like(np.asarray(z, float))),
         aliases=("identity", "none"))
register("sigmoid", _elementwise("sigmoid", sigmoid(T), _sig, _sig_slope,
                                 lambda z: -_sig_slope(z) * np.tanh(np.asarray(z, float) / 2)),
         aliases=("logistic",))
register("tanh", _elementwise("tanh", sympy.tanh(T), np.tanh, _tanh_slope,
                              lambda z: -2 * np.tanh(z) * _tanh_slope(z)))
register("relu", _elementwise("relu", sympy.Max(0, T), lambda z: np.maximum(z, 0),
                              lambda z: _half_at_zero(z, 1.0, 0.0),
                              lambda z: np.zeros_like(np.asarray(z, float)), kinks=(0.0,)))
register("leaky_relu", _leaky_relu)
register("elu", _elu)
register("softplus", _softplus)
register("silu", _elementwise("silu", T * sigmoid(T), lambda z: z * _sig(z),
                              lambda z: _sig(z) * (1 + z * _sig(-np.asarray(z, float))),
                              lambda z: _sig_slope(z) * (2 - z * np.tanh(np.asarray(z, float) / 2))),
         aliases=("swish",))
register("gelu", _elementwise("gelu", T / 2 * (1 + sympy.erf(T / sympy.sqrt(2))),
                              lambda z: z * _phi_cdf(z),
                              lambda z: _phi_cdf(z) + _clip40(z) * _phi(z),
                              lambda z: _phi(z) * (2 - np.square(_clip40(z)))))
register("sin", _elementwise("sin", sympy.sin(T), np.sin, np.cos, lambda z: -np.sin(z)))
register("cos", _elementwise("cos", sympy.cos(T), np.cos, lambda z: -np.sin(z), lambda z: -np.cos(z)))
register("exp", _elementwise("exp", sympy.exp(T), np.exp, np.exp, np.exp))
register("square", _elementwise("square", T**2, lambda z: np.square(z), lambda z: 2 * np.asarray(z, float),
                                lambda z: np.full_like(np.asarray(z, float), 2.0)))
register("softmax", Activation("softmax", None, _softmax_numpy, elementwise=False))
register("log_softmax", Activation("log_softmax", None, _log_softmax_numpy, elementwise=False))
register("mish", _elementwise("mish", T * sympy.tanh(softplus(T)),
                              lambda z: np.asarray(z, float) * np.tanh(np.logaddexp(0.0, z)),
                              lambda z: (lambda z, t, sech2, sg: t + z * sech2 * sg)(*_mish_parts(z)),
                              _mish_second))
register("gelu_tanh", _elementwise(
    "gelu_tanh", T / 2 * (1 + sympy.tanh(sympy.sqrt(2 / sympy.pi) * (T + sympy.Rational(44715, 10**6) * T**3))),
    lambda z: (lambda z, u, du, sech2: z * _sig(2 * u))(*_gelu_tanh_parts(z)), _gelu_tanh_first, _gelu_tanh_second),
    aliases=("gelu_approximate",))
register("selu", _elementwise(
    "selu", _SELU_SCALE * (sympy.Max(0, T) + _SELU_ALPHA * (sympy.exp(sympy.Min(0, T)) - 1)),
    lambda z: float(_SELU_SCALE) * np.where(z > 0, z, float(_SELU_ALPHA) * np.expm1(np.minimum(z, 0))),
    lambda z: float(_SELU_SCALE) * _half_at_zero(z, 1.0, float(_SELU_ALPHA) * np.exp(np.minimum(z, 0))),
    lambda z: float(_SELU_SCALE) * _half_at_zero(z, 0.0, float(_SELU_ALPHA) * np.exp(np.minimum(z, 0))),
    kinks=(0.0,)))
register("softsign", _elementwise("softsign", T / (1 + sympy.Abs(T)),
                                  lambda z: np.asarray(z, float) / (1 + np.abs(z)),
                                  lambda z: 1 / (1 + np.abs(np.asarray(z, float))) ** 2, _softsign_second,
                                  kinks=(0.0,)))
register("hardtanh", _hardtanh)
register("relu6", _clamp("relu6", 0.0, 6.0))
register("hard_sigmoid", _clamp("hard_sigmoid", 0.0, 1.0, shift=3, divisor=6), aliases=("hardsigmoid",))
