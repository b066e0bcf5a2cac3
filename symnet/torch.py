"""symnet's exact derivatives as a PyTorch op: train on Laplacians, Hessians, third partials with ``loss.backward()``.

A PINN loss reads derivatives of the network with respect to its inputs; PyTorch gets them by
differentiating its own graph again and again (``create_graph=True``), and a third-order
residual then costs a fourth backward pass through everything before it.  Here a
:class:`~symnet.VJPKernel` (:func:`symnet.compile_vjp`) computes the requested derivatives
exactly -- truncated Taylor jets, one forward sweep -- and its exact reverse mode is the op's
backward: one more sweep gives the gradient of every parameter and of the points.

* :class:`Derivatives` -- an ``nn.Module`` around a symnet network (its parameters
  ``nn.Parameter`` copies, float64) or around a PyTorch module (that module's own parameters,
  shared: ``loss.backward()`` fills ``module.fc.weight.grad``);
* :func:`derivatives` -- the op itself, for a kernel and parameter tensors of your own.

Both return a :class:`Result`: float64 tensors ``.value`` ``(N, m)``, ``.jacobian``
``(N, m, d)``, ``.hessian`` ``(N, m, d, d)``, ``.laplacian`` ``(N, m)``, ``.biharmonic``
``(N, m)`` -- those requested -- and each explicit partial by its tuple, ``result[(0, 0, 1)]``
``(N, m)``.

**Dtypes.** The op computes in float64.  Points and parameters of any floating dtype are
converted with ``.to(torch.float64)`` -- exact for float16, bfloat16 and float32 -- and their
gradients come back in their own dtype; results are always float64.  Integer, boolean and
complex points are refused.  The kernel runs on the CPU in numpy; the results are sent to the
device of ``X`` and the gradients to each input's (written for GPU tensors, but tested on the
CPU only: the test machines have no GPU).

**Differentiable once.** The op's backward is exact but is not itself differentiated: a
second backward through it (``torch.autograd.grad(..., create_graph=True)`` and then
``.backward()`` on what came out, a gradient penalty, ``torch.autograd.gradgradcheck``) raises
:class:`DoubleBackwardError`.  Request the higher derivatives from the kernel instead
(``derivatives=("value", (0, 0, 1))``).  This is PyTorch's ``@once_differentiable``, made
strict: PyTorch's decorator refuses a second backward only where the incoming gradient itself
requires grad, and otherwise silently treats the op's gradient as a constant.

``import symnet`` does not import this module (nor PyTorch); ``import symnet.torch`` needs the
``symnet[torch]`` extra.

>>> import torch, symnet, symnet.torch
>>> net = symnet.Network.from_weights([[[1.0, -1.0]], [[0.5], [2.0]]], [[0.0, 0.5], [0.1]], ["tanh", "linear"])
>>> model = symnet.torch.Derivatives(net, ("value", "laplacian"))
>>> model
Derivatives(value, laplacian; 4 parameters copied from a symnet network)
>>> X = torch.tensor([[0.25], [-1.0]], dtype=torch.float64)
>>> result = model(X)
>>> result
Result(value=(2, 1), laplacian=(2, 1))
>>> loss = ((result.laplacian + 1.0) ** 2).mean()
>>> loss.backward()
>>> sorted(name for name, p in model.named_parameters() if p.grad is not None)
['weights.z1__W', 'weights.z1__b', 'weights.z2__W', 'weights.z2__b']
>>> model.network()                  # the trained network back, as a symnet Network
Network(1 -> 2 -> 1, activations=(tanh, linear), numeric)
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from .errors import InputError, ShapeError, SymnetError


class TorchMissingError(InputError, ImportError):
    """``import symnet.torch`` without PyTorch installed (an :class:`ImportError` too)."""


try:
    import torch
    from torch import nn
except ImportError as _exc:  # pragma: no cover - torch is part of the test install; tested by hiding it
    raise TorchMissingError("symnet.torch needs PyTorch, which is not installed: pip install 'symnet[torch]' "
                            "(or install torch itself)") from _exc

from .kernels import KernelResult, VJPKernel, compile_vjp
from .network import Network

__all__ = ["Derivatives", "DoubleBackwardError", "Result", "TorchMissingError", "derivatives"]

_TWICE = ("symnet.torch: the derivatives op is differentiable once; its gradient was differentiated again "
          "(create_graph=True, then a backward through that gradient). Request the higher derivatives from the "
          "kernel instead, e.g. derivatives=('value', (0, 0, 1)), and differentiate the loss once")


class DoubleBackwardError(SymnetError, RuntimeError):
    """A second backward pass through the derivatives op (see the module docstring)."""


class Result(KernelResult):
    """The op's results, float64 tensors by request name: ``.value``, ``.laplacian``, ..., and
    ``result[(0, 0, 1)]`` for a partial (see :class:`~symnet.KernelResult`); ``as_dict()`` gives
    ``{name: tensor}`` in the kernel's order (:attr:`VJPKernel.outputs <symnet.VJPKernel.outputs>`)."""

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}={tuple(t.shape)}" for name, t in self._arrays.items())
        return f"Result({shapes})"


# --- the op ---------------------------------------------------------------------------------------


class _RefuseSecondBackward(torch.autograd.Function):
    """The identity on a backward's gradients whose own backward raises :class:`DoubleBackwardError`.

    ``forward(ctx, count, *anchors_then_grads)`` returns clones of the last ``count`` tensors.
    The anchors (the op's inputs and incoming gradients that require grad) are inputs only so
    that the node lies on every path from the gradients to them: ``torch.autograd.grad(loss,
    params)`` and ``loss.backward(inputs=...)`` visit only such nodes, and would otherwise skip
    this one and silently drop the gradients' contribution.
    """

    @staticmethod
    def forward(ctx: Any, count: int, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(g.clone() for g in tensors[len(tensors) - count:])

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:
        raise DoubleBackwardError(_TWICE)


def _once_differentiable(backward: Any) -> Any:
    """``torch.autograd.function.once_differentiable``, strict: under ``create_graph=True`` every
    gradient is tied to a node that refuses a further backward, whether or not the incoming
    gradients require grad (PyTorch's own decorator ties them only where they do)."""

    def wrapper(ctx: Any, *grad_outputs: Any) -> Any:
        with torch.no_grad():
            grads = backward(ctx, *grad_outputs)
        if not torch.is_grad_enabled():
            return grads
        positions = [k for k, g in enumerate(grads) if g is not None]
        if not positions:
            return grads
        anchors = [t for t in (*ctx.saved_tensors, *grad_outputs) if t is not None and t.requires_grad]
        tied = _RefuseSecondBackward.apply(len(positions), *anchors,
                                           *(grads[k].detach().requires_grad_() for k in positions))
        result = list(grads)
        for k, g in zip(positions, tied):
            result[k] = g
        return tuple(result)

    wrapper.__name__, wrapper.__doc__ = backward.__name__, backward.__doc__
    return wrapper


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


class _DerivativesFunction(torch.autograd.Function):
    """``(kernel, X, *params) -> one float64 tensor per name in kernel.outputs``.

    ``X`` ``(N, d)`` and the parameters (in ``kernel.owners`` order, each of its node's shape)
    float64; :func:`derivatives` checks and converts them.  Backward: the :class:`~symnet.kernels._vjp.Pullback`
    of :meth:`VJPKernel.forward`.
    """

    @staticmethod
    def forward(ctx: Any, kernel: VJPKernel, X: torch.Tensor, *params: torch.Tensor) -> tuple[torch.Tensor, ...]:
        weights = _weights(kernel, [_numpy(p) for p in params])
        result, ctx.pullback = kernel.forward(_numpy(X), weights)  # backward reuses this sweep's streams
        ctx.kernel = kernel
        ctx.set_materialize_grads(False)  # an unused result's gradient stays None: no cotangent for it
        ctx.save_for_backward(X, *params)
        return tuple(torch.from_numpy(result[name]).to(X.device) for name in kernel.outputs)

    @staticmethod
    @_once_differentiable
    def backward(ctx: Any, *grad_outputs: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        kernel: VJPKernel = ctx.kernel
        X, *params = ctx.saved_tensors  # (autograd's check that nothing was changed in place since forward)
        cotangents = {name: _numpy(g) for name, g in zip(kernel.outputs, grad_outputs) if g is not None}
        if not cotangents or not any(ctx.needs_input_grad[1:]):
            return (None,) * (2 + len(params))
        grads, dX = ctx.pullback(cotangents)
        into_X = torch.from_numpy(dX).to(X.device) if ctx.needs_input_grad[1] else None
        into_params = [torch.from_numpy(grads[node][name]).to(p.device) if needed else None
                       for (node, name), p, needed in zip(kernel.owners, params, ctx.needs_input_grad[2:])]
        return (None, into_X, *into_params)


def _weights(kernel: VJPKernel, arrays: Sequence[np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    weights: dict[str, dict[str, np.ndarray]] = {}
    for (node, name), array in zip(kernel.owners, arrays):
        weights.setdefault(node, {})[name] = array
    return weights


def _shapes(kernel: VJPKernel) -> list[tuple[int, int]]:
    """Each parameter's shape, in ``kernel.owners`` order."""
    by_name = kernel.graph.by_name
    return [tuple(by_name[node].params[name].shape) for node, name in kernel.owners]


def _float64(t: Any, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise InputError(f"{what} must be a torch.Tensor, not {type(t).__name__}")
    if not t.is_floating_point():
        raise InputError(f"{what} is a {t.dtype} tensor; give floating-point values (float32 and float64 are "
                         "converted to float64 exactly)")
    return t.to(torch.float64)


def derivatives(kernel: VJPKernel, X: torch.Tensor, params: Sequence[torch.Tensor]) -> Result:
    """The derivatives ``kernel`` computes, at ``X``, with ``params``: a differentiable PyTorch op.

    Args:
        kernel: a :class:`~symnet.VJPKernel` (:func:`symnet.compile_vjp`); what it computes is
            ``kernel.outputs``.
        X: the points, a floating-point tensor ``(N, d)`` (converted to float64 exactly).
        params: one tensor per entry of ``kernel.owners`` (``(node, parameter)`` pairs), in that
            order, each of its parameter's shape in the graph: a dense ``W`` ``(fan_in, fan_out)``,
            a ``b`` ``(1, fan_out)``.

    Returns: a :class:`Result` of float64 tensors on ``X``'s device; ``.backward()`` through
    them gives exact gradients for ``X`` (if it requires grad) and every parameter that does.
    Differentiable once (see the module docstring).

    >>> import torch, symnet
    >>> net = symnet.Network.from_weights([[[2.0]]], [[0.0]], ["square"])    # y = (w x)^2, w = 2
    >>> kernel = symnet.compile_vjp(net, ("hessian",))
    >>> w = torch.tensor([[2.0]], dtype=torch.float64, requires_grad=True)
    >>> b = torch.zeros(1, 1, dtype=torch.float64)
    >>> hessian = derivatives(kernel, torch.tensor([[1.0]], dtype=torch.float64), [w, b]).hessian
    >>> hessian.sum().backward()                                            # d2y/dx2 = 2 w^2; d/dw = 4 w
    >>> hessian.flatten().tolist(), w.grad.tolist()
    ([8.0], [[8.0]])
    """
    if not isinstance(kernel, VJPKernel):
        raise InputError(f"derivatives needs a symnet.VJPKernel (symnet.compile_vjp(net, ...)), not "
                         f"{type(kernel).__name__}")
    X = _float64(X, "X")
    if X.ndim != 2 or X.shape[1] != kernel.d:
        raise ShapeError(f"X must have shape (N, {kernel.d}) -- one row per point, {kernel.d} input(s) -- not "
                         f"{tuple(X.shape)}")
    params = list(params)
    if len(params) != len(kernel.owners):
        raise ShapeError(f"{len(params)} parameter tensors for a kernel of {len(kernel.owners)} parameters "
                         f"({', '.join(f'{n}.{p}' for n, p in kernel.owners)}), in kernel.owners order")
    checked = []
    for (node, name), shape, p in zip(kernel.owners, _shapes(kernel), params):
        p = _float64(p, f"parameter {node}.{name}")
        if tuple(p.shape) != shape:
            raise ShapeError(f"parameter {node}.{name} has shape {tuple(p.shape)}; the network's is {shape}")
        checked.append(p)
    outputs = _DerivativesFunction.apply(kernel, X, *checked)
    return Result(dict(zip(kernel.outputs, outputs)))


# --- the module -----------------------------------------------------------------------------------


def _key(node: str, name: str) -> str:
    """``ParameterDict`` keys may not hold dots: node ``z1``'s ``W`` is ``"z1__W"`` (parameter names
    hold no underscores, so the key is unique)."""
    return f"{node}__{name}"


class Derivatives(nn.Module):
    """A network's derivatives as an ``nn.Module``: ``model(X)`` is a :class:`Result`.

    Args:
        net: a numeric :class:`symnet.Network` (chain or graph), or a ``torch.nn.Module``
            (imported with :func:`symnet.from_torch`).
        derivatives: what to compute, as :func:`symnet.compile_vjp` takes it: ``"value"``,
            ``"jacobian"``, ``"hessian"``, ``"laplacian"``, ``"biharmonic"``, partials such
            as ``(0, 0, 1)`` (``d^3 / dx0^2 dx1``).
        share: for a PyTorch module: ``True`` (the default) trains the module's own parameters --
            ``loss.backward()`` fills ``module.fc.weight.grad``, an optimiser over
            ``module.parameters()`` steps them, and the module's own ``forward`` sees each step;
            ``False`` copies the imported network's parameters into new ones.  Must be left out
            for a symnet network (whose parameters are always copied).
        parallel: thread the kernel over chunks of points.
        **import_kwargs: passed to :func:`symnet.from_torch` (``check=``, ``input_sizes=``).

    **Copied parameters** (a symnet network, or ``share=False``): every parameter of the
    network's graph is an ``nn.Parameter`` in :attr:`weights`, float64, named ``"{node}__{name}"``
    (``"z1__W"`` ``(fan_in, fan_out)``, ``"z1__b"`` ``(1, fan_out)``; a chain's nodes are
    ``z1, z2, ...``) -- including the scales and shifts an importer made of bare
    ``nn.Parameter`` objects in ``forward``'s arithmetic (numbers and buffers there are fixed
    ``rescale`` nodes, not parameters).

    **Shared parameters** (``share=True``): the module is traced once more with ``torch.fx`` and
    each ``nn.Linear`` call (and ``F.linear`` on parameters) is matched, in the order
    ``forward`` runs them, to the imported graph's dense nodes; a node's ``W`` is
    ``linear.weight.T`` and ``b`` is ``linear.bias`` (a missing bias a zero constant), read
    afresh at every call (``.to(torch.float64)``, so float32 modules train through exactly
    converted float64).  The module is registered as :attr:`module`, so
    ``model.parameters()`` are its parameters.  Graph parameters that are no module
    parameter -- a missing bias, a buffer given to ``F.linear`` -- are fixed buffers in
    :attr:`constants`, read at construction (numbers and buffers in ``forward``'s arithmetic
    are fixed ``rescale`` nodes, no parameters at all).  Sharing is refused (an
    :class:`~symnet.InputError` naming the parameter; pass ``share=False``) where a module
    parameter is not an ``nn.Linear``'s weight or bias (``LayerNorm``'s affine parameters, a
    bare ``nn.Parameter`` used in arithmetic, a parametrized ``Linear``), or where the
    matching fails its check (each matched weight must equal the imported one exactly).

    Attributes:
        kernel: the :class:`~symnet.VJPKernel`; ``outputs`` the results' names, in its order.
        weights: the copied parameters (empty when shared).
        constants: the fixed graph parameters (a missing bias, a buffer weight), as buffers.
        module: the shared PyTorch module (``None`` when copied).
    """

    def __init__(self, net: Any, derivatives: Iterable[Any] | str = ("value",), *, share: bool | None = None,
                 parallel: bool = True, **import_kwargs: Any) -> None:
        super().__init__()
        source: Any = None
        if isinstance(net, nn.Module):
            source = getattr(net, "_orig_mod", net)  # torch.compile's OptimizedModule
            from .io import from_torch

            network = from_torch(source, **import_kwargs)
            share = True if share is None else bool(share)
        elif isinstance(net, Network):
            if import_kwargs:
                raise InputError(f"{sorted(import_kwargs)} are from_torch's arguments; a symnet network needs none")
            if share:
                raise InputError("share=True shares a PyTorch module's parameters; a symnet network's are copied "
                                 "into new nn.Parameters (leave share out)")
            network, share = net, False
        else:
            raise InputError(f"Derivatives needs a symnet.Network or a torch.nn.Module, not {type(net).__name__}")
        self.kernel = compile_vjp(network, derivatives, parallel=parallel)
        values = self.kernel.params(None)  # a symbolic network is refused here, by name
        self.weights = nn.ParameterDict()
        self.constants = nn.Module()
        self.module = source if share else None
        links = _share(source, self.kernel, values) if share else {}
        self._sources: list[tuple[str, str]] = []  # per owner: ("weight" | "constant", key) or ("W" | "b", path)
        for node, name in self.kernel.owners:
            key = _key(node, name)
            value = torch.from_numpy(np.array(values[node][name], dtype=np.float64))
            if (node, name) in links:
                self._sources.append(links[(node, name)])
            elif share:
                self.constants.register_buffer(key, value)
                self._sources.append(("constant", key))
            else:
                self.weights[key] = nn.Parameter(value)
                self._sources.append(("weight", key))
        self._origin = ("a PyTorch module, shared" if share else
                        "a PyTorch module" if source is not None else "a symnet network")

    @property
    def outputs(self) -> tuple[str, ...]:
        """The results' names, in the kernel's order."""
        return self.kernel.outputs

    def tensors(self) -> list[torch.Tensor]:
        """The parameters as the op takes them: one tensor per ``kernel.owners`` entry, in the graph's
        layout (``W`` ``(fan_in, fan_out)``), differentiable back to the ``nn.Parameter`` they come from."""
        result = []
        for kind, key in self._sources:
            if kind == "weight":
                result.append(self.weights[key])
            elif kind == "constant":
                result.append(self.constants.get_buffer(key))
            elif kind == "W":
                result.append(self.module.get_parameter(key).to(torch.float64).t())
            else:  # "b"
                result.append(self.module.get_parameter(key).to(torch.float64).reshape(1, -1))
        return result

    def forward(self, X: torch.Tensor) -> Result:
        """The requested derivatives at ``X`` ``(N, d)`` (floating-point; computed in float64): a :class:`Result`."""
        return derivatives(self.kernel, X, self.tensors())

    def network(self) -> Network:
        """The network with the current parameters, as a numeric :class:`symnet.Network` (a chain for a
        chain-shaped graph, as :meth:`symnet.Network.from_graph` gives it)."""
        values: dict[str, dict[str, np.ndarray]] = {}
        with torch.no_grad():
            for (node, name), t in zip(self.kernel.owners, self.tensors()):
                values.setdefault(node, {})[name] = t.detach().cpu().numpy()
        return self.kernel.net.with_params(values)

    def __repr__(self) -> str:
        count = len(self.kernel.owners)
        shared = sum(kind in ("W", "b") for kind, _ in self._sources)
        if self.module is not None:
            how = f"{shared} of {count} parameters shared with {type(self.module).__name__}"
        else:
            how = f"{count} parameters copied from {self._origin}"
        return f"Derivatives({', '.join(self.outputs)}; {how})"


def _linear_calls(module: Any) -> list[tuple[str | None, str | None, str]]:
    """``(weight path, bias path, where)`` of each dense layer ``module.forward`` runs, in order:
    ``nn.Linear`` calls and ``F.linear`` with a parameter as weight; a path is ``None`` where the
    value is no parameter (a missing bias, a buffer)."""
    import torch.fx as fx

    modes = [(m, m.training) for m in module.modules()]
    module.eval()  # traced as the importer traces it: at inference
    try:
        graph = fx.Tracer().trace(module)
    except Exception as exc:  # noqa: BLE001 - from_torch traced it already; a failure here is unexpected
        raise InputError(f"cannot trace {type(module).__name__} again to share its parameters "
                         f"({type(exc).__name__}); pass share=False to copy them") from None
    finally:
        for m, training in modes:
            m.training = training
    parameters = {name for name, _ in module.named_parameters(remove_duplicate=False)}

    def path(arg: Any) -> str | None:
        if getattr(arg, "op", None) == "get_attr" and arg.target in parameters:
            return str(arg.target)
        return None

    calls: list[tuple[str | None, str | None, str]] = []
    for node in graph.nodes:
        if node.op == "call_module":
            sub = module.get_submodule(node.target)
            if isinstance(sub, nn.Linear):
                if type(sub) is not nn.Linear:  # a parametrized Linear: its weight is computed
                    calls.append((None, None, f"module {node.target!r} ({type(sub).__name__})"))
                    continue
                calls.append((f"{node.target}.weight", None if sub.bias is None else f"{node.target}.bias",
                              f"module {node.target!r}"))
        elif node.op == "call_function" and getattr(node.target, "__name__", "") == "linear":
            weight = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
            bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
            calls.append((path(weight), path(bias), f"F.linear at node {node.name!r}"))
    return calls


def _share(module: Any, kernel: VJPKernel,
           values: dict[str, dict[str, np.ndarray]]) -> dict[tuple[str, str], tuple[str, str]]:
    """``{(node, "W"|"b"): ("W"|"b", parameter path)}`` linking the graph's dense nodes to ``module``'s
    parameters; :class:`~symnet.InputError` where a module parameter has no place or a match fails."""
    how = "; pass share=False to train copies of the imported parameters instead"
    dense = [node for node in kernel.graph.nodes[1:] if node.op == "dense"]
    calls = _linear_calls(module)
    if len(calls) != len(dense):
        raise InputError(f"cannot share {type(module).__name__}'s parameters: its forward runs {len(calls)} linear "
                         f"layers and the imported graph has {len(dense)} dense nodes{how}")
    links: dict[tuple[str, str], tuple[str, str]] = {}
    for node, (weight, bias, where) in zip(dense, calls):
        if set(node.params) != {"W", "b"}:
            raise InputError(f"cannot share: dense node {node.name!r} ({where}) is parametrized "
                             f"({', '.join(sorted(node.params))}){how}")
        W, b = values[node.name]["W"], values[node.name]["b"]
        for kind, target, mine in (("W", weight, W), ("b", bias, b)):
            if target is None:
                continue  # a constant: a buffer or a missing bias, kept as imported
            theirs = module.get_parameter(target).detach().cpu().double().numpy()
            theirs = theirs.T if kind == "W" else theirs.reshape(1, -1)
            if theirs.shape != mine.shape or not np.array_equal(theirs, mine):
                raise InputError(f"cannot share: {where}'s {target} does not hold the values of dense node "
                                 f"{node.name!r}'s {kind} (the import and the trace disagree){how}")
            links[(node.name, kind)] = (kind, target)
    used = {target for _, target in links.values()}
    found = {id(module.get_parameter(target)) for target in used}
    missing = [name for name, p in module.named_parameters() if id(p) not in found]
    if missing:
        raise InputError(f"cannot share {type(module).__name__}'s parameters {', '.join(missing[:5])}"
                         f"{', ...' if len(missing) > 5 else ''}: symnet shares nn.Linear weights and biases only "
                         f"(the others, such as LayerNorm's or a bare nn.Parameter in forward's arithmetic, are graph "
                         f"parameters of their own){how}")
    return links
