"""Every graph op and composite, alone in a tiny graph, against two independent oracles (as JAX tests
each primitive's rules).

For each op of ``symnet.graph.OPS`` and each composite of ``symnet.graph.COMPOSITES`` a tiny graph
isolates it: 2 or 3 inputs, the op, and a smooth layer only where the op needs one (``sin`` before a
linear op, so that its derivatives of every order are not zero; a ``tanh`` dense beside the input of
a two-input op, so that its two inputs differ).  Hypothesis draws the parameters, the evaluation
point, one output, and the order of a third partial.  symnet's derivatives of that output, each
through its chain-rule program (the value ``net.outputs``, ``symnet.grad``, ``symnet.hessian``,
``symnet.diff`` of the third partial and ``symnet.laplacian``), evaluated in 30-digit arithmetic,
must agree with

* ``sympy.diff`` of the op's closed form written by hand below (never read from symnet), evaluated
  in 30-digit arithmetic, to 1e-12 relative; and
* nested central finite differences, in 40-digit mpmath, of the same hand-written forward function
  evaluated numerically, to 1e-10 relative (step ``10**-(40 // (k + 2))`` for order ``k``).

The hand-written forward functions take a math namespace: SymPy's functions give the closed form,
mpmath's the numeric evaluation.  Also checked: the ops and composites tested are exactly
``OPS`` and ``COMPOSITES`` (a newly registered op without a case fails), and each graph contains
the op it claims to test.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

import mpmath
import pytest
import sympy
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import symnet
from symnet import graph
from symnet.graph import COMPOSITES, OPS

#: Examples per case (and per activation): SymPy is slow, and there are 23 cases and 11 activations.
_EXAMPLES = 20
_EXAMPLES_PER_ACTIVATION = 5

#: Agreement with sympy.diff at 30 digits, and with finite differences at 40 digits.
_SYMPY_TOLERANCE = 1e-12
_FINITE_DIFFERENCE_TOLERANCE = 1e-10

_SYMPY = SimpleNamespace(exp=sympy.exp, log=sympy.log, sin=sympy.sin, cos=sympy.cos, tanh=sympy.tanh,
                         sqrt=sympy.sqrt, erf=sympy.erf, pi=sympy.pi)
_MPMATH = SimpleNamespace(exp=mpmath.exp, log=mpmath.log, sin=mpmath.sin, cos=mpmath.cos, tanh=mpmath.tanh,
                          sqrt=mpmath.sqrt, erf=mpmath.erf, pi=mpmath.pi)


# --- strategies ---------------------------------------------------------------------------------

_NUMBER = st.floats(-2, 2)
_NONZERO = st.one_of(st.floats(0.25, 2), st.floats(-2, -0.25))


def _row(n: int, entries: st.SearchStrategy = _NUMBER) -> st.SearchStrategy:
    return st.lists(entries, min_size=n, max_size=n)


def _matrix(rows: int, cols: int) -> st.SearchStrategy:
    return st.lists(_row(cols), min_size=rows, max_size=rows)


def _row_or_scalar(n: int, entries: st.SearchStrategy = _NUMBER) -> st.SearchStrategy:
    """A row of ``n`` entries or of one (which broadcasts)."""
    return st.sampled_from([1, n]).flatmap(lambda size: _row(size, entries))


def _params(**fields: st.SearchStrategy) -> st.SearchStrategy:
    return st.fixed_dictionaries(fields)


def _with_width(widths: list[int], make: Callable[[int], st.SearchStrategy]) -> st.SearchStrategy:
    return st.sampled_from(widths).flatmap(make)


# --- the hand-written forms, for a math namespace m (SymPy or mpmath) ---------------------------

def _pick(row: list, j: int) -> Any:
    """Entry ``j`` of a row that may be a single broadcast entry."""
    return row[0] if len(row) == 1 else row[j]


def _broadcast(a: list, b: list, combine: Callable[[Any, Any], Any]) -> list:
    return [combine(_pick(a, j), _pick(b, j)) for j in range(max(len(a), len(b)))]


def _times(h: list, matrix: list) -> list:
    return [sum(h[i] * matrix[i][j] for i in range(len(h))) for j in range(len(matrix[0]))]


def _affine(h: list, weight: list, bias: list) -> list:
    return [v + b for v, b in zip(_times(h, weight), bias)]


def _sin(m: Any, h: list) -> list:
    return [m.sin(v) for v in h]


def _tanh_dense(m: Any, h: list, weight: list, bias: list) -> list:
    return [m.tanh(v) for v in _affine(h, weight, bias)]


def _layer_norm(m: Any, h: list, gamma: list, beta: list, eps: Any) -> list:
    n = len(h)
    mean = sum(h) / n
    centred = [v - mean for v in h]
    variance = sum(c * c for c in centred) / n
    return [c / m.sqrt(variance + eps) * _pick(gamma, j) + _pick(beta, j) for j, c in enumerate(centred)]


def _rms_norm(m: Any, h: list, gamma: list, eps: Any) -> list:
    root = m.sqrt(sum(v * v for v in h) / len(h) + eps)
    return [v / root * _pick(gamma, j) for j, v in enumerate(h)]


def _weight_norm(m: Any, v: list, g: list) -> list:
    norms = [m.sqrt(sum(row[j] ** 2 for row in v)) for j in range(len(g))]
    return [[g[j] * row[j] / norms[j] for j in range(len(g))] for row in v]


def _factorized(m: Any, s: list, V: list) -> list:
    return [[m.exp(s[j]) * row[j] for j in range(len(s))] for row in V]


def _cubic(t: Any) -> Any:
    """A user's activation, given to the builder as a Python callable (which symnet traces)."""
    return t ** 3 / 3 - t


#: Activations by name: their form, written from their textbook definitions.
_ACTIVATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "linear": lambda m, t: t,
    "sigmoid": lambda m, t: 1 / (1 + m.exp(-t)),
    "tanh": lambda m, t: m.tanh(t),
    "softplus": lambda m, t: m.log(1 + m.exp(t)),
    "silu": lambda m, t: t / (1 + m.exp(-t)),
    "gelu": lambda m, t: t / 2 * (1 + m.erf(t / m.sqrt(2))),
    "sin": lambda m, t: m.sin(t),
    "cos": lambda m, t: m.cos(t),
    "exp": lambda m, t: m.exp(t),
    "square": lambda m, t: t * t,
    "mish": lambda m, t: t * m.tanh(m.log(1 + m.exp(t))),
    "gelu_tanh": lambda m, t: t / 2 * (1 + m.tanh(m.sqrt(2 / m.pi) * (t + 44715 * t**3 / 10**6))),
    "cubic": lambda m, t: _cubic(t),
}

#: How the builder is given each activation: a name, or a traced Python callable ("cubic").
_ACTIVATION_SPECS: dict[str, Any] = {name: name for name in _ACTIVATIONS} | {"cubic": _cubic}


# --- the cases ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Case:
    """One op (or composite) in a tiny graph.

    ``build(x, p)`` writes the graph on the input tensor ``x``; ``forward(m, x, p)`` is its output
    list written by hand with the math namespace ``m``; ``valid(point, p)`` rules out (near-)singular
    draws; ``expects`` are the ops (or ``softmax``, ``weight_norm``, ``factorized``) the graph holds.
    """

    name: str
    n_inputs: int
    params: st.SearchStrategy
    build: Callable[[Any, dict], Any]
    forward: Callable[[Any, list, dict], list]
    expects: frozenset[str]
    valid: Callable[[list, dict], bool] = lambda point, p: True


def _two_input_case(name: str, builder: Callable[[Any, Any], Any], combine: Callable[[Any, Any], Any]) -> _Case:
    """``op(sin(x), tanh(dense(x)))``: the dense of width 1 or 2 (broadcast), on either side."""

    def build(x: Any, p: dict) -> Any:
        a, b = graph.activation(x, "sin"), graph.dense(x, p["W"], p["c"], "tanh")
        return builder(b, a) if p["swap"] else builder(a, b)

    def forward(m: Any, x: list, p: dict) -> list:
        a, b = _sin(m, x), _tanh_dense(m, x, p["W"], p["c"])
        return _broadcast(b, a, combine) if p["swap"] else _broadcast(a, b, combine)

    params = _with_width([1, 2], lambda w: _params(W=_matrix(2, w), c=_row(w), swap=st.booleans()))
    return _Case(name, 2, params, build, forward, frozenset({name}))


def _activation_case(act: st.SearchStrategy) -> _Case:
    """``f(dense(x))`` (a chain network) or ``f(x @ C)`` (a graph), both routes drawn."""

    def build(x: Any, p: dict) -> Any:
        pre = graph.dense(x, p["W"], p["b"]) if p["pre"] == "dense" else graph.matmul(x, p["W"])
        return graph.activation(pre, _ACTIVATION_SPECS[p["act"]])

    def forward(m: Any, x: list, p: dict) -> list:
        pre = _affine(x, p["W"], p["b"]) if p["pre"] == "dense" else _times(x, p["W"])
        return [_ACTIVATIONS[p["act"]](m, v) for v in pre]

    params = _params(act=act, pre=st.sampled_from(["dense", "matmul"]), W=_matrix(2, 2), b=_row(2))
    return _Case("activation", 2, params, build, forward, frozenset({"activation"}))


_OP_CASES: dict[str, _Case] = {case.name: case for case in [
    _Case("dense", 2, _with_width([1, 2, 3], lambda n: _params(W=_matrix(2, n), b=_row(n))),
          lambda x, p: graph.dense(graph.activation(x, "sin"), p["W"], p["b"]),
          lambda m, x, p: _affine(_sin(m, x), p["W"], p["b"]), frozenset({"dense"})),
    _Case("matmul", 2, _with_width([1, 2, 3], lambda n: _params(C=_matrix(2, n))),
          lambda x, p: graph.matmul(graph.activation(x, "sin"), p["C"]),
          lambda m, x, p: _times(_sin(m, x), p["C"]), frozenset({"matmul"})),
    _two_input_case("add", graph.add, lambda a, b: a + b),
    _two_input_case("sub", graph.sub, lambda a, b: a - b),
    _Case("scale", 2, _params(s=_row_or_scalar(2)),
          lambda x, p: graph.scale(graph.activation(x, "sin"), p["s"]),
          lambda m, x, p: [v * _pick(p["s"], j) for j, v in enumerate(_sin(m, x))], frozenset({"scale"})),
    _Case("shift", 2, _params(t=_row_or_scalar(2)),
          lambda x, p: graph.shift(graph.activation(x, "sin"), p["t"]),
          lambda m, x, p: [v + _pick(p["t"], j) for j, v in enumerate(_sin(m, x))], frozenset({"shift"})),
    _Case("rescale", 2, _params(scale=_row_or_scalar(2), offset=_row_or_scalar(2)),
          lambda x, p: graph.rescale(graph.activation(x, "sin"), p["scale"], p["offset"]),
          lambda m, x, p: [v * _pick(p["scale"], j) + _pick(p["offset"], j) for j, v in enumerate(_sin(m, x))],
          frozenset({"rescale"})),
    _Case("concat", 2, _params(W=_matrix(2, 1), c=_row(1)),
          lambda x, p: graph.concat(graph.activation(x, "sin"), graph.dense(x, p["W"], p["c"], "tanh"), x),
          lambda m, x, p: _sin(m, x) + _tanh_dense(m, x, p["W"], p["c"]) + list(x), frozenset({"concat"})),
    _Case("slice", 3,
          st.integers(0, 2).flatmap(lambda start: _params(start=st.just(start), stop=st.integers(start + 1, 3))),
          lambda x, p: graph.slice(graph.activation(x, "sin"), p["start"], p["stop"]),
          lambda m, x, p: _sin(m, x)[p["start"]:p["stop"]], frozenset({"slice"})),
    _Case("sum", 3, _params(),
          lambda x, p: graph.sum(graph.activation(x, "sin")),
          lambda m, x, p: [sum(_sin(m, x))], frozenset({"sum"})),
    _Case("mean", 3, _params(),
          lambda x, p: graph.mean(graph.activation(x, "sin")),
          lambda m, x, p: [sum(_sin(m, x)) / 3], frozenset({"mean"})),
    _activation_case(st.sampled_from(sorted(_ACTIVATIONS))),
    _two_input_case("mul", graph.mul, lambda a, b: a * b),
]}


def _blend_build(x: Any, p: dict) -> Any:
    return graph.blend(graph.activation(x, "sin"), graph.dense(x, p["W"], p["c"], "tanh"), p["alpha"])


def _blend_forward(m: Any, x: list, p: dict) -> list:
    alpha = p["alpha"]
    return _broadcast(_sin(m, x), _tanh_dense(m, x, p["W"], p["c"]), lambda f, h: alpha * f + (1 - alpha) * h)


def _parametrized_dense(kind: str, matrices: Callable[[dict], dict]) -> Callable[[Any, dict], Any]:
    def build(x: Any, p: dict) -> Any:
        return graph.dense(graph.activation(x, "sin"), len(p["b"]), p["b"], parametrization=kind, **matrices(p))
    return build


def _variance(point: list) -> float:
    mean = sum(point) / len(point)
    return sum((v - mean) ** 2 for v in point) / len(point)


_COMPOSITE_CASES: dict[str, _Case] = {case.name: case for case in [
    _Case("softmax", 3, _params(),
          lambda x, p: graph.softmax(x),
          lambda m, x, p: [m.exp(v) / sum(m.exp(u) for u in x) for v in x], frozenset({"softmax"})),
    _Case("log_softmax", 3, _params(),
          lambda x, p: graph.log_softmax(x),
          lambda m, x, p: [v - m.log(sum(m.exp(u) for u in x)) for v in x], frozenset({"log_softmax"})),
    _Case("layer_norm", 3,
          _params(gamma=_row_or_scalar(3), beta=_row_or_scalar(3), eps=st.sampled_from([1e-5, 1e-3, 0.1])),
          lambda x, p: graph.layer_norm(x, p["gamma"], p["beta"], p["eps"]),
          lambda m, x, p: _layer_norm(m, x, p["gamma"], p["beta"], p["eps"]),
          frozenset({"mean", "sub", "mul", "rescale", "activation", "scale", "shift"}),
          valid=lambda point, p: _variance(point) >= 0.01),
    _Case("rms_norm", 3, _params(gamma=_row_or_scalar(3), eps=st.sampled_from([1e-6, 1e-3, 0.1])),
          lambda x, p: graph.rms_norm(x, p["gamma"], p["eps"]),
          lambda m, x, p: _rms_norm(m, x, p["gamma"], p["eps"]),
          frozenset({"mul", "mean", "rescale", "activation", "scale"}),
          valid=lambda point, p: sum(v * v for v in point) / len(point) >= 0.01),
    _Case("normalize", 2, _params(mean=_row_or_scalar(2), std=_row_or_scalar(2, _NONZERO)),
          lambda x, p: graph.normalize(graph.activation(x, "sin"), p["mean"], p["std"]),
          lambda m, x, p: [(v - _pick(p["mean"], j)) / _pick(p["std"], j) for j, v in enumerate(_sin(m, x))],
          frozenset({"rescale"})),
    _Case("batch_norm", 2,
          _params(mean=_row_or_scalar(2), var=_row_or_scalar(2, st.floats(0, 2)), gamma=_row_or_scalar(2),
                  beta=_row_or_scalar(2), eps=st.sampled_from([1e-5, 1e-3, 0.1])),
          lambda x, p: graph.batch_norm(graph.activation(x, "sin"), p["mean"], p["var"], p["gamma"], p["beta"],
                                        p["eps"]),
          lambda m, x, p: [(v - _pick(p["mean"], j)) / m.sqrt(_pick(p["var"], j) + p["eps"]) * _pick(p["gamma"], j)
                           + _pick(p["beta"], j) for j, v in enumerate(_sin(m, x))],
          frozenset({"rescale"})),
    _Case("fourier_features", 2, _with_width([1, 2], lambda n: _params(B=_matrix(2, n))),
          lambda x, p: graph.fourier_features(x, p["B"]),
          lambda m, x, p: [m.cos(v) for v in _times(x, p["B"])] + [m.sin(v) for v in _times(x, p["B"])],
          frozenset({"matmul", "activation", "concat"})),
    _Case("blend", 2, _with_width([1, 2], lambda w: _params(W=_matrix(2, w), c=_row(w), alpha=_NUMBER)),
          _blend_build, _blend_forward, frozenset({"sub", "scale", "add"})),
    _Case("inner", 2, _params(W=_matrix(2, 2), c=_row(2)),
          lambda x, p: graph.inner(graph.activation(x, "sin"), graph.dense(x, p["W"], p["c"], "tanh")),
          lambda m, x, p: [sum(a * b for a, b in zip(_sin(m, x), _tanh_dense(m, x, p["W"], p["c"])))],
          frozenset({"mul", "sum"})),
    _Case("weight_norm", 2, _with_width([1, 2], lambda n: _params(v=_matrix(2, n), g=_row(n), b=_row(n))),
          _parametrized_dense("weight_norm", lambda p: {"v": p["v"], "g": p["g"]}),
          lambda m, x, p: _affine(_sin(m, x), _weight_norm(m, p["v"], p["g"]), p["b"]),
          frozenset({"weight_norm"}),
          valid=lambda point, p: all(sum(row[j] ** 2 for row in p["v"]) >= 1 / 16 for j in range(len(p["g"])))),
    _Case("factorized", 2, _with_width([1, 2], lambda n: _params(s=_row(n), V=_matrix(2, n), b=_row(n))),
          _parametrized_dense("factorized", lambda p: {"s": p["s"], "V": p["V"]}),
          lambda m, x, p: _affine(_sin(m, x), _factorized(m, p["s"], p["V"]), p["b"]),
          frozenset({"factorized"})),
]}


# --- the oracles ----------------------------------------------------------------------------------

def _skeleton(value: Any) -> Any:
    """``value`` with every float (a parameter) blanked: what fixes the closed form's shape."""
    if isinstance(value, float):
        return None
    if isinstance(value, (list, tuple)):
        return tuple(_skeleton(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _skeleton(v)) for k, v in value.items())
    return value


def _map_floats(value: Any, change: Callable[[float], Any]) -> Any:
    if isinstance(value, float):
        return change(value)
    if isinstance(value, (list, tuple)):
        return [_map_floats(v, change) for v in value]
    if isinstance(value, dict):
        return {k: _map_floats(v, change) for k, v in value.items()}
    return value


def _floats(value: Any) -> list[float]:
    found: list[float] = []
    _map_floats(value, found.append)
    return found


@dataclass
class _ClosedForm:
    """A case's hand-written outputs with its parameters as symbols, and their derivatives so far
    (``{(output, sorted multi-index): expression}``, and the same lambdified to mpmath)."""

    inputs: tuple[sympy.Symbol, ...]
    params: tuple[sympy.Symbol, ...]
    n_outputs: int
    derivatives: dict[tuple[int, tuple[int, ...]], sympy.Expr]
    functions: dict[tuple[int, tuple[int, ...]], Callable[..., Any]]


_CLOSED_FORMS: dict[Any, _ClosedForm] = {}


def _closed_form(case: _Case, p: dict) -> _ClosedForm:
    """The case's closed form for the shape of ``p`` (built once per shape: sympy.diff is slow)."""
    key = (case.name, _skeleton(p))
    if key not in _CLOSED_FORMS:
        params: list[sympy.Symbol] = []

        def symbol(_: float) -> sympy.Symbol:
            params.append(sympy.Symbol(f"p{len(params)}", real=True))
            return params[-1]

        inputs = sympy.symbols(f"x0:{case.n_inputs}", real=True)
        outputs = case.forward(_SYMPY, list(inputs), _map_floats(p, symbol))
        derivatives = {(k, ()): sympy.sympify(v) for k, v in enumerate(outputs)}
        _CLOSED_FORMS[key] = _ClosedForm(tuple(inputs), tuple(params), len(outputs), derivatives, {})
    return _CLOSED_FORMS[key]


def _sympy_expression(form: _ClosedForm, output: int, alpha: tuple[int, ...]) -> sympy.Expr:
    """``d^alpha`` of one output of the closed form by ``sympy.diff``, one order at a time."""
    key = (output, tuple(sorted(alpha)))
    if key not in form.derivatives:
        *rest, last = key[1]
        form.derivatives[key] = sympy.diff(_sympy_expression(form, output, tuple(rest)), form.inputs[last])
    return form.derivatives[key]


def _sympy_derivative(form: _ClosedForm, output: int, alpha: tuple[int, ...], arguments: list) -> Any:
    """``d^alpha`` of the closed form by ``sympy.diff``, at ``arguments`` (inputs, then parameters)
    in 30-digit arithmetic."""
    key = (output, tuple(sorted(alpha)))
    if key not in form.functions:
        form.functions[key] = sympy.lambdify(form.inputs + form.params, _sympy_expression(form, output, alpha),
                                             "mpmath", cse=True)
    with mpmath.workdps(30):
        return mpmath.mpf(form.functions[key](*[mpmath.mpf(v) for v in arguments]))


def _central_difference(f: Callable[[list], Any], point: list, alpha: tuple[int, ...], step: Any) -> Any:
    """``d^alpha f`` at ``point`` by nested central differences (call within the working precision)."""
    if not alpha:
        return f(point)
    i, rest = alpha[0], alpha[1:]
    up, down = list(point), list(point)
    up[i] += step
    down[i] -= step
    return (_central_difference(f, up, rest, step) - _central_difference(f, down, rest, step)) / (2 * step)


def _finite_difference(case: _Case, p: dict, output: int, alpha: tuple[int, ...], point: list) -> Any:
    """``d^alpha`` of the hand-written forward function evaluated by mpmath, by finite differences
    in 40-digit arithmetic."""
    with mpmath.workdps(40):
        params = _map_floats(p, mpmath.mpf)
        step = mpmath.mpf(10) ** -(40 // (len(alpha) + 2))
        return _central_difference(lambda x: case.forward(_MPMATH, x, params)[output],
                                   [mpmath.mpf(v) for v in point], alpha, step)


def _symnet_derivatives(net: symnet.Network, output: int, third: tuple[int, int, int]) -> dict[Any, Any]:
    """symnet's value, gradient, Hessian, third partial ``third`` and Laplacian of ``output``, as
    flat SymPy expressions keyed by multi-index (``"laplacian"`` for the Laplacian)."""
    d = net.n_inputs
    gradient = symnet.grad(net, output=output)
    hessian = symnet.hessian(net, output=output)
    found: dict[Any, Any] = {(): net.outputs[output]}
    found |= {(i,): gradient[i] for i in range(d)}
    found |= {(i, j): hessian[i, j] for i in range(d) for j in range(d)}
    found[third] = symnet.diff(net, *third, output=output)
    found["laplacian"] = symnet.laplacian(net, output=output)
    return found


def _at_30_digits(exprs: list, symbols: tuple[sympy.Symbol, ...], point: list) -> list:
    """Flat expressions at ``point`` in 30-digit mpmath arithmetic (symnet's sigmoid and softplus
    written out; every Float keeps its exact binary value)."""
    distinct = list(dict.fromkeys(exprs))  # the Hessian's (i, j) and (j, i), once
    written_out = [sympy.sympify(e).replace(symnet.sigmoid, lambda a: 1 / (1 + sympy.exp(-a)))
                   .replace(symnet.softplus, lambda a: sympy.log(1 + sympy.exp(a))) for e in distinct]
    function = sympy.lambdify(symbols, written_out, "mpmath")
    with mpmath.workdps(30):
        values = dict(zip(distinct, (mpmath.mpf(v) for v in function(*[mpmath.mpf(v) for v in point]))))
    return [values[e] for e in exprs]


def _ops_in(net: symnet.Network) -> set[str]:
    """The ops of ``net``'s graph, plus ``softmax`` and dense parametrisations by name."""
    found = set()
    for node in net.graph.nodes[1:]:
        found.add(node.op)
        if node.op == "dense":
            found.add(node.attrs.get("parametrization", "plain"))
        if node.op == "activation" and node.attrs["activation"].name in ("softmax", "log_softmax"):
            found.add(node.attrs["activation"].name)
    return found


def _agree(got: Any, want: Any, tolerance: float) -> bool:
    return abs(got - want) <= tolerance * max(abs(want), 1)


def _check(case: _Case, data: st.DataObject) -> None:
    d = case.n_inputs
    p = data.draw(case.params, label="parameters")
    point = data.draw(_row(d), label="point")
    assume(case.valid(point, p))
    x = graph.input(d)
    net = graph.network(x, case.build(x, p))
    assert case.expects <= _ops_in(net), f"the graph for {case.name} lacks {case.expects - _ops_in(net)}"
    form = _closed_form(case, p)
    assert net.n_outputs == form.n_outputs
    output = data.draw(st.integers(0, net.n_outputs - 1), label="output")
    third = data.draw(st.tuples(*[st.integers(0, d - 1)] * 3), label="third partial")

    found = _symnet_derivatives(net, output, third)
    values = dict(zip(found, _at_30_digits(list(found.values()), net.inputs, point)))
    arguments = point + _floats(p)
    alphas = [alpha for alpha in found if alpha != "laplacian"]
    by_sympy = {alpha: _sympy_derivative(form, output, alpha, arguments) for alpha in alphas}
    by_differences = {alpha: _finite_difference(case, p, output, alpha, point) for alpha in alphas}
    by_sympy["laplacian"] = sum(by_sympy[(i, i)] for i in range(d))
    by_differences["laplacian"] = sum(by_differences[(i, i)] for i in range(d))

    wrong = {alpha: (values[alpha], by_sympy[alpha]) for alpha in found
             if not _agree(values[alpha], by_sympy[alpha], _SYMPY_TOLERANCE)}
    assert not wrong, f"{case.name}: symnet != sympy.diff at {wrong}\n{net.graph.describe()}"
    wrong = {alpha: (values[alpha], by_differences[alpha]) for alpha in found
             if not _agree(values[alpha], by_differences[alpha], _FINITE_DIFFERENCE_TOLERANCE)}
    assert not wrong, f"{case.name}: symnet != finite differences at {wrong}\n{net.graph.describe()}"


# --- the tests ------------------------------------------------------------------------------------

def test_every_op_and_composite_has_a_case():
    assert set(_OP_CASES) == set(OPS)
    assert set(_COMPOSITE_CASES) == set(COMPOSITES)


@pytest.mark.parametrize("name", sorted(_OP_CASES))
@settings(max_examples=_EXAMPLES)
@given(data=st.data())
def test_op_derivatives_match_sympy_diff_and_finite_differences(name, data):
    _check(_OP_CASES[name], data)


@pytest.mark.parametrize("name", sorted(_COMPOSITE_CASES))
@settings(max_examples=_EXAMPLES)
@given(data=st.data())
def test_composite_derivatives_match_sympy_diff_and_finite_differences(name, data):
    _check(_COMPOSITE_CASES[name], data)


def test_every_smooth_activation_has_a_form():
    """A newly registered smooth activation needs its textbook form in ``_ACTIVATIONS``."""
    registered = {name for name in symnet.activations.names()
                  if symnet.activations.get(name).elementwise and symnet.activations.get(name).smooth}
    assert registered <= set(_ACTIVATIONS)


@pytest.mark.parametrize("act", sorted(_ACTIVATIONS))
@settings(max_examples=_EXAMPLES_PER_ACTIVATION)
@given(data=st.data())
def test_each_activation_derivatives_match_sympy_diff_and_finite_differences(act, data):
    """The activation op with each activation in turn (the op's own test draws one per example)."""
    _check(_activation_case(st.just(act)), data)
