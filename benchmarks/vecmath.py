"""symnet.kernels._vecmath's functions in a vectorised numba loop against numpy's ufuncs, ns per element.

The passes of the layered strategy call ``_vecmath`` inside their loops over a point's units;
before it they called numpy's ufuncs into scratch arrays.  This times both ways on 20,000
float64 elements (a chunk's row block, in cache), taking turns, medians of ``--rounds``
rounds of 200 calls each.  Run:

    python benchmarks/vecmath.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np

from symnet.kernels import _vecmath


@numba.njit(error_model="numpy", fastmath={"contract"})
def _tanh(x, out, _):
    for i in range(x.shape[0]):
        out[i] = _vecmath.tanh(x[i])


@numba.njit(error_model="numpy", fastmath={"contract"})
def _exp(x, out, _):
    for i in range(x.shape[0]):
        out[i] = _vecmath.exp(x[i])


@numba.njit(error_model="numpy", fastmath={"contract"})
def _sin_cos(x, s, c):
    for i in range(x.shape[0]):
        s[i], c[i] = _vecmath.sin_cos(x[i])


CASES = {  # name -> (_vecmath's loop, numpy's ufuncs, the points' range)
    "tanh": (_tanh, lambda x, out, _: np.tanh(x, out=out), 5.0),
    "exp": (_exp, lambda x, out, _: np.exp(x, out=out), 50.0),
    "sin and cos": (_sin_cos, lambda x, s, c: (np.sin(x, out=s), np.cos(x, out=c)), 10.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import platform

    from machine import cores, cpu_model

    print(f"- machine: {cpu_model()}, {cores()} cores, Python {platform.python_version()}, numpy {np.__version__}")
    n, calls = 20_000, 200
    for name, (loop, ufuncs, scale) in CASES.items():
        x = np.random.default_rng(0).uniform(-scale, scale, n)
        a, b = np.empty(n), np.empty(n)
        times: dict[str, list[float]] = {"_vecmath": [], "numpy": []}
        for _ in range(args.rounds):
            for label, f in (("_vecmath", loop), ("numpy", ufuncs)):
                f(x, a, b)
                start = time.perf_counter()
                for _ in range(calls):
                    f(x, a, b)
                times[label].append((time.perf_counter() - start) / calls / n * 1e9)
        mine, theirs = statistics.median(times["_vecmath"]), statistics.median(times["numpy"])
        print(f"{name}: _vecmath {mine:.2f} ns per element, numpy {theirs:.2f} ns, ratio {theirs / mine:.1f}",
              flush=True)


if __name__ == "__main__":
    main()
