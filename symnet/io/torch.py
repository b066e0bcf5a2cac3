"""Import PyTorch networks: any ``nn.Module`` (:func:`from_torch`) or a saved state dict (:func:`load_torch`).

An ``nn.Sequential`` (nested ones flattened) of ``nn.Linear`` and activation modules is read
as a chain; any other module -- a custom ``forward``, residual blocks, normalisation,
several inputs or outputs -- is traced with ``torch.fx`` and read as a graph
(:mod:`symnet.io.torch_graph`, which lists its ops).  Chain modules: ``nn.Linear`` and the
activations ``Tanh``, ``Sigmoid``, ``ReLU``, ``LeakyReLU`` (``negative_slope`` becomes
``leaky_relu``'s ``alpha``), ``Softplus`` (``beta`` kept; ``threshold >= 20`` only: above
``threshold`` PyTorch returns ``x`` where softplus is ``x + log1p(exp(-x))``, a relative
difference of at most 1.1e-10 from 20 on), ``ELU`` (``alpha``), ``SiLU``, ``GELU`` (the erf
form, or ``gelu_tanh`` for ``approximate="tanh"``), ``Mish``, ``SELU``, ``Softsign``,
``ReLU6``, ``Hardsigmoid``, ``Hardtanh`` (its bounds), ``Softmax``/``LogSoftmax`` over the last dimension
and ``Identity``; ``Dropout`` is the identity at inference.  A module that appears at
several positions (one ``Tanh`` object reused, a shared ``Linear``) counts at each of them.

``Linear.weight`` is ``(out, in)``; it is passed with ``layout="torch"`` and converted with
``.detach().double()``, so float32 weights arrive exactly.

:func:`from_torch` checks the network it built against the module's own forward pass
(see :mod:`symnet.io._compare`): a ``forward`` that does something its children in order
do not raises :class:`~symnet.ImportMismatchError` (``check=False`` skips the check).

A state dict holds weights but no activations and no forward pass: :func:`load_torch`
takes one activation per layer as an argument, orders the layers by their ``Sequential``
indices, and refuses where the file cannot say the order.  It reads files only with
``torch.load(path, weights_only=True)``, PyTorch's loader that refuses to build arbitrary
Python objects.
"""

from __future__ import annotations

import math
import os
import pickle
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import activations as _activations
from ..activations import Activation
from ..errors import ActivationError, InputError, ShapeError, SymnetError
from ..network import Network
from ._compare import check_import, describe_modules
from .format import FileFormatError, UnsupportedLayerError, UntrustedCodeError
from .keras import activation_from_text, compose_activations
from .torch_graph import from_torch_graph

__all__ = ["from_torch", "load_torch", "MAX_STATE_VALUES", "SOFTPLUS_MIN_THRESHOLD"]

#: The most numbers :func:`load_torch` reads from one state dict (checked before converting).
MAX_STATE_VALUES = 100_000_000
#: The smallest ``nn.Softplus`` ``threshold`` imported as symnet's softplus (PyTorch's default).
SOFTPLUS_MIN_THRESHOLD = 20.0
_MAX_ORDER_STEPS = 100_000

_SIMPLE = {"Tanh": "tanh", "Sigmoid": "sigmoid", "ReLU": "relu", "SiLU": "silu", "Identity": "linear",
           "Dropout": "linear", "Mish": "mish", "SELU": "selu", "Softsign": "softsign", "ReLU6": "relu6",
           "Hardsigmoid": "hard_sigmoid"}
_SUPPORTED = ("Linear", "LeakyReLU", "Softplus", "ELU", "GELU", "Hardtanh", "Softmax", "LogSoftmax", *_SIMPLE)


def _module_activation(module: Any, where: str) -> Activation:
    kind = type(module).__name__
    if kind in _SIMPLE:
        return _activations.activation(_SIMPLE[kind])
    if kind == "LeakyReLU":
        return _activations.activation("leaky_relu", alpha=float(module.negative_slope))
    if kind == "ELU":
        return _activations.activation("elu", alpha=float(module.alpha))
    if kind == "Softplus":
        beta = float(module.beta)
        threshold = float(module.threshold)
        if not threshold >= SOFTPLUS_MIN_THRESHOLD:
            gap = max(-threshold, 0.0) + math.log1p(math.exp(-abs(threshold))) if threshold == threshold else threshold
            raise UnsupportedLayerError(
                f"{where}: Softplus(threshold={module.threshold}) returns x itself where beta*x > {module.threshold}, "
                f"which differs from softplus by up to {gap:.3g}/beta; "
                f"symnet's softplus has no threshold: use threshold >= {SOFTPLUS_MIN_THRESHOLD:g} (PyTorch's "
                "default, where the difference is below 1.1e-10 relative)"
            )
        return _activations.activation("softplus", beta=beta)
    if kind == "GELU":
        return _activations.activation("gelu_tanh" if module.approximate == "tanh" else "gelu")
    if kind == "Hardtanh":
        return _activations.activation("hardtanh", min_val=float(module.min_val), max_val=float(module.max_val))
    if kind in ("Softmax", "LogSoftmax"):
        if module.dim not in (-1, 1, None):
            raise UnsupportedLayerError(f"{where}: {kind}(dim={module.dim}) is not over the features; symnet's "
                                        f"{'softmax' if kind == 'Softmax' else 'log_softmax'} acts on the last "
                                        "dimension")
        return _activations.activation("softmax" if kind == "Softmax" else "log_softmax")
    raise UnsupportedLayerError(f"{where} is not supported; symnet reads {', '.join(_SUPPORTED)} and nested "
                                "nn.Sequential")  # pragma: no cover - callers check the kind first


def _flatten(module: Any, prefix: str, nn: Any) -> list[tuple[str, Any]]:
    """The leaf modules of nested ``nn.Sequential`` in the order ``forward`` runs them, every position kept.

    ``named_children()`` (and ``modules()``) de-duplicate: a ``Tanh`` object used twice would
    appear once.  ``Sequential.forward`` runs ``self._modules.values()``, so this walks those.
    """
    if isinstance(module, nn.Sequential):
        items = []
        for name, child in module._modules.items():
            where = f"{prefix}.{name}" if prefix else name
            if child is None:
                raise UnsupportedLayerError(f"module {where!r} is None; an nn.Sequential runs every entry")
            items += _flatten(child, where, nn)
        return items
    return [(prefix, module)]


def from_torch(module: Any, *, check: bool = True, input_sizes: Sequence[int] | None = None) -> Network:
    """The symnet network of a PyTorch module: a chain for ``nn.Sequential`` of ``Linear`` and
    activation modules (or one ``nn.Linear``), a graph for any other module.

    Any other module -- a custom ``nn.Module`` with its own ``forward``, a ``torch.compile``
    wrapper, a ``Sequential`` holding ``LayerNorm`` -- is traced with ``torch.fx`` and mapped op
    by op (:mod:`symnet.io.torch_graph`, which lists the ops); ``input_sizes`` gives the width
    of each of ``forward``'s inputs where the first op reading it cannot tell.

    In a chain, an activation module after another one is composed with it; an activation
    before the first ``Linear`` is an error.  See the module docstring for the supported modules.

    Args:
        module: an ``nn.Sequential`` (a subclass too: its ``forward`` is checked) or an ``nn.Linear``.
        check: compare the result with ``module``'s own forward pass, layer by layer and end to
            end, at 8 seeded points in ``[-2, 2]^d`` in float64 (on a float64 copy of the
            parameters, in eval mode; the module is left as it was), and raise
            :class:`~symnet.ImportMismatchError` naming the first layer that differs.

    >>> import torch
    >>> act = torch.nn.Tanh()
    >>> from_torch(torch.nn.Sequential(torch.nn.Linear(2, 3), act, torch.nn.Linear(3, 3), act, torch.nn.Linear(3, 1)))
    Network(2 -> 3 -> 3 -> 1, activations=(tanh, tanh, linear), numeric)
    """
    import torch.nn as nn

    if not isinstance(module, nn.Module):
        raise UnsupportedLayerError(f"from_torch needs a torch.nn.Module, not {type(module).__name__}")
    module = getattr(module, "_orig_mod", module)  # torch.compile's OptimizedModule
    if not _plain_chain(module, nn):
        return from_torch_graph(module, check=check, input_sizes=input_sizes)
    weights: list[np.ndarray] = []
    biases: list[np.ndarray | None] = []
    acts: list[Activation] = []
    groups: list[list[tuple[str, Any]]] = []
    leading: list[tuple[str, Any]] = []
    children = _flatten(module, "", nn) if isinstance(module, nn.Sequential) else [("", module)]
    for name, child in children:
        kind = type(child).__name__
        where = f"module {name!r} ({kind})" if name else f"module ({kind})"
        if kind not in _SUPPORTED or type(child) is not getattr(nn, kind):  # torch.nn's own class, no look-alike
            raise UnsupportedLayerError(f"{where} is not supported; symnet reads {', '.join(_SUPPORTED)} and nested "
                                        "nn.Sequential")
        if kind == "Linear":
            weights.append(_array(child.weight, where, "weight"))
            biases.append(None if child.bias is None else _array(child.bias, where, "bias"))
            acts.append(_activations.activation("linear"))
            groups.append([*leading, (name, child)] if not groups else [(name, child)])
            leading = []
            continue
        activation = _module_activation(child, where)
        if not weights:
            if activation.name == "linear":
                leading.append((name, child))
                continue
            raise UnsupportedLayerError(f"{where} comes before any Linear module; a symnet network starts with a "
                                        "Linear layer")
        acts[-1] = compose_activations(activation, acts[-1], where)
        groups[-1].append((name, child))
    if not weights:
        raise UnsupportedLayerError("the module has no Linear layer")
    net = Network.from_weights(weights, biases, acts, layout="torch")
    if check:
        _check_torch(net, module, groups)
    return net


def _plain_chain(module: Any, nn: Any) -> bool:
    """Whether ``module`` is one ``nn.Linear`` or an ``nn.Sequential`` (nested too) of the chain's modules only."""
    if type(module) is nn.Linear:
        return True
    if not isinstance(module, nn.Sequential):
        return False
    return all(type(child).__name__ in _SUPPORTED and type(child) is getattr(nn, type(child).__name__)
               for _, child in _flatten(module, "", nn))


def _array(tensor: Any, where: str, name: str) -> np.ndarray:
    """A parameter's values as float64, or an error if it holds none (a tensor on the ``meta`` device)."""
    if tensor.is_meta:
        raise UnsupportedLayerError(
            f"{where}: its {name} is on the meta device, a shape without values; materialise the weights first "
            "(module.to_empty(device='cpu'), then load_state_dict(...) or initialise them)")
    return tensor.detach().double().cpu().numpy()


def _check_torch(net: Network, module: Any, groups: list[list[tuple[str, Any]]]) -> None:
    """:func:`~symnet.io._compare.check_import` against the module in float64 and eval mode, the module untouched."""
    import torch
    from torch.func import functional_call

    def run(part: Any) -> Callable[[np.ndarray], np.ndarray]:
        # tied parameters once (named_parameters() de-duplicates them): functional_call ties them again
        tensors = {**dict(part.named_parameters()), **dict(part.named_buffers())}
        doubled = {key: (t.detach().cpu().double() if t.is_floating_point() else t.detach().cpu())
                   for key, t in tensors.items()}

        def call(h: np.ndarray) -> np.ndarray:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. Softmax(dim=None)'s deprecation: the check's own call
                out = functional_call(part, doubled, (torch.as_tensor(h, dtype=torch.float64),))
            return out.detach().cpu().double().numpy()

        return call

    def layer(k: int, h: np.ndarray) -> np.ndarray:
        for _, child in groups[k]:
            h = run(child)(h)
        return h

    label = f"{type(module).__name__} module" if type(module).__name__ != "Sequential" else "nn.Sequential"
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        check_import(net, layer, run(module), describe_modules([[(n or "", type(c).__name__) for n, c in g]
                                                               for g in groups]),
                     f"from_torch({label})", "PyTorch")
    finally:
        for m, training in modes:
            m.training = training


def load_torch(
    path: str | os.PathLike[str],
    activations: Sequence[Any] | Any,
    layer_sizes: Sequence[int] | None = None,
    overrides: Mapping[int | str, Any] | None = None,
    order: Sequence[str] | None = None,
) -> Network:
    """The network in a PyTorch state dict file (``torch.save(module.state_dict(), path)``).

    Args:
        path: the file; read with ``torch.load(path, weights_only=True)`` only.
        activations: one activation per ``Linear`` layer, output layer included (names such
            as ``"tanh"``, expressions in ``x`` such as ``"x**2"``, or
            :class:`~symnet.Activation`); a single one only when there is one layer.
        layer_sizes: ``[d, h1, ..., m]``, checked against the weights when given.
        overrides: ``{layer: activation}`` replacing single entries, the layer by 0-based index
            among the Linear layers or by its state-dict prefix (``"0"``, ``"net.2"``).
        order: the layers' prefixes in the order ``forward`` runs them, for a state dict
            whose layers have names (``fc1``, ``fc_out``) rather than ``Sequential`` indices.

    A state dict of ``Linear`` layers holds ``PREFIX.weight`` ``(out, in)`` and optionally
    ``PREFIX.bias`` ``(out,)`` per layer; any other entry is an error naming it.  The layers
    are ordered by the numbers in their prefixes (``2`` before ``10``, ``net.0.1`` before
    ``net.1``), not by the file's key order.  Named prefixes do not say the order: then it is
    the only order in which the shapes chain, or ``order=`` must give it.  The file holds no
    forward pass to check against: to check, build the module, ``module.load_state_dict(...)``
    and use :func:`from_torch`.
    """
    import torch

    path = Path(path)
    with open(path, "rb") as handle:  # a missing or unreadable file is the OSError it is
        try:
            state = torch.load(handle, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise UntrustedCodeError(
                f"{path}: holds Python objects (a pickled module?) that PyTorch's weights-only loader refuses; "
                "symnet never unpickles. Save the weights alone: torch.save(module.state_dict(), path)"
            ) from None
        except Exception as exc:  # torch.load raises many kinds on damaged files
            raise FileFormatError(f"{path}: not a readable PyTorch file ({type(exc).__name__}: "
                                  f"{str(exc)[:200]!r})") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not state:
        raise FileFormatError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors")
    layers = _order_layers(_layers_of(state, path, torch), order, path)
    weights = [w for _, w, _ in layers]
    biases = [b for _, _, b in layers]
    sizes = [weights[0].shape[1], *(w.shape[0] for w in weights)]
    if layer_sizes is not None and list(layer_sizes) != sizes:
        raise ShapeError(f"{path}: the weights give layer sizes {'-'.join(map(str, sizes))}, not the "
                         f"{'-'.join(map(str, layer_sizes))} given")
    acts = _activation_list(activations, overrides, [p for p, _, _ in layers], path)
    try:
        return Network.from_weights(weights, biases, acts, layout="torch")
    except SymnetError as exc:
        raise type(exc)(f"{path}: {exc}") from None


def _layers_of(state: Mapping[str, Any], path: Path, torch: Any) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    layers: dict[str, dict[str, np.ndarray]] = {}
    total = 0
    for key, value in state.items():
        prefix, _, leaf = str(key).rpartition(".")
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise FileFormatError(f"{path}: entry {key!r} is a {type(value).__name__}, not a float tensor")
        if leaf not in ("weight", "bias") or (leaf == "weight") != (value.ndim == 2) or value.ndim not in (1, 2):
            raise UnsupportedLayerError(
                f"{path}: entry {key!r} of shape {tuple(value.shape)} is not a Linear layer's weight (out, in) or "
                "bias (out,); symnet reads state dicts of nn.Sequential models of Linear and activation modules"
            )
        total += value.numel()  # the declared size: a strided view can declare far more than the file holds
        if total > MAX_STATE_VALUES:
            raise FileFormatError(f"{path}: entry {key!r} of shape {tuple(value.shape)} takes the state dict past "
                                  f"{MAX_STATE_VALUES:,} numbers, symnet's limit (symnet.io.torch.MAX_STATE_VALUES)")
        if value.is_meta:
            raise FileFormatError(f"{path}: entry {key!r} is a meta tensor, a shape without values; save a state "
                                  "dict of materialised weights")
        array = value.detach().double().cpu().numpy()
        if not np.isfinite(array).all():
            raise FileFormatError(f"{path}: entry {key!r} holds non-finite values; weights must be finite")
        layers.setdefault(prefix, {})[leaf] = array
    result = []
    for prefix, entries in layers.items():
        if "weight" not in entries:
            raise FileFormatError(f"{path}: {prefix}.bias has no {prefix}.weight")
        weight, bias = entries["weight"], entries.get("bias")
        if bias is not None and bias.shape != (weight.shape[0],):
            raise ShapeError(f"{path}: {prefix}.bias has shape {bias.shape} but {prefix}.weight has "
                             f"{weight.shape[0]} rows (out, in)")
        result.append((prefix, weight, bias))
    return result


def _natural(prefix: str) -> tuple[tuple[int, int, str], ...]:
    """A sort key: numeric components by value (``2`` before ``10``), names by text."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in prefix.split("."))


def _indexed(first: str, second: str) -> bool:
    """Whether two prefixes first differ in a numeric component: their order is a ``Sequential``'s."""
    for a, b in zip(first.split("."), second.split(".")):
        if a != b:
            return a.isdigit() and b.isdigit()
    return False


def _order_layers(layers: list[tuple[str, np.ndarray, np.ndarray | None]], order: Sequence[str] | None,
                  path: Path) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """The layers in ``forward`` order: by index, by ``order``, or the one order in which the shapes chain."""
    by_prefix = {prefix: (prefix, w, b) for prefix, w, b in layers}
    names = list(by_prefix)
    if order is not None:
        wanted = [str(p) for p in order]
        if sorted(wanted) != sorted(names):
            raise InputError(f"{path}: order={wanted!r} must list each layer prefix once; the file has "
                             f"{', '.join(map(repr, names))}")
        return [by_prefix[p] for p in wanted]
    ranked = sorted(names, key=_natural)
    if all(_indexed(a, b) for a, b in zip(ranked, ranked[1:])):
        return [by_prefix[p] for p in ranked]
    chains, searched = _chains([(p, by_prefix[p][1].shape) for p in names])
    listed = ", ".join(map(repr, names))
    if len(chains) == 1 and searched:
        return [by_prefix[p] for p in chains[0]]
    how = ("the prefixes in the order forward() runs them, load_torch(path, activations, order=[...]), or build the "
           "module, load the state dict into it and use symnet.io.from_torch(module), which checks the import "
           "against forward()")
    if not chains and searched:
        raise ShapeError(f"{path}: the layers {listed} have names, not nn.Sequential indices, and their shapes "
                         f"(out, in) {', '.join(str(tuple(by_prefix[p][1].shape)) for p in names)} chain in no "
                         f"order; a state dict of one chain of Linear layers is needed")
    fits = ("their shapes chain in more than one order (" + " and ".join("[" + ", ".join(c) + "]" for c in chains)
            + ", ...)" if searched else "too many orders of their shapes chain to search all")
    raise FileFormatError(f"{path}: the layers {listed} have names, not nn.Sequential indices, so the file does not "
                          f"say the order forward() runs them in, and {fits}; symnet will not guess: give {how}")


def _chains(shapes: list[tuple[str, tuple[int, ...]]]) -> tuple[list[list[str]], bool]:
    """Up to two orders of all layers in which each one's ``in`` is the previous one's ``out``, and whether the
    search finished (it stops after ``_MAX_ORDER_STEPS`` steps)."""
    found: list[list[str]] = []
    steps = 0

    def extend(chain: list[str], last_out: int | None, left: list[tuple[str, tuple[int, ...]]]) -> None:
        nonlocal steps
        if len(found) >= 2 or steps > _MAX_ORDER_STEPS:
            return
        if not left:
            found.append(chain)
            return
        for i, (prefix, (out, inp)) in enumerate(left):
            steps += 1
            if last_out is None or inp == last_out:
                extend([*chain, prefix], out, left[:i] + left[i + 1:])

    extend([], None, shapes)
    return found, len(found) >= 2 or steps <= _MAX_ORDER_STEPS


def _activation_list(activations: Sequence[Any] | Any, overrides: Mapping[int | str, Any] | None,
                     prefixes: list[str], path: Path) -> list[Activation]:
    n = len(prefixes)
    if activations is None:
        raise ActivationError(f"{path}: a state dict holds no activations; give one per Linear layer ({n}, the "
                              f"output layer included), e.g. {_example(None, n)}")
    if isinstance(activations, (str, Activation)) or callable(activations):
        if n != 1:
            raise ActivationError(
                f"{path}: one activation for {n} Linear layers ({', '.join(prefixes)}) does not say whether the "
                f"output layer has it too; give one per layer, output layer included, e.g. "
                f"{_example(activations, n)}"
            )
        specs = [activations]
    else:
        specs = list(activations)
        if len(specs) != n:
            raise ActivationError(f"{path}: {len(specs)} activations for {n} Linear layers "
                                  f"({', '.join(prefixes)}); give one per layer, e.g. {_example(None, n)}")
    for key, value in (overrides or {}).items():
        if isinstance(key, str) and key in prefixes:
            index = prefixes.index(key)
        elif isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            index = int(key)
            if not 0 <= index < n:
                raise ActivationError(f"{path}: activation for layer {index}: there are {n} Linear layers, "
                                      f"indexed 0..{n - 1}")
        else:
            raise ActivationError(f"{path}: activation for layer {key!r}: no such layer; give a 0-based index "
                                  f"or a prefix ({', '.join(prefixes)})")
        specs[index] = value
    result = []
    for number, spec in enumerate(specs):
        try:
            result.append(activation_from_text(spec) if isinstance(spec, str) else _activations.get(spec))
        except ActivationError as exc:
            raise ActivationError(f"{path}: Linear layer {number} ({prefixes[number]}): {exc}") from None
    return result


def _example(spec: Any, n: int) -> str:
    """``["tanh", "tanh", "linear"] (on the command line --act tanh,tanh,linear)`` for ``n`` layers."""
    name = spec if isinstance(spec, str) else getattr(spec, "name", "tanh")
    if not (isinstance(name, str) and 0 < len(name) <= 40 and name.isprintable()
            and not any(c in name for c in ", '\"\\")):
        name = "tanh"  # an example that survives the command line's comma split and reads back unchanged
    names = [name] * (n - 1) + ["linear"]
    return f"[{', '.join(map(repr, names))}] (on the command line --act {','.join(names)})"
