"""The layered strategy: exact derivatives propagated forward through the layers (Taylor mode).

For a batch of points every layer carries stacked *streams* per unit: the value ``z``, the
first-order tangents ``dz/dx_i`` and the second-order terms -- the packed Hessian entries
``d2z/dx_i dx_k`` (``i <= k``) or, for the Laplacian alone, one collapsed stream
``sum_i d2z/dx_i2`` (the forward Laplacian) -- and, for partials of order 3 and more, one
stream per multi-index they need (the partial and every sub-multi-index of order 3 or
more).  An affine layer maps every stream with one matrix multiply (BLAS) on the stack
``(points * streams, width) @ W``; the activation maps them with the chain rule

    a = f(z),   da_i = f'(z) dz_i,   d2a_ik = f'(z) d2z_ik + f''(z) dz_i dz_k,
    lap(a) = f'(z) lap(z) + f''(z) sum_i dz_i**2,
    d3a_ikl = f'(z) d3z_ikl + f''(z) (dz_i d2z_kl + dz_k d2z_il + dz_l d2z_ik) + f3(z) dz_i dz_k dz_l,

and for any order Faa di Bruno's formula (one term per partition of the multi-index:
:func:`_partitions`), in one elementwise pass whose ``f, f', f''`` (and higher derivatives
``fk``) are printed from SymPy's derivatives of the scalar activation -- exact, as in the
expression strategy.  With ``backend="numba"`` the pass is one numba loop (cached on disk):
``tanh`` and the ``exp`` of sigmoid-like activations are computed in it by
:mod:`._vecmath`, which LLVM vectorises, other transcendental functions beforehand by
numpy's SIMD ufuncs; with ``backend="numpy"`` it runs as numpy operations into scratch
arrays (nothing compiled).  Weights are runtime
arguments; the pass depends only on the activation and the request.  Points are processed
in chunks whose buffers fit :data:`MEMORY_BUDGET`, reused across chunks, layers and calls.
"""

from __future__ import annotations

import itertools
import threading
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import sympy
from sympy.codegen.cfunctions import expm1, log1p

from ..activations import T, Activation
from ..errors import ActivationError
from ..network import Network
from ..program import MultiIndex
from . import _cache
from ._blocks import PerThread
from ._threads import over_chunks, thread_count
from ..functions import erfc_neg, sigmoid, softplus, tail_safe
from ..faa_di_bruno import grouped_terms
from .codegen import ArrayPrinter, ScalarPrinter, docstring, pair_sigmoids, vecmath_digest, vectorised_lines

__all__ = ["CompiledPassWarning", "LayeredPlan", "derivatives_pass", "forward_streams", "supports"]

#: Bytes of stacked streams a chunk of points may use (two ping-pong buffers and the pass's
#: scratch), per thread (:mod:`symnet.kernels._threads`: each thread works on its own chunk).
#: Chunks that stay in the caches run faster than larger ones: with one thread, 16 MiB beat
#: 64 MiB; with a chunk per core, 4 MiB beat 8 and 16 MiB on every net measured
#: (``benchmarks/threads.py --budgets 4,8,16``; the figures are in
#: benchmarks/RESULTS.md, "Measurements behind design choices in the code").
#: The forward-adjoint schedule has its own (:data:`symnet.kernels._adjoint.MEMORY_BUDGET`).
MEMORY_BUDGET = 4 * 2**20

#: The highest order of a partial the layered strategy propagates (Faa di Bruno's formula has
#: 203 terms at order 6 and 877 at 7; past it the expression strategy takes the request).
MAX_ORDER = 6

#: First layers with at most this many inputs compute ``z = X W + b`` inside their numba pass,
#: point by point, instead of a product over the chunk and a pass adding the bias: for a net
#: with few inputs that product and pass were a noticeable share of the call (T3; figures in
#: benchmarks/RESULTS.md, "Measurements behind design choices in the code").
AFFINE_INPUTS = 4


def supports(net: Network, words: tuple[str, ...], partials: tuple[tuple[int, ...], ...]) -> str | None:
    """``None`` if the layered strategy can evaluate this chain's request, else the reason it cannot
    (:func:`symnet.kernels._graph_layered.graph_supports` for graph networks)."""
    for number, activation in enumerate(net.activations, start=1):
        if not activation.elementwise:
            return f"layer {number}'s activation {activation.name!r} is not elementwise"
    if any(len(alpha) > MAX_ORDER for alpha in partials):
        return f"partials of order {MAX_ORDER + 1} or more need the expression strategy"
    return None


_UFUNCS = {
    sympy.tanh: "numpy.tanh", sympy.exp: "numpy.exp", sympy.log: "numpy.log", sympy.sin: "numpy.sin",
    sympy.cos: "numpy.cos", sympy.erf: "scipy.special.erf", sympy.Abs: "numpy.abs", sigmoid: "scipy.special.expit",
    sympy.erfc: "scipy.special.erfc", expm1: "numpy.expm1", log1p: "numpy.log1p",
}


class _Emitter:
    """Three-address numpy code: every operation writes into a preallocated scratch array.

    Temporaries that numpy would allocate for ``1 - c**2`` cost more than the arithmetic
    (fresh pages are zero-filled by the kernel), so each operation gets ``out=``.
    """

    def __init__(self, names: dict[sympy.Symbol, str]) -> None:
        self.names = dict(names)
        self.lines: list[str] = []
        self.slots = 0
        self.fallback = ArrayPrinter(self.names)

    def new(self) -> str:
        self.slots += 1
        return f"s[{self.slots - 1}]"

    def value(self, expr: sympy.Expr) -> str:
        """A name or literal holding ``expr``."""
        if expr in self.names:
            return self.names[expr]
        if expr.is_number:  # constants such as sqrt(2) are folded, not broadcast
            return repr(float(expr))
        out = self.new()
        self.emit(expr, out)
        return out

    def emit(self, expr: sympy.Expr, out: str) -> None:
        func, args = expr.func, expr.args
        if expr in self.names or expr.is_Number:
            self.lines.append(f"numpy.copyto({out}, {self.value(expr)})")
        elif expr.is_Add or expr.is_Mul:
            ufunc = "numpy.add" if expr.is_Add else "numpy.multiply"
            first, *rest = args
            self.lines.append(f"{ufunc}({self.value(first)}, {self.value(rest[0])}, out={out})")
            for arg in rest[1:]:
                self.lines.append(f"{ufunc}({out}, {self.value(arg)}, out={out})")
        elif expr.is_Pow and args[1] == 2:
            base = self.value(args[0])
            self.lines.append(f"numpy.multiply({base}, {base}, out={out})")
        elif expr.is_Pow and args[1] == -1:
            self.lines.append(f"numpy.divide(1.0, {self.value(args[0])}, out={out})")
        elif expr.is_Pow and args[1].is_Number:
            self.lines.append(f"numpy.power({self.value(args[0])}, {self.value(args[1])}, out={out})")
        elif func in _UFUNCS:
            self.lines.append(f"{_UFUNCS[func]}({self.value(args[0])}, out={out})")
        elif func is softplus:
            self.lines.append(f"numpy.logaddexp(0.0, {self.value(args[0])}, out={out})")
        elif func is erfc_neg:  # erfc(-x) = 1 + erf(x), with no cancellation
            self.lines.append(f"numpy.negative({self.value(args[0])}, out={out})")
            self.lines.append(f"scipy.special.erfc({out}, out={out})")
        elif func in (sympy.Max, sympy.Min):  # numpy.maximum/minimum propagate NaN
            ufunc = "numpy.maximum" if func is sympy.Max else "numpy.minimum"
            self.lines.append(f"{ufunc}({self.value(args[0])}, {self.value(args[1])}, out={out})")
            for arg in args[2:]:
                self.lines.append(f"{ufunc}({out}, {self.value(arg)}, out={out})")
        elif func is sympy.Heaviside:
            at_zero = self.value(args[1]) if len(args) > 1 else "0.5"
            self.lines.append(f"numpy.heaviside({self.value(args[0])}, {at_zero}, out={out})")
        elif func is sympy.DiracDelta:  # zero almost everywhere, NaN stays NaN
            self.lines.append(f"numpy.multiply({self.value(args[0])}, 0.0, out={out})")
        else:  # anything else (Piecewise, ...) the way SymPy's printer writes it
            self.lines.append(f"{out}[...] = {self.fallback.doprint(expr)}")


def _pass_variable(activation: Activation) -> sympy.Symbol:
    """The symbol ``z`` a pass's printed code names its input, once ``activation`` is checked to be a
    function of ``t`` alone: any other free symbol would print as that input or as nothing."""
    extra = sorted(str(symbol) for symbol in activation.form.free_symbols - {T})
    if extra:
        raise ActivationError(f"activation {activation.name!r}: its form holds symbols other than t "
                              f"({', '.join(extra)}); compiled kernels take numeric activations: give the "
                              "symbols values first")
    return sympy.Symbol("z", real=True)


def derivatives_source(activation: Activation, count: int) -> str:
    """A module whose ``apply(Z, F0, ..., F{count-1}, s)`` writes ``f^(k)(Z)`` into ``Fk``.

    Shared subexpressions are computed once (``sympy.cse``) into the scratch arrays ``s``
    (``SLOTS`` of them, each shaped like ``Z``); the highest order is written first, so ``F0``
    may be ``Z`` itself.
    """
    z = _pass_variable(activation)
    temporaries, reduced = sympy.cse([tail_safe(activation.derivative(k).xreplace({T: z})) for k in range(count)],
                                     symbols=sympy.numbered_symbols("c", real=True))
    emitter = _Emitter({z: "Z"})
    for symbol, expr in temporaries:
        emitter.names[symbol] = emitter.value(expr)
    for k in range(count - 1, -1, -1):
        emitter.emit(reduced[k], f"F{k}")
    outputs = ", ".join(f"F{k}" for k in range(count))
    body = "\n".join(f"    {line}" for line in emitter.lines)
    return (docstring(f"Generated by symnet: the first {count} derivatives of {activation.name}.") + "\n"
            f"import numpy\nimport scipy.special\n\nSLOTS = {max(1, emitter.slots)}\n\n\n"
            f"def apply(Z, {outputs}, s):\n{body}\n")


def derivatives_numba_source(activation: Activation, count: int) -> str:
    """:func:`derivatives_source`'s module as one numba loop over the elements, which LLVM vectorises.

    ``apply(Z, F0, ..., F{count-1}, s)`` as there (C-contiguous arrays of one shape, else a
    ``ValueError``; ``SLOTS = 0``: ``s`` is not used).  ``tanh``, ``exp`` and the sigmoids are
    :mod:`._vecmath`'s, a unit's function and its derivatives' factor from one ``exp``
    (:func:`.codegen.vectorised_lines`); the numpy pass makes one pass over the chunk per
    operation, into scratch arrays.
    """
    z = _pass_variable(activation)
    forms = [pair_sigmoids(tail_safe(activation.derivative(k).xreplace({T: z}))) for k in range(count)]
    temporaries, reduced = sympy.cse(forms, symbols=sympy.numbered_symbols("c", real=True))  # pairs kept whole
    results = [sympy.Symbol(f"f{k}", real=True) for k in range(count)]
    names = {z: "z", **{symbol: symbol.name for symbol, _ in temporaries}, **{f: f.name for f in results}}
    outputs = [f"F{k}" for k in range(count)]
    taken = set(names.values()) | set(outputs) | {"Z", "s", "i", "math", "numpy", "numba", "scipy", "_vecmath"}
    body = vectorised_lines([*temporaries, *zip(results, reduced)], names, taken)
    flat = ", ".join(f"{name}.reshape(-1)" for name in ["Z", *outputs])
    arrays = ", ".join(["Z", *outputs])
    return "\n".join([
        docstring(f"Generated by symnet: the first {count} derivatives of {activation.name}, one numba loop."),
        "import math", "", "import numba", "import numpy", "import scipy.special", "",
        f"from symnet.kernels import _vecmath  # source digest {vecmath_digest()}", "", "SLOTS = 0", "", "",
        "@numba.njit(cache=True, nogil=True, error_model='numpy')",
        f"def _apply({arrays}):",
        "    for i in range(Z.shape[0]):",
        "        z = Z[i]",
        *(f"        {line}" for line in body),
        *(f"        F{k}[i] = f{k}" for k in range(count - 1, -1, -1)),
        "", "",
        f"def apply({arrays}, s):",
        f"    if not all(a.flags.c_contiguous and a.shape == Z.shape for a in ({arrays})):",
        "        raise ValueError('the pass takes C-contiguous arrays of one shape')",
        f"    _apply({flat})", ""])


_PASSES: dict[str, tuple[Callable[..., None], int]] = {}
_PASSES_LOCK = threading.Lock()
_UNCOMPILABLE: set[str] = set()  # numba sources that failed to compile in this process


def derivatives_pass(activation: Activation, count: int, backend: str = "numba") -> tuple[Callable[..., None], int]:
    """``(apply, SLOTS)`` of the pass writing ``f, f', ..., f^(count-1)`` (:func:`derivatives_source`).

    ``backend="numba"``: :func:`derivatives_numba_source`, compiled once per process and cached
    on disk; ``"numpy"``: the numpy operations, nothing compiled.

    >>> import numpy as np
    >>> from symnet.activations import get
    >>> apply, slots = derivatives_pass(get("tanh"), 2)
    >>> Z, F0, F1 = np.array([0.0, 20.0]), np.empty(2), np.empty(2)
    >>> apply(Z, F0, F1, np.empty((slots, 2)))
    >>> F0.tolist(), F1.tolist()
    ([0.0, 1.0], [1.0, 1.6993417021166355e-17])
    """
    if backend == "numba":
        try:
            source = derivatives_numba_source(activation, count)
        except NotImplementedError as exc:  # a function numba's printer has no form for (besselj, polygamma)
            return _numpy_instead(activation, count, exc)
        if source in _UNCOMPILABLE:  # tried once in this process: the numpy pass, said once
            return _loaded(derivatives_source(activation, count), count, compile_now=False)
        try:
            return _loaded(source, count, compile_now=True)
        except Exception as exc:  # numba could not compile the printed code (typing errors are raised late)
            _UNCOMPILABLE.add(source)
            return _numpy_instead(activation, count, exc)
    return _loaded(derivatives_source(activation, count), count, compile_now=False)


class CompiledPassWarning(UserWarning):
    """An activation's derivatives could not be compiled with numba: the numpy pass computes them (slower)."""


def _numpy_instead(activation: Activation, count: int, reason: Exception) -> tuple[Callable[..., None], int]:
    warnings.warn(f"activation {activation.name!r}: its derivatives run as numpy operations, not compiled with "
                  f"numba ({type(reason).__name__}: {str(reason).splitlines()[0][:120] if str(reason) else ''}); "
                  "the numbers are the same, the training step slower", CompiledPassWarning, stacklevel=3)
    return _loaded(derivatives_source(activation, count), count, compile_now=False)


def _loaded(source: str, count: int, compile_now: bool) -> tuple[Callable[..., None], int]:
    """``(apply, SLOTS)`` of a pass's module, loaded once per process (numba's on disk too)."""
    key = _cache.key_of(source)
    with _PASSES_LOCK:
        if key not in _PASSES:
            module, _, _ = _cache.load_or_write(key, source, lambda: source, use_disk=compile_now)
            if compile_now:  # compile (or load from numba's cache) here, where a failure can be handled
                module.apply(np.zeros(1), *(np.empty(1) for _ in range(count)), np.empty((0, 1)))
            _PASSES[key] = (module.apply, module.SLOTS)
        return _PASSES[key]


def _partitions(alpha: MultiIndex) -> dict[tuple[MultiIndex, ...], int]:
    """Faa di Bruno's terms of ``d^alpha f(z)`` beyond ``f'(z) d^alpha z``, grouped
    (:func:`symnet.faa_di_bruno.grouped_terms`, the one home of the formula).

    >>> _partitions((0, 0, 1))  # d3a/dx0^2 dx1: f2 (2 dz0 d2z01 + dz1 d2z00) + f3 dz0^2 dz1
    {((0,), (0, 1)): 2, ((1,), (0, 0)): 1, ((0,), (0,), (1,)): 1}
    """
    return grouped_terms(alpha)


def _stream_of(pairs: Sequence[MultiIndex], higher: Sequence[MultiIndex]) -> Callable[[MultiIndex], tuple[str, int]]:
    """Where a pass finds ``d^block z``: ``("TAN", i)``, ``("SEC", pair)`` or ``("HIGH", row)``."""
    pair_index = {pair: q for q, pair in enumerate(pairs)}
    high_index = {alpha: q for q, alpha in enumerate(higher)}

    def stream(block: MultiIndex) -> tuple[str, int]:
        if len(block) == 1:
            return "TAN", block[0]
        return ("SEC", pair_index[block]) if len(block) == 2 else ("HIGH", high_index[block])

    return stream


def _highest_first(higher: Sequence[MultiIndex]) -> list[tuple[int, MultiIndex]]:
    """``(row, alpha)`` of the streams of order 3 and more, highest order first: each update
    reads the lower orders, so these must still hold this layer's inputs."""
    return sorted(enumerate(higher), key=lambda item: -len(item[1]))


def higher_streams(partials: Sequence[MultiIndex]) -> list[MultiIndex]:
    """The streams of order 3 and more that the partials ``partials`` need: each partial of
    order 3 or more and every sub-multi-index of it of order 3 or more (Faa di Bruno's
    formula reads them), sorted by order, then lexicographically."""
    needed = {tuple(sorted(sub)) for alpha in partials if len(alpha) >= 3
              for size in range(3, len(alpha) + 1) for sub in itertools.combinations(alpha, size)}
    return sorted(needed, key=lambda alpha: (len(alpha), alpha))


def _pass_source(activation: Activation, header: str, pairs: Sequence[MultiIndex] = (),
                 higher: Sequence[MultiIndex] = ()) -> str:
    """An elementwise pass ``apply(Z, TAN, SEC, LAP, HIGH, pi, pk, s)`` for one activation, in numpy.

    ``f, f', f''`` (and higher derivatives, for the streams of order 3 and more ``higher``)
    share their subexpressions (``sympy.cse``: ``tanh(z)`` is computed once) and are
    evaluated with numpy's SIMD ufuncs into the scratch arrays ``s``: on this project's
    machine ``numpy.tanh`` ran many times faster per element than numba's scalar
    ``math.tanh`` (benchmarks/RESULTS.md, "Measurements behind design choices in the code").
    ``SEC`` holds the Hessian entries ``pairs``, ``HIGH`` the entries ``higher``.
    """
    z = _pass_variable(activation)
    order = max((len(alpha) for alpha in higher), default=2)
    # tail-safe forms (symnet.functions.tail_safe): tanh' as 4 sigmoid(2z) sigmoid(-2z), not 1 - tanh(z)**2
    derivatives = [tail_safe(activation.derivative(k).xreplace({T: z})) for k in range(order + 1)]
    temporaries, reduced = sympy.cse(derivatives, symbols=sympy.numbered_symbols("c", real=True))
    emitter = _Emitter({z: "Z"})
    for symbol, expr in temporaries:
        emitter.names[symbol] = emitter.value(expr)
    f_names = [""] + [emitter.value(reduced[k]) for k in range(1, order + 1)]
    f1_name, f2_name = f_names[1], f_names[2]
    f0_name = emitter.value(reduced[0])
    work, square = emitter.new(), emitter.new()
    body = list(emitter.lines)
    if higher:  # before SEC and TAN change, highest order first: the updates read this layer's inputs
        term = emitter.new()
        stream = _stream_of(pairs, higher)
        refs = lambda block: "{}[{}]".format(*stream(block))  # noqa: E731
        for q, alpha in _highest_first(higher):
            body.append(f"numpy.multiply(HIGH[{q}], {f1_name}, out=HIGH[{q}])")
            for blocks, count in _partitions(alpha).items():
                # the derivative first, then one factor at a time: f'' = 0 times dz**2 = inf is 0, not NaN
                body.append(f"numpy.multiply({f_names[len(blocks)]}, {refs(blocks[0])}, out={term})")
                body += [f"numpy.multiply({term}, {refs(block)}, out={term})" for block in blocks[1:]]
                if count != 1:
                    body.append(f"numpy.multiply({term}, {float(count)!r}, out={term})")
                body.append(f"numpy.add(HIGH[{q}], {term}, out=HIGH[{q}])")
    body += [
        "for q in range(SEC.shape[0]):",  # (f'' dz_i) dz_k: a zero f'' is applied before dz_i dz_k can overflow
        f"    numpy.multiply({f2_name}, TAN[pi[q]], out={work})",
        f"    numpy.multiply({work}, TAN[pk[q]], out={work})",
        f"    numpy.multiply(SEC[q], {f1_name}, out=SEC[q])",
        f"    numpy.add(SEC[q], {work}, out=SEC[q])",
        "if LAP.shape[0]:",
        f"    numpy.multiply(LAP[0], {f1_name}, out=LAP[0])",
        "    for i in range(TAN.shape[0]):",
        f"        numpy.multiply({f2_name}, TAN[i], out={square})",
        f"        numpy.multiply({square}, TAN[i], out={square})",
        f"        numpy.add(LAP[0], {square}, out=LAP[0])",
        f"numpy.multiply(TAN, {f1_name}, out=TAN)",
        f"numpy.copyto(Z, {f0_name})",
    ]
    lines = [docstring(header), "import numpy", "import scipy.special", "",
             f"SLOTS = {emitter.slots}", "", "",
             "def apply(Z, TAN, SEC, LAP, HIGH, pi, pk, s):"] + [f"    {line}" for line in body]
    return "\n".join(lines) + "\n"


_TRANSCENDENTAL = tuple(_UFUNCS) + (softplus,)


class _TanhParts(sympy.Function):
    """``(tanh, sigmoid(2|u|), sigmoid(-2|u|))`` of ``u``, printed as :func:`symnet.kernels._vecmath.tanh_parts`."""

    def _pythoncode(self, printer: Any) -> str:
        return f"_vecmath.tanh_parts({printer._print(self.args[0])})"


class _SinCos(sympy.Function):
    """``(sin, cos)`` of ``u``, printed as :func:`symnet.kernels._vecmath.sin_cos`."""

    def _pythoncode(self, printer: Any) -> str:
        return f"_vecmath.sin_cos({printer._print(self.args[0])})"


class _ExpNonpositive(sympy.Function):
    """``exp`` of a non-positive argument, printed as :func:`symnet.kernels._vecmath.exp_nonpositive`."""

    def _pythoncode(self, printer: Any) -> str:
        return f"_vecmath.exp_nonpositive({printer._print(self.args[0])})"


def _fused_source(activation: Activation, n_tan: int, pairs: list[tuple[int, int]], laplacian: bool,
                  cache: bool, header: str, keep: bool = False, first: bool = False, inputs: int = 0,
                  higher: Sequence[MultiIndex] = (), separate: bool = False) -> str:
    """``apply(Z, TAN, SEC, LAP, HIGH, pi, pk, s)``: one numba loop over points, fed by numpy where it must be.

    One numba loop over points forms ``f, f', f''`` of a point's units and updates its value,
    tangents, Hessian pairs and Laplacian, one vectorised loop over the units per stream.
    ``tanh`` and ``exp(-|z|)`` (sigmoid, silu, softplus's derivatives) are computed in the loop by
    :mod:`._vecmath` (a T3 pass ran faster per element than with numpy's ufuncs); other
    transcendental functions (``erf``, softplus's ``log1p``, ...) by numpy's SIMD ufuncs into
    scratch arrays ``U`` first (numba's scalar libm calls are several times slower; figures in
    benchmarks/RESULTS.md, "Measurements behind design choices in the code").  With ``keep``,
    ``apply`` takes two more arrays shaped like ``Z`` and leaves ``f'(Z)`` and ``f''(Z)`` in them
    (the adjoint sweep of :mod:`symnet.kernels._adjoint` needs them).  With ``first`` (the
    first layer), ``apply`` takes the layer's ``W`` last and writes the tangents ``f' W[i]``
    and second-order terms ``f'' W[i] W[k]`` without reading them: the first layer's
    tangents are ``W``'s rows at every point (see :func:`entered`).  With ``inputs`` (the
    first layer's fan-in) too, ``apply`` also takes ``X`` and the bias and computes
    ``z = X W + b`` itself, point by point; the module's ``AFFINE`` says whether it does (not
    when numpy must read ``Z`` first).  ``higher`` are the entries of order 3 and more that
    ``HIGH`` holds (:func:`higher_streams`; ``pairs`` must hold the pairs inside them).  With
    ``separate`` (value and tangents only), ``apply`` takes two more arrays ``OZ``, ``OTAN`` shaped
    like ``Z``, ``TAN`` and writes ``f(Z)`` and ``f'(Z) TAN`` there, leaving ``Z`` and ``TAN`` as they
    were: a graph's forward-adjoint sweep keeps an activation's input for the way back, and
    copying it first cost as much as the pass (:mod:`._graph_adjoint`).
    """
    if separate and (pairs or laplacian or higher or first):
        raise ValueError("a separate output is written for the value and the tangents only")
    z = _pass_variable(activation)
    order = max((len(alpha) for alpha in higher), default=2)
    # tail-safe forms (symnet.functions.tail_safe): tanh' = 4 sigmoid(2z) sigmoid(-2z), whose sigmoids
    # come with tanh from one _vecmath.tanh_parts call (no exp of their own)
    exprs = [tail_safe(activation.derivative(k).xreplace({T: z})) for k in range(order + 1)]
    # transcendental calls become u_k, computed once (by numpy or in the loop); LLVM shares the arithmetic
    emitter = _Emitter({z: "Z"})
    calls: dict[sympy.Expr, sympy.Symbol] = {}
    slot_of: dict[sympy.Symbol, int] = {}
    scalars: list[tuple[Any, sympy.Expr]] = []  # computed per element in the numba loop (a symbol or a tuple)

    def numpy_slot(lines: Callable[[str], list[str]]) -> sympy.Symbol:
        out = emitter.new()
        u = sympy.Symbol(f"u{len(slot_of) + len(scalars)}", real=True)
        emitter.names[u] = out
        slot_of[u] = emitter.slots - 1
        emitter.lines.extend(lines(out))
        return u

    decays: dict[sympy.Expr, sympy.Symbol] = {}
    logs: dict[sympy.Expr, sympy.Symbol] = {}

    def scalar(value: sympy.Expr) -> sympy.Symbol:
        u = sympy.Symbol(f"u{len(slot_of) + len(scalars)}", real=True)
        scalars.append((u, value))
        return u

    logged = {node.args[0] for expr in exprs for node in expr.atoms(softplus)}

    def decay(arg: sympy.Expr) -> sympy.Symbol:
        """``exp(-|arg|)``: sigmoid and softplus from it never overflow.

        In the loop (:mod:`._vecmath`), unless softplus needs its ``log1p`` too: numpy has a
        SIMD ``log1p`` and numba does not, so then numpy computes both.
        """
        if arg not in decays:
            if arg in logged:
                name = emitter.value(arg)
                decays[arg] = numpy_slot(lambda out: [f"numpy.abs({name}, out={out})",
                                                      f"numpy.negative({out}, out={out})",
                                                      f"numpy.exp({out}, out={out})"])
            else:
                decays[arg] = scalar(_ExpNonpositive(-sympy.Abs(arg)))
        return decays[arg]

    halves: dict[sympy.Expr, tuple[sympy.Symbol, sympy.Symbol]] = {}  # |arg| -> sigmoid(2|u|), sigmoid(-2|u|)

    def magnitude(arg: sympy.Expr) -> sympy.Expr:
        return -arg if arg.could_extract_minus_sign() else arg

    def tanh_of(arg: sympy.Expr) -> sympy.Symbol:
        """``tanh(arg)``, and ``sigmoid(±2 arg)`` from the same range reduction (:func:`._vecmath.tanh_parts`)."""
        n = len(slot_of) + len(scalars)
        t, high, low = (sympy.Symbol(f"u{n}_{part}", real=True) for part in ("t", "hi", "lo"))
        scalars.append(((t, high, low), _TanhParts(arg)))
        halves[magnitude(2 * arg)] = (high, low)
        return t

    def hoist(expr: sympy.Expr) -> sympy.Expr:
        for node in sorted(expr.atoms(sympy.Function), key=sympy.count_ops):
            if node.func not in _TRANSCENDENTAL or node in calls:
                continue
            arg = node.args[0].xreplace(calls)
            # sigmoid and softplus by numpy's exp and log1p and arithmetic: numpy's logaddexp
            # and scipy's expit ran several times slower per element here than exp and log1p
            # (benchmarks/RESULTS.md, "Measurements behind design choices in the code")
            if node.func is sigmoid and magnitude(arg) in halves:  # sigmoid(2u) with tanh(u): no exp of its own
                high, low = halves[magnitude(arg)]  # sigmoid(|arg|), sigmoid(-|arg|)
                u = scalar(sympy.Piecewise((high, arg >= 0), (low, True)))
            elif node.func is sigmoid:
                e = decay(magnitude(arg))
                u = scalar(sympy.Piecewise((1 / (1 + e), arg >= 0), (e / (1 + e), True)))
            elif node.func is softplus:
                e = decay(arg)
                if arg not in logs:
                    logs[arg] = numpy_slot(lambda out, name=emitter.names[e]: [f"numpy.log1p({name}, out={out})"])
                u = scalar(sympy.Max(arg, 0) + logs[arg])
            elif node.func is sympy.tanh:
                u = tanh_of(arg)
            elif node.func is erfc_neg:
                name = emitter.value(arg)
                u = numpy_slot(lambda out, name=name: [f"numpy.negative({name}, out={out})",
                                                       f"scipy.special.erfc({out}, out={out})"])
            else:
                name = emitter.value(arg)
                u = numpy_slot(lambda out, name=name, func=node.func: [f"{_UFUNCS[func]}({name}, out={out})"])
            calls[node] = u
        return expr.xreplace(calls)

    sines: dict[sympy.Expr, tuple[sympy.Symbol, sympy.Symbol]] = {}  # arg -> its sin and cos

    def sin_cos_of(arg: sympy.Expr) -> tuple[sympy.Symbol, sympy.Symbol]:
        """``sin(arg)`` and ``cos(arg)`` from one range reduction (:func:`._vecmath.sin_cos`)."""
        if arg not in sines:
            n = len(slot_of) + len(scalars)
            sines[arg] = (sympy.Symbol(f"u{n}_sin", real=True), sympy.Symbol(f"u{n}_cos", real=True))
            scalars.append((sines[arg], _SinCos(arg)))
        return sines[arg]

    for node in sorted({n for e in exprs for n in e.atoms(sympy.sin, sympy.cos)}, key=sympy.count_ops):
        calls[node] = sin_cos_of(node.args[0])[node.func is sympy.cos]
    for node in sorted({n for e in exprs for n in e.atoms(sympy.tanh)}, key=sympy.count_ops):
        calls[node] = tanh_of(node.args[0])  # first: sigmoid(2u) of tanh' then reuses tanh(u)'s reduction
    for m, (high, low) in halves.items():  # sigmoid(2u) sigmoid(-2u) = high * low whatever u's sign: no select
        exprs = [e.subs(sigmoid(m) * sigmoid(-m), high * low) for e in exprs]
    f0, *fk = (hoist(e) for e in exprs)
    names = {z: "z", **{u: u.name for u in slot_of}}
    for u, _ in scalars:
        names.update({v: v.name for v in (u if isinstance(u, tuple) else (u,))})
    printer = ScalarPrinter(names)
    # One short loop over the units per stream: each touches two or three rows, so LLVM
    # vectorises it whatever the number of streams (one loop body holding every stream
    # stopped vectorising past a few streams and grew slower per stream-element with more;
    # benchmarks/RESULTS.md, "Measurements behind design choices in the code").
    rows = ["z = Z[p, j]"] + [f"{u.name} = U[{slot}, p, j]" for u, slot in slot_of.items()]
    rows += [f"{', '.join(v.name for v in u) if isinstance(u, tuple) else u.name} = {printer.doprint(value)}"
             for u, value in scalars]
    rows += [f"F{k}[j] = {printer.doprint(f)}" for k, f in enumerate(fk, start=1)]
    rows += [f"{'OZ' if separate else 'Z'}[p, j] = {printer.doprint(f0)}"]
    loops = [("for j in range(H):", rows)]
    if first:  # dz/dx_i = W[i] at every point, higher-order terms 0: nothing to read
        # f^(k) first, then one weight at a time: f'' = 0 times W_i W_k = inf is 0, not NaN (w = 1e300)
        for q, alpha in enumerate(higher):
            loops.append(("for j in range(H):", [f"HIGH[{q}, p, j] = F{len(alpha)}[j]"
                                                 + "".join(f" * W[{i}, j]" for i in alpha)]))
        for q, (i, k) in enumerate(pairs):
            loops.append(("for j in range(H):", [f"SEC[{q}, p, j] = F2[j] * W[{i}, j] * W[{k}, j]"]))
        if laplacian:
            loops.append(("for j in range(H):", ["LAP[0, p, j] = 0.0"]))
            loops.append(("for i in range(W.shape[0]):",
                          ["for j in range(H):", "    LAP[0, p, j] += F2[j] * W[i, j] * W[i, j]"]))
        if n_tan:
            loops.append(("for i in range(TAN.shape[0]):", ["for j in range(H):", "    TAN[i, p, j] = F1[j] * W[i, j]"]))
    else:
        # Faa di Bruno, e.g. d3a_ikl = F1 d3z_ikl + F2 (dz_i d2z_kl + dz_k d2z_il + dz_l d2z_ik)
        # + F3 dz_i dz_k dz_l; highest order first, before the pairs and tangents change
        stream = _stream_of(pairs, higher)
        for q, alpha in _highest_first(higher):
            terms = [f"F1[j] * HIGH[{q}, p, j]"]
            for blocks, count in _partitions(alpha).items():
                product = " * ".join("{}[{}, p, j]".format(*stream(block)) for block in blocks)
                terms.append(f"{'' if count == 1 else f'{count}.0 * '}F{len(blocks)}[j] * {product}")
            loops.append(("for j in range(H):", [f"HIGH[{q}, p, j] = " + " + ".join(terms)]))
        for q, (i, k) in enumerate(pairs):
            loops.append(("for j in range(H):",
                          [f"SEC[{q}, p, j] = F1[j] * SEC[{q}, p, j] + F2[j] * TAN[{i}, p, j] * TAN[{k}, p, j]"]))
        # loops over the tangents are loops, not unrolled: as fast within this machine's noise
        # (T4, T5, L1, L2, two alternating runs each) and far quicker to compile for many
        # inputs (L3 from an empty cache; benchmarks/RESULTS.md, "Measurements behind design
        # choices in the code")
        if laplacian:  # sum_i (f'' dz_i) dz_i: a zero f'' is applied before dz_i**2 can overflow
            loops.append(("for j in range(H):", ["ACC[j] = F1[j] * LAP[0, p, j]"]))
            loops.append(("for i in range(TAN.shape[0]):",
                          ["for j in range(H):", "    ACC[j] += F2[j] * TAN[i, p, j] * TAN[i, p, j]"]))
            loops.append(("for j in range(H):", ["LAP[0, p, j] = ACC[j]"]))
        if n_tan:
            scaled = "OTAN[i, p, j] = F1[j] * TAN[i, p, j]" if separate else "TAN[i, p, j] *= F1[j]"
            loops.append(("for i in range(TAN.shape[0]):", ["for j in range(H):", f"    {scaled}"]))
    unrolled = inputs if first and not emitter.lines else 0
    if unrolled:  # z = X W + b, unrolled over the inputs: no product over the chunk, no pass adding b
        rows[0] = "z = B[j]" + "".join(f" + X[p, {i}] * W[{i}, j]" for i in range(unrolled))
    if sines:  # a point with an argument past _vecmath.SIN_COS_LIMIT (or NaN, inf) takes libm's sin and cos
        wide_rows = [row.replace("_vecmath.sin_cos(", "_vecmath.sin_cos_wide(") for row in rows]
        check = [rows[0]] + [f"wide += 0 if abs({printer.doprint(arg)}) <= _vecmath.SIN_COS_LIMIT else 1"
                             for arg in sines]
        loops[0] = (None, ["wide = 0", "for j in range(H):"] + [f"    {line}" for line in check]
                    + ["if wide:", "    for j in range(H):"] + [f"        {row}" for row in wide_rows]
                    + ["else:", "    for j in range(H):"] + [f"        {row}" for row in rows])
    fused_body = "\n".join(("" if head is None else f"        {head}\n")
                           + "\n".join(f"{' ' * (8 if head is None else 12)}{line}" for line in body)
                           for head, body in loops)
    numpy_part = "\n".join(f"    {line}" for line in emitter.lines) or "    pass"
    kept = (", D1, D2" if keep else "") + (", W" if first else "") + (", X, B" if unrolled else "") \
        + (", OZ, OTAN" if separate else "")
    prelude = "        F1 = D1[p]\n        F2 = D2[p]\n" if keep else ""
    locals_ = "" if keep else "    F1 = numpy.empty(H, Z.dtype)\n    F2 = numpy.empty(H, Z.dtype)\n"
    locals_ += "".join(f"    F{k} = numpy.empty(H, Z.dtype)\n" for k in range(3, order + 1))
    return f'''{docstring(header)}
import math

import numba
import numpy
import scipy.special

from symnet.kernels import _vecmath  # source digest {vecmath_digest()}

SLOTS = {max(1, emitter.slots)}
AFFINE = {bool(unrolled)}


@numba.njit(cache={cache}, nogil=True, error_model="numpy", fastmath={{"contract"}})
def fused(Z, U, TAN, SEC, LAP, HIGH{kept}):
    H = Z.shape[1]
{locals_}    ACC = numpy.empty(H, Z.dtype)
    for p in range(Z.shape[0]):
{prelude}{fused_body}


def apply(Z, TAN, SEC, LAP, HIGH, pi, pk, s{kept}):
{numpy_part}
    fused(Z, s, TAN, SEC, LAP, HIGH{kept})
'''


def pair_indices(pairs: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The first and the second input of each pair, as int64 arrays (the passes' ``pi, pk``)."""
    return (np.array([i for i, _ in pairs], dtype=np.int64), np.array([k for _, k in pairs], dtype=np.int64))


def entered(X: np.ndarray, W: np.ndarray, bias: np.ndarray, streams: int, tangents: int,
            buffer: np.ndarray, fill: bool = True, value: bool = True) -> np.ndarray:
    """The first layer's streams ``(streams, b, h)`` in ``buffer``: ``z = X W + b``, ``dz/dx_i = W[i]``, zeros.

    The seeds ``dx/dx_i = e_i`` make the first layer's tangents the rows of ``W`` at every
    point, and its second-order streams zero, so only the value needs a product (for one
    input an outer product: BLAS handles a product of inner dimension 1 at a quarter of the
    speed of a broadcast multiply).  With ``fill=False`` only the value is written: the first
    layer's numba pass (:func:`_fused_source` with ``first``) writes the others from ``W``;
    with ``value=False`` not even the value (that pass computes ``z`` too: its ``inputs``).
    Streams-major layout (streams, points, width): every stream is contiguous for the SIMD
    ufuncs, and the later layers map all streams with one matrix multiply.
    """
    b, d = X.shape
    h = W.shape[1]
    nxt = buffer[: streams * b * h].reshape(streams, b, h)
    if value:
        with np.errstate(all="ignore"):  # overflow is a result here, as in the passes
            if d == 1:
                np.multiply(X, W[0], out=nxt[0])
            else:
                np.matmul(X, W, out=nxt[0])
            nxt[0] += bias
    if fill:
        nxt[1:1 + tangents] = W[:tangents, None, :]
        nxt[1 + tangents:] = 0
    return nxt


def affine(current: np.ndarray, W: np.ndarray, bias: np.ndarray, buffer: np.ndarray) -> np.ndarray:
    """Every stream through ``z = a W`` in one matrix multiply into ``buffer``; the value gets ``+ b``."""
    streams, b, _ = current.shape
    h = W.shape[1]
    nxt = buffer[: streams * b * h].reshape(streams, b, h)
    with np.errstate(all="ignore"):  # inf - inf = NaN is a result here (an exact value beyond float64)
        np.matmul(current.reshape(-1, current.shape[2]), W, out=nxt.reshape(-1, h))
        nxt[0] += bias
    return nxt


class ChunkedPlan:
    """Evaluation chunk by chunk, on :attr:`threads` threads (:mod:`symnet.kernels._threads`)."""

    parallel = False
    first_affine = False  # the first layer's pass computes z = X W + b itself

    @property
    def threads(self) -> int:
        """Threads a call spreads its chunks over (:func:`symnet.kernels._threads.thread_count`)."""
        return thread_count(self.parallel)

    def __init__(self) -> None:
        self.sources: list[str] = []
        self.slots = 1  # scratch arrays of the widest layer the passes need
        self.loaded_from_disk = True
        self.keys: list[str] = []  # cache keys of the generated modules (drop_numba_cache rebuilds them)
        self._space = PerThread()  # buffers reused across chunks, layers and calls, per thread

    def _load(self, source: str, cache: bool) -> Any:
        """The module of a generated source (compiled numba code cached on disk with ``cache``)."""
        key = _cache.key_of(source)
        module, source, from_disk = _cache.load_or_write(key, source, lambda: source,
                                                         use_disk=cache and "numba.njit" in source)
        self.keys.append(key)
        self.loaded_from_disk &= from_disk
        self.sources.append(source)
        self.slots = max(self.slots, getattr(module, "SLOTS", 1))
        return module

    def _load_pass(self, source: str, cache: bool, number: int) -> Callable[..., None]:
        """The ``apply`` of layer ``number``'s pass; the first layer's says whether it computes ``z`` (``AFFINE``)."""
        module = self._load(source, cache)
        if number == 0:
            self.first_affine = bool(getattr(module, "AFFINE", False))
        return module.apply

    def _entered(self, X: np.ndarray, W: np.ndarray, bias: np.ndarray, streams: int, tangents: int,
                 buffer: np.ndarray, from_weights: bool) -> np.ndarray:
        """:func:`entered`, leaving to the first layer's pass what it writes itself."""
        return entered(X, W, bias, streams, tangents, buffer, fill=not from_weights,
                       value=not (from_weights and self.first_affine))

    def _first_arguments(self, X: np.ndarray, W: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, ...]:
        """What the first layer's numba pass takes after the streams: ``W`` (and ``X, b`` if it computes ``z``)."""
        return (W, X, bias) if self.first_affine else (W,)

    def chunk_size(self) -> int:
        raise NotImplementedError

    def run(self, X: np.ndarray, weights: tuple[np.ndarray, ...], arrays: dict[str, np.ndarray],
            partials: dict[str, tuple[int, ...]], report: Callable[[int], None] | None = None) -> None:
        """Evaluate all points chunk by chunk into ``arrays``; ``report(done)`` as chunks finish.

        Chunks may run on several threads at once: ``_run_chunk`` keeps its buffers per thread.
        """
        def work(start: int, stop: int) -> None:
            self._run_chunk(X[start:stop], weights, {k: v[start:stop] for k, v in arrays.items()}, partials)

        over_chunks(X.shape[0], self.chunk_size(), work, report, self.threads)

    def _run_chunk(self, X: np.ndarray, weights: tuple[np.ndarray, ...], out: dict[str, np.ndarray],
                   partials: dict[str, tuple[int, ...]]) -> None:
        raise NotImplementedError


class LayeredPlan(ChunkedPlan):
    """Buffers layout and compiled activation passes for one architecture and request."""

    schedule = "forward"

    def __init__(self, net: Network, words: tuple[str, ...], partials: tuple[tuple[int, ...], ...],
                 dtype: np.dtype, backend: str = "numpy", parallel: bool = True, cache: bool = False) -> None:
        self.d = net.n_inputs
        self.m = net.n_outputs
        self._lay_out_streams(self.d, words, partials)
        self.widths = net.layer_sizes
        self.dtype = dtype
        super().__init__()
        self.passes: list[Callable[..., None] | None] = []
        self.parallel = parallel and backend == "numba"
        # the numba pass of a nonlinear first layer writes its tangents from W (see entered)
        self.first_from_weights = backend == "numba" and net.activations[0].form != T
        for number, activation in enumerate(net.activations):
            if activation.form == T:  # linear: nothing to do
                self.passes.append(None)
                continue
            header = f"Generated by symnet: the {activation.name} pass" + (" of a first layer." if number == 0 else ".")
            if backend == "numba":
                # serial: numba's OpenMP threads spin after a parallel loop and then fight
                # BLAS's threads for the cores (T5 ran slower parallel than serial: figures in
                # benchmarks/RESULTS.md, "Measurements behind design choices in the code")
                source = _fused_source(activation, self.n_tan, self.pairs, self.laplacian, cache, header,
                                       first=number == 0, inputs=self.d if self.d <= AFFINE_INPUTS else 0,
                                       higher=self.higher)
            else:
                source = _pass_source(activation, header, self.pairs, self.higher)
            self.passes.append(self._load_pass(source, cache, number))

    def _lay_out_streams(self, d: int, words: tuple[str, ...], partials: tuple[tuple[int, ...], ...],
                         only_asked: bool = False) -> None:
        """The streams every layer (or graph node) carries for this request, in order: value,
        tangents, Hessian pairs, the collapsed Laplacian, entries of order 3 and more.

        Tangents are carried along every input, or with ``only_asked`` (when no word needs them
        all) along the inputs the partials name only (:attr:`directions`; a DeepONet's trunk
        coordinates, not its sensors); stream multi-indices count positions in
        :attr:`directions` (:meth:`inner`).
        """
        if "biharmonic" in words:  # sum_ik d4/dx_i2 dx_k2: the entries (i, i, k, k), i <= k
            partials = tuple(partials) + tuple((i, i, k, k) for i in range(d) for k in range(i, d))
        every = not only_asked or any(word in words for word in ("jacobian", "hessian", "laplacian", "biharmonic"))
        self.directions = list(range(d)) if every else sorted({i for alpha in partials for i in alpha})
        self.positions = {i: q for q, i in enumerate(self.directions)}
        partials = tuple(self.inner(alpha) for alpha in partials)
        d = len(self.directions)
        second = {tuple(a) for a in partials if len(a) == 2}
        self.higher = higher_streams(partials)
        self.hessian = "hessian" in words or bool(second)
        self.laplacian = "laplacian" in words and not self.hessian
        self.tangents = self.hessian or self.laplacian or bool(self.higher) or "jacobian" in words \
            or any(len(a) == 1 for a in partials)
        # higher streams need the pairs inside them: (k, l), (i, l), (i, k) of (i, k, l)
        self.pairs = [(i, k) for i in range(d) for k in range(i, d)] if self.hessian else \
            sorted({pair for alpha in self.higher for pair in itertools.combinations(alpha, 2)})
        self.pi, self.pk = pair_indices(self.pairs)
        self.n_tan = d if self.tangents else 0
        self.n_sec = len(self.pairs)
        self.n_lap = 1 if self.laplacian else 0
        self.n_high = len(self.higher)
        self.streams = 1 + self.n_tan + self.n_sec + self.n_lap + self.n_high

    def inner(self, alpha: MultiIndex) -> MultiIndex:
        """A partial's multi-index of inputs as positions in :attr:`directions` (sorted)."""
        return tuple(sorted(self.positions[i] for i in alpha))

    def chunk_size(self) -> int:
        per_point = (2 * self.streams + self.slots) * max(self.widths) * self.dtype.itemsize
        return max(1, MEMORY_BUDGET // per_point)

    def _run_chunk(self, X: np.ndarray, weights: tuple[np.ndarray, ...], out: dict[str, np.ndarray],
                   partials: dict[str, tuple[int, ...]]) -> None:
        b, S = X.shape[0], self.streams
        # fresh memory is expensive (the kernel zero-fills every new page): buffers sized for
        # a full chunk serve every chunk and call
        space, rows = self._space(), self.chunk_size() * max(self.widths)
        buffers = [space(name, (rows * size,), self.dtype)
                   for name, size in (("ping", S), ("pong", S), ("scratch", self.slots))]
        t0, s0, l0 = 1, 1 + self.n_tan, 1 + self.n_tan + self.n_sec
        r0 = l0 + self.n_lap
        current = None
        for number, apply in enumerate(self.passes):
            W, bias, buffer = weights[2 * number], weights[2 * number + 1], buffers[(number + 1) % 2]
            first = number == 0 and self.first_from_weights
            nxt = self._entered(X, W, bias, S, self.n_tan, buffer, first) if number == 0 \
                else affine(current, W, bias, buffer)
            h = nxt.shape[2]
            if apply is not None:
                scratch = buffers[2][: self.slots * b * h].reshape(self.slots, b, h)
                with np.errstate(all="ignore"):  # inf/nan are results here, as in the expression kernels
                    apply(nxt[0], nxt[t0:s0], nxt[s0:l0], nxt[l0:r0], nxt[r0:], self.pi, self.pk, scratch,
                          *(self._first_arguments(X, W, bias) if first else ()))
            current = nxt
        self._store(current, out, partials)

    def _store(self, final: np.ndarray, out: dict[str, np.ndarray], partials: dict[str, tuple[int, ...]]) -> None:
        s0, l0 = 1 + self.n_tan, 1 + self.n_tan + self.n_sec
        r0 = l0 + self.n_lap
        high_index = {alpha: q for q, alpha in enumerate(self.higher)}
        partials = {name: self.inner(alpha) for name, alpha in partials.items()}
        store(out, partials, final[0], final[1:s0], self.pairs, lambda q: final[s0 + q],
              final[l0] if self.laplacian else None, lambda alpha: final[r0 + high_index[alpha]])


def store(out: dict[str, np.ndarray], partials: dict[str, tuple[int, ...]], value: np.ndarray,
          tangents: np.ndarray, pairs: list[tuple[int, int]], second: Callable[[int], np.ndarray],
          laplacian: np.ndarray | None = None, higher: Callable[[MultiIndex], np.ndarray] | None = None) -> None:
    """Write a chunk's results into ``out``, from either schedule's arrays.

    ``value`` ``(b, m)``; ``tangents`` ``(d, b, m)``; ``second(q)`` the ``(b, m)`` entries of
    Hessian pair ``pairs[q]``; ``laplacian`` ``(b, m)``, or ``None`` to sum the diagonal pairs;
    ``higher(alpha)`` the ``(b, m)`` entries of partial ``alpha`` of order 3 or more.
    """
    pair_index = {pair: q for q, pair in enumerate(pairs)}
    for name, target in out.items():
        if name == "value":
            target[...] = value
        elif name == "jacobian":
            target[...] = tangents.transpose(1, 2, 0)
        elif name == "hessian":
            for q, (i, k) in enumerate(pairs):
                target[:, :, i, k] = target[:, :, k, i] = second(q)
        elif name == "laplacian":
            target[...] = laplacian if laplacian is not None else \
                sum(second(pair_index[(i, i)]) for i in range(tangents.shape[0]))
        elif name == "biharmonic" and higher is not None:  # sum_i d4/dx_i4 + 2 sum_{i<k} d4/dx_i2 dx_k2
            d = tangents.shape[0]
            target[...] = sum((1.0 if i == k else 2.0) * higher((i, i, k, k)) for i in range(d) for k in range(i, d))
        else:
            alpha = partials[name]
            if len(alpha) >= 3 and higher is not None:
                target[...] = higher(alpha)
            else:
                target[...] = value if not alpha else tangents[alpha[0]] if len(alpha) == 1 else second(pair_index[alpha])


class _StreamLayout:
    """The stream layout of :class:`LayeredPlan` alone, without buffers or compiled passes."""

    _lay_out_streams = LayeredPlan._lay_out_streams
    inner = LayeredPlan.inner


def forward_streams(d: int, words: tuple[str, ...], partials: tuple[tuple[int, ...], ...],
                    only_asked: bool = False) -> int:
    """How many streams forward mode carries for a request (the plans' own layout rule;
    ``only_asked`` as graph plans lay them out: tangents along the named inputs only)."""
    layout = _StreamLayout()
    layout._lay_out_streams(d, words, partials, only_asked)
    return layout.streams
