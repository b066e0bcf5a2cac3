"""The comparators: one function each, ``prepare(net, X, settings) -> Prepared(setup_s, evaluate)``.

``evaluate(X)`` takes float64 points ``(N, d)`` and returns :class:`Derivs` as numpy arrays:
value, gradient and Hessian for the ``hessian`` task, value and Laplacian for ``laplacian``.
Set-up is whatever must happen once per net and batch shape (tracing, compiling, building a
graph, differentiating); evaluation starts from numpy and ends in numpy.

A comparator that cannot run raises :class:`Unavailable`, whose message goes in the table
("not installed", "too slow", "symnet.compile not available yet").  Frameworks are imported
inside their comparator so that a missing one costs only its own row.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from nets import ACTIVATIONS, HESSIAN, LAPLACIAN, RefNet, forward_with

#: Points evaluated at once by every comparator that batches (bounds the memory of the
#: ``(chunk, width, d, d)`` second-order arrays: 150 MB for T5).
CHUNK = 16384

#: Plain SymPy is attempted only on nets with at most this many hidden units: the flat
#: expression of a deeper net makes ``sympy.diff`` run for hours (issue 3: 110 s already for
#: 3-16-16-1), and its Hessian would not fit in memory.
SYMPY_MAX_HIDDEN_UNITS = 64


class Unavailable(Exception):
    """This comparator does not run on this net or machine; the message says why."""


@dataclass
class Derivs:
    """Results at N points; fields a task does not compute stay ``None``.

    Attributes:
        value: ``(N,)``.
        jacobian: ``(N, d)``, the gradient.
        hessian: ``(N, d, d)``.
        laplacian: ``(N,)``.
    """

    value: np.ndarray
    jacobian: np.ndarray | None = None
    hessian: np.ndarray | None = None
    laplacian: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The computed fields by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def max_abs_error(self, reference: Derivs) -> float:
        """Largest absolute difference over every field both computed."""
        ours, theirs = self.arrays(), reference.arrays()
        return max(float(np.max(np.abs(ours[k] - theirs[k]))) for k in ours.keys() & theirs.keys())

    def head(self, n: int) -> Derivs:
        """The results at the first ``n`` points."""
        return Derivs(**{k: v[:n] for k, v in self.arrays().items()})

    @staticmethod
    def concatenate(parts: list[Derivs]) -> Derivs:
        """The results of consecutive chunks of points, joined."""
        joined = {name: np.concatenate([p.arrays()[name] for p in parts]) for name in parts[0].arrays()}
        return Derivs(**joined)


@dataclass(frozen=True)
class Settings:
    """What the run asks of every comparator.

    Attributes:
        sympy_budget_s: seconds plain SymPy may spend differentiating and lambdifying.
        compile_budget_s: seconds each fresh-process ``symnet.compile`` may take.
        threads: cores to use.
    """

    sympy_budget_s: float
    compile_budget_s: float
    threads: int


Evaluate = Callable[[np.ndarray], Derivs]


@dataclass(frozen=True)
class Prepared:
    """What a comparator's ``prepare`` returns.

    Attributes:
        setup_s: seconds of set-up (compile, trace, differentiate) before the first evaluation.
        evaluate: ``evaluate(X (N, d)) -> Derivs``.
        note: anything the table should say about the set-up.
    """

    setup_s: float
    evaluate: Evaluate
    note: str = ""


def timed(build: Callable[[], Evaluate]) -> Prepared:
    """Run ``build`` and return its seconds with its result."""
    start = time.perf_counter()
    evaluate = build()
    return Prepared(time.perf_counter() - start, evaluate)


def _import(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise Unavailable(f"{module.split('.')[0]} not installed") from exc


# ---------------------------------------------------------------------------------------------
# 1. numpy forward mode, written by hand
# ---------------------------------------------------------------------------------------------

def _chain(z: np.ndarray, tangent: np.ndarray, second: np.ndarray | None, act: str,
           task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply ``act`` to pre-activations and their derivatives (width last in every array).

    Args:
        z: ``(n, w)`` pre-activations.
        tangent: ``(n, d, w)`` their first derivatives (or ``(1, d, w)`` when shared by all points).
        second: ``(n, d, d, w)`` second derivatives (``hessian``) or ``(n, w)`` Laplacians;
            ``None`` when zero (the first layer).
    """
    f, f1, f2 = ACTIVATIONS[act].derivatives(z)
    out_tangent = f1[:, None, :] * tangent
    if task == HESSIAN:
        out_second = f2[:, None, None, :] * tangent[:, :, None, :] * tangent[:, None, :, :]
        if second is not None:
            out_second += f1[:, None, None, :] * second
    else:
        out_second = f2 * np.sum(tangent * tangent, axis=1)
        if second is not None:
            out_second += f1 * second
    return f, out_tangent, out_second


def _through(w: np.ndarray, array: np.ndarray) -> np.ndarray:
    """``array @ w`` over the last axis of an array of any rank, as one matrix product."""
    return (array.reshape(-1, w.shape[0]) @ w).reshape(*array.shape[:-1], w.shape[1])


def _forward_mode(net: RefNet, x: np.ndarray) -> Derivs:
    """Value, first- and second-order terms propagated layer by layer through matmuls."""
    (w, b, act), *rest = net.layers()
    value, tangent, second = _chain(x @ w + b, w[None], None, act, net.task)
    for w, b, act in rest:
        value, tangent, second = _chain(value @ w + b, _through(w, tangent), _through(w, second), act, net.task)
    if net.task == HESSIAN:
        return Derivs(value[:, 0], tangent[..., 0], hessian=second[..., 0])
    return Derivs(value[:, 0], laplacian=second[:, 0])


def numpy_forward_mode(net: RefNet, X: np.ndarray, settings: Settings) -> Prepared:
    """Hand-written numpy forward mode, ``CHUNK`` points at a time; nothing to set up."""

    def evaluate(points: np.ndarray) -> Derivs:
        return Derivs.concatenate([_forward_mode(net, points[i:i + CHUNK]) for i in range(0, len(points), CHUNK)])

    return Prepared(0.0, evaluate)


# ---------------------------------------------------------------------------------------------
# 2-4. autodiff frameworks: JAX (and folx), PyTorch, CasADi
# ---------------------------------------------------------------------------------------------

def _value_grad_hessian(f: Callable[[Any], Any], value_and_grad: Callable, jacfwd: Callable) -> Callable:
    """Per-point ``x -> (value, gradient, Hessian)``: forward over reverse, sharing the passes."""

    def gradient_with_aux(x: Any) -> tuple[Any, tuple[Any, Any]]:
        value, gradient = value_and_grad(f)(x)
        return gradient, (value, gradient)

    def point(x: Any) -> tuple[Any, Any, Any]:
        hessian, (value, gradient) = jacfwd(gradient_with_aux, has_aux=True)(x)
        return value, gradient, hessian

    return point


def _to_derivs(task: str, outputs: tuple[Any, ...]) -> Derivs:
    """``(value, gradient, Hessian)`` or ``(value, Laplacian)`` as numpy :class:`Derivs`."""
    arrays = [np.asarray(o) for o in outputs]
    if task == HESSIAN:
        return Derivs(arrays[0], arrays[1], arrays[2])
    return Derivs(arrays[0], laplacian=arrays[1])


def _jax_batched(net: RefNet, X: np.ndarray, point: Callable[[Any], tuple[Any, ...]]) -> Prepared:
    """``jit`` of ``point`` mapped over the rows in vmapped chunks; set-up is the AOT compile."""
    jax = _import("jax")

    def build() -> Evaluate:
        batched = jax.jit(lambda xs: jax.lax.map(point, xs, batch_size=CHUNK))
        compiled = batched.lower(jax.ShapeDtypeStruct(X.shape, np.float64)).compile()
        return lambda points: _to_derivs(net.task, jax.block_until_ready(compiled(points)))

    return timed(build)


def _jax_net(net: RefNet) -> tuple[Any, Callable[[Any], Any]]:
    """JAX (with float64 enabled) and the net as ``f(x) -> scalar`` for one point ``x (d,)``."""
    jax = _import("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    layers = net.layers(jnp.asarray)
    return jax, lambda x: forward_with(layers, x, jnp)[0]


def jax_autodiff(net: RefNet, X: np.ndarray, settings: Settings) -> Prepared:
    """JAX: ``jacfwd`` over ``value_and_grad`` (Hessian task), ``trace(hessian)`` (Laplacian)."""
    jax, f = _jax_net(net)
    if net.task == HESSIAN:
        point = _value_grad_hessian(f, jax.value_and_grad, jax.jacfwd)
    else:
        point = lambda x: (f(x), jax.numpy.trace(jax.hessian(f)(x)))  # noqa: E731
    return _jax_batched(net, X, point)


def jax_plain_hessian(net: RefNet, X: np.ndarray, settings: Settings) -> Prepared:
    """JAX as issue 3 states it: ``jit(vmap)`` of ``f``, ``grad(f)`` and ``hessian(f)`` per point.

    XLA shares what it can between the three, but ``hessian`` (``jacfwd(jacrev)``) reruns the
    forward pass; :func:`jax_autodiff` is the faster formulation, both are in the table.
    """
    if net.task != HESSIAN:
        raise Unavailable("Hessian task only (the Laplacian rows use trace(hessian) already)")
    jax, f = _jax_net(net)
    return _jax_batched(net, X, lambda x: (f(x), jax.grad(f)(x), jax.hessian(f)(x)))


def jet_for_pytorch(net: RefNet, X: np.ndarray, settings: Settings) -> Prepared:
    """jet-for-pytorch (collapsed Taylor mode), where it can be installed: it requires Python >= 3.12."""
    if net.task != LAPLACIAN:
        raise Unavailable("Laplacian only")
    if sys.version_info < (3, 12):
        raise Unavailable(f"cannot be installed here: jet-for-pytorch requires Python >= 3.12, this run uses "
                          f"Python {platform.python_version()}")
    raise Unavailable("no adapter yet: its research-prototype API changed between 0.0.1 and 1.0.0 and could "
                      "not be tested on this project's Python 3.11 machine")


def folx_laplacian(net: RefNet, X: np.ndarray, settings: Settings) -> Prepared:
    """folx's forward Laplacian (dense: ``sparsity_threshold=0``), mapped like :func:`jax_autodiff`."""
    if net.task != LAPLACIAN:
        raise Unavailable("Laplacian only")
    folx = _import("folx")
    _, f = _jax_net(net)
    laplacian_of = folx.forward_laplacian(f, sparsity_threshold=0)

    def point(x: Any) -> tuple[Any, Any]:
        result = laplacian_of(x)
        return result.x, result.laplacian

    return _jax_batched(net, X, point)


def torch_func(net: RefNet, X: np.ndarray, settings: Settings) -> Prepared:
    """PyTorch ``torch.func``: ``vmap`` (chunked) of ``jacfwd`` over ``grad_and_value``, float64."""
    torch = _import("torch")
    torch.set_num_threads(settings.threads)
    func = torch.func

    def build() -> Evaluate:
        layers = net.layers(torch.from_numpy)
        f = lambda x: forward_with(layers, x, torch)[0]  # noqa: E731
        if net.task == HESSIAN:
            value_and_grad = lambda g: lambda x: func.grad_and_value(g)(x)[::-1]  # noqa: E731
            point = _value_grad_hessian(f, value_and_grad, func.jacfwd)
        else:
            point = lambda x: (f(x), torch.trace(func.hessian(f)(x)))  # noqa: E731
        batched = func.vmap(point, chunk_size=CHUNK)
        return lambda points: _to_derivs(net.task, [o.detach() for o in batched(torch.from_numpy(points))])

    return timed(build)


def casadi_sx(net: RefNet, X: np.ndarray, settings: Settings) -> Prepared:
    """CasADi: SX graph, ``casadi.hessian``, a ``Function`` mapped over the N points on threads."""
    ca = _import("casadi")
    n, d = X.shape

    def build() -> Evaluate:
        x = ca.SX.sym("x", d)
        y = forward_with(net.layers(lambda a: ca.DM(np.atleast_2d(a))), x.T, ca)  # biases as rows
        hessian, gradient = ca.hessian(y, x)
        outputs = [y, gradient, hessian] if net.task == HESSIAN else [y, ca.trace(hessian)]
        mapped = ca.Function("net", [x], outputs).map(n, "thread", settings.threads)

        def evaluate(points: np.ndarray) -> Derivs:
            results = [np.asarray(r) for r in mapped(points.T)]  # each (rows, N * cols)
            if net.task == HESSIAN:
                value, grad, hess = results
                return Derivs(value[0], grad.T, hess.reshape(d, n, d).transpose(1, 0, 2))
            return Derivs(results[0][0], laplacian=results[1][0])

        return evaluate

    return timed(build)


# ---------------------------------------------------------------------------------------------
# 5. plain SymPy
# ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _time_budget(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`Unavailable` in the main thread if the block runs past ``seconds``."""

    def expire(signum: int, frame: Any) -> None:
        raise Unavailable(f"too slow: {what} still running after the {seconds:g} s budget")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def sympy_plain(net: RefNet, X: np.ndarray, settings: Settings) -> Prepared:
    """``sympy.diff`` of the flat closed form ``net.expr``, then ``lambdify(..., "numpy")``."""
    hidden = sum(net.sizes[1:-1])
    if hidden > SYMPY_MAX_HIDDEN_UNITS:
        raise Unavailable(f"too slow: not run ({hidden} hidden units; sympy.diff of the flat "
                          f"expression does not finish, see SYMPY_MAX_HIDDEN_UNITS)")
    sympy = _import("sympy")

    def build() -> Evaluate:
        with _time_budget(settings.sympy_budget_s, "sympy.diff + lambdify"):
            symbolic = net.symnet_network()
            expr, xs = symbolic.expr, symbolic.inputs
            gradient = [sympy.diff(expr, x) for x in xs]
            hessian = [[sympy.diff(g, x) for x in xs] for g in gradient]
            if net.task == HESSIAN:
                fn = sympy.lambdify(xs, [expr, gradient, hessian], "numpy")
            else:
                fn = sympy.lambdify(xs, [expr, sum(hessian[i][i] for i in range(len(xs)))], "numpy")

        def evaluate(points: np.ndarray) -> Derivs:
            full = lambda v: np.broadcast_to(np.asarray(v, dtype=np.float64), points.shape[:1])  # noqa: E731
            outputs = fn(*points.T)  # constants come back as scalars
            if net.task == HESSIAN:
                value, grad, hess = outputs
                return Derivs(full(value), np.stack([full(g) for g in grad], axis=-1),
                              np.stack([np.stack([full(h) for h in row], axis=-1) for row in hess], axis=-2))
            return Derivs(full(outputs[0]), laplacian=full(outputs[1]))

        return evaluate

    return timed(build)


# ---------------------------------------------------------------------------------------------
# 6. symnet
# ---------------------------------------------------------------------------------------------

#: What symnet.compile is asked for, per task.
SYMNET_DERIVATIVES = {HESSIAN: ("value", "jacobian", "hessian"), LAPLACIAN: ("value", "laplacian")}

_PROBE = Path(__file__).with_name("symnet_compile_probe.py")


def _symnet() -> Any:
    symnet = _import("symnet")
    if not hasattr(symnet, "compile"):
        raise Unavailable("symnet.compile not available yet")
    return symnet


def symnet_compile(net: RefNet, warm_up: np.ndarray) -> tuple[Any, float, float]:
    """``symnet.compile`` the net (numba backend); return the kernel, compile and first-call seconds.

    The first call runs on ``warm_up`` (a few points), so a kernel that compiles lazily is ready.
    """
    symnet = _symnet()
    symbolic = net.symnet_network()
    start = time.perf_counter()
    kernel = symnet.compile(symbolic, derivatives=SYMNET_DERIVATIVES[net.task], backend="numba")
    compiled = time.perf_counter()
    kernel(warm_up)
    return kernel, compiled - start, time.perf_counter() - compiled


def symnet_fresh_process_compile(net: RefNet, budget_s: float) -> tuple[float, float]:
    """:func:`symnet_compile` seconds (compile + first call) in a fresh interpreter.

    The cache directory is the caller's ``SYMNET_CACHE_DIR``: the first such call for a net is a
    cold compile, the second a disk-cache hit.  Raises :class:`Unavailable` past ``budget_s``.
    """
    _symnet()
    try:
        done = subprocess.run([sys.executable, str(_PROBE), net.name], capture_output=True, text=True,
                              env=os.environ.copy(), check=False, timeout=budget_s)
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(f"too slow: symnet.compile still running after the {budget_s:g} s budget "
                          "(fresh process, empty cache)") from exc
    if done.returncode != 0:
        raise RuntimeError(f"compile probe failed: {done.stderr.strip().splitlines()[-1:]}")
    seconds = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds["compile_s"], seconds["first_call_s"]


def symnet_kernel(net: RefNet, X: np.ndarray, settings: Settings) -> Prepared:
    """symnet's compiled numba kernel.

    Its set-up is the cold compile in a fresh process; a second fresh process then measures the
    disk-cache hit, and this process compiles (from that cache) the kernel it times.
    """
    cold = symnet_fresh_process_compile(net, settings.compile_budget_s)
    cached = symnet_fresh_process_compile(net, settings.compile_budget_s)
    in_process = time.perf_counter()
    kernel, _, _ = symnet_compile(net, X[:2])
    in_process = time.perf_counter() - in_process

    def evaluate(points: np.ndarray) -> Derivs:
        result = kernel(points)
        n = len(points)
        if net.task == HESSIAN:
            return Derivs(np.asarray(result.value).reshape(n), np.asarray(result.jacobian)[:, 0, :],
                          np.asarray(result.hessian)[:, 0, :, :])
        return Derivs(np.asarray(result.value).reshape(n), laplacian=np.asarray(result.laplacian).reshape(n))

    chosen = ", ".join(f"{k}={getattr(kernel, k)}" for k in ("strategy", "backend") if hasattr(kernel, k))
    note = (f"kernel {chosen}; set-up: fresh process, empty cache: compile {cold[0]:.3g} s + first call {cold[1]:.3g} s; "
            f"fresh process, disk-cache hit: {cached[0]:.3g} s + {cached[1]:.3g} s; "
            f"this process (cache hit): {in_process:.3g} s")
    return Prepared(sum(cold), evaluate, note)


@dataclass(frozen=True)
class Comparator:
    """A row of the table: its label, its ``prepare`` function and the tasks it runs."""

    label: str
    prepare: Callable[[RefNet, np.ndarray, Settings], Prepared]
    tasks: tuple[str, ...] = (HESSIAN, LAPLACIAN)


#: Table order: symnet first (the reference for ratios and errors), then the others.
COMPARATORS: tuple[Comparator, ...] = (
    Comparator("symnet.compile(backend='numba')", symnet_kernel),
    Comparator("numpy forward mode (hand-written)", numpy_forward_mode),
    Comparator("JAX jit(vmap) of jacfwd(value_and_grad) / trace(hessian)", jax_autodiff),
    Comparator("JAX jit(vmap) of grad + hessian (issue 3's formulation)", jax_plain_hessian, (HESSIAN,)),
    Comparator("folx forward Laplacian (JAX)", folx_laplacian, (LAPLACIAN,)),
    Comparator("jet-for-pytorch collapsed Taylor mode", jet_for_pytorch, (LAPLACIAN,)),
    Comparator("PyTorch torch.func vmap", torch_func),
    Comparator("CasADi SX hessian, Function.map(thread)", casadi_sx),
    Comparator("SymPy diff + lambdify (numpy)", sympy_plain),
)

