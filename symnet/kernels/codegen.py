"""Print a chain-rule program as Python source: a numba per-point loop or a numpy batch function.

The printers are SymPy code printers (``PythonCodePrinter`` for numba's scalar code,
``SciPyPrinter`` for numpy arrays) with three changes: weights print as array elements
(``W2[3, 0]``), program nodes and inputs as local variables, and the non-smooth functions
print their almost-everywhere values with NaN propagated (``Max``, ``Heaviside`` with
SymPy's ``Heaviside(0) = 1/2``, ``DiracDelta`` as 0).  Floats print with ``repr`` so they
round-trip exactly.  A printer refuses what it cannot print (``strict``) rather than
emitting partial code.

Nothing but these printers' output and fixed text reaches the source: labels such as an
activation's name (which may come from a file) pass through :func:`docstring`, and program
nodes get ASCII identifiers of their own (:class:`_Names`), so no user text is ever code.
"""

from __future__ import annotations

import functools
import hashlib
import keyword
import re
from pathlib import Path
import string
from dataclasses import dataclass
from typing import Sequence

import sympy
from sympy.printing.numpy import SciPyPrinter
from sympy.printing.pycode import PythonCodePrinter

from ..functions import sigmoid, tail_safe_program
from ..program import Program

__all__ = ["ArrayPrinter", "BLOCK", "Output", "ScalarPrinter", "VectorPrinter", "docstring", "generate",
           "generator_digest", "pair_sigmoids", "vecmath_digest", "vectorised_lines"]

#: Points per block of a numba expression kernel.  A block's inputs are copied into columns,
#: every statement runs over the block's points in one loop that LLVM vectorises (contiguous
#: columns, no libm call), and the results are scattered back; the block's columns stay in the
#: L1/L2 cache.  Chosen by measurement (benchmarks/RESULTS.md, "Measurements behind design
#: choices in the code").
BLOCK = 256


@dataclass(frozen=True)
class Output:
    """One array the kernel fills: ``name[p, *index] = expr`` for each (index, expr)."""

    name: str
    entries: tuple[tuple[tuple[int, ...], sympy.Expr], ...]


_INERT = frozenset(string.ascii_letters + string.digits + " \n!#$%&'()*+,-./:;<=>?@[]^_`{|}~")


@functools.lru_cache(maxsize=1)
def vecmath_digest() -> str:
    """A digest of :mod:`._vecmath`'s source: generated modules that call it name it, so an edit recompiles
    them.  Read from the file, so that making a key does not import numba's functions."""
    return hashlib.sha256(Path(__file__).with_name("_vecmath.py").read_bytes()).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def generator_digest() -> str:
    """A digest of the source that writes an expression kernel: part of the kernel cache's key, so that a
    cached kernel written by other code is never loaded.

    The files: this printer, :mod:`._vecmath`, the kernel's source assembly (``kernels/__init__``)
    and numeric twin (:mod:`._architecture`), the program (:mod:`symnet.program`, Faa di Bruno's
    terms, substitution), the functions and activations it prints, and the graph IR it reads.
    """
    package = Path(__file__).parent
    root = package.parent
    files = [package / "codegen.py", package / "_vecmath.py", package / "__init__.py", package / "_architecture.py",
             root / "program.py", root / "faa_di_bruno.py", root / "_substitute.py", root / "functions.py",
             root / "activations.py", root / "graph" / "ir.py", root / "graph" / "ops.py"]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16]


def docstring(text: str) -> str:
    r'''``text`` as a module docstring that cannot end early or run anything: every character
    but printable ASCII (no backslash, no double quote) and newlines is written ``<U+XXXX>``.

    >>> print(docstring('x"""; import os'))
    """x<U+0022><U+0022><U+0022>; import os"""
    >>> eval(docstring("a\\ b\u202e c"))
    'a<U+005C> b<U+202E> c'
    '''
    return '"""' + "".join(c if c in _INERT else f"<U+{ord(c):04X}>" for c in text) + '"""'


class _Names:
    """Identifiers for every symbol of the program, deterministic and collision-free."""

    def __init__(self, program: Program, weights: dict[sympy.Symbol, str], hoist: bool = False,
                 reserved: Sequence[str] = ()) -> None:
        self.map: dict[sympy.Symbol, str] = dict(weights)
        # reserved: the kernel's argument names (weight and output arrays), never a local's
        taken = {"X", "p", "n", "math", "numpy", "numba", "scipy", "_sigmoid", "_sigmoid_pair", "_vecmath",
                 "block", "start", "m", "j", "xb", "ob"} | set(weights.values())
        taken |= set(reserved)
        self.taken = taken  # every identifier in use: a local added later must avoid them
        #: ``(local, "W1[0, 0]")``: weights read into scalars once, before the loop over points
        #: (with ``hoist``).  numba compiles a loop of scalar arithmetic several times faster
        #: than one indexing the weight arrays at every use.
        self.hoisted: list[tuple[str, str]] = []
        if hoist:
            for symbol, text in weights.items():
                local = self._fresh(re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower(), taken)
                self.map[symbol] = local
                self.hoisted.append((local, text))
        for i, x in enumerate(program.inputs):
            self.map[x] = self._fresh(f"x{i}", taken)
        for node, _ in program.assignments:
            # ASCII only: Python folds identifiers by NFKC, so "ｚ1" and "z1" would be one variable
            self.map[node] = self._fresh(re.sub(r"[^A-Za-z0-9_]+", "_", node.name).strip("_"), taken)

    @staticmethod
    def _fresh(name: str, taken: set[str]) -> str:
        candidate, k = name, 1
        while candidate in taken or not candidate.isidentifier() or keyword.iskeyword(candidate):
            candidate, k = f"{name}_{k}", k + 1
        taken.add(candidate)
        return candidate


def _nan_max(printer: PythonCodePrinter, args: Sequence[sympy.Expr], greater: str) -> str:
    """max/min that propagate NaN (Python's max(0.0, nan) is 0.0)."""
    result = printer._print(args[0])
    for arg in args[1:]:
        a, b = result, printer._print(arg)
        result = f"(({a}) if ({a}) {greater}= ({b}) else (({b}) if ({b}) {greater} ({a}) else ({a}) + ({b})))"
    return result


def _product(printer: PythonCodePrinter, expr: sympy.Mul) -> str | None:
    """A product with its activation-derivative factors first, then one factor at a time.

    ``d2a*W**2`` would be ``0 * inf = NaN`` at ``w = 1e300`` where the exact value is 0;
    ``d2a*W*W`` is ``(0 * 1e300) * 1e300 = 0``.  ``None`` unless ``expr`` is such a product
    of symbols and numbers (then SymPy's printing is kept).
    """
    first = getattr(printer, "_first", ())
    factors: list[tuple[int, sympy.Expr]] = []
    for arg in expr.args:
        base, exponent = arg.as_base_exp()
        if arg.is_Number:
            factors.append((1, arg))
        elif base.is_Symbol and exponent.is_Integer and 1 <= exponent <= 8:
            factors += [(0 if base in first else 2, base)] * int(exponent)
        else:
            return None
    if not any(rank == 0 for rank, _ in factors) or len(factors) < 2:
        return None
    factors.sort(key=lambda item: item[0])
    texts = [printer._print(f) if not f.is_Number or (f.is_Integer and f >= 0) else f"({printer._print(f)})"
             for _, f in factors]
    return "(" + "*".join(texts) + ")"


class _SigmoidPair(sympy.Function):
    """``sigmoid(x) * sigmoid(-x)``, printed for numba as one call: ``e / (1 + e)**2``, ``e = exp(-|x|)``.

    Tail-safe forms of tanh' and sigmoid' are such products; as one function of one ``exp``
    they cost what ``1 - tanh(z)**2`` did (LLVM shares the ``exp`` of a unit's derivatives),
    and numba compiles a call where two inline branches per factor took many times longer.
    """

    nargs = 1


def pair_sigmoids(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` with each ``sigmoid(u)**p * sigmoid(-u)**q`` written ``_SigmoidPair(u)**min(p, q) * ...``."""

    def pair(mul: sympy.Mul) -> sympy.Expr:
        powers: dict[sympy.Expr, sympy.Expr] = {}
        others: list[sympy.Expr] = []
        for factor in mul.args:
            base, exponent = factor.as_base_exp()
            if isinstance(base, sigmoid) and exponent.is_Integer and exponent > 0:
                powers[base.args[0]] = powers.get(base.args[0], 0) + exponent
            else:
                others.append(factor)
        if not any(-u in powers for u in powers):
            return mul
        for u in sorted(powers, key=sympy.default_sort_key):
            if u in powers and -u in powers and u != -u:
                common = min(powers[u], powers[-u])
                others.append(_SigmoidPair(u) ** common)
                powers[u] -= common
                powers[-u] -= common
        others += [sigmoid(u) ** p for u, p in powers.items() if p]
        return sympy.Mul(*others)

    return expr.replace(lambda e: e.is_Mul and e.has(sigmoid), pair)


#: Module-level helpers of numba kernels (njit functions that LLVM inlines into the loop).
_NUMBA_HELPERS = """

@numba.njit(cache={cache}, nogil=True, error_model='numpy')
def _sigmoid(x):
    # exp(-|x|) never overflows: 1/(1 + exp(-x)) is 0 for x < -709.8, where sigmoid(x) > 5e-324
    e = math.exp(-abs(x))
    return (1.0 if x >= 0 else e) / (1.0 + e)


@numba.njit(cache={cache}, nogil=True, error_model='numpy')
def _sigmoid_pair(x):
    # sigmoid(x) * sigmoid(-x), relative accuracy in both tails
    e = math.exp(-abs(x))
    return e / ((1.0 + e) * (1.0 + e))
"""


class ScalarPrinter(PythonCodePrinter):
    """Per-point scalar code for numba (``sigmoid`` through the module's ``_sigmoid`` helpers)."""

    def __init__(self, names: dict[sympy.Symbol, str], first: frozenset[sympy.Symbol] = frozenset()) -> None:
        super().__init__({"fully_qualified_modules": True, "strict": True})
        self._names = names
        self._first = first  # activation-derivative nodes: printed first in products (_product)

    def _print_Mul(self, expr: sympy.Mul) -> str:
        return _product(self, expr) or super()._print_Mul(expr)

    def _print_sigmoid(self, expr: sigmoid) -> str:
        return f"_sigmoid({self._print(expr.args[0])})"

    def _print__SigmoidPair(self, expr: _SigmoidPair) -> str:
        return f"_sigmoid_pair({self._print(expr.args[0])})"

    def _print_Symbol(self, expr: sympy.Symbol) -> str:
        if expr not in self._names:
            raise ValueError(f"symbol {expr} has no place in the kernel")
        return self._names[expr]

    def _print_Float(self, expr: sympy.Float) -> str:
        return repr(float(expr))

    def _print_Integer(self, expr: sympy.Integer) -> str:
        # numba types an integer literal as int64 and refuses a larger one (gelu_tanh's fourth
        # derivative has -53658000000000000000); in a product with floats Python makes it this float
        return super()._print_Integer(expr) if abs(expr.p) < 2**63 else repr(float(expr))

    def _print_Rational(self, expr: sympy.Rational) -> str:
        return super()._print_Rational(expr) if max(abs(expr.p), expr.q) < 2**63 else repr(float(expr))

    def _print_Max(self, expr: sympy.Max) -> str:
        return _nan_max(self, expr.args, ">")

    def _print_Min(self, expr: sympy.Min) -> str:
        return _nan_max(self, expr.args, "<")

    def _print_Heaviside(self, expr: sympy.Heaviside) -> str:
        x = self._print(expr.args[0])
        at_zero = self._print(expr.args[1]) if len(expr.args) > 1 else "0.5"
        return f"(1.0 if ({x}) > 0 else (0.0 if ({x}) < 0 else ({at_zero} if ({x}) == 0 else ({x}))))"

    def _print_DiracDelta(self, expr: sympy.DiracDelta) -> str:
        return f"(0.0 * ({self._print(expr.args[0])}))"  # 0 almost everywhere, NaN stays NaN


class VectorPrinter(ScalarPrinter):
    """:class:`ScalarPrinter` whose ``exp``, ``tanh`` and sigmoids are :mod:`._vecmath`'s arithmetic.

    libm's ``exp`` is a call LLVM cannot vectorise, so a loop calling it runs one point at a
    time; :mod:`._vecmath`'s functions are inlined arithmetic, and the expression kernel's loop
    over a block of points (:func:`generate`) then runs several points per instruction.
    """

    _VECTORISED = {"math.exp": "_vecmath.exp_call", "math.tanh": "_vecmath.tanh_call"}

    def _module_format(self, fqn: str, register: bool = True) -> str:
        return self._VECTORISED.get(fqn) or super()._module_format(fqn, register)

    def _print(self, expr: object, **kwargs: object) -> str:
        if isinstance(expr, sigmoid):  # before sigmoid's own _pythoncode (two exp calls and a branch)
            return f"_vecmath.sigmoid_call({self._print(expr.args[0])})"
        return super()._print(expr, **kwargs)

    def _print__SigmoidPair(self, expr: _SigmoidPair) -> str:
        return f"_vecmath.sigmoid_pair_call({self._print(expr.args[0])})"

    def _print__SigmoidBoth(self, expr: _SigmoidBoth) -> str:
        return f"_vecmath.sigmoid_both_call({self._print(expr.args[0])})"

    def _print__TanhWithPair(self, expr: _TanhWithPair) -> str:
        return f"_vecmath.tanh_with_pair_call({self._print(expr.args[0])})"


def _nested(printer: SciPyPrinter, function: str, args: Sequence[sympy.Expr]) -> str:
    result = printer._print(args[0])
    for arg in args[1:]:
        result = f"{function}({result}, {printer._print(arg)})"
    return result


class ArrayPrinter(SciPyPrinter):
    """Whole-batch numpy code."""

    def __init__(self, names: dict[sympy.Symbol, str], first: frozenset[sympy.Symbol] = frozenset()) -> None:
        super().__init__({"fully_qualified_modules": True, "strict": True})
        self._names = names
        self._first = first

    def _print_Mul(self, expr: sympy.Mul) -> str:
        return _product(self, expr) or super()._print_Mul(expr)

    _print_Symbol = ScalarPrinter._print_Symbol
    _print_Float = ScalarPrinter._print_Float

    def _print_Max(self, expr: sympy.Max) -> str:
        return _nested(self, "numpy.maximum", expr.args)  # numpy.maximum propagates NaN

    def _print_Min(self, expr: sympy.Min) -> str:
        return _nested(self, "numpy.minimum", expr.args)

    def _print_Heaviside(self, expr: sympy.Heaviside) -> str:
        at_zero = self._print(expr.args[1]) if len(expr.args) > 1 else "0.5"
        return f"numpy.heaviside({self._print(expr.args[0])}, {at_zero})"

    def _print_DiracDelta(self, expr: sympy.DiracDelta) -> str:
        return f"(0.0 * ({self._print(expr.args[0])}))"


#: The program's activation-derivative nodes (``d2a1_0``: f''(z) of unit 0 of layer 1).
_DERIVATIVE_NODE = re.compile(r"d[0-9]+a.*")


#: Functions that need no call at all (compare-and-select code).
class _SigmoidBoth(sympy.Function):
    """``(sigmoid(x), sigmoid(-x))``, one call of :func:`._vecmath.sigmoid_both` (one ``exp``)."""

    nargs = 1


class _TanhWithPair(sympy.Function):
    """``(tanh(x), sigmoid(2x) sigmoid(-2x))``, one call of :func:`._vecmath.tanh_with_pair` (one ``exp``)."""

    nargs = 1


def _fuse_unit_functions(body: list[tuple[sympy.Symbol, sympy.Expr]]
                         ) -> tuple[list[tuple[sympy.Symbol, sympy.Expr]], dict[sympy.Symbol, sympy.Symbol]]:
    """``body`` with each unit's function and its derivatives' factor computed by one call.

    A sigmoid unit ``a = sigmoid(u)`` has derivatives ``a sigmoid(-u)``, ``... sigmoid(-u)``;
    a tanh unit's are ``4 _SigmoidPair(2u)``, ``-8 a _SigmoidPair(2u)``.  Each of these functions
    is an ``exp`` and a division of its own; :mod:`._vecmath` gives the pair from the unit's
    one ``exp`` (``e = exp(-|u|)``, to the same relative accuracy in the tails).  Returns the
    new body, where such a unit's expression is :class:`_SigmoidBoth` or :class:`_TanhWithPair`,
    and ``{unit: its partner's symbol}`` (the line assigns both).
    """
    fused: dict[sympy.Symbol, sympy.Symbol] = {}
    body = list(body)
    for i, (node, expr) in enumerate(body):
        if isinstance(expr, sigmoid):
            u = expr.args[0]
            call: sympy.Expr = _SigmoidBoth(u)
            partner = sympy.Symbol(f"{node.name}_minus")
            replace = {sigmoid(-u): partner, _SigmoidPair(u): node * partner, _SigmoidPair(-u): node * partner}
        elif isinstance(expr, sympy.tanh):
            u = expr.args[0]
            call = _TanhWithPair(u)
            partner = sympy.Symbol(f"{node.name}_pair")
            replace = {_SigmoidPair(2 * u): partner, _SigmoidPair(-2 * u): partner}
        else:
            continue
        later = body[i + 1:]
        if any(e.has(*replace) for _, e in later):
            body[i] = (node, call)
            body[i + 1:] = [(n, e.xreplace(replace)) for n, e in later]
            fused[node] = partner
    return body, fused


def vectorised_lines(body: Sequence[tuple[sympy.Symbol, sympy.Expr]], names: dict[sympy.Symbol, str],
                     taken: set[str], first: frozenset[sympy.Symbol] = frozenset()) -> list[str]:
    """``local = expr`` lines of a loop body that LLVM vectorises, printed by :class:`VectorPrinter`.

    ``body`` has its sigmoid products paired already (:func:`pair_sigmoids`, which the callers
    apply before ``cse``); each tanh or sigmoid unit comes with its derivatives' factor from one call
    (:func:`_fuse_unit_functions`).  ``names`` maps the symbols to locals and gains the
    partners' (fresh, outside ``taken``, which gains them too); ``first`` as
    :class:`ScalarPrinter` takes it.

    >>> z, a, d = sympy.symbols("z a d", real=True)
    >>> vectorised_lines([(a, sympy.tanh(z)), (d, pair_sigmoids(4 * sigmoid(2 * z) * sigmoid(-2 * z)))],
    ...                  {z: "z", a: "a", d: "d"}, {"z", "a", "d"})
    ['a, a_pair = _vecmath.tanh_with_pair_call(z)', 'd = 4*a_pair']
    """
    body, fused = _fuse_unit_functions(list(body))
    for partner in fused.values():
        names[partner] = _Names._fresh(re.sub(r"[^A-Za-z0-9_]+", "_", partner.name).strip("_"), taken)
    printer = VectorPrinter(names, first)
    return [f"{names[node]}{', ' + names[fused[node]] if node in fused else ''} = {printer.doprint(expr)}"
            for node, expr in body]


_INLINE = (sympy.Max, sympy.Min, sympy.Heaviside, sympy.DiracDelta, sympy.Abs, sympy.sign)


def _blocked(exprs: Sequence[sympy.Expr]) -> bool:
    """Whether the block layout pays: the program calls a transcendental function.

    The block layout's copies into and out of columns cost about a nanosecond per point;
    a libm ``exp`` about ten, called one point at a time, :mod:`._vecmath`'s a fraction of one
    in the vectorised loop.  A body without transcendental functions (square, ReLU nets) is
    vectorised in the per-point layout already and runs at its memory floor there; one that
    calls a function :mod:`._vecmath` lacks (``sin``, ``log``) still ran faster blocked
    (benchmarks/RESULTS.md, "Measurements behind design choices in the code").
    """
    functions = {type(f) for e in exprs for f in e.atoms(sympy.Function)}
    powers = any(not (p.exp.is_Integer or p.exp == sympy.S.Half) for e in exprs for p in e.atoms(sympy.Pow))
    return powers or any(not issubclass(f, _INLINE) for f in functions)


def generate(
    program: Program,
    weights: dict[sympy.Symbol, str],
    weight_arrays: Sequence[str],
    outputs: Sequence[Output],
    backend: str,
    parallel: bool,
    header: str,
    cache: bool = True,
) -> str:
    """The source of a module defining ``kernel(X, <weight arrays>, <output arrays>)``.

    numba kernels take one of two layouts.  Per point: one loop over the points, each
    reading its row of ``X`` and writing its results.  Blocked (:func:`_blocked`): the points
    in blocks of :data:`BLOCK`, each block's inputs copied into columns, the whole program
    run as one loop over the block's points with :mod:`._vecmath`'s functions (LLVM
    vectorises it), its results collected in columns and scattered into the outputs.
    """
    names = _Names(program, weights, hoist=backend == "numba",
                   reserved=[*weight_arrays, *(o.name for o in outputs)])
    exprs = [e for out in outputs for _, e in out.entries]
    needed = program.needed(exprs)
    args = ", ".join(["X", *weight_arrays, *(o.name for o in outputs)])
    lines = [docstring(header), "import math", "", "import numpy", "import scipy.special"]
    first = frozenset(node for node, _ in program.assignments if _DERIVATIVE_NODE.fullmatch(node.name))
    safe = tail_safe_program(program.assignments, weights)
    body = [(node, safe(expr)) for node, expr in needed]
    if backend == "numba":
        body = [(node, pair_sigmoids(expr)) for node, expr in body]
    blocked = backend == "numba" and _blocked([expr for _, expr in body] + exprs)
    # blocked: each distinct result is one row of the block's result columns (a symmetric
    # Hessian's two entries share one), scattered into the outputs afterwards
    rows = {expr: row for row, expr in enumerate(dict.fromkeys(exprs))}
    if blocked:
        printer: PythonCodePrinter = VectorPrinter(names.map, first)
        loop = "numba.prange" if parallel else "range"
        d = len(program.inputs)
        lines += ["import numba", "", f"from symnet.kernels import _vecmath  # source digest {vecmath_digest()}",
                  # no fastmath: a point's result must not depend on whether it fell in
                  # the vectorised body or the scalar remainder of its block (a fused
                  # multiply-add formed in one and not the other changes the last bit)
                  "", "", f"@numba.njit(parallel={parallel}, cache={cache}, nogil=True, error_model='numpy')",
                  f"def kernel({args}):", *(f"    {local} = {text}" for local, text in names.hoisted),
                  "    n = X.shape[0]",
                  f"    for block in {loop}((n + {BLOCK - 1}) // {BLOCK}):",
                  f"        start = block * {BLOCK}",
                  f"        m = min({BLOCK}, n - start)",
                  f"        xb = numpy.empty(({d}, {BLOCK}), X.dtype)",
                  "        for j in range(m):",
                  *(f"            xb[{i}, j] = X[start + j, {i}]" for i in range(d)),
                  f"        ob = numpy.empty(({len(rows)}, {BLOCK}), X.dtype)",
                  "        for j in range(m):"]
        indent = " " * 12
        inputs = [f"{indent}{names.map[x]} = xb[{i}, j]" for i, x in enumerate(program.inputs)]
        target = "ob[{row}, j]"
    elif backend == "numba":
        printer = ScalarPrinter(names.map, first)
        loop = "numba.prange" if parallel else "range"
        lines += ["import numba", _NUMBA_HELPERS.format(cache=cache), "",
                  f"@numba.njit(parallel={parallel}, cache={cache}, nogil=True, error_model='numpy')",
                  f"def kernel({args}):", *(f"    {local} = {text}" for local, text in names.hoisted),
                  f"    for p in {loop}(X.shape[0]):"]
        indent = " " * 8
        inputs = [f"{indent}{names.map[x]} = X[p, {i}]" for i, x in enumerate(program.inputs)]
        target = "{name}[p, {index}]"
    else:
        printer = ArrayPrinter(names.map, first)
        lines += ["", "", f"def kernel({args}):"]
        indent = " " * 4
        inputs = [f"{indent}{names.map[x]} = X[:, {i}]" for i, x in enumerate(program.inputs)]
        target = "{name}[:, {index}]"
    lines += inputs
    if blocked:
        lines += [indent + line for line in vectorised_lines(body, names.map, names.taken, first)]
    else:
        lines += [f"{indent}{names.map[node]} = {printer.doprint(expr)}" for node, expr in body]
    if blocked:
        lines += [f"{indent}{target.format(row=row)} = {printer.doprint(expr)}" for expr, row in rows.items()]
        lines.append("        for j in range(m):")
        lines += [f"{indent}{out.name}[start + j, {', '.join(map(str, index))}] = ob[{rows[expr]}, j]"
                  for out in outputs for index, expr in out.entries]
        return "\n".join(lines) + "\n"
    shared: dict[sympy.Expr, str] = {}  # an expression stored twice (symmetric Hessian) is computed once
    uses: dict[sympy.Expr, int] = {}
    for e in exprs:
        uses[e] = uses.get(e, 0) + 1
    for out in outputs:
        for index, expr in out.entries:
            text = shared.get(expr)
            if text is None:
                text = printer.doprint(expr)
                if uses[expr] > 1 and not expr.is_Atom:
                    temp = names._fresh("t", set(names.map.values()) | set(shared.values()))
                    lines.append(f"{indent}{temp} = {text}")
                    text = temp
                shared[expr] = text
            lines.append(f"{indent}{target.format(name=out.name, index=', '.join(map(str, index)))} = {text}")
    if backend != "numba":
        lines.append(f"{indent}return None")
    return "\n".join(lines) + "\n"
