"""Two variants of each kernel side by side: one thread against all, or forward against forward-adjoint.

Default: for each benchmark net of :mod:`nets` (value + gradient + Hessian, or value +
Laplacian), the kernel with its chunks on one thread (``parallel=False``) against the one
using every core.  With ``--schedules``: for the Hessian nets, ``schedule="forward"``
against ``schedule="forward-adjoint"``, both on every core; ``--nets G1,G2,G3,G4`` takes the
graph nets of :mod:`graphs` (value + gradient + Hessian at 10^5 uniform points in [-1, 1]^d).
With ``--fusion``: for the graph nets, node-by-node evaluation (``_graph_layered.FUSE_RUNS = False``)
against runs of pointwise nodes fused into one loop (the default), both on every core, with
``--schedule`` (``auto``, ``forward``, ``forward-adjoint``) and ``--task`` (``hessian`` or ``laplacian``).
With ``--losses``: the loss gradients of training (``compile_loss``'s mse and the Sobolev loss of ``fit``), one thread
against all, for the 2-64-64-1 tanh net on 10,000 points of benchmarks/train_speed.py.
With ``--chunk-overhead``: for the graph nets (``--nets``, default G1-G4), the Python work
of one chunk of the forward pass (a one-point chunk, where the arithmetic is nothing), per schedule.
With ``--budgets 4,8,16``: each net's default kernel with each memory budget per thread, in
MiB (the forward schedule's ``_layered.MEMORY_BUDGET``, forward-adjoint's ``_adjoint.MEMORY_BUDGET``).
With ``--chunk-points 95,224,384``: for the graph nets, the forward-adjoint schedule with chunks of at
most that many points (``_graph_adjoint.CHUNK_POINTS``).  The variants take turns
``--rounds`` times, ``--repeats`` timed calls each after a warm-up; the medians over all
calls are printed with their ratio.  Run:

    python benchmarks/threads.py [--schedules | --fusion | --losses | --chunk-overhead | --budgets 4,8,16
                                  | --chunk-points 95,224,384]
        [--nets T3,T4,T5,L1,L2,L3,G1,...] [--rounds 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import symnet
from nets import NETS


def _crossover_nets() -> dict[str, object]:
    from symnet.graph import zoo

    return {"P64": lambda: zoo.pirate_net(2, 64, 2, 1), "P96": lambda: zoo.pirate_net(2, 96, 2, 1),
            "M256": lambda: zoo.modified_mlp(2, 256, 4, 1)}


#: Gated nets beside G2 and G3 for ``--schedules``, where ``auto``'s choice for products changes
#: (``_graph_adjoint.GATED_UNITS_PER_MAC``): PirateNets 2 x 64 and 2 x 96, a ModifiedMlp 4 x 256.
CROSSOVER_NETS = _crossover_nets()


def alternate(calls: dict[str, object], rounds: int, repeats: int) -> dict[str, float]:
    """Median seconds of each zero-argument call, the calls taking turns ``rounds`` times."""
    times: dict[str, list[float]] = {label: [] for label in calls}
    for _ in range(rounds):
        for label, call in calls.items():
            call()
            for _ in range(repeats):
                start = time.perf_counter()
                call()
                times[label].append(time.perf_counter() - start)
    return {label: float(np.median(values)) for label, values in times.items()}


def losses(rounds: int, repeats: int) -> None:
    from symnet.kernels import SobolevLoss
    from symnet.kernels._loss import LossKernel

    rng = np.random.default_rng(0)
    sizes = [2, 64, 64, 1]
    weights = [(rng.normal(size=(a, b)) / np.sqrt(a), np.zeros(b)) for a, b in zip(sizes, sizes[1:])]
    net = symnet.Network.from_weights([W for W, _ in weights], [b for _, b in weights], ["tanh", "tanh", "linear"])
    X = rng.uniform(-3, 3, (10_000, 2))
    Y = np.sin(X[:, :1]) * np.cos(X[:, 1:])
    DY = np.stack([np.cos(X[:, 0]) * np.cos(X[:, 1]), -np.sin(X[:, 0]) * np.sin(X[:, 1])], axis=1)[:, None, :]
    mse = {parallel: LossKernel(net, "mse", parallel=parallel) for parallel in (False, True)}
    sobolev = {parallel: SobolevLoss(net.activations, X, Y, DY, parallel=parallel) for parallel in (False, True)}
    for name, calls in (("value loss (mse)", {p: (lambda k=k: k(X, Y, weights)) for p, k in mse.items()}),
                        ("Sobolev loss", {p: (lambda k=k: k(weights)) for p, k in sobolev.items()})):
        medians = alternate({"one thread": calls[False], "all threads": calls[True]}, rounds, repeats)
        serial, parallel = medians["one thread"], medians["all threads"]
        print(f"{name}, 2-64-64-1 tanh, 10,000 points ({mse[True].threads} threads): one thread "
              f"{serial * 1e3:.1f} ms, all threads {parallel * 1e3:.1f} ms, ratio {serial / parallel:.2f}", flush=True)


def budgets(net: symnet.Network, words: tuple[str, ...], X: np.ndarray, name: str, args: argparse.Namespace) -> None:
    """``--budgets``: the kernel's memory budget per thread in turns; ``--chunk-points``: a graph's
    forward-adjoint chunks of at most that many points (``_graph_adjoint.CHUNK_POINTS``)."""
    from symnet.kernels import _adjoint, _graph_adjoint, _layered

    if args.chunk_points:
        kernel = symnet.compile(net, words, schedule="forward-adjoint")
        module, setting, unit, scale = _graph_adjoint, "CHUNK_POINTS", "points", 1
        values = list(map(int, args.chunk_points.split(",")))
    else:
        kernel = symnet.compile(net, words)
        module = _layered if kernel.schedule == "forward" else _adjoint if net.is_chain else _graph_adjoint
        setting, unit, scale, values = "MEMORY_BUDGET", "MiB", 2**20, list(map(int, args.budgets.split(",")))
    default = getattr(module, setting)

    def with_value(value: int):
        def call() -> None:
            setattr(module, setting, value * scale)
            kernel(X)
        return call

    try:
        medians = alternate({value: with_value(value) for value in values}, args.rounds, args.repeats)
    finally:
        setattr(module, setting, default)
    print(f"{name} ({kernel.schedule}, {kernel.threads} threads): "
          + ", ".join(f"{value} {unit} {seconds:.3f} s" for value, seconds in medians.items()), flush=True)


def fused_and_not(net: symnet.Network, words: tuple[str, ...], schedule: str) -> dict[str, object]:
    """The kernel built node by node and with fused runs (each compiled afresh, in memory)."""
    from symnet import kernels
    from symnet.kernels import _graph_layered

    built = {}
    for label, fuse in (("node by node", False), ("fused runs", True)):
        _graph_layered.FUSE_RUNS = fuse
        kernels._MEMO.clear()  # the in-memory memo does not key on the switch
        try:
            built[label] = symnet.compile(net, words, strategy="layered", schedule=schedule, cache=False)
        finally:
            _graph_layered.FUSE_RUNS = True
            kernels._MEMO.clear()
    assert not built["node by node"]._plan.layout.runs
    return built


def chunk_overhead(names: str) -> None:
    """The Python work of one chunk: the graph plan's forward pass on a one-point chunk, where the arithmetic is
    nothing, median of 5 x 400 calls, on the calling thread, for each schedule."""
    from graphs import NETS as GRAPH_NETS

    for name in names.split(","):
        net = GRAPH_NETS[name][1]()
        X = np.random.default_rng(0).uniform(-1, 1, (1, net.n_inputs))
        for schedule in ("forward", "forward-adjoint"):
            kernel = symnet.compile(net, ("value", "jacobian", "hessian"), strategy="layered", schedule=schedule)
            plan = kernel._plan
            kernel(X)
            times = []
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(400):
                    plan._forward(X, kernel._weights)
                times.append((time.perf_counter() - start) / 400)
            seconds = sorted(times)[2]
            print(f"{name} ({schedule}, {len(plan.layout.live)} nodes, chunks of {plan.chunk_size()} points): "
                  f"{seconds * 1e6:.0f} us of Python per chunk, {seconds * 1e5 / plan.chunk_size() * 1e3:.0f} ms "
                  "per 10^5 points", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", default=None, help="default: T3,T4,T5,L1,L2,L3 (T3,T4,T5 with --schedules)")
    parser.add_argument("--schedules", action="store_true")
    parser.add_argument("--fusion", action="store_true")
    parser.add_argument("--schedule", default="auto")
    parser.add_argument("--task", default="hessian", choices=("hessian", "laplacian"))
    parser.add_argument("--losses", action="store_true")
    parser.add_argument("--budgets", help="comma-separated MiB")
    parser.add_argument("--chunk-points", help="comma-separated points per chunk (graph nets, forward-adjoint)")
    parser.add_argument("--chunk-overhead", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.losses:
        return losses(5 * args.rounds, 7 * args.repeats)
    if args.chunk_overhead:
        return chunk_overhead(args.nets or "G1,G2,G3,G4")
    names = args.nets or ("T3,T4,T5" if args.schedules else "T3,T4,T5,L1,L2,L3")
    for name in names.split(","):
        if name in NETS:
            reference = NETS[name]
            net = reference.symnet_network()
            words = ("value", "jacobian", "hessian") if reference.task == "hessian" else ("value", "laplacian")
            X = reference.points(reference.n_points)
        else:  # a graph net of benchmarks/graphs.py (G1-G5) or CROSSOVER_NETS, at 10^5 points
            from graphs import NETS as GRAPH_NETS  # imported here: it sets up JAX's and PyTorch's threads too
            net = CROSSOVER_NETS[name]() if name in CROSSOVER_NETS else GRAPH_NETS[name][1]()
            words = ("value", "jacobian", "hessian") if args.task == "hessian" else ("value", "laplacian")
            X = np.random.default_rng(0).uniform(-1, 1, (100_000, net.n_inputs))
        if args.budgets or args.chunk_points:
            budgets(net, words, X, name, args)
            continue
        if args.fusion:
            kernels = fused_and_not(net, words, args.schedule)
        elif args.schedules:
            kernels = {schedule: symnet.compile(net, words, strategy="layered", schedule=schedule)
                       for schedule in ("forward", "forward-adjoint")}
        else:
            kernels = {"one thread": symnet.compile(net, words, parallel=False), "all threads": symnet.compile(net, words)}
        medians = alternate({label: (lambda k=kernel: k(X)) for label, kernel in kernels.items()},
                            args.rounds, args.repeats)
        (first, a), (second, b) = medians.items()
        kernel = kernels[second]
        print(f"{name} ({kernel.schedule}, {kernel.threads} threads, {X.shape[0]:,} points): {first} {a:.3f} s, "
              f"{second} {b:.3f} s, ratio {a / b:.2f}", flush=True)


if __name__ == "__main__":
    main()
