"""Loss-gradient kernels: a loss and its exact gradient with respect to every weight, for a batch.

Reverse mode through the layers, in matrix form: the forward pass keeps each layer's
activations ``A`` and slopes ``f'(Z)`` (printed from SymPy's derivative of the scalar
activation by the same emitter as the layered strategy), then

    delta_L = dloss/dZ_L,   dW_l = A_{l-1}^T delta_l,   db_l = sum_points delta_l,
    delta_{l-1} = (delta_l W_l^T) * f'(Z_{l-1}),

one BLAS product per layer and direction.  Weights are runtime arguments: a training loop
calls the same kernel with new weights every step.

For training loops, which call a kernel thousands of times on one batch, the per-point
arrays live in buffers kept from call to call, the points go through in chunks and the
activation passes block by block (:mod:`symnet.kernels._blocks` says why); bias gradients
are a product with a vector of ones rather than a sum over an axis, and a one-unit layer's
``delta W^T`` an outer product formed block by block rather than a BLAS call.

A graph network (:mod:`symnet.graph`) goes the same way node by node (:class:`GraphSweep`):
one product per dense node and direction, and each other node by its family's rule (linear
ops transpose their coefficients, elementwise ones multiply by ``f'``, ``mul`` by the other
factor).  Its kernel (:class:`GraphLossKernel`, what ``LossKernel(net, loss)`` gives for a
graph) returns the gradients as ``{node: {parameter: array}}``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..activations import T, Activation, get as get_activation
from ..losses import LOSSES, check_loss, output_activation, parse_targets
from ..errors import InputError, NotAChainError, ShapeError
from ..network import Network
from ..weights import float_array
from ._blocks import PerThread, Workspace, back_through, block_rows, blocks, chunk_rows
from ._layered import derivatives_pass
from ._threads import sum_over_chunks, thread_count

__all__ = ["GraphLossKernel", "GraphSweep", "LossKernel", "LOSSES", "empty_array", "graph_arrays"]


class LossKernel:
    """``kernel(X, Y) -> (loss, [(dW, db), ...])`` for one architecture and loss.

    For a graph network the constructor gives a :class:`GraphLossKernel` (gradients
    ``{node: {parameter: array}}``).

    Args of the call: ``X`` ``(N, d)``; ``Y`` targets read by :func:`symnet.losses.parse_targets`
    (``(N, m)``, or ``(N,)`` for one output; integer class labels ``(N,)`` for the cross entropies
    of two or more outputs); optional ``weights=``: a network of
    the same architecture, or a list of ``(W, b)`` arrays per layer, whose weights to use
    (default: the network compiled).
    Returns the mean loss (a float) and per layer ``dW`` ``(fan_in, fan_out)`` and ``db``
    ``(fan_out,)``, in float64 (new arrays), matching :func:`symnet.param_grad`.

    Threads may call one kernel at once: each keeps its own buffers (about
    :data:`~symnet.kernels._blocks.CHUNK_BYTES`) for as long as the kernel and the thread live.
    """

    def __new__(cls, net: Network, loss: str = "mse", parallel: bool = True) -> LossKernel:
        if cls is LossKernel and isinstance(net, Network) and not net.is_chain:
            return object.__new__(GraphLossKernel)  # a graph network: reverse mode over its nodes
        return object.__new__(cls)

    def __init__(self, net: Network, loss: str, parallel: bool = True) -> None:
        check_loss(loss)
        for number, activation in enumerate(net.activations[:-1], start=1):
            if not activation.elementwise:
                raise InputError(f"layer {number}: {activation.name!r} is supported only as the last layer")
        self.net, self.loss = net, loss
        self._passes: list[Callable[..., None] | None] = []
        self.slots = 1
        for activation in net.activations:
            if not activation.elementwise or activation.form == T:
                self._passes.append(None)
                continue
            apply, slots = derivatives_pass(activation, 2)  # apply(Z, A, D, s): A = f(Z), D = f'(Z)
            self._passes.append(apply)
            self.slots = max(self.slots, slots)
        # per point and layer: an activation pass's input, output and slope, and an adjoint
        self.chunk = chunk_rows(4 * sum(net.layer_sizes[1:]) * np.dtype(np.float64).itemsize)
        self._ones = np.ones(self.chunk)  # bias gradients: ones @ delta
        self._space = PerThread()
        self.parallel = parallel

    @property
    def threads(self) -> int:
        """Threads a call spreads its chunks of points over (:mod:`symnet.kernels._threads`)."""
        return thread_count(self.parallel)

    def __reduce__(self) -> tuple[Any, ...]:
        # activation passes of exec'd modules and per-thread buffers do not pickle: rebuild them
        return (LossKernel, (self.net, self.loss, self.parallel))

    def __call__(self, X: Any, Y: Any, weights: Network | Sequence[tuple[Any, Any]] | None = None
                 ) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
        net = self.net
        if weights is None:
            Ws = [layer.weight_array() for layer in net.layers]
            bs = [layer.bias_array() for layer in net.layers]
        elif isinstance(weights, Network):
            if weights.layer_sizes != net.layer_sizes:
                raise ShapeError(f"weights has layer sizes {weights.layer_sizes}, the kernel {net.layer_sizes}")
            Ws = [layer.weight_array() for layer in weights.layers]
            bs = [layer.bias_array() for layer in weights.layers]
        else:  # (W, b) arrays per layer: no SymPy round trip, for training loops
            Ws, bs = _arrays(weights, net)
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != net.n_inputs:
            raise ShapeError(f"X has shape {X.shape} but the network takes {net.n_inputs} inputs: give (N, {net.n_inputs})")
        n = X.shape[0]
        targets = _targets(Y, n, net.n_outputs, self.loss, net.activations[-1].name)
        def work(start: int, stop: int, grads: list) -> float:
            with np.errstate(all="ignore"):  # saturation gives inf/0 here as in the closed form
                return self._chunk(X[start:stop], targets[start:stop], Ws, bs, grads)

        total, grads = sum_over_chunks(n, self.chunk, work, list(zip(Ws, bs)), self.threads)
        for dW, db in grads:
            dW /= max(n, 1)
            db /= max(n, 1)
        return total / n if n else float("nan"), grads

    def _chunk(self, X: np.ndarray, targets: np.ndarray, Ws: list[np.ndarray], bs: list[np.ndarray],
               grads: list[tuple[np.ndarray, np.ndarray]]) -> float:
        """Add this chunk's sums of the gradients to ``grads``; return its sum of the loss."""
        space, rows, last = self._space(), X.shape[0], len(Ws) - 1

        def array(name: Any, width: int) -> np.ndarray:
            return space.part(name, (rows, width), self.chunk * width)

        activations, slopes = [X], []
        for number, (W, b, apply, activation) in enumerate(zip(Ws, bs, self._passes, self.net.activations)):
            width = W.shape[1]
            if apply is not None:
                Z = array("Z", width)  # needed only until the pass has read it: one buffer per width
                np.matmul(activations[-1], W, out=Z)
                A, D = array(("A", number), width), array(("D", number), width)
                self._activate(apply, Z, b, A, D)
            else:
                A = array(("A", number), width)
                np.matmul(activations[-1], W, out=A)
                A += b
                D = None  # linear: f' = 1
                if not activation.elementwise:  # softmax or log_softmax output
                    A = activation.numpy(A)
            activations.append(A)
            slopes.append(D)
        output = self.net.activations[-1]
        value, delta = _loss_and_delta(self.loss, activations[-1], targets, output)
        if slopes[last] is not None:
            delta *= slopes[last]
        elif not output.elementwise and not (output.name == "softmax" and self.loss == "cross_entropy"):
            delta = output.numpy_layer_vjp(activations[-1], delta)  # dloss/dA -> dloss/dZ
        for number in range(last, -1, -1):
            dW, db = grads[number]
            dW += activations[number].T @ delta
            db += self._ones[:rows] @ delta
            if number:
                # f'(Z) is not needed again: the next delta takes its place
                G, D = array(("G", number % 2), Ws[number].shape[0]), slopes[number - 1]
                delta = back_through(delta, Ws[number], G, D, G if D is None else D)
        return value

    def _activate(self, apply: Callable[..., None], Z: np.ndarray, b: np.ndarray, A: np.ndarray,
                  D: np.ndarray) -> None:
        """``A = f(Z + b)``, ``D = f'(Z + b)``, block by block: the pass's scratch stays in the cache."""
        size = self.slots * block_rows(Z.shape[1]) * Z.shape[1]
        space = self._space()
        for rows in blocks(*Z.shape):
            z = Z[rows]
            z += b
            apply(z, A[rows], D[rows], space.part("s", (self.slots, *z.shape), size))


def _arrays(weights: Sequence[tuple[Any, Any]], net: Network) -> tuple[list[np.ndarray], list[np.ndarray]]:
    pairs = list(weights)
    if len(pairs) != len(net.layers):
        raise ShapeError(f"weights has {len(pairs)} (W, b) pairs but the network has {len(net.layers)} layers")
    Ws, bs = [], []
    for number, ((W, b), layer) in enumerate(zip(pairs, net.layers), start=1):
        W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64).reshape(-1)
        if W.shape != (layer.fan_in, layer.fan_out) or b.shape != (layer.fan_out,):
            raise ShapeError(f"layer {number}: W {W.shape} and b {b.shape} given, "
                             f"({layer.fan_in}, {layer.fan_out}) and ({layer.fan_out},) needed")
        Ws.append(W)
        bs.append(b)
    return Ws, bs


def _targets(Y: Any, n: int, m: int, loss: str, last: str) -> np.ndarray:
    """``Y`` as float ``(N, m)`` by the rule of :func:`symnet.losses.parse_targets` (labels become one-hot)."""
    return parse_targets(loss, Y, n, m, name="Y", last_activation=last)


def _loss_and_delta(loss: str, y: np.ndarray, t: np.ndarray, last: Activation) -> tuple[float, np.ndarray]:
    """The loss summed over the points and ``dloss_n/dA`` (or ``dloss_n/dZ`` for a softmax output and the
    cross entropy) per point."""
    m = y.shape[1]
    if loss == "mse":
        residual = y - t
        return float(np.sum(residual * residual)) / m, residual * (2 / m)
    if loss == "softmax_cross_entropy":
        shifted = y - y.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-np.sum(t * log_p)), np.exp(log_p) * t.sum(axis=1, keepdims=True) - t
    negative = (t != 0) & (y < 0)
    if negative.any():  # a log-probability or a logit read as a probability: log of a negative number
        point, unit = np.argwhere(negative)[0]
        raise InputError(f"cross_entropy reads the outputs as probabilities, but output {unit} is {y[point, unit]:.3g} "
                         "at a point where its target is not 0: end the network with softmax (or sigmoid), or use "
                         "loss='softmax_cross_entropy' on logits or log_softmax outputs")
    # 0 * log(0) is 0: a class the target gives no weight costs nothing, even if its probability underflows
    cross = float(-np.sum(np.where(t != 0, t * np.log(np.where(t != 0, y, 1.0)), 0.0)))
    if last.name == "softmax":  # softmax then cross entropy: dloss/dZ = p * sum(t) - t
        return cross, y * t.sum(axis=1, keepdims=True) - t
    return cross, np.where(t != 0, -t / np.where(t != 0, y, 1.0), 0.0)


# --- graph networks ------------------------------------------------------------------------------

#: The identity, for the loss rule of an output that is no softmax node.
_LINEAR_ACTIVATION = get_activation("linear")

#: Parameters of one graph network as float64 arrays: ``{node name: {parameter name: array}}``,
#: each array of the parameter's shape.
GraphParams = dict[str, dict[str, np.ndarray]]


def graph_arrays(graph: Any, weights: Any = None) -> GraphParams:
    """The parameters of ``graph`` as float64 arrays ``{node: {name: array of the parameter's shape}}``.

    ``weights``: ``None`` (the graph's own, which must be numbers), a :class:`~symnet.Network`
    of the same graph structure, or such a dict (checked and converted).

    >>> from symnet.graph import input, dense, network, scale
    >>> x = input(1)
    >>> net = network(x, scale(dense(x, [[2.0]], [1.0]), 0.5) + x)
    >>> graph_arrays(net.graph)["scale1"]["s"]
    array([[0.5]])
    """
    owners = [node for node in graph.nodes[1:] if node.params]
    if weights is None or isinstance(weights, Network):
        source = graph
        if isinstance(weights, Network):
            if weights.is_chain or not _same_structure(weights.graph, graph):
                raise ShapeError("weights must be a network of the same graph (the same nodes, ops, inputs and "
                                 "parameter shapes) as the kernel's; got "
                                 + ("a chain" if weights.is_chain else f"{weights.graph!r}"))
            source = weights.graph
        result: GraphParams = {}
        for node in owners:
            mine = source.by_name[node.name]
            result[node.name] = {}
            for name, matrix in mine.params.items():
                result[node.name][name] = float_array(matrix, f"node {node.name!r}: {name}")
        return result
    if not isinstance(weights, dict):
        raise ShapeError(f"weights must be a Network of the same graph or a dict {{node: {{parameter: array}}}}, "
                         f"not {type(weights).__name__}")
    unknown = sorted(set(weights) - {node.name for node in owners})
    if unknown:
        raise ShapeError(f"weights names {unknown}, which are no nodes with parameters of this graph")
    result = {}
    for node in owners:
        given = weights.get(node.name)
        if given is None or set(given) != set(node.params):
            raise ShapeError(f"weights[{node.name!r}] must give {sorted(node.params)}")
        result[node.name] = {}
        for name, matrix in node.params.items():
            array = np.asarray(given[name], dtype=np.float64)
            vector = array.ndim == 1 and 1 in matrix.shape  # a row or column parameter given flat
            if array.size != len(matrix) or (array.shape != tuple(matrix.shape) and not vector):
                raise ShapeError(f"weights[{node.name!r}][{name!r}] has shape {array.shape}, "
                                 f"{tuple(matrix.shape)} needed")
            result[node.name][name] = array.reshape(matrix.shape)
    return result


def _same_structure(a: Any, b: Any) -> bool:
    if len(a.nodes) != len(b.nodes) or a.output != b.output or len(a.inputs) != len(b.inputs):
        return False
    for p, q in zip(a.nodes, b.nodes):
        if (p.name, p.op, p.inputs, p.width) != (q.name, q.op, q.inputs, q.width):
            return False
        if {k: v.shape for k, v in p.params.items()} != {k: v.shape for k, v in q.params.items()}:
            return False
        if p.key()[4] != q.key()[4]:  # the attributes: activation, constants, parametrisation
            return False
    return True


def _dense_weight(node: Any, params: dict[str, np.ndarray]) -> np.ndarray:
    """A dense node's effective ``W`` from its parameter arrays (:func:`symnet.graph.ops.dense_weight`)."""
    kind = node.attrs.get("parametrization", "plain")
    if kind == "plain":
        return params["W"]
    if kind == "weight_norm":
        v = params["v"]
        return params["g"] * v / np.sqrt(np.sum(v * v, axis=0, keepdims=True))
    return np.exp(params["s"]) * params["V"]


def _dense_param_grads(node: Any, params: dict[str, np.ndarray], W: np.ndarray, dW: np.ndarray,
                       db: np.ndarray) -> dict[str, np.ndarray]:
    """The gradients of a dense node's parameters from those of its effective ``W`` and ``b``."""
    kind = node.attrs.get("parametrization", "plain")
    if kind == "plain":
        return {"W": dW, "b": db}
    if kind == "weight_norm":  # W = g v / |v| column by column
        v, g = params["v"], params["g"]
        norms = np.sqrt(np.sum(v * v, axis=0, keepdims=True))
        along = np.sum(dW * v, axis=0, keepdims=True) / norms
        return {"v": g / norms * (dW - v * along / norms), "g": along, "b": db}
    return {"s": np.sum(dW * W, axis=0, keepdims=True), "V": dW * np.exp(params["s"]), "b": db}  # W = exp(s) V


def empty_array(space: Workspace | None, name: tuple[str, str], shape: tuple[int, ...]) -> np.ndarray:
    """A float64 array ``shape``: ``space``'s ``name`` (reused across chunks), or a fresh one without a space.

    >>> empty_array(None, ("S", "z1"), (2, 3)).shape
    (2, 3)
    """
    return np.empty(shape) if space is None else space.grown(name, shape)


def _to_width(G: np.ndarray, width: int) -> np.ndarray:
    """An adjoint for an input of ``width`` units: summed over the units where that input broadcast."""
    return G.sum(axis=-1, keepdims=True) if width == 1 and G.shape[-1] != 1 else G


class GraphSweep:
    """Forward and reverse sweeps of a graph network over float64 arrays, node by node by rule family.

    Every node carries ``k`` stacked streams ``(k, N, width)``: stream 0 its values, and with
    ``tangents=True`` streams ``1..d`` its derivatives along the ``d`` inputs (forward mode).
    :meth:`forward` evaluates them; :meth:`backward`, from adjoints of some nodes' streams,
    returns the gradient of every parameter: one matrix product per dense node and direction,
    and for the other families their rules (linear ops transpose, ``f'`` and ``f''`` of
    elementwise ones, Leibniz's rule for ``mul``).  Softmax nodes take no tangents.

    >>> from symnet.graph import input, dense, network
    >>> x = input(1)
    >>> net = network(x, dense(x, [[2.0]], [0.0], "square") + x)       # y = (2x)^2 + x
    >>> sweep = GraphSweep(net.graph, tangents=True)
    >>> params = graph_arrays(net.graph)
    >>> S, F = sweep.forward(params, np.array([[1.0]]))
    >>> S[net.graph.output][:, 0, 0]                                      # y and dy/dx = 2 W^2 x + 1
    array([5., 9.])
    >>> grads = sweep.backward(params, S, F, {net.graph.output: np.array([[[0.0]], [[1.0]]])})
    >>> grads["z1"]["W"]                                                  # d(dy/dx)/dW = 4 W x
    array([[8.]])
    """

    def __init__(self, graph: Any, tangents: bool = False) -> None:
        self.graph, self.tangents = graph, tangents
        self.passes: dict[str, tuple[Callable[..., None], int] | None] = {}
        self.matrices: dict[str, tuple[list[np.ndarray], np.ndarray]] = {}
        count = self._slope_count()
        for node in graph.nodes[1:]:
            where = f"node {node.name!r} ({node.op})"
            if node.params and node.op not in ("scale", "shift", "dense"):
                raise NotAChainError(f"{where}: no gradient rule for the parameters of a {node.op!r} node")
            if node.family == "elementwise":
                activation = node.activation
                if not activation.elementwise:
                    if self.streams(1) > 1:
                        raise InputError(f"{where}: a {activation.name} node acts on a whole layer; gradients "
                                         "through input derivatives (dy targets in fit, compile_vjp requests past "
                                         "the value) need elementwise activations; symnet.compile evaluates its "
                                         "derivatives, without parameter gradients")
                    self.passes[node.name] = None
                elif activation.form == T:
                    self.passes[node.name] = None
                else:
                    self.passes[node.name] = derivatives_pass(activation, count)
            elif node.family == "linear" and node.op != "dense" and node.op not in _LINEAR:
                self.matrices[node.name] = linear_matrices(node)
            elif node.family not in ("linear", "bilinear"):
                raise NotAChainError(f"{where}: no rule for the {node.family!r} family")

    def _slope_count(self) -> int:
        """How many of ``f, f', f'', ...`` the elementwise passes write."""
        return 3 if self.tangents else 2

    def streams(self, d: int) -> int:
        """The number of streams per node for ``d`` inputs."""
        return 1 + d if self.tangents else 1

    def input_streams(self, X: np.ndarray) -> np.ndarray:
        """The input node's streams: the points, and with tangents the unit directions."""
        n, d = X.shape
        k = self.streams(d)
        streams = np.zeros((k, n, d))
        streams[0] = X
        for i in range(1, k):
            streams[i, :, i - 1] = 1.0
        return streams

    def forward(self, params: GraphParams, X: np.ndarray, space: Workspace | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Every node's streams ``(k, N, width)``, and what the reverse sweep needs of each node.

        ``space``: the largest arrays (dense and elementwise nodes' streams, ``f^(j)``) come from
        it, valid until its next sweep -- for a caller that runs one chunk's sweeps, forward then
        back, before the next chunk's on the same thread.  Fresh arrays of a few MiB cost a page
        fault per page on first touch, as much as the arithmetic on them.
        """
        n, d = X.shape
        k = self.streams(d)
        S = {"x": self.input_streams(X)}
        saved: dict[str, Any] = {}
        for node in self.graph.nodes[1:]:
            args = [S[name] for name in node.inputs]
            op = node.op
            if op == "dense":
                W = _dense_weight(node, params[node.name])
                a = args[0]
                out = empty_array(space, ("S", node.name), (k, n, W.shape[1]))
                np.matmul(a.reshape(-1, a.shape[2]), W, out=out.reshape(-1, W.shape[1]))
                out[0] += params[node.name]["b"][0]
                saved[node.name] = W
            elif node.family == "elementwise":
                out, saved[node.name] = self._activate(node, args[0], space)
            elif node.family == "bilinear":
                out = self._multiply(*args)
            elif op in _LINEAR:
                out = _LINEAR[op][0](node, args, params.get(node.name))
            else:
                matrices, offset = self.matrices[node.name]
                out = sum(a @ C for a, C in zip(args, matrices))
                out[0] += offset
            S[node.name] = out
        return S, saved

    def _activate(self, node: Any, z: np.ndarray, space: Workspace | None = None) -> tuple[np.ndarray, Any]:
        entry = self.passes[node.name]
        if entry is None:
            if node.activation.elementwise:  # linear: f' = 1, f'' = 0
                return z, None
            return node.activation.numpy(z), None  # softmax, log_softmax: one stream
        apply, slots = entry
        k, n, w = z.shape
        out = empty_array(space, ("S", node.name), z.shape)
        slopes = empty_array(space, ("F", node.name), (2 if self.tangents else 1, n, w))
        F2 = slopes[1] if self.tangents else empty_array(space, ("F2", node.name), (n, w))
        args = (out[0], slopes[0], F2) if self.tangents else (out[0], slopes[0])
        apply(np.ascontiguousarray(z[0]), *args, np.empty((slots, n, w)))
        if k > 1:
            np.multiply(z[1:], slopes[0], out=out[1:])
        return out, slopes

    def backward(self, params: GraphParams, S: dict[str, np.ndarray], saved: dict[str, Any],
                 seeds: dict[str, np.ndarray], skip: str | None = None, space: Workspace | None = None) -> GraphParams:
        """The gradients ``{node: {parameter: array}}`` from adjoints ``seeds`` of some nodes' streams.

        ``skip`` names a node not to differentiate through (its input's seed says it all).
        """
        return self.backward_to_input(params, S, saved, seeds, skip, space)[0]

    def backward_to_input(self, params: GraphParams, S: dict[str, np.ndarray], saved: dict[str, Any],
                          seeds: dict[str, np.ndarray], skip: str | None = None, space: Workspace | None = None
                          ) -> tuple[GraphParams, np.ndarray | None]:
        """:meth:`backward`, and the adjoint of the input node's streams (``None`` if nothing reaches it).

        ``space``: as :meth:`forward` takes it (the adjoints of dense and elementwise nodes).
        """
        G: dict[str, np.ndarray] = {name: np.array(value) for name, value in seeds.items()}
        grads: GraphParams = {}
        for node in reversed(self.graph.nodes[1:]):
            g = G.pop(node.name, None)
            if g is None or node.name == skip:
                continue
            args = [S[name] for name in node.inputs]
            shares: list[np.ndarray] = []
            op = node.op
            if op == "dense":
                W, a = saved[node.name], args[0]
                k, n = g.shape[:2]
                flat = g.reshape(-1, g.shape[2])
                # one output unit: an outer product, which BLAS does far slower than a broadcast multiply
                back = empty_array(space, ("back", node.name), (k, n, W.shape[0]))
                if W.shape[1] == 1:
                    np.multiply(flat, W.T, out=back.reshape(-1, W.shape[0]))
                else:
                    np.matmul(flat, W.T, out=back.reshape(-1, W.shape[0]))
                shares = [back]
                dW = a.reshape(-1, a.shape[2]).T @ flat
                db = g[0].sum(axis=0, keepdims=True)
                grads[node.name] = _dense_param_grads(node, params[node.name], W, dW, db)
            elif node.family == "elementwise":
                shares = [self._activation_back(node, g, args[0], S[node.name], saved[node.name], space)]
            elif node.family == "bilinear":
                shares = self._multiply_back(g, *args)
            elif op in _LINEAR:
                shares, mine = _LINEAR[op][1](node, g, args, params.get(node.name))
                if mine is not None:
                    grads[node.name] = mine
            else:
                matrices, _ = self.matrices[node.name]
                shares = [g @ C.T for C in matrices]
            for name, width, share in zip(node.inputs, node.input_widths, shares):
                share = _to_width(share, width)
                if name in G:
                    G[name] = G[name] + share
                else:
                    G[name] = share
        return grads, G.get(self.graph.nodes[0].name)

    def _multiply(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Leibniz's rule: values times values, tangents ``a' b + a b'``."""
        out = a * b[0]
        if len(out) > 1:
            out[1:] += a[0] * b[1:]
        return out

    def _multiply_back(self, g: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
        ga, gb = g * b[0], g * a[0]
        if len(g) > 1:
            ga[0] += np.sum(g[1:] * b[1:], axis=0)
            gb[0] += np.sum(g[1:] * a[1:], axis=0)
        return [ga, gb]

    def _activation_back(self, node: Any, g: np.ndarray, z: np.ndarray, out: np.ndarray, slopes: Any,
                         space: Workspace | None = None) -> np.ndarray:
        if not node.activation.elementwise:  # softmax, log_softmax: one stream, their layer rule
            return node.activation.numpy_layer_vjp(out, g)
        if slopes is None:  # linear
            return g
        share = g * slopes[0]
        if len(g) > 1:  # the tangents' term: f''(z) sum_i g_i dz_i
            share[0] += slopes[1] * np.sum(g[1:] * z[1:], axis=0)
        return share


def linear_matrices(node: Any) -> tuple[list[np.ndarray], np.ndarray]:
    """A parameter-free linear node as constant matrices, one per input, and an offset row."""
    matrices = [np.zeros((w, node.width)) for w in node.input_widths]
    offset = np.zeros(node.width)
    for j, (parts, constant) in enumerate(node.linear_terms):
        for k, i, c in parts:
            matrices[k][i, j] += float(c)
        offset[j] = float(constant)
    return matrices, offset


def _combine(sign: float) -> tuple[Callable[..., np.ndarray], Callable[..., Any]]:
    def forward(node: Any, args: list[np.ndarray], params: Any) -> np.ndarray:
        return args[0] + args[1] if sign > 0 else args[0] - args[1]

    def backward(node: Any, g: np.ndarray, args: list[np.ndarray], params: Any) -> tuple[list[np.ndarray], None]:
        return [g, g if sign > 0 else -g], None
    return forward, backward


def _scale_forward(node: Any, args: list[np.ndarray], params: Any) -> np.ndarray:
    return args[0] * params["s"][0]


def _scale_backward(node: Any, g: np.ndarray, args: list[np.ndarray], params: Any) -> tuple[list[np.ndarray], Any]:
    s = params["s"]
    ds = np.sum(g * args[0], axis=(0, 1)).reshape(1, -1)
    return [g * s[0]], {"s": ds.sum(axis=1, keepdims=True) if s.shape[1] == 1 else ds}


def _shift_forward(node: Any, args: list[np.ndarray], params: Any) -> np.ndarray:
    out = np.array(np.broadcast_to(args[0], args[0].shape))
    out[0] += params["t"][0]
    return out


def _shift_backward(node: Any, g: np.ndarray, args: list[np.ndarray], params: Any) -> tuple[list[np.ndarray], Any]:
    dt = g[0].sum(axis=0).reshape(1, -1)
    return [g], {"t": dt.sum(axis=1, keepdims=True) if params["t"].shape[1] == 1 else dt}


def _constant_row(node: Any, name: str) -> np.ndarray:
    return float_array(node.attrs[name], f"node {node.name!r}: {name}").reshape(-1)


def _rescale_forward(node: Any, args: list[np.ndarray], params: Any) -> np.ndarray:
    out = args[0] * _constant_row(node, "scale")
    out[0] += _constant_row(node, "offset")
    return out


def _rescale_backward(node: Any, g: np.ndarray, args: list[np.ndarray], params: Any) -> tuple[list[np.ndarray], None]:
    return [g * _constant_row(node, "scale")], None


def _matmul_forward(node: Any, args: list[np.ndarray], params: Any) -> np.ndarray:
    return args[0] @ float_array(node.attrs["matrix"], f"node {node.name!r}: matrix")


def _matmul_backward(node: Any, g: np.ndarray, args: list[np.ndarray], params: Any) -> tuple[list[np.ndarray], None]:
    return [g @ float_array(node.attrs["matrix"], f"node {node.name!r}: matrix").T], None


def _concat_backward(node: Any, g: np.ndarray, args: list[np.ndarray], params: Any) -> tuple[list[np.ndarray], None]:
    cuts = np.cumsum(node.input_widths)[:-1]
    return list(np.split(g, cuts, axis=-1)), None


def _slice_backward(node: Any, g: np.ndarray, args: list[np.ndarray], params: Any) -> tuple[list[np.ndarray], None]:
    share = np.zeros(g.shape[:-1] + (node.input_widths[0],))
    share[..., node.attrs["start"]:node.attrs["stop"]] = g
    return [share], None


def _reduce_backward(mean: bool) -> Callable[..., Any]:
    def backward(node: Any, g: np.ndarray, args: list[np.ndarray], params: Any) -> tuple[list[np.ndarray], None]:
        width = node.input_widths[0]
        share = np.broadcast_to(g / width if mean else g, g.shape[:-1] + (width,))
        return [np.array(share)], None
    return backward


#: numpy rules of the linear ops: ``(forward(node, args, params), backward(node, g, args, params)
#: -> (input adjoints, parameter gradients or None))``; other linear ops go through the constant
#: matrices of their linear terms.
_LINEAR: dict[str, tuple[Callable[..., np.ndarray], Callable[..., Any]]] = {
    "add": _combine(1.0),
    "sub": _combine(-1.0),
    "scale": (_scale_forward, _scale_backward),
    "shift": (_shift_forward, _shift_backward),
    "rescale": (_rescale_forward, _rescale_backward),
    "matmul": (_matmul_forward, _matmul_backward),
    "concat": (lambda node, args, params: np.concatenate(args, axis=-1), _concat_backward),
    "slice": (lambda node, args, params: args[0][..., node.attrs["start"]:node.attrs["stop"]], _slice_backward),
    "sum": (lambda node, args, params: args[0].sum(axis=-1, keepdims=True), _reduce_backward(False)),
    "mean": (lambda node, args, params: args[0].mean(axis=-1, keepdims=True), _reduce_backward(True)),
}


class GraphLossKernel(LossKernel):
    """:class:`LossKernel` of a graph network: ``kernel(X, Y) -> (loss, {node: {parameter: gradient}})``.

    ``LossKernel(net, loss)`` and :func:`symnet.compile_loss` give one for a graph network.
    The gradients, float64 arrays of each parameter's shape, match :func:`symnet.param_grad`'s
    dict; ``weights=`` takes a network of the same graph or such a dict of arrays.  Any
    output node is fine for ``mse`` and ``softmax_cross_entropy``; ``cross_entropy`` reads the
    outputs as probabilities (a softmax output node cancels with it).

    >>> import numpy as np
    >>> from symnet.graph import input, dense, network, scale
    >>> x = input(1)
    >>> net = network(x, scale(dense(x, [[2.0]], [0.0]), 0.5, name="half") + x)   # y = s * 2x + x
    >>> value, grads = LossKernel(net, "mse")(np.array([[1.0]]), np.array([[3.0]]))
    >>> value, grads["half"]["s"]
    (1.0, array([[-4.]]))
    """

    def __init__(self, net: Network, loss: str, parallel: bool = True) -> None:
        check_loss(loss)
        if net.is_chain:
            raise NotAChainError("GraphLossKernel is for graph networks; LossKernel(net, loss) takes chains")
        self.net, self.loss, self.parallel = net, loss, parallel
        self.sweep = GraphSweep(net.graph)
        self._space = PerThread()  # the sweeps' arrays, per thread, reused chunk after chunk and call after call
        graph = net.graph
        output = graph.by_name[graph.output]
        self._softmax_output = output.op == "activation" and output.activation.name == "softmax"
        self._owners = [node for node in graph.nodes[1:] if node.params]
        widths = sum(node.width for node in graph.nodes)
        self.chunk = chunk_rows(3 * widths * np.dtype(np.float64).itemsize)

    def __call__(self, X: Any, Y: Any, weights: Network | GraphParams | None = None  # type: ignore[override]
                 ) -> tuple[float, GraphParams]:
        net, graph = self.net, self.net.graph
        params = graph_arrays(graph, weights)
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != net.n_inputs:
            raise ShapeError(f"X has shape {X.shape} but the network takes {net.n_inputs} inputs: "
                             f"give (N, {net.n_inputs})")
        n = X.shape[0]
        targets = _targets(Y, n, net.n_outputs, self.loss, output_activation(net))
        output = graph.by_name[graph.output]
        cancel = self.loss == "cross_entropy" and self._softmax_output
        last = output.activation if cancel else _LINEAR_ACTIVATION

        def work(start: int, stop: int, grads: list) -> float:
            space = self._space()  # this thread's arrays, reused chunk after chunk
            with np.errstate(all="ignore"):
                S, saved = self.sweep.forward(params, X[start:stop], space)
                value, delta = _loss_and_delta(self.loss, S[graph.output][0], targets[start:stop], last)
                seeded = output.inputs[0] if cancel else graph.output
                found = self.sweep.backward(params, S, saved, {seeded: delta[None]},
                                            skip=output.name if cancel else None, space=space)
                add_gradients(found, self._owners, grads)
                return value

        like = [tuple(params[node.name][name] for name in node.params) for node in self._owners]
        total, sums = sum_over_chunks(n, self.chunk, work, like, self.threads)
        grads = {node.name: {name: array / max(n, 1) for name, array in zip(node.params, group)}
                 for node, group in zip(self._owners, sums)}
        return (total / n if n else float("nan")), grads

    def __reduce__(self) -> tuple[Any, ...]:
        return (GraphLossKernel, (self.net, self.loss, self.parallel))


def add_gradients(found: dict[str, dict[str, np.ndarray]], owners: Any, grads: list[Any]) -> None:
    """Add one chunk's gradients ``{node: {parameter: array}}`` into ``grads`` (per owner node, its
    parameters' arrays in order), in place."""
    for node, group in zip(owners, grads):
        mine = found.get(node.name)
        if mine is not None:
            for array, name in zip(group, node.params):
                array += mine[name]
