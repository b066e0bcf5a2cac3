"""symnet's exact derivative kernels as a JAX op: PINN losses trained with JAX's optimisers.

:func:`derivatives` wraps :func:`symnet.compile_vjp` as one differentiable JAX function
``fn(params, X) -> {name: array}``: its forward pass runs the symnet kernel on the host
(:func:`jax.pure_callback`), its reverse pass runs :meth:`symnet.VJPKernel.vjp`, the exact
gradient of ``sum <cotangent, result>`` with respect to every parameter and every point, in a
second callback.  The op is a :func:`jax.custom_vjp`, so losses built from its results work
under :func:`jax.jit`, :func:`jax.grad` and :func:`jax.value_and_grad`, and the parameters are a
plain pytree ``{node: {parameter: array}}`` for any JAX optimiser (optax, a hand-written step).
:func:`network` turns trained parameters back into a :class:`symnet.Network`.

Needs JAX 0.4.34 or later (``pip install 'jax>=0.4.34'``: ``pure_callback``'s ``vmap_method``);
``import symnet`` does not import it.

What the op does and does not do:

* **float64 only.**  symnet's kernels compute in float64, so the op needs JAX's 64-bit mode,
  ``jax.config.update("jax_enable_x64", True)`` (or ``with jax.enable_x64(True):`` on JAX
  versions that have it); without it :func:`derivatives` and every call raise
  :class:`symnet.InputError` saying so.  Parameters and points of other float dtypes are cast
  to float64 inside the op (the cast is differentiated as usual).
* **First-order reverse mode only.**  :func:`jax.grad`, :func:`jax.value_and_grad` and
  :func:`jax.vjp` of anything built from ``fn`` are exact.  Forward mode (:func:`jax.jvp`,
  :func:`jax.jacfwd`) is not defined for a ``custom_vjp`` function, and derivatives of the
  reverse pass (:func:`jax.hessian`, ``grad`` of ``grad``) are not supported: the reverse
  pass is a host callback with no derivative rule of its own, and JAX raises an error.
  Derivatives with respect to the *points* belong in the request instead (``"jacobian"``,
  ``"hessian"``, ``(0, 0, 1)``, ...): they are computed exactly by the kernel.
* **vmap runs sequentially.**  Under :func:`jax.vmap` both callbacks use
  ``vmap_method="sequential"``: the kernel runs once per batch element (correct for batched
  points, batched parameters or both, but one kernel call per element -- for many points of
  one network stack them along ``N`` instead).
* **Host callbacks.**  The op runs on the host's CPUs, whatever device the rest of the
  computation is on (arrays are copied there and back).  Errors the kernel raises (a NaN or
  infinite point) surface from JAX as its runtime error wrapping symnet's message.

>>> import jax, jax.numpy as jnp, numpy as np, symnet, symnet.jax
>>> previous = jax.config.jax_enable_x64
>>> jax.config.update("jax_enable_x64", True)
>>> net = symnet.Network.from_weights([[[1.0, -0.5]], [[0.5], [2.0]]], [[0.0, 0.2], [0.1]], ["tanh", "linear"])
>>> fn, params = symnet.jax.derivatives(net, ("value", "laplacian"))
>>> fn
DerivativeOp(value, laplacian; 1 -> 1, parameters z1.W (1, 2), z1.b (1, 2), z2.W (2, 1), z2.b (1, 1))
>>> X = jnp.linspace(-1.0, 1.0, 5)[:, None]
>>> def loss(params):                       # u'' = -f, f = pi^2 sin(pi x): a Poisson residual
...     out = fn(params, X)
...     return jnp.mean((out["laplacian"][:, 0] + np.pi**2 * jnp.sin(np.pi * X[:, 0])) ** 2)
>>> value, grads = jax.jit(jax.value_and_grad(loss))(params)
>>> value.dtype, grads["z1"]["W"].shape
(dtype('float64'), (1, 2))
>>> trained = {node: {k: v - 1e-3 * grads[node][k] for k, v in p.items()} for node, p in params.items()}
>>> bool(loss(trained) < value)
True
>>> symnet.jax.network(net, trained)
Network(1 -> 2 -> 1, activations=(tanh, linear), numeric)
>>> jax.config.update("jax_enable_x64", previous)
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError as exc:  # pragma: no cover - the extra is part of the test install
    raise ImportError("symnet.jax needs JAX: pip install 'jax>=0.4.34' (CPU), or JAX for your accelerator "
                      "(https://docs.jax.dev/en/latest/installation.html)") from exc

from .errors import InputError, ShapeError
from .kernels import VJPKernel, compile_vjp
from .network import Network

__all__ = ["DerivativeOp", "Params", "derivatives", "network"]

#: A network's parameters as a pytree: ``{node: {parameter: float64 array of its shape}}``.
Params = dict[str, dict[str, Any]]


def _require_x64(where: str) -> None:
    if jax.dtypes.canonicalize_dtype(np.float64) != np.float64:
        raise InputError(f"{where} needs JAX's 64-bit mode (symnet's kernels compute in float64): call "
                         "jax.config.update('jax_enable_x64', True) first (or run inside "
                         "`with jax.enable_x64(True):` on JAX versions that have it)")


class DerivativeOp:
    """``op(params, X) -> {name: array}``: a network's derivatives at points, differentiable in JAX.

    Made by :func:`derivatives`.  A call takes ``params``, the pytree ``{node: {parameter:
    array}}`` (the structure :func:`derivatives` returns; each array of its parameter's shape, or
    ``(w,)`` for a ``(1, w)`` bias), and points ``X`` ``(N, d)`` (``(N,)`` when ``d = 1``), and returns a dict of float64
    arrays by result name (:attr:`outputs`): ``"value"`` ``(N, m)``, ``"jacobian"`` ``(N, m, d)``,
    ``"hessian"`` ``(N, m, d, d)``, ``"laplacian"`` and ``"biharmonic"`` ``(N, m)``, an explicit
    partial ``(0, 0, 1)`` as ``"partial_0_0_1"`` ``(N, m)``.

    Reverse-mode derivatives of the call with respect to ``params`` and ``X`` are exact
    (:meth:`symnet.VJPKernel.vjp`); see the module's notes for x64, vmap and higher orders.

    Attributes:
        kernel: the :class:`symnet.VJPKernel` that runs on the host.
        outputs: the results' names, in the request's order.
    """

    def __init__(self, kernel: VJPKernel) -> None:
        self.kernel = kernel
        self.outputs: tuple[str, ...] = tuple(kernel.outputs)
        self.d, self.m = kernel.d, kernel.m
        self._shapes = {(node.name, name): tuple(matrix.shape) for node in kernel.graph.nodes[1:]
                        for name, matrix in node.params.items()}
        self._apply = self._build()

    def __repr__(self) -> str:
        parameters = ", ".join(f"{node}.{name} {shape}" for (node, name), shape in self._shapes.items())
        return f"DerivativeOp({', '.join(self.outputs)}; {self.d} -> {self.m}, parameters {parameters})"

    def __call__(self, params: Mapping[str, Mapping[str, Any]], X: Any) -> dict[str, Any]:
        """The requested derivatives at ``X`` ``(N, d)`` with parameters ``params``: ``{name: array}``."""
        _require_x64("symnet.jax")
        return self._apply(self._params(params), self._points(X))

    # --- arguments, checked while tracing ---------------------------------------------------------
    def _params(self, params: Mapping[str, Mapping[str, Any]]) -> Params:
        if not isinstance(params, Mapping):
            raise ShapeError(f"params must be a dict {{node: {{parameter: array}}}}, not {type(params).__name__}")
        nodes = list(dict.fromkeys(node for node, _ in self._shapes))
        unknown = sorted(set(params) - set(nodes))
        if unknown:
            raise ShapeError(f"params names {unknown}, which are no nodes with parameters of this network "
                             f"(those are {', '.join(nodes)})")
        out: Params = {}
        for (node, name), shape in self._shapes.items():
            given = params.get(node)
            wanted = sorted(n for k, n in self._shapes if k == node)
            if given is None:
                raise ShapeError(f"params has no node {node!r}; give its parameters {wanted}")
            if not isinstance(given, Mapping) or sorted(given) != wanted:
                raise ShapeError(f"params[{node!r}] must be a dict of {wanted}")
            array = jnp.asarray(given[name])
            _check_shape(node, name, array.shape, shape)
            out.setdefault(node, {})[name] = jnp.reshape(array, shape).astype(jnp.float64)
        return out

    def _points(self, X: Any) -> Any:
        P = jnp.asarray(X)
        if P.ndim == 1 and self.d == 1:
            P = P[:, None]
        if P.ndim != 2 or P.shape[1] != self.d:
            raise ShapeError(f"points must have shape (N, {self.d}), not {tuple(P.shape)}")
        return P.astype(jnp.float64)

    # --- the op -----------------------------------------------------------------------------------
    def _build(self) -> Any:
        kernel, outputs = self.kernel, self.outputs

        def host_forward(params: Params, X: Any) -> dict[str, np.ndarray]:
            result = kernel(np.asarray(X), weights=_numpy(params))
            return {name: result[name] for name in outputs}

        def host_vjp(params: Params, X: Any, bars: dict[str, Any]) -> tuple[Params, np.ndarray]:
            grads, dX = kernel.vjp(np.asarray(X), {name: np.asarray(bar) for name, bar in bars.items()},
                                   weights=_numpy(params))
            return ({node: {name: np.asarray(grads[node][name], dtype=np.float64).reshape(np.shape(array))
                            for name, array in parameters.items()} for node, parameters in params.items()},
                    np.asarray(dX, dtype=np.float64))

        def forward(params: Params, X: Any) -> dict[str, Any]:
            n = X.shape[0]
            shapes = {name: jax.ShapeDtypeStruct(kernel.request.shape(name, n, self.m, self.d), jnp.float64)
                      for name in outputs}
            return jax.pure_callback(host_forward, shapes, params, X, vmap_method="sequential")

        def forward_saving(params: Params, X: Any) -> tuple[dict[str, Any], tuple[Params, Any]]:
            return forward(params, X), (params, X)

        def backward(saved: tuple[Params, Any], bars: dict[str, Any]) -> tuple[Params, Any]:
            params, X = saved
            like = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), (params, X))
            return jax.pure_callback(host_vjp, like, params, X, bars, vmap_method="sequential")

        apply = jax.custom_vjp(forward)
        apply.defvjp(forward_saving, backward)
        return apply


def _check_shape(node: str, name: str, given: tuple[int, ...], shape: tuple[int, ...]) -> None:
    """``given`` must be ``shape``, or ``(w,)`` for a row ``(1, w)`` (a bias): never a same-size reshape."""
    if tuple(given) != shape and not (len(shape) == 2 and shape[0] == 1 and tuple(given) == shape[1:]):
        raise ShapeError(f"params[{node!r}][{name!r}] has shape {tuple(given)}, {shape} needed")


def _numpy(params: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    return {node: {name: np.asarray(array, dtype=np.float64) for name, array in parameters.items()}
            for node, parameters in params.items()}


def derivatives(net: Network, derivatives: Iterable[Any] | str = ("value",), *,
                parallel: bool = True) -> tuple[DerivativeOp, Params]:
    """A network's derivatives as a differentiable JAX op, and its parameters as a pytree.

    Args:
        net: a numeric :class:`symnet.Network`, chain or graph (a chain's parameters are named
            by its graph's dense nodes: ``z1``, ``z2``, ...).
        derivatives: what to compute, as :func:`symnet.compile` takes it: ``"value"``,
            ``"jacobian"``, ``"hessian"``, ``"laplacian"``, ``"biharmonic"``, explicit partials
            such as ``(0, 0, 1)``.
        parallel: let the kernel spread chunks of points over threads.

    Returns:
        ``(fn, params)``: ``fn(params, X) -> {name: array}`` a :class:`DerivativeOp`, and
        ``params`` ``{node: {parameter: jax float64 array}}``, the network's own weights, each of
        its parameter's shape (a dense node's ``W`` ``(fan_in, fan_out)``, ``b`` ``(1, fan_out)``).

    Raises:
        InputError: JAX's 64-bit mode is off, or the request is not one symnet knows.
        WeightError: the network's weights are symbolic.
    """
    _require_x64("symnet.jax.derivatives")
    op = DerivativeOp(compile_vjp(net, derivatives, parallel=parallel))
    params = {node: {name: jnp.asarray(array, dtype=jnp.float64) for name, array in parameters.items()}
              for node, parameters in op.kernel.params().items()}
    return op, params


def network(net: Network, params: Mapping[str, Mapping[str, Any]]) -> Network:
    """The network ``net`` with the parameters ``params``: a new, numeric :class:`symnet.Network`.

    ``params`` is a pytree as :func:`derivatives` returns it (arrays of any kind: JAX, NumPy),
    typically after training.  A chain comes back as a chain, a graph as the same graph.

    >>> import numpy as np, symnet, symnet.jax
    >>> net = symnet.Network.from_weights([[[1.0]], [[1.0]]], [[0.0], [0.0]], ["tanh", "linear"])
    >>> print(symnet.jax.network(net, {"z1": {"W": [[2.0]], "b": [[0.5]]}, "z2": {"W": [[3.0]], "b": [[-1.0]]}}))
    3.0*tanh(2.0*x0 + 0.5) - 1.0
    """
    if not isinstance(net, Network):
        raise InputError(f"symnet.jax.network takes a symnet.Network, not {type(net).__name__}")
    if not isinstance(params, Mapping):
        raise ShapeError(f"params must be a dict {{node: {{parameter: array}}}}, not {type(params).__name__}")
    given = _numpy(params)
    for node in net.graph.nodes[1:]:
        for name, matrix in node.params.items():
            if name in given.get(node.name, {}):
                _check_shape(node.name, name, given[node.name][name].shape, tuple(matrix.shape))
    return net.with_params(given)
