"""Training speed: symnet's exact loss-and-gradient against PyTorch autograd (float64, CPU).

A 2-64-64-1 tanh net, 10,000 points of f(x1, x2) = sin(x1) cos(x2).  Timed, as the median
of ``--repeats`` runs after one warm-up:

* one evaluation of the loss and its gradient with respect to all 4,353 weights, as
  ``theta (float64 vector) -> (loss, gradient vector)`` -- what L-BFGS calls -- for the value
  loss (mse) and the Sobolev loss (mse of values + mse of both input derivatives);
* one L-BFGS iteration, scipy's ``L-BFGS-B`` driving each objective for ``--iterations``
  iterations (line-search evaluations included).

symnet's objective is the one :func:`symnet.train.fit` uses (``compile_loss`` for values,
the exact two-stream reverse pass of ``symnet._sobolev`` with derivatives); PyTorch's is
``torch.autograd`` (``create_graph=True`` for the input derivatives).  Both compute the same
numbers: the script checks that first.

Run:  python benchmarks/train_speed.py [--points 10000] [--repeats 7] [--iterations 20]
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

import symnet
from symnet.train import _Objective, _pack

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


def median_seconds(task: Callable[[], object], repeats: int) -> float:
    task()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        task()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def lbfgs_iteration_seconds(objective: Objective, theta: np.ndarray, iterations: int, repeats: int) -> float:
    def run() -> float:
        start = time.perf_counter()
        result = scipy.optimize.minimize(objective, theta, method="L-BFGS-B", jac=True,
                                         options={"maxiter": iterations, "ftol": 0.0, "gtol": 0.0})
        return (time.perf_counter() - start) / max(1, result.nit)

    run()
    return statistics.median(run() for _ in range(max(1, repeats // 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description="symnet vs PyTorch: loss and gradient for training")
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=20, help="L-BFGS iterations per timed run")
    args = parser.parse_args()

    net, X, y, dy = problem(args.points)
    theta = _pack([(layer.weight_array(), layer.bias_array()) for layer in net.layers])
    cases = [("value loss (mse)", None), ("value + input-derivative loss (Sobolev)", dy)]
    # symnet first, before torch is imported: torch's OpenMP threads keep spinning after each
    # operation and would take the cores from numpy's BLAS threads if the two were interleaved
    ours = {title: symnet_objective(net, X, y, slopes) for title, slopes in cases}
    timings: dict[str, list[float]] = {title: [median_seconds(lambda: f(theta), args.repeats),
                                               lbfgs_iteration_seconds(f, theta, args.iterations, args.repeats)]
                                       for title, f in ours.items()}
    import torch

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(threads)
    for title, slopes in cases:
        theirs = torch_objective(net, X, y, slopes)
        (a, ga), (b, gb) = ours[title](theta), theirs(theta)
        assert abs(a - b) <= 1e-12 * abs(b) and np.allclose(ga, gb, rtol=1e-9, atol=1e-12), f"{title}: they disagree"
        timings[title] += [median_seconds(lambda: theirs(theta), args.repeats),
                           lbfgs_iteration_seconds(theirs, theta, args.iterations, args.repeats)]

    print(f"machine: {platform.machine()}, {threads} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, scipy {scipy.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"net: {'-'.join(map(str, SIZES))} tanh, {len(theta)} weights, {args.points} points, float64; "
          f"median of {args.repeats} runs; same loss and gradient checked first\n")
    print("| task | symnet | PyTorch autograd | PyTorch / symnet |\n|---|---|---|---|")
    for title, (ours_once, ours_step, theirs_once, theirs_step) in timings.items():
        print(f"| {title}: loss + gradient | {ours_once * 1e3:.1f} ms | {theirs_once * 1e3:.1f} ms | "
              f"{theirs_once / ours_once:.2f} |")
        print(f"| {title}: one L-BFGS iteration | {ours_step * 1e3:.1f} ms | {theirs_step * 1e3:.1f} ms | "
              f"{theirs_step / ours_step:.2f} |")


if __name__ == "__main__":
    main()
