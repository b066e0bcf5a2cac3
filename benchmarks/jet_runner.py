"""jet-for-pytorch (collapsed Taylor mode, Dangel et al. 2025) on a network exported by benchmarks/graphs.py.

jet-for-pytorch needs Python >= 3.12; this project's venv is 3.11, so this script runs in a venv
of its own (``make jet-venv`` makes ``.venv-jet``: Python 3.12, ``torch==2.13.0`` as PyPI ships
it, which runs on the CPU, and ``jet-for-pytorch``) and talks to graphs.py through files:

    .venv-jet/bin/python benchmarks/jet_runner.py NET.json NET.npz POINTS.npy THREADS REPEATS OUT.npy [bilaplacian]

It builds the network op by op in PyTorch (float64) from the JSON op list and the arrays,
takes jet's recipe from its own benchmark (``jet.laplacian`` with ``collapsed=True``, the graph
captured, common subexpressions eliminated, then ``torch.func.vmap`` over the points), times
``REPEATS`` calls after a warm-up, prints ``{"setup": s, "times": [...]}`` as JSON and saves the
Laplacians to ``OUT.npy``.  jet computes the Laplacian only (its value stays inside).  With
``bilaplacian`` last, the same for ``jet.bilaplacian`` (collapsed), the biharmonic.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from torch.func import vmap

from jet import bilaplacian, capture_graph, common_subexpression_elimination, laplacian

CHUNK = 16384


def network(spec: dict, arrays: dict) -> tuple[callable, int]:
    """``f(x) -> output 0`` of the exported graph for one point ``x`` ``(d,)``."""
    t = {key: torch.from_numpy(np.asarray(value, dtype=np.float64)) for key, value in arrays.items()}
    acts = {"tanh": torch.tanh, "sin": torch.sin, "cos": torch.cos, "exp": torch.exp, "linear": lambda v: v,
            "sigmoid": torch.sigmoid, "square": lambda v: v * v}

    def f(x: torch.Tensor) -> torch.Tensor:
        values = {"x": x}
        for node in spec["nodes"]:
            name, op, a = node["name"], node["op"], [values[i] for i in node["inputs"]]
            if op == "dense":
                out = torch.nn.functional.linear(a[0], t[f"{name}.W"].T, t[f"{name}.b"])
            elif op == "matmul":
                out = torch.nn.functional.linear(a[0], t[f"{name}.matrix"].T)
            elif op == "add":
                out = a[0] + a[1]
            elif op == "sub":
                out = a[0] - a[1]
            elif op == "mul":
                out = a[0] * a[1]
            elif op == "scale":
                out = a[0] * t[f"{name}.s"]
            elif op == "shift":
                out = a[0] + t[f"{name}.t"]
            elif op == "rescale":
                out = a[0] * t[f"{name}.scale"] + t[f"{name}.offset"]
            elif op == "concat":
                out = torch.cat(a, -1)
            elif op == "sum":
                out = a[0].sum(-1, keepdim=True)
            elif op == "activation":
                out = acts[node["activation"]](a[0])
            else:
                raise NotImplementedError(f"op {op!r} is not in this runner (nor, for slices, in jet 1.0.0's rules)")
            values[name] = out
        out = values[spec["output"]]
        return out.sum(-1, keepdim=True) if out.shape[-1] == 1 else out  # jet 1.0.0 has no rule for slices

    return f, spec["inputs"]


def main() -> None:
    spec_path, arrays_path, points_path, threads, repeats, out_path = sys.argv[1:7]
    transform = bilaplacian if sys.argv[7:] == ["bilaplacian"] else laplacian
    torch.set_num_threads(int(threads))
    spec = json.loads(open(spec_path).read())
    arrays = dict(np.load(arrays_path))
    X = torch.from_numpy(np.load(points_path))
    start = time.perf_counter()
    f, d = network(spec, arrays)
    dummy = torch.zeros(d, dtype=torch.float64)
    lap = transform(f, (dummy,), collapsed=True)
    lap, _ = capture_graph(lap, (dummy,))
    common_subexpression_elimination(lap.graph)
    lap.recompile()
    batched = vmap(lap, chunk_size=CHUNK)
    setup = time.perf_counter() - start
    with torch.no_grad():
        result = batched(X)  # the warm-up
        times = []
        for _ in range(int(repeats)):
            t0 = time.perf_counter()
            batched(X)
            times.append(time.perf_counter() - t0)
    np.save(out_path, result.detach().numpy().reshape(-1))
    print(json.dumps({"setup": setup, "times": times, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
