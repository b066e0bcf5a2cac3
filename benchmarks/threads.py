"""Two variants of each layered kernel side by side: one thread against all, or forward against forward-adjoint.

Default: for each benchmark net of :mod:`nets` (value + gradient + Hessian, or value +
Laplacian), the kernel with its chunks on one thread (``parallel=False``) against the one
using every core.  With ``--schedules``: for the Hessian nets, ``schedule="forward"``
against ``schedule="forward-adjoint"``, both on every core.  The two take turns
``--rounds`` times, ``--repeats`` timed calls each after a warm-up; the medians over all
calls are printed with their ratio.  Run:

    python benchmarks/threads.py [--schedules] [--nets T3,T4,T5,L1,L2,L3] [--rounds 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import symnet
from nets import NETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", default=None, help="default: T3,T4,T5,L1,L2,L3 (T3,T4,T5 with --schedules)")
    parser.add_argument("--schedules", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    names = args.nets or ("T3,T4,T5" if args.schedules else "T3,T4,T5,L1,L2,L3")
    for name in names.split(","):
        reference = NETS[name]
        net = reference.symnet_network()
        words = ("value", "jacobian", "hessian") if reference.task == "hessian" else ("value", "laplacian")
        if args.schedules:
            kernels = {schedule: symnet.compile(net, words, strategy="layered", schedule=schedule)
                       for schedule in ("forward", "forward-adjoint")}
        else:
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
        (first, a), (second, b) = ((label, float(np.median(times[label]))) for label in kernels)
        kernel = kernels[second]
        print(f"{name} ({kernel.schedule}, {kernel.threads} threads, {X.shape[0]:,} points): {first} {a:.3f} s, "
              f"{second} {b:.3f} s, ratio {a / b:.2f}", flush=True)


if __name__ == "__main__":
    main()
