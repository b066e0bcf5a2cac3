"""Compiled kernels: exact derivatives of a network as fast batch code.

:func:`compile` prints the chain-rule program (:mod:`symnet.program`) of the requested
derivatives as one fused kernel -- every shared quantity (the forward pass, activation
derivatives, each symmetric Hessian entry) is computed once per point -- and compiles it:

* ``backend="numba"``: a per-point loop (``numba.prange`` when ``parallel=True``) compiled by
  numba, cached on disk (see :mod:`symnet.kernels._cache`) so a second process loads it in
  milliseconds -- only in a folder that is yours and that nobody else can write: otherwise a
  :class:`CacheWarning` says why and kernels are compiled in memory;
* ``backend="numpy"``: the same program as whole-array numpy code, evaluated in chunks;
  it compiles nothing.

Kernels are keyed by the *architecture* (layer sizes, activations, request, options):
weights are runtime arguments, so a retrained or reloaded network with the same
architecture reuses the compiled kernel and never recompiles.

The package, as the data flows: :mod:`~symnet.kernels._strategy` picks the strategy and
schedule; :mod:`~symnet.kernels._architecture` keys the kernel and hands it the weights;
:mod:`~symnet.kernels.codegen` prints the expression program, :mod:`~symnet.kernels._layered`
and :mod:`~symnet.kernels._adjoint` the layer-by-layer passes; :mod:`~symnet.kernels._cache`
keeps them on disk; :mod:`~symnet.kernels._kernel` runs them on points into
:mod:`~symnet.kernels._result`; :mod:`~symnet.kernels._loss` and
:mod:`~symnet.kernels._sobolev` are the training kernels.  This module is :func:`compile`.

>>> import numpy as np, symnet
>>> net = symnet.Network.from_weights([-1.3284513, 0.5667597], [-1.328055, 1.0003909], ["square", "linear"])
>>> kernel = symnet.compile(net, derivatives=("value", "jacobian", "hessian"), backend="numpy")
>>> result = kernel(np.array([[0.0], [1.0]]))
>>> result.value.shape, result.jacobian.shape, result.hessian.shape
((2, 1), (2, 1, 1), (2, 1, 1, 1))
>>> np.round(result.value[:, 0], 6)
array([2.000002, 5.000029])
"""

from __future__ import annotations

import json
import sys
import threading
import time
import warnings
from typing import Any, Iterable

import numpy as np
import sympy

from ..errors import InputError, SymnetError
from ..network import Network
from ..program import MultiIndex, build
from ..requests import QUANTITIES, Request, parse, partial_name
from . import _cache
from ._adjoint import AdjointPlan
from ._architecture import architecture, twin, weight_arrays
from ._cache import CacheWarning
from ._kernel import Kernel
from ._graph_adjoint import GraphAdjointPlan
from ._graph_layered import GraphLayeredPlan
from ._layered import CompiledPassWarning, LayeredPlan
from ._loss import LossKernel
from ._vjp import VJPKernel, compile_vjp
from ._result import KernelResult
from ._sobolev import GraphSobolevLoss, SobolevLoss
from ._strategy import EXPRESSION_LIMIT, EXPRESSION_WARNING, choose, node_by_node, schedule_of, warn_if_large
from .codegen import Output, generate, generator_digest

__all__ = ["compile", "compile_loss", "compile_vjp", "CacheWarning", "CompiledPassWarning", "EXPRESSION_LIMIT",
           "EXPRESSION_WARNING", "GraphSobolevLoss",
           "Kernel", "KernelResult", "LossKernel", "SobolevLoss", "NumbaUnavailableWarning", "VJPKernel", "stats"]

_VERSION = "5"  # bump when generated code changes meaning (the key also holds the generator's digest)

_BACKENDS = ("numba", "numpy")
_STRATEGIES = ("auto", "expression", "layered")
_SCHEDULES = ("auto", "forward", "forward-adjoint")

#: Counters a test (or a curious user) can read: how often sources were generated and
#: kernels compiled in this process.
stats = {"sources_generated": 0, "kernels_built": 0}

_MEMO: dict[str, tuple[Any, str, bool]] = {}
_MEMO_LOCK = threading.Lock()


class NumbaUnavailableWarning(UserWarning):
    """numba could not be imported; the numpy backend is used instead."""


class KernelError(SymnetError, RuntimeError):
    """A kernel could not be built."""


# --- the request ----------------------------------------------------------------------------


# The vocabulary of requests (names, aliases, multi-indices, assembly, shapes) is symnet.requests.


def _parse_request(derivatives: Iterable[Any] | str, net: Network) -> Request:
    return parse(derivatives, net.n_inputs, net.input_index)


def _outputs(request: Request, jets: list[dict[MultiIndex, sympy.Expr]], d: int) -> list[Output]:
    return [Output(name, tuple(((k, *index), expr) for k, jet in enumerate(jets)
                               for index, expr in request.entries(name, jet, d)))
            for name in request.outputs]


def _rebuild(net: Network, derivatives: tuple[Any, ...], backend: str, dtype: np.dtype, parallel: bool, cache: bool,
             strategy: str, schedule: str, reason: str) -> Kernel:
    """A pickled kernel compiled again (:meth:`Kernel.__reduce__`), saying why its strategy was first chosen."""
    kernel = compile(net, derivatives, backend, dtype, parallel, cache, strategy, schedule)
    object.__setattr__(kernel, "strategy_reason", reason or kernel.strategy_reason)
    return kernel


def compile(  # noqa: A001 - the public name the API promises
    net: Network,
    derivatives: Iterable[Any] | str = ("value", "jacobian", "hessian"),
    backend: str = "numba",
    dtype: Any = np.float64,
    parallel: bool = True,
    cache: bool = True,
    strategy: str = "auto",
    schedule: str = "auto",
) -> Kernel:
    """Compile the value and exact derivatives of ``net`` into a batch kernel.

    Args:
        net: a numeric network.
        derivatives: any of ``"value"``, ``"jacobian"`` (alias ``"gradient"``), ``"hessian"``,
            ``"laplacian"``, ``"biharmonic"`` (:mod:`symnet.requests`: one vocabulary for compile,
            export and verify), and explicit partials as tuples of inputs (``(0, 0, 1)`` is
            ``d^3 / dx0^2 dx1``; names work too).
        backend: ``"numba"`` (compiled) or ``"numpy"`` (compiles nothing).  If numba cannot
            be imported, ``"numba"`` falls back to ``"numpy"`` with a
            :class:`NumbaUnavailableWarning`; ``kernel.backend`` says which ran.
        dtype: ``numpy.float64`` or ``numpy.float32`` for inputs, weights and results.
        parallel: use every core (numba backend): ``numba.prange`` over points in the
            expression strategy, chunks of points on ``kernel.threads`` threads in the layered
            one (:mod:`symnet.kernels._threads`).
        cache: keep generated kernels on disk (``$SYMNET_CACHE_DIR``, default
            ``~/.cache/symnet``); a second process then skips code generation and compilation.
            Only a folder that is yours and not writable by group or others is used (created
            with mode ``0o700``); otherwise a :class:`CacheWarning` says why, once, and the
            kernel is compiled in memory (docs/kernels.md, "The cache folder").
        strategy: ``"expression"`` prints the chain-rule program point by point (one fused,
            unrolled kernel: best for small networks); ``"layered"`` propagates value,
            tangents, second-order terms and asked-for partials of order 3 to 6 layer by layer
            with one matrix multiply per layer, or node by node on a graph (best for wide
            networks; see :mod:`symnet.kernels._layered` and :mod:`symnet.kernels._graph_layered`);
            ``"auto"`` picks by size
            (:data:`EXPRESSION_LIMIT`; partials of order 7 or more take
            the expression strategy).  ``kernel.strategy`` says which was used.
        schedule: for the layered strategy, ``"forward"`` (Taylor mode: every derivative
            stream through every layer) or ``"forward-adjoint"`` (value and tangents forward,
            then one adjoint sweep adding each layer's Hessian term; numba backend, for
            Hessian entries: :mod:`symnet.kernels._adjoint`; on a graph either backend,
            :mod:`symnet.kernels._graph_adjoint`); ``"auto"`` takes the one with fewer streams
            on chains, and on graphs with numba when the graph has no product node as well, or
            few pointwise units per multiply-add (the sweep measured slower on narrow gated nets:
            docs/kernels.md).  ``kernel.schedule`` says which was used.

    Returns:
        a :class:`Kernel`; ``kernel(X)`` returns a :class:`KernelResult`.
    """
    start = time.perf_counter()
    if backend not in _BACKENDS:
        raise InputError(f"backend must be one of {_BACKENDS}, not {backend!r}")
    if strategy not in _STRATEGIES:
        raise InputError(f"strategy must be one of {_STRATEGIES}, not {strategy!r}")
    if schedule not in _SCHEDULES:
        raise InputError(f"schedule must be one of {_SCHEDULES}, not {schedule!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise InputError(f"dtype must be float64 or float32, not {dtype}")
    if backend == "numba" and not _numba_available():
        # a kernel rebuilt from a pickle names its schedule; forward-adjoint needs numba
        forward = " and the forward schedule" if schedule == "forward-adjoint" else ""
        warnings.warn(f"numba is not available; using the numpy backend{forward} (kernel.backend == 'numpy')",
                      NumbaUnavailableWarning, stacklevel=2)
        backend = "numpy"
        schedule = "forward" if schedule == "forward-adjoint" else schedule
    request = _parse_request(derivatives, net)
    weights = weight_arrays(net, dtype)
    strategy, reason = choose(net, request, strategy)
    schedule = schedule_of(net, request, strategy, backend, schedule)
    parallel = bool(parallel) and backend == "numba"
    versions = {"python": list(sys.version_info[:2]), "numba": _numba_version() if backend == "numba" else None}
    outputs = tuple(o for o in QUANTITIES if o in request.words) + tuple(partial_name(a) for a in request.partials)
    partials = {partial_name(a): a for a in request.partials}
    description = json.dumps({
        "symnet_kernel": _VERSION, "architecture": repr(architecture(net)), "words": request.words,
        "partials": request.partials, "backend": backend, "dtype": dtype.name, "parallel": parallel,
        "strategy": strategy, "schedule": schedule, "generator": generator_digest(), **versions}, sort_keys=True)
    key = _cache.key_of(description)
    use_disk = cache and backend == "numba"
    derivatives = tuple(derivatives) if not isinstance(derivatives, str) else (derivatives,)
    with _MEMO_LOCK:
        reused = key in _MEMO
        if not reused:
            # the folder is checked (and created) before any source is generated: sources
            # compiled in memory must not ask numba for cache=True
            use_disk = use_disk and _cache.usable_cache_dir() is not None
            if strategy == "layered":
                if schedule == "forward-adjoint" and node_by_node(net):
                    plan = GraphAdjointPlan(net, request.words, request.partials, dtype, backend, parallel, use_disk)
                elif schedule == "forward-adjoint":
                    plan = AdjointPlan(net, request.words, request.partials, dtype, use_disk, parallel)
                elif node_by_node(net):
                    plan = GraphLayeredPlan(net, request.words, request.partials, dtype, backend, parallel, use_disk)
                else:
                    plan = LayeredPlan(net, request.words, request.partials, dtype, backend, parallel, use_disk)
                _MEMO[key] = (plan, "\n\n".join(plan.sources), plan.loaded_from_disk)
            else:
                symbolic, weight_map, arrays = twin(net)

                def make_source() -> str:
                    stats["sources_generated"] += 1
                    if not net.is_chain and backend == "numba":
                        warn_if_large(net, request)
                    return _source(symbolic, weight_map, arrays, request, backend, parallel, description, use_disk)

                module, source, from_disk = _cache.load_or_write(key, None, make_source, use_disk)
                _MEMO[key] = (module.kernel, source, from_disk)
            stats["kernels_built"] += 1
        compiled, source, from_disk = _MEMO[key]
    chunk = max(1, min(65536, (1 << 23) // max(1, source.count("\n"))))
    kernel = Kernel(net, derivatives, backend, dtype, parallel, source, strategy, from_disk, 0.0,
                    None if strategy == "layered" else compiled, weights, outputs, chunk,
                    compiled if strategy == "layered" else None, partials, strategy_reason=reason)
    if backend == "numba" and not reused:
        _warm_up(kernel, key, use_disk)
    object.__setattr__(kernel, "build_seconds", 0.0 if reused else time.perf_counter() - start)
    return kernel


def _warm_up(kernel: Kernel, key: str, use_disk: bool) -> None:
    """Compile (or load from numba's cache) now, not at first use; a corrupt numba cache is rebuilt.

    A layered kernel's cache entries are its generated passes (``plan.keys``), each rebuilt.
    """
    point = np.zeros((1, kernel.net.n_inputs), kernel.dtype)
    try:
        kernel(point)
    except Exception as exc:  # numba raises while reading a damaged index or data file
        if not use_disk:
            raise
        warnings.warn(f"symnet: numba's cache of kernel {key} was unreadable ({type(exc).__name__}); rebuilding it",
                      RuntimeWarning, stacklevel=3)
        for entry in kernel._plan.keys if kernel._plan is not None else [key]:
            _cache.drop_numba_cache(entry)
        kernel(point)


def _source(symbolic: Network, weights: dict[sympy.Symbol, str], arrays: list[str], request: Request, backend: str,
            parallel: bool, description: str, cache: bool) -> str:
    program = build(symbolic, request.multi_indices(symbolic.n_inputs), shift_softmax=True)
    outputs = _outputs(request, program.jets, symbolic.n_inputs)
    # generate() renders the header inertly (names in the description may come from a file)
    header = ("Generated by symnet: do not edit.\n\n" + description.replace('"', "'") + "\n")
    return generate(program, weights, arrays, outputs, backend, parallel, header, cache=cache)


def _numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _numba_version() -> str:
    import numba

    return str(numba.__version__)


def compile_loss(net: Network, loss: str = "mse") -> LossKernel:
    """A kernel for a loss and its exact gradient with respect to every weight and bias.

    ``kernel(X, Y)`` returns ``(mean loss, [(dW, db) per layer])`` -- the numbers
    :func:`symnet.param_grad` gives as exact expressions -- by reverse mode through the
    layers (one BLAS product per layer and direction); ``kernel(X, Y, weights=other_net)``
    evaluates at other weights of the same architecture without rebuilding anything.

    >>> import numpy as np, symnet
    >>> net = symnet.Network.from_weights([[[2.0]]], [[0.0]], "linear")
    >>> value, [(dW, db)] = symnet.compile_loss(net, "mse")(np.array([[1.0]]), np.array([[3.0]]))
    >>> value, dW, db
    (1.0, array([[-2.]]), array([-2.]))
    """
    return LossKernel(net, loss)
