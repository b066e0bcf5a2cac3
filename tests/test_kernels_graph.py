"""symnet.compile on graph networks: the expression strategy, both backends, against the closed form
(sympy.diff of the flat output, 30 digits) and PyTorch autograd (float64), and the cache key."""

from __future__ import annotations

import pickle
import warnings

import mpmath
import numpy as np
import pytest
import sympy
import torch

import symnet
from symnet import kernels
from symnet.graph import (blend, concat, dense, fourier_features, inner, input, layer_norm, log_softmax, network,
                          normalize, scale, shift, softmax)


WORDS = ("value", "jacobian", "hessian", "laplacian", (0, 0, 1))


def _t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64))


# --- the zoo: each entry builds a symnet graph and the same function in PyTorch from one set of weights ---------


def residual(rng):
    W1, b1, W2, b2, W3, b3 = (rng.normal(scale=0.8, size=s) for s in [(2, 3), 3, (3, 3), 3, (3, 1), 1])
    x = input(2)
    h = dense(x, W1, b1, "tanh")
    h = h + dense(h, W2, b2, "tanh")
    net = network(x, dense(h, W3, b3))

    def f(x):
        h = torch.tanh(x @ _t(W1) + _t(b1))
        h = h + torch.tanh(h @ _t(W2) + _t(b2))
        return h @ _t(W3) + _t(b3)
    return net, f


def gated(rng):
    U, c, V, d, W1, b1, W2, b2 = (rng.normal(scale=0.8, size=s) for s in [(2, 3), 3, (2, 3), 3, (2, 3), 3, (3, 1), 1])
    x = input(2)
    u, v = dense(x, U, c, "tanh"), dense(x, V, d, "tanh")
    h = dense(x, W1, b1, "tanh")
    h = h * u + (1 - h) * v
    net = network(x, dense(h, W2, b2))

    def f(x):
        u, v = torch.tanh(x @ _t(U) + _t(c)), torch.tanh(x @ _t(V) + _t(d))
        h = torch.tanh(x @ _t(W1) + _t(b1))
        return (h * u + (1 - h) * v) @ _t(W2) + _t(b2)
    return net, f


def concat_slice(rng):
    W1, b1, W2, b2, W3, b3 = (rng.normal(scale=0.8, size=s) for s in [(2, 3), 3, (2, 2), 2, (3, 1), 1])
    x = input(2)
    c = concat(dense(x, W1, b1, "tanh"), dense(x, W2, b2, "sin"))
    net = network(x, dense(c[1:4], W3, b3) + c[0])

    def f(x):
        c = torch.cat([torch.tanh(x @ _t(W1) + _t(b1)), torch.sin(x @ _t(W2) + _t(b2))])
        return c[1:4] @ _t(W3) + _t(b3) + c[0:1]
    return net, f


def layer_normed(rng):
    W1, b1, gamma, beta, W2, b2 = (rng.normal(scale=0.8, size=s) for s in [(2, 3), 3, 3, 3, (3, 1), 1])
    x = input(2)
    h = layer_norm(dense(x, W1, b1, "tanh"), gamma, beta)
    net = network(x, dense(h, W2, b2))

    def f(x):
        h = torch.tanh(x @ _t(W1) + _t(b1))
        # written out: torch.nn.functional.layer_norm's third derivative by nested autograd is wrong
        # (torch 2.13 CPU; finite differences of its Hessian agree with the closed form, not with it)
        c = h - h.mean()
        h = c / torch.sqrt((c * c).mean() + 1e-5) * _t(gamma) + _t(beta)
        return h @ _t(W2) + _t(b2)
    return net, f


def weight_normed(rng):
    v, g, b1, s, V, b2 = (rng.normal(scale=0.8, size=sh) for sh in [(2, 3), 3, 3, 1, (3, 1), 1])
    x = input(2)
    h = dense(x, 3, b1, "silu", parametrization="weight_norm", v=v, g=g)
    net = network(x, dense(h, 1, b2, parametrization="factorized", s=s, V=V))

    def f(x):
        W1 = _t(g) * _t(v) / torch.linalg.vector_norm(_t(v), dim=0)
        h = torch.nn.functional.silu(x @ W1 + _t(b1))
        return h @ (torch.exp(_t(s)) * _t(V)) + _t(b2)
    return net, f


def fourier(rng):
    B, W1, b1, W2, b2 = (rng.normal(scale=0.8, size=s) for s in [(2, 2), (4, 3), 3, (3, 1), 1])
    x = input(2)
    h = dense(fourier_features(x, B), W1, b1, "tanh")
    net = network(x, dense(h, W2, b2))

    def f(x):
        p = x @ _t(B)
        h = torch.tanh(torch.cat([torch.cos(p), torch.sin(p)]) @ _t(W1) + _t(b1))
        return h @ _t(W2) + _t(b2)
    return net, f


def two_heads(rng):
    mean, std = np.array([0.5, -0.2]), np.array([2.0, 0.5])
    W1, b1, W2, b2, W3, b3 = (rng.normal(scale=0.8, size=s) for s in [(2, 3), 3, (3, 1), 1, (3, 1), 1])
    x = input(2)
    h = dense(normalize(x, mean, std), W1, b1, "tanh")
    net = network(x, [dense(h, W2, b2), dense(h, W3, b3, "sigmoid")])

    def f(x):
        h = torch.tanh(((x - _t(mean)) / _t(std)) @ _t(W1) + _t(b1))
        return torch.cat([h @ _t(W2) + _t(b2), torch.sigmoid(h @ _t(W3) + _t(b3))])
    return net, f


def _layer_wise(mine, theirs):
    """softmax(x W1 + b1) * tanh(x W2 + b2), by ``mine`` (symnet's builder) and ``theirs`` (torch)."""
    def make(rng):
        W1, b1, W2, b2 = (rng.normal(scale=0.8, size=s) for s in [(2, 3), 3, (2, 3), 3])
        x = input(2)
        net = network(x, mine(dense(x, W1, b1)) * dense(x, W2, b2, "tanh"))

        def f(x):
            return theirs(x @ _t(W1) + _t(b1), dim=0) * torch.tanh(x @ _t(W2) + _t(b2))
        return net, f
    make.__name__ = mine.__name__ + "ed"
    return make


softmaxed = _layer_wise(softmax, torch.softmax)
log_softmaxed = _layer_wise(log_softmax, torch.log_softmax)


def sigmoid_silu(rng):
    W1, b1, W2, b2, W3, b3 = (rng.normal(scale=0.8, size=s) for s in [(2, 3), 3, (3, 3), 3, (3, 1), 1])
    alpha, s, t = 0.3, 1.7, -0.4
    x = input(2)
    h = dense(x, W1, b1, "sigmoid")
    h = blend(dense(h, W2, b2, "silu"), h, alpha)
    net = network(x, shift(scale(dense(h, W3, b3), s), t))

    def f(x):
        h = torch.sigmoid(x @ _t(W1) + _t(b1))
        h = alpha * torch.nn.functional.silu(h @ _t(W2) + _t(b2)) + (1 - alpha) * h
        return (h @ _t(W3) + _t(b3)) * s + t
    return net, f


def deeponet(rng):
    Wb, bb, Wt, bt = (rng.normal(scale=0.8, size=s) for s in [(2, 3), 3, (1, 3), 3])
    u, y = input(2), input(1)
    net = network([u, y], inner(dense(u, Wb, bb, "tanh"), dense(y, Wt, bt, "tanh")))

    def f(x):
        return (torch.tanh(x[:2] @ _t(Wb) + _t(bb)) * torch.tanh(x[2:] @ _t(Wt) + _t(bt))).sum().reshape(1)
    return net, f


ZOO = [residual, gated, concat_slice, layer_normed, weight_normed, fourier, two_heads, softmaxed, log_softmaxed,
       sigmoid_silu, deeponet]


def zoo(make, seed=0):
    return make(np.random.default_rng(seed))


# --- the two independent references ----------------------------------------------------------------------------


def closed_form(net, X):
    """value, Jacobian, Hessian and d^3/dx0^2 dx1 from sympy.diff of the flat output, in 30 digits."""
    xs = net.inputs
    d, m = net.n_inputs, net.n_outputs
    exprs = {}
    for k in range(m):
        y = net.outputs[k]
        exprs[k, ()] = y
        for i in range(d):
            exprs[k, (i,)] = sympy.diff(y, xs[i])
            for j in range(i, d):
                exprs[k, (i, j)] = sympy.diff(exprs[k, (i,)], xs[j])
        exprs[k, (0, 0, 1)] = sympy.diff(exprs[k, (0, 0)], xs[1])
    fns = {key: sympy.lambdify(xs, e, "mpmath") for key, e in exprs.items()}
    out = {"value": np.zeros((len(X), m)), "jacobian": np.zeros((len(X), m, d)),
           "hessian": np.zeros((len(X), m, d, d)), (0, 0, 1): np.zeros((len(X), m))}
    with mpmath.workdps(30):
        for p, x in enumerate(X):
            args = [mpmath.mpf(float(v)) for v in x]
            for k in range(m):
                out["value"][p, k] = float(fns[k, ()](*args))
                for i in range(d):
                    out["jacobian"][p, k, i] = float(fns[k, (i,)](*args))
                    for j in range(i, d):
                        out["hessian"][p, k, i, j] = out["hessian"][p, k, j, i] = float(fns[k, (i, j)](*args))
                out[(0, 0, 1)][p, k] = float(fns[k, (0, 0, 1)](*args))
    out["laplacian"] = np.trace(out["hessian"], axis1=2, axis2=3)
    return out


def autograd(f, X, m):
    """The same quantities by nested PyTorch autograd in float64."""
    out = {"value": [], "jacobian": [], "hessian": [], (0, 0, 1): []}
    for x in X:
        x = torch.tensor(x, requires_grad=True)
        y = f(x)
        out["value"].append(y.detach().numpy())
        jac, hes, third = [], [], []
        for k in range(m):
            (g,) = torch.autograd.grad(y[k], x, create_graph=True)
            rows = [torch.autograd.grad(g[i], x, create_graph=True)[0] for i in range(len(x))]
            (t,) = torch.autograd.grad(rows[0][0], x, retain_graph=True)
            jac.append(g.detach().numpy())
            hes.append(torch.stack(rows).detach().numpy())
            third.append(t[1].item())
        out["jacobian"].append(jac)
        out["hessian"].append(hes)
        out[(0, 0, 1)].append(third)
    out = {key: np.array(v) for key, v in out.items()}
    out["laplacian"] = np.trace(out["hessian"], axis1=2, axis2=3)
    return out


def assert_close(got, want, rel):
    scale = max(1.0, float(np.max(np.abs(want))))
    err = float(np.max(np.abs(np.asarray(got, np.float64) - want)))
    assert err <= rel * scale, (err, rel * scale)


def points(net, n=3, seed=1):
    return np.random.default_rng(seed).uniform(-1.2, 1.2, (n, net.n_inputs))


# --- results ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", ZOO, ids=[m.__name__ for m in ZOO])
def test_graph_kernels_agree_with_the_closed_form_and_autograd(make):
    net, f = zoo(make)
    assert not net.is_chain
    X = points(net)
    exact = closed_form(net, X)
    torch_ = autograd(f, X, net.n_outputs)
    for name in ("value", "jacobian", "hessian", "laplacian", (0, 0, 1)):
        assert_close(torch_[name], exact[name], 1e-12)  # the two references agree with each other
    for backend, strategy in [(b, s) for b in ("numpy", "numba") for s in ("expression", "layered")]:
        # a serial loop compiles faster
        kernel = symnet.compile(net, WORDS, backend=backend, parallel=False, strategy=strategy)
        assert kernel.strategy == strategy and (kernel.schedule is None) == (strategy == "expression")
        result = kernel(X)
        for name in ("value", "jacobian", "hessian", "laplacian", (0, 0, 1)):
            got = result[name]
            assert got.shape == exact[name].shape
            assert_close(got, exact[name], 1e-12)
            assert_close(got, torch_[name], 1e-12)


@pytest.mark.parametrize("make", [residual, layer_normed, weight_normed, softmaxed, log_softmaxed])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_float32_graph_kernels(make, backend):
    net, _ = zoo(make, seed=2)
    X = points(net, seed=3)
    exact = closed_form(net, X)
    result = symnet.compile(net, ("value", "gradient", "hessian"), backend=backend, dtype=np.float32,
                            parallel=False)(X)
    assert result.value.dtype == result.jacobian.dtype == result.hessian.dtype == np.float32
    for name in ("value", "jacobian", "hessian"):
        assert_close(result[name], exact[name], 1e-4)


def test_single_points_partials_by_name_and_out():
    net, f = zoo(deeponet)
    kernel = symnet.compile(net, ["value", ("x0", "x2"), (2, 2)], backend="numpy")
    x = np.array([0.3, -0.5, 0.8])
    result = kernel(x)
    assert result.value.shape == (1,) and result[(0, 2)].shape == (1,)
    torch_ = autograd(f, x[None], 1)
    assert result[(2, 0)][0] == pytest.approx(torch_["hessian"][0, 0, 0, 2], rel=1e-12)
    assert result[(2, 2)][0] == pytest.approx(torch_["hessian"][0, 0, 2, 2], rel=1e-12)
    X = points(net, 5)
    first = kernel(X)
    again = kernel(X + 0.1, out=first)
    assert again.value is first.value
    np.testing.assert_array_equal(again.value, kernel(X + 0.1).value)


# --- the cache key: the architecture, never the weights --------------------------------------------------------


def test_other_weights_reuse_the_kernel_and_with_weights_swaps_them():
    first, _ = zoo(gated, seed=0)
    second, f2 = zoo(gated, seed=5)
    assert first != second
    k1 = symnet.compile(first, ("value", "hessian"), backend="numba")
    built = dict(kernels.stats)
    k2 = symnet.compile(second, ("value", "hessian"), backend="numba")
    assert kernels.stats == built and k2.build_seconds == 0.0 and k1.source == k2.source
    X = points(second, 4)
    torch_ = autograd(f2, X, 1)
    assert_close(k2(X).hessian, torch_["hessian"], 1e-12)
    np.testing.assert_array_equal(k1.with_weights(second)(X).hessian, k2(X).hessian)
    other, _ = zoo(residual)
    with pytest.raises(symnet.ShapeError, match="another architecture"):
        k1.with_weights(other)


def test_node_names_do_not_change_the_kernel_and_never_reach_the_source():
    rng = np.random.default_rng(3)
    W1, b1, W2 = rng.normal(size=(2, 3)), rng.normal(size=3), rng.normal(size=(3, 1))

    def build(names):
        x = input(2)
        h = dense(x, W1, b1, "tanh", name=names[0])
        h = h + dense(h, np.eye(3), None, "tanh", name=names[1])
        return network(x, dense(h, W2, None, name=names[2]))

    plain = symnet.compile(build(["h1", "h2", "out"]), backend="numpy")
    built = dict(kernels.stats)
    odd = symnet.compile(build(["W1", "value", "P3_0"]), backend="numpy")
    assert kernels.stats == built and odd.source == plain.source
    for name in ("h1", "h2", "out"):
        assert name not in plain.source
    X = points(plain.net)
    np.testing.assert_array_equal(odd(X).hessian, plain(X).hessian)


B = np.array([[0.7], [-1.3]])  # a constant: part of the architecture


def _variants(rng):
    """Graphs that differ from `base` in structure only (one each), all with the same weights' shapes."""
    W1, b1, W2, b2 = rng.normal(size=(2, 3)), rng.normal(size=3), rng.normal(size=(3, 1)), rng.normal(size=1)

    def net(combine=lambda h, g: h + g, act="tanh", constant=B, out_act=None):
        x = input(2)
        h = dense(x, W1, b1, act)
        g = fourier_features(x, constant)[0:1]
        return network(x, dense(combine(h, g), W2, b2, out_act))

    return {
        "base": net(),
        "sub": net(combine=lambda h, g: h - g),
        "mul": net(combine=lambda h, g: h * g),
        "sigmoid": net(act="sigmoid"),
        "constant": net(constant=2 * B),
        "head": net(out_act="tanh"),
    }


def test_the_cache_key_changes_with_the_structure_and_not_with_the_weights():
    variants = _variants(np.random.default_rng(4))
    keys = {name: kernels._architecture.architecture(net) for name, net in variants.items()}
    assert len(set(keys.values())) == len(keys)
    reweighted = _variants(np.random.default_rng(5))
    for name, net in reweighted.items():
        assert kernels._architecture.architecture(net) == keys[name], name
    sources = set()
    for name, net in variants.items():
        kernel = symnet.compile(net, ("value", "jacobian"), backend="numpy")
        sources.add(kernel.source)
        X = points(net)
        exact = closed_form(net, X)
        assert_close(kernel(X).jacobian, exact["jacobian"], 1e-12)
        built = dict(kernels.stats)
        again = symnet.compile(reweighted[name], ("value", "jacobian"), backend="numpy")  # other weights
        assert kernels.stats == built and again.source == kernel.source and again.build_seconds == 0.0
    assert len(sources) == len(variants)


# --- the strategy and why ----------------------------------------------------------------------------------------


def test_strategy_reason_says_why():
    net, _ = zoo(residual)
    kernel = symnet.compile(net, backend="numpy")
    assert kernel.strategy == "expression"
    assert kernel.strategy_reason.startswith("auto: ") and "at most EXPRESSION_LIMIT" in kernel.strategy_reason
    assert symnet.compile(net, backend="numpy", strategy="expression").strategy_reason == \
        "strategy='expression' was asked for"
    small = symnet.Network.from_weights([[[1.0, 2.0]], [[1.0], [0.5]]], None, ["tanh", "linear"])
    assert "EXPRESSION_LIMIT" in symnet.compile(small, backend="numpy").strategy_reason
    wide = symnet.Network.from_weights([np.full((2, 40), 0.1), np.full((40, 1), 0.1)], None, ["tanh", "linear"])
    reason = symnet.compile(wide, backend="numpy").strategy_reason
    assert reason.startswith("auto: ") and "more than EXPRESSION_LIMIT" in reason
    soft = symnet.Network.from_weights([np.full((2, 3), 0.1)], None, ["softmax"])
    assert "at most EXPRESSION_LIMIT" in symnet.compile(soft, backend="numpy").strategy_reason
    restored = pickle.loads(pickle.dumps(kernel))
    assert restored.strategy_reason == kernel.strategy_reason


def test_auto_takes_the_layered_strategy_for_a_wide_graph_and_says_why():
    rng = np.random.default_rng(1)
    x = input(2)
    h = dense(x, rng.normal(size=(2, 40)), rng.normal(size=40), "tanh")
    net = network(x, dense(h + dense(h, 0.2 * rng.normal(size=(40, 40)), None, "tanh"), rng.normal(size=(40, 1))))
    kernel = symnet.compile(net, backend="numpy")
    assert kernel.strategy == "layered" and kernel.schedule == "forward"
    assert "more than EXPRESSION_LIMIT" in kernel.strategy_reason


def test_what_the_layered_strategy_cannot_do_on_a_graph_is_refused_with_the_reason():
    x = input(2)
    soft = network(x, dense(softmax(dense(x, np.ones((2, 3)))) + dense(x, np.eye(2, 3)), np.ones((3, 1))))
    with pytest.raises(symnet.InputError, match=r"schedule='forward-adjoint' cannot evaluate.*no rule for softmax"):
        symnet.compile(soft, ("hessian",), strategy="layered", schedule="forward-adjoint")
    net, _ = zoo(gated)
    with pytest.raises(symnet.InputError, match="schedule='forward-adjoint' cannot evaluate.*propagated forward"):
        symnet.compile(net, ("value", (0, 0, 1)), strategy="layered", schedule="forward-adjoint")
    with pytest.raises(symnet.InputError, match="order 7 or more"):
        symnet.compile(net, ((0,) * 7,), strategy="layered", backend="numpy")
    from symnet.kernels._adjoint import cheaper

    assert cheaper(net, ("hessian",), ()) is False
    assert symnet.compile(net, ("hessian",), strategy="layered", backend="numpy").schedule == "forward"


def test_a_large_graph_warns_before_a_long_compile(monkeypatch):
    net, _ = zoo(fourier)
    with warnings.catch_warnings():
        warnings.simplefilter("error", symnet.ExpressionSizeWarning)
        symnet.compile(net, ("value",), backend="numba", cache=False)  # small: no warning
    kernels._MEMO.clear()
    monkeypatch.setattr(kernels._strategy, "EXPRESSION_WARNING", 10)
    with pytest.warns(symnet.ExpressionSizeWarning, match=r"weight-times-stream terms.*strategy='layered'") as caught:
        kernel = symnet.compile(net, ("value",), backend="numba", cache=False, strategy="expression")
    sized = [w for w in caught if issubclass(w.category, symnet.ExpressionSizeWarning)]
    assert sized[0].filename == __file__  # it points at the caller's compile
    assert kernel.strategy == "expression"
    with warnings.catch_warnings():
        warnings.simplefilter("error", symnet.ExpressionSizeWarning)
        symnet.compile(net, ("value",), backend="numpy", cache=False)  # numpy compiles nothing


def test_symbolic_graphs_are_refused():
    x = input(2)
    net = network(x, dense(dense(x, 3, "tanh") + dense(x, 3, "sin"), 1))
    assert not net.is_numeric
    with pytest.raises(symnet.InputError, match="compile needs numeric weights"):
        symnet.compile(net, backend="numpy")


# --- pickling and Dask -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_graph_kernels_pickle(backend):
    net, _ = zoo(two_heads)
    kernel = symnet.compile(net, ("value", "laplacian"), backend=backend, parallel=False)
    restored = pickle.loads(pickle.dumps(kernel))
    assert restored.net == net and restored.source == kernel.source
    X = points(net, 6)
    np.testing.assert_array_equal(restored(X).laplacian, kernel(X).laplacian)


def test_dask_evaluates_graph_kernels():
    import dask.array as da  # the test extra installs dask

    import symnet.dask

    net, f = zoo(layer_normed)
    kernel = symnet.compile(net, ("value", "jacobian", "hessian"), backend="numpy")
    X = np.random.default_rng(7).uniform(-1, 1, (40, 2))
    lazy = symnet.dask.evaluate(kernel, da.from_array(X, chunks=(10, 2)))
    computed, local = lazy.compute(), kernel(X)
    for name in ("value", "jacobian", "hessian"):
        np.testing.assert_array_equal(computed[name], local[name])
    loss = symnet.dask.mean_squared(kernel, da.from_array(X, chunks=(10, 2)), lambda P, r: r.value[:, 0])
    assert float(loss.compute()) == pytest.approx(np.mean(local.value[:, 0] ** 2), rel=1e-12)
    report = symnet.dask.verify(kernel, da.from_array(X, chunks=(10, 2)), chunks=2, points_per_chunk=3)
    assert report.ok, report.message()


def test_auto_gives_graphs_without_products_the_forward_adjoint_schedule_for_hessians():
    from symnet.graph import zoo as graph_zoo

    residual_net, gated_net = graph_zoo.resnet_mlp(2, 12, 2, 1), graph_zoo.modified_mlp(2, 12, 2, 1)
    hessian = ("value", "jacobian", "hessian")
    chosen = symnet.compile(residual_net, hessian, strategy="layered")
    assert chosen.schedule == "forward-adjoint"                       # 4 streams through the products, not 6
    assert symnet.compile(gated_net, hessian, strategy="layered").schedule == "forward"  # products: measured slower
    assert symnet.compile(residual_net, ("value", "laplacian"), strategy="layered").schedule == "forward"
    assert symnet.compile(residual_net, hessian, strategy="layered", backend="numpy").schedule == "forward"
    wide_input = graph_zoo.resnet_mlp(8, 12, 2, 1)  # one mixed partial: tangents along x0 and x1 only, 6 streams
    assert symnet.compile(wide_input, ("value", (0, 1)), strategy="layered").schedule == "forward"  # not 1+8+1
    assert symnet.compile(wide_input, hessian, strategy="layered").schedule == "forward-adjoint"  # 10 < 45
    X = np.random.default_rng(3).uniform(-1, 1, (30, 2))
    forward = symnet.compile(residual_net, hessian, strategy="layered", schedule="forward")(X)
    for name, array in chosen(X).as_dict().items():
        np.testing.assert_allclose(array, forward[name], rtol=1e-12, atol=1e-12)


def test_auto_gives_gated_graphs_the_sweep_only_where_their_matrix_products_dominate():
    """Products: forward-adjoint below GATED_UNITS_PER_MAC pointwise units per multiply-add (wide
    PirateNets), forward above it (narrow ones, ModifiedMlp at 128); the choice follows the constant."""
    from symnet.graph import zoo as graph_zoo
    from symnet.kernels import _graph_adjoint
    from symnet.kernels._graph_adjoint import pointwise_units_per_mac

    hessian = ("value", "jacobian", "hessian")
    wide, narrow = graph_zoo.pirate_net(2, 160, 1, 1), graph_zoo.pirate_net(2, 48, 1, 1)
    assert pointwise_units_per_mac(wide) < _graph_adjoint.GATED_UNITS_PER_MAC < pointwise_units_per_mac(narrow)
    assert symnet.compile(wide, hessian, strategy="layered").schedule == "forward-adjoint"
    assert symnet.compile(narrow, hessian, strategy="layered").schedule == "forward"
    assert symnet.compile(graph_zoo.modified_mlp(2, 128, 4, 1), hessian, strategy="layered").schedule == "forward"
    assert pointwise_units_per_mac(graph_zoo.pirate_net(2, 128, 2, 1)) == pytest.approx(3968 / 131200)
