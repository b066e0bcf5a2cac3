"""The numeric oracle (symnet.check) on graph networks: value, Jacobian, Hessian and loss gradients
against sympy.diff of the closed form at 30 digits, PyTorch autograd in float64 and finite
differences; verify on graphs; a wrong network is caught."""

import numpy as np
import pytest
import sympy
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symnet
from symnet import NotAChainError, WeightError
from symnet.check import GraphBackprop, backprop, finite_differences_params, verify
from symnet.check.backprop import forward, graph_numbers
from symnet.graph import (activation, blend, concat, dense, fourier_features, inner, input, layer_norm, mul,
                          network, normalize, rescale, rms_norm, scale, shift, softmax)



def evaluate(expr, symbols, point):
    """``expr`` at ``point`` in 30-digit arithmetic (SymPy's evalf on the exact binary point),
    independent of numpy; symnet's sigmoid and softplus written out as exp and log."""
    expr = sympy.sympify(expr).replace(symnet.sigmoid, lambda a: 1 / (1 + sympy.exp(-a)))
    expr = expr.replace(symnet.softplus, lambda a: sympy.log(1 + sympy.exp(a)))
    exact = expr.xreplace({s: sympy.Float(float(v), 30) for s, v in zip(symbols, point)}).evalf(30)
    return float(exact)

RNG = np.random.default_rng(20261206)


def weights(rng, fan_in, units, size=0.8):
    return rng.normal(scale=size, size=(fan_in, units)), rng.normal(scale=0.3, size=units)


# --- the nets: each returns (net, torch function of one point (d,) -> (m,) or None) -----------


def residual_net(rng=RNG):
    """h = tanh(x W1 + b1); h = h + tanh(h W2 + b2) (twice); y = h W3 + b3."""
    W1, b1 = weights(rng, 2, 3)
    blocks = [weights(rng, 3, 3) for _ in range(2)]
    W3, b3 = weights(rng, 3, 1)
    x = input(2)
    h = dense(x, W1, b1, "tanh")
    for W, b in blocks:
        h = h + dense(h, W, b, "tanh")
    net = network(x, dense(h, W3, b3))

    def f(x):
        h = torch.tanh(x @ torch.tensor(W1) + torch.tensor(b1))
        for W, b in blocks:
            h = h + torch.tanh(h @ torch.tensor(W) + torch.tensor(b))
        return h @ torch.tensor(W3) + torch.tensor(b3)

    return net, f


def gated_net(rng=RNG):
    """jaxpi's ModifiedMlp: u = sigmoid(x U + c), v = tanh(x V + d); h <- h * u + (1 - h) * v."""
    (U, c), (V, d), (W1, b1), (W2, b2), (W3, b3) = (weights(rng, 2, 3), weights(rng, 2, 3), weights(rng, 2, 3),
                                                    weights(rng, 3, 3), weights(rng, 3, 2))
    x = input(2)
    u, v = dense(x, U, c, "sigmoid"), dense(x, V, d, "tanh")
    h = dense(x, W1, b1, "sin")
    h = h * u + (1 - h) * v
    h = dense(h, W2, b2, "silu")
    h = h * u + (1 - h) * v
    net = network(x, dense(h, W3, b3))
    T = torch.tensor

    def f(x):
        u, v = torch.sigmoid(x @ T(U) + T(c)), torch.tanh(x @ T(V) + T(d))
        h = torch.sin(x @ T(W1) + T(b1))
        h = h * u + (1 - h) * v
        h = torch.nn.functional.silu(h @ T(W2) + T(b2))
        h = h * u + (1 - h) * v
        return h @ T(W3) + T(b3)

    return net, f


def concat_slice_net(rng=RNG):
    (W1, b1), (W2, b2), (W3, b3) = weights(rng, 2, 4), weights(rng, 3, 2), weights(rng, 3, 1)
    x = input(2)
    h = dense(x, W1, b1, "tanh")
    g = concat(h[0:2], x[1], activation(h[3], "square"))  # width 4 -> pieces of widths 2, 1, 1
    g = dense(g[1:4], W2, b2, "softplus")
    net = network(x, dense(concat(g, h[2]), W3, b3))
    T = torch.tensor

    def f(x):
        h = torch.tanh(x @ T(W1) + T(b1))
        g = torch.cat([h[0:2], x[1:2], h[3:4] ** 2])
        g = torch.nn.functional.softplus(g[1:4] @ T(W2) + T(b2))
        return torch.cat([g, h[2:3]]) @ T(W3) + T(b3)

    return net, f


def layer_norm_net(rng=RNG):
    (W1, b1), (W2, b2) = weights(rng, 2, 3), weights(rng, 3, 1)
    gamma, beta = rng.normal(size=3), rng.normal(scale=0.2, size=3)
    x = input(2)
    h = layer_norm(dense(x, W1, b1, "gelu"), gamma, beta)
    net = network(x, dense(h, W2, b2, "tanh"))
    T = torch.tensor

    def f(x):
        h = torch.nn.functional.gelu(x @ T(W1) + T(b1))
        h = torch.nn.functional.layer_norm(h, (3,), T(gamma), T(beta), eps=1e-5)
        return torch.tanh(h @ T(W2) + T(b2))

    return net, f


def weight_norm_net(rng=RNG):
    """SiLU MLP with weight-normalised dense layers, one factorised, an input normalisation."""
    v1, g1, b1 = rng.normal(size=(2, 3)), rng.normal(size=3), rng.normal(scale=0.3, size=3)
    V2, s2, b2 = rng.normal(size=(3, 2)), rng.normal(scale=0.3, size=2), rng.normal(scale=0.3, size=2)
    mu, sd = np.array([0.5, -0.2]), np.array([2.0, 0.5])
    x = input(2)
    h = dense(normalize(x, mu, sd), 3, b1, "silu", parametrization="weight_norm", v=v1, g=g1)
    h = dense(h, 2, b2, parametrization="factorized", s=s2, V=V2)
    net = network(x, h)
    T = torch.tensor

    def f(x):
        W1 = T(g1) * T(v1) / torch.sqrt((T(v1) ** 2).sum(0))
        h = torch.nn.functional.silu(((x - T(mu)) / T(sd)) @ W1 + T(b1))
        return h @ (torch.exp(T(s2)) * T(V2)) + T(b2)

    return net, f


def fourier_net(rng=RNG):
    B = rng.normal(size=(2, 3))
    (W1, b1), (W2, b2) = weights(rng, 6, 4), weights(rng, 4, 1)
    x = input(2)
    net = network(x, dense(dense(fourier_features(x, B), W1, b1, "tanh"), W2, b2))
    T = torch.tensor

    def f(x):
        p = x @ T(B)
        return torch.tanh(torch.cat([torch.cos(p), torch.sin(p)]) @ T(W1) + T(b1)) @ T(W2) + T(b2)

    return net, f


def two_heads_softmax_net(rng=RNG):
    """A trunk, a regression head and a softmax head, a PirateNet blend, an rms_norm and scale/shift."""
    (W1, b1), (W2, b2), (Wa, ba), (Wb, bb) = weights(rng, 2, 3), weights(rng, 3, 3), weights(rng, 3, 1), weights(rng, 3, 2)
    alpha, s, t = 0.3, rng.normal(size=3), rng.normal(size=3)
    x = input(2)
    h = dense(x, W1, b1, "tanh")
    h = blend(dense(h, W2, b2, "cos"), h, alpha)
    h = shift(scale(rms_norm(h), s), t)
    net = network(x, [dense(h, Wa, ba, "exp"), softmax(dense(h, Wb, bb))])
    T = torch.tensor

    def f(x):
        h = torch.tanh(x @ T(W1) + T(b1))
        h = alpha * torch.cos(h @ T(W2) + T(b2)) + (1 - alpha) * h
        h = h / torch.sqrt((h * h).mean() + 1e-6) * T(s) + T(t)
        return torch.cat([torch.exp(h @ T(Wa) + T(ba)), torch.softmax(h @ T(Wb) + T(bb), dim=-1)])

    return net, f


def deeponet_net(rng=RNG):
    """Branch on 2 sensor values, trunk on 1 coordinate, their inner product; a width-1 broadcast."""
    (Wb, bb), (Wt, bt), (Ws, bs) = weights(rng, 2, 3), weights(rng, 1, 3), weights(rng, 3, 1)
    sensors, coordinate = input(2), input(1)
    branch = dense(sensors, Wb, bb, "tanh")
    trunk = dense(coordinate, Wt, bt, "sin")
    gate = dense(trunk, Ws, bs, "sigmoid")  # width 1, broadcast against width 3
    net = network([sensors, coordinate], rescale(inner(branch, trunk * gate) - gate, 2.0, 0.5))
    T = torch.tensor

    def f(x):
        branch = torch.tanh(x[0:2] @ T(Wb) + T(bb))
        trunk = torch.sin(x[2:3] @ T(Wt) + T(bt))
        gate = torch.sigmoid(trunk @ T(Ws) + T(bs))
        return ((branch * (trunk * gate)).sum(-1, keepdim=True) - gate) * 2.0 + 0.5

    return net, f


NETS = {"residual": residual_net, "gated": gated_net, "concat_slice": concat_slice_net,
        "layer_norm": layer_norm_net, "weight_norm": weight_norm_net, "fourier": fourier_net,
        "two_heads_softmax": two_heads_softmax_net, "deeponet": deeponet_net}


def torch_derivatives(f, X, m):
    value = np.stack([f(x).numpy() for x in torch.tensor(X)])
    jacobian = np.stack([torch.autograd.functional.jacobian(f, x).numpy() for x in torch.tensor(X)])
    hessian = np.stack([[torch.autograd.functional.hessian(lambda x, k=k: f(x)[k], x).numpy() for k in range(m)]
                        for x in torch.tensor(X)])
    return value, jacobian, hessian


@pytest.mark.parametrize("name", sorted(NETS))
def test_oracle_matches_torch_autograd_within_its_roundoff_bound(name):
    net, f = NETS[name](np.random.default_rng(len(name)))
    assert not net.is_chain
    X = np.random.default_rng(1).normal(size=(4, net.n_inputs))
    result = backprop(net, X, hessian=True, roundoff=True)
    assert isinstance(result, GraphBackprop)
    m, d = net.n_outputs, net.n_inputs
    assert result.value.shape == (4, m) and result.jacobian.shape == (4, m, d) and result.hessian.shape == (4, m, d, d)
    for got, want, bound in zip((result.value, result.jacobian, result.hessian), torch_derivatives(f, X, m),
                                (result.roundoff.value, result.roundoff.jacobian, result.roundoff.hessian)):
        # torch rounds differently: both within the oracle's bound of the truth
        assert np.all(np.abs(got - want) <= 2 * bound + 1e-300), np.max(np.abs(got - want) / bound)
        assert np.all(bound < 1e-6 * np.maximum(1.0, np.abs(want)))
    np.testing.assert_array_equal(forward(net, X), result.value)
    np.testing.assert_array_equal(backprop(net, X).jacobian, result.jacobian)


@pytest.mark.parametrize("name", ["residual", "gated", "concat_slice", "layer_norm", "weight_norm", "fourier",
                                  "two_heads_softmax", "deeponet"])
def test_oracle_matches_sympy_diff_of_the_closed_form_at_30_digits(name):
    net, _ = NETS[name](np.random.default_rng(7 * len(name)))
    point = np.random.default_rng(2).uniform(-1, 1, net.n_inputs)
    result = backprop(net, point, hessian=True, roundoff=True)
    xs = net.inputs
    for k in range(net.n_outputs):
        expr = net.outputs[k]
        assert abs(result.value[k] - evaluate(expr, xs, point)) <= result.roundoff.value[k]
        for i in range(net.n_inputs):
            first = sympy.diff(expr, xs[i])
            assert abs(result.jacobian[k, i] - evaluate(first, xs, point)) <= result.roundoff.jacobian[k, i]
            for j in range(i, net.n_inputs):
                exact = evaluate(sympy.diff(first, xs[j]), xs, point)
                assert abs(result.hessian[k, i, j] - exact) <= result.roundoff.hessian[k, i, j]
                assert abs(result.hessian[k, j, i] - result.hessian[k, i, j]) <= result.roundoff.hessian[k, i, j]


def test_oracle_matches_symnet_closed_form_derivatives():
    """symnet.hessian (the chain-rule program) and the oracle, at 30 digits and in float64."""
    net, _ = gated_net(np.random.default_rng(3))
    point = np.array([0.3, -0.8])
    result = backprop(net, point, hessian=True, roundoff=True)
    for k in range(net.n_outputs):
        H = symnet.hessian(net, output=k)
        for i in range(2):
            for j in range(2):
                assert abs(result.hessian[k, i, j] - evaluate(H[i, j], net.inputs, point)) <= \
                    result.roundoff.hessian[k, i, j]


@pytest.mark.parametrize("name", ["residual", "gated", "layer_norm", "two_heads_softmax", "deeponet"])
def test_verify_passes_on_graphs(name):
    net, _ = NETS[name](np.random.default_rng(11))
    report = verify(net, n_points=4)
    assert report.ok, report.message() + "\n" + repr(report)
    assert report.n_checked == 4 and len(report.comparisons) == 7 * net.n_outputs
    assert isinstance(report.backprop, GraphBackprop)


def perturbed(net, node_name, param, delta):
    """The same graph with one parameter entry moved by ``delta``."""
    graph = net.graph
    nodes = []
    for node in graph.nodes[1:]:
        params = dict(node.params)
        if node.name == node_name:
            matrix = params[param].as_mutable()
            matrix[0, 0] += delta
            params[param] = sympy.ImmutableMatrix(matrix)
        nodes.append(symnet.graph.Node(node.name, node.op, node.inputs, params, dict(node.attrs), node.width))
    return symnet.Network.from_graph(symnet.graph.Graph(graph.inputs, nodes, graph.output))


@pytest.mark.parametrize("name, node, param", [("residual", "z2", "W"), ("gated", "z4", "b"),
                                               ("weight_norm", "z1", "g")])
def test_a_wrong_network_in_the_oracle_call_fails_verify(name, node, param):
    """The kernel passed to verify is the oracle of a network with one weight moved by 1e-6: caught,
    and the exact side is the odd one out."""
    net, _ = NETS[name](np.random.default_rng(5))
    wrong = perturbed(net, node, param, 1e-6)
    report = verify(net, n_points=4, kernel=lambda X: backprop(wrong, X, hessian=True))
    assert not report.ok
    assert {(c.derivative, c.first, c.second) for c in report.failures} >= {("value", "exact", "backprop")}
    assert "exact" in report.message()
    assert verify(net, n_points=4, kernel=lambda X: backprop(net, X, hessian=True)).ok


def test_a_wrong_numpy_derivative_in_a_graph_is_caught():
    wrong = symnet.Activation("tanh_wrong_graph", symnet.activations.get("tanh").form, np.tanh,
                              lambda z: 1 - np.tanh(z), lambda z: -2 * np.tanh(z) * (1 - np.tanh(z) ** 2))
    symnet.activations.register("tanh_wrong_graph", wrong)
    try:
        x = input(2)
        h = dense(x, [[0.7, -1.2], [0.4, 0.9]], [0.1, 0.0], "tanh_wrong_graph")
        net = network(x, dense(h * h + h, [[1.0], [2.0]], [0.0]))
        report = verify(net, n_points=4)
        assert not report.ok
        assert "backprop disagrees with the other two, which agree" in report.message()
    finally:
        symnet.activations.unregister("tanh_wrong_graph")


# --- loss gradients ----------------------------------------------------------------------------


LOSSES = [("residual", "mse"), ("gated", "mse"), ("weight_norm", "mse"), ("two_heads_softmax", "mse"),
          ("layer_norm", "mse"), ("deeponet", "mse")]


def torch_loss_grads(net, X, t, loss):
    """Gradients by torch autograd of the loss with every parameter a leaf tensor, float64."""
    leaves = {node.name: {k: torch.tensor(np.array(v.tolist(), dtype=float), requires_grad=True)
                          for k, v in node.params.items()} for node in net.graph.nodes[1:] if node.params}
    values = {"x": torch.tensor(X)}
    for node in net.graph.nodes[1:]:
        a = [values[n] for n in node.inputs]
        p = leaves.get(node.name, {})
        op = node.op
        if op == "dense":
            kind = node.attrs.get("parametrization", "plain")
            W = (p["W"] if kind == "plain" else p["g"] * p["v"] / torch.sqrt((p["v"] ** 2).sum(0)) if
                 kind == "weight_norm" else torch.exp(p["s"]) * p["V"])
            y = a[0] @ W + p["b"]
        elif op == "matmul":
            y = a[0] @ torch.tensor(np.array(node.attrs["matrix"].tolist(), dtype=float))
        elif op in ("add", "sub", "mul"):
            y = a[0] + a[1] if op == "add" else a[0] - a[1] if op == "sub" else a[0] * a[1]
        elif op == "scale":
            y = a[0] * p["s"]
        elif op == "shift":
            y = a[0] + p["t"]
        elif op == "rescale":
            row = lambda name: torch.tensor(np.array(node.attrs[name].tolist(), dtype=float))  # noqa: E731
            y = a[0] * row("scale") + row("offset")
        elif op == "concat":
            y = torch.cat(a, dim=1)
        elif op == "slice":
            y = a[0][:, node.attrs["start"]:node.attrs["stop"]]
        elif op in ("sum", "mean"):
            y = a[0].sum(1, keepdim=True) if op == "sum" else a[0].mean(1, keepdim=True)
        else:
            functions = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "sin": torch.sin, "cos": torch.cos,
                         "exp": torch.exp, "silu": torch.nn.functional.silu, "gelu": torch.nn.functional.gelu,
                         "softmax": lambda z: torch.softmax(z, dim=-1)}
            if node.activation.name not in functions:  # the only other one the nets use: LayerNorm's 1/sqrt
                assert node.activation.form == 1 / sympy.sqrt(symnet.activations.T), node.activation
            y = functions.get(node.activation.name, lambda z: 1 / torch.sqrt(z))(a[0])
        values[node.name] = y
    y = values[net.graph.output]
    T = torch.tensor(t)
    if loss == "mse":
        value = ((y - T) ** 2).mean()
    elif loss == "cross_entropy":
        value = -(T * torch.log(y)).sum() / len(y)
    else:
        value = -(T * torch.log_softmax(y, dim=1)).sum() / len(y)
    value.backward()
    return float(value.detach()), {node: {k: leaf.grad.numpy() for k, leaf in params.items()} for node, params in leaves.items()}


@pytest.mark.parametrize("name, loss", LOSSES)
def test_parameter_gradients_match_torch_autograd(name, loss):
    net, _ = NETS[name](np.random.default_rng(13))
    rng = np.random.default_rng(4)
    X, t = rng.normal(size=(5, net.n_inputs)), rng.normal(size=(5, net.n_outputs))
    result = backprop(net, X, loss=loss, targets=t)
    value, grads = torch_loss_grads(net, X, t, loss)
    assert result.loss == pytest.approx(value, rel=1e-13)
    assert set(result.param_grads) == set(grads)
    for node, params in grads.items():
        assert set(result.param_grads[node]) == set(params)
        for k, g in params.items():
            assert result.param_grads[node][k].shape == tuple(net.graph.by_name[node].params[k].shape)
            np.testing.assert_allclose(result.param_grads[node][k], g, rtol=1e-11, atol=1e-14, err_msg=f"{node}.{k}")


def test_cross_entropy_on_a_softmax_output_and_logits():
    rng = np.random.default_rng(8)
    (W1, b1), (W2, b2) = weights(rng, 2, 3), weights(rng, 3, 3)
    x = input(2)
    h = dense(x, W1, b1, "tanh")
    logits = dense(h + h * h, W2, b2)
    X, labels = rng.normal(size=(4, 2)), np.array([0, 2, 1, 2])
    onehot = np.eye(3)[labels]
    for net, loss in ((network(x, softmax(logits)), "cross_entropy"), (network(x, logits), "softmax_cross_entropy")):
        result = backprop(net, X, loss=loss, targets=labels)
        value, grads = torch_loss_grads(net, X, onehot, loss)
        assert result.loss == pytest.approx(value, rel=1e-13)
        for node, params in grads.items():
            for k, g in params.items():
                np.testing.assert_allclose(result.param_grads[node][k], g, rtol=1e-11, atol=1e-14)


def test_parameter_gradients_match_finite_differences():
    net, _ = gated_net(np.random.default_rng(21))
    rng = np.random.default_rng(6)
    X, t = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    result = backprop(net, X, loss="mse", targets=t)
    W = np.array(net.graph.by_name["z4"].params["W"].tolist(), dtype=float)

    def loss_of(matrix):
        moved = perturbed(net, "z4", "W", 0)  # same graph, then W replaced
        nodes = [symnet.graph.Node(n.name, n.op, n.inputs, {**n.params, "W": sympy.ImmutableMatrix(matrix)}
                                   if n.name == "z4" else dict(n.params), dict(n.attrs), n.width)
                 for n in moved.graph.nodes[1:]]
        changed = symnet.Network.from_graph(symnet.graph.Graph(net.inputs, nodes, net.graph.output))
        return backprop(changed, X, loss="mse", targets=t).loss

    fd = finite_differences_params(loss_of, W)
    assert np.all(np.abs(fd.derivative - result.param_grads["z4"]["W"]) <= fd.error + 1e-14)


# --- chains are unchanged; chain-only quantities refuse graphs -----------------------------------


def test_chain_only_quantities_raise_not_a_chain_error():
    net, _ = residual_net(np.random.default_rng(0))
    result = backprop(net, np.zeros((2, 2)))
    with pytest.raises(NotAChainError, match="preactivations are per layer of a chain"):
        result.preactivations
    with pytest.raises(NotAChainError, match="result.node_jacobians"):
        result.preactivation_jacobians
    assert result.nodes["a1"].shape == (2, 3) and result.node_jacobians["z1"].shape == (2, 3, 2)
    single = backprop(net, np.zeros(2), hessian=True, roundoff=True)
    assert single.value.shape == (1,) and single.hessian.shape == (1, 2, 2) and single.nodes["z1"].shape == (3,)
    assert single.roundoff.hessian.shape == (1, 2, 2)


def test_a_chain_built_as_a_graph_gives_the_chain_numbers_bit_for_bit():
    rng = np.random.default_rng(9)
    (W1, b1), (W2, b2) = weights(rng, 2, 3), weights(rng, 3, 1)
    x = input(2)
    chain = network(x, dense(dense(x, W1, b1, "tanh"), W2, b2))
    assert chain.is_chain
    # the same maths as a graph (an identity rescale makes it one): every number agrees to round-off
    graph = network(x, dense(rescale(dense(x, W1, b1, "tanh"), 1, 0), W2, b2))
    assert not graph.is_chain
    X = rng.normal(size=(3, 2))
    a, b = backprop(chain, X, hessian=True), backprop(graph, X, hessian=True)
    for name in ("value", "jacobian", "hessian"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_symbolic_graph_weights_are_refused():
    x = input(1)
    net = network(x, dense(x, 2, "tanh") * x)
    with pytest.raises(WeightError, match=r"node 'z1' \(dense\): W is symbolic .*substitute numbers"):
        backprop(net, [1.0])


def test_graph_numbers_compute_parametrised_weights():
    net, _ = weight_norm_net(np.random.default_rng(1))
    numbers = graph_numbers(net.graph)
    v = np.array(net.graph.by_name["z1"].params["v"].tolist(), dtype=float)
    np.testing.assert_allclose(np.linalg.norm(numbers["z1"]["W"], axis=0),
                               np.abs(np.array(net.graph.by_name["z1"].params["g"].tolist(), dtype=float)[0]))
    np.testing.assert_allclose(numbers["z1"]["W"] / np.linalg.norm(numbers["z1"]["W"], axis=0),
                               v / np.linalg.norm(v, axis=0) * np.sign(numbers["z1"]["g"]), rtol=1e-14)


# --- random gated/residual graphs against torch (hypothesis) --------------------------------------


@st.composite
def random_graphs(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    d, w, depth = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    acts = [draw(st.sampled_from(["tanh", "sigmoid", "sin", "silu", "softplus", "gelu"])) for _ in range(depth)]
    kinds = [draw(st.sampled_from(["residual", "gate", "blend"])) for _ in range(depth)]
    W0, b0 = weights(rng, d, w)
    layers = [weights(rng, w, w) for _ in range(depth)]
    Wo, bo = weights(rng, w, 2)
    x = input(d)
    h = dense(x, W0, b0, "tanh")
    gate = dense(x, *weights(rng, d, w), "sigmoid")
    for (W, b), act, kind in zip(layers, acts, kinds):
        f = dense(h, W, b, act)
        h = h + f if kind == "residual" else f * gate + (1 - f) * h if kind == "gate" else blend(f, h, 0.4)
    return network(x, dense(h, Wo, bo)), rng.normal(size=(2, d))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=random_graphs())
def test_random_residual_and_gated_graphs_verify(case):
    net, X = case
    report = verify(net, X, kernel="lambdify")
    assert report.ok, report.message() + "\n" + repr(report)
