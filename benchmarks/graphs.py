"""Graph networks at PINN size: symnet's kernels against JAX, folx and PyTorch, side by side.

The rows issue 17 names, value + gradient + Hessian ("hessian") and value + Laplacian
("laplacian") at ``--points`` points (10^5 by default):

* G1 ResNet-MLP 2 -> 128, 3 residual tanh blocks -> 1 (``symnet.graph.zoo.resnet_mlp``);
* G2 ModifiedMlp 2 -> 4 x 128 tanh with its two gates -> 1 (``modified_mlp``);
* G3 PirateNet, 2 blocks of width 128 (``pirate_net``);
* G4 Fourier-feature MLP 2 -> [cos, sin] of 128 features -> 128 -> 128 -> 1 (``fourier_mlp``);
* G5 DeepONet, branch 100 -> 128 -> 128 -> 64, trunk 2 -> 128 -> 128 -> 64, derivatives with
  respect to the trunk's 2 coordinates (``deeponet``);
* B2 G1's net, value + biharmonic ("biharmonic") at 10^4 points: symnet's 13 Taylor streams against
  JAX's ``trace(hessian)`` of ``trace(hessian)``, PyTorch's the same, and jet-for-pytorch's collapsed
  ``bilaplacian``;
* D1 the collapsed-Taylor-mode reference (Dangel et al. 2025), 50 -> 768 -> 768 -> 512 -> 512 -> 1
  tanh, exact Laplacian at 2,000 points.

Comparators evaluate the same network, op by op from its graph (:func:`graph_function`):

* JAX: ``jit`` of ``lax.map`` (batches of :data:`comparators.CHUNK`) of ``jacfwd`` over
  ``value_and_grad`` per point (hessian), ``trace(hessian)`` (laplacian); float64;
* folx: ``forward_laplacian`` (dense, ``sparsity_threshold=0``), laplacian rows;
* PyTorch: ``torch.func.vmap`` (chunked) of the same formulations, float64;
* jet-for-pytorch (collapsed Taylor mode), laplacian rows: ``jet.laplacian(collapsed=True)``,
  captured and CSE'd, vmapped, as its own benchmark does; it needs Python >= 3.12, so it runs
  in ``.venv-jet`` (``make jet-venv``) through :mod:`jet_runner`, in its own process after the
  others rather than taking turns, and computes the Laplacian only.  Without ``.venv-jet`` the
  table says so.

Set-up is building the net, compiling (symnet: an empty kernel cache; JAX: the AOT compile) and
nothing else.  Each comparator runs in turns with the others ``--rounds`` times, ``--repeats``
timed calls each after a warm-up; the table gives medians, the ratio to symnet, and the largest
difference from symnet's numbers relative to their scale.  Run:

    python benchmarks/graphs.py [--points 100000] [--rounds 3] [--repeats 3] [--nets G1,G2] [--out FILE]

``--out`` writes the table into the file between this script's two marker lines (it makes
them at the end if missing); without it the table is printed.
"""

from __future__ import annotations

import machine

THREADS = machine.configure_threads()  # before numpy, JAX and PyTorch are imported

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

os.environ.setdefault("SYMNET_CACHE_DIR", tempfile.mkdtemp(prefix="symnet-bench-graphs-"))  # an empty cache

import numpy as np  # noqa: E402

import symnet  # noqa: E402
from comparators import CHUNK  # noqa: E402
from symnet.graph import zoo  # noqa: E402

BEGIN = "<!-- benchmarks/graphs.py writes from here -->"
END = "<!-- benchmarks/graphs.py writes up to here -->"

HESSIAN, LAPLACIAN, BIHARMONIC = "hessian", "laplacian", "biharmonic"


def _dangel() -> Any:
    rng = np.random.default_rng(0)
    sizes = [50, 768, 768, 512, 512, 1]
    weights = [rng.normal(scale=1 / np.sqrt(a), size=(a, b)) for a, b in zip(sizes, sizes[1:])]
    biases = [rng.normal(scale=0.1, size=b) for b in sizes[1:]]
    return symnet.Network.from_weights(weights, biases, ["tanh"] * 4 + ["linear"])


#: name -> (title, builder, tasks, the inputs the derivatives are taken along (None: all), points or None)
NETS: dict[str, tuple[str, Callable[[], Any], tuple[str, ...], tuple[int, ...] | None, int | None]] = {
    "G1": ("ResNet-MLP 2-128, 3 blocks", lambda: zoo.resnet_mlp(2, 128, 3, 1), (HESSIAN, LAPLACIAN), None, None),
    "B2": ("ResNet-MLP 2-128, 3 blocks", lambda: zoo.resnet_mlp(2, 128, 3, 1), (BIHARMONIC,), None, 10_000),
    "G2": ("ModifiedMlp 2-4x128", lambda: zoo.modified_mlp(2, 128, 4, 1), (HESSIAN, LAPLACIAN), None, None),
    "G3": ("PirateNet 2 blocks w128", lambda: zoo.pirate_net(2, 128, 2, 1), (HESSIAN, LAPLACIAN), None, None),
    "G4": ("Fourier MLP 128 feat, 128x2", lambda: zoo.fourier_mlp(2, 128, 128, 2, 1), (HESSIAN, LAPLACIAN),
           None, None),
    "G5": ("DeepONet 100+2, w128, p64", lambda: zoo.deeponet(100, 2, 128, 2, 64), (HESSIAN, LAPLACIAN),
           (100, 101), None),
    "D1": ("Dangel 50-768-768-512-512-1", _dangel, (LAPLACIAN,), None, 2000),
}


# --- the same network for JAX and PyTorch, op by op ---------------------------------------------

def _array(matrix: Any) -> np.ndarray:
    return np.array(matrix.tolist(), dtype=np.float64)


def node_arrays(node: Any) -> dict[str, np.ndarray]:
    """A node's numbers as float64 arrays: the effective ``W`` and ``b`` of a dense node, the rows
    ``s``, ``t``, ``scale``, ``offset`` (as vectors) and a constant ``matrix``."""
    arrays = {}
    if node.op == "dense":
        arrays = {"W": _array(node.weight), "b": _array(node.params["b"])[0]}
    for name in ("s", "t"):
        if name in node.params:
            arrays[name] = _array(node.params[name])[0]
    for name in ("scale", "offset", "matrix"):
        if name in node.attrs:
            arrays[name] = _array(node.attrs[name]) if name == "matrix" else _array(node.attrs[name])[0]
    return arrays


def graph_function(net: Any, m: Any, asarray: Callable[[np.ndarray], Any], cat: Callable[..., Any]) -> Callable:
    """``f(x) -> scalar``: output 0 of ``net`` at one point ``x (d,)``, written with namespace ``m``."""
    acts = {"tanh": m.tanh, "sin": m.sin, "cos": m.cos, "exp": m.exp, "linear": lambda t: t,
            "sigmoid": lambda t: 1 / (1 + m.exp(-t)), "square": lambda t: t * t}
    graph = net.graph
    consts = {node.name: {k: asarray(v) for k, v in node_arrays(node).items()} for node in graph.nodes[1:]}

    def f(x: Any) -> Any:
        values = {"x": x}
        for node in graph.nodes[1:]:
            c, a = consts[node.name], [values[i] for i in node.inputs]
            op = node.op
            if op == "dense":
                out = a[0] @ c["W"] + c["b"]
            elif op == "matmul":
                out = a[0] @ c["matrix"]
            elif op in ("add", "sub", "mul"):
                out = a[0] + a[1] if op == "add" else a[0] - a[1] if op == "sub" else a[0] * a[1]
            elif op == "scale":
                out = a[0] * c["s"]
            elif op == "shift":
                out = a[0] + c["t"]
            elif op == "rescale":
                out = a[0] * c["scale"] + c["offset"]
            elif op == "concat":
                out = cat(a)
            elif op == "slice":
                out = a[0][node.attrs["start"]:node.attrs["stop"]]
            elif op in ("sum", "mean"):
                out = a[0].sum(-1, keepdims=True) if op == "sum" else a[0].mean(-1, keepdims=True)
            elif op == "activation":
                out = acts[node.activation.name](a[0])
            else:
                raise NotImplementedError(f"no rule for op {op!r} in the benchmark's evaluator")
            values[node.name] = out
        return values[graph.output][0]

    if net.is_chain:  # a chain network: its layers
        layers = [(asarray(layer.weight_array()), asarray(layer.bias_array()), a.name)
                  for layer, a in zip(net.layers, net.activations)]

        def f(x: Any) -> Any:  # noqa: F811
            for W, b, name in layers:
                x = acts[name](x @ W + b)
            return x[0]
    return f


def _along(f: Callable, x_full: Any, directions: tuple[int, ...] | None, where: Callable) -> tuple[Callable, Any]:
    """``f`` as a function of the coordinates ``directions`` only, and their values."""
    if directions is None:
        return f, x_full
    return (lambda c: f(where(x_full, c))), x_full[list(directions)]


# --- comparators ---------------------------------------------------------------------------------

def symnet_runner(net: Any, task: str, directions: tuple[int, ...] | None, X: np.ndarray) -> tuple[Callable, float]:
    start = time.perf_counter()
    if task == BIHARMONIC:
        request: tuple = ("value", "biharmonic")
    elif directions is None:
        request = ("value", "jacobian", "hessian") if task == HESSIAN else ("value", "laplacian")
    else:
        pairs = [(i, k) for i in directions for k in directions if i <= k]
        request = ("value", *[(i,) for i in directions], *pairs) if task == HESSIAN else \
            ("value", *[(i, i) for i in directions])
    kernel = symnet.compile(net, request)
    setup = time.perf_counter() - start
    symnet_runner.last = kernel  # type: ignore[attr-defined]

    def run(points: np.ndarray) -> list[np.ndarray]:
        result = kernel(points)
        if task == BIHARMONIC:
            return [result.value[:, 0], result.biharmonic[:, 0]]
        if directions is None:
            return [result.value[:, 0], result.laplacian[:, 0]] if task == LAPLACIAN else \
                [result.value[:, 0], result.jacobian[:, 0], result.hessian[:, 0]]
        if task == LAPLACIAN:
            return [result.value[:, 0], sum(result[(i, i)][:, 0] for i in directions)]
        grad = np.stack([result[(i,)][:, 0] for i in directions], axis=1)
        hess = np.stack([np.stack([result[tuple(sorted((i, k)))][:, 0] for k in directions], axis=1)
                         for i in directions], axis=1)
        return [result.value[:, 0], grad, hess]
    return run, setup


def _jax_point(f: Callable, task: str, laplacian: Callable | None = None) -> Callable:
    import jax
    if task == HESSIAN:
        def with_aux(x: Any) -> Any:
            value, gradient = jax.value_and_grad(f)(x)
            return gradient, (value, gradient)

        def point(x: Any) -> Any:
            hessian, (value, gradient) = jax.jacfwd(with_aux, has_aux=True)(x)
            return value, gradient, hessian
        return point
    if laplacian is not None:
        return laplacian
    lap = lambda x: jax.numpy.trace(jax.hessian(f)(x))  # noqa: E731
    if task == BIHARMONIC:
        return lambda x: (f(x), jax.numpy.trace(jax.hessian(lap)(x)))
    return lambda x: (f(x), lap(x))


def jax_runner(net: Any, task: str, directions: tuple[int, ...] | None, X: np.ndarray, folx: bool = False
               ) -> tuple[Callable, float]:
    import jax
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    start = time.perf_counter()
    f = graph_function(net, jnp, jnp.asarray, lambda parts: jnp.concatenate(parts, -1))
    idx = None if directions is None else jnp.asarray(directions)

    def at(x: Any) -> tuple[Callable, Any]:
        if idx is None:
            return f, x
        return (lambda c: f(x.at[idx].set(c))), x[idx]

    def point(x: Any) -> Any:
        g, c = at(x)
        if folx:
            import folx as folx_module
            result = folx_module.forward_laplacian(g, sparsity_threshold=0)(c)
            return result.x, result.laplacian
        return _jax_point(g, task)(c)

    batched = jax.jit(lambda xs: jax.lax.map(point, xs, batch_size=CHUNK))
    compiled = batched.lower(jax.ShapeDtypeStruct(X.shape, np.float64)).compile()
    setup = time.perf_counter() - start
    return (lambda points: [np.asarray(o) for o in jax.block_until_ready(compiled(points))]), setup


def torch_runner(net: Any, task: str, directions: tuple[int, ...] | None, X: np.ndarray) -> tuple[Callable, float]:
    import torch
    torch.set_num_threads(THREADS_COUNT)
    func = torch.func
    start = time.perf_counter()
    f = graph_function(net, torch, torch.from_numpy, lambda parts: torch.cat(parts, -1))

    def at(x: Any) -> tuple[Callable, Any]:
        if directions is None:
            return f, x
        lo = directions[0]

        def g(c: Any) -> Any:
            return f(torch.cat([x[:lo], c, x[lo + len(directions):]]))
        return g, x[lo:lo + len(directions)]

    def point(x: Any) -> Any:
        g, c = at(x)
        if task == HESSIAN:
            def with_aux(y: Any) -> Any:
                gradient, value = func.grad_and_value(g)(y)
                return gradient, (value, gradient)
            hessian, (value, gradient) = func.jacfwd(with_aux, has_aux=True)(c)
            return value, gradient, hessian
        lap = lambda y: torch.trace(func.hessian(g)(y))  # noqa: E731
        if task == BIHARMONIC:
            return g(c), torch.trace(func.hessian(lap)(c))
        return g(c), lap(c)

    batched = func.vmap(point, chunk_size=CHUNK)
    setup = time.perf_counter() - start
    return (lambda points: [o.detach().numpy() for o in batched(torch.from_numpy(points))]), setup


THREADS_COUNT = machine.cores()

#: The venv of jet-for-pytorch (Python >= 3.12: ``make jet-venv``), and its runner.
JET_PYTHON = Path(__file__).resolve().parent.parent / ".venv-jet" / "bin" / "python"
JET_RUNNER = Path(__file__).with_name("jet_runner.py")


def export_graph(net: Any, folder: Path) -> tuple[Path, Path]:
    """The network as a JSON op list and an npz of its arrays, for :mod:`jet_runner`."""
    import json
    graph = net.graph
    nodes, arrays = [], {}
    for node in graph.nodes[1:]:
        entry = {"name": node.name, "op": node.op, "inputs": list(node.inputs)}
        if node.op == "activation":
            entry["activation"] = node.activation.name
        if node.op == "slice":
            entry.update(start=node.attrs["start"], stop=node.attrs["stop"])
        arrays.update({f"{node.name}.{name}": array for name, array in node_arrays(node).items()})
        nodes.append(entry)
    spec, data = folder / "net.json", folder / "net.npz"
    spec.write_text(json.dumps({"nodes": nodes, "output": graph.output, "inputs": net.n_inputs}))
    np.savez(data, **arrays)
    return spec, data


def jet_row(net: Any, X: np.ndarray, repeats: int, biharmonic: bool = False) -> tuple[list[float], float, np.ndarray]:
    """jet-for-pytorch's collapsed Laplacian in its own venv and process: (times, set-up, Laplacians)."""
    import json
    import subprocess
    if not JET_PYTHON.exists():
        raise RuntimeError("no .venv-jet (jet-for-pytorch needs Python >= 3.12: make jet-venv)")
    with tempfile.TemporaryDirectory(prefix="symnet-jet-") as folder:
        spec, data = export_graph(net, Path(folder))
        points, out = Path(folder) / "X.npy", Path(folder) / "lap.npy"
        np.save(points, X)
        done = subprocess.run([str(JET_PYTHON), str(JET_RUNNER), str(spec), str(data), str(points),
                               str(THREADS_COUNT), str(repeats), str(out)] + (["bilaplacian"] if biharmonic else []),
                              capture_output=True, text=True, timeout=1800)
        if done.returncode:
            errors = [line for line in done.stderr.splitlines() if "Error" in line] or done.stderr.splitlines()[-1:]
            raise RuntimeError(errors[-1].strip()[:120])
        report = json.loads(done.stdout.strip().splitlines()[-1])
        return report["times"], report["setup"], np.load(out)

COMPARATORS: dict[str, Callable[..., tuple[Callable, float]]] = {
    "symnet": symnet_runner,
    "JAX": jax_runner,
    "folx": lambda net, task, directions, X: jax_runner(net, task, directions, X, folx=True),
    "torch.func": torch_runner,
}


def chunk_gflops(width: int = 128, rows: int = 2048, repeats: int = 20) -> float:
    """float64 GFLOP/s of ``(rows, width) @ (width, width)`` products of the size the layered
    strategy's chunks multiply (a few thousand stacked rows), one per core with one BLAS thread
    each, as the kernels run them: the floor's rate.

    Larger products run slower here (they leave the caches), so this rate is the faster one."""
    rng = np.random.default_rng(0)
    threads = max(1, THREADS_COUNT)
    a = [rng.standard_normal((rows, width)) for _ in range(threads)]
    b = rng.standard_normal((width, width))
    out = [np.empty((rows, width)) for _ in range(threads)]
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits
    with ThreadPoolExecutor(threads) as pool, threadpool_limits(1, "blas"):  # one BLAS thread per chunk
        def once() -> None:
            list(pool.map(lambda k: [np.matmul(a[k], b, out=out[k]) for _ in range(10)], range(threads)))
        best = machine.best_time(once, repeats)
    return 2.0 * rows * width * width * 10 * threads / best / 1e9


def floor_seconds(net: Any, kernel: Any, n: int, gflops: float) -> float:
    """The matrix products of symnet's schedule at the measured matmul rate: every dense node's
    ``2 fan_in fan_out`` FLOPs per point and stream it carries (forward mode: every stream; the
    forward-adjoint schedule: the value and tangents forward, and the ``m`` outputs' adjoints back)."""
    plan = kernel._plan
    if plan is None:
        return float("nan")
    back = net.n_outputs if kernel.schedule == "forward-adjoint" else 0
    if net.is_chain:
        flops = sum(2 * layer.fan_in * layer.fan_out for layer in net.layers) * (plan.streams + back)
    else:
        flops = sum(2 * node.input_widths[0] * node.width * (plan.streams + back if plan.varies[node.name] else 1)
                    for node in plan.layout.live if node.op == "dense" and node.inputs[0] != "x")
    return flops * n / (gflops * 1e9)


def _error(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(np.asarray(g) - w)) / max(1.0, float(np.max(np.abs(w))))) for g, w in zip(got, want))


def run_row(key: str, task: str, n: int, rounds: int, repeats: int, skip: set[str], gflops: float
            ) -> list[dict[str, Any]]:
    title, build, _, directions, points = NETS[key]
    n = points or n
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    net = build()
    built = time.perf_counter() - start
    X = rng.uniform(-1, 1, (n, net.n_inputs))
    runners, rows = {}, []
    for name, make in COMPARATORS.items():
        if name in skip or (name == "folx" and task != LAPLACIAN):
            continue
        try:
            run, setup = make(net, task, directions, X)
        except Exception as exc:  # a comparator that cannot run this net says why in the table
            rows.append({"comparator": name, "note": f"{type(exc).__name__}: {str(exc)[:80]}"})
            continue
        runners[name] = (run, setup + (built if name == "symnet" else 0.0))
    outputs = {name: run(X) for name, (run, _) in runners.items()}  # warm-up, and the numbers compared
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, (run, _) in runners.items():
            for _ in range(repeats):
                t0 = time.perf_counter()
                run(X)
                times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["symnet"]) if "symnet" in times else float("nan")
    kernel = getattr(symnet_runner, "last", None)
    for name, (_, setup) in runners.items():
        median = statistics.median(times[name])
        note = ""
        if name == "symnet" and kernel is not None:
            note = f"{kernel.strategy}" + (f", {kernel.schedule}" if kernel.schedule else "")
            if kernel._plan is not None:
                back = f" forward + {net.n_outputs} back" if kernel.schedule == "forward-adjoint" else ""
                floor = floor_seconds(net, kernel, n, gflops)
                note += f", {kernel._plan.streams} streams{back}; time / floor {median / floor:.1f}"
        rows.append({"comparator": name, "setup": setup, "median": median, "ratio": median / base,
                     "error": _error(outputs[name], outputs["symnet"]) if "symnet" in outputs else float("nan"),
                     "note": note})
    if task in (LAPLACIAN, BIHARMONIC) and "jet" not in skip:
        try:  # in its own process after the others (not taking turns): its venv is Python 3.12
            jet_times, jet_setup, jet_lap = jet_row(net, X, rounds * repeats, task == BIHARMONIC)
            jet_median = statistics.median(jet_times)
            want = outputs["symnet"][1] if "symnet" in outputs else jet_lap
            rows.append({"comparator": "jet-for-pytorch", "setup": jet_setup, "median": jet_median,
                         "ratio": jet_median / base, "error": _error([jet_lap], [want]),
                         "note": f"collapsed Taylor mode, {'biharmonic' if task == BIHARMONIC else 'Laplacian'} "
                                 "only, own process after the others"})
        except Exception as exc:
            rows.append({"comparator": "jet-for-pytorch", "note": f"{type(exc).__name__}: {str(exc)[:100]}"})
    for row in rows:
        row.update(net=f"{key} {title}", task=task, n=n)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| net | task | N | comparator | set-up s | eval s (median) | time / symnet | max rel diff | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "median" not in r:
            lines.append(f"| {r['net']} | {r['task']} | {r['n']} | {r['comparator']} | - | - | - | - | {r['note']} |")
            continue
        lines.append(f"| {r['net']} | {r['task']} | {r['n']} | {r['comparator']} | {r['setup']:.2f} | "
                     f"{r['median']:.4f} | {r['ratio']:.2f} | {r['error']:.1e} | {r['note']} |")
    return "\n".join(lines)


def machine_line() -> str:
    versions = machine.versions()
    return (f"Machine: {machine.cpu_model()}, {THREADS_COUNT} cores, Python {platform.python_version()}; "
            + ", ".join(f"{k} {v}" for k, v in versions.items()))


def write(out: Path, text: str) -> None:
    old = out.read_text() if out.exists() else ""
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    out.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nets", default=",".join(NETS))
    parser.add_argument("--tasks", default=f"{HESSIAN},{LAPLACIAN},{BIHARMONIC}")
    parser.add_argument("--skip", default="", help="comparators to leave out, comma-separated")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    gflops = chunk_gflops(128)
    print(f"matmul of 2048 x 128 chunks, all cores: {gflops:.1f} GFLOP/s", flush=True)
    for key in args.nets.split(","):
        for task in NETS[key][2]:
            if task in args.tasks.split(","):
                found = run_row(key, task, args.points, args.rounds, args.repeats,
                                set(filter(None, args.skip.split(","))), gflops)
                print(table(found), flush=True)
                rows += found
    command = ("python benchmarks/graphs.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()
                                                          if v and k != "out")).strip()
    text = (f"{machine_line()}; matmul of 2048 x 128 chunks on all cores: {gflops:.1f} GFLOP/s\n\n"
            f"Command: `{command}` "
            f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n{table(rows)}")
    if args.out:
        write(args.out, text)
    else:
        print(text)


if __name__ == "__main__":
    main()
