"""Parameter gradients, loss kernels and training on graph networks, against independent computations.

Oracles: ``sympy.diff`` of the flat loss built from ``net.outputs`` (30 digits), PyTorch autograd
in float64 on the same networks written out by hand, and finite differences of the loss.
"""

import numpy as np
import pytest
import sympy
import torch

import symnet
from symnet.kernels._sobolev import GraphSobolevLoss, SobolevLoss
from symnet.errors import InputError, ShapeError, WeightError
from symnet.graph import activation, blend, concat, dense, fourier_features, input, layer_norm, network, scale, shift

DIGITS = 30


def F(value):
    return sympy.Float(float(value), DIGITS)


def symbols(name, rows, cols):
    return sympy.ImmutableMatrix(rows, cols, lambda i, j: sympy.Symbol(f"{name}_{i}_{j}", real=True))


def small_graph(last=None):
    """Residual + mul + a trainable scalar alpha + a weight-normalised dense output, all symbolic."""
    x = input(2)
    h = dense(x, 2, "tanh")
    gate = dense(x, 2, "sigmoid")
    h = h + dense(h, 2, "tanh")
    h = scale(h * gate, sympy.Symbol("alpha", real=True), name="alpha")
    out = dense(h, 2, parametrization="weight_norm", v=symbols("v", 2, 2), g=symbols("g", 1, 2),
                bias=symbols("c", 1, 2)[0, :], name="wn")
    return network(x, out if last is None else activation(out, last))


def flat_loss(net, loss, X, Y):
    """The loss from the closed form, point by point, as one SymPy expression."""
    total = 0
    for x, t in zip(X, Y):
        y = list(net.outputs.xreplace(dict(zip(net.inputs, x))))
        if loss == "mse":
            total += sum((yk - tk) ** 2 for yk, tk in zip(y, t)) / len(y)
        else:
            if loss == "softmax_cross_entropy":
                y = [sympy.exp(v) / sum(sympy.exp(u) for u in y) for v in y]
            total += -sum(tk * sympy.log(yk) for tk, yk in zip(t, y))
    return total / len(X)


def param_entries(net):
    """``(node, parameter, i, j, symbol)`` for every parameter entry of a symbolic graph."""
    for node in net.graph.nodes[1:]:
        for name, matrix in node.params.items():
            for i in range(matrix.shape[0]):
                for j in range(matrix.shape[1]):
                    yield node.name, name, i, j, matrix[i, j]


@pytest.mark.parametrize("loss, last", [("mse", None), ("softmax_cross_entropy", None),
                                        ("cross_entropy", "softmax")])
def test_param_grad_of_a_graph_matches_sympy_diff_of_the_flat_loss(loss, last):
    rng = np.random.default_rng(3)
    net = small_graph(last)
    entries = list(param_entries(net))
    assert {e[4] for e in entries} == set(net.params) and len(entries) == len(net.params)
    values = {symbol: F(rng.normal(scale=0.8)) for *_, symbol in entries}
    X = [[F(v) for v in row] for row in rng.normal(size=(2, 2))]
    Y = ([[F(v) for v in row] for row in rng.normal(size=(2, 2))] if loss == "mse"
         else [[F(v) for v in row] for row in rng.dirichlet([1, 1], size=2)])
    grads = symnet.param_grad(net.subs(values), loss, (np.array(X, dtype=object), np.array(Y, dtype=object)))
    assert set(grads) == {"z1", "z2", "z3", "alpha", "wn"}
    L = flat_loss(net, loss, X, Y)
    for node, name, i, j, symbol in entries:
        assert grads[node][name].shape == net.graph.by_name[node].params[name].shape
        exact = sympy.diff(L, symbol).xreplace(values).evalf(DIGITS)
        ours = grads[node][name][i, j]
        assert abs(ours - exact) <= sympy.Float(1e-24) * max(1, abs(exact)), (node, name, i, j, ours, exact)


def test_symbolic_param_grad_of_a_graph_is_the_formula():
    net = small_graph()
    rng = np.random.default_rng(5)
    x, t = [F(v) for v in rng.normal(size=2)], [F(v) for v in rng.normal(size=2)]
    grads = symnet.param_grad(net, "mse", ([x], [t]))  # formulas of the parameters
    L = flat_loss(net, "mse", [x], [t])
    values = {symbol: F(rng.normal(scale=0.8)) for symbol in net.params}
    for node, name, i, j, symbol in [e for e in param_entries(net) if e[0] in ("alpha", "wn", "z1")]:
        ours = grads[node][name][i, j].xreplace(values).evalf(DIGITS)
        exact = sympy.diff(L, symbol).xreplace(values).evalf(DIGITS)
        assert abs(ours - exact) <= sympy.Float(1e-24) * max(1, abs(exact)), (node, name, i, j)


def test_param_grad_of_a_chain_is_unchanged_list():
    net = symnet.Network.from_weights([[[2.0]]], [[0.0]], "linear")
    assert symnet.param_grad(net, "mse", ([[1.0]], [[3.0]])) == [(sympy.Matrix([[-2.0]]), sympy.Matrix([[-2.0]]))]


def zoo_graph(rng, last=None):
    """Every linear op, layer_norm, Fourier features, factorised and weight-normalised dense, gates."""
    def R(*shape):
        return rng.normal(scale=0.7, size=shape)
    x = input(2)
    h = dense(x, R(2, 3), R(3), "tanh")
    gate = dense(x, R(2, 3), R(3), "sigmoid")
    h = shift(scale(h + dense(h, R(3, 3), R(3), "tanh"), 0.7) * gate, R(3))
    h = layer_norm(h, R(3), R(3))
    h = blend(dense(h, R(3, 3), R(3), "silu"), h, 0.3)
    wn = dense(h, 2, parametrization="weight_norm", v=R(3, 2), g=R(2), bias=R(2))
    fac = dense(fourier_features(x, R(2, 2)), 1, parametrization="factorized", s=R(1), V=R(4, 1), bias=[0.3])
    out = concat(wn - fac, fac[0:1] * h[1])
    return network(x, out if last is None else activation(out, last))


@pytest.mark.parametrize("loss, last", [("mse", None), ("softmax_cross_entropy", None), ("cross_entropy", "softmax"),
                                        ("cross_entropy", "sigmoid"), ("mse", "softmax")])
def test_compile_loss_of_a_graph_matches_param_grad(loss, last):
    rng = np.random.default_rng(11)
    net = zoo_graph(rng, last)
    X = rng.normal(size=(5, 2))
    Y = rng.dirichlet([1, 1, 1], size=5) if loss != "mse" else rng.normal(size=(5, 3))
    exact = symnet.param_grad(net, loss, (X, Y))
    kernel = symnet.compile_loss(net, loss)
    assert isinstance(kernel, symnet.LossKernel)
    value, grads = kernel(X, Y)
    assert set(grads) == set(exact)
    for node in exact:
        assert set(grads[node]) == set(exact[node])
        for name, matrix in exact[node].items():
            np.testing.assert_allclose(grads[node][name], np.array(matrix.evalf(), dtype=float),
                                       rtol=1e-10, atol=1e-13, err_msg=f"{node}.{name}")
    # the loss itself, from the closed form
    outs = np.array([[float(v) for v in net.forward([sympy.Float(v) for v in x])] for x in X])
    if loss == "mse":
        expected = np.mean((outs - Y) ** 2)
    else:
        p = np.exp(outs) / np.exp(outs).sum(axis=1, keepdims=True) if loss == "softmax_cross_entropy" else outs
        expected = -np.mean(np.sum(Y * np.log(p), axis=1))
    assert value == pytest.approx(expected, rel=1e-12)


# --- against PyTorch autograd --------------------------------------------------------------------------


def residual_net(rng):
    P = {"d1": (rng.normal(size=(2, 4)), rng.normal(size=4) * 0.3),
         "d2": (rng.normal(size=(4, 4)) * 0.5, rng.normal(size=4) * 0.3),
         "d3": (rng.normal(size=(4, 4)) * 0.5, rng.normal(size=4) * 0.3),
         "out": (rng.normal(size=(4, 2)), rng.normal(size=2) * 0.3)}
    x = input(2)
    h = dense(x, *P["d1"], "tanh", name="d1")
    h = h + dense(h, *P["d2"], "tanh", name="d2")
    h = blend(dense(h, *P["d3"], "sin", name="d3"), h, 0.4)  # alpha * f + (1 - alpha) * h, alpha trainable
    net = network(x, dense(h, *P["out"], name="out"))

    def torch_net(x, T):
        h = torch.tanh(x @ T["d1"]["W"] + T["d1"]["b"])
        h = h + torch.tanh(h @ T["d2"]["W"] + T["d2"]["b"])
        f = torch.sin(h @ T["d3"]["W"] + T["d3"]["b"])
        h = T["alpha"] * (f - h) + h
        return h @ T["out"]["W"] + T["out"]["b"]
    alpha = next(n.name for n in net.graph.nodes if n.op == "scale")
    return net, torch_net, alpha


def gated_net(rng):
    """jaxpi's ModifiedMlp: gates u, v; each hidden layer h <- h * u + (1 - h) * v."""
    P = {k: (rng.normal(size=shape), rng.normal(size=shape[1]) * 0.3)
         for k, shape in {"u": (2, 3), "v": (2, 3), "d1": (2, 3), "d2": (3, 3), "out": (3, 2)}.items()}
    x = input(2)
    u, v = dense(x, *P["u"], "sigmoid", name="u"), dense(x, *P["v"], "sigmoid", name="v")
    h = dense(x, *P["d1"], "tanh", name="d1")
    h = h * u + (1 - h) * v
    h = dense(h, *P["d2"], "softplus", name="d2")
    h = h * u + (1 - h) * v
    net = network(x, dense(h, *P["out"], name="out"))

    def torch_net(x, T):
        u = torch.sigmoid(x @ T["u"]["W"] + T["u"]["b"])
        v = torch.sigmoid(x @ T["v"]["W"] + T["v"]["b"])
        h = torch.tanh(x @ T["d1"]["W"] + T["d1"]["b"])
        h = h * u + (1 - h) * v
        h = torch.nn.functional.softplus(h @ T["d2"]["W"] + T["d2"]["b"])
        h = h * u + (1 - h) * v
        return h @ T["out"]["W"] + T["out"]["b"]
    return net, torch_net, None


def torch_params(net, alpha=None):
    """The net's parameters as leaf tensors, ``{node: {name: tensor of the parameter's shape}}``."""
    T = {}
    for node in net.graph.nodes[1:]:
        for name, matrix in node.params.items():
            array = np.array(matrix.tolist(), dtype=float).reshape(matrix.shape)
            if node.op == "dense" and name == "b":
                array = array.reshape(-1)
            T.setdefault(node.name, {})[name] = torch.tensor(array, requires_grad=True)
    if alpha is not None:
        T["alpha"] = T[alpha]["s"]
    return T


@pytest.mark.parametrize("make", [residual_net, gated_net])
@pytest.mark.parametrize("loss", ["mse", "softmax_cross_entropy"])
def test_compile_loss_of_a_graph_matches_torch_autograd(make, loss):
    rng = np.random.default_rng(2)
    net, torch_net, alpha = make(rng)
    X = rng.normal(size=(50, 2))
    labels = rng.integers(0, 2, size=50)
    Y = rng.normal(size=(50, 2)) if loss == "mse" else labels
    value, grads = symnet.compile_loss(net, loss)(X, Y)
    T = torch_params(net, alpha)
    out = torch_net(torch.tensor(X), T)
    if loss == "mse":
        reference = torch.mean((out - torch.tensor(Y)) ** 2)
    else:
        reference = torch.nn.functional.cross_entropy(out, torch.tensor(labels))
    reference.backward()
    assert value == pytest.approx(reference.item(), rel=1e-13)
    for node, group in grads.items():
        for name, g in group.items():
            expected = T[node][name].grad.numpy().reshape(g.shape)
            np.testing.assert_allclose(g, expected, rtol=1e-11, atol=1e-14, err_msg=f"{node}.{name}")


def test_compile_loss_weights_of_another_graph_net():
    rng = np.random.default_rng(4)
    net, _, _ = residual_net(rng)
    other, _, _ = residual_net(np.random.default_rng(5))
    X, Y = rng.normal(size=(7, 2)), rng.normal(size=(7, 2))
    kernel = symnet.compile_loss(net, "mse")
    value, grads = kernel(X, Y, weights=other)
    value_other, grads_other = symnet.compile_loss(other, "mse")(X, Y)
    assert value == value_other and value != kernel(X, Y)[0]
    np.testing.assert_array_equal(grads["d2"]["W"], grads_other["d2"]["W"])
    as_dict = {n.name: {name: np.array(m.tolist(), dtype=float) for name, m in n.params.items()}
               for n in other.graph.nodes[1:] if n.params}
    assert kernel(X, Y, weights=as_dict)[0] == value
    gated, _, _ = gated_net(rng)
    with pytest.raises(ShapeError, match="same graph"):
        kernel(X, Y, weights=gated)
    with pytest.raises(ShapeError, match="same graph"):
        kernel(X, Y, weights=symnet.Network.from_weights([np.ones((2, 2))], None, "linear"))
    with pytest.raises(WeightError, match="symbolic"):
        symnet.compile_loss(small_graph(), "mse")(X, Y)


# --- fit -------------------------------------------------------------------------------------------------


def small_residual():
    x = input(1)
    h = dense(x, 6, "tanh")
    h = h + dense(h, 6, "tanh")
    return network(x, dense(h, 1))


def test_fit_a_graph_lowers_the_loss_and_is_deterministic():
    net = small_residual()
    X = np.linspace(-1, 1, 30)
    Y = np.sin(2 * X)
    first = symnet.fit(net, X, Y, seed=3, max_iter=60)
    again = symnet.fit(net, X, Y, seed=3, max_iter=60)
    other = symnet.fit(net, X, Y, seed=4, max_iter=60)
    assert first.history[-1] < 1e-2 * first.history[0]
    np.testing.assert_array_equal(first.history, again.history)
    assert first.net == again.net and first.net != other.net
    trained = first.net
    assert not trained.is_chain and trained.is_numeric
    structure = [(n.name, n.op, n.inputs) for n in net.graph.nodes]
    assert [(n.name, n.op, n.inputs) for n in trained.graph.nodes] == structure
    value, _ = symnet.compile_loss(trained, "mse")(X.reshape(-1, 1), Y)
    assert value == pytest.approx(first.loss, rel=1e-12)
    adam = symnet.fit(net, X, Y, optimizer="adam", lr=1e-2, max_iter=200, batch_size=8, seed=3)
    adam_again = symnet.fit(net, X, Y, optimizer="adam", lr=1e-2, max_iter=200, batch_size=8, seed=3)
    assert adam.history[-1] < 0.2 * adam.history[0]
    np.testing.assert_array_equal(adam.history, adam_again.history)


def test_fit_a_graph_starts_from_its_numbers_and_draws_by_role():
    x = input(1)
    alpha = sympy.Symbol("alpha", real=True)
    net = network(x, scale(dense(x, [[0.5]], [0.0], "tanh"), alpha, name="s"))
    weights_seen = []
    symnet.fit(net, [0.0, 1.0], [0.0, 0.5], max_iter=1, callback=lambda i, loss, w: weights_seen.append(w))
    assert set(weights_seen[0]) == {"z1", "s"}
    result = symnet.fit(net, [0.0, 1.0], [0.0, 0.5], max_iter=1)
    assert result.history[0] == pytest.approx(np.mean([0.0, (np.tanh(0.5) - 0.5) ** 2]), rel=1e-14)  # alpha = 1
    tied = network(x, scale(dense(x, [[alpha]], [0.0], "tanh"), alpha))
    with pytest.raises(InputError, match="tied"):
        symnet.fit(tied, [0.0, 1.0], [0.0, 0.5])


def sobolev_reference(torch_net, T, X, Y, DY, vw, dw):
    """The Sobolev loss by PyTorch: values and input Jacobians (create_graph), NaN targets skipped."""
    x = torch.tensor(X, requires_grad=True)
    out = torch_net(x, T)
    rows = [torch.autograd.grad(out[:, k].sum(), x, create_graph=True)[0] for k in range(out.shape[1])]
    J = torch.stack(rows, dim=1)  # (N, m, d)
    yv, dv = torch.tensor(Y), torch.tensor(DY)
    given_y, given_d = ~torch.isnan(yv), ~torch.isnan(dv)
    loss = vw * torch.mean((out - yv)[given_y] ** 2) + dw * torch.mean((J - dv)[given_d] ** 2)
    loss.backward()
    return loss.item()


@pytest.mark.parametrize("make", [residual_net, gated_net])
def test_graph_sobolev_loss_matches_torch_autograd(make):
    rng = np.random.default_rng(8)
    net, torch_net, alpha = make(rng)
    X = rng.normal(size=(40, 2))
    Y = rng.normal(size=(40, 2))
    DY = rng.normal(size=(40, 2, 2))
    Y[rng.random(Y.shape) < 0.3] = np.nan
    DY[rng.random(DY.shape) < 0.3] = np.nan
    loss = GraphSobolevLoss(net.graph, X, Y, DY, value_weight=0.7, derivative_weight=1.3)
    params = {n.name: {k: np.array(m.tolist(), dtype=float) for k, m in n.params.items()}
              for n in net.graph.nodes[1:] if n.params}
    value, grads = loss(params)
    T = torch_params(net, alpha)
    reference = sobolev_reference(torch_net, T, X, Y, DY, 0.7, 1.3)
    assert value == pytest.approx(reference, rel=1e-12)
    for node, group in grads.items():
        for name, g in group.items():
            expected = T[node][name].grad.numpy().reshape(g.shape)
            np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-13, err_msg=f"{node}.{name}")


def test_graph_sobolev_loss_of_a_chain_graph_is_the_chain_one():
    rng = np.random.default_rng(9)
    chain = symnet.Network.from_weights([rng.normal(size=(2, 3)), rng.normal(size=(3, 1))],
                                        [rng.normal(size=3), rng.normal(size=1)], ["tanh", "linear"])
    X, Y, DY = rng.normal(size=(20, 2)), rng.normal(size=(20, 1)), rng.normal(size=(20, 1, 2))
    value, grads = GraphSobolevLoss(chain.graph, X, Y, DY)(
        {n.name: {k: np.array(m.tolist(), dtype=float) for k, m in n.params.items()}
         for n in chain.graph.nodes[1:] if n.params})
    expected, pairs = SobolevLoss(chain.activations, X, Y, DY, reverse=False)(
        [(la.weight_array(), la.bias_array()) for la in chain.layers])
    assert value == pytest.approx(expected, rel=1e-13)
    for number, (dW, db) in enumerate(pairs, start=1):
        np.testing.assert_allclose(grads[f"z{number}"]["W"], dW, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(grads[f"z{number}"]["b"].reshape(-1), db, rtol=1e-12, atol=1e-15)


def test_fit_a_graph_on_derivative_targets():
    net = small_residual()
    X = np.linspace(-1, 1, 30)
    result = symnet.fit(net, X, np.full(30, np.nan), dy=2 * np.cos(2 * X), seed=1, max_iter=100)
    assert result.history[-1] < 1e-3 * result.history[0]
    slope = sympy.lambdify(result.net.inputs, symnet.diff(result.net, "x0"))
    assert np.max(np.abs(slope(X) - 2 * np.cos(2 * X))) < 0.05
    both = symnet.fit(net, X, np.sin(2 * X), dy=2 * np.cos(2 * X), seed=1, max_iter=100)
    assert both.history[-1] < 1e-3 * both.history[0]


def test_fit_a_graph_with_a_softmax_node_refuses_derivative_targets():
    x = input(2)
    net = network(x, activation(dense(x, 3) + dense(x, 3, "tanh"), "softmax"))
    X = np.random.default_rng(0).normal(size=(5, 2))
    with pytest.raises(InputError, match=r"softmax node acts on a whole layer; gradients through input derivatives \(dy targets in fit"):
        symnet.fit(net, X, dy=np.zeros((5, 3, 2)))
    with pytest.raises(InputError, match="need loss='mse'"):
        symnet.fit(net, X, [0, 1, 2, 0, 1], dy=np.zeros((5, 3, 2)), loss="cross_entropy")
    result = symnet.fit(net, X, [0, 1, 2, 0, 1], loss="cross_entropy", max_iter=20)
    assert result.history[-1] < result.history[0]


def test_graph_value_loss_with_gaps_is_the_loss_of_the_given_points():
    rng = np.random.default_rng(12)
    x = input(2)
    h = dense(x, rng.normal(size=(2, 3)), rng.normal(size=3), "tanh")
    h = activation(h + dense(h, rng.normal(size=(3, 3)), None, "sin"), "softmax")
    net = network(x, dense(h, rng.normal(size=(3, 1))))
    X, Y = rng.normal(size=(12, 2)), rng.normal(size=(12, 1))
    Y[[1, 4, 5]] = np.nan
    given = ~np.isnan(Y[:, 0])
    params = {n.name: {k: np.array(m.tolist(), dtype=float) for k, m in n.params.items()}
              for n in net.graph.nodes[1:] if n.params}
    value, grads = GraphSobolevLoss(net.graph, X, Y, None)(params)
    expected, expected_grads = symnet.compile_loss(net, "mse")(X[given], Y[given])
    assert value == pytest.approx(expected, rel=1e-13)
    for node, group in expected_grads.items():
        for name, g in group.items():
            np.testing.assert_allclose(grads[node][name], g, rtol=1e-12, atol=1e-15)
    result = symnet.fit(net, X, Y, max_iter=30)
    assert result.history[-1] < result.history[0]


@pytest.mark.parametrize("with_slopes", [False, True])
def test_fit_objective_of_a_graph_is_the_gradient_of_its_loss(with_slopes):
    from symnet.train import _GraphLayout, _Objective

    rng = np.random.default_rng(13)
    net, _, _ = gated_net(rng)
    X, Y = rng.normal(size=(9, 2)), rng.normal(size=(9, 2))
    DY = rng.normal(size=(9, 2, 2)) if with_slopes else None
    objective = _Objective(net, X, Y, DY, "mse", 0.7, 1.3)
    theta = _GraphLayout(net).start(np.random.default_rng(0))
    value, gradient = objective(theta)
    step = 1e-6
    for index in rng.choice(len(theta), size=12, replace=False):
        up, down = theta.copy(), theta.copy()
        up[index] += step
        down[index] -= step
        slope = (objective(up)[0] - objective(down)[0]) / (2 * step)
        assert gradient[index] == pytest.approx(slope, rel=1e-6, abs=1e-8), index
