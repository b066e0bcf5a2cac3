"""Kernels over Dask arrays: lazy evaluation, losses and sampled verification, on one machine or a cluster.

symnet has no scheduler of its own; it maps compiled kernels over Dask arrays, so the same
code runs on Dask's threaded scheduler, on a ``distributed.LocalCluster`` or on a cluster of
many machines (``docs/dask.md``).  Needs the ``symnet[dask]`` extra; ``import symnet`` does
not import Dask.

* :func:`evaluate`: the requested derivatives of every point of a
  Dask array ``X`` of shape ``(N, d)`` chunked along the points, as lazy Dask arrays;
* :func:`mean_squared`: the mean of a residual's square over all points (a PDE residual, a
  data misfit), reduced chunk by chunk: the derivatives are never held all at once;
* :func:`verify`: :func:`symnet.verify` at points sampled from random chunks, with the exact
  side being the kernel's numbers as the workers compute them.

A kernel travels to the workers pickled once per graph, as its network and options; each
worker process compiles it again once (``symnet.compile``, answered by that process's own
disk cache when warm) and keeps the last few kernels it rebuilt.

>>> import numpy as np, dask.array as da
>>> import symnet, symnet.dask
>>> net = symnet.Network.from_weights([[[1.0, -1.0]], [[0.5], [2.0]]], [[0.0, 0.5], [0.1]], ["tanh", "linear"])
>>> kernel = symnet.compile(net, ("value", "jacobian", "hessian"), backend="numpy")
>>> X = da.linspace(-1, 1, 1_000, chunks=250)   # one input: 1,000 points in 4 chunks
>>> result = symnet.dask.evaluate(kernel, X)     # lazy: nothing is computed yet
>>> result
DaskKernelResult(value=(1000, 1), jacobian=(1000, 1, 1), hessian=(1000, 1, 1, 1); 4 chunks)
>>> computed, local = result.compute(), kernel(X.compute())
>>> all(np.array_equal(computed[name], local[name]) for name in ("value", "jacobian", "hessian"))
True
"""

from __future__ import annotations

import hashlib
import math
import operator
import pickle
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from typing import Any, Callable

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - the extra is part of the test install
    raise ImportError("symnet.dask needs Dask: pip install 'symnet[dask]'") from exc

from .check import VerificationError, VerifyReport
from .check import verify as _verify
from .errors import InputError, ShapeError
from .kernels import Kernel, KernelResult

__all__ = ["DaskKernelResult", "DaskVerifyReport", "evaluate", "mean_squared", "verify"]

#: Kernels a process keeps after rebuilding them from a graph (each may hold up to 256 MiB of
#: recycled result memory, which an evicted kernel gives back).
KEEP_KERNELS = 4

_REBUILT: OrderedDict[str, Kernel] = OrderedDict()
_REBUILT_LOCK = threading.Lock()


# --- a kernel on its way to the workers --------------------------------------------------------


class _Shipped:
    """A kernel as a graph holds it: pickled once, rebuilt at most once per process.

    The scheduler unpickles the graph too; it only ever sees these bytes, so it compiles
    nothing.  Where the graph is not pickled (threaded and synchronous schedulers) the
    original kernel is used as it is.
    """

    def __init__(self, blob: bytes, digest: str, kernel: Kernel | None = None) -> None:
        self.blob, self.digest, self._kernel = blob, digest, kernel

    @classmethod
    def of(cls, kernel: Kernel) -> _Shipped:
        try:
            blob = pickle.dumps(kernel, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise InputError(f"the kernel cannot be sent to Dask workers: {exc}") from exc
        return cls(blob, hashlib.sha256(blob).hexdigest(), kernel)

    def kernel(self) -> Kernel:
        if self._kernel is not None:
            return self._kernel
        with _REBUILT_LOCK:
            kernel = _REBUILT.get(self.digest)
            if kernel is None:
                kernel = pickle.loads(self.blob)  # Kernel.__reduce__: symnet.compile, disk cache first
                _REBUILT[self.digest] = kernel
                while len(_REBUILT) > KEEP_KERNELS:
                    _REBUILT.popitem(last=False)[1].release_memory()
            _REBUILT.move_to_end(self.digest)
        self._kernel = kernel
        return kernel

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Shipped, (self.blob, self.digest))

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("symnet-kernel", self.digest)


def _node(kernel: Kernel) -> Any:
    """The kernel as one key of the graph: every chunk's task depends on it, so a worker
    receives it once rather than with every task."""
    shipped = _Shipped.of(kernel)
    return dask.delayed(shipped, pure=True, name=f"symnet-pickled-kernel-{shipped.digest[:32]}")


def _points(kernel: Any, X: Any) -> da.Array:
    if not isinstance(kernel, Kernel):
        raise InputError(f"expected a compiled symnet.Kernel (symnet.compile(net, ...)), not {type(kernel).__name__}")
    if not isinstance(X, da.Array):
        raise InputError(f"X must be a dask.array.Array, not {type(X).__name__}: call the kernel itself on numpy "
                         "arrays, or wrap them with dask.array.from_array(X, chunks=(points_per_chunk, d))")
    if X.dtype.kind not in "biuf":
        raise InputError(f"X has dtype {X.dtype}; kernels evaluate real inputs")
    d = kernel.net.n_inputs
    if X.ndim == 1 and d == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[1] != d:
        raise ShapeError(f"X has shape {X.shape} but the network takes {d} inputs: give (N, {d}) points")
    if len(X.chunks[1]) > 1:
        # a point's coordinates must arrive together; d is small, so merging its chunks is cheap
        X = X.rechunk({1: -1})
    return X


def _outputs(kernel: Kernel) -> dict[str, np.ndarray]:
    """The kernel's outputs at no points: their names, trailing shapes and dtype."""
    return kernel(np.empty((0, kernel.net.n_inputs), kernel.dtype)).as_dict()


# --- evaluate ----------------------------------------------------------------------------------


class DaskKernelResult(KernelResult):
    """A :class:`~symnet.KernelResult` whose arrays are lazy Dask arrays, chunked like the points.

    ``.value``, ``.jacobian``, ``.hessian``, ``.laplacian`` and ``result[(0, 0, 1)]`` as for a
    kernel's result.  Computing the arrays one by one would evaluate the kernel once for each;
    :meth:`compute` (or ``dask.compute(result.value, result.hessian)``) evaluates it once.
    """

    def compute(self, **kwargs: Any) -> KernelResult:
        """Every array at once, as a numpy :class:`~symnet.KernelResult`; ``kwargs`` go to ``dask.compute``."""
        values = dask.compute(*self._arrays.values(), **kwargs)
        return KernelResult(dict(zip(self._arrays, values)))

    def persist(self, **kwargs: Any) -> DaskKernelResult:
        """Every array computed and kept in (worker) memory, still as Dask arrays (``dask.persist``)."""
        values = dask.persist(*self._arrays.values(), **kwargs)
        return DaskKernelResult(dict(zip(self._arrays, values)))

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={v.shape}" for k, v in self._arrays.items())
        first = next(iter(self._arrays.values()))
        return f"DaskKernelResult({shapes}; {first.numblocks[0]} chunks)"


def _evaluate_block(block: np.ndarray, shipped: _Shipped, names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    arrays = shipped.kernel()(block).as_dict()
    return tuple(arrays[name] for name in names)


def evaluate(kernel: Kernel, X: da.Array) -> DaskKernelResult:
    """The kernel's derivatives at every point of a Dask array, lazily.

    Args:
        kernel: a compiled :class:`~symnet.Kernel`.
        X: a Dask array of points ``(N, d)`` (or ``(N,)`` for one-input networks), any real
            dtype, chunked along the points.  Chunks along the inputs are merged
            (``X.rechunk({1: -1})``: a point's coordinates must meet in one task).

    Returns:
        a :class:`DaskKernelResult`: ``.value`` ``(N, m)``, ``.jacobian`` ``(N, m, d)``,
        ``.hessian`` ``(N, m, d, d)``, ``.laplacian`` and partials ``(N, m)`` as requested,
        each a Dask array of the kernel's dtype with ``X``'s chunks along the points.  One task
        per chunk evaluates everything; each array picks its part.

    Each chunk's results are those of ``kernel(chunk)``.  The expression strategy computes
    every point on its own, so they equal ``kernel(X)`` on the whole array bit for bit; the
    layered strategy's BLAS products may differ from a whole-array call in the last bits with
    the chunking or BLAS's thread count, as any BLAS-based code does (``docs/dask.md``).

    >>> import numpy as np, dask.array as da, symnet
    >>> net = symnet.Network.from_weights([np.full((2, 3), 0.5), np.ones((3, 1))], None, ["tanh", "linear"])
    >>> kernel = symnet.compile(net, ("value", "laplacian"), backend="numpy")
    >>> X = da.random.default_rng(0).standard_normal((10_000, 2), chunks=(2_500, 2))
    >>> result = evaluate(kernel, X)
    >>> result.laplacian
    dask.array<symnet-laplacian, shape=(10000, 1), dtype=float64, chunksize=(2500, 1), chunktype=numpy.ndarray>
    >>> np.array_equal(result.laplacian.compute(), kernel(X.compute()).laplacian)
    True
    """
    points = _points(kernel, X)
    empty = _outputs(kernel)
    names = tuple(empty)
    node = _node(kernel)
    token = dask.base.tokenize(node, points, names)
    tuples = da.map_blocks(_evaluate_block, points, node, names, drop_axis=1, meta=np.empty((0,), object),
                           name=f"symnet-evaluate-{token}")
    arrays = {}
    for index, name in enumerate(names):
        trailing = empty[name].shape[1:]
        arrays[name] = da.map_blocks(operator.getitem, tuples, index, new_axis=list(range(1, 1 + len(trailing))),
                                     chunks=(points.chunks[0], *((size,) for size in trailing)),
                                     meta=np.empty((0,) * (1 + len(trailing)), kernel.dtype),
                                     name=f"symnet-{name}-{token}")
    return DaskKernelResult(arrays)


# --- losses ------------------------------------------------------------------------------------


def _squares_block(block: np.ndarray, shipped: _Shipped, residual: Callable[..., Any], *extras: np.ndarray
                   ) -> np.ndarray:
    result = shipped.kernel()(block)
    values = np.asarray(residual(block, result, *extras), dtype=np.float64)
    if values.ndim == 0 or values.shape[0] != block.shape[0]:
        raise ShapeError(f"residual returned shape {values.shape} for a chunk of {block.shape[0]} points: "
                         f"give one row per point, ({block.shape[0]},) or ({block.shape[0]}, k)")
    return np.array([[np.sum(np.square(values)), values.size]], dtype=np.float64)


def _mean(total: np.ndarray) -> np.ndarray:
    squares, count = total
    if count == 0:
        raise InputError("mean_squared of no values: X holds no points (or the residual gives none)")
    return np.asarray(squares / count)


def mean_squared(kernel: Kernel, X: da.Array, residual: Callable[..., Any], *args: da.Array) -> da.Array:
    """The mean over all points of ``residual(...) ** 2``, reduced chunk by chunk, lazily.

    Args:
        kernel: a compiled :class:`~symnet.Kernel` with the derivatives ``residual`` needs.
        X: points, as for :func:`evaluate`.
        residual: ``residual(X_chunk, result, *arg_chunks)`` called on the workers with a numpy
            chunk of points ``(n, d)``, the kernel's :class:`~symnet.KernelResult` for it and the
            matching chunks of ``args``; returns ``(n,)`` or ``(n, k)`` values.  It must pickle
            (lambdas and closures do, with cloudpickle) when a distributed cluster runs it.
        args: Dask arrays with one row per point (targets, a source term), rechunked to ``X``'s
            chunks if needed.

    Returns:
        a 0-d float64 Dask array: ``sum of squares / number of values``, each chunk's sum of
        squares taken in float64, then summed by Dask's tree reduction.  Per chunk only the
        kernel's result for that chunk is ever in memory.

    >>> import numpy as np, dask.array as da, symnet
    >>> net = symnet.Network.from_weights([np.full((2, 3), 0.5), np.ones((3, 1))], None, ["tanh", "linear"])
    >>> kernel = symnet.compile(net, ("value", "laplacian"), backend="numpy")
    >>> X = da.random.default_rng(0).uniform(-1, 1, (10_000, 2), chunks=(2_500, 2))
    >>> source = (X ** 2).sum(axis=1)                              # -laplacian(u) = |x|^2 on the points
    >>> loss = mean_squared(kernel, X, lambda P, r, f: r.laplacian[:, 0] + f, source)
    >>> local = kernel(X.compute()).laplacian[:, 0] + source.compute()
    >>> bool(np.isclose(loss.compute(), np.mean(local ** 2), rtol=1e-12))
    True
    """
    points = _points(kernel, X)
    if not callable(residual):
        raise InputError(f"residual must be a function (X_chunk, result, *arg_chunks) -> values, "
                         f"not {type(residual).__name__}")
    if points.shape[0] == 0:
        raise InputError("mean_squared of no values: X holds no points")
    pairs: list[Any] = []
    for number, extra in enumerate(args):
        if not isinstance(extra, da.Array):
            raise InputError(f"args[{number}] must be a Dask array with one row per point, not {type(extra).__name__}"
                             " (close over constants in residual instead)")
        if extra.ndim == 0 or extra.shape[0] != points.shape[0]:
            raise ShapeError(f"args[{number}] has shape {extra.shape}; it needs one row per point ({points.shape[0]})")
        extra = extra.rechunk({0: points.chunks[0], **{axis: -1 for axis in range(1, extra.ndim)}})
        pairs += [extra, "i" + "abcdefgh"[:extra.ndim - 1]]
    node = _node(kernel)
    token = dask.base.tokenize(node, points, residual, *args)
    partial = da.blockwise(_squares_block, "ik", points, "ij", node, None, residual, None, *pairs,
                           new_axes={"k": 2}, adjust_chunks={"i": 1}, concatenate=True,
                           meta=np.empty((0, 0), np.float64), name=f"symnet-squares-{token}")
    total = partial.sum(axis=0)
    return total.map_blocks(_mean, drop_axis=0, meta=np.empty((), np.float64), name=f"symnet-mean-squared-{token}")


# --- verify ------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class DaskVerifyReport(VerifyReport):
    """A :class:`~symnet.VerifyReport` of points sampled from a Dask array.

    Attributes (besides the report's own):
        rows: ``(n,)`` the row in ``X`` of each point of ``report.X``.
        blocks: ``(n,)`` the chunk of ``X`` it was drawn from.
    """

    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    blocks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def message(self) -> str:
        text = super().message()
        failures = self.failures
        if failures and failures[0].point >= 0:
            point = failures[0].point
            text += f" [point {point} is row {self.rows[point]} of X, in chunk {self.blocks[point]}]"
        return text


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def verify(kernel: Kernel, X: da.Array, *, chunks: int = 4, points_per_chunk: int = 8, seed: int = 0,
           richardson: bool = False, raise_on_failure: bool = False) -> DaskVerifyReport:
    """:func:`symnet.verify` at points sampled from random chunks of a Dask array.

    ``chunks`` chunks of ``X`` are drawn at random (``numpy.random.default_rng(seed)``) and
    ``points_per_chunk`` points from each; only those chunks of ``X`` are computed.  The exact
    side is ``kernel`` evaluated on the sampled points by the current Dask scheduler (on a
    cluster: the kernel as the workers rebuilt it); back-propagation and finite differences of
    ``kernel.net`` run here.  The kernel's value is compared, and its Jacobian and Hessian
    where it computes them.

    Args:
        kernel: a float64 :class:`~symnet.Kernel` that computes ``"value"`` (verify's
            tolerances are float64 round-off bounds).
        X: points, as for :func:`evaluate`, with known chunk sizes.
        chunks, points_per_chunk, seed: the sample.
        richardson, raise_on_failure: as for :func:`symnet.verify`.

    Returns:
        a :class:`DaskVerifyReport`; ``report.rows[i]`` is the row of ``X`` of ``report.X[i]``.

    >>> import numpy as np, dask.array as da, symnet
    >>> net = symnet.Network.from_weights([np.full((2, 3), 0.5), np.ones((3, 1))], None, ["tanh", "linear"])
    >>> kernel = symnet.compile(net, ("value", "jacobian", "hessian"), backend="numpy")
    >>> X = da.random.default_rng(0).standard_normal((10_000, 2), chunks=(1_000, 2))
    >>> report = verify(kernel, X, chunks=3, points_per_chunk=4)
    >>> report.ok, report.n_points, sorted(set(report.blocks.tolist()))
    (True, 12, [5, 6, 9])
    """
    points = _points(kernel, X)
    if kernel.dtype != np.dtype(np.float64):
        raise InputError(f"verify compares against float64 round-off bounds; this kernel computes in {kernel.dtype}: "
                         "verify symnet.compile(kernel.net, ..., dtype=numpy.float64) instead")
    available = _outputs(kernel)
    if "value" not in available:
        raise InputError("verify compares the value too: compile the kernel with derivatives=('value', ...)")
    wanted = tuple(name for name in ("jacobian", "hessian") if name in available)
    n_chunks, per_chunk = _count("chunks", chunks), _count("points_per_chunk", points_per_chunk)
    sizes = points.chunks[0]
    if any(math.isnan(size) for size in sizes):
        raise InputError("X has chunks of unknown size: call X.compute_chunk_sizes() first")
    filled = [number for number, size in enumerate(sizes) if size > 0]
    if not filled:
        raise InputError("X holds no points")
    rng = np.random.default_rng(seed)
    starts = np.cumsum((0, *sizes))
    rows, blocks = [], []
    for block in np.sort(rng.choice(filled, size=min(n_chunks, len(filled)), replace=False)):
        within = np.sort(rng.choice(sizes[block], size=min(per_chunk, sizes[block]), replace=False))
        rows.append(starts[block] + within)
        blocks.append(np.full(len(within), block))
    row_index = np.concatenate(rows)
    sample = points[row_index]
    lazy = evaluate(kernel, sample).as_dict()
    sampled, *values = dask.compute(sample, *(lazy[name] for name in ("value", *wanted)))
    exact = KernelResult(dict(zip(("value", *wanted), values)))

    def evaluated_by_dask(P: np.ndarray) -> KernelResult:
        if np.shape(P) != sampled.shape or not np.array_equal(P, sampled, equal_nan=True):
            raise InputError("verify asked for points other than those sampled")  # pragma: no cover - a bug guard
        return exact

    evaluated_by_dask.__name__ = "evaluated by Dask"  # verify names the exact side by it
    report = _verify(kernel.net, sampled, wanted, kernel=evaluated_by_dask, richardson=richardson)
    report = DaskVerifyReport(**{f.name: getattr(report, f.name) for f in fields(VerifyReport)},
                              rows=row_index, blocks=np.concatenate(blocks))
    if raise_on_failure and not report.ok:
        raise VerificationError(report.message() + "\n" + repr(report), report)
    return report
