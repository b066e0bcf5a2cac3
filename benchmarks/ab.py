"""Old code against new on the same machine: symnet's kernels of the reference nets, alternating.

Each side runs in its own fresh interpreter with ``PYTHONPATH`` pointing at one source tree
(a ``git worktree`` of the old commit, and this tree), compiles every net asked for, and times
``--repeats`` calls of each; the sides take turns for ``--rounds`` rounds, so that both see
the same state of the machine.  The table gives each side's median over all its calls and
the ratio old / new (above 1: the new code is faster).

    git worktree add /tmp/old a4d4beb
    .venv/bin/python benchmarks/ab.py --old /tmp/old --nets T1,T2,T3,T4,T5,L1,L2,L3,K1,K2,B1

The nets and their points come from this tree's ``benchmarks/nets.py`` for both sides
(``NETS``, and ``HIGHER_ORDER``: K1, K2, B1, partials of order 3 and 4), or from
``benchmarks/graphs.py`` (G1-G5, D1: value + gradient + Hessian; ``G4-laplacian``: value +
Laplacian; 10^5 uniform points in [-1, 1]^d, D1 2,000); ``G3@forward-adjoint`` names the schedule
instead of taking ``auto``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

_CHILD = """
import json, sys, time
sys.path.insert(0, {bench!r})
import numpy as np
import symnet
from nets import HIGHER_ORDER, NETS
from comparators import SYMNET_DERIVATIVES
times = {{}}
for name in {nets!r}:
    # graphs.py's nets: G4 (Hessian), G4-laplacian, G3@forward-adjoint
    if name.partition("@")[0].split("-")[0] in ("G1", "G2", "G3", "G4", "G5", "D1"):
        from graphs import NETS as GRAPH_NETS
        spec, _, schedule = name.partition("@")  # G3@forward-adjoint: that schedule, not auto's choice
        key, _, task = spec.partition("-")
        title, build, tasks, directions, n_points = GRAPH_NETS[key]
        net = build()
        words = ("value", "laplacian") if task == "laplacian" else ("value", "jacobian", "hessian")
        if directions:  # as graphs.py asks: the partials along those inputs only
            pairs = [(i, k) for i in directions for k in directions if i <= k]
            words = ("value", *[(i, i) for i in directions]) if task == "laplacian" else \
                ("value", *[(i,) for i in directions], *pairs)
        X = np.random.default_rng(0).uniform(-1, 1, (n_points or 100_000, net.n_inputs))
        kernel = symnet.compile(net, words, **({{"schedule": schedule}} if schedule else {{}}))
    else:
        if name in HIGHER_ORDER:
            ref, partials, _ = HIGHER_ORDER[name]
            derivatives = ("value", *partials)
        else:
            ref = NETS[name]
            derivatives = SYMNET_DERIVATIVES[ref.task]
        X = ref.points(ref.n_points)
        kernel = symnet.compile(ref.symnet_network(), derivatives=derivatives, backend="numba")
    kernel(X[:2])
    runs = []
    for _ in range({repeats}):
        start = time.perf_counter()
        kernel(X)
        runs.append(time.perf_counter() - start)
    times[name] = runs
print(json.dumps(times))
"""


def _side(tree: Path, nets: list[str], repeats: int, cache: str) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(tree), "SYMNET_CACHE_DIR": cache}
    code = _CHILD.format(bench=str(HERE), nets=nets, repeats=repeats)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="source tree of the old code (a git worktree)")
    parser.add_argument("--new", default=str(HERE.parent), help="source tree of the new code (default: this one)")
    parser.add_argument("--nets", default="T1,T2,T3,T4,T5,L1,L2,L3")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    nets = args.nets.split(",")
    sides = {"old": Path(args.old), "new": Path(args.new)}
    caches = {side: tempfile.mkdtemp(prefix=f"symnet-ab-{side}-") for side in sides}
    runs: dict[str, dict[str, list[float]]] = {side: {net: [] for net in nets} for side in sides}
    for round_ in range(args.rounds):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for side in order:
            for net, times in _side(sides[side], nets, args.repeats, caches[side]).items():
                runs[side][net] += times
            print(f"round {round_ + 1}: {side} done", file=sys.stderr, flush=True)
    import platform

    from machine import cores, cpu_model

    print(f"- machine: {cpu_model()}, {cores()} cores, Python {platform.python_version()}; "
          f"load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"old: {sides['old']}  new: {sides['new']}  ({args.rounds} rounds x {args.repeats} calls, medians)\n")
    print("| net | old (s) | new (s) | old / new |")
    print("|---|---|---|---|")
    for net in nets:
        old, new = statistics.median(runs["old"][net]), statistics.median(runs["new"][net])
        print(f"| {net} | {old:.4f} | {new:.4f} | {old / new:.2f} |")


if __name__ == "__main__":
    main()
