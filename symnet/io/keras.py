"""Import Keras 3 models: a live model (:func:`from_keras`) or a ``.keras`` file (:func:`load_keras`).

Supported: ``Sequential`` models and functional models that are a simple chain, made of
``Dense`` layers (built-in activations, or Python callables SymPy can trace such as story
003's ``lambda x: x**2``), ``Activation``, ``ReLU``, ``LeakyReLU``, ``ELU`` and ``Softmax``
layers, and the layers that are the identity at inference (``InputLayer``, ``Dropout``,
``Identity``).  An activation layer after a ``Dense`` layer is folded into that layer's
activation.  Anything else raises :class:`~symnet.io.UnsupportedLayerError` naming the
layer and its type.

Activations map through symnet's registry with their parameters read from the layer
(Keras 3 defaults for plain names: ``leaky_relu`` has ``negative_slope=0.2``, ``elu``
``alpha=1.0``; ``gelu`` is the exact erf form).

:func:`from_keras` checks the network it built against the live model (each layer in
float64 with Keras's own activation code, then ``model(x)`` end to end to Keras's float32
precision; see :mod:`symnet.io._compare`) and raises :class:`~symnet.ImportMismatchError`
naming the first layer that differs; ``check=False`` skips it.  A layer called at more than
one place is refused: Keras lists it once.

:func:`load_keras` never runs code from the file: it reads the architecture from the
archive's ``config.json`` and the weights from its ``model.weights.h5`` with ``h5py``.  A
lambda activation -- which Keras stores as marshalled Python bytecode -- stops it with an
:class:`~symnet.io.UntrustedCodeError` that offers two ways on: give the activation as an
expression (``activations={0: "x**2"}``), or pass ``trust=True`` to let Keras rebuild the
lambda from its bytecode (``keras.saving.deserialize_keras_object(..., safe_mode=False)``,
which *runs* code from the file) and trace it with SymPy; no other code, and no module a
file names, is ever imported or run.  Reading is bounded (:data:`MAX_CONFIG_BYTES`,
:data:`MAX_WEIGHTS_BYTES`, :data:`MAX_LAYER_VALUES`, each weight's shape checked against
the config before it is read), and a damaged archive is a
:class:`~symnet.io.FileFormatError` naming the file.  (Keras 3.15's own
``keras.saving.load_model(path, safe_mode=False)`` cannot reload a ``Dense`` lambda
activation: it saves the lambda without the ``__lambda__`` tag its loader needs.)
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from .. import activations as _activations
from ..activations import Activation, T
from ..errors import ActivationError, SymnetError
from ..network import Network
from ._compare import check_import, describe_modules
from ._expr import ExpressionError, parse
from .format import FileFormatError, UnsupportedLayerError, UntrustedCodeError

__all__ = ["from_keras", "load_keras", "activation_from_text", "KERAS_DEFAULTS", "MAX_CONFIG_BYTES",
           "MAX_WEIGHTS_BYTES", "MAX_LAYER_VALUES"]

#: The largest ``config.json`` :func:`load_keras` reads (its size as declared in the archive).
MAX_CONFIG_BYTES = 16 * 2**20
#: The largest ``model.weights.h5`` :func:`load_keras` reads.
MAX_WEIGHTS_BYTES = 2**31
#: The most numbers one weight array of a ``.keras`` file may declare (checked before reading it).
MAX_LAYER_VALUES = 100_000_000

#: Keras 3's defaults for activations given by name (``Dense(activation="leaky_relu")``);
#: a test checks them against the installed Keras.
KERAS_DEFAULTS: dict[str, dict[str, Any]] = {
    "relu": {"negative_slope": 0.0, "max_value": None, "threshold": 0.0},
    "leaky_relu": {"negative_slope": 0.2},
    "elu": {"alpha": 1.0},
    "celu": {"alpha": 1.0},
    "gelu": {"approximate": False},
}
_PLAIN = {"linear": "linear", "sigmoid": "sigmoid", "tanh": "tanh", "softplus": "softplus", "silu": "silu",
          "swish": "silu", "exponential": "exp", "softmax": "softmax", "log_softmax": "log_softmax", "selu": "selu",
          "mish": "mish", "softsign": "softsign", "relu6": "relu6", "hard_sigmoid": "hard_sigmoid",
          "hard_tanh": "hardtanh"}
_IDENTITY_LAYERS = ("InputLayer", "Dropout", "Identity")
_ACTIVATION_LAYERS = ("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax")
_SUPPORTED = ("Dense", *_ACTIVATION_LAYERS, *_IDENTITY_LAYERS)


def _import_keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    return keras


# --- activations ------------------------------------------------------------------------------


def activation_from_text(text: str) -> Activation:
    """An activation from text: a registered name (``"tanh"``, ``"leaky_relu(0.3)"``) or an
    expression in ``x`` (or ``t``) read by the safe expression reader.

    >>> activation_from_text("x**2").form
    t**2
    >>> activation_from_text("leaky_relu(alpha=0.3)").name
    'leaky_relu(alpha=0.3)'
    """
    try:
        return _activations.get(text)
    except ActivationError:
        pass
    try:
        form = parse(text, {"x": T, "t": T})
    except ExpressionError as exc:
        raise ActivationError(f"{exc}; write an expression in x such as x**2, or a registered activation "
                              f"({', '.join(_activations.names())})") from None
    return _activations.from_form(form, name=f"t -> {form}")


def _builtin(name: str | None, params: Mapping[str, Any], where: str) -> Activation:
    """A Keras built-in activation (by name, with parameters) as a symnet activation."""
    if name is None or name == "linear":
        return _activations.activation("linear")
    params = {**KERAS_DEFAULTS.get(name, {}), **params}
    if name == "relu":
        for key in ("negative_slope", "max_value", "threshold"):
            value = params[key]
            if (value is not None or key != "max_value") and (isinstance(value, bool)
                                                             or not isinstance(value, (int, float))):
                raise FileFormatError(f"{where}: relu's {key} is {_brief(value)}, not a number")
        slope = float(params["negative_slope"])
        if params["max_value"] is not None and params["threshold"] == 0 and slope == 0:
            return _activations.activation("hardtanh", min_val=0.0, max_val=float(params["max_value"]))
        if params["max_value"] is not None or params["threshold"] != 0:
            raise UnsupportedLayerError(
                f"{where}: relu with max_value={params['max_value']}, threshold={params['threshold']} and "
                f"negative_slope={slope} is not supported (max_value with neither threshold nor slope is); give the "
                "activation as an expression instead"
            )
        return _activations.activation("leaky_relu", alpha=slope) if slope else _activations.activation("relu")
    if name == "leaky_relu":
        return _activations.activation("leaky_relu", alpha=float(params["negative_slope"]))
    if name == "elu":
        return _activations.activation("elu", alpha=float(params["alpha"]))
    if name == "celu":  # max(0, x) + min(0, a (exp(x / a) - 1)): elu itself at a = 1, Keras' default
        if float(params["alpha"]) != 1.0:
            raise UnsupportedLayerError(f"{where}: celu with alpha={params['alpha']} is not supported (alpha=1, "
                                        "which is elu, is); give the activation as an expression instead")
        return _activations.activation("elu", alpha=1.0)
    if name == "gelu":
        return _activations.activation("gelu_tanh" if params["approximate"] else "gelu")
    if name in _PLAIN:
        return _activations.activation(_PLAIN[name])
    known = sorted({*_PLAIN, *KERAS_DEFAULTS})
    raise UnsupportedLayerError(f"{where}: Keras activation {name!r} has no symnet equivalent (supported: "
                                f"{', '.join(known)}); give it as an expression in x instead")


@dataclass(frozen=True)
class _Pending:
    """An activation that must come from the user: a lambda in a file, a custom function, an untraceable callable."""

    reason: str
    code: bool  # whether trust=True (running the file's code) could load it
    error: SymnetError | None = None  # an unsupported built-in: raised unless the layer's activation is replaced


def _deferred(make: Any, *args: Any) -> Activation | _Pending:
    """``make(*args)``, with an unsupported activation kept for later: an override may replace it."""
    try:
        return make(*args)
    except UnsupportedLayerError as exc:
        return _Pending(str(exc), code=False, error=exc)


@dataclass
class _Step:
    """One Keras layer as symnet sees it: a dense layer or an activation to fold into the one before."""

    name: str
    class_name: str
    dense_index: int | None
    activation: Activation | _Pending
    kernel: np.ndarray | None = None
    bias: np.ndarray | None = None
    units: int = 0  # from a file's config.json, before the weights are read
    use_bias: bool = True

    def where(self) -> str:
        index = "" if self.dense_index is None else f", Dense index {self.dense_index}"
        return f"layer {self.name!r} ({self.class_name}{index})"


def compose_activations(outer: Activation, inner: Activation, where: str) -> Activation:
    """``outer(inner(t))`` as one activation (:func:`symnet.activations.compose`); an
    :class:`~symnet.io.UnsupportedLayerError` naming ``where`` when a part is softmax."""
    try:
        return _activations.compose(outer, inner)
    except ActivationError as exc:
        raise UnsupportedLayerError(f"{where}: {exc}") from None


# --- shared back end -----------------------------------------------------------------------------


def _override(steps: list[_Step], overrides: Mapping[int | str, Any] | None, where: str) -> None:
    if not overrides:
        return
    dense = [s for s in steps if s.dense_index is not None]
    by_name = {s.name: s for s in steps}
    for key, value in overrides.items():
        if isinstance(key, str) and key in by_name:
            step = by_name[key]
        elif (isinstance(key, int) and not isinstance(key, bool)) or (isinstance(key, str) and key.isdigit()):
            index = int(key)
            if not 0 <= index < len(dense):
                raise ActivationError(f"{where}: activation for layer {index}: there are {len(dense)} Dense layers, "
                                      f"indexed 0..{len(dense) - 1}")
            step = dense[index]
        else:
            raise ActivationError(f"{where}: activation for layer {key!r}: no such layer; give a layer name "
                                  f"({', '.join(by_name)}) or a 0-based index among the Dense layers")
        try:
            step.activation = activation_from_text(value) if isinstance(value, str) else _activations.get(value)
        except ActivationError as exc:
            raise ActivationError(f"{where}: activation for {step.where()}: {exc}") from None


def _build(steps: list[_Step], where: str, path: Path | None) -> Network:
    weights, biases, acts = [], [], []
    for step in steps:
        if isinstance(step.activation, _Pending):
            raise _pending_error(step, where, path)
        if step.dense_index is None:
            if not weights:
                raise UnsupportedLayerError(f"{where}: {step.where()} comes before any Dense layer; a symnet "
                                            "network starts with a Dense layer")
            acts[-1] = compose_activations(step.activation, acts[-1], f"{where}: {step.where()}")
            continue
        weights.append(step.kernel)
        biases.append(step.bias)
        acts.append(step.activation)
    if not weights:
        raise UnsupportedLayerError(f"{where}: the model has no Dense layer")
    try:
        return Network.from_weights(weights, biases, acts)
    except SymnetError as exc:
        raise type(exc)(f"{where}: {exc}") from None


def _pending_error(step: _Step, where: str, path: Path | None) -> SymnetError:
    key = step.dense_index if step.dense_index is not None else repr(step.name)
    cli_key = step.dense_index if step.dense_index is not None else step.name
    api = "symnet.io.load_keras(path, " if path is not None else "symnet.io.from_keras(model, "
    pending: _Pending = step.activation  # type: ignore[assignment]
    example = "EXPR" if pending.error is not None else "x**2"
    ways = (f"give the activation as an expression in x, e.g. {api}activations={{{key}: \"{example}\"}})"
            + (f" or on the command line --activation {cli_key}={example}" if path is not None else ""))
    if pending.error is not None:
        return type(pending.error)(f"{pending.error}: {ways}")
    if path is None:
        return ActivationError(f"{where}: {step.where()}: {pending.reason}; {ways}")
    text = f"{where}: {step.where()} {pending.reason}; symnet never runs code from a file. Either {ways}"
    if pending.code:
        text += (", or, if you trust the file, pass trust=True (--trust), which lets Keras rebuild the lambda "
                 "from its bytecode (safe_mode=False) and so runs code from the file")
    return UntrustedCodeError(text)


# --- live models ---------------------------------------------------------------------------------


def from_keras(model: Any, activations: Mapping[int | str, Any] | None = None, *, check: bool = True) -> Network:
    """The symnet network of a built Keras 3 ``Sequential`` or chain-shaped functional model.

    Args:
        model: a built ``keras.Sequential`` or ``keras.Model(inputs, outputs)`` whose layers
            form one chain (see the module docstring for the supported layers).
        activations: overrides ``{layer: activation}``, the layer by name or by 0-based index
            among the Dense layers; an activation is a registered name, an expression in ``x``
            (``"x**2"``), an :class:`~symnet.Activation` or a callable SymPy can trace.  Needed
            for Python activations SymPy cannot trace (ones written with ``keras.ops``).
        check: compare the result with the model at 8 seeded points in ``[-2, 2]^d``: each
            layer in float64 (Keras's own activation code, the affine maps in float64), then
            ``model(x)`` end to end to the precision Keras computes in (float64 matrix products
            run in float32); raise :class:`~symnet.ImportMismatchError` naming the first layer
            that differs.  An override that is not the model's activation fails this check.

    Weights are taken in float64 (``np.asarray(w, float64)``: float32 weights convert exactly).
    """
    keras = _import_keras()
    if not isinstance(model, keras.Model):
        raise UnsupportedLayerError(f"from_keras needs a keras.Model (Sequential or functional), not "
                                    f"{type(model).__name__}")
    where = f"Keras model {model.name!r}"
    if not isinstance(model, keras.Sequential) and type(model).__name__ != "Functional":
        raise UnsupportedLayerError(f"{where} is a subclassed {type(model).__name__}, whose call() symnet cannot "
                                    "read; rebuild it as a keras.Sequential or a functional chain")
    if not model.built:
        raise UnsupportedLayerError(f"{where} is not built: give it a keras.Input or call it on data first")
    if not _live_is_chain(model, keras):
        return _live_graph(model, keras, activations, check, where)
    layers = _live_chain(model, keras, where)
    steps = [_live_step(layer, keras, where) for layer in layers]
    _number_dense(steps)
    _override(steps, activations, where)
    net = _build([s for s in steps if s.class_name not in _IDENTITY_LAYERS], where, None)
    if check:
        _check_keras(net, model, [(layer, step) for layer, step in zip(layers, steps)
                                  if step.class_name not in _IDENTITY_LAYERS], where)
    return net


def _live_is_chain(model: Any, keras: Any) -> bool:
    """Whether a live model is a chain of the layers the chain reader knows (else it is read as a graph)."""
    if any(type(layer).__name__ not in _SUPPORTED for layer in model.layers):
        return False
    try:
        _live_chain(model, keras, "")
    except UnsupportedLayerError:
        return False
    return True


def _live_graph(model: Any, keras: Any, overrides: Mapping[int | str, Any] | None, check: bool,
                where: str) -> Network:
    """A live model that is a graph: its own serialisation read by :mod:`symnet.io.keras_graph`."""
    from .keras_graph import check_live, graph_from_config

    # through JSON, as model.save writes it: one reader for live models and files (tuples become lists)
    try:
        config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    except (TypeError, ValueError) as exc:  # a layer holding an object Keras cannot serialise (a callable instance)
        raise UnsupportedLayerError(f"{where}: Keras cannot describe the model's layers ({type(exc).__name__}: "
                                    f"{str(exc)[:160]}); symnet reads the config Keras writes") from None
    by_name = {layer.name: layer for layer in model.layers}

    def weights(name: str, here: str, wanted: Sequence[tuple[str, tuple[int, ...]]]) -> list[np.ndarray]:
        arrays = [_to_numpy(w) for w in by_name[name].weights]
        if [a.shape for a in arrays] != [shape for _, shape in wanted]:
            raise UnsupportedLayerError(f"{here}: weights of shapes {[a.shape for a in arrays]}; expected "
                                        f"{', '.join(f'{label} {shape}' for label, shape in wanted)}")
        return arrays

    activation, check_used = _graph_activation(overrides, where, None, lambda name, kind, here, spec: _deferred(
        _live_activation, getattr(by_name[name], "activation", None) or getattr(by_name[name], "function", None),
        keras, here))
    net, names = graph_from_config(config, weights, where, activation)
    check_used()
    if check:
        check_live(net, model, names, where)
    return net


def _graph_activation(overrides: Mapping[int | str, Any] | None, where: str, path: Path | None,
                      read: Callable[[str, str, str, Any], Activation | _Pending]
                      ) -> tuple[Callable[[str, str, str, Any], Activation], Callable[[], None]]:
    """A graph layer's activation -- the override for its name, else ``read``'s, an unreadable one an
    error -- and a check, run after the graph is read, that every override named a layer."""
    overrides = dict(overrides or {})
    for key in overrides:
        if not isinstance(key, str):
            raise ActivationError(f"{where}: activation for layer {key!r}: in a graph model give the layer's name")

    used: set[str] = set()

    def activation(name: str, kind: str, here: str, spec: Any) -> Activation:
        if name in overrides:
            used.add(name)
            value = overrides[name]
            try:
                return activation_from_text(value) if isinstance(value, str) else _activations.get(value)
            except ActivationError as exc:
                raise ActivationError(f"{here}: {exc}") from None
        found = read(name, kind, here, spec)
        if isinstance(found, _Pending):
            raise _pending_error(_Step(name, kind, None, found), where, path)
        return found

    def check_used() -> None:
        unused = sorted(set(overrides) - used)
        if unused:
            raise ActivationError(f"{where}: activation for layer {unused[0]!r}: no layer of that name has an "
                                  "activation to replace (Dense, Activation or Lambda layers do)")

    return activation, check_used


def _check_keras(net: Network, model: Any, pairs: list[tuple[Any, _Step]], where: str) -> None:
    """:func:`~symnet.io._compare.check_import` against the live model (layers in float64, then ``model(x)``)."""
    import torch

    groups: list[list[tuple[Any, _Step]]] = []
    for layer, step in pairs:
        if step.dense_index is not None or not groups:
            groups.append([])
        groups[-1].append((layer, step))

    def tensor(h: np.ndarray) -> Any:
        return torch.as_tensor(h, dtype=torch.float64)

    def layer_values(k: int, h: np.ndarray) -> np.ndarray:
        x = tensor(h)
        for layer, step in groups[k]:
            if step.dense_index is not None:  # Dense.call: matmul, bias, activation -- the products in float64
                kernel, *bias = (tensor(_to_numpy(w)) for w in layer.weights)
                x = x @ kernel + (bias[0] if bias else 0.0)
                x = x if layer.activation is None else layer.activation(x)
            else:
                x = layer.call(x)
        return _to_numpy(x)

    def whole(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return _to_numpy(model(tensor(x), training=False))

    eps = max([float(np.finfo(np.float32).eps)]
              + [_eps(getattr(layer, "compute_dtype", "float32")) for layer, _ in pairs])
    describe = describe_modules([[(step.name, step.class_name) for _, step in g] for g in groups], "layers")
    check_import(net, layer_values, whole, describe, where, "Keras", whole_eps=eps,
                 whole_note=f", {1000 * eps:.2g} relative: Keras computes float64 matrix products in float32 and "
                            "the model's own precision may be lower")


def _eps(dtype: Any) -> float:
    try:
        return float(np.finfo(str(dtype)).eps)
    except (TypeError, ValueError):
        return 2.0**-8 if "bfloat16" in str(dtype) else float(np.finfo(np.float32).eps)


def _live_chain(model: Any, keras: Any, where: str) -> list[Any]:
    layers = list(model.layers)
    if isinstance(model, keras.Sequential):
        return layers
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UnsupportedLayerError(f"{where} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                                    "symnet reads single-input, single-output chains")
    current = model.inputs[0]
    for layer in layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if layer.input is not current:
            raise UnsupportedLayerError(f"{where} is not a simple chain: layer {layer.name!r} "
                                        f"({type(layer).__name__}) does not take the previous layer's output (a "
                                        "branch, or a layer called at more than one place: Keras lists a shared "
                                        "layer once, so symnet refuses it rather than drop a call)")
        current = layer.output
    if model.outputs[0] is not current:
        raise UnsupportedLayerError(f"{where} is not a simple chain: its output is not the last layer's")
    return layers


def _live_step(layer: Any, keras: Any, where: str) -> _Step:
    kind = type(layer).__name__
    name = layer.name
    here = f"{where}: layer {name!r} ({kind})"
    if kind not in _SUPPORTED or not type(layer).__module__.startswith("keras."):
        raise UnsupportedLayerError(f"{here} is not supported; symnet reads {', '.join(_SUPPORTED)} layers")
    if kind in _IDENTITY_LAYERS:
        return _Step(name, kind, None, _activations.activation("linear"))
    if kind == "Dense":
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            raise UnsupportedLayerError(f"{here} is quantized or has LoRA weights; merge them into a plain Dense layer")
        arrays = [_to_numpy(w) for w in layer.weights]
        if len(arrays) != (2 if layer.use_bias else 1):
            raise UnsupportedLayerError(f"{here} has {len(arrays)} weight arrays; symnet reads a kernel and a bias")
        return _Step(name, kind, -1, _deferred(_live_activation, layer.activation, keras, here),
                     arrays[0], arrays[1] if layer.use_bias else None)
    if kind == "Activation":
        return _Step(name, kind, None, _deferred(_live_activation, layer.activation, keras, here))
    return _Step(name, kind, None, _deferred(_layer_activation, kind, layer.get_config(), here))


def _to_numpy(variable: Any) -> np.ndarray:
    """A Keras variable as a float64 array (the torch backend's tensors directly: numpy 2 warns about Keras's)."""
    value = getattr(variable, "value", variable)
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _live_activation(fn: Any, keras: Any, where: str) -> Activation | _Pending:
    if fn is None:
        return _activations.activation("linear")
    name = getattr(fn, "__name__", None)
    if name and str(getattr(fn, "__module__", "")).startswith("keras"):
        try:
            known = keras.activations.get(name) is fn
        except ValueError:
            known = False
        if known:
            params = {k: p.default for k, p in inspect.signature(fn).parameters.items()
                      if p.default is not inspect.Parameter.empty}
            return _builtin(name, params, where)
    try:
        return _activations.get(fn)
    except ActivationError as exc:
        return _Pending(str(exc), code=False)


def _layer_activation(kind: str, config: Mapping[str, Any], where: str) -> Activation:
    """The activation of a ReLU, LeakyReLU, ELU or Softmax layer from its config."""
    if kind == "ReLU":
        return _builtin("relu", {k: config.get(k, v) for k, v in KERAS_DEFAULTS["relu"].items()}, where)
    if kind == "LeakyReLU":
        return _builtin("leaky_relu", {"negative_slope": config.get("negative_slope", 0.3)}, where)
    if kind == "ELU":
        return _builtin("elu", {"alpha": config.get("alpha", 1.0)}, where)
    axis = config.get("axis", -1)
    if axis not in (-1, [-1], (-1,), 1, [1], (1,)):  # symnet's tensors are (N, features): axis 1 is -1
        raise UnsupportedLayerError(f"{where}: Softmax over axis {axis} is not supported; symnet's softmax acts "
                                    "on the last axis")
    return _activations.activation("softmax")


def _number_dense(steps: list[_Step]) -> None:
    index = 0
    for step in steps:
        if step.dense_index is not None:
            step.dense_index = index
            index += 1


# --- .keras files --------------------------------------------------------------------------------


def load_keras(path: str | os.PathLike[str], activations: Mapping[int | str, Any] | None = None,
               trust: bool = False) -> Network:
    """The network in a ``.keras`` file, read without running any code from it.

    Args:
        path: a Keras 3 ``.keras`` archive, or a legacy full-model ``.h5`` file (Keras 2, or
            Keras 3's ``model.save("model.h5")``).
        activations: overrides ``{layer: activation}`` as in :func:`from_keras`; how to load a
            model whose activation is a lambda, safely: ``activations={0: "x**2"}``.
        trust: rebuild lambda activations from the file's bytecode with Keras
            (``safe_mode=False``) and trace them with SymPy: this *runs* code from the file --
            only for files you trust.

    Raises :class:`~symnet.io.UntrustedCodeError` for a lambda or custom activation without
    an override, :class:`~symnet.io.UnsupportedLayerError` for other layers, and
    :class:`~symnet.io.FileFormatError` for a file that is not a readable ``.keras`` archive.
    """
    path = Path(path)
    with open(path, "rb") as stream:
        legacy = stream.read(8) == b"\x89HDF\r\n\x1a\n"
    if legacy:
        return _load_legacy_h5(path, activations, trust)
    config, weights_file = _read_archive(path)
    where = str(path)
    if not _config_is_chain(config):
        return _file_graph(config, weights_file, path, activations, trust)
    steps = _config_steps(config, where, trust)
    _number_dense(steps)
    _override(steps, activations, where)
    dense = [s for s in steps if s.dense_index is not None]
    _read_weights(weights_file, dense, path)
    return _build([s for s in steps if s.class_name not in _IDENTITY_LAYERS], where, path)


def _config_is_chain(config: dict[str, Any]) -> bool:
    """Whether a file's config is a chain of the layers the chain reader knows (else it is read as a graph)."""
    body = config.get("config")
    layers = body.get("layers") if isinstance(body, dict) else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) and isinstance(layer.get("config"), dict)
                                               for layer in layers):
        return True  # the chain reader says what is wrong
    if any(layer.get("class_name") not in _SUPPORTED for layer in layers):
        from .keras_graph import LAYERS

        return not any(layer.get("class_name") in LAYERS for layer in layers)  # unknown layers: the chain error
    if config.get("class_name") == "Sequential":
        return True
    try:
        _check_chain(body, layers, "")
    except UnsupportedLayerError:
        return False
    return True


def _file_graph(config: dict[str, Any], data: bytes, path: Path, overrides: Mapping[int | str, Any] | None,
                trust: bool) -> Network:
    """A ``.keras`` file whose model is a graph, read by :mod:`symnet.io.keras_graph`."""
    with _weights_file(data, path) as h5:
        groups = dict(_vars_groups(h5, path))
        by_name = {layer_name: key for key, (layer_name, _) in groups.items() if layer_name is not None}

        def weights(name: str, here: str, wanted: Sequence[tuple[str, tuple[int, ...]]]) -> list[np.ndarray]:
            key = by_name.get(name, f"layers/{name}")
            if key not in groups:
                raise FileFormatError(f"{here}: model.weights.h5 has no weights for it")
            return _layer_arrays(groups[key][1], wanted, path, name, here)

        return _read_file_graph(config, weights, path, overrides, trust)


def _layer_arrays(items: list[tuple[Any, str]], wanted: Sequence[tuple[str, tuple[int, ...]]], path: Path,
                  name: str, here: str) -> list[np.ndarray]:
    """One layer's weight datasets ``(group, key)`` from a file, as many as ``wanted`` names, shapes checked."""
    if len(items) != len(wanted):
        raise FileFormatError(f"{here}: {len(items)} weight arrays in the file; expected "
                              f"{', '.join(label for label, _ in wanted)}")
    step = _Step(name, here, None, _activations.activation("linear"))
    return [_dataset(item, path, step, label, shape) for item, (label, shape) in zip(items, wanted)]


def _read_file_graph(config: dict[str, Any], weights: Any, path: Path, overrides: Mapping[int | str, Any] | None,
                     trust: bool) -> Network:
    """A file's model config read as a graph, activations from the config (overrides first)."""
    from .keras_graph import graph_from_config

    activation, check_used = _graph_activation(
        overrides, str(path), path, lambda name, kind, here, spec: _deferred(_config_activation, spec, here, trust))
    net, _ = graph_from_config(config, weights, str(path), activation)
    check_used()
    return net


def _read_archive(path: Path) -> tuple[dict[str, Any], bytes]:
    with open(path, "rb") as handle:  # a missing or unreadable file is the OSError it is, not a damaged archive
        try:
            with zipfile.ZipFile(handle) as archive:
                names = archive.namelist()
                if "config.json" not in names:
                    raise FileFormatError(f"{path}: not a .keras archive (no config.json)")
                if "model.weights.h5" not in names:
                    raise FileFormatError(f"{path}: the archive has no model.weights.h5 (sharded or missing weights "
                                          "are not supported); save the model with model.save('model.keras')")
                config_text = _member(archive, "config.json", MAX_CONFIG_BYTES, path)
                weights = _member(archive, "model.weights.h5", MAX_WEIGHTS_BYTES, path)
        except SymnetError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError,
                OSError) as exc:  # a bit flip: bad CRC, bad deflate stream, truncated, encrypted, unknown method
            raise FileFormatError(f"{path}: not a .keras archive, or a damaged or truncated one "
                                  f"({type(exc).__name__}: {str(exc)[:200]!r})") from None
    return _parse_config(config_text, path, "config.json"), weights


def _parse_config(text: bytes, path: Path, what: str) -> dict[str, Any]:
    try:
        config = json.loads(text.decode("utf-8"))
    except RecursionError:
        raise FileFormatError(f"{path}: {what} is nested too deeply to be a Keras model config") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise FileFormatError(f"{path}: {what} is not valid JSON ({str(exc)[:200]!r})") from None
    if not isinstance(config, dict):
        raise FileFormatError(f"{path}: {what} does not describe a model")
    return config


def _load_legacy_h5(path: Path, overrides: Mapping[int | str, Any] | None, trust: bool) -> Network:
    """A legacy full-model ``.h5`` file: its ``model_config`` attribute read as a graph, weights from ``model_weights``."""
    import h5py

    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise FileFormatError(f"{path}: {size:,} bytes, more than symnet.io.keras.MAX_WEIGHTS_BYTES")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(f"{path}: not a readable HDF5 file ({str(exc)[:200]!r})") from None
    with h5:
        try:
            text = h5.attrs.get("model_config")
            if text is None:
                raise FileFormatError(f"{path}: an HDF5 file without a model_config: a weights-only file "
                                      "(model.save_weights) holds no architecture; symnet reads full-model .h5 files")
            text = text.encode("utf-8") if isinstance(text, str) else bytes(text)
            if len(text) > MAX_CONFIG_BYTES:
                raise FileFormatError(f"{path}: model_config holds {len(text):,} bytes, more than "
                                      "symnet.io.keras.MAX_CONFIG_BYTES")
            config = _parse_config(text, path, "model_config")
            root = h5.get("model_weights", getlink=False)
            if not isinstance(root, h5py.Group):
                raise FileFormatError(f"{path}: no model_weights group")

            def weights(name: str, here: str, wanted: Sequence[tuple[str, tuple[int, ...]]]) -> list[np.ndarray]:
                group = root.get(name) if name in root else None
                if not isinstance(group, h5py.Group) or not isinstance(root.get(name, getlink=True), h5py.HardLink):
                    raise FileFormatError(f"{here}: model_weights has no group for it")
                names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n)
                         for n in group.attrs.get("weight_names", [])]
                return _layer_arrays([(group, n) for n in names], wanted, path, name, here)

            net = _read_file_graph(config, weights, path, overrides, trust)
        except SymnetError:
            raise
        except _H5_DAMAGE as exc:
            raise FileFormatError(f"{path}: the HDF5 file is damaged ({type(exc).__name__}: {str(exc)[:200]!r})") \
                from None
    return net


def _member(archive: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    """One archive member, refused before reading when it declares more than ``limit`` bytes.

    ``zipfile`` reads no more than the declared size (and checks the CRC), so the limit holds
    however the data is compressed.
    """
    size = archive.getinfo(name).file_size
    if size > limit:
        raise FileFormatError(f"{path}: {name} declares {size:,} bytes, more than the {limit:,} symnet reads "
                              "(symnet.io.keras.MAX_CONFIG_BYTES, MAX_WEIGHTS_BYTES)")
    return archive.read(name)


def _brief(value: Any) -> str:
    """A short, escaped description of a value from a file, safe to print (no deep ``str()``)."""
    if isinstance(value, str):
        return repr(value[:60])
    if isinstance(value, (int, float, bool)) or value is None:
        return repr(value)
    return f"a JSON {type(value).__name__}"


def model_layers(config: dict[str, Any], where: str) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """``(class_name, config body, layers)`` of a Keras model config, each layer an object with a config."""
    kind = config.get("class_name")
    body = config.get("config")
    if kind not in ("Sequential", "Functional", "Model") or not isinstance(body, dict) \
            or not isinstance(body.get("layers"), list):
        raise UnsupportedLayerError(f"{where}: the model is a {_brief(kind)}; symnet reads Sequential and "
                                    "functional models")
    for layer in body["layers"]:
        if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
            raise FileFormatError(f"{where}: config.json lists a layer that is not an object: {_brief(layer)}")
    return kind, body, body["layers"]


def _config_steps(config: dict[str, Any], where: str, trust: bool) -> list[_Step]:
    kind, body, layers = model_layers(config, where)
    if kind != "Sequential":
        _check_chain(body, layers, where)
    return [_config_step(layer, where, trust) for layer in layers]


def _check_chain(body: dict[str, Any], layers: list[dict[str, Any]], where: str) -> None:
    previous = None
    for layer in layers:
        name = layer["config"].get("name")
        if layer.get("class_name") == "InputLayer":
            previous = name
            continue
        nodes = layer.get("inbound_nodes")
        try:
            (node,) = nodes  # type: ignore[misc]
            (arg,) = node["args"]
            source = arg["config"]["keras_history"][0]
        except (TypeError, ValueError, KeyError, IndexError):
            source = None
        if previous is None or source != previous:
            raise UnsupportedLayerError(f"{where}: the functional model is not a simple chain at layer {name!r} "
                                        f"({layer.get('class_name')}); symnet reads one input through one chain of "
                                        "layers")
        previous = name
    outputs = body.get("output_layers")
    if isinstance(outputs, list) and outputs and not isinstance(outputs[0], list):
        outputs = [outputs]
    if not (isinstance(outputs, list) and len(outputs) == 1 and outputs[0][:1] == [previous]):
        raise UnsupportedLayerError(f"{where}: the functional model's output is not its last layer {previous!r}")


def _config_step(layer: dict[str, Any], where: str, trust: bool) -> _Step:
    kind = layer.get("class_name")
    config = layer["config"]
    name = config.get("name")
    if not isinstance(name, str) or not isinstance(kind, str):
        raise FileFormatError(f"{where}: config.json lists a layer whose name ({_brief(name)}) or class_name "
                              f"({_brief(kind)}) is not a string")
    here = f"{where}: layer {name!r} ({kind})"
    module = layer.get("module") or "keras.layers"
    if kind not in _SUPPORTED or not _keras_module(module):
        origin = "" if _keras_module(module) else f" from module {_brief(module)}"
        raise UnsupportedLayerError(f"{here}{origin} is not supported; symnet reads {', '.join(_SUPPORTED)} layers "
                                    "from Keras and never imports a module a file names")
    if kind in _IDENTITY_LAYERS:
        return _Step(name, kind, None, _activations.activation("linear"))
    if kind == "Dense":
        if config.get("lora_rank") or config.get("quantization_config"):
            raise UnsupportedLayerError(f"{here} is quantized or has LoRA weights; merge them into a plain Dense layer")
        units = config.get("units")
        if not isinstance(units, int) or units < 1:
            raise FileFormatError(f"{here}: units is {units!r}")
        return _Step(name, kind, -1, _deferred(_config_activation, config.get("activation"), here, trust), units=units,
                     use_bias=bool(config.get("use_bias", True)))
    if kind == "Activation":
        return _Step(name, kind, None, _deferred(_config_activation, config.get("activation"), here, trust))
    return _Step(name, kind, None, _deferred(_layer_activation, kind, config, here))


def _config_activation(spec: Any, where: str, trust: bool) -> Activation | _Pending:
    if spec is None or isinstance(spec, str):
        return _builtin(spec, {}, where)
    if isinstance(spec, dict):
        if "value" in spec or spec.get("class_name") == "__lambda__":
            if trust:
                return _trusted_lambda(spec, where)
            return _Pending("has a Python lambda activation, stored in the file as bytecode", code=True)
        inner = spec.get("config")
        if _keras_module(spec.get("module", "")) and isinstance(inner, str):
            return _builtin(inner, {}, where)
        label = inner if isinstance(inner, str) else spec.get("class_name")
        return _Pending(f"has the custom activation {_brief(label)}, whose Python code is not in the file",
                        code=False)
    raise FileFormatError(f"{where}: cannot read activation {_brief(spec)}")


def _keras_module(module: Any) -> bool:
    """Whether a config's ``module`` is Keras's own (``keras``, ``keras.layers``; not ``keras_evil``)."""
    return isinstance(module, str) and (module == "keras" or module.startswith("keras."))


def _trusted_lambda(spec: dict[str, Any], where: str) -> Activation | _Pending:
    """Rebuild a lambda from the file's bytecode with Keras (this runs code from the file) and trace it."""
    keras = _import_keras()
    # Keras 3 saves a Dense lambda activation as its bare {"value": [...]} config, without the
    # "__lambda__" tag its own loader needs; give the tag back
    tagged = spec if spec.get("class_name") == "__lambda__" else {"class_name": "__lambda__", "config": spec}
    try:
        fn = keras.saving.deserialize_keras_object(tagged, safe_mode=False)
    except Exception as exc:  # corrupt bytecode, another Python version: Keras raises many kinds
        raise FileFormatError(f"{where}: Keras could not rebuild the lambda activation from its bytecode "
                              f"({type(exc).__name__}: {exc}); give the activation as an expression instead") from None
    try:
        return _activations.get(fn)
    except ActivationError as exc:
        return _Pending(f"has a lambda activation that SymPy cannot trace ({exc})", code=False)


#: What h5py raises on damaged data: a bad chunk, a broken B-tree, a missing filter, a huge declared attribute.
_H5_DAMAGE = (OSError, KeyError, ValueError, TypeError, RuntimeError, RecursionError, MemoryError)


@contextlib.contextmanager
def _weights_file(data: bytes, path: Path) -> Iterator[Any]:
    """``model.weights.h5`` opened from memory; h5py's errors on damaged data as :class:`FileFormatError`."""
    import h5py

    try:
        h5 = h5py.File(io.BytesIO(data), "r")
    except OSError as exc:
        raise FileFormatError(f"{path}: model.weights.h5 is not a readable HDF5 file ({str(exc)[:200]!r})") from None
    with h5:
        try:
            yield h5
        except SymnetError:
            raise
        except _H5_DAMAGE as exc:
            raise FileFormatError(f"{path}: model.weights.h5 is damaged ({type(exc).__name__}: "
                                  f"{str(exc)[:200]!r})") from None


def _read_weights(data: bytes, dense: list[_Step], path: Path) -> None:
    with _weights_file(data, path) as h5:
        _read_dense_weights(h5, dense, path)


def _read_dense_weights(h5: Any, dense: list[_Step], path: Path) -> None:
    groups = dict(_vars_groups(h5, path))
    fan_in = None
    for count, step in enumerate(dense):
        named = [g for g, (layer_name, _) in groups.items() if layer_name == step.name]
        # Keras names weight groups by class, in layer order (dense, dense_1, ...) and stores the
        # layer's name as an attribute; files without the attribute are matched by position
        key = named[0] if len(named) == 1 else "layers/dense" + (f"_{count}" if count else "")
        if key not in groups:
            raise FileFormatError(f"{path}: model.weights.h5 has no weights for {step.where()}")
        arrays = groups[key][1]
        units, use_bias = step.units, step.use_bias
        if len(arrays) != (2 if use_bias else 1):
            raise FileFormatError(f"{path}: {step.where()} has {len(arrays)} weight arrays in model.weights.h5; "
                                  f"expected {'a kernel and a bias' if use_bias else 'a kernel'}")
        kernel = _dataset(arrays[0], path, step, "kernel", (fan_in, units))
        step.kernel = kernel
        step.bias = None
        if use_bias:
            step.bias = _dataset(arrays[1], path, step, "bias", (units,))
        fan_in = units


def _vars_groups(h5: Any, path: Path) -> Iterator[tuple[str, tuple[str | None, list[Any]]]]:
    import h5py

    layers = h5.get("layers", getlink=False)
    if not isinstance(layers, h5py.Group):
        raise FileFormatError(f"{path}: model.weights.h5 has no 'layers' group")
    for key in layers:
        group = layers.get(key)
        variables = group.get("vars") if isinstance(group, h5py.Group) else None
        if not isinstance(variables, h5py.Group):
            continue
        name = variables.attrs.get("name")
        items = sorted(variables.keys(), key=lambda k: int(k) if k.isdigit() else -1)
        yield f"layers/{key}", (str(name) if name is not None else None,
                                [(variables, k) for k in items])


def _dataset(item: tuple[Any, str], path: Path, step: _Step, what: str,
             shape: tuple[int | None, ...]) -> np.ndarray:
    """A weight array, its shape and dtype checked against the config before any value is read."""
    import h5py

    group, key = item
    link = group.get(key, getlink=True)
    dataset = group.get(key)
    if not isinstance(link, h5py.HardLink) or not isinstance(dataset, h5py.Dataset) \
            or dataset.external or dataset.is_virtual:
        raise FileFormatError(f"{path}: {step.where()}: the {what} is not a plain dataset inside the file")
    if dataset.dtype.kind != "f" or dataset.dtype.itemsize > 8:
        raise FileFormatError(f"{path}: {step.where()}: the {what} has dtype {dataset.dtype}; expected floats")
    declared = tuple(int(n) for n in dataset.shape)
    if len(declared) != len(shape) or any(want is not None and got != want for got, want in zip(declared, shape)):
        needed = "(" + ", ".join("fan_in" if n is None else str(n) for n in shape) + ("," * (len(shape) == 1)) + ")"
        reason = (f"the Dense layer before has {shape[0]} units" if len(declared) == 2 == len(shape)
                  and declared[1] == shape[1] else f"the layer has {step.units} units")
        raise FileFormatError(f"{path}: {step.where()}: {what} has shape {declared} but {reason}: {needed} is needed")
    if int(np.prod(declared, dtype=object)) > MAX_LAYER_VALUES:
        raise FileFormatError(f"{path}: {step.where()}: the {what} declares shape {declared}, more than the "
                              f"{MAX_LAYER_VALUES:,} numbers symnet reads per array (symnet.io.keras.MAX_LAYER_VALUES)")
    array = np.asarray(dataset[()], dtype=np.float64)
    if array.shape != declared:
        raise FileFormatError(f"{path}: {step.where()}: the {what} read as shape {array.shape}, not {declared}")
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        raise FileFormatError(f"{path}: {step.where()}: {what}{list(index)} is {array[index]}; weights must be finite")
    return array
