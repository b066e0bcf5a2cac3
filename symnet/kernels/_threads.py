"""A batch's chunks on several threads at once, with BLAS on one thread meanwhile.

The layered kernels go through the points in chunks (:mod:`symnet.kernels._layered`).  Each
chunk is a few matrix products, which BLAS spreads over the cores, and elementwise passes
(numpy's ufuncs and a numba loop), which run on one core.  Running whole chunks on every
core instead, each product on a single BLAS thread, keeps all cores busy through the passes
too.  Measured on the 2-core machine of docs/kernels.md with the benchmark's nets (value and
derivatives; ``parallel=False`` against ``parallel=True``, ``python benchmarks/threads.py``):
every net ran faster with ``parallel=True``, most for the small nets.  Without the BLAS
limit the threads oversubscribe the cores: slower than one thread.  The figures are in
benchmarks/RESULTS.md, "Measurements behind design choices in the code".

numpy's BLAS (OpenBLAS in numpy's wheels) keeps one process-wide thread pool and one
process-wide thread count, so the limit is process-wide too: while a parallel layered kernel
runs, numpy's products in *other* threads also run on one BLAS thread; the count comes back
when the last concurrent kernel call returns.  (threadpoolctl's limits are not used: they
only act in the first thread that set one, usually the main thread.)  Where numpy's BLAS is
not OpenBLAS or MKL, kernels run their chunks one after another in the calling thread, BLAS
keeping its threads, and say so: ``kernel.threads == 1``.  Kernels compiled with
``parallel=False`` always run in the calling thread (use those inside Dask workers, which
bring their own threads).
"""

from __future__ import annotations

import ctypes
import contextlib
import os
import queue
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Callable, Iterator

import numpy as np

__all__ = ["blas_on_one_thread", "numba_threads", "over_chunks", "sum_over_chunks", "thread_count"]

#: A batch is split across threads only into ranges of at least this many points: for fewer,
#: handing work to a thread costs more than it saves (benchmarks/RESULTS.md, "Measurements
#: behind design choices in the code").
SMALLEST_SHARE = 1024

_LOCK = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_users = 0  # kernel calls running with BLAS limited right now
_saved = 0  # BLAS's thread count before the first of them


@lru_cache(maxsize=1)
def _blas_thread_count() -> tuple[Callable[[], int], Callable[[int], Any]] | None:
    """``(get, set)`` of numpy's BLAS's thread count, or ``None`` where it is not OpenBLAS or MKL."""
    from threadpoolctl import ThreadpoolController  # a dependency of symnet

    with warnings.catch_warnings():  # threadpoolctl warns about OpenMP runtimes it finds loaded
        warnings.simplefilter("ignore")
        libraries = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    package = os.path.dirname(np.__file__)  # wheels keep their BLAS in numpy.libs, beside the package
    own = [lib for lib in libraries if lib.filepath.startswith(package)] or libraries
    if len(own) != 1:
        return None
    names = [(f"{prefix}openblas_get_num_threads{suffix}", f"{prefix}openblas_set_num_threads{suffix}")
             for prefix in ("", "scipy_") for suffix in ("", "64_", "_64")]
    for get_name, set_name in names + [("MKL_Get_Max_Threads", "MKL_Set_Num_Threads")]:
        get, set_ = getattr(own[0].dynlib, get_name, None), getattr(own[0].dynlib, set_name, None)
        if get is not None and set_ is not None:
            get.argtypes, get.restype = [], ctypes.c_int
            set_.argtypes, set_.restype = [ctypes.c_int], None
            return get, set_
    return None


def numba_threads() -> int:
    """numba's thread count: ``NUMBA_NUM_THREADS``, else the number of CPUs (1 without numba)."""
    try:
        import numba
    except ImportError:  # the numpy backend never runs in parallel
        return 1
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def thread_count(parallel: bool = True) -> int:
    """Threads a layered kernel (or loss gradient) spreads its chunks over: :func:`numba_threads`
    when ``parallel``, and 1 otherwise or where numpy's BLAS's thread count cannot be set (see
    the module's docstring)."""
    return numba_threads() if parallel and _blas_thread_count() is not None else 1


@contextmanager
def _blas_on_one_thread() -> Iterator[None]:
    """numpy's BLAS on one thread inside; its count comes back when the last concurrent user leaves."""
    global _users, _saved
    get, set_ = _blas_thread_count()  # type: ignore[misc]  # only called where it is not None
    with _LOCK:
        if _users == 0:
            _saved = get()
            set_(1)
        _users += 1
    try:
        yield
    finally:
        with _LOCK:
            _users -= 1
            if _users == 0:
                set_(_saved)


def blas_on_one_thread() -> contextlib.AbstractContextManager[Any]:
    """numpy's BLAS on one thread inside, where its count can be set (a no-op elsewhere).

    For work that multiplies many small blocks, one chunk of points at a time: BLAS's own
    threads cost more than they give on matrices of a few hundred rows, and on a busy machine
    far more (a 1080 x 64 by 64 x 64 product took 0.22 ms on one thread and 2.7 ms on two
    when another process was running; benchmarks/RESULTS.md has the measurement).
    """
    return _blas_on_one_thread() if _blas_thread_count() is not None else contextlib.nullcontext()


def _shared_pool(workers: int) -> ThreadPoolExecutor:
    global _pool
    with _LOCK:
        if _pool is None or _pool._max_workers < workers:  # noqa: SLF001 - grows when asked for more
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="symnet")
        return _pool


def over_chunks(n: int, chunk: int, work: Callable[[int, int], None], report: Callable[[int], None] | None = None,
                threads: int = 1, smallest_share: int = SMALLEST_SHARE) -> None:
    """Call ``work(start, stop)`` on consecutive ranges of at most ``chunk`` of ``n`` points.

    With ``threads > 1`` and enough points the ranges are shared out among the calling thread
    and ``threads - 1`` pool threads, numpy's BLAS on one thread meanwhile; ``work`` must be safe to run concurrently on
    distinct ranges.  ``report(done)`` is called from the calling thread only, between its own
    ranges and then as the others finish, the last time with ``n``.  The first exception raised by ``work`` stops the
    ranges not yet started and is raised here.

    >>> done = []
    >>> over_chunks(10, 4, lambda start, stop: done.append((start, stop)))
    >>> done
    [(0, 4), (4, 8), (8, 10)]
    """
    if n < 2 * smallest_share:
        threads = 1
    elif threads > 1:  # as many ranges for each thread, none over chunk, of nearly equal size
        count = -(-n // max(1, chunk))
        count = -(-count // threads) * threads
        chunk = -(-n // count)  # never more than chunk: callers size their buffers by it
    chunk = max(1, chunk)
    starts = range(0, n, chunk)
    if threads <= 1 or len(starts) < 2:
        for start in starts:
            work(start, min(n, start + chunk))
            if report is not None:
                report(min(n, start + chunk))
        return
    lock = threading.Lock()
    position = iter(starts)
    finished: queue.Queue[tuple[int, BaseException | None]] = queue.Queue()
    failed = threading.Event()

    done, error = 0, None

    def collect(block: bool) -> None:
        nonlocal done, error
        while done < n and error is None:
            try:
                size, error = finished.get(block=block)
            except queue.Empty:
                return
            done += size
            if report is not None and error is None:
                report(done)

    def participate(calling: bool = False) -> None:
        while not failed.is_set():
            with lock:
                start = next(position, None)
            if start is None:
                return
            stop = min(n, start + chunk)
            try:
                work(start, stop)
            except BaseException as exc:  # raised in the calling thread below
                failed.set()
                finished.put((0, exc))
                return
            finished.put((stop - start, None))
            if calling:  # progress between the calling thread's own ranges
                collect(block=False)

    with _blas_on_one_thread():
        helpers = [_shared_pool(threads - 1).submit(participate) for _ in range(min(threads, len(starts)) - 1)]
        try:
            participate(calling=True)
            collect(block=True)
        finally:
            failed.set()  # on an error here too (KeyboardInterrupt): no new ranges start
            for helper in helpers:
                if not helper.cancel():  # queued behind another call's ranges: not needed any more
                    helper.result()
    if error is not None:
        raise error


Sums = list[tuple[np.ndarray, ...]]


def sum_over_chunks(n: int, chunk: int, work: Callable[[int, int, Sums], float], like: Sums,
                    threads: int = 1, smallest_share: int = SMALLEST_SHARE) -> tuple[float, Sums]:
    """Sums over ranges of points, as :func:`over_chunks` runs them: ``(sum of work's values, arrays)``.

    ``work(start, stop, sums)`` adds its range's share into ``sums``, fresh zero arrays shaped
    like ``like``, and returns its share of a scalar.  The ranges' shares are added in the
    order of the points, not of the threads, so a call gives the same result every time.

    >>> total, [(counts,)] = sum_over_chunks(10, 4, lambda start, stop, sums: float(stop - start), [(np.zeros(1),)])
    >>> total, counts
    (10.0, array([0.]))
    """
    def zeros() -> Sums:
        return [tuple(np.zeros_like(array) for array in group) for group in like]

    shares: dict[int, tuple[float, Sums]] = {}

    def run(start: int, stop: int) -> None:
        sums = zeros()
        shares[start] = work(start, stop, sums), sums

    over_chunks(n, chunk, run, threads=threads, smallest_share=smallest_share)
    total, result = 0.0, zeros()
    for start in sorted(shares):
        value, sums = shares[start]
        total += value
        for group, share in zip(result, sums):
            for array, part in zip(group, share):
                array += part
    return total, result
