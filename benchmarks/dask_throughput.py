"""Throughput of ``symnet.dask.evaluate`` on a ``distributed.LocalCluster`` of 1 and 2 worker processes.

Value + gradient + Hessian at 10^7 points (``N`` below) of T4 (2-64-64-64-1 tanh: the layered
strategy) and T2 (2-2-2-1 sigmoid: the expression strategy, where ``parallel`` matters), best of two runs,
points chunked by 250,000.  Each worker has one thread; distributed starts worker processes
with ``OPENBLAS_NUM_THREADS=1`` (its default), and numba's own threads (``parallel=True``,
``NUMBA_NUM_THREADS`` = all cores) come on top, so both ``parallel`` settings are timed.  The
results stay on the workers (``persist``), as they would before a reduction.  The row
"in-process" is one ``kernel(X)`` call without Dask, every core used by numba and BLAS.

Run:  .venv/bin/python benchmarks/dask_throughput.py [N]   (prints the table, writes DASK_RESULTS.md)
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SYMNET_CACHE_DIR", tempfile.mkdtemp(prefix="symnet-dask-bench-"))  # workers inherit it

import numpy as np  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10**7  # a smaller N for a quick try
CHUNK = 250_000
REPEATS = 2
NETS_TIMED = ("T4", "T2")
DERIVATIVES = ("value", "jacobian", "hessian")
OUT = Path(__file__).with_name("DASK_RESULTS.md")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def timed_persist(client, kernel, X) -> float:
    """Seconds to evaluate every chunk of ``X`` and keep the results on the workers, printing progress.

    The clock stops when the last chunk's output is in worker memory (``as_completed``);
    a polling progress bar would round the time up to its interval.
    """
    import distributed
    import symnet.dask

    start = time.perf_counter()
    result = symnet.dask.evaluate(kernel, X).persist()
    futures = [f for array in result.as_dict().values() for f in distributed.futures_of(array)]
    done, shown = 0, start
    for _ in distributed.as_completed(futures):
        done += 1
        now = time.perf_counter()
        if now - shown >= 2 and done < len(futures):
            say(f"  {done / len(futures):4.0%} of {len(futures)} chunk outputs, {now - start:.1f} s")
            shown = now
    seconds = time.perf_counter() - start
    # The next run builds the same graph (same keys): it must not find these results still there.
    keys = [f.key for f in futures]
    client.cancel(futures, force=True)
    del result, futures
    while client.run_on_scheduler(lambda dask_scheduler: sum(k in dask_scheduler.tasks for k in keys)):
        time.sleep(0.05)
    return seconds


Row = tuple[str, str, bool, float, float]  # net, how, kernel parallel, best seconds, 1-min load before


def best_of(measure, label: str) -> tuple[float, float]:
    """Best of REPEATS timings of ``measure()`` and the 1-minute load average before the first."""
    load = os.getloadavg()[0]
    times = []
    for repeat in range(REPEATS):
        say(f"{label} (run {repeat + 1} of {REPEATS})")
        times.append(measure())
        say(f"  {times[-1]:.1f} s, {N / times[-1]:,.0f} points/s")
    return min(times), load


def cluster_rows(workers: int, kernels: dict) -> list[Row]:
    import dask.array as da
    import distributed
    import symnet.dask

    rows = []
    how = f"Dask, {workers} worker process{'es' if workers > 1 else ''} x 1 thread"
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        X = da.random.default_rng(1).standard_normal((N, 2), chunks=(CHUNK, 2)).persist()
        distributed.wait(X)
        for (name, parallel), kernel in kernels.items():
            # warm-up: every worker rebuilds the kernel (from the disk cache) before the clock starts
            symnet.dask.evaluate(kernel, X[: CHUNK * 2 * workers]).compute()
            label = f"{name}, {how}, parallel={parallel}: {N:,} points in {X.numblocks[0]} chunks"
            seconds, load = best_of(lambda: timed_persist(client, kernel, X), label)
            rows.append((name, how, parallel, seconds, load))
    return rows


def in_process(kernel, X: np.ndarray) -> float:
    kernel(X[:CHUNK])
    start = time.perf_counter()
    kernel(X, progress=True)
    seconds = time.perf_counter() - start
    kernel.release_memory()
    return seconds


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import dask
    import distributed
    from machine import cores, cpu_model, versions
    from nets import NETS

    import symnet

    load_start = os.getloadavg()
    started = time.perf_counter()
    kernels = {}
    for name in NETS_TIMED:
        net = NETS[name].symnet_network()
        for parallel in (True, False):
            kernels[(name, parallel)] = symnet.compile(net, DERIVATIVES, parallel=parallel)  # fills the disk cache
        say(f"{name}: {net!r}, strategy={kernels[(name, True)].strategy}")

    rows: list[Row] = []
    X = np.random.default_rng(1).standard_normal((N, 2))
    for name in NETS_TIMED:
        kernel = kernels[(name, True)]
        seconds, load = best_of(lambda: in_process(kernel, X), f"{name}, in-process, parallel=True: {N:,} points")
        rows.append((name, "in-process, no Dask (numba and BLAS on every core)", True, seconds, load))
    del X
    for workers in (1, 2):
        rows += cluster_rows(workers, kernels)
    load_end = os.getloadavg()

    one = {(name, parallel): s for name, how, parallel, s, _ in rows if how.startswith("Dask, 1 ")}
    titles = {name: f"{name} {NETS[name].title} ({kernels[(name, True)].strategy})" for name in NETS_TIMED}
    table = ["| net (strategy) | how | kernel `parallel` | seconds | points/s | speed-up vs 1 worker | load before |",
             "|---|---|---|---|---|---|---|"]
    for name, how, parallel, seconds, load in rows:
        ratio = f"{one[(name, parallel)] / seconds:.2f}" if how.startswith("Dask") else ""
        table.append(f"| {titles[name]} | {how} | {parallel} | {seconds:.2f} | {N / seconds:.3g} | {ratio} | {load:.2f} |")
    header = [
        "# symnet.dask throughput: 1 vs 2 worker processes",
        "",
        f"Value + gradient + Hessian at {N:,} points, chunks of {CHUNK:,} points, results kept on the workers "
        f"(`persist`); best of {REPEATS} timed runs per row after a warm-up. Command: "
        f"`.venv/bin/python benchmarks/dask_throughput.py` ({time.perf_counter() - started:.0f} s in all).",
        "",
        f"- machine: {cpu_model()}, {cores()} cores, {platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items() if k in ("numpy", "numba", "sympy", "symnet"))
        + f", dask {dask.__version__}, distributed {distributed.__version__}",
        "- workers: `LocalCluster(n_workers=1 or 2, threads_per_worker=1, processes=True)` on loopback; distributed "
        "starts them with `OPENBLAS_NUM_THREADS=1`; numba's threads (`parallel=True`) are not limited. The layered "
        "strategy's fused pass is serial whatever `parallel` says (its threads are BLAS's), so for T4 the two "
        "`parallel` rows time the same code",
        "- load average (1, 5, 15 min) at start: " + ", ".join(f"{v:.2f}" for v in load_start)
        + "; at end: " + ", ".join(f"{v:.2f}" for v in load_end)
        + "; column \"load before\": the 1-minute load average before each row. Other processes on these two "
        "cores slow every row they overlap",
        "",
    ]
    text = "\n".join(header + table) + "\n"
    OUT.write_text(text)
    print(text, flush=True)


if __name__ == "__main__":
    main()
