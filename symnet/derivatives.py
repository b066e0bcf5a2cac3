"""Exact derivatives of a network with respect to its inputs, and of a loss with respect to its weights.

Every function builds a straight-line :class:`~symnet.program.Program` by the chain rule (see
:mod:`symnet.program`) and returns the flat closed form in the inputs (``form="flat"``, the
default) or the program itself (``form="program"``; its ``result`` holds the answer over
program nodes, ``program.flat()`` flattens it).

>>> from symnet import Network
>>> net = Network.from_weights([[[1]], [[1]]], [[0], [0]], ["sigmoid", "linear"])
>>> diff(net, "x0")
(1 - sigmoid(x0))*sigmoid(x0)
>>> hessian(net)
Matrix([[(1 - sigmoid(x0))**2*sigmoid(x0) - (1 - sigmoid(x0))*sigmoid(x0)**2]])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy

from .activations import T
from . import limits
from .errors import InputError, LimitError, NotAChainError, ShapeError
from .losses import LOSSES, check_loss, output_activation, parse_targets
from .network import Network
from .program import Program, build
from .requests import QUANTITIES

__all__ = ["grad", "jacobian", "hessian", "diff", "laplacian", "biharmonic", "param_grad", "LOSSES"]

_FORMS = ("flat", "program")


def _finish(program: Program, result: Any, form: str) -> Any:
    if form not in _FORMS:
        raise InputError(f"form must be one of {_FORMS}, not {form!r}")
    program.result = result
    return program.flat() if form == "flat" else program


def jacobian(net: Network, form: str = "flat") -> sympy.ImmutableMatrix | Program:
    """The input Jacobian, a ``Matrix`` of shape ``(n_outputs, n_inputs)``: ``J[k, i] = d y_k / d x_i``."""
    d = net.n_inputs
    program = build(net, [(i,) for i in range(d)])
    result = sympy.ImmutableMatrix(net.n_outputs, d, lambda k, i: program.jets[k].get((i,), sympy.S.Zero))
    return _finish(program, result, form)


def grad(net: Network, output: int | None = None, form: str = "flat") -> sympy.ImmutableMatrix | Program:
    """The gradient of one output, a column ``Matrix`` of shape ``(n_inputs, 1)``.

    ``output`` picks the output of a multi-output network (required there).
    """
    k = net.output_index(output)
    d = net.n_inputs
    program = build(net, [(i,) for i in range(d)])
    result = sympy.ImmutableMatrix(d, 1, lambda i, _: program.jets[k].get((i,), sympy.S.Zero))
    return _finish(program, result, form)


def hessian(net: Network, output: int | None = None, form: str = "flat") -> sympy.ImmutableMatrix | Program:
    """The Hessian of one output, a symmetric ``Matrix`` ``(n_inputs, n_inputs)``; each entry is built once."""
    k = net.output_index(output)
    d = net.n_inputs
    program = build(net, [(i, j) for i in range(d) for j in range(i, d)])
    jet = program.jets[k]
    result = sympy.ImmutableMatrix(d, d, lambda i, j: jet.get(tuple(sorted((i, j))), sympy.S.Zero))
    return _finish(program, result, form)


def diff(net: Network, *wrt: int | str | sympy.Symbol, output: int | None = None, form: str = "flat") -> Any:
    """Any mixed partial derivative: ``diff(net, x0, x0, x1)`` is ``d^3 y / dx0^2 dx1``.

    Inputs may be given as symbols, names or positions.  With no ``wrt``, the value itself.
    Returns an expression for a single-output network (or when ``output`` is given) and a
    column ``Matrix`` with one entry per output otherwise.
    """
    alpha = tuple(sorted(net.input_index(w) for w in wrt))
    program = build(net, [alpha])
    return _finish(program, _per_output(net, output, lambda jet: jet.get(alpha, sympy.S.Zero), program), form)


def laplacian(net: Network, output: int | None = None, form: str = "flat") -> Any:
    """The Laplacian ``sum_i d^2 y / dx_i^2``; per output like :func:`diff`."""
    d = net.n_inputs
    program = build(net, [(i, i) for i in range(d)])
    return _finish(program, _per_output(net, output, lambda jet: sympy.Add(
        *(jet.get((i, i), sympy.S.Zero) for i in range(d))), program), form)


def biharmonic(net: Network, output: int | None = None, form: str = "flat") -> Any:
    """The biharmonic ``Delta^2 y = sum_ij d^4 y / dx_i^2 dx_j^2`` (the Laplacian of the Laplacian); per
    output like :func:`diff`.  Built from the ``d(d+1)/2`` distinct fourth partials
    (:data:`symnet.requests.QUANTITIES`), each once.

    >>> biharmonic(Network.from_weights([[[1]], [[1]]], [[0], [0]], [lambda t: t**4, "linear"]))
    24
    """
    quantity = QUANTITIES["biharmonic"]
    d = net.n_inputs
    program = build(net, quantity.multi_indices(d))
    return _finish(program, _per_output(net, output, lambda jet: quantity.entries(jet, d)[0][1], program), form)


def _per_output(net: Network, output: int | None, pick: Any, program: Program) -> Any:
    if output is None and net.n_outputs > 1:
        return sympy.ImmutableMatrix([pick(jet) for jet in program.jets])
    return pick(program.jets[net.output_index(output)])


# --- parameter gradients ---------------------------------------------------------------------

# LOSSES and the targets rule live in symnet.losses, shared by every loss-taking function


GraphGradients = dict[str, dict[str, sympy.ImmutableMatrix]]


def param_grad(net: Network, loss: str, data: tuple[Any, Any]
               ) -> list[tuple[sympy.ImmutableMatrix, sympy.ImmutableMatrix]] | GraphGradients:
    """Exact gradient of a loss over ``data = (X, Y)`` with respect to every weight and bias.

    Args:
        net: numeric or symbolic network.
        loss: ``"mse"`` -- mean over points and outputs of ``(y_k - t_k)**2`` (Keras' MSE);
            ``"cross_entropy"`` -- ``-mean_n sum_k t_k log(y_k)``, for networks whose last
            activation is softmax; ``"softmax_cross_entropy"`` -- the same with softmax applied
            to the network outputs (logits).
        data: ``X`` of shape ``(N, n_inputs)`` (or one point ``(n_inputs,)``) and targets ``Y``
            read by :func:`symnet.losses.parse_targets`: ``(N, n_outputs)`` (``(N,)`` for one
            output); for the cross entropies also integer class labels ``(N,)`` (two or more
            outputs).

    Returns:
        A chain: one ``(dW, db)`` pair per layer, ``dW`` of the layer's W shape
        ``(fan_in, fan_out)`` and ``db`` of shape ``(1, fan_out)``.  A graph network: a dict
        ``{node name: {parameter name: gradient}}`` over the nodes that have parameters, each
        gradient an ``ImmutableMatrix`` of the parameter's shape (a weight-normalised dense
        node's ``v``, ``g``, ``b``; a scale's ``s``; ...), the derivative with respect to each
        entry of that matrix taken as a variable of its own (a symbol used in several entries
        gets the sum of their gradients).  Exact numbers for a numeric network, formulas of the
        parameters for a symbolic one.  Computed by reverse accumulation (back-propagation) over
        the layers, or the graph's nodes by rule family, with SymPy arithmetic, never by
        ``sympy.diff`` of the loss.  Points times parameters past
        :data:`symnet.limits.MAX_SYMBOLIC_POINT_PARAMETERS` are refused
        (:class:`~symnet.LimitError`): use :func:`symnet.compile_loss` for big batches.

    >>> net = Network.from_weights([[[2.0]]], [[0.0]], ["linear"])
    >>> param_grad(net, "mse", ([[1.0]], [[3.0]]))  # d/dw (w*1 - 3)**2 = 2*(2 - 3)
    [(Matrix([[-2.0]]), Matrix([[-2.0]]))]
    >>> from symnet.graph import input, dense, network, scale
    >>> x = input(1)
    >>> res = network(x, scale(dense(x, [[2.0]], [0.0]), 0.5, name="half") + x)  # y = 0.5 * 2x + x
    >>> param_grad(res, "mse", ([[1.0]], [[3.0]]))["half"]  # d/ds (s*2 + 1 - 3)**2 at s = 0.5
    {'s': Matrix([[-4.0]])}
    """
    check_loss(loss)
    X, targets = _data(net, loss, data)
    if not net.is_chain:
        return _graph_param_grad(net, loss, X, targets)
    parameters = sum(layer.fan_in * layer.fan_out + layer.fan_out for layer in net.layers)
    if len(X) * parameters > limits.MAX_SYMBOLIC_POINT_PARAMETERS:
        raise LimitError(
            f"param_grad over {len(X)} points of a network with {parameters} weights and biases is "
            f"{len(X) * parameters:,} exact back-propagations, above "
            f"symnet.limits.MAX_SYMBOLIC_POINT_PARAMETERS = {limits.MAX_SYMBOLIC_POINT_PARAMETERS:,}: use "
            "symnet.compile_loss(net, loss)(X, Y) for float64 gradients, or fewer points"
        )
    scale = sympy.Integer(len(X))
    layers = net.layers
    totals = [(sympy.zeros(la.fan_in, la.fan_out), sympy.zeros(1, la.fan_out)) for la in layers]
    for x, t in zip(X, targets):
        a = sympy.Matrix([x])
        cache = []  # each layer's input and pre-activation
        for layer in layers:
            z = a * layer.weight + layer.bias
            cache.append((a, z))
            a = sympy.Matrix([layer.activation.apply_layer(list(z))])
        delta = _output_delta(loss, layers[-1].activation, a, cache[-1][1], sympy.Matrix([t])) / scale
        for number in range(len(layers) - 1, -1, -1):
            a_in, _ = cache[number]
            dW, db = totals[number]
            totals[number] = (dW + a_in.T * delta, db + delta)
            if number:
                delta = _through_activation(layers[number - 1].activation, cache[number - 1][1],
                                            delta * layers[number].weight.T)
    return [(sympy.ImmutableMatrix(dW), sympy.ImmutableMatrix(db)) for dW, db in totals]


def _data(net: Network, loss: str, data: tuple[Any, Any]) -> tuple[list[list[sympy.Expr]], list[list[sympy.Expr]]]:
    try:
        X, Y = data
    except (TypeError, ValueError) as exc:
        raise InputError("data must be a pair (X, Y)") from exc
    X = np.asarray(X, dtype=object)
    if X.ndim == 1:
        X = X.reshape(1, -1)
    if X.ndim != 2 or X.shape[1] != net.n_inputs:
        raise ShapeError(f"X has shape {X.shape} but the network takes {net.n_inputs} inputs: give (N, {net.n_inputs})")
    Y = parse_targets(loss, Y, len(X), net.n_outputs, exact=True, name="Y",
                      last_activation=output_activation(net))  # the rule of symnet.losses
    to_expr = lambda v: v if isinstance(v, sympy.Basic) else sympy.sympify(float(v) if not isinstance(v, (int, np.integer)) else int(v))  # noqa: E731
    return [[to_expr(v) for v in row] for row in X], [list(row) for row in Y]


def _output_delta(loss: str, activation: Any, y: sympy.Matrix, z: sympy.Matrix, t: sympy.Matrix) -> sympy.Matrix:
    """``dL/dz`` of the last layer for one point (before dividing by the number of points)."""
    if loss == "mse":
        return _through_activation(activation, z, 2 * (y - t) / y.shape[1])
    if loss == "softmax_cross_entropy":
        probabilities = sympy.Matrix([_softmax(list(y))])
        return _through_activation(activation, z, probabilities * sum(t) - t)
    if activation.name == "softmax":  # softmax and cross entropy cancel: dL/dz = p * sum(t) - t
        return y * sum(t) - t
    return _through_activation(activation, z, sympy.Matrix([[-tk / yk for tk, yk in zip(t, y)]]))


def _softmax(values: list[sympy.Expr]) -> list[sympy.Expr]:
    exps = [sympy.exp(v) for v in values]
    total = sympy.Add(*exps)
    return [e / total for e in exps]


def _through_activation(activation: Any, z: sympy.Matrix, delta: sympy.Matrix) -> sympy.Matrix:
    """``dL/dz`` from ``dL/da`` through one layer's activation (a row vector each)."""
    if activation.elementwise:
        first = activation.derivative(1)
        return sympy.Matrix([[delta[0, j] * first.xreplace({T: z[0, j]}) for j in range(z.shape[1])]])
    return sympy.Matrix([activation.layer_vjp(list(z), list(delta))])  # softmax, log_softmax


# --- parameter gradients of graph networks: reverse accumulation by rule family -------------------


def _graph_param_grad(net: Network, loss: str, X: list[list[sympy.Expr]], targets: list[list[sympy.Expr]]
                      ) -> dict[str, dict[str, sympy.ImmutableMatrix]]:
    """:func:`param_grad` of a graph network: per point, the forward values node by node, then the
    adjoints ``dL/d(node units)`` from the output back, each node by its family's rule."""
    from .graph.ir import apply

    graph = net.graph
    nodes = graph.nodes[1:]
    owners = [node for node in nodes if node.params]
    parameters = sum(len(matrix) for node in owners for matrix in node.params.values())
    if len(X) * parameters > limits.MAX_SYMBOLIC_POINT_PARAMETERS:
        raise LimitError(
            f"param_grad over {len(X)} points of a network with {parameters} parameters is "
            f"{len(X) * parameters:,} exact back-propagations, above "
            f"symnet.limits.MAX_SYMBOLIC_POINT_PARAMETERS = {limits.MAX_SYMBOLIC_POINT_PARAMETERS:,}: use "
            "symnet.compile_loss(net, loss)(X, Y) for float64 gradients, or fewer points"
        )
    for node in owners:
        if node.op not in ("dense", "scale", "shift"):
            raise NotAChainError(f"node {node.name!r} ({node.op}): param_grad has no rule for the parameters of "
                                 f"a {node.op!r} node")
    chains = {node.name: _weight_chain(node) for node in owners
              if node.op == "dense" and node.attrs.get("parametrization", "plain") != "plain"}
    terms: dict[str, dict[str, list[list[list[sympy.Expr]]]]] = {
        node.name: {p: [[[] for _ in range(m.shape[1])] for _ in range(m.shape[0])] for p, m in node.params.items()}
        for node in owners}
    output = graph.by_name[graph.output]
    softmax_output = output.op == "activation" and output.activation.name == "softmax"
    scale = sympy.Integer(len(X))
    for x, t in zip(X, targets):
        units: dict[str, list[sympy.Expr]] = {"x": list(x)}
        for node in nodes:
            units[node.name] = apply(node, [units[name] for name in node.inputs])
        adjoints: dict[str, list[list[sympy.Expr]]] = {node.name: [[] for _ in range(node.width)]
                                                      for node in graph.nodes}
        y = units[graph.output]
        skip = None
        if loss == "cross_entropy" and softmax_output:  # softmax and cross entropy cancel: dL/dz = p * sum(t) - t
            skip, seeded, seed = output.name, output.inputs[0], [p * sum(t) - tk for p, tk in zip(y, t)]
        else:
            seeded, seed = graph.output, _graph_output_adjoint(loss, y, t)
        for j, value in enumerate(seed):
            adjoints[seeded][j].append(value / scale)
        for node in reversed(nodes):
            if node.name == skip:
                continue
            g = [sympy.Add(*parts) for parts in adjoints[node.name]]
            if all(v == 0 for v in g):
                continue
            _graph_back(node, g, units, adjoints, terms.get(node.name), chains.get(node.name))
    return {node.name: {p: sympy.ImmutableMatrix(m.shape[0], m.shape[1],
                                                 lambda i, j: sympy.Add(*terms[node.name][p][i][j]))
                        for p, m in node.params.items()}
            for node in owners}


def _graph_output_adjoint(loss: str, y: list[sympy.Expr], t: list[sympy.Expr]) -> list[sympy.Expr]:
    """``dL/dy`` for one point of the outputs ``y`` (before dividing by the number of points)."""
    if loss == "mse":
        return [2 * (yk - tk) / len(y) for yk, tk in zip(y, t)]
    if loss == "softmax_cross_entropy":
        total = sum(t)
        return [p * total - tk for p, tk in zip(_softmax(y), t)]
    return [-tk / yk for tk, yk in zip(t, y)]


def _weight_chain(node: Any) -> dict[tuple[int, int], list[tuple[str, int, int, sympy.Expr]]]:
    """For a weight-normalised or factorised dense node: per entry ``(i, j)`` of its effective ``W``,
    ``[(parameter, row, column, dW[i, j]/d parameter[row, column])]`` at the node's parameter values,
    each from ``sympy.diff`` of that one entry's expression in placeholders of the parameters."""
    from types import SimpleNamespace

    from .graph.ops import dense_weight

    placeholders: dict[sympy.Symbol, tuple[str, int, int]] = {}
    stand_in: dict[str, sympy.ImmutableMatrix] = {}
    values: dict[sympy.Symbol, sympy.Expr] = {}
    for name, matrix in node.params.items():
        def entry(i: int, j: int, name: str = name, matrix: Any = matrix) -> sympy.Symbol:
            symbol = sympy.Dummy(f"{name}_{i}_{j}", real=True)
            placeholders[symbol] = (name, i, j)
            values[symbol] = matrix[i, j]
            return symbol
        stand_in[name] = sympy.ImmutableMatrix(matrix.shape[0], matrix.shape[1], entry)
    weight = dense_weight(SimpleNamespace(attrs=node.attrs, params=stand_in))
    rule: dict[tuple[int, int], list[tuple[str, int, int, sympy.Expr]]] = {}
    for i in range(weight.shape[0]):
        for j in range(weight.shape[1]):
            entry_expr = weight[i, j]
            rule[(i, j)] = [(*placeholders[s], sympy.diff(entry_expr, s).xreplace(values))
                            for s in sorted(entry_expr.free_symbols & placeholders.keys(), key=sympy.default_sort_key)]
    return rule


def _graph_back(node: Any, g: list[sympy.Expr], units: dict[str, list[sympy.Expr]],
                adjoints: dict[str, list[list[sympy.Expr]]], terms: dict[str, Any] | None, chain: Any) -> None:
    """One node's reverse rule: add its share to its inputs' adjoints and its parameters' gradients."""
    family = node.family
    args = [units[name] for name in node.inputs]
    if family == "linear":
        for j, (parts, _) in enumerate(node.linear_terms):
            for k, i, c in parts:
                adjoints[node.inputs[k]][i].append(g[j] * c)
        if terms is None:
            return
        a = args[0]
        if node.op == "dense":
            for j in range(node.width):
                terms["b"][0][j].append(g[j])
            for i in range(len(a)):
                for j in range(node.width):
                    dW = a[i] * g[j]
                    if chain is None:
                        terms["W"][i][j].append(dW)
                    else:
                        for name, row, column, slope in chain[(i, j)]:
                            terms[name][row][column].append(dW * slope)
        elif node.op == "scale":
            wide = node.params["s"].shape[1] > 1
            for j in range(node.width):
                terms["s"][0][j if wide else 0].append(a[j] * g[j])
        else:  # shift
            wide = node.params["t"].shape[1] > 1
            for j in range(node.width):
                terms["t"][0][j if wide else 0].append(g[j])
        return
    if family == "elementwise":
        z, target = args[0], adjoints[node.inputs[0]]
        if node.activation.elementwise:
            first = node.activation.derivative(1)
            for j in range(node.width):
                target[j].append(g[j] * first.xreplace({T: z[j]}))
        else:  # softmax, log_softmax: their layer rule
            for j, share in enumerate(node.activation.layer_vjp(z, g)):
                target[j].append(share)
        return
    # bilinear: a * b unit by unit, a width-1 input broadcast (its adjoint sums over the units)
    (a, b), (name_a, name_b) = args, node.inputs
    for j in range(node.width):
        ia, ib = (0 if len(a) == 1 else j), (0 if len(b) == 1 else j)
        adjoints[name_a][ia].append(g[j] * b[ib])
        adjoints[name_b][ib].append(g[j] * a[ia])
