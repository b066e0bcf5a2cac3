"""How long building closed forms and derivative programs takes (the figures in the README).

Run:  python benchmarks/build_time.py      (median of 3 runs each, fresh SymPy cache per run)
"""

import platform
import statistics
import time

import numpy as np
import sympy

import symnet
from symnet.program import build, multi_indices


def net(sizes, activation="tanh", seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(a, b)) / np.sqrt(a) for a, b in zip(sizes, sizes[1:])]
    biases = [rng.normal(size=b) * 0.1 for b in sizes[1:]]
    return symnet.Network.from_weights(weights, biases, [activation] * (len(sizes) - 2) + ["linear"])


def median_time(task, repeats=3):
    times = []
    for _ in range(repeats):
        sympy.core.cache.clear_cache()
        start = time.perf_counter()
        task()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    cases = [
        ("closed form of a 1-32-32-1 tanh net (numeric weights)", lambda: net([1, 32, 32, 1]).expr),
        ("its exact Hessian, flat closed form", lambda: symnet.hessian(net([1, 32, 32, 1]))),
        ("gradient + Hessian + Laplacian programs of a 3-16-16-1 tanh net",
         lambda: build(net([3, 16, 16, 1]), multi_indices(3, 2))),
        ("Hessian of a symbolic 1-12-12-1 tanh net, flat", lambda: symnet.hessian(
            symnet.Network.symbolic([1, 12, 12, 1], ["tanh", "tanh", "linear"]))),
    ]
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"SymPy {sympy.__version__}")
    print("| task | median time |\n|---|---|")
    for title, task in cases:
        print(f"| {title} | {median_time(task):.2f} s |", flush=True)


if __name__ == "__main__":
    main()
