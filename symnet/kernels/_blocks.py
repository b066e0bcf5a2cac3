"""Buffers kept between calls, and elementwise passes in cache-sized blocks, for the loss-gradient kernels.

Training calls a loss gradient thousands of times on the same batch; once the matrix
products are BLAS's, memory is what costs, measured on the 2-core machine of
docs/training.md with the 2-64-64-1 tanh net of 10,000 points (the figures are in
benchmarks/RESULTS.md, "Measurements behind design choices in the code"):

* fresh memory: the operating system maps and zero-fills every new page on first touch;
  writing fresh result arrays cost more than the arithmetic, so :class:`Workspace` keeps the
  arrays from one call to the next;
* passes over memory: an activation pass writes several scratch arrays per element (``tanh``
  with its first two derivatives takes nine numpy operations); over blocks of
  :data:`BLOCK_BYTES` per array the scratch is reused while it is still in the caches (that
  pass ran faster in blocks than on whole arrays; smaller blocks lose more to numpy's cost
  per call than they gain).  The kernels also go through the
  points in chunks of :data:`CHUNK_BYTES` of arrays, so that their buffers stay that size
  for any batch.

Threads inside one pass do not pay here: numpy's ufuncs release the GIL, but spreading the
blocks of a pass over both cores made the kernels slower (waking a helper thread per
pass, and the cores busy with BLAS's own threads right after each product).  Whole chunks of
points on separate threads, with BLAS on one thread, do pay (:mod:`symnet.kernels._threads`).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from math import prod
from typing import Any, Iterator

import numpy as np

__all__ = ["BLOCK_BYTES", "CHUNK_BYTES", "PerThread", "Workspace", "back_through", "block_rows", "blocks", "chunk_rows"]

#: Bytes of one array's block in an elementwise pass (its scratch arrays are as large).
BLOCK_BYTES = 2**19
#: Bytes of per-point arrays (activations, slopes, adjoints) that one chunk of points may use.
CHUNK_BYTES = 16 * 2**20


def block_rows(width: int) -> int:
    """Rows per block of an elementwise pass over float64 arrays ``width`` wide."""
    return max(8, BLOCK_BYTES // (8 * max(1, width)))


def chunk_rows(bytes_per_point: int) -> int:
    """Points per chunk when each point needs ``bytes_per_point`` of arrays."""
    return max(8, CHUNK_BYTES // max(1, bytes_per_point))


class Workspace:
    """Arrays kept from one evaluation to the next, by name and shape.

    Large fresh arrays come from the operating system as zero-filled pages, one fault per
    page on first touch; reusing them saves that.  An array handed out is valid until the
    next request of the same name and shape: one evaluation at a time.
    """

    def __init__(self) -> None:
        self._arrays: dict[tuple[Any, ...], np.ndarray] = {}
        #: objects made from these arrays (views of them), kept by their maker's key: one evaluation at a time
        self.memo: dict[Any, Any] = {}

    def __call__(self, name: Any, shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
        key = (name, shape, np.dtype(dtype))
        array = self._arrays.get(key)
        if array is None:
            array = self._arrays[key] = np.empty(shape, dtype)
        return array

    def part(self, name: Any, shape: tuple[int, ...], size: int, dtype: Any = np.float64) -> np.ndarray:
        """A C-contiguous ``shape`` at the start of the flat array ``name`` of ``size`` entries.

        One buffer serves every chunk of points up to its size, the last shorter one included.
        """
        return self(name, (size,), dtype)[:prod(shape)].reshape(shape)

    def grown(self, name: Any, shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
        """A C-contiguous ``shape`` at the start of the flat array ``name``, replaced by a larger one
        when it is too small: one buffer per name, as large as the largest request so far (chunks of
        any size, calls with any number of points, never a buffer per size).

        >>> space = Workspace()
        >>> a, b = space.grown("x", (2, 3)), space.grown("x", (1, 4))
        >>> bool(np.shares_memory(a, b)), space.grown("x", (3, 3)).shape
        (True, (3, 3))
        """
        size, key = prod(shape), ("grown", name, np.dtype(dtype))
        array = self._arrays.get(key)
        if array is None or array.size < size:
            array = self._arrays[key] = np.empty(size, dtype)
        return array[:size].reshape(shape)


class PerThread:
    """One :class:`Workspace` per calling thread, made on first use: threads may share a kernel."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self) -> Workspace:
        space = getattr(self._local, "space", None)
        if space is None:
            space = self._local.space = Workspace()
        return space

    @contextmanager
    def lease(self) -> Iterator[Workspace]:
        """This thread's :class:`Workspace` for one chunk's sweeps, or a fresh one while it is lent already.

        A chunk that calls back into user code (a loss given to ``value_and_grad``) may call the
        same kernel again on this thread; that inner call must not overwrite the arrays the
        outer chunk's reverse sweep still reads.

        >>> spaces = PerThread()
        >>> with spaces.lease() as outer, spaces.lease() as inner:
        ...     outer is spaces(), inner is spaces()
        (True, False)
        """
        local = self._local
        if getattr(local, "lent", False):
            yield Workspace()
            return
        local.lent = True
        try:
            yield self()
        finally:
            local.lent = False


def blocks(rows: int, width: int) -> Iterator[slice]:
    """Consecutive slices of ``rows`` rows, :data:`BLOCK_BYTES` of float64 arrays ``width`` wide each.

    >>> [(part.start, part.stop) for part in blocks(2500, 64)]
    [(0, 1024), (1024, 2048), (2048, 2500)]
    """
    step = block_rows(width)
    return (slice(start, min(rows, start + step)) for start in range(0, rows, step))


def back_through(G: np.ndarray, W: np.ndarray, product: np.ndarray, D: np.ndarray | None, out: np.ndarray,
                 share: np.ndarray | None = None) -> np.ndarray:
    """``product = G W^T``, then ``out = product * D + share`` (``D`` ``None``: ``out`` is ``product``).

    Backpropagation through a layer: from ``G = dL/dZ'`` of ``Z' = f(Z) W + b`` to
    ``dL/dZ = (G W^T) f'(Z)`` with ``D = f'(Z)`` (plus a ``share`` of ``dL/dZ`` from elsewhere).
    ``out`` may be ``D``.  For a one-unit ``W``, ``G W^T`` is an outer product: formed block by
    block, it is still in the cache when ``D`` and ``share`` are applied.  Returns ``out``.

    >>> G, W, D = np.array([[1.0], [2.0]]), np.array([[3.0], [4.0]]), np.full((2, 2), 0.5)
    >>> back_through(G, W, np.empty((2, 2)), D, np.empty((2, 2)), share=np.ones((2, 2)))
    array([[2.5, 3. ],
           [4. , 5. ]])
    """
    outer = W.shape[1] == 1
    if not outer:
        np.matmul(G, W.T, out=product)
    if outer or D is not None:
        for rows in blocks(*product.shape):
            if outer:
                np.multiply(G[rows], W[:, 0], out=product[rows])
            if D is not None:
                np.multiply(product[rows], D[rows], out=out[rows])
                if share is not None:
                    out[rows] += share[rows]
    return out if D is not None else product
