"""What this machine can do: thread settings, CPU, library versions, matmul GFLOP/s, bandwidth.

:func:`configure_threads` must run before numpy, JAX or PyTorch is imported (``run.py`` calls
it first), which is why this module imports numpy only inside its functions.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

#: Environment variables that fix each framework's thread count; ``{n}`` is the core count.
THREAD_ENV = {
    "OMP_NUM_THREADS": "{n}",  # OpenBLAS (numpy), PyTorch's OpenMP, numba's OpenMP layer
    "OPENBLAS_NUM_THREADS": "{n}",
    "MKL_NUM_THREADS": "{n}",
    "NUMBA_NUM_THREADS": "{n}",  # symnet's numba kernels
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={n}",  # JAX
}

#: Packages whose versions the results header names.
PACKAGES = ("numpy", "scipy", "sympy", "numba", "jax", "jaxlib", "torch", "casadi", "folx", "symnet")


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def configure_threads() -> dict[str, str]:
    """Set every framework to use all :func:`cores` (values already set are kept); return them.

    PyTorch reads its count at run time: the torch comparator calls ``torch.set_num_threads``.
    """
    n = cores()
    for name, value in THREAD_ENV.items():
        os.environ.setdefault(name, value.format(n=n))
    return {name: os.environ[name] for name in (*THREAD_ENV, "OPENBLAS_CORETYPE") if name in os.environ}


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    """Installed version of each of :data:`PACKAGES` (``"not installed"`` when missing)."""
    found = {}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def timings(task: Callable[[], object], repeats: int) -> list[float]:
    """Wall times of ``repeats`` calls of ``task`` after one warm-up call, in seconds."""
    task()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        task()
        times.append(time.perf_counter() - start)
    return times


def best_time(task: Callable[[], object], repeats: int) -> float:
    """Shortest of ``repeats`` timed calls after one warm-up call, in seconds."""
    return min(timings(task, repeats))


def median_time(task: Callable[[], object], repeats: int) -> float:
    """Median of ``repeats`` timed calls after one warm-up call, in seconds."""
    return statistics.median(timings(task, repeats))


def matmul_gflops(width: int, repeats: int = 10) -> float:
    """float64 numpy GFLOP/s of ``(rows, width) @ (width, width)``: a batch through one layer.

    ``rows`` (at least 65536) makes each call about 2^28 FLOPs, long enough to time steadily.
    """
    import numpy as np

    rows = max(1 << 16, (1 << 27) // (width * width))
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((rows, width)), rng.standard_normal((width, width))
    out = np.empty((rows, width))
    seconds = best_time(lambda: np.matmul(a, b, out=out), repeats)
    return 2.0 * rows * width * width / seconds / 1e9


def memory_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """GB/s of a large numpy copy, counting the bytes read and the bytes written."""
    import numpy as np

    src = np.ones(megabytes * (1 << 20) // 8)
    dst = np.empty_like(src)
    seconds = best_time(lambda: np.copyto(dst, src), repeats)
    return 2.0 * src.nbytes / seconds / 1e9


_NUMBA_PROBE = """
import time, numpy
start = time.perf_counter()
import numba
imported = time.perf_counter()
from trivial import f
f(numpy.zeros(1))
print(imported - start, time.perf_counter() - imported)
"""


def numba_cache_floor() -> tuple[float, float]:
    """Seconds a fresh interpreter needs to import numba and to run a trivial ``@njit(cache=True)``
    function from numba's disk cache: the floor under any disk-cache hit of a numba kernel."""
    with tempfile.TemporaryDirectory(prefix="symnet-numba-floor-") as folder:
        with open(os.path.join(folder, "trivial.py"), "w") as module:
            module.write("import numba\n\n@numba.njit(cache=True)\ndef f(x):\n    return x[0] + 1.0\n")
        runs = [subprocess.run([sys.executable, "-c", _NUMBA_PROBE], cwd=folder, capture_output=True, text=True,
                               check=True).stdout.split() for _ in range(4)]
    imports, calls = zip(*[(float(a), float(b)) for a, b in runs[1:]])  # the first run fills the cache
    return sorted(imports)[1], sorted(calls)[1]


def describe(gflops: dict[int, float], bandwidth: float, threads: dict[str, str]) -> list[str]:
    """Markdown lines that name the machine, the versions and the measured limits."""
    lines = [
        f"- machine: {cpu_model()}, {cores()} cores, {platform.machine()}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        "- versions: " + ", ".join(f"{name} {version}" for name, version in versions().items()),
        "- threads: " + ", ".join(f"`{name}={value}`" for name, value in threads.items())
        + "; PyTorch: `torch.set_num_threads(" + str(cores()) + ")`",
        "- float64 matmul `(rows, w) @ (w, w)`, best of 10: "
        + ", ".join(f"w={w}: {value:.1f} GFLOP/s" for w, value in gflops.items()),
        f"- memory bandwidth (256 MiB numpy copy, read + write): {bandwidth:.1f} GB/s",
    ]
    if hasattr(os, "getloadavg"):
        lines.append("- load average at start (1, 5, 15 min): "
                     + ", ".join(f"{v:.2f}" for v in os.getloadavg())
                     + " (other processes on these cores make multi-threaded timings noisy)")
    if "OPENBLAS_CORETYPE" in threads:
        lines.append(f"- note: `OPENBLAS_CORETYPE={threads['OPENBLAS_CORETYPE']}` is set in the environment "
                     "(OpenBLAS uses that core's kernels)")
    return lines

