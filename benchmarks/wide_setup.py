"""Set-up of wide networks: building them from arrays or a PyTorch module, and the first compile.

Issue 17 asks for set-up (build + first compile, empty cache) of at most 5 s per net.  Two
wide nets, each timed in a fresh Python process with an empty kernel cache (so numba compiles
and nothing is reused), medians of ``--repeats``:

* ``D1``: the collapsed-Taylor-mode reference net 50-768-768-512-512-1 tanh (1.28 million
  weights) from numpy arrays, ``Network.from_weights``, then ``compile(net, ("value", "laplacian"))``;
* ``torch``: a residual PyTorch module (50 -> 768, ``h + tanh(Linear(768, 768)(h))``, -> 1;
  630 thousand weights) imported with ``symnet.from_torch`` (capture, allowlist, the import
  check against the module) and compiled the same way.

Run:  python benchmarks/wide_setup.py [--repeats 3]
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

_CHILD = r"""
import json, os, sys, time
sys.path.insert(0, {here!r})
import numpy as np
import symnet
what = {what!r}
start = time.perf_counter()
if what == "D1":
    from graphs import _dangel
    net = _dangel()
else:
    import torch
    torch.manual_seed(0)

    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = torch.nn.Linear(50, 768), torch.nn.Linear(768, 768), torch.nn.Linear(768, 1)

        def forward(self, x):
            h = torch.tanh(self.a(x))
            return self.c(h + torch.tanh(self.b(h)))

    net = symnet.from_torch(Residual().double())
built = time.perf_counter() - start
start = time.perf_counter()
symnet.compile(net, ("value", "laplacian"))
print(json.dumps({{"build": built, "compile": time.perf_counter() - start}}))
"""


def measure(what: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "SYMNET_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, "-c", _CHILD.format(here=str(HERE), what=what)], env=env,
                             capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    import platform
    import time

    from machine import cores, cpu_model, versions

    print(f"Machine: {cpu_model()}, {cores()} cores, Python {platform.python_version()}; "
          + ", ".join(f"{k} {v}" for k, v in versions().items()) + f"; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print()
    print("| net | build s | first compile s | set-up s (median of %d) |" % args.repeats)
    print("|---|---|---|---|")
    for what, title in (("D1", "D1 50-768-768-512-512-1 tanh, from arrays"),
                        ("torch", "residual PyTorch module 50-768-768-1, from_torch")):
        runs = [measure(what) for _ in range(args.repeats)]
        build = statistics.median(r["build"] for r in runs)
        compiled = statistics.median(r["compile"] for r in runs)
        total = statistics.median(r["build"] + r["compile"] for r in runs)
        print(f"| {title} | {build:.2f} | {compiled:.2f} | {total:.2f} |", flush=True)


if __name__ == "__main__":
    main()
