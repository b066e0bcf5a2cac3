"""Progress of a long kernel evaluation: a line on stderr, or the caller's own callback.

``kernel(X, progress=True)`` prints ``symnet: 42% of 10,000,000 points, 3.1 s, ~4.3 s left``,
rewritten in place at most twice a second, and a last line when done;
``progress=callback`` calls ``callback(done, total)`` after every piece instead.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Union

#: What ``kernel(X, progress=...)`` accepts.
ProgressArg = Union[bool, Callable[[int, int], object], None]

#: Seconds between two printed updates.
INTERVAL = 0.5


class Progress:
    """Reports ``done`` out of ``total`` points.

    >>> import io
    >>> seen = []
    >>> report = Progress(10, lambda done, total: seen.append((done, total)))
    >>> report(4); report(10)
    >>> seen
    [(4, 10), (10, 10)]
    >>> stream = io.StringIO()
    >>> printer = Progress(2_000, True, stream=stream)
    >>> printer(2_000)
    >>> stream.getvalue().strip().startswith("symnet: 100% of 2,000 points")
    True
    """

    def __init__(self, total: int, progress: ProgressArg, stream=None) -> None:
        self.total = total
        self._callback = progress if callable(progress) else None
        self._print = progress is True
        self._stream = stream if stream is not None else sys.stderr
        self._start = self._last = time.perf_counter()

    @property
    def active(self) -> bool:
        return self._callback is not None or self._print

    def __call__(self, done: int) -> None:
        if self._callback is not None:
            self._callback(done, self.total)
        if not self._print:
            return
        now = time.perf_counter()
        finished = done >= self.total
        if not finished and now - self._last < INTERVAL:
            return
        self._last = now
        elapsed = now - self._start
        line = f"symnet: {100 * done // max(1, self.total):3d}% of {self.total:,} points, {elapsed:.1f} s"
        if 0 < done < self.total:
            line += f", ~{elapsed * (self.total - done) / done:.1f} s left"
        self._stream.write(f"\r{line}" + ("\n" if finished else ""))
        self._stream.flush()


def pieces(n: int, count: int = 100, smallest: int = 65_536) -> list[tuple[int, int]]:
    """``(start, stop)`` ranges splitting ``n`` points into about ``count`` pieces of at least ``smallest``."""
    step = max(smallest, -(-n // count))
    return [(start, min(n, start + step)) for start in range(0, n, step)]
