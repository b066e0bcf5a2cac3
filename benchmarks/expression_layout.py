"""The numba expression kernel's two layouts, per point and blocked, side by side (issue 17, "small nets").

For each net: value + gradient + Hessian at 10^6 points, numba backend, expression strategy,
all threads.  Each layout's kernel is built from an empty cache (compile seconds, in this
process: the first build also pays numba's start-up, so the layouts take turns being first),
then the two kernels take turns, ``--repeats`` calls each per round (``out=`` reused),
medians.  ``auto`` picks the layout by :func:`symnet.kernels.codegen._blocked`; this script
forces each in turn by replacing that function, which is what it measures.

Run:  .venv/bin/python benchmarks/expression_layout.py [--nets T1,T2,T6,S1] [--rounds 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import machine  # noqa: E402

THREADS = machine.configure_threads()

import symnet  # noqa: E402
from symnet import kernels  # noqa: E402
from symnet.kernels import codegen  # noqa: E402

from nets import NETS, RefNet, _random_net, HESSIAN  # noqa: E402

#: A net whose activation (sin) has no vectorised form: ``auto`` keeps it per point.
EXTRA = {"S1": _random_net("S1", [2, 4, 4, 1], "sin", 10**6, HESSIAN)}


def build(net: RefNet, blocked: bool) -> tuple[symnet.kernels.Kernel, float]:
    original = codegen._blocked
    codegen._blocked = lambda exprs: blocked  # the layout under test, whatever auto would pick
    os.environ["SYMNET_CACHE_DIR"] = tempfile.mkdtemp(prefix="symnet-layout-")
    kernels._MEMO.clear()
    try:
        network = symnet.Network.from_weights(list(net.weights), list(net.biases), list(net.activations))
        start = time.perf_counter()
        kernel = symnet.compile(network, ("value", "jacobian", "hessian"), backend="numba", strategy="expression")
        return kernel, time.perf_counter() - start
    finally:
        codegen._blocked = original


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default="T1,T2,T6,S1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"machine: {machine.cpu_model()}, {machine.cores()} cores, {THREADS}, {machine.versions()}")
    print("| net | auto picks | per point: compile s | eval s | blocked: compile s | eval s | per point / blocked |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for index, name in enumerate(args.nets.split(",")):
        net = {**NETS, **EXTRA}[name]
        X = np.random.default_rng(0).standard_normal((net.n_points, net.weights[0].shape[0]))
        built = {}
        for blocked in ((False, True) if index % 2 == 0 else (True, False)):
            built[blocked] = build(net, blocked)
        network = symnet.Network.from_weights(list(net.weights), list(net.biases), list(net.activations))
        kernels._MEMO.clear()  # the last forced build is memoised under the same key
        os.environ["SYMNET_CACHE_DIR"] = tempfile.mkdtemp(prefix="symnet-layout-")
        auto = "for block in" in symnet.compile(network, ("value", "jacobian", "hessian"), backend="numba",
                                                strategy="expression").source
        results = {blocked: kernel(X) for blocked, (kernel, _) in built.items()}
        gap = max(float(np.max(np.abs(results[True].hessian - results[False].hessian)
                               / np.maximum(np.abs(results[False].hessian), 1e-300))), 0.0)
        times: dict[bool, list[float]] = {False: [], True: []}
        for round_ in range(args.rounds):
            for blocked in ((False, True) if round_ % 2 == 0 else (True, False)):
                kernel, _ = built[blocked]
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    kernel(X, out=results[blocked])
                    times[blocked].append(time.perf_counter() - start)
        per_point, blocked_s = (float(np.median(times[b])) for b in (False, True))
        print(f"| {name} {net.title} | {'blocked' if auto else 'per point'} | {built[False][1]:.2f} | "
              f"{per_point * 1e3:.2f} ms | {built[True][1]:.2f} | {blocked_s * 1e3:.2f} ms | "
              f"{per_point / blocked_s:.2f} (Hessians agree to {gap:.1e} relative) |", flush=True)


if __name__ == "__main__":
    main()
