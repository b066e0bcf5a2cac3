"""Layered kernels with their chunks on one thread (``parallel=False``) and on all of them.

For each benchmark net of :mod:`nets` (value + gradient + Hessian, or value + Laplacian),
both kernels take turns ``--rounds`` times, ``--repeats`` timed calls each after a warm-up;
the medians over all calls are printed with their ratio.  Run:

    python benchmarks/threads.py [--nets T3,T4,T5,L1,L2,L3] [--rounds 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import symnet
from nets import NETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", default="T3,T4,T5,L1,L2,L3")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name in args.nets.split(","):
        reference = NETS[name]
        net = reference.symnet_network()
        words = ("value", "jacobian", "hessian") if reference.task == "hessian" else ("value", "laplacian")
        kernels = {"one thread": symnet.compile(net, words, parallel=False), "all threads": symnet.compile(net, words)}
        X = reference.points(reference.n_points)
        times: dict[str, list[float]] = {label: [] for label in kernels}
        for _ in range(args.rounds):
            for label, kernel in kernels.items():
                kernel(X)
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    kernel(X)
                    times[label].append(time.perf_counter() - start)
        serial, parallel = (float(np.median(times[label])) for label in kernels)
        kernel = kernels["all threads"]
        print(f"{name} ({kernel.schedule}, {kernel.threads} threads): one thread {serial:.3f} s, "
              f"all threads {parallel:.3f} s, ratio {serial / parallel:.2f}", flush=True)


if __name__ == "__main__":
    main()
