"""Keras models that are graphs: functional models with residual adds, products, concatenation,
normalisation layers, several inputs and outputs -- from a live model or a ``.keras`` file.

:func:`~symnet.io.from_keras` and :func:`~symnet.io.load_keras` send here every model that is
not a chain of ``Dense`` and activation layers.  Both read the same thing: the model's config
(``config.json`` in a file, Keras' own serialisation of a live model) layer by layer in the
order Keras lists them, each call of a layer (its ``inbound_nodes``) through one table,
:data:`LAYERS`, to :mod:`symnet.graph.builder` calls.  A file's config is data: layer
classes outside the table, or from a module that is not Keras' own, are refused by name and
never imported; lambda layers are refused (a lambda activation is handled as for chains).
Weights come from the live layers or from ``model.weights.h5``, each array's shape checked
against the config before it is read.

A live model is checked like a chain: every layer's output (Keras' own, in the model's
compute precision) against symnet's node, then ``model(x)`` end to end, raising
:class:`~symnet.ImportMismatchError` at the first layer that differs.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..activations import Activation
from ..errors import ImportMismatchError, SymnetError
from ..graph import builder as g
from ..network import Network
from ._compare import _difference, check_points
from ._tensor_ops import extremum, form_activation, node_name, prelu
from .format import MAX_NODES, FileFormatError, UnsupportedLayerError

__all__ = ["LAYERS", "graph_from_config", "layer_table"]

#: Keras' ``backend.epsilon()``: ``Normalization`` divides by ``max(sqrt(variance), epsilon)``.
KERAS_EPSILON = 1e-7

Weights = Callable[[str, str, Sequence[tuple[str, tuple[int, ...]]]], list[np.ndarray]]


@dataclass(frozen=True)
class _Layer:
    """What a converter sees of one call of one layer."""

    name: str
    kind: str
    config: dict[str, Any]
    inputs: list[g.Tensor]
    where: str
    weights: Weights
    activation: Callable[[Any], Activation]  # the layer's activation config -> symnet activation (overrides applied)

    def one(self) -> g.Tensor:
        if len(self.inputs) != 1:
            raise UnsupportedLayerError(f"{self.where} takes {len(self.inputs)} inputs; it reads one")
        return self.inputs[0]

    def arrays(self, *wanted: tuple[str, tuple[int, ...]]) -> list[np.ndarray]:
        return self.weights(self.name, self.where, wanted)

    def last_axis(self) -> None:
        axis = self.config.get("axis", -1)
        if axis not in (-1, [-1], 1, [1]):
            raise UnsupportedLayerError(f"{self.where}: axis {_axes(axis)}; symnet's tensors are (N, features) "
                                        "and these layers act on the features (axis -1)")

    def flag(self, key: str, default: bool) -> bool:
        value = self.config.get(key, default)
        if not isinstance(value, bool):
            raise FileFormatError(f"{self.where}: {key} is {_brief(value)}, not true or false")
        return value

    def number(self, key: str, default: float) -> float:
        value = self.config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise FileFormatError(f"{self.where}: {key} is {_brief(value)}, not a finite number")
        return float(value)


def _brief(value: Any) -> str:
    from .keras import _brief as brief

    return brief(value)


def _axes(value: Any) -> str:
    """An axis or a short list of axes from a config, shown as written (anything else as :func:`_brief`)."""
    if isinstance(value, list) and 0 < len(value) <= 8 and all(type(v) is int and abs(v) < 100 for v in value):
        return repr(value)
    return _brief(value)


# --- the table -----------------------------------------------------------------------------


def _dense(layer: _Layer) -> g.Tensor:
    x = layer.one()
    units = layer.config.get("units")
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise FileFormatError(f"{layer.where}: units is {_brief(units)}")
    if layer.config.get("lora_rank") or layer.config.get("quantization_config"):
        raise UnsupportedLayerError(f"{layer.where} is quantized or has LoRA weights; merge them into a plain Dense "
                                    "layer")
    use_bias = layer.flag("use_bias", True)
    wanted = [("kernel", (x.width, units))] + ([("bias", (units,))] if use_bias else [])
    kernel, *bias = layer.arrays(*wanted)
    z = g.dense(x, kernel, bias[0] if bias else None)
    return _activate(z, layer.activation(layer.config.get("activation")))


def _activate(x: g.Tensor, activation: Activation) -> g.Tensor:
    if activation.name == "linear":
        return x
    return g.activation(x, activation)


def _activation_layer(layer: _Layer) -> g.Tensor:
    return _activate(layer.one(), layer.activation(layer.config.get("activation")))


def _named_activation_layer(layer: _Layer) -> g.Tensor:
    from .keras import _layer_activation

    return _activate(layer.one(), _layer_activation(layer.kind, layer.config, layer.where))


def _merge(kind: str) -> Callable[[_Layer], g.Tensor]:
    def convert(layer: _Layer) -> g.Tensor:
        xs = layer.inputs
        if len(xs) < 2 or (kind == "sub" and len(xs) != 2):
            raise UnsupportedLayerError(f"{layer.where} takes {len(xs)} inputs")
        if kind == "concat":
            layer.last_axis()
            return g.concat(*xs)
        if len({x.width for x in xs}) != 1:
            raise UnsupportedLayerError(f"{layer.where}: inputs of widths {[x.width for x in xs]}; symnet merges "
                                        "tensors of one width")
        out = xs[0]
        for x in xs[1:]:  # folded left, as Keras does: max(max(a, b), c)
            if kind in ("max", "min"):
                out = extremum(kind, out, x, layer.where)
            else:
                out = {"add": g.add, "sub": g.sub, "mul": g.mul, "average": g.add}[kind](out, x)
        return g.rescale(out, 1.0 / len(xs)) if kind == "average" else out  # 1/n is fixed, not trained
    return convert


def _prelu(layer: _Layer) -> g.Tensor:
    """``max(0, x) + alpha * min(0, x)``, ``alpha`` one per feature (``shared_axes=None``) or one
    number (``shared_axes=[1]``): a ``scale`` node's ``s``, trained with the rest."""
    x = layer.one()
    shared = layer.config.get("shared_axes")
    axes = shared if isinstance(shared, list) else [shared]
    if shared is None:
        shape: tuple[int, ...] = (x.width,)
    elif len(axes) == 1 and type(axes[0]) is int and axes[0] == 1:
        shape = (1,)
    else:
        raise UnsupportedLayerError(f"{layer.where}: shared_axes={_axes(shared)}; on symnet's (N, features) "
                                    "tensors PReLU has one alpha per feature (shared_axes=None) or one for all "
                                    "features (shared_axes=[1])")
    (alpha,) = layer.arrays(("alpha", shape))
    return prelu(x, alpha if shape == (x.width,) else float(alpha.reshape(-1)[0]))


#: ``ops.normalize``'s epsilon: ``UnitNormalization`` passes 1e-12; ``Dot(normalize=True)`` takes
#: Keras' ``backend.epsilon()``.
UNIT_NORM_EPSILON = 1e-12


def _unit(x: g.Tensor, eps: float) -> g.Tensor:
    """``x / sqrt(sum(x^2) + eps^2)`` -- Keras' ``x / max(|x|, eps)`` wherever ``|x|`` is not within a
    few ``eps`` of 0 -- composed as ``rms_norm`` is: mul, sum, rescale, 1/sqrt, mul."""
    return g.mul(x, form_activation(g.rescale(g.sum(g.mul(x, x)), 1, eps * eps), "rsqrt"))


def _unit_normalization(layer: _Layer) -> g.Tensor:
    x = layer.one()
    layer.last_axis()
    return _unit(x, UNIT_NORM_EPSILON)


def _dot(layer: _Layer) -> g.Tensor:
    """``sum_k a_k b_k`` over the features (``inner``), of unit vectors for ``normalize=True``."""
    xs = layer.inputs
    if len(xs) != 2:
        raise UnsupportedLayerError(f"{layer.where} takes {len(xs)} inputs; Dot takes two")
    axes = layer.config.get("axes")
    pair = axes if isinstance(axes, list) else [axes, axes]
    if len(pair) != 2 or not all(isinstance(a, int) and not isinstance(a, bool) and a in (1, -1) for a in pair):
        raise UnsupportedLayerError(f"{layer.where}: axes={_axes(axes)}; on symnet's (N, features) tensors Dot "
                                    "multiplies over the features: axes=1 or -1")
    a, b = xs
    if a.width != b.width:
        raise UnsupportedLayerError(f"{layer.where}: inputs of widths {a.width} and {b.width}; Dot needs one width")
    if layer.flag("normalize", False):
        a, b = _unit(a, KERAS_EPSILON), _unit(b, KERAS_EPSILON)
    return g.inner(a, b)


def _identity(layer: _Layer) -> g.Tensor:
    return layer.one()


def _normalization(layer: _Layer) -> g.Tensor:
    x = layer.one()
    layer.last_axis()
    if layer.flag("invert", False):
        raise UnsupportedLayerError(f"{layer.where}: invert=True (denormalisation) is not supported")
    given = layer.config.get("mean"), layer.config.get("variance")
    if given[0] is not None and given[1] is not None:
        mean, variance = (_constant(v, x.width, f"{layer.where}: {k}") for v, k in zip(given, ("mean", "variance")))
    else:
        mean, variance, _ = layer.arrays(("mean", (x.width,)), ("variance", (x.width,)), ("count", ()))
    if np.any(variance < 0):
        raise FileFormatError(f"{layer.where}: a variance is negative")
    return g.normalize(x, mean, np.maximum(np.sqrt(variance), KERAS_EPSILON))


def _constant(value: Any, width: int, where: str) -> np.ndarray:
    array = np.asarray(value, dtype=object)
    if array.size not in (1, width) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                for v in array.reshape(-1)):
        raise FileFormatError(f"{where} is {_brief(value)}; expected a number or {width} numbers")
    values = np.asarray(array.reshape(-1), dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise FileFormatError(f"{where} has a non-finite entry")
    return np.broadcast_to(values, (width,)).copy()


def _rescaling(layer: _Layer) -> g.Tensor:
    x = layer.one()
    scale = _constant(layer.config.get("scale", 1.0), x.width, f"{layer.where}: scale")
    offset = _constant(layer.config.get("offset", 0.0), x.width, f"{layer.where}: offset")
    return g.rescale(x, scale, offset)


def _batch_norm(layer: _Layer) -> g.Tensor:
    x = layer.one()
    layer.last_axis()
    w = x.width
    scale, center = layer.flag("scale", True), layer.flag("center", True)
    wanted = ([("gamma", (w,))] if scale else []) + ([("beta", (w,))] if center else []) + \
        [("moving_mean", (w,)), ("moving_variance", (w,))]
    arrays = layer.arrays(*wanted)
    gamma = arrays.pop(0) if scale else 1.0
    beta = arrays.pop(0) if center else 0.0
    mean, variance = arrays
    return g.batch_norm(x, mean, variance, gamma, beta, eps=layer.number("epsilon", 1e-3))


def _layer_norm(layer: _Layer) -> g.Tensor:
    x = layer.one()
    layer.last_axis()
    if layer.flag("rms_scaling", False):
        raise UnsupportedLayerError(f"{layer.where}: rms_scaling=True is not supported")
    scale, center = layer.flag("scale", True), layer.flag("center", True)
    arrays = layer.arrays(*(([("gamma", (x.width,))] if scale else []) + ([("beta", (x.width,))] if center else [])))
    gamma = arrays.pop(0) if scale else None
    beta = arrays.pop(0) if center else None
    return g.layer_norm(x, gamma, beta, eps=layer.number("epsilon", 1e-3))


def _lambda(layer: _Layer) -> g.Tensor:
    """A ``Lambda`` layer as an elementwise activation: its function traced by SymPy (live models), or the
    expression given for it (``activations={"its_name": "sin(x)"}``); a file's bytecode runs only with trust."""
    return _activate(layer.one(), layer.activation(layer.config.get("function")))


def _flatten(layer: _Layer) -> g.Tensor:
    return layer.one()  # (N, features) stays (N, features)


def _reshape(layer: _Layer) -> g.Tensor:
    """``Reshape((w,))`` or ``Reshape((-1,))`` of ``(N, w)``: the identity; any other target adds axes."""
    x = layer.one()
    target = layer.config.get("target_shape")
    if not (isinstance(target, (list, tuple)) and len(target) == 1 and isinstance(target[0], int)
            and not isinstance(target[0], bool) and target[0] in (x.width, -1)):
        raise UnsupportedLayerError(f"{layer.where}: target_shape {_axes(target)} of an (N, {x.width}) "
                                    f"tensor; symnet reads Reshape(({x.width},)) and Reshape((-1,)), which keep it")
    return x


#: Every Keras layer a graph may hold, and what it becomes.  ``InputLayer`` starts the graph.
LAYERS: dict[str, tuple[Callable[[_Layer], g.Tensor], str]] = {
    "Dense": (_dense, "dense (and its activation)"),
    "Activation": (_activation_layer, "activation"),
    "ReLU": (_named_activation_layer, "activation (relu, or hardtanh with max_value)"),
    "LeakyReLU": (_named_activation_layer, "activation leaky_relu"),
    "ELU": (_named_activation_layer, "activation elu"),
    "Softmax": (_named_activation_layer, "softmax"),
    "Add": (_merge("add"), "add"),
    "Subtract": (_merge("sub"), "sub"),
    "Multiply": (_merge("mul"), "mul"),
    "Maximum": (_merge("max"), "max(a, b) = a + relu(b - a), folded left over more inputs"),
    "Minimum": (_merge("min"), "min(a, b) = a - relu(a - b), folded left over more inputs"),
    "Dot": (_dot, "inner (mul, sum) over the features, axes 1 or -1; normalize=True: of each "
                  "x / sqrt(sum(x^2) + 1e-14)"),
    "PReLU": (_prelu, "relu(x) + alpha * (x - relu(x)), alpha a scale's parameter (per feature, or shared_axes=[1])"),
    "UnitNormalization": (_unit_normalization, "x / sqrt(sum(x^2) + 1e-24): mul, sum, rescale, 1/sqrt, mul"),
    "Average": (_merge("average"), "add, then rescale by the constant 1/n"),
    "Concatenate": (_merge("concat"), "concat over the features"),
    "Normalization": (_normalization, "normalize: (x - mean) / max(sqrt(variance), 1e-7)"),
    "Rescaling": (_rescaling, "rescale: x * scale + offset"),
    "BatchNormalization": (_batch_norm, "batch_norm (moving statistics)"),
    "LayerNormalization": (_layer_norm, "layer_norm"),
    "Lambda": (_lambda, "an elementwise activation: its function traced, or the expression given for it"),
    "Flatten": (_flatten, "the identity on (N, features)"),
    "Reshape": (_reshape, "the identity, target_shape (features,) or (-1,)"),
    "Dropout": (_identity, "the identity (inference)"),
    "Identity": (_identity, "the identity"),
}


def layer_table() -> str:
    """:data:`LAYERS` as the Markdown table of docs/io.md (a test keeps the two the same).

    >>> print(layer_table().splitlines()[3])
    | `Activation` | activation |
    """
    rows = [f"| `{name}` | {summary} |" for name, (_, summary) in sorted(LAYERS.items())]
    return "\n".join(["| Keras layer | symnet |", "|---|---|", "| `InputLayer` | input |", *rows])


# --- the config ----------------------------------------------------------------------------


def graph_from_config(config: dict[str, Any], weights: Weights, where: str,
                      activation: Callable[[str, str, str, Any], Activation]) -> tuple[Network, dict[str, str]]:
    """The network a Keras model config describes, and ``{symnet node: Keras layer}`` for its named nodes.

    ``weights(layer, where, [(name, shape), ...])`` gives a layer's arrays, shapes checked;
    ``activation(layer, class name, where, spec)`` reads an activation config (overrides applied).
    """
    from .keras import _keras_module, model_layers

    kind, body, layers = model_layers(config, where)
    if len(layers) > MAX_NODES:
        raise FileFormatError(f"{where}: {len(layers):,} layers, more than symnet.io.format.MAX_NODES = {MAX_NODES:,}")
    tensors: dict[tuple[str, int, int], g.Tensor] = {}
    inputs: list[g.Tensor] = []
    names: dict[str, str] = {}
    taken: set[str] = set()
    previous: g.Tensor | None = None
    pending: list[tuple[str, str, dict[str, Any], str, int, Any]] = []  # calls waiting for their inputs
    for entry in layers:
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise FileFormatError(f"{where}: config.json lists a layer that is not an object: {_brief(entry)}")
        layer_kind, cfg = entry.get("class_name"), entry["config"]
        name = cfg.get("name", entry.get("name"))
        if not isinstance(name, str) or not isinstance(layer_kind, str):
            raise FileFormatError(f"{where}: a layer whose name ({_brief(name)}) or class_name ({_brief(layer_kind)}) "
                                  "is not a string")
        here = f"{where}: layer {name!r} ({layer_kind})"
        module = entry.get("module") or "keras.layers"
        if not _keras_module(module) or (layer_kind not in LAYERS and layer_kind != "InputLayer"):
            origin = "" if _keras_module(module) else f" from module {_brief(module)}"
            raise UnsupportedLayerError(f"{here}{origin} is not supported; symnet reads InputLayer, "
                                        f"{', '.join(sorted(LAYERS))} and never imports a module a file names")
        if layer_kind == "InputLayer":
            x = g.input(_input_width(cfg, here))
            inputs.append(x)
            tensors[(name, 0, 0)] = previous = x
            continue
        if kind == "Sequential" and previous is None and isinstance(cfg.get("batch_input_shape"), list):
            previous = g.input(_input_width(cfg, here))  # Keras 2: the first layer carries the input shape
            inputs.append(previous)
        if kind == "Sequential" and not entry.get("inbound_nodes"):
            if previous is None:
                raise UnsupportedLayerError(f"{here} comes before the model's input")
            previous = _convert(layer_kind, name, cfg, [previous], here, weights, activation, 0, taken, names)
            tensors[(name, 0, 0)] = previous
            continue
        nodes = entry.get("inbound_nodes")
        if not isinstance(nodes, list) or not nodes:
            raise FileFormatError(f"{here}: no inbound_nodes: the layer is not called")
        pending += [(layer_kind, name, cfg, here, k, node) for k, node in enumerate(nodes)]
        if len(pending) > MAX_NODES:
            raise FileFormatError(f"{where}: more than symnet.io.format.MAX_NODES = {MAX_NODES:,} layer calls")
    # Keras lists a layer once, at its first call: a shared layer's later calls read layers listed
    # after it, so the calls run in dependency order (Kahn's algorithm: each call waits on a count
    # of missing inputs, and runs when the last of them is computed)
    needs = [[_key(r, here) for r in _node_refs(node, here)] for _, _, _, here, _, node in pending]
    missing = [sum(key not in tensors for key in set(keys)) for keys in needs]
    waiters: dict[tuple[str, int, int], list[int]] = {}
    for i, keys in enumerate(needs):
        for key in set(keys):
            if key not in tensors:
                waiters.setdefault(key, []).append(i)
    ready = [i for i, count in enumerate(missing) if count == 0]
    done = 0
    while ready:
        i = ready.pop(0)
        layer_kind, name, cfg, here, k, _ = pending[i]
        key = (name, k, 0)
        previous = _convert(layer_kind, name, cfg, [tensors[r] for r in needs[i]], here, weights, activation, k,
                            taken, names)
        done += 1
        if key in tensors:
            raise FileFormatError(f"{here}: call {k} is listed twice")
        tensors[key] = previous
        for j in waiters.pop(key, []):
            missing[j] -= 1
            if missing[j] == 0:
                ready.append(j)
    if done < len(pending):
        i = next(i for i, count in enumerate(missing) if count)
        _, _, _, here, k, _ = pending[i]
        name, node, index = next(key for key in needs[i] if key not in tensors)
        raise FileFormatError(f"{here}: call {k} reads {name!r} (call {node}, output {index}), which no layer "
                              "computes (or the layers form a cycle)")
    if kind == "Sequential":
        if not inputs or previous is None or previous is inputs[0]:
            raise UnsupportedLayerError(f"{where}: a Sequential model needs an input shape and at least one layer")
        return g.network(inputs, previous), names
    ins = [_lookup(ref, tensors, where) for ref in _refs(body.get("input_layers"), where)]
    outs = [_lookup(ref, tensors, where) for ref in _refs(body.get("output_layers"), where)]
    if [id(t) for t in ins] != [id(t) for t in inputs]:
        inputs = ins
    return g.network(inputs, outs), names


def _input_width(cfg: dict[str, Any], where: str) -> int:
    shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
    if not isinstance(shape, list) or len(shape) != 2 or shape[0] is not None \
            or isinstance(shape[1], bool) or not isinstance(shape[1], int) or shape[1] < 1:
        raise UnsupportedLayerError(f"{where}: input shape {_brief(shape)}; symnet reads inputs of shape (None, d)")
    return int(shape[1])


def _convert(layer_kind: str, name: str, cfg: dict[str, Any], call_inputs: list[g.Tensor], here: str,
             weights: Weights, activation: Callable[[str, str, str, Any], Activation], k: int, taken: set[str],
             names: dict[str, str]) -> g.Tensor:
    """One call of one layer through :data:`LAYERS`; its node named after the layer."""
    try:
        converted = LAYERS[layer_kind][0](_Layer(name, layer_kind, cfg, call_inputs, here, weights,
                                                 lambda spec: activation(name, layer_kind, here, spec)))
    except SymnetError:
        raise
    except (IndexError, KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError, OverflowError) as exc:
        raise FileFormatError(f"{here}: symnet cannot read this layer's configuration "
                              f"({type(exc).__name__}: {str(exc)[:160]!r})") from None
    if converted.name is None and not any(converted is t for t in call_inputs):
        converted.name = node_name(name + (f"_call{k}" if k else ""), taken, "k")
        names[converted.name] = name
    return converted


def _node_refs(node: Any, where: str) -> list[Any]:
    """The tensors one call reads (``keras_history`` triples), its arguments checked.

    Keras 2 (legacy ``.h5`` files) writes a call as ``[[layer, node, tensor, kwargs], ...]``.
    """
    if isinstance(node, list):
        refs = []
        for item in node:
            if not (isinstance(item, list) and len(item) in (3, 4)) or (len(item) == 4 and item[3] not in ({}, None)):
                raise UnsupportedLayerError(f"{where}: a call {_brief(item)}; symnet reads calls on tensors")
            refs.append(item[:3])
        return refs
    if not isinstance(node, dict) or (node.get("kwargs") not in (None, {}) and
                                      (not isinstance(node["kwargs"], dict)
                                       or set(node["kwargs"]) - {"training", "mask"})):
        raise UnsupportedLayerError(f"{where}: a call with arguments {_brief(node)}; symnet reads calls on tensors")
    return _tensor_refs(node.get("args"), where)


def _key(ref: Any, where: str) -> tuple[str, int, int]:
    if not (isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str)
            and all(isinstance(i, int) and not isinstance(i, bool) for i in ref[1:])):
        raise FileFormatError(f"{where}: a tensor reference {_brief(ref)} is not [layer, node, index]")
    return (ref[0], ref[1], ref[2])


def _tensor_refs(args: Any, where: str, depth: int = 0) -> list[list[Any]]:
    """The ``keras_history`` of every tensor in a call's ``args`` (nested lists: ``Add()([a, b])``)."""
    if depth > 4:
        raise FileFormatError(f"{where}: inbound_nodes nested too deeply")
    refs = []
    for arg in args if isinstance(args, list) else [args]:
        if isinstance(arg, list):
            refs += _tensor_refs(arg, where, depth + 1)
        elif isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__" and \
                isinstance(arg.get("config"), dict):
            refs.append(arg["config"].get("keras_history"))
        else:
            raise UnsupportedLayerError(f"{where}: a call argument {_brief(arg)} that is not a tensor")
    return refs


def _refs(value: Any, where: str) -> list[Any]:
    if isinstance(value, list) and value and not isinstance(value[0], list):
        value = [value]
    if not isinstance(value, list) or not value:
        raise FileFormatError(f"{where}: the model lists no inputs or outputs")
    return value


def _lookup(ref: Any, tensors: dict[tuple[str, int, int], g.Tensor], where: str) -> g.Tensor:
    key = _key(ref, where)
    if key not in tensors:
        raise FileFormatError(f"{where}: reads {ref[0]!r} (call {ref[1]}, output {ref[2]}) before it is defined, or "
                              "a layer output that does not exist")
    return tensors[key]


# --- live models: the check ----------------------------------------------------------------


def check_live(net: Network, model: Any, names: dict[str, str], where: str) -> None:
    """Every layer's own output against symnet's node, then ``model(x)`` end to end."""
    import torch

    from ..check.backprop import node_values
    from .keras import _eps, _import_keras, _to_numpy

    keras = _import_keras()
    widths = [int(t.shape[-1]) for t in model.inputs]
    points = check_points(builtins.sum(widths))
    bounds = np.cumsum([0, *widths])
    args = [torch.as_tensor(points[:, a:b], dtype=torch.float64) for a, b in zip(bounds, bounds[1:])]
    ours = node_values(net, points)
    eps = max([float(np.finfo(np.float32).eps)] + [_eps(getattr(layer, "compute_dtype", "float32"))
                                                   for layer in model.layers])
    tolerance = 1000 * eps
    probe_names = [n for n, layer in names.items() if len(model.get_layer(layer)._inbound_nodes) == 1]
    try:
        with torch.no_grad():
            theirs = keras.Model(model.inputs, [model.get_layer(names[n]).output for n in probe_names])(
                args if len(args) > 1 else args[0], training=False) if probe_names else []
            whole = model(args if len(args) > 1 else args[0], training=False)
    except Exception as exc:  # noqa: BLE001 - the model's own call can raise anything
        raise ImportMismatchError(f"{where}: running the model on the check's points failed ({type(exc).__name__}: "
                                  f"{str(exc)[:200]}); pass check=False to import the structure as read anyway") \
            from None
    theirs = theirs if isinstance(theirs, (list, tuple)) else [theirs]
    scale = 1.0
    for name, value in zip(probe_names, theirs):
        if name not in ours:  # a graph that is a plain chain becomes a chain network, named z1, a1, ...
            continue
        value = _to_numpy(value)
        if value.ndim != 2 or value.shape[0] != len(points):
            raise ImportMismatchError(f"{where}: layer {names[name]!r} gives Keras values of shape {value.shape} for "
                                      f"{len(points)} points; symnet's nodes are (N, features)")
        scale = max(scale, float(np.max(np.abs(value), initial=0.0)))
        gap = _difference(ours[name], value)
        if not gap <= tolerance * scale:
            raise ImportMismatchError(f"{where}: layer {names[name]!r} gives values that differ from Keras' by "
                                      f"{gap:.3g} (symnet node {name!r}); pass check=False to import the structure "
                                      "as read anyway")
    outs = whole if isinstance(whole, (list, tuple)) else [whole]
    arrays = [_to_numpy(o) for o in outs]
    if any(a.ndim not in (1, 2) or a.shape[0] != len(points) for a in arrays):
        raise ImportMismatchError(f"{where}: the model's outputs have shapes {[a.shape for a in arrays]} for "
                                  f"{len(points)} points; symnet's are (N, features)")
    value = np.concatenate([a.reshape(len(points), -1) for a in arrays], axis=1)
    gap = _difference(ours[net.graph.output], value)
    if not gap <= tolerance * scale:
        raise ImportMismatchError(f"{where}: model(x) differs from symnet's network by {gap:.3g} although every layer "
                                  "agreed; pass check=False to import the structure as read anyway")
