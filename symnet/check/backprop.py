"""Numeric back-propagation: the plain-numpy oracle that shares no code with the SymPy path.

It reads only the layer list -- each layer's ``weight_array()`` and ``bias_array()`` and its
activation's hand-written ``numpy``, ``numpy_derivative`` and ``numpy_second_derivative`` --
and never imports SymPy or symnet's chain-rule program, so a bug there cannot hide here.

* **Input derivatives** by exact second-order *forward* propagation: every layer carries the
  triple (value ``a``, tangents ``da/dx_i``, second-order tangents ``d2a/dx_i dx_j``) through
  ``z = a @ W + b`` (linear, so each part is multiplied by ``W``) and the activation
  (``da = f'(z) dz``, ``d2a = f''(z) dz_i dz_j + f'(z) d2z``; softmax by its Jacobian
  ``diag(p) - p p^T`` and the matching second derivatives).
* **Parameter gradients of a loss** by reverse accumulation (textbook back-propagation).
* **Round-off bounds** (``roundoff=True``): a first-order running error analysis beside the
  forward propagation (:mod:`symnet.check._roundoff`), which ``verify`` turns into tolerances.

>>> import symnet
>>> net = symnet.Network.from_weights([[[1, 1], [1, 1]], [[1], [1]]], [[1, 1], [0]], ["sigmoid", "linear"])
>>> result = backprop(net, [1.0, 1.0])        # 001's all-ones net at x = (1, 1)
>>> result.jacobian.round(7)
array([[0.0903533, 0.0903533]])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import ActivationError, InputError, NotAChainError, ShapeError
from ..losses import LOSSES, check_loss, parse_targets
from ..weights import float_array
from ._roundoff import REARRANGE, graph_roundoff_bounds, rearrange, roundoff_bounds

__all__ = ["Derivatives", "Backprop", "GraphBackprop", "backprop", "forward", "node_values", "LOSSES"]

# LOSSES (the meaning of :func:`symnet.param_grad`) and the targets rule: symnet.losses.  The
# oracle shares the reading of its inputs, never the mathematics.


@dataclass(frozen=True)
class Derivatives:
    """A network's value and input derivatives at ``N`` points (the exact kernel's contract).

    Attributes:
        value: ``(N, m)``.
        jacobian: ``(N, m, d)``, ``jacobian[n, k, i] = d y_k / d x_i``, or ``None``.
        hessian: ``(N, m, d, d)``, ``hessian[n, k, i, j] = d2 y_k / dx_i dx_j``, or ``None``.
    """

    value: np.ndarray
    jacobian: np.ndarray | None = None
    hessian: np.ndarray | None = None


@dataclass(frozen=True)
class Backprop(Derivatives):
    """What :func:`backprop` computes (a single point ``X`` of shape ``(d,)`` drops the ``N`` axis).

    Attributes:
        value, jacobian, hessian: see :class:`Derivatives`; ``hessian`` only when asked for.
        preactivations: per layer, ``z`` of shape ``(N, fan_out)``.
        preactivation_jacobians: per layer, ``dz/dx`` of shape ``(N, fan_out, d)``.
        roundoff: with ``roundoff=True``, bounds on the absolute float64 error of ``value``,
            ``jacobian`` and ``hessian``, in the same shapes; else ``None``.
        loss: the loss value (a float) when a loss was given.
        param_grads: per layer ``(dW (fan_in, fan_out), db (fan_out,))`` when a loss was given.
    """

    preactivations: tuple[np.ndarray, ...] = ()
    preactivation_jacobians: tuple[np.ndarray, ...] = ()
    roundoff: Derivatives | None = None
    loss: float | None = None
    param_grads: list[tuple[np.ndarray, np.ndarray]] | None = None


@dataclass(frozen=True)
class GraphBackprop(Derivatives):
    """What :func:`backprop` computes for a graph network (``not net.is_chain``).

    Attributes:
        value, jacobian, hessian: see :class:`Derivatives` (a single point ``(d,)`` drops ``N``).
        nodes: per node name (``"x"`` included), its value ``(N, width)``.
        node_jacobians: per node name, ``d node / dx`` ``(N, width, d)``.
        roundoff: with ``roundoff=True``, bounds on the absolute float64 error of ``value``,
            ``jacobian`` and ``hessian``; else ``None``.
        loss: the loss value when a loss was given.
        param_grads: with a loss, ``{node name: {parameter name: dL/dparameter}}`` for every node
            that has parameters, each array of its parameter matrix's shape (``W`` ``(fan_in,
            units)``, ``b`` ``(1, units)``, ``v``/``g``, ``s``/``V``, scale's ``s`` ``(1, 1)`` or
            ``(1, width)``, shift's ``t``): the gradient with respect to the raw parameters
            (a weight-normalised dense node's ``v`` and ``g``, not its effective ``W``).

    ``preactivations`` and ``preactivation_jacobians`` are per-layer quantities of a chain; on a
    graph they raise :class:`~symnet.NotAChainError` (read ``nodes`` and ``node_jacobians`` at an
    activation node's input instead).
    """

    nodes: dict[str, np.ndarray] = field(default_factory=dict)
    node_jacobians: dict[str, np.ndarray] = field(default_factory=dict)
    roundoff: Derivatives | None = None
    loss: float | None = None
    param_grads: dict[str, dict[str, np.ndarray]] | None = None

    @property
    def preactivations(self) -> tuple[np.ndarray, ...]:
        raise NotAChainError("preactivations are per layer of a chain, and this network is a graph: read "
                             "result.nodes[name] at the input of an activation node instead")

    @property
    def preactivation_jacobians(self) -> tuple[np.ndarray, ...]:
        raise NotAChainError("preactivation_jacobians are per layer of a chain, and this network is a graph: read "
                             "result.node_jacobians[name] at the input of an activation node instead")


def backprop(net: Any, X: Any, *, hessian: bool = False, loss: str | None = None, targets: Any = None,
             roundoff: bool = False) -> Backprop:
    """Value, input Jacobian, optionally Hessian, and loss gradients of a numeric network in numpy.

    Args:
        net: a numeric :class:`symnet.Network`.
        X: points, ``(N, d)``; one point ``(d,)`` gives results without the ``N`` axis.
        hessian: also propagate second-order tangents, giving ``hessian`` ``(N, m, d, d)``.
        loss: ``"mse"`` (mean over points and outputs of the squared error),
            ``"cross_entropy"`` (``-mean_n sum_k t_k log y_k``) or ``"softmax_cross_entropy"``
            (softmax applied to the outputs, then cross entropy); ``None`` for no loss.
        targets: with a loss, read by :func:`symnet.losses.parse_targets`: ``(N, m)`` (or
            ``(N,)`` for one output, ``(m,)`` for one point); for the cross entropies also integer
            class labels ``(N,)`` (two or more outputs).
        roundoff: also bound the float64 error of every entry (``result.roundoff``): errors are
            propagated through ``|W|`` and ``|f^(k)(z)|`` like the tangents, and each sum and
            activation formula adds its own rounding (see :mod:`symnet.check._roundoff`).

    Returns:
        A :class:`Backprop`: ``value`` ``(N, m)``, ``jacobian`` ``(N, m, d)``, ``hessian``
        ``(N, m, d, d)``; with a loss, ``loss`` and ``param_grads`` (one ``(dW, db)`` per layer,
        the numbers :func:`symnet.param_grad` gives exactly).

    >>> import symnet
    >>> W = [[0.47355232, 0.9977393, 0.84668094], [0.85557411, 0.03563661, 0.69422093]]
    >>> simple_net = symnet.Network.from_weights([W], None, "softmax")   # 004's simpleNet
    >>> dW, db = backprop(simple_net, [0.6, 0.9], loss="cross_entropy", targets=[0, 0, 1]).param_grads[0]
    >>> dW.round(8)
    array([[ 0.21924763,  0.14356247, -0.36281009],
           [ 0.32887144,  0.2153437 , -0.54421514]])
    """
    if not net.is_chain:
        return _graph_backprop(net, X, hessian=hessian, loss=loss, targets=targets, roundoff=roundoff)
    layers = net.layers
    points, single = _points(X, net.n_inputs)
    _check_loss_arguments(loss, targets, len(points), net.n_outputs)
    weights = [(layer.weight_array(), layer.bias_array()) for layer in layers]
    n, d = points.shape
    a = points
    da = np.broadcast_to(np.eye(d), (n, d, d))
    d2a = np.zeros((n, d, d, d)) if hessian else None
    trace = []  # per layer: its input triple (a, da, d2a) and pre-activation triple (z, dz, d2z)
    for number, (layer, (W, b)) in enumerate(zip(layers, weights), start=1):
        z, dz, d2z = a @ W + b, da @ W, None if d2a is None else d2a @ W
        trace.append((a, da, d2a, z, dz, d2z))
        a, da, d2a = _activate(layer.activation, number, z, dz, d2z)
    inputs, zs = [step[0] for step in trace], [step[3] for step in trace]
    fields: dict[str, Any] = {
        "value": a,
        "jacobian": np.swapaxes(da, 1, 2),
        "hessian": None if d2a is None else np.moveaxis(d2a, 3, 1),
        "preactivations": tuple(zs),
        "preactivation_jacobians": tuple(np.swapaxes(step[4], 1, 2) for step in trace),
    }
    if roundoff:
        value_bound, jacobian_bound, hessian_bound = roundoff_bounds(layers, weights, trace)
        fields["roundoff"] = Derivatives(value_bound, np.swapaxes(jacobian_bound, 1, 2),
                                         None if hessian_bound is None else np.moveaxis(hessian_bound, 3, 1))
    if loss is not None:
        t = _targets(targets, loss, n, net.n_outputs, net.activations[-1].name)
        fields["loss"] = _loss_value(loss, a, t)
        fields["param_grads"] = _param_grads(layers, weights, inputs, zs, a, t, loss)
    if single:
        fields = {key: _drop_batch(key, value) for key, value in fields.items()}
    return Backprop(**fields)


def forward(net: Any, X: Any) -> np.ndarray:
    """The network's values only, ``(N, m)`` for ``X`` of shape ``(N, d)`` (``(m,)`` for ``(d,)``).

    Works on chains and graphs alike.

    >>> import symnet
    >>> forward(symnet.Network.from_weights([[[2.0]]], [[1.0]], "linear"), [[1.0], [2.0]])
    array([[3.],
           [5.]])
    """
    if not net.is_chain:
        return _graph_forward(net, X)
    a, single = _points(X, net.n_inputs)
    for number, layer in enumerate(net.layers, start=1):
        _check_numeric(layer.activation, number, 0)
        a = layer.activation.numpy(a @ layer.weight_array() + layer.bias_array())
    return a[0] if single else a


def _check_loss_arguments(loss: str | None, targets: Any, n: int, m: int) -> None:
    if loss is not None:
        check_loss(loss)
    if loss is None and targets is not None:
        raise InputError("targets were given without a loss; pass loss='mse', 'cross_entropy' or 'softmax_cross_entropy'")
    if loss is not None and targets is None:
        raise InputError(f"loss {loss!r} needs targets of shape ({n}, {m})")


# --- input derivatives ----------------------------------------------------------------------


def _points(X: Any, n_inputs: int) -> tuple[np.ndarray, bool]:
    """``X`` as float64 ``(N, d)``, and whether it was a single point ``(d,)``."""
    try:
        points = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"X must be an array of numbers of shape (N, {n_inputs}) or ({n_inputs},)") from exc
    single = points.ndim == 1
    if single:
        points = points.reshape(1, -1)
    if points.ndim != 2 or points.shape[1] != n_inputs:
        hint = f"; for {points.shape[-1]} points of one input use X.reshape(-1, 1)" \
            if n_inputs == 1 and single and points.shape[1] != 1 else ""
        raise ShapeError(f"X has shape {np.shape(X)} but the network takes {n_inputs} inputs: "
                         f"give (N, {n_inputs}) or ({n_inputs},){hint}")
    return points, single


def _check_numeric(activation: Any, number: int | str, order: int) -> None:
    """``number``: a chain's layer number, or where in a graph (``"node 'a2'"``)."""
    where = f"layer {number}" if isinstance(number, int) else number
    if not activation.elementwise:
        if activation.name not in ("softmax", "log_softmax"):
            raise ActivationError(f"{where}: activation {activation.name!r} acts on a whole layer and "
                                  "backprop knows only softmax's and log_softmax's rules among those")
        return
    needed = ("numpy", "numpy_derivative", "numpy_second_derivative")[: order + 1]
    missing = [name for name in needed if getattr(activation, name) is None]
    if missing:
        raise ActivationError(f"{where}: activation {activation.name!r} has no {missing[0]}; give it to "
                              "Activation(...) or build the activation with activations.from_form")


def _center(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``t - sum_i p_i t_i`` along the last axis: the softmax Jacobian ``diag(p) - p p^T`` is ``p * _center``."""
    return t - (t * p).sum(axis=-1, keepdims=True)


def _activate(activation: Any, number: int | str, z: np.ndarray, dz: np.ndarray,
              d2z: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The activation applied to the triple: ``z (N, n)``, ``dz (N, d, n)``, ``d2z (N, d, d, n)``."""
    _check_numeric(activation, number, 1 if d2z is None else 2)
    if activation.name == "log_softmax":  # a = z - log(sum(exp(z))), its own rule written here
        log_p = _log_softmax(z)
        p = np.exp(log_p)
        pt = p[:, None, :]
        centered = _center(dz, pt)
        if d2z is None:
            return log_p, centered, None
        # d2 a_k = w_k - sum_i p_i [(u_i - u.p)(v_i - v.p) + w_i]: the Hessian of log-sum-exp is diag(p) - p p^T
        outer = centered[:, :, None, :] * centered[:, None, :, :]
        return log_p, centered, d2z - ((outer + d2z) * p[:, None, None, :]).sum(axis=-1, keepdims=True)
    if not activation.elementwise:  # softmax
        p = activation.numpy(z)
        pt = p[:, None, :]
        centered = _center(dz, pt)
        if d2z is None:
            return p, pt * centered, None
        # d2 p_k = p_k [(u_k - u.p)(v_k - v.p) - sum_i p_i (u_i - u.p)(v_i - v.p)] + p_k (w_k - w.p)
        outer = centered[:, :, None, :] * centered[:, None, :, :]
        return p, pt * centered, p[:, None, None, :] * _center(outer + d2z, p[:, None, None, :])
    first = activation.numpy_derivative(z)
    da = first[:, None, :] * dz
    if d2z is None:
        return activation.numpy(z), da, None
    second = activation.numpy_second_derivative(z)
    d2a = second[:, None, None, :] * dz[:, :, None, :] * dz[:, None, :, :] + first[:, None, None, :] * d2z
    return activation.numpy(z), da, d2a


def _drop_batch(key: str, value: Any) -> Any:
    if key in ("value", "jacobian", "hessian"):
        return None if value is None else value[0]
    if key in ("preactivations", "preactivation_jacobians"):
        return tuple(v[0] for v in value)
    if key == "roundoff":
        return Derivatives(*(None if v is None else v[0] for v in (value.value, value.jacobian, value.hessian)))
    return value


# --- losses and parameter gradients ----------------------------------------------------------


def _targets(targets: Any, loss: str, n: int, m: int, last: str) -> np.ndarray:
    """Targets as float ``(N, m)`` by the rule of :func:`symnet.losses.parse_targets` (labels become one-hot)."""
    return parse_targets(loss, targets, n, m, last_activation=last)


def _log_softmax(y: np.ndarray) -> np.ndarray:
    shifted = y - y.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _loss_value(loss: str, y: np.ndarray, t: np.ndarray) -> float:
    if loss == "mse":
        return float(np.mean((y - t) ** 2))
    if loss == "softmax_cross_entropy":
        return float(-np.sum(t * _log_softmax(y)) / len(y))
    # 0 log 0 = 0: take the log only where a target is non-zero; log 0 = -inf where one is not
    with np.errstate(divide="ignore"):
        logs = np.log(y, out=np.zeros_like(y), where=t != 0)
    return float(-np.sum(t * logs) / len(y))


def _through(activation: Any, z: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """``dL/dz`` from ``dL/da`` (both ``(N, n)``) through one layer's activation."""
    if activation.elementwise:
        return grad * activation.numpy_derivative(z)
    if activation.name == "log_softmax":  # J = I - 1 p^T
        return grad - np.exp(_log_softmax(z)) * grad.sum(axis=-1, keepdims=True)
    p = activation.numpy(z)
    return p * _center(grad, p)


def _output_delta(loss: str, activation: Any, y: np.ndarray, z: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``dL/dz`` of the last layer, before dividing by the number of points."""
    if loss == "mse":
        return _through(activation, z, 2 * (y - t) / y.shape[1])
    if loss == "softmax_cross_entropy":
        q = np.exp(_log_softmax(y))
        return _through(activation, z, q * t.sum(axis=1, keepdims=True) - t)
    if activation.name == "softmax":  # softmax then cross entropy: dL/dz = p sum(t) - t
        return y * t.sum(axis=1, keepdims=True) - t
    with np.errstate(divide="ignore", invalid="ignore"):  # t/y is infinite where y = 0 < t, as the maths says
        return _through(activation, z, -t / y)


def _param_grads(layers: Sequence[Any], weights: list[tuple[np.ndarray, np.ndarray]], inputs: list[np.ndarray],
                 zs: list[np.ndarray], y: np.ndarray, t: np.ndarray, loss: str) -> list[tuple[np.ndarray, np.ndarray]]:
    delta = _output_delta(loss, layers[-1].activation, y, zs[-1], t) / len(y)
    grads = []
    for number in range(len(layers) - 1, -1, -1):
        grads.append((inputs[number].T @ delta, delta.sum(axis=0)))
        if number:
            delta = _through(layers[number - 1].activation, zs[number - 1], delta @ weights[number][0].T)
    return grads[::-1]


# --- graph networks ---------------------------------------------------------------------------
#
# The same propagation, node by node over ``net.graph.nodes``, with the oracle's own numpy rule
# per op (never the graph's ``linear_terms`` or SymPy rules).  Every node carries the triple
# (value ``(N, w)``, tangents ``(N, d, w)``, second-order tangents ``(N, d, d, w)``), the unit
# axis last as in the chain path.

Triple = tuple[np.ndarray, "np.ndarray | None", "np.ndarray | None"]


def _numeric(matrix: Any, where: str, what: str) -> np.ndarray:
    """A SymPy matrix of numbers as a float64 array of its shape."""
    return float_array(matrix, f"{where}: {what}")


def _node_numbers(node: Any) -> dict[str, Any]:
    """A node's parameters and constants as float64 arrays, rows ``(1, n)`` flattened to ``(n,)``;
    a dense node's effective ``W`` computed here from its parametrisation, with ``W_rounding``,
    the relative error of the computed ``W`` in units of the unit round-off."""
    where = f"node {node.name!r} ({node.op})"
    numbers: dict[str, Any] = {k: _numeric(v, where, k) for k, v in node.params.items()}
    if node.op == "dense":
        kind = node.attrs.get("parametrization", "plain")
        fan_in = node.input_widths[0]
        if kind == "weight_norm":
            v, g = numbers["v"], numbers["g"]
            with np.errstate(divide="ignore", invalid="ignore"):
                numbers["norm"] = np.sqrt((v * v).sum(axis=0, keepdims=True))
                numbers["W"] = g * v / numbers["norm"]
            numbers["W_rounding"] = fan_in + 6  # the sum of squares, sqrt, division, product, conversions
        elif kind == "factorized":
            numbers["W"] = np.exp(numbers["s"]) * numbers["V"]
            numbers["W_rounding"] = 5  # exp (within 2 u), the product, conversions
        elif kind == "plain":
            numbers["W_rounding"] = 1  # the conversion of an exact entry (sqrt(2)) to float64
        else:
            raise ShapeError(f"{where}: backprop knows no parametrization {kind!r}")
        numbers["b"] = numbers["b"].reshape(-1)
    elif node.op == "matmul":
        numbers["C"] = _numeric(node.attrs["matrix"], where, "matrix")
    elif node.op == "rescale":
        numbers["scale"] = _numeric(node.attrs["scale"], where, "scale").reshape(-1)
        numbers["offset"] = _numeric(node.attrs["offset"], where, "offset").reshape(-1)
    elif node.op in ("scale", "shift"):
        for name in numbers:
            numbers[name] = numbers[name].reshape(-1)
    elif node.op not in _GRAPH_OPS:
        raise ShapeError(f"{where}: backprop has no numpy rule for op {node.op!r}; add one to "
                         "symnet/check/backprop.py (and a round-off rule to _roundoff.py)")
    return numbers


def graph_numbers(graph: Any) -> dict[str, dict[str, Any]]:
    """Every node's numeric parameters and constants (see :func:`_node_numbers`), by node name.

    >>> from symnet.graph import input, dense, network
    >>> x = input(1)
    >>> net = network(x, dense(x, 1, parametrization="factorized", s=[0.0], V=[[2.0]]) + x)
    >>> graph_numbers(net.graph)["z1"]["W"]
    array([[2.]])
    """
    return {node.name: _node_numbers(node) for node in graph.nodes[1:]}


#: The ops the graph oracle has numpy rules for, by family.
_GRAPH_OPS = {"dense": "linear", "matmul": "linear", "add": "linear", "sub": "linear", "scale": "linear",
              "shift": "linear", "rescale": "linear", "concat": "linear", "slice": "linear", "sum": "linear",
              "mean": "linear", "activation": "elementwise", "mul": "bilinear"}


def _linear(node: Any, numbers: dict[str, Any], xs: list[np.ndarray], offset: bool) -> np.ndarray:
    """A linear op on its inputs' values (``offset``) or tangents (no offset), units on the last axis."""
    op = node.op
    if op == "dense":
        y = xs[0] @ numbers["W"]
        return y + numbers["b"] if offset else y
    if op == "matmul":
        return xs[0] @ numbers["C"]
    if op == "add":
        return xs[0] + xs[1]
    if op == "sub":
        return xs[0] - xs[1]
    if op == "scale":
        return xs[0] * numbers["s"]
    if op == "shift":
        return xs[0] + numbers["t"] if offset else xs[0]
    if op == "rescale":
        y = xs[0] * numbers["scale"]
        return y + numbers["offset"] if offset else y
    if op in REARRANGE:
        return rearrange(node, xs)
    raise ShapeError(f"node {node.name!r}: backprop has no numpy rule for op {op!r}")  # pragma: no cover


def _multiply(a: Triple, b: Triple) -> Triple:
    """The product rule: ``(ab)' = a'b + ab'``, ``(ab)'' = a''b + ab'' + a'_i b'_j + b'_i a'_j``."""
    (va, ta, sa), (vb, tb, sb) = a, b
    value = va * vb
    if ta is None or tb is None:
        return value, None, None
    tangent = ta * vb[:, None, :] + va[:, None, :] * tb
    if sa is None or sb is None:
        return value, tangent, None
    second = (sa * vb[:, None, None, :] + va[:, None, None, :] * sb
              + ta[:, :, None, :] * tb[:, None, :, :] + tb[:, :, None, :] * ta[:, None, :, :])
    return value, tangent, second


def _graph_node(node: Any, numbers: dict[str, Any], args: list[Triple]) -> Triple:
    """One node's triple from its inputs' triples (``None`` parts are not propagated)."""
    family = _GRAPH_OPS.get(node.op)
    if family == "linear":
        value = _linear(node, numbers, [a[0] for a in args], True)
        tangent = None if args[0][1] is None else _linear(node, numbers, [a[1] for a in args], False)
        second = None if args[0][2] is None else _linear(node, numbers, [a[2] for a in args], False)
        return value, tangent, second
    if family == "elementwise":
        z, dz, d2z = args[0]
        where = f"node {node.name!r}"
        if dz is None:
            _check_numeric(node.activation, where, 0)
            return node.activation.numpy(z), None, None
        return _activate(node.activation, where, z, dz, d2z)
    if family == "bilinear":
        return _multiply(args[0], args[1])
    raise ShapeError(f"node {node.name!r}: backprop has no numpy rule for op {node.op!r}")


def _graph_propagate(graph: Any, numbers: dict[str, dict[str, Any]], points: np.ndarray, order: int,
                     keep: bool) -> dict[str, Triple]:
    """Every node's triple up to ``order`` (0: values, 1: tangents, 2: second-order tangents);
    without ``keep``, second-order tangents are dropped once their last reader is done."""
    n, d = points.shape
    tangent = np.broadcast_to(np.eye(d), (n, d, d)) if order >= 1 else None
    second = np.zeros((n, d, d, d)) if order >= 2 else None
    trace: dict[str, Triple] = {"x": (points, tangent, second)}
    last_use = graph.last_use
    for position, node in enumerate(graph.nodes[1:], start=1):
        trace[node.name] = _graph_node(node, numbers[node.name], [trace[name] for name in node.inputs])
        if not keep and second is not None:
            for name in node.inputs:
                if last_use[name] == position and name != graph.output:
                    v, t, _ = trace[name]
                    trace[name] = (v, t, None)
    return trace


def node_values(net: Any, X: Any) -> dict[str, np.ndarray]:
    """Every node's values ``{name: (N, width)}`` of a network's graph at ``X`` ``(N, d)``, in float64.

    What importers compare node by node with the framework's own intermediate values.

    >>> from symnet.graph import dense, input, network
    >>> x = input(1)
    >>> sorted(node_values(network(x, dense(x, [[2.0]], [1.0], "relu")), [[1.0]]).items())
    [('a1', array([[3.]])), ('x', array([[1.]])), ('z1', array([[3.]]))]
    """
    points, _ = _points(X, net.n_inputs)
    graph = net.graph
    return {name: triple[0] for name, triple in _graph_propagate(graph, graph_numbers(graph), points, 0, True).items()}


def _graph_forward(net: Any, X: Any) -> np.ndarray:
    points, single = _points(X, net.n_inputs)
    graph = net.graph
    value = _graph_propagate(graph, graph_numbers(graph), points, 0, False)[graph.output][0]
    return value[0] if single else value


def _graph_backprop(net: Any, X: Any, *, hessian: bool, loss: str | None, targets: Any,
                    roundoff: bool) -> GraphBackprop:
    graph = net.graph
    points, single = _points(X, net.n_inputs)
    n = len(points)
    _check_loss_arguments(loss, targets, n, net.n_outputs)
    numbers = graph_numbers(graph)
    trace = _graph_propagate(graph, numbers, points, 2 if hessian else 1, roundoff)
    value, tangent, second = trace[graph.output]
    fields: dict[str, Any] = {
        "value": value,
        "jacobian": np.swapaxes(tangent, 1, 2),
        "hessian": None if second is None else np.moveaxis(second, 3, 1),
        "nodes": {name: triple[0] for name, triple in trace.items()},
        "node_jacobians": {name: np.swapaxes(triple[1], 1, 2) for name, triple in trace.items()},
    }
    if roundoff:
        bounds = graph_roundoff_bounds(graph, numbers, trace)
        fields["roundoff"] = Derivatives(bounds[0], np.swapaxes(bounds[1], 1, 2),
                                         None if bounds[2] is None else np.moveaxis(bounds[2], 3, 1))
    if loss is not None:
        out = graph.by_name[graph.output]
        last = out.activation.name if out.op == "activation" else None
        t = _targets(targets, loss, n, net.n_outputs, last)
        fields["loss"] = _loss_value(loss, value, t)
        fields["param_grads"] = _graph_param_grads(graph, numbers, fields["nodes"], t, loss)
    if single:
        for key in ("value", "jacobian", "hessian"):
            fields[key] = None if fields[key] is None else fields[key][0]
        for key in ("nodes", "node_jacobians"):
            fields[key] = {name: array[0] for name, array in fields[key].items()}
        if roundoff:
            fields["roundoff"] = _drop_batch("roundoff", fields["roundoff"])
    return GraphBackprop(**fields)


def _unbroadcast(grad: np.ndarray, width: int) -> np.ndarray:
    """``dL/d input`` of an input of ``width`` that was broadcast to ``grad``'s width."""
    return grad.sum(axis=-1, keepdims=True) if width == 1 and grad.shape[-1] != 1 else grad


def _row_grad(product: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The gradient of a row parameter ``(1, 1)`` or ``(1, w)`` from the per-point products ``(N, w)``."""
    total = product.sum(axis=0, keepdims=True)
    return total.sum(axis=1, keepdims=True) if shape == (1, 1) else total


def _graph_param_grads(graph: Any, numbers: dict[str, dict[str, Any]], values: dict[str, np.ndarray],
                       t: np.ndarray, loss: str) -> dict[str, dict[str, np.ndarray]]:
    """``{node: {parameter: dL/dparameter}}`` by reverse accumulation over the nodes up to the output."""
    y = values[graph.output]
    n = len(y)
    out = graph.by_name[graph.output]
    adjoint: dict[str, np.ndarray] = {}
    start = graph.output
    if loss == "cross_entropy" and out.op == "activation" and out.activation.name == "softmax":
        adjoint[out.inputs[0]] = (y * t.sum(axis=1, keepdims=True) - t) / n  # softmax then cross entropy
        start = out.inputs[0]
    elif loss == "mse":
        adjoint[start] = 2 * (y - t) / y.shape[1] / n
    elif loss == "softmax_cross_entropy":
        adjoint[start] = (np.exp(_log_softmax(y)) * t.sum(axis=1, keepdims=True) - t) / n
    else:
        with np.errstate(divide="ignore", invalid="ignore"):  # t/y is infinite where y = 0 < t
            adjoint[start] = -t / y / n
    grads = {node.name: {k: np.zeros(v.shape) for k, v in node.params.items()} for node in graph.nodes[1:]
             if node.params}

    def add(name: str, grad: np.ndarray) -> None:
        adjoint[name] = adjoint[name] + grad if name in adjoint else grad

    position = [node.name for node in graph.nodes].index(start)
    for node in reversed(graph.nodes[1:position + 1]):
        g = adjoint.pop(node.name, None)
        if g is None:
            continue
        nums, op = numbers[node.name], node.op
        xs = [values[name] for name in node.inputs]
        widths = node.input_widths
        if op == "dense":
            dW = xs[0].T @ g
            grads[node.name]["b"] = g.sum(axis=0, keepdims=True)
            kind = node.attrs.get("parametrization", "plain")
            if kind == "plain":
                grads[node.name]["W"] = dW
            elif kind == "factorized":  # W_ij = exp(s_j) V_ij
                grads[node.name]["V"] = dW * np.exp(nums["s"])
                grads[node.name]["s"] = (dW * nums["W"]).sum(axis=0, keepdims=True)
            else:  # W_ij = g_j v_ij / |v_j|
                v, gain, norm = nums["v"], nums["g"], nums["norm"]
                along = (dW * v).sum(axis=0, keepdims=True)
                grads[node.name]["g"] = along / norm
                grads[node.name]["v"] = gain / norm * dW - gain * v * along / norm**3
            add(node.inputs[0], g @ nums["W"].T)
        elif op == "matmul":
            add(node.inputs[0], g @ nums["C"].T)
        elif op in ("add", "sub"):
            add(node.inputs[0], _unbroadcast(g, widths[0]))
            add(node.inputs[1], _unbroadcast(g if op == "add" else -g, widths[1]))
        elif op == "scale":
            grads[node.name]["s"] = _row_grad(g * xs[0], tuple(node.params["s"].shape))
            add(node.inputs[0], g * nums["s"])
        elif op == "shift":
            grads[node.name]["t"] = _row_grad(g, tuple(node.params["t"].shape))
            add(node.inputs[0], g)
        elif op == "rescale":
            add(node.inputs[0], g * nums["scale"])
        elif op == "concat":
            for name, part in zip(node.inputs, np.split(g, np.cumsum(widths)[:-1], axis=1)):
                add(name, part)
        elif op == "slice":
            full = np.zeros((n, widths[0]))
            full[:, node.attrs["start"]:node.attrs["stop"]] = g
            add(node.inputs[0], full)
        elif op in ("sum", "mean"):
            add(node.inputs[0], np.broadcast_to(g if op == "sum" else g / widths[0], (n, widths[0])))
        elif op == "activation":
            add(node.inputs[0], _through(node.activation, xs[0], g))
        elif op == "mul":
            add(node.inputs[0], _unbroadcast(g * xs[1], widths[0]))
            add(node.inputs[1], _unbroadcast(g * xs[0], widths[1]))
        else:  # pragma: no cover - _node_numbers refused it
            raise ShapeError(f"node {node.name!r}: backprop has no numpy rule for op {op!r}")
    return grads
