"""Partials of order 3 and 4 of wide nets: symnet's layered kernel against JAX and PyTorch, side by side.

Three requests a physics-informed network meets (value and higher derivatives at 10^5 points):

* K1, 1-64-64-1 tanh: ``u, u_x, u_xxx`` (the Korteweg-de Vries equation);
* K2, 2-64-64-64-1 tanh: ``u, u_xxx, u_xyy`` (``d/dx`` of the Laplacian);
* B1, 2-64-64-64-1 tanh: ``u, u_xxxx, u_xxyy, u_yyyy`` (the biharmonic ``u_xxxx + 2 u_xxyy + u_yyyy``).

symnet: ``symnet.compile(net, ("value", (0, 0, 0), ...))`` (``strategy="auto"`` takes the
layered one: the expression kernel of these nets would not compile in reasonable time).
JAX and PyTorch: nested forward-mode ``jvp`` along the unit directions of each partial (the
cheapest way either offers to a single mixed partial), ``jit(lax.map)`` in JAX and chunked
``vmap`` in PyTorch, float64.  The three take turns ``--rounds`` times, ``--repeats`` timed
calls each after a warm-up; the medians and ratios are printed as a Markdown table, with the
largest difference of each framework's numbers from symnet's.  Run:

    python benchmarks/higher_order.py [--rounds 3] [--repeats 3] [--points 100000]
"""

from __future__ import annotations

import machine

THREADS = machine.configure_threads()  # before numpy, JAX and PyTorch are imported

import argparse  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

import symnet  # noqa: E402
from comparators import CHUNK  # noqa: E402
from nets import HIGHER_ORDER, forward_with  # noqa: E402
from threads import alternate  # noqa: E402

CASES = tuple((name, reference, ((), *partials), label) for name, (reference, partials, label) in HIGHER_ORDER.items())


def _nested_jvp(f: Callable[[Any], Any], alpha: tuple[int, ...], jvp: Callable, unit: Callable[[int], Any]) -> Callable:
    """``x -> d^|alpha| f / dx_alpha`` by nested forward-mode directional derivatives."""
    g = f
    for i in alpha:
        g = (lambda inner, direction: lambda x: jvp(inner, (x,), (direction,))[1])(g, unit(i))
    return g


def symnet_evaluator(kernel: Any, partials: tuple[tuple[int, ...], ...]) -> Callable[[np.ndarray], list[np.ndarray]]:
    def evaluate(X: np.ndarray) -> list[np.ndarray]:
        result = kernel(X)
        return [result[alpha][:, 0] if alpha else result.value[:, 0] for alpha in partials]
    return evaluate


def jax_evaluator(reference: Any, partials: tuple[tuple[int, ...], ...]) -> Callable[[np.ndarray], list[np.ndarray]]:
    import jax

    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    layers = reference.layers(jnp.asarray)
    d = reference.n_inputs
    f = lambda x: forward_with(layers, x, jnp)[0]  # noqa: E731
    unit = lambda i: jnp.zeros(d).at[i].set(1.0)  # noqa: E731
    point = lambda x: tuple(_nested_jvp(f, alpha, jax.jvp, unit)(x) for alpha in partials)  # noqa: E731
    batched = jax.jit(lambda xs: jax.lax.map(point, xs, batch_size=CHUNK))
    return lambda X: [np.asarray(a) for a in jax.block_until_ready(batched(X))]


def torch_evaluator(reference: Any, partials: tuple[tuple[int, ...], ...]) -> Callable[[np.ndarray], list[np.ndarray]]:
    import torch

    torch.set_num_threads(machine.cores())
    layers = reference.layers(torch.from_numpy)
    d = reference.n_inputs
    f = lambda x: forward_with(layers, x, torch)[0]  # noqa: E731
    unit = lambda i: torch.nn.functional.one_hot(torch.tensor(i), d).to(torch.float64)  # noqa: E731
    point = lambda x: tuple(_nested_jvp(f, alpha, torch.func.jvp, unit)(x) for alpha in partials)  # noqa: E731
    batched = torch.func.vmap(point, chunk_size=CHUNK)
    return lambda X: [a.detach().numpy() for a in batched(torch.from_numpy(X))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--points", type=int, default=10**5)
    args = parser.parse_args()
    print(f"- machine: {machine.cpu_model()}, {machine.cores()} cores; threads: "
          + ", ".join(f"{k}={v}" for k, v in THREADS.items()))
    print(f"- {args.points:,} points, medians of {args.rounds * args.repeats} calls, the three taking turns\n")
    print("| net | request | symnet | JAX | PyTorch | JAX / symnet | PyTorch / symnet | max abs diff (JAX, PyTorch) | symnet set-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, reference, partials, label in CASES:
        X = reference.points(args.points)
        start = time.perf_counter()
        kernel = symnet.compile(reference.symnet_network(), ("value", *[a for a in partials if a]))
        setup = time.perf_counter() - start
        evaluators = {"symnet": symnet_evaluator(kernel, partials), "JAX": jax_evaluator(reference, partials),
                      "PyTorch": torch_evaluator(reference, partials)}
        results = {label_: np.array(evaluate(X)) for label_, evaluate in evaluators.items()}
        diffs = [float(np.max(np.abs(results[other] - results["symnet"]))) for other in ("JAX", "PyTorch")]
        medians = alternate({label_: (lambda e=evaluate: e(X)) for label_, evaluate in evaluators.items()},
                            args.rounds, args.repeats)
        ours_s = medians["symnet"]
        print(f"| {name} {reference.title} | {label} ({kernel.strategy}, {kernel.schedule}) | {ours_s:.3f} s | "
              f"{medians['JAX']:.3f} s | {medians['PyTorch']:.3f} s | {medians['JAX'] / ours_s:.2f} | "
              f"{medians['PyTorch'] / ours_s:.2f} | {diffs[0]:.1e}, {diffs[1]:.1e} | {setup:.2f} s |", flush=True)


if __name__ == "__main__":
    main()
