"""Import PyTorch networks: an ``nn.Sequential`` (:func:`from_torch`) or a saved state dict (:func:`load_torch`).

Supported modules: ``nn.Linear`` and the activations ``Tanh``, ``Sigmoid``, ``ReLU``,
``LeakyReLU`` (``negative_slope`` becomes ``leaky_relu``'s ``alpha``), ``Softplus``
(``beta=1`` only; ``threshold`` only changes where PyTorch switches to the identity, a
difference below float64 round-off from ``threshold=20`` on), ``ELU`` (``alpha``), ``SiLU``,
``GELU`` (the exact erf form; ``approximate="tanh"`` is refused), ``Softmax`` over the last
dimension and ``Identity``; ``Dropout`` is the identity at inference.  Nested
``nn.Sequential`` modules are flattened.  Anything else raises
:class:`~symnet.io.UnsupportedLayerError` naming the module and its type.

``Linear.weight`` is ``(out, in)``; it is passed with ``layout="torch"`` and converted with
``.detach().double()``, so float32 weights arrive exactly.

A state dict holds weights but no activations: :func:`load_torch` takes them as an
argument.  It reads files only with ``torch.load(path, weights_only=True)``, PyTorch's
loader that refuses to build arbitrary Python objects.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import activations as _activations
from ..activations import Activation
from ..errors import ActivationError, ShapeError, SymnetError
from ..network import Network
from .format import FileFormatError, UnsupportedLayerError, UntrustedCodeError
from .keras import _compose, activation_from_text

__all__ = ["from_torch", "load_torch"]

_SIMPLE = {"Tanh": "tanh", "Sigmoid": "sigmoid", "ReLU": "relu", "SiLU": "silu", "Identity": "linear",
           "Dropout": "linear"}
_SUPPORTED = ("Linear", "LeakyReLU", "Softplus", "ELU", "GELU", "Softmax", *_SIMPLE)


def _module_activation(module: Any, where: str) -> Activation:
    kind = type(module).__name__
    if kind in _SIMPLE:
        return _activations.activation(_SIMPLE[kind])
    if kind == "LeakyReLU":
        return _activations.activation("leaky_relu", alpha=float(module.negative_slope))
    if kind == "ELU":
        return _activations.activation("elu", alpha=float(module.alpha))
    if kind == "Softplus":
        if float(module.beta) != 1.0:
            raise UnsupportedLayerError(
                f"{where}: Softplus(beta={module.beta}) is log(1 + exp(beta*x))/beta, not symnet's softplus "
                "(beta=1); use beta=1, or build the network with the activation "
                f"lambda x: symnet.softplus({module.beta}*x)/{module.beta}"
            )
        return _activations.activation("softplus")
    if kind == "GELU":
        if module.approximate != "none":
            raise UnsupportedLayerError(f"{where}: GELU(approximate={module.approximate!r}) is the tanh "
                                        "approximation, not the erf gelu symnet has; use approximate='none'")
        return _activations.activation("gelu")
    if kind == "Softmax":
        if module.dim not in (-1, 1, None):
            raise UnsupportedLayerError(f"{where}: Softmax(dim={module.dim}) is not over the features; symnet's "
                                        "softmax acts on the last dimension")
        return _activations.activation("softmax")
    raise UnsupportedLayerError(f"{where} is not supported; symnet reads {', '.join(_SUPPORTED)} and nested "
                                "nn.Sequential")  # pragma: no cover - callers check the kind first


def _flatten(module: Any, prefix: str, nn: Any) -> list[tuple[str, Any]]:
    if type(module) is nn.Sequential:
        items = []
        for name, child in module.named_children():
            items += _flatten(child, f"{prefix}.{name}" if prefix else name, nn)
        return items
    return [(prefix, module)]


def from_torch(module: Any) -> Network:
    """The symnet network of an ``nn.Sequential`` of ``Linear`` and activation modules (or one ``nn.Linear``).

    An activation module after another one is composed with it; an activation before the
    first ``Linear`` is an error.  See the module docstring for the supported modules.
    """
    import torch.nn as nn

    if not isinstance(module, nn.Module):
        raise UnsupportedLayerError(f"from_torch needs a torch.nn.Module, not {type(module).__name__}")
    if type(module) not in (nn.Sequential, nn.Linear):
        raise UnsupportedLayerError(
            f"from_torch reads nn.Sequential (or one nn.Linear); {type(module).__name__} is a custom module whose "
            "forward() symnet cannot read: rebuild it as an nn.Sequential"
        )
    weights: list[np.ndarray] = []
    biases: list[np.ndarray | None] = []
    acts: list[Activation] = []
    children = _flatten(module, "", nn) if type(module) is nn.Sequential else [("", module)]
    for name, child in children:
        kind = type(child).__name__
        where = f"module {name!r} ({kind})" if name else f"module ({kind})"
        if kind not in _SUPPORTED or type(child).__module__.split(".")[0] != "torch":
            raise UnsupportedLayerError(f"{where} is not supported; symnet reads {', '.join(_SUPPORTED)} and nested "
                                        "nn.Sequential")
        if kind == "Linear":
            weights.append(child.weight.detach().double().cpu().numpy())
            biases.append(None if child.bias is None else child.bias.detach().double().cpu().numpy())
            acts.append(_activations.activation("linear"))
            continue
        activation = _module_activation(child, where)
        if not weights:
            if activation.name == "linear":
                continue
            raise UnsupportedLayerError(f"{where} comes before any Linear module; a symnet network starts with a "
                                        "Linear layer")
        acts[-1] = _compose(activation, acts[-1], where)
    if not weights:
        raise UnsupportedLayerError("the module has no Linear layer")
    return Network.from_weights(weights, biases, acts, layout="torch")


def load_torch(
    path: str | os.PathLike[str],
    activations: Sequence[Any] | Any,
    layer_sizes: Sequence[int] | None = None,
    overrides: Mapping[int | str, Any] | None = None,
) -> Network:
    """The network in a PyTorch state dict file (``torch.save(module.state_dict(), path)``).

    Args:
        path: the file; read with ``torch.load(path, weights_only=True)`` only.
        activations: one activation per ``Linear`` layer, or one for every layer (names such
            as ``"tanh"``, expressions in ``x`` such as ``"x**2"``, or :class:`~symnet.Activation`).
        layer_sizes: ``[d, h1, ..., m]``, checked against the weights when given.
        overrides: ``{layer: activation}`` replacing single entries, the layer by 0-based index
            among the Linear layers or by its state-dict prefix (``"0"``, ``"net.2"``).

    A state dict of ``Linear`` layers holds ``PREFIX.weight`` ``(out, in)`` and optionally
    ``PREFIX.bias`` ``(out,)`` per layer, in order; any other entry is an error naming it.
    """
    import torch

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UntrustedCodeError(
            f"{path}: holds Python objects (a pickled module?) that PyTorch's weights-only loader refuses; symnet "
            "never unpickles. Save the weights alone: torch.save(module.state_dict(), path)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise FileFormatError(f"{path}: not a readable PyTorch file ({type(exc).__name__}: {str(exc)[:200]})") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not state:
        raise FileFormatError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors")
    prefixes = _layers_of(state, path, torch)
    weights = [w for _, w, _ in prefixes]
    biases = [b for _, _, b in prefixes]
    acts = _activation_list(activations, overrides, [p for p, _, _ in prefixes], path)
    sizes = [weights[0].shape[1], *(w.shape[0] for w in weights)]
    if layer_sizes is not None and list(layer_sizes) != sizes:
        raise ShapeError(f"{path}: the weights give layer sizes {'-'.join(map(str, sizes))}, not the "
                         f"{'-'.join(map(str, layer_sizes))} given")
    try:
        return Network.from_weights(weights, biases, acts, layout="torch")
    except SymnetError as exc:
        raise type(exc)(f"{path}: {exc}") from None


def _layers_of(state: Mapping[str, Any], path: Path, torch: Any) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    layers: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        prefix, _, leaf = str(key).rpartition(".")
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise FileFormatError(f"{path}: entry {key!r} is a {type(value).__name__}, not a float tensor")
        if leaf not in ("weight", "bias") or (leaf == "weight") != (value.ndim == 2) or value.ndim not in (1, 2):
            raise UnsupportedLayerError(
                f"{path}: entry {key!r} of shape {tuple(value.shape)} is not a Linear layer's weight (out, in) or "
                "bias (out,); symnet reads state dicts of nn.Sequential models of Linear and activation modules"
            )
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


def _activation_list(activations: Sequence[Any] | Any, overrides: Mapping[int | str, Any] | None,
                     prefixes: list[str], path: Path) -> list[Activation]:
    n = len(prefixes)
    if activations is None:
        raise ActivationError(f"{path}: a state dict holds no activations; give one per Linear layer ({n}), "
                              "e.g. --act tanh,tanh,linear")
    if isinstance(activations, (str, Activation)) or callable(activations):
        specs = [activations] * n
    else:
        specs = list(activations)
        if len(specs) != n:
            raise ActivationError(f"{path}: {len(specs)} activations for {n} Linear layers "
                                  f"({', '.join(prefixes)}); give one per layer")
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
