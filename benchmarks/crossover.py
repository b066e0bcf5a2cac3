"""Crossover between the expression and layered strategies (the table in docs/kernels.md).

Compile and evaluation time of value + gradient + Hessian of 2-h-h-1 tanh nets at 1e5
points, numba backend, each compile from an empty disk cache; with ``--graphs``, of residual
graphs ``symnet.graph.zoo.resnet_mlp(2, h, blocks=1)`` instead (the graph crossover).

Run:  .venv/bin/python benchmarks/crossover.py [--graphs]
"""

import sys

import os
import tempfile
import time

import numpy as np

os.environ["SYMNET_CACHE_DIR"] = tempfile.mkdtemp(prefix="symnet-crossover-")

import symnet  # noqa: E402


def tanh_net(sizes: list[int], seed: int = 0) -> symnet.Network:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(a, b)) / np.sqrt(a) for a, b in zip(sizes, sizes[1:])]
    biases = [rng.normal(size=b) * 0.1 for b in sizes[1:]]
    return symnet.Network.from_weights(weights, biases, ["tanh"] * (len(sizes) - 2) + ["linear"])


def main(n_points: int = 100_000) -> None:
    X = np.random.default_rng(1).uniform(-1, 1, (n_points, 2))
    print("| net | weight*stream terms | expression: compile s | eval s | layered: compile s | eval s |")
    print("|---|---|---|---|---|---|", flush=True)
    graphs = "--graphs" in sys.argv
    from symnet.kernels._strategy import _graph_terms
    from symnet.requests import parse
    from symnet.graph import zoo

    for h in (2, 3, 4, 6, 8):
        sizes = [2, h, h, 1]
        net = zoo.resnet_mlp(2, h, 1, 1) if graphs else tanh_net(sizes)
        if graphs:
            terms = _graph_terms(net, parse(("value", "jacobian", "hessian"), 2))
        else:
            terms = sum(a * b for a, b in zip(sizes, sizes[1:])) * 6  # 6 streams: value, 2 tangents, 3 pairs
        row = [f"resnet_mlp(2, {h}, 1)" if graphs else f"2-{h}-{h}-1", str(terms)]
        for strategy in ("expression", "layered"):
            start = time.perf_counter()
            kernel = symnet.compile(net, strategy=strategy)
            compile_s = time.perf_counter() - start
            result = kernel(X)
            times = []
            for _ in range(5):
                start = time.perf_counter()
                kernel(X, out=result)
                times.append(time.perf_counter() - start)
            row += [f"{compile_s:.2f}", f"{sorted(times)[2]:.4f}"]
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
