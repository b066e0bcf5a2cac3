"""One PINN training step: the Poisson loss and its exact gradient, symnet against PyTorch, JAX and folx.

Issue 19.  A training step of a physics-informed net is the residual loss and its gradient
with respect to every parameter.  Here the problem is Poisson's equation ``-Δu = f`` on
``[0, 1]^2`` with ``f(x, y) = 2π² sin(πx) sin(πy)``, ``--points`` collocation points (10^4 by
default) drawn uniformly from the square, float64 on the CPU, and the loss

    loss = mean over points of (Δu(x) + f(x))^2

with ``u`` the network.  One step = the loss value and its exact gradient with respect to all
weights and biases, from points and weights already in each framework's arrays (the ``f(x)``
values are computed once, outside the step, for every side).  Two nets:

* ``chain``: the chain 2-64-64-64-1, tanh (8,577 parameters; ``Network.from_weights``, weights
  ``N(0, 1/fan_in)``, biases ``N(0, 0.01)``, seed 0);
* ``resnet``: the ResNet zoo net ``symnet.graph.zoo.resnet_mlp(d_in=2, width=64, blocks=3)``
  (``h = tanh(dense(x))``, three times ``h = h + tanh(dense(h))``, a linear head; 12,737
  parameters; the zoo's seed-0 weights).

Rows (comparators), each computing the same loss of the same weights (read from the symnet
graph: every ``dense`` node's ``W`` ``(fan_in, fan_out)`` and ``b`` ``(1, fan_out)``):

1. ``symnet fit step``: ``symnet.compile_vjp(net, ("laplacian",)).value_and_grad(X, loss,
   weights)`` -- the step :func:`symnet.fit` takes for residual losses: truncated Taylor jets
   forward, exact reverse mode back, chunks of points on every core;
2. ``symnet.torch``: the same kernel as a PyTorch op, ``symnet.torch.Derivatives(net,
   derivatives=("laplacian",))``, its ``.laplacian`` in a torch loss, ``loss.backward()``.
   Optional: where ``symnet.torch`` cannot be imported (or run) the row says why;
3. ``PyTorch autograd``: double backward on the batch -- ``u = net(X)``, ``g = grad(u.sum(), X,
   create_graph=True)``, per input dimension ``i`` the second derivatives ``grad(g[:, i].sum(),
   X, create_graph=True)[:, i]`` summed into the Laplacian, then ``loss.backward()``;
4. ``torch.func``: ``vmap`` over points of ``trace(hessian(u))`` (``hessian`` is
   ``jacfwd(jacrev)``) of a per-point function of ``(params, x)``, the loss of that,
   ``torch.func.grad_and_value`` with respect to the params;
5. ``JAX``: ``jit(value_and_grad(loss))`` with ``vmap`` of ``trace(jax.hessian(u))``;
6. ``folx``: ``jit(value_and_grad(loss))`` with ``vmap`` of ``folx.forward_laplacian(u)``
   (dense: ``sparsity_threshold=0``); the parameters are closed over by the function folx
   transforms, so its jaxpr carries them as constants that ``value_and_grad`` differentiates.

Before anything is timed each row's loss is compared with symnet's (relative difference at
most ``1e-10``) and its gradient too (largest difference relative to the gradient's largest
entry, at most ``1e-8``; for ``symnet.torch`` parameter by parameter where its parameter names
say which node's ``W`` or ``b`` each is, else the gradients' norms); a row that disagrees is not
timed and says so, as does one that cannot be imported ("not available") or fails ("failed").
The head's bias does not reach the Laplacian: its gradient is zero (PyTorch's ``None``).  The
table gives each row's loss.

Timing follows ``train_speed.py``: the rows take turns ``--rounds`` times, each turn the
median of ``--repeats`` steps after one warm-up step, with a ``--pause`` between turns (worker
threads spin for a while after their last operation and would take the cores from the next
row).  On a shared machine the speed changes from minute to minute, so each round's ratio
compares rows a few seconds apart: the table gives the median over rounds of each row's
medians and the median (range) of its per-round ratio to symnet's fit step.  Every side uses
every core: symnet's chunks of points on ``kernel.threads`` threads; PyTorch's intra-op threads
(``torch.set_num_threads``); XLA's, numpy's OpenBLAS and the others through
:func:`machine.configure_threads`, which runs before any of them is imported.  The set-up column
is the time from building a row's step to the end of its first call (symnet's ``compile_vjp``,
JAX's and folx's ``jit`` compile -- also given alone in the note --, PyTorch's first step).

Run:  python benchmarks/train_step.py [--points 10000] [--rounds 7] [--repeats 5] [--pause 0.5]
                                      [--nets chain,resnet] [--skip jax,folx] [--out FILE]

``--skip`` takes the keys symnet, symnet.torch, autograd, torch.func, jax, folx.

``--out`` writes the header and the table to FILE (overwriting it); without it they are only
printed.
"""

from __future__ import annotations

import machine

THREADS = machine.configure_threads()  # before numpy, JAX and PyTorch are imported

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

import symnet  # noqa: E402
from symnet.graph import zoo  # noqa: E402

CORES = machine.cores()
CHAIN_SIZES = [2, 64, 64, 64, 1]
RESNET = {"d_in": 2, "width": 64, "blocks": 3}
LOSS_RTOL, GRAD_RTOL = 1e-10, 1e-8

#: ``step() -> (loss, grads)``: grads ``{node: {param: array}}``, or a list of arrays in an order of its own
Step = Callable[[], tuple[float, Any]]
Params = dict[str, dict[str, np.ndarray]]


# --- the problem ----------------------------------------------------------------------------------

def chain_net(seed: int = 0) -> symnet.Network:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(a, b)) / np.sqrt(a) for a, b in zip(CHAIN_SIZES, CHAIN_SIZES[1:])]
    biases = [rng.normal(size=b) * 0.1 for b in CHAIN_SIZES[1:]]
    return symnet.Network.from_weights(weights, biases, ["tanh"] * (len(CHAIN_SIZES) - 2) + ["linear"])


NETS: dict[str, tuple[str, Callable[[], symnet.Network]]] = {
    "chain": (f"chain {'-'.join(map(str, CHAIN_SIZES))} tanh", chain_net),
    "resnet": (f"ResNet zoo net resnet_mlp(width={RESNET['width']}, blocks={RESNET['blocks']})",
               lambda: zoo.resnet_mlp(**RESNET)),
}


def poisson_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` collocation points in ``[0, 1]^2`` and ``f = 2π² sin(πx) sin(πy)`` at them (``-Δu = f``)."""
    X = np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, 2))
    return X, 2 * np.pi ** 2 * np.sin(np.pi * X[:, 0]) * np.sin(np.pi * X[:, 1])


def graph_ops(net: symnet.Network) -> tuple[list[tuple[str, str, tuple[str, ...], str]], str]:
    """The net's graph as ``(name, op, inputs, activation)`` steps, and the output node: the ops
    this benchmark's torch and JAX evaluators know (plain dense, activation, add)."""
    steps = []
    for node in net.graph.nodes[1:]:
        if node.op == "dense" and node.attrs.get("parametrization", "plain") != "plain":
            raise NotImplementedError(f"{node.name}: a {node.attrs['parametrization']} dense node")
        if node.op not in ("dense", "activation", "add"):
            raise NotImplementedError(f"no rule for op {node.op!r} in this benchmark's evaluators")
        steps.append((node.name, node.op, tuple(node.inputs), node.activation.name if node.op == "activation" else ""))
    return steps, net.graph.output


def evaluator(net: symnet.Network, m: Any) -> Callable[[Any, Any], Any]:
    """``u(params, x)``: the net's output 0 in namespace ``m`` (``torch`` or ``jax.numpy``), at one
    point ``x`` ``(d,)`` (a scalar) or a batch ``(n, d)`` (``(n,)``); ``params`` as symnet's
    ``{node: {"W": (fan_in, fan_out), "b": (1, fan_out)}}``."""
    steps, output = graph_ops(net)
    acts = {"tanh": m.tanh, "sin": m.sin, "linear": lambda t: t, "sigmoid": lambda t: 1 / (1 + m.exp(-t))}
    first = net.graph.nodes[0].name

    def u(params: Any, x: Any) -> Any:
        values = {first: x}
        for name, op, inputs, activation in steps:
            a = values[inputs[0]]
            if op == "dense":
                values[name] = a @ params[name]["W"] + params[name]["b"].reshape(-1)
            elif op == "activation":
                values[name] = acts[activation](a)
            else:
                values[name] = a + values[inputs[1]]
        return values[output][..., 0]
    return u


# --- the comparators: make(net, params, X, fX) -> (step, note) ------------------------------------

def symnet_step(net: symnet.Network, params: Params, X: np.ndarray, fX: np.ndarray) -> tuple[Step, str]:
    kernel = symnet.compile_vjp(net, ("laplacian",))
    n = len(X)

    def loss(P: np.ndarray, rows: slice, r: Any) -> Any:
        return ((r.laplacian[:, 0] + fX[rows]) ** 2).sum() / n

    def step() -> tuple[float, Any]:
        value, grads, _ = kernel.value_and_grad(X, loss, weights=params)
        return value, grads
    return step, f"{kernel.algebra.size} Taylor streams, {kernel.threads} threads"


def symnet_torch_step(net: symnet.Network, params: Params, X: np.ndarray, fX: np.ndarray) -> tuple[Step, str]:
    import torch
    import symnet.torch as symnet_torch  # being written: ImportError means "not available"

    module = symnet_torch.Derivatives(net, derivatives=("laplacian",))
    Xt, ft = torch.from_numpy(X), torch.from_numpy(fX)
    named = list(module.named_parameters())
    owners = _owners(named, params)

    def step() -> tuple[float, Any]:
        for _, w in named:
            w.grad = None
        loss = ((module(Xt).laplacian.reshape(-1) + ft) ** 2).mean()
        loss.backward()
        grads = [_grad(w) for _, w in named]
        if owners is None:  # names of its own: the gradients are compared by their norm
            return float(loss.detach()), grads
        found: dict[str, dict[str, np.ndarray]] = {}
        for (node, key), g in zip(owners, grads):
            found.setdefault(node, {})[key] = g
        return float(loss.detach()), found
    return step, f"{sum(w.numel() for _, w in named)} parameters in the module"


def _owners(named: list[tuple[str, Any]], params: Params) -> list[tuple[str, str]] | None:
    """symnet's ``(node, parameter)`` for each of a module's named parameters (``z1.W``, ``z1_W``,
    ``params.z1__W``, ...) when every one names one of a matching shape, each once; else ``None``."""
    owners = []
    for name, w in named:
        parts = name.replace("__", ".").split(".")
        head, _, tail = parts[-1].rpartition("_")
        for node, key in ((parts[-2] if len(parts) > 1 else "", parts[-1]), (head, tail)):
            if key in params.get(node, {}) and params[node][key].size == w.numel():
                owners.append((node, key))
                break
        else:
            return None
    count = sum(len(d) for d in params.values())
    return owners if len(set(owners)) == len(owners) == count else None


def _grad(w: Any) -> np.ndarray:
    """A leaf's gradient as numpy; zeros for one the loss does not reach (the head's bias: Δu ignores it)."""
    return np.zeros(tuple(w.shape)) if w.grad is None else w.grad.detach().numpy()


def _torch_params(params: Params) -> dict[str, dict[str, Any]]:
    import torch
    return {node: {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in d.items()}
            for node, d in params.items()}


def torch_autograd_step(net: symnet.Network, params: Params, X: np.ndarray, fX: np.ndarray) -> tuple[Step, str]:
    import torch
    torch.set_num_threads(CORES)
    u = evaluator(net, torch)
    tp = _torch_params(params)
    leaves = [w for d in tp.values() for w in d.values()]
    Xt, ft = torch.from_numpy(X).requires_grad_(True), torch.from_numpy(fX)

    def step() -> tuple[float, Any]:
        for w in leaves:
            w.grad = None
        g, = torch.autograd.grad(u(tp, Xt).sum(), Xt, create_graph=True)
        lap = sum(torch.autograd.grad(g[:, i].sum(), Xt, create_graph=True)[0][:, i] for i in range(X.shape[1]))
        loss = ((lap + ft) ** 2).mean()
        loss.backward()
        return float(loss.detach()), {node: {k: _grad(w) for k, w in d.items()} for node, d in tp.items()}
    return step, "double backward, one pass per input dimension"


def torch_func_step(net: symnet.Network, params: Params, X: np.ndarray, fX: np.ndarray) -> tuple[Step, str]:
    import torch
    torch.set_num_threads(CORES)
    func = torch.func
    u = evaluator(net, torch)
    tp = {node: {k: torch.from_numpy(v.copy()) for k, v in d.items()} for node, d in params.items()}
    Xt, ft = torch.from_numpy(X), torch.from_numpy(fX)

    def laplacian(p: Any, x: Any) -> Any:
        return torch.trace(func.hessian(u, argnums=1)(p, x))

    def loss(p: Any) -> Any:
        return ((func.vmap(laplacian, in_dims=(None, 0))(p, Xt) + ft) ** 2).mean()
    grad_and_value = func.grad_and_value(loss)

    def step() -> tuple[float, Any]:
        grads, value = grad_and_value(tp)
        return float(value), {node: {k: g.numpy() for k, g in d.items()} for node, d in grads.items()}
    return step, "grad_and_value of vmap(trace(hessian)), hessian = jacfwd(jacrev)"


def _jax_step(net: symnet.Network, params: Params, X: np.ndarray, fX: np.ndarray, folx: bool) -> tuple[Step, str]:
    import jax
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    u = evaluator(net, jnp)
    if folx:
        import folx as folx_module

        def laplacian(p: Any, x: Any) -> Any:
            return folx_module.forward_laplacian(lambda y: u(p, y), sparsity_threshold=0)(x).laplacian
    else:
        def laplacian(p: Any, x: Any) -> Any:
            return jnp.trace(jax.hessian(u, argnums=1)(p, x))

    def loss(p: Any, xs: Any, fs: Any) -> Any:
        return jnp.mean((jax.vmap(laplacian, in_axes=(None, 0))(p, xs) + fs) ** 2)

    jp = jax.tree_util.tree_map(jnp.asarray, params)
    Xj, fj = jnp.asarray(X), jnp.asarray(fX)
    start = time.perf_counter()
    compiled = jax.jit(jax.value_and_grad(loss)).lower(jp, Xj, fj).compile()
    setup = time.perf_counter() - start

    def step() -> tuple[float, Any]:
        value, grads = jax.block_until_ready(compiled(jp, Xj, fj))
        return float(value), jax.tree_util.tree_map(np.asarray, grads)
    formulation = "vmap of folx.forward_laplacian" if folx else "vmap of trace(jax.hessian)"
    return step, f"jit(value_and_grad), {formulation}; compile {setup:.1f} s"


#: ``--skip`` key -> (the row's name, ``make(net, params, X, fX) -> (step, note)``)
COMPARATORS: dict[str, tuple[str, Callable[..., tuple[Step, str]]]] = {
    "symnet": ("symnet fit step", symnet_step),
    "symnet.torch": ("symnet.torch", symnet_torch_step),
    "autograd": ("PyTorch autograd", torch_autograd_step),
    "torch.func": ("torch.func", torch_func_step),
    "jax": ("JAX", lambda *a: _jax_step(*a, folx=False)),
    "folx": ("folx", lambda *a: _jax_step(*a, folx=True)),
}
REFERENCE = COMPARATORS["symnet"][0]


# --- checks and timing ----------------------------------------------------------------------------

def _flat(grads: Any) -> list[np.ndarray]:
    if isinstance(grads, dict):
        return [np.asarray(v) for d in grads.values() for v in d.values()]
    return [np.asarray(g) for g in grads]


def disagreement(loss: float, grads: Any, ref_loss: float, ref_grads: Params) -> tuple[float, float, str]:
    """(relative loss difference, relative gradient difference, how the gradients were compared)."""
    dloss = abs(loss - ref_loss) / abs(ref_loss)
    scale = max(float(np.max(np.abs(g))) for g in _flat(ref_grads))
    if isinstance(grads, dict):
        diff = max(float(np.max(np.abs(np.asarray(grads[node][k]).reshape(r.shape) - r)))
                   for node, d in ref_grads.items() for k, r in d.items())
        return dloss, diff / scale, "per parameter"
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in _flat(grads)))
    ref = math.sqrt(sum(float(np.sum(g * g)) for g in _flat(ref_grads)))
    return dloss, abs(norm - ref) / ref, "gradient norms"


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}".replace("|", "/")


def prepare(key: str, points: int, skip: set[str]) -> list[dict[str, Any]]:
    """Every comparator's step for one net, checked against symnet's fit step; failures noted."""
    title, build = NETS[key]
    net = build()
    X, fX = poisson_points(points)
    params = symnet.compile_vjp(net, ("laplacian",)).params()  # the weights every side starts from
    count = sum(v.size for d in params.values() for v in d.values())
    rows: list[dict[str, Any]] = []
    reference: tuple[float, Params] | None = None
    for key, (name, make) in COMPARATORS.items():
        row = {"net": f"{title}, {count} params", "comparator": name, "times": []}
        rows.append(row)
        if key in skip:
            row["note"] = "skipped (--skip)"
            continue
        try:
            start = time.perf_counter()
            step, row["note"] = make(net, params, X, fX)
            loss, grads = step()
            row["setup"] = time.perf_counter() - start
        except ImportError as exc:  # an optional comparator (symnet.torch, folx) says why in the table
            row["note"] = f"not available: {_brief(exc)}"
            continue
        except Exception as exc:  # and so does one that fails on this net
            row["note"] = f"failed: {_brief(exc)}"
            continue
        row["loss"] = loss
        if reference is None:
            if name != REFERENCE:
                row["note"] += "; not checked (symnet's fit step did not run)"
            reference = (loss, grads) if name == REFERENCE else None
            row["step"] = step
            continue
        dloss, dgrad, how = disagreement(loss, grads, *reference)
        row["check"] = f"loss {dloss:.1e}, gradient {dgrad:.1e} ({how})"
        if dloss > LOSS_RTOL or dgrad > GRAD_RTOL:
            row["note"] = f"DISAGREES with symnet: {row['check']}; not timed"
            continue
        row["step"] = step
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| net | comparator | ms per step (median) | time / symnet fit step (range over rounds) | loss | "
             "set-up s | rel. diff to symnet | note |",
             "|---|---|---|---|---|---|---|---|"]
    base: dict[str, list[float]] = {r["net"]: r["times"] for r in rows if r["comparator"] == REFERENCE}
    for r in rows:
        loss = f"{r['loss']:.15g}" if "loss" in r else "-"
        setup = f"{r['setup']:.2f}" if "setup" in r else "-"
        if not r["times"]:
            lines.append(f"| {r['net']} | {r['comparator']} | - | - | {loss} | {setup} | {r.get('check', '-')} | "
                         f"{r.get('note', '')} |")
            continue
        ours = base.get(r["net"], [])
        ratios = sorted(t / b for t, b in zip(r["times"], ours)) if ours else []
        ratio = (f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})" if ratios else "-")
        lines.append(f"| {r['net']} | {r['comparator']} | {statistics.median(r['times']) * 1e3:.1f} | {ratio} | "
                     f"{loss} | {setup} | {r.get('check', 'reference')} | {r['note']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7, help="turns of each comparator")
    parser.add_argument("--repeats", type=int, default=5, help="steps timed per turn (their median)")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between turns")
    parser.add_argument("--nets", default=",".join(NETS), help="comma-separated: " + ", ".join(NETS))
    parser.add_argument("--skip", default="", help="comparators to leave out, comma-separated: "
                        + ", ".join(COMPARATORS))
    parser.add_argument("--out", type=Path, help="write the header and the table to this file")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if skip - set(COMPARATORS):
        parser.error(f"--skip: unknown {', '.join(sorted(skip - set(COMPARATORS)))}; "
                     f"the keys are {', '.join(COMPARATORS)}")

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = machine.describe({64: machine.matmul_gflops(64)}, machine.memory_bandwidth(), THREADS)
    print("\n".join(header), flush=True)
    rows = {key: prepare(key, args.points, skip) for key in args.nets.split(",")}
    for found in rows.values():
        for r in found:
            print(f"  {r['net']} / {r['comparator']}: loss {r.get('loss', '-')}, "
                  f"{r.get('check', 'reference' if r['comparator'] == REFERENCE else '-')}; {r.get('note', '')}",
                  flush=True)

    for number in range(args.rounds):
        for found in rows.values():
            for r in found:
                if "step" in r:
                    time.sleep(args.pause)
                    r["times"].append(machine.median_time(r["step"], args.repeats))
        print(f"round {number + 1}/{args.rounds} done", flush=True)

    command = ("python benchmarks/train_step.py " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if v not in (None, "") and k != "out")).strip()
    text = "\n".join([
        *header,
        f"- problem: -Δu = 2π² sin(πx) sin(πy) on [0, 1]^2, loss = mean((Δu + f)^2) at {args.points} uniform "
        "points, float64; one step = loss + exact gradient w.r.t. every parameter",
        f"- timing: {args.rounds} rounds, comparators taking turns, each turn the median of {args.repeats} steps after "
        f"a warm-up, {args.pause} s between turns; losses checked to {LOSS_RTOL:g} and gradients to {GRAD_RTOL:g} "
        "(relative) against symnet first",
        f"- command: `{command}` ({started})",
        "",
        table([r for found in rows.values() for r in found]),
    ])
    print()
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
