"""The compiled kernel: :class:`Kernel`, called on points, its results from a pool or ``out``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError, ShapeError
from ..network import Network
from ..program import MultiIndex
from . import _threads
from ._adjoint import AdjointPlan
from ._architecture import architecture, weight_arrays
from ._layered import LayeredPlan
from ._pool import OutputPool
from ._progress import Progress, ProgressArg, pieces
from ._result import KernelResult, result_shape

#: Points one call of a numba expression kernel evaluates at most, times the lines of its
#: source: a batch goes through in pieces of about this much work, so that Ctrl-C
#: (``KeyboardInterrupt``, which Python handles between calls, never inside compiled code) is
#: honoured within a fraction of a second, whatever the batch size.  The results are the same
#: as in one call: every point is computed on its own.
_INTERRUPT_WORK = 1 << 24
_WORKQUEUE_LOCK = threading.Lock()


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
            ``strategy="auto"`` weighed (the size against :data:`symnet.kernels.EXPRESSION_LIMIT`, a request
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
        arrays = self._pool.arrays({name: result_shape(name, n, m, d) for name in self._outputs}, self.dtype) \
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
        if architecture(net) != architecture(self.net):
            raise ShapeError(
                f"the kernel was compiled for {self.net!r}; {net!r} has another architecture: use symnet.compile"
            )
        return Kernel(net, self.derivatives, self.backend, self.dtype, self.parallel, self.source, self.strategy,
                      self.loaded_from_disk, 0.0, self._fn, weight_arrays(net, self.dtype), self._outputs, self._chunk,
                      self._plan, self._partials, self._pool, self.strategy_reason)

    def __getattr__(self, name: str) -> Any:
        # Dask is an optional layer on top (symnet.dask.evaluate): a method here would import it
        # upward (issue 16). An old call is told where it went.
        if name == "map_blocks":
            raise AttributeError("kernel.map_blocks(X) is now symnet.dask.evaluate(kernel, X) (import symnet.dask; "
                                 "needs the symnet[dask] extra)")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled code does not pickle: the receiver compiles again from the network (its
        # weights included, as with_weights left them) and the options.  compile is keyed by
        # architecture and options, never weights, so that process's memo or its own disk cache
        # answers it.  A kernel built with cache=False arrives with cache=True (not recorded).
        from . import _rebuild  # the package's compile: imported on use, as unpickling calls it

        return (_rebuild, (self.net, self.derivatives, self.backend, self.dtype, self.parallel, True, self.strategy,
                           self.schedule or "auto", self.strategy_reason))

    def __repr__(self) -> str:
        return (f"Kernel({self.net!r}, derivatives={self.derivatives}, backend={self.backend!r}, "
                f"dtype={self.dtype.name}, strategy={self.strategy!r})")


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
        shape = result_shape(name, n, m, d)
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
