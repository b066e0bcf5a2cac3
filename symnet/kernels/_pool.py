"""Recycled result memory: a kernel called again reuses the arrays its caller has dropped.

Fresh memory is expensive to write the first time: the operating system maps and zeroes
every page on first touch, and for small networks that costs more than the arithmetic.
Measured on the 2-core machine of ``benchmarks/RESULTS.md`` with a 1-1-1 net (value,
gradient and Hessian of many points): the parallel kernel runs several times faster into
memory that was written before than into fresh memory, where two threads take page faults
at once (the figures are in benchmarks/RESULTS.md, "Measurements behind design choices in
the code").  numpy's own temporaries dodge this because ``malloc`` recycles freed
blocks; result arrays handed to the caller cannot, since they are freed (if ever) after the
next call has allocated.

:class:`OutputPool` keeps the blocks of a few recent calls.  A block is handed out again only
when no array of its last result is alive any more (its reference count says so, under a
lock, so two threads never share one); otherwise a new block is allocated.  Arrays a caller
keeps are therefore never overwritten.  Blocks below :data:`MIN_BYTES` are not pooled
(allocating them is cheap), a pool holds at most :data:`KEEP` blocks and :data:`MAX_BYTES`;
:meth:`OutputPool.clear` gives the memory back.
"""

from __future__ import annotations

import sys
import threading
from math import prod

import numpy as np

#: Results smaller than this are allocated fresh: their pages are few.
MIN_BYTES = 1 << 20
#: A pool holds at most this many bytes: results above ``MAX_BYTES / KEEP`` are not pooled.
MAX_BYTES = 256 << 20
#: Blocks kept per pool: two covers a caller holding the previous result while asking for the next.
KEEP = 2
_ALIGN = 64  # bytes: a cache line, so each array starts aligned for SIMD loads


def _references(block: np.ndarray) -> int:
    return sys.getrefcount(block)


def _idle_references() -> int:
    """The count :func:`_references` reports for a block referenced only by a pool's list.

    Measured rather than assumed: how CPython counts references to function arguments
    differs between versions.
    """
    blocks = [np.empty(1, np.uint8)]
    return _references(blocks[0])


_IDLE = _idle_references()


class OutputPool:
    """Result arrays for a kernel, reusing memory whose previous result nobody holds.

    >>> pool = OutputPool()
    >>> first = pool.arrays({"value": (1 << 18, 1)}, np.dtype(np.float64))
    >>> address = first["value"].ctypes.data
    >>> kept = pool.arrays({"value": (1 << 18, 1)}, np.dtype(np.float64))  # first is alive: new memory
    >>> kept["value"].ctypes.data != address
    True
    >>> del first
    >>> pool.arrays({"value": (1 << 18, 1)}, np.dtype(np.float64))["value"].ctypes.data == address
    True
    """

    def __init__(self) -> None:
        self._blocks: list[np.ndarray] = []
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes of memory the pool holds (in use by callers or free for reuse)."""
        with self._lock:
            return sum(block.nbytes for block in self._blocks)

    def clear(self) -> None:
        """Forget every block; memory no caller holds goes back to the system."""
        with self._lock:
            self._blocks.clear()

    def arrays(self, shapes: dict[str, tuple[int, ...]], dtype: np.dtype) -> dict[str, np.ndarray]:
        """Uninitialised C-contiguous arrays of these shapes, in one block of memory."""
        sizes = [prod(shape) * dtype.itemsize for shape in shapes.values()]
        offsets, total = [], 0
        for size in sizes:
            offsets.append(total)
            total += -(-size // _ALIGN) * _ALIGN
        if total < MIN_BYTES or total > MAX_BYTES // KEEP:
            return {name: np.empty(shape, dtype) for name, shape in shapes.items()}
        with self._lock:
            block = self._claim(total)
            return {name: block[offset:offset + size].view(dtype).reshape(shape)
                    for (name, shape), offset, size in zip(shapes.items(), offsets, sizes)}

    def _claim(self, total: int) -> np.ndarray:
        blocks = self._blocks
        for index in reversed(range(len(blocks))):  # the most recently used is likeliest still in cache
            if blocks[index].nbytes == total and _references(blocks[index]) == _IDLE:
                blocks.append(blocks.pop(index))
                return blocks[-1]
        # The block owns its memory, so every array cut from it references it (numpy's .base).
        block = np.empty(total, np.uint8)
        blocks.append(block)
        while len(blocks) > KEEP:
            idle = [i for i in range(len(blocks) - 1) if _references(blocks[i]) == _IDLE]
            # Forget an idle block first; else the oldest held one (freed when its caller drops it).
            del blocks[idle[0] if idle else 0]
        return block
