"""Training speed: symnet's exact loss-and-gradient against PyTorch autograd (float64, CPU).

A 2-64-64-1 tanh net, 10,000 points of f(x1, x2) = sin(x1) cos(x2).  Timed:

* one evaluation of the loss and its gradient with respect to all 4,417 weights, as
  ``theta (float64 vector) -> (loss, gradient vector)`` -- what L-BFGS calls -- for the value
  loss (mse) and the Sobolev loss (mse of values + mse of both input derivatives);
* one L-BFGS iteration, scipy's ``L-BFGS-B`` driving each objective for ``--iterations``
  iterations (line-search evaluations included).

symnet's objective is the one :func:`symnet.train.fit` uses (``compile_loss`` for values,
``symnet.kernels.SobolevLoss`` with derivatives: reverse over reverse for this 2-input, 1-output net);
PyTorch's is ``torch.autograd`` (``create_graph=True`` for the input derivatives).  Both
compute the same numbers: the script checks that first.

The two sides take turns, ``--rounds`` times: in each round symnet's median of
``--repeats`` evaluations (after one warm-up) and one L-BFGS run, then PyTorch's.  On the
shared 2-core machine of docs/training.md the machine's speed changes from minute to minute
with nothing else running in it (the same symnet evaluation took 19 ms in one minute and
34 ms in the next; PyTorch's changed less), so timing one side after the other would compare
two different machines.  Each round's ratio compares the two sides a few seconds apart; the
table gives the medians over rounds and the range of the ratios.  A pause separates the
turns: both libraries' worker threads spin for a while after their last operation and would
take the cores from the other side.  Both sides use every core: PyTorch's intra-op
threads, and numpy's and scipy's OpenBLAS threads, as many as the cores (printed; symnet's
elementwise passes run on one), except that during L-BFGS, for both sides, scipy's own BLAS
runs on one thread, as in :func:`symnet.fit` (``symnet.train._scipy_blas_on_one_thread``
says why).

Run:  python benchmarks/train_speed.py [--points 10000] [--rounds 7] [--repeats 7] [--iterations 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Callable

import numpy as np
import scipy.optimize

import machine
import symnet
from symnet.train import _Objective, _pack, _scipy_blas_on_one_thread

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]
SIZES = [2, 64, 64, 1]


def problem(n: int, seed: int = 0) -> tuple[symnet.Network, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(a, b)) / np.sqrt(a) for a, b in zip(SIZES, SIZES[1:])]
    biases = [rng.normal(size=b) * 0.1 for b in SIZES[1:]]
    net = symnet.Network.from_weights(weights, biases, ["tanh", "tanh", "linear"])
    X = rng.uniform(-np.pi, np.pi, size=(n, 2))
    y = (np.sin(X[:, 0]) * np.cos(X[:, 1]))[:, None]
    dy = np.stack([np.cos(X[:, 0]) * np.cos(X[:, 1]), -np.sin(X[:, 0]) * np.sin(X[:, 1])], axis=1)[:, None, :]
    return net, X, y, dy


def symnet_objective(net: symnet.Network, X: np.ndarray, y: np.ndarray, dy: np.ndarray | None) -> Objective:
    return _Objective(net, X, y, dy, "mse", 1.0, 1.0)


def torch_objective(net: symnet.Network, X: np.ndarray, y: np.ndarray, dy: np.ndarray | None) -> Objective:
    import torch

    shapes = [(layer.fan_in, layer.fan_out) for layer in net.layers]
    inputs = torch.from_numpy(X).requires_grad_(dy is not None)
    targets = torch.from_numpy(y)
    slopes = None if dy is None else torch.from_numpy(dy[:, 0, :])

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = torch.from_numpy(theta).requires_grad_()
        a, start = inputs, 0
        for number, (fan_in, fan_out) in enumerate(shapes):
            W = params[start:start + fan_in * fan_out].view(fan_in, fan_out)
            start += fan_in * fan_out
            b = params[start:start + fan_out]
            start += fan_out
            a = a @ W + b
            if number < len(shapes) - 1:
                a = torch.tanh(a)
        loss = torch.mean((a - targets) ** 2)
        if slopes is not None:  # one output: d(sum_n y_n)/dx_n = dy_n/dx_n
            jacobian, = torch.autograd.grad(a.sum(), inputs, create_graph=True)
            loss = loss + torch.mean((jacobian - slopes) ** 2)
        gradient, = torch.autograd.grad(loss, params)
        return float(loss.detach()), gradient.numpy()

    return objective


def lbfgs_iteration_seconds(objective: Objective, theta: np.ndarray, iterations: int) -> float:
    """scipy's L-BFGS-B as :func:`symnet.fit` runs it, for either side: its own BLAS on one thread."""
    start = time.perf_counter()
    with _scipy_blas_on_one_thread():
        result = scipy.optimize.minimize(objective, theta, method="L-BFGS-B", jac=True,
                                         options={"maxiter": iterations, "ftol": 0.0, "gtol": 0.0})
    return (time.perf_counter() - start) / max(1, result.nit)


def thread_settings(torch: object) -> str:
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{pool['internal_api']} {pool['filepath'].rsplit('/', 1)[-1].split('-')[0]}: "
                         f"{pool['num_threads']}" for pool in threadpool_info())
    except ImportError:
        blas = f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
    return f"threads: torch {torch.get_num_threads()} (intra-op); {blas}"  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description="symnet vs PyTorch: loss and gradient for training")
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7, help="turns of each side")
    parser.add_argument("--repeats", type=int, default=7, help="evaluations timed per turn (their median)")
    parser.add_argument("--iterations", type=int, default=20, help="L-BFGS iterations per timed run")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between turns")
    args = parser.parse_args()

    import torch

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(threads)
    net, X, y, dy = problem(args.points)
    theta = _pack([(layer.weight_array(), layer.bias_array()) for layer in net.layers])
    cases = [("value loss (mse)", None), ("value + input-derivative loss (Sobolev)", dy)]
    sides = {title: (symnet_objective(net, X, y, slopes), torch_objective(net, X, y, slopes))
             for title, slopes in cases}
    for title, (ours, theirs) in sides.items():
        (a, ga), (b, gb) = ours(theta), theirs(theta)
        assert abs(a - b) <= 1e-12 * abs(b) and np.allclose(ga, gb, rtol=1e-9, atol=1e-12), f"{title}: they disagree"

    # timings[title][task][side]: one number per round
    timings = {title: {task: ([], []) for task in ("once", "step")} for title in sides}
    for _ in range(args.rounds):
        for title, pair in sides.items():
            for side, objective in enumerate(pair):
                time.sleep(args.pause)
                timings[title]["once"][side].append(machine.median_time(lambda: objective(theta), args.repeats))
                timings[title]["step"][side].append(lbfgs_iteration_seconds(objective, theta, args.iterations))

    print(f"machine: {platform.machine()}, {threads} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, scipy {scipy.__version__}, torch {torch.__version__}; {thread_settings(torch)}")
    print(f"net: {'-'.join(map(str, SIZES))} tanh, {len(theta)} weights, {args.points} points, float64; "
          f"{args.rounds} rounds, each: median of {args.repeats} evaluations and one {args.iterations}-iteration "
          f"L-BFGS run per side; same loss and gradient checked first\n")
    print("| task | symnet | PyTorch autograd | PyTorch / symnet (range over rounds) |\n|---|---|---|---|")
    for title, tasks in timings.items():
        for task, label in (("once", "loss + gradient"), ("step", "one L-BFGS iteration")):
            ours, theirs = tasks[task]
            ratios = sorted(b / a for a, b in zip(ours, theirs))
            print(f"| {title}: {label} | {statistics.median(ours) * 1e3:.1f} ms | "
                  f"{statistics.median(theirs) * 1e3:.1f} ms | {statistics.median(ratios):.2f} "
                  f"({ratios[0]:.2f}-{ratios[-1]:.2f}) |")


if __name__ == "__main__":
    main()
