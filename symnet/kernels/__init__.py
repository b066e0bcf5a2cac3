"""Compiled kernels: exact derivatives of a network as fast batch code.

:func:`compile` prints the chain-rule program (:mod:`symnet.program`) of the requested
derivatives as one fused kernel -- every shared quantity (the forward pass, activation
derivatives, each symmetric Hessian entry) is computed once per point -- and compiles it:

* ``backend="numba"``: a per-point loop (``numba.prange`` when ``parallel=True``) compiled by
  numba, cached on disk (see :mod:`symnet.kernels._cache`) so a second process loads it in
  milliseconds -- only in a folder that is yours and that nobody else can write: otherwise a
  :class:`CacheWarning` says why and kernels are compiled in memory;
* ``backend="numpy"``: the same program as whole-array numpy code, evaluated in chunks;
  it compiles nothing.

Kernels are keyed by the *architecture* (layer sizes, activations, request, options):
weights are runtime arguments, so a retrained or reloaded network with the same
architecture reuses the compiled kernel and never recompiles.

>>> import numpy as np, symnet
>>> net = symnet.Network.from_weights([-1.3284513, 0.5667597], [-1.328055, 1.0003909], ["square", "linear"])
>>> kernel = symnet.compile(net, derivatives=("value", "jacobian", "hessian"), backend="numpy")
>>> result = kernel(np.array([[0.0], [1.0]]))
>>> result.value.shape, result.jacobian.shape, result.hessian.shape
((2, 1), (2, 1, 1), (2, 1, 1, 1))
>>> np.round(result.value[:, 0], 6)
array([2.000002, 5.000029])
"""

from __future__ import annotations

import json
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import sympy

from ..activations import Activation
from ..errors import ExpressionSizeWarning, InputError, ShapeError, SymnetError
from ..graph import OPS, Graph
from ..graph import Node as GraphNode
from ..network import Network
from ..program import MultiIndex, build, closure
from ..requests import QUANTITIES, Request, parse, partial_name
from . import _cache, _threads
from ._cache import CacheWarning
from .codegen import Output, generate
from ._layered import LayeredPlan, supports
from ._loss import LossKernel
from ._sobolev import GraphSobolevLoss, SobolevLoss
from ._pool import OutputPool
from ._adjoint import AdjointPlan, adjoint_unsupported, cheaper
from ._progress import Progress, ProgressArg, pieces

__all__ = ["compile", "compile_loss", "CacheWarning", "GraphSobolevLoss", "Kernel", "KernelResult", "LossKernel",
           "SobolevLoss",
           "NumbaUnavailableWarning", "stats"]

_VERSION = "3"  # bump when generated code changes meaning

#: Points one call of a numba expression kernel evaluates at most, times the lines of its
#: source: a batch goes through in pieces of about this much work, so that Ctrl-C
#: (``KeyboardInterrupt``, which Python handles between calls, never inside compiled code) is
#: honoured within a fraction of a second, whatever the batch size.  The results are the same
#: as in one call: every point is computed on its own.
_INTERRUPT_WORK = 1 << 24
_BACKENDS = ("numba", "numpy")
_STRATEGIES = ("auto", "expression", "layered")
_SCHEDULES = ("auto", "forward", "forward-adjoint")

#: ``strategy="auto"`` prints the expression program while it has at most this many
#: weight-times-stream terms.  Measured (value + gradient + Hessian of 2-h-h-1 tanh nets,
#: 1e5 points, numba; docs/kernels.md): the unrolled kernel evaluates 1.3-1.8x faster than
#: the layered one but its compile time grows with its length -- 1.5 s at 60 terms, 2.3 s at
#: 168, 5.0 s at 324, 9.0 s at 528 (when both evaluate equally fast) -- so past ~200 terms
#: the layered strategy, which compiles in ~0.2 s once, is the better trade.
EXPRESSION_LIMIT = 200

#: A graph network takes the expression strategy whatever its size (the layered one reads
#: chains only, until issue 17); past this many weight-times-stream terms a numba kernel's
#: ``compile`` warns (:class:`~symnet.ExpressionSizeWarning`) before generating its source,
#: since numba's compile time grows with the unrolled program's length, ten times
#: :data:`EXPRESSION_LIMIT`'s (docs/kernels.md).
EXPRESSION_WARNING = 2000
_WORDS = tuple(QUANTITIES)

#: Counters a test (or a curious user) can read: how often sources were generated and
#: kernels compiled in this process.
stats = {"sources_generated": 0, "kernels_built": 0}

_MEMO: dict[str, tuple[Any, str, bool]] = {}
_MEMO_LOCK = threading.Lock()
_WORKQUEUE_LOCK = threading.Lock()


class NumbaUnavailableWarning(UserWarning):
    """numba could not be imported; the numpy backend is used instead."""


class KernelError(SymnetError, RuntimeError):
    """A kernel could not be built."""


# --- the request ----------------------------------------------------------------------------


# The vocabulary of requests (names, aliases, multi-indices, assembly, shapes) is symnet.requests.
_Request = Request


def _parse_request(derivatives: Iterable[Any] | str, net: Network) -> Request:
    return parse(derivatives, net.n_inputs, net.input_index)


def _outputs(request: Request, jets: list[dict[MultiIndex, sympy.Expr]], d: int) -> list[Output]:
    return [Output(name, tuple(((k, *index), expr) for k, jet in enumerate(jets)
                               for index, expr in request.entries(name, jet, d)))
            for name in request.outputs]


def _shape(name: str, n: int, m: int, d: int) -> tuple[int, ...]:
    quantity = QUANTITIES.get(name)
    return quantity.shape(n, m, d) if quantity is not None else (n, m)


# --- results --------------------------------------------------------------------------------


class KernelResult:
    """What a kernel returns: ``.value`` ``(N, m)``, ``.jacobian`` ``(N, m, d)``, ``.hessian``
    ``(N, m, d, d)``, ``.laplacian`` ``(N, m)`` -- only those requested -- and each explicit
    partial by its tuple: ``result[(0, 0, 1)]`` ``(N, m)``.  For a single point (``X`` of shape
    ``(d,)``) the leading ``N`` axis is dropped.
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self._arrays = arrays

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("_arrays", {})
        if name in arrays:
            return arrays[name]
        if name in _WORDS:
            raise AttributeError(f"{name!r} was not requested; compile with derivatives=(..., {name!r})")
        raise AttributeError(name)

    def __getitem__(self, key: str | Sequence[int]) -> np.ndarray:
        name = key if isinstance(key, str) else partial_name(tuple(sorted(int(k) for k in key)))
        if name not in self._arrays:
            raise KeyError(f"{key!r} was not requested; requested: {', '.join(self._arrays)}")
        return self._arrays[name]

    def as_dict(self) -> dict[str, np.ndarray]:
        return dict(self._arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={v.shape}" for k, v in self._arrays.items())
        return f"KernelResult({shapes})"


# --- the kernel -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Kernel:
    """A compiled evaluator of a network's value and exact derivatives.

    Call it on points: ``kernel(X)`` with ``X`` of shape ``(N, d)``, or ``(d,)`` for one point
    (for one-input networks a 1-D ``X`` is ``N`` points).  Integer and other real inputs are
    converted to the kernel's dtype; non-contiguous arrays are copied.

    Attributes:
        source: the generated Python source (deterministic for the same architecture).
        backend: ``"numba"`` or ``"numpy"``.
        strategy: ``"expression"`` (the program printed point by point) or ``"layered"``.
        strategy_reason: why this strategy: ``"strategy='layered' was asked for"``, or what
            ``strategy="auto"`` weighed (the size against :data:`EXPRESSION_LIMIT`, a request
            the layered strategy cannot evaluate, a graph network).
        threads: how many threads one call runs on (:attr:`threads`).
        loaded_from_disk: whether the source came from the disk cache.
        build_seconds: wall time of :func:`compile` for this kernel (0 when reused in-process).
    """

    net: Network
    derivatives: tuple[Any, ...]
    backend: str
    dtype: np.dtype
    parallel: bool
    source: str
    strategy: str
    loaded_from_disk: bool
    build_seconds: float
    _fn: Any = field(repr=False)
    _weights: tuple[np.ndarray, ...] = field(repr=False)
    _outputs: tuple[str, ...] = field(repr=False)
    _chunk: int = field(repr=False)
    _plan: LayeredPlan | AdjointPlan | None = field(default=None, repr=False)
    _partials: dict[str, MultiIndex] = field(default_factory=dict, repr=False)
    _pool: OutputPool = field(default_factory=OutputPool, repr=False)
    strategy_reason: str = field(default="", repr=False)

    def __call__(self, X: Any, out: KernelResult | None = None, progress: ProgressArg = False) -> KernelResult:
        """Evaluate at the points ``X``; ``out`` (an earlier result of the same shapes) is filled in place.

        ``progress=True`` prints the share of points done (on stderr, updated twice a second);
        ``progress=callback`` calls ``callback(done, total)`` after each piece of the batch.

        Without ``out``, result memory comes from the kernel's pool: arrays of an earlier call
        that the caller no longer holds are reused, arrays still held are never touched
        (:mod:`symnet.kernels._pool`; ``kernel.release_memory()`` frees the pool).  Fresh
        memory costs a page fault per page on first write, which for small networks costs
        more than the arithmetic.
        """
        net = self.net
        d, m = net.n_inputs, net.n_outputs
        points, single = _as_points(X, d, self.dtype)
        n = points.shape[0]
        arrays = self._pool.arrays({name: _shape(name, n, m, d) for name in self._outputs}, self.dtype) \
            if out is None else _reuse(out, self._outputs, n, m, d, self.dtype, single)
        report = Progress(n, progress)
        if n and self._plan is not None:
            self._plan.run(points, self._weights, arrays, self._partials, report if report.active else None)
        elif n and self.backend == "numba":
            # progress needs pieces (each ~1% of the batch, >= 65,536 points); Ctrl-C needs
            # pieces of bounded work (_INTERRUPT_WORK), since compiled code cannot be interrupted
            for start, stop in _spans(n, self._numba_chunk, pieces(n) if report.active else [(0, n)]):
                self._run_numba(points[start:stop], {k: a[start:stop] for k, a in arrays.items()})
                report(stop)
        elif n:
            for start in range(0, n, self._chunk):
                stop = min(n, start + self._chunk)
                with np.errstate(all="ignore"):  # inf/nan are results here, as in the numba kernel
                    self._fn(points[start:stop], *self._weights, *(a[start:stop] for a in arrays.values()))
                report(stop)
        if single:
            arrays = {k: v[0] for k, v in arrays.items()}
        return KernelResult(arrays)

    @property
    def _numba_chunk(self) -> int:
        """Points per call of a numba expression kernel (:data:`_INTERRUPT_WORK`)."""
        return max(4096, _INTERRUPT_WORK // max(1, self.source.count("\n")))

    def _run_numba(self, points: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        if self.parallel and _threading_layer() == "workqueue":
            with _WORKQUEUE_LOCK:  # numba's workqueue layer must not be entered by two threads
                self._fn(points, *self._weights, *arrays.values())
        else:
            self._fn(points, *self._weights, *arrays.values())

    @property
    def schedule(self) -> str | None:
        """How the layered strategy runs: ``"forward"`` (Taylor mode) or ``"forward-adjoint"``
        (Hessian entries of nets with two or more inputs, where it needs fewer matrix
        products: :mod:`symnet.kernels._adjoint`); ``None`` for the expression strategy."""
        return None if self._plan is None else self._plan.schedule

    @property
    def threads(self) -> int:
        """Threads one call runs on: the layered strategy's chunks go to this many threads
        (1 where numpy's BLAS's thread count cannot be set: :mod:`symnet.kernels._threads`);
        a parallel expression kernel uses numba's threads."""
        if self._plan is not None:
            return self._plan.threads
        return _threads.numba_threads() if self.parallel else 1

    def release_memory(self) -> None:
        """Give back the result memory kept for reuse (arrays callers still hold stay valid)."""
        self._pool.clear()

    def with_weights(self, net: Network) -> Kernel:
        """The same compiled kernel evaluating another network of the same architecture."""
        if _architecture(net) != _architecture(self.net):
            raise ShapeError(
                f"the kernel was compiled for {self.net!r}; {net!r} has another architecture: use symnet.compile"
            )
        return Kernel(net, self.derivatives, self.backend, self.dtype, self.parallel, self.source, self.strategy,
                      self.loaded_from_disk, 0.0, self._fn, _weight_arrays(net, self.dtype), self._outputs, self._chunk,
                      self._plan, self._partials, self._pool, self.strategy_reason)

    def map_blocks(self, X: Any) -> Any:
        """Evaluate lazily over a Dask array of points: :func:`symnet.dask.evaluate` (needs ``symnet[dask]``)."""
        from .. import dask as _dask  # imported on use: `import symnet` must not import Dask

        return _dask.evaluate(self, X)

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled code does not pickle: the receiver compiles again from the network (its
        # weights included, as with_weights left them) and the options.  compile is keyed by
        # architecture and options, never weights, so that process's memo or its own disk cache
        # answers it.  A kernel built with cache=False arrives with cache=True (not recorded).
        return (_rebuild, (self.net, self.derivatives, self.backend, self.dtype, self.parallel, True, self.strategy,
                           self.schedule or "auto", self.strategy_reason))

    def __repr__(self) -> str:
        return (f"Kernel({self.net!r}, derivatives={self.derivatives}, backend={self.backend!r}, "
                f"dtype={self.dtype.name}, strategy={self.strategy!r})")


def _rebuild(net: Network, derivatives: tuple[Any, ...], backend: str, dtype: np.dtype, parallel: bool, cache: bool,
             strategy: str, schedule: str, reason: str) -> Kernel:
    """A pickled kernel compiled again (:meth:`Kernel.__reduce__`), saying why its strategy was first chosen."""
    kernel = compile(net, derivatives, backend, dtype, parallel, cache, strategy, schedule)
    object.__setattr__(kernel, "strategy_reason", reason or kernel.strategy_reason)
    return kernel


def _spans(n: int, chunk: int, pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``pieces`` (consecutive ranges covering ``0..n``) cut further into ranges of at most ``chunk``.

    >>> _spans(10, 4, [(0, 6), (6, 10)])
    [(0, 4), (4, 6), (6, 10)]
    """
    return [(start, min(stop, start + chunk)) for first, stop in pieces for start in range(first, stop, chunk)]


def _reuse(out: KernelResult, names: tuple[str, ...], n: int, m: int, d: int, dtype: np.dtype,
           single: bool) -> dict[str, np.ndarray]:
    arrays = {}
    for name in names:
        shape = _shape(name, n, m, d)
        array = out.as_dict().get(name)
        if array is not None and single:
            array = array.reshape((1, *array.shape))
        if array is None or array.shape != shape or array.dtype != dtype or not array.flags.c_contiguous \
                or not array.flags.writeable:
            raise ShapeError(f"out cannot hold the result: {name} must be a writeable C-contiguous {dtype} array "
                             f"of shape {shape}")
        arrays[name] = array
    return arrays


def _threading_layer() -> str:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return str(numba.config.THREADING_LAYER)


def _as_points(X: Any, d: int, dtype: np.dtype) -> tuple[np.ndarray, bool]:
    if isinstance(X, np.ma.MaskedArray):
        raise InputError("X is a masked array, and its mask would be ignored: drop the masked rows "
                         "(X[~X.mask.any(axis=1)]) or fill them (np.ma.filled) before evaluating")
    array = np.asarray(X)
    if array.dtype.kind == "c":
        raise InputError(f"X is complex ({array.dtype}); kernels evaluate real inputs")
    if array.dtype.kind not in "biuf":
        raise InputError(f"X has dtype {array.dtype}; give real numbers")
    single = False
    if array.ndim == 1:
        if d == 1:
            array = array.reshape(-1, 1)
        elif array.shape[0] == d:
            array, single = array.reshape(1, d), True
        else:
            raise ShapeError(f"X has shape {array.shape} but the network takes {d} inputs: give (N, {d}) or ({d},)")
    elif array.ndim == 0 and d == 1:
        array, single = array.reshape(1, 1), True
    if array.ndim != 2 or array.shape[1] != d:
        raise ShapeError(f"X has shape {array.shape} but the network takes {d} inputs: give (N, {d}) or ({d},)")
    return np.ascontiguousarray(array, dtype=dtype), single


def _architecture(net: Network) -> tuple[Any, ...]:
    if not net.is_chain:
        return _graph_architecture(net.graph)
    return (net.layer_sizes, tuple(a.name if a.form is None else sympy.srepr(a.form) for a in net.activations))


def _activation_key(activation: Activation) -> str:
    return activation.name if activation.form is None else sympy.srepr(activation.form)


def _attribute_key(value: Any) -> Any:
    """A node attribute as part of a cache key: constants by their exact SymPy form."""
    if isinstance(value, Activation):
        return ("activation", _activation_key(value))
    if isinstance(value, sympy.MatrixBase):
        return ("matrix", tuple(value.shape), tuple(sympy.srepr(entry) for entry in value))
    return value


def _slots(node: GraphNode) -> list[tuple[str, sympy.ImmutableMatrix]]:
    """A node's runtime arrays: ``(parameter name, matrix)``, in a fixed order.

    A dense node passes its *effective* ``W`` (:attr:`symnet.graph.Node.weight`: a weight-
    normalised or factorised ``W`` evaluated once per network, not once per point) and ``b``;
    other nodes pass their parameters in the op table's order.  Constants (``node.attrs``) are
    not passed: they are printed into the source and are part of the architecture.
    """
    if node.op == "dense":
        return [("W", node.weight), ("b", node.params["b"])]
    return [(name, node.params[name]) for name in OPS[node.op].params]


def _graph_architecture(graph: Graph) -> tuple[Any, ...]:
    """What a graph kernel's source depends on: ops, wiring (by position, not by the user's node
    names), widths, constants, activations and the shapes of the runtime arrays."""
    position = {node.name: k for k, node in enumerate(graph.nodes)}
    nodes = []
    for node in graph.nodes[1:]:
        attrs = tuple(sorted((k, _attribute_key(v)) for k, v in node.attrs.items() if k != "parametrization"))
        shapes = tuple((name, tuple(matrix.shape)) for name, matrix in _slots(node))
        nodes.append((node.op, tuple(position[name] for name in node.inputs), node.width, attrs, shapes))
    return ("graph", len(graph.inputs), tuple(nodes), position[graph.output])


def _weight_arrays(net: Network, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    if not net.is_numeric:
        names = ", ".join(str(p) for p in net.params[:4])
        raise InputError(f"compile needs numeric weights, but {names}... are symbols: substitute numbers with net.subs(...)")
    if not net.is_chain:
        # evaluated in float64 (an effective W of a weight-normalised layer too), then cast
        return tuple(np.ascontiguousarray(np.array(matrix.tolist(), dtype=np.float64).reshape(matrix.shape), dtype)
                     for node in net.graph.nodes[1:] for _, matrix in _slots(node))
    arrays = []
    for layer in net.layers:
        arrays += [np.ascontiguousarray(layer.weight_array(dtype)), np.ascontiguousarray(layer.bias_array(dtype))]
    return tuple(arrays)


def _twin(net: Network) -> tuple[Network, dict[sympy.Symbol, str], list[str]]:
    """The network of the same architecture with a symbol for every weight, the map from each
    symbol to its array element in the kernel (``W2[3, 0]``), and the arrays' names in order.

    A graph's twin names its nodes by position (``z3``, ``a4``, ``add5``) and its arrays by
    parameter and position (``W3``, ``b3``, ``s7``): the user's node names never reach the source.
    """
    weights: dict[sympy.Symbol, str] = {}
    arrays: list[str] = []
    if net.is_chain:
        twin = Network.symbolic(net.layer_sizes, net.activations)
        for number, layer in enumerate(twin.layers, start=1):
            for i in range(layer.fan_in):
                for j in range(layer.fan_out):
                    weights[layer.weight[i, j]] = f"W{number}[{i}, {j}]"
            for j in range(layer.fan_out):
                weights[layer.bias[0, j]] = f"b{number}[{j}]"
            arrays += [f"W{number}", f"b{number}"]
        return twin, weights, arrays
    graph = net.graph
    renamed = {"x": "x"}
    for k, node in enumerate(graph.nodes[1:], start=1):
        renamed[node.name] = {"dense": "z", "activation": "a"}.get(node.op, node.op) + str(k)
    nodes = []
    for k, node in enumerate(graph.nodes[1:], start=1):
        params = {}
        for name, matrix in _slots(node):
            array = f"{name}{k}"
            symbols = sympy.ImmutableMatrix(*matrix.shape, lambda i, j: sympy.Symbol(f"{array}_{i}_{j}", real=True))
            weights.update({symbols[i, j]: f"{array}[{i}, {j}]"
                            for i in range(matrix.shape[0]) for j in range(matrix.shape[1])})
            arrays.append(array)
            params[name] = symbols
        attrs = {key: value for key, value in node.attrs.items() if key != "parametrization"}
        nodes.append(GraphNode(renamed[node.name], node.op, tuple(renamed[i] for i in node.inputs), params, attrs,
                               node.width))
    inputs = [sympy.Symbol(f"x{i}", real=True) for i in range(len(graph.inputs))]
    return Network.from_graph(Graph(inputs, nodes, renamed[graph.output])), weights, arrays


def compile(  # noqa: A001 - the public name the API promises
    net: Network,
    derivatives: Iterable[Any] | str = ("value", "jacobian", "hessian"),
    backend: str = "numba",
    dtype: Any = np.float64,
    parallel: bool = True,
    cache: bool = True,
    strategy: str = "auto",
    schedule: str = "auto",
) -> Kernel:
    """Compile the value and exact derivatives of ``net`` into a batch kernel.

    Args:
        net: a numeric network.
        derivatives: any of ``"value"``, ``"jacobian"`` (alias ``"gradient"``), ``"hessian"``,
            ``"laplacian"``, ``"biharmonic"`` (:mod:`symnet.requests`: one vocabulary for compile,
            export and verify), and explicit partials as tuples of inputs (``(0, 0, 1)`` is
            ``d^3 / dx0^2 dx1``; names work too).
        backend: ``"numba"`` (compiled) or ``"numpy"`` (compiles nothing).  If numba cannot
            be imported, ``"numba"`` falls back to ``"numpy"`` with a
            :class:`NumbaUnavailableWarning`; ``kernel.backend`` says which ran.
        dtype: ``numpy.float64`` or ``numpy.float32`` for inputs, weights and results.
        parallel: use every core (numba backend): ``numba.prange`` over points in the
            expression strategy, chunks of points on ``kernel.threads`` threads in the layered
            one (:mod:`symnet.kernels._threads`).
        cache: keep generated kernels on disk (``$SYMNET_CACHE_DIR``, default
            ``~/.cache/symnet``); a second process then skips code generation and compilation.
            Only a folder that is yours and not writable by group or others is used (created
            with mode ``0o700``); otherwise a :class:`CacheWarning` says why, once, and the
            kernel is compiled in memory (docs/kernels.md, "The cache folder").
        strategy: ``"expression"`` prints the chain-rule program point by point (one fused,
            unrolled kernel: best for small networks); ``"layered"`` propagates value,
            tangents, second-order terms and asked-for partials of order 3 to 6 layer by layer
            with one matrix multiply per layer (best for wide networks; see
            :mod:`symnet.kernels._layered`); ``"auto"`` picks by size
            (:data:`EXPRESSION_LIMIT`; partials of order 7 or more and softmax layers take
            the expression strategy).  ``kernel.strategy`` says which was used.
        schedule: for the layered strategy, ``"forward"`` (Taylor mode: every derivative
            stream through every layer) or ``"forward-adjoint"`` (value and tangents forward,
            then one adjoint sweep adding each layer's Hessian term; numba backend, for
            Hessian entries: :mod:`symnet.kernels._adjoint`); ``"auto"`` takes the one with
            fewer streams.  ``kernel.schedule`` says which was used.

    Returns:
        a :class:`Kernel`; ``kernel(X)`` returns a :class:`KernelResult`.
    """
    start = time.perf_counter()
    if backend not in _BACKENDS:
        raise InputError(f"backend must be one of {_BACKENDS}, not {backend!r}")
    if strategy not in _STRATEGIES:
        raise InputError(f"strategy must be one of {_STRATEGIES}, not {strategy!r}")
    if schedule not in _SCHEDULES:
        raise InputError(f"schedule must be one of {_SCHEDULES}, not {schedule!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise InputError(f"dtype must be float64 or float32, not {dtype}")
    if backend == "numba" and not _numba_available():
        # a kernel rebuilt from a pickle names its schedule; forward-adjoint needs numba
        forward = " and the forward schedule" if schedule == "forward-adjoint" else ""
        warnings.warn(f"numba is not available; using the numpy backend{forward} (kernel.backend == 'numpy')",
                      NumbaUnavailableWarning, stacklevel=2)
        backend = "numpy"
        schedule = "forward" if schedule == "forward-adjoint" else schedule
    request = _parse_request(derivatives, net)
    weights = _weight_arrays(net, dtype)
    strategy, reason = _choose(net, request, strategy)
    schedule = _schedule(net, request, strategy, backend, schedule)
    parallel = bool(parallel) and backend == "numba"
    versions = {"python": list(sys.version_info[:2]), "numba": _numba_version() if backend == "numba" else None}
    outputs = tuple(o for o in _WORDS if o in request.words) + tuple(partial_name(a) for a in request.partials)
    partials = {partial_name(a): a for a in request.partials}
    description = json.dumps({
        "symnet_kernel": _VERSION, "architecture": repr(_architecture(net)), "words": request.words,
        "partials": request.partials, "backend": backend, "dtype": dtype.name, "parallel": parallel,
        "strategy": strategy, "schedule": schedule, **versions}, sort_keys=True)
    key = _cache.key_of(description)
    use_disk = cache and backend == "numba"
    derivatives = tuple(derivatives) if not isinstance(derivatives, str) else (derivatives,)
    with _MEMO_LOCK:
        reused = key in _MEMO
        if not reused:
            # the folder is checked (and created) before any source is generated: sources
            # compiled in memory must not ask numba for cache=True
            use_disk = use_disk and _cache.usable_cache_dir() is not None
            if strategy == "layered":
                if schedule == "forward-adjoint":
                    plan = AdjointPlan(net, request.words, request.partials, dtype, use_disk, parallel)
                else:
                    plan = LayeredPlan(net, request.words, request.partials, dtype, backend, parallel, use_disk)
                _MEMO[key] = (plan, "\n\n".join(plan.sources), plan.loaded_from_disk)
            else:
                twin, weight_map, arrays = _twin(net)

                def make_source() -> str:
                    stats["sources_generated"] += 1
                    if not net.is_chain and backend == "numba":
                        _warn_if_large(net, request)
                    return _source(twin, weight_map, arrays, request, backend, parallel, description, use_disk)

                module, source, from_disk = _cache.load_or_write(key, None, make_source, use_disk)
                _MEMO[key] = (module.kernel, source, from_disk)
            stats["kernels_built"] += 1
        compiled, source, from_disk = _MEMO[key]
    chunk = max(1, min(65536, (1 << 23) // max(1, source.count("\n"))))
    kernel = Kernel(net, derivatives, backend, dtype, parallel, source, strategy, from_disk, 0.0,
                    None if strategy == "layered" else compiled, weights, outputs, chunk,
                    compiled if strategy == "layered" else None, partials, strategy_reason=reason)
    if backend == "numba" and not reused:
        _warm_up(kernel, key, use_disk)
    object.__setattr__(kernel, "build_seconds", 0.0 if reused else time.perf_counter() - start)
    return kernel


def _warm_up(kernel: Kernel, key: str, use_disk: bool) -> None:
    """Compile (or load from numba's cache) now, not at first use; a corrupt numba cache is rebuilt.

    A layered kernel's cache entries are its generated passes (``plan.keys``), each rebuilt.
    """
    point = np.zeros((1, kernel.net.n_inputs), kernel.dtype)
    try:
        kernel(point)
    except Exception as exc:  # numba raises while reading a damaged index or data file
        if not use_disk:
            raise
        warnings.warn(f"symnet: numba's cache of kernel {key} was unreadable ({type(exc).__name__}); rebuilding it",
                      RuntimeWarning, stacklevel=3)
        for entry in kernel._plan.keys if kernel._plan is not None else [key]:
            _cache.drop_numba_cache(entry)
        kernel(point)


def _choose(net: Network, request: _Request, strategy: str) -> tuple[str, str]:
    """The strategy and why (``kernel.strategy_reason``)."""
    reason = supports(net, request.words, request.partials)
    if "biharmonic" in request.words and not reason:
        reason = "the biharmonic takes the expression strategy until the layered strategy assembles it (issue 17)"
    if strategy == "layered" and reason:
        raise InputError(f"strategy='layered' cannot evaluate this request: {reason}; use strategy='expression'")
    if strategy != "auto":
        return strategy, f"strategy={strategy!r} was asked for"
    if not net.is_chain:
        return "expression", f"auto: {reason}"
    if reason:
        return "expression", f"auto: the layered strategy cannot evaluate this request: {reason}"
    streams = len(closure(request.multi_indices(net.n_inputs)))
    terms = sum(layer.fan_in * layer.fan_out for layer in net.layers) * streams
    if terms <= EXPRESSION_LIMIT:
        return "expression", (f"auto: {terms} weight-times-stream terms, at most EXPRESSION_LIMIT "
                              f"({EXPRESSION_LIMIT}): the unrolled expression kernel evaluates faster")
    return "layered", (f"auto: {terms} weight-times-stream terms, more than EXPRESSION_LIMIT ({EXPRESSION_LIMIT}): "
                       "the expression kernel would take long to compile")


def _graph_terms(net: Network, request: _Request) -> int:
    """The weight-times-stream terms of a graph's expression program: each linear node's
    coefficients and each other node's units, times the derivative streams."""
    streams = len(closure(request.multi_indices(net.n_inputs)))
    units = sum(sum(len(terms) for terms, _ in node.linear_terms) if node.family == "linear" else node.width
                for node in net.graph.nodes[1:])
    return units * streams


def _warn_if_large(net: Network, request: _Request) -> None:
    terms = _graph_terms(net, request)
    if terms > EXPRESSION_WARNING:
        warnings.warn(f"this graph network's expression kernel has about {terms:,} weight-times-stream terms "
                      f"(more than EXPRESSION_WARNING, {EXPRESSION_WARNING:,}): numba's compile time grows with its "
                      "length, so this may take a minute or more. Graph networks take the expression strategy until "
                      "the layered strategy reads graphs (issue 17); backend='numpy' compiles nothing.",
                      ExpressionSizeWarning, stacklevel=5)


def _schedule(net: Network, request: _Request, strategy: str, backend: str, schedule: str) -> str | None:
    if strategy != "layered":
        if schedule != "auto":
            raise InputError(f"schedule={schedule!r} is for the layered strategy; this kernel uses {strategy!r}: "
                             "pass strategy='layered' too")
        return None
    if schedule == "forward-adjoint":
        reason = adjoint_unsupported(net, request.words, request.partials, backend)
        if reason:
            raise InputError(f"schedule='forward-adjoint' cannot evaluate this request: {reason}; use schedule='forward'")
        return schedule
    if schedule == "auto":
        return "forward-adjoint" if backend == "numba" and cheaper(net, request.words, request.partials) else "forward"
    return schedule


def _source(twin: Network, weights: dict[sympy.Symbol, str], arrays: list[str], request: _Request, backend: str,
            parallel: bool, description: str, cache: bool) -> str:
    program = build(twin, request.multi_indices(twin.n_inputs))
    outputs = _outputs(request, program.jets, twin.n_inputs)
    # generate() renders the header inertly (names in the description may come from a file)
    header = ("Generated by symnet: do not edit.\n\n" + description.replace('"', "'") + "\n")
    return generate(program, weights, arrays, outputs, backend, parallel, header, cache=cache)


def _numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _numba_version() -> str:
    import numba

    return str(numba.__version__)


def compile_loss(net: Network, loss: str = "mse") -> LossKernel:
    """A kernel for a loss and its exact gradient with respect to every weight and bias.

    ``kernel(X, Y)`` returns ``(mean loss, [(dW, db) per layer])`` -- the numbers
    :func:`symnet.param_grad` gives as exact expressions -- by reverse mode through the
    layers (one BLAS product per layer and direction); ``kernel(X, Y, weights=other_net)``
    evaluates at other weights of the same architecture without rebuilding anything.

    >>> import numpy as np, symnet
    >>> net = symnet.Network.from_weights([[[2.0]]], [[0.0]], "linear")
    >>> value, [(dW, db)] = symnet.compile_loss(net, "mse")(np.array([[1.0]]), np.array([[3.0]]))
    >>> value, dW, db
    (1.0, array([[-2.]]), array([-2.]))
    """
    return LossKernel(net, loss)
