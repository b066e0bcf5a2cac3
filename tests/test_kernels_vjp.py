"""compile_vjp: derivative requests as truncated Taylor jets, and their exact reverse mode."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings

import symnet
from symnet.graph import dense, input, mul, network, zoo
from symnet.kernels._jets import JetAlgebra

from strategies import random_dags

_ALL = ("value", "jacobian", "hessian", "laplacian", "biharmonic", (0, 0, 1), (1, 1, 1))


def _zoo(name):
    return zoo.ZOO[name](seed=3)


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(1e-300, float(np.max(np.abs(b)))))


# --- the algebra --------------------------------------------------------------------------------

def test_algebra_is_the_downward_closure_with_the_product_terms():
    algebra = JetAlgebra(2, [(0, 0, 0, 0), (0, 0, 1, 1), (1, 1, 1, 1)])  # a biharmonic in 2 inputs
    assert algebra.size == 13 and algebra.order == 4
    assert set(algebra.exponents) == {(a, 0) for a in range(5)} | {(0, b) for b in range(5)} | {
        (a, b) for a in range(3) for b in range(3)}
    for g, a, b in algebra.cross:
        ga, aa, ba = algebra.exponents[g], algebra.exponents[a], algebra.exponents[b]
        assert tuple(x + y for x, y in zip(aa, ba)) == ga and sum(aa) and sum(ba)


@pytest.mark.parametrize("d, words, size, collapsed", [
    (2, ("laplacian",), 4, 5), (3, ("hessian",), 10, 10), (50, ("laplacian",), 52, 101), (1, ("laplacian",), 3, 3),
    (2, ("value",), 1, 1), (2, ((0, 0, 0),), 4, 4), (2, ("laplacian", (0, 0)), 5, 5), (2, ("laplacian", (0, 1)), 6, 6)])
def test_stream_counts(d, words, size, collapsed):
    """A Laplacian-only second order is one collapsed stream (d + 2 in all) where the kernel may collapse."""
    kernel = symnet.compile_vjp(symnet.Network.from_weights([np.ones((d, 1))], [np.zeros(1)], ["tanh"]), words)
    assert kernel.algebra.size == size
    assert JetAlgebra(d, symnet.requests.parse(words, d).multi_indices(d)).size == collapsed


def test_collapsed_laplacian_equals_the_sum_of_second_partials():
    net = _zoo("pirate_net")
    X = np.random.default_rng(3).uniform(-1, 1, (6, 2))
    collapsed = symnet.compile_vjp(net, ("value", "laplacian"))
    full = symnet.compile_vjp(net, ("value", "laplacian", "hessian"))
    assert collapsed.algebra.collapsed and not full.algebra.collapsed
    np.testing.assert_allclose(collapsed(X).laplacian, full(X).laplacian, rtol=1e-12, atol=1e-15)
    cot = {"laplacian": np.random.default_rng(4).normal(size=(6, 1))}
    a, b = collapsed.vjp(X, cot), full.vjp(X, cot)
    for node in a[0]:
        for name in a[0][node]:
            np.testing.assert_allclose(a[0][node][name], b[0][node][name], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-14)


# --- forward: the same numbers as the other kernels ---------------------------------------------

@pytest.mark.parametrize("name", sorted(zoo.ZOO))
def test_forward_matches_compile_on_every_zoo_net(name):
    net = _zoo(name)
    X = np.random.default_rng(1).uniform(-0.8, 0.8, (9, net.n_inputs))
    got = symnet.compile_vjp(net, _ALL)(X)
    want = symnet.compile(net, _ALL, backend="numpy")(X)
    for key, array in want.as_dict().items():
        assert _rel(got[key], array) < 1e-13, key


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_dags())
def test_forward_matches_compile_on_random_dags(net):
    X = np.random.default_rng(2).uniform(-1, 1, (5, 2))
    words = ("value", "jacobian", "hessian", "laplacian", (0, 0, 1))
    got = symnet.compile_vjp(net, words)(X)
    want = symnet.compile(net, words, backend="numpy", strategy="expression")(X)
    for key, array in want.as_dict().items():
        np.testing.assert_allclose(got[key], array, rtol=1e-10, atol=1e-12 * (1 + np.max(np.abs(array))))


# --- reverse: exact against sympy.diff at 30 digits ---------------------------------------------

def _symbolic_graph_net():
    """A small graph with a product and a skip connection, its parameters symbols."""
    x = input(2)
    h = dense(x, 3, "tanh", name="h")
    g = dense(x, 3, "sigmoid", name="g")
    out = dense(mul(h, g) + h, 1, name="out")
    return network(x, out)


@pytest.mark.parametrize("word, alpha", [("laplacian", None), ("biharmonic", None), (None, (0, 0, 1))])
def test_parameter_gradients_match_sympy_diff(word, alpha):
    sym = _symbolic_graph_net()
    rng = np.random.default_rng(5)
    values = {p: sympy.Rational(int(rng.integers(-900, 900)), 1000) for p in sym.params}
    net = sym.subs(values)
    point = [sympy.Rational(3, 10), sympy.Rational(-7, 10)]
    x0, x1 = sym.inputs
    u = sym.expr
    if word == "laplacian":
        target = sympy.diff(u, x0, 2) + sympy.diff(u, x1, 2)
    elif word == "biharmonic":
        target = sympy.diff(u, x0, 4) + 2 * sympy.diff(u, x0, 2, x1, 2) + sympy.diff(u, x1, 4)
    else:
        target = sympy.diff(u, x0, 2, x1)
    at = dict(values) | {x0: point[0], x1: point[1]}
    kernel = symnet.compile_vjp(net, (word,) if word else (alpha,))
    name = word or symnet.requests.partial_name(alpha)
    X = np.array([[0.3, -0.7]])
    assert _rel(kernel(X)[name], [[float(target.evalf(30, subs=at))]]) < 1e-14
    grads, dX = kernel.vjp(X, {name: np.ones((1, 1))})
    for node in sym.graph.nodes[1:]:
        for pname, matrix in node.params.items():
            for (i, j), symbol in np.ndenumerate(np.array(matrix.tolist(), dtype=object)):
                want = float(sympy.diff(target, symbol).evalf(30, subs=at))
                got = grads[node.name][pname][i, j]
                assert abs(got - want) <= 1e-13 * max(1.0, abs(want)), (node.name, pname, i, j)
    for i, xi in enumerate((x0, x1)):
        want = float(sympy.diff(target, xi).evalf(30, subs=at))
        assert abs(dX[0, i] - want) <= 1e-13 * max(1.0, abs(want))


# --- reverse: every zoo net against finite differences of the forward --------------------------

@pytest.mark.parametrize("name", sorted(zoo.ZOO))
def test_vjp_matches_central_differences_on_every_zoo_net(name):
    net = _zoo(name)
    rng = np.random.default_rng(4)
    X = rng.uniform(-0.7, 0.7, (4, net.n_inputs))
    words = ("value", "laplacian", (0, 0, 0))
    kernel = symnet.compile_vjp(net, words)
    cot = {k: rng.normal(size=v.shape) for k, v in kernel(X).as_dict().items()}
    grads, dX = kernel.vjp(X, cot)
    params = kernel.params()

    def loss(p, points):
        result = kernel(points, weights=p)
        return sum(float(np.sum(cot[k] * result[k])) for k in cot)

    for node, group in params.items():
        for pname, array in group.items():
            index = tuple(rng.integers(0, s) for s in array.shape)
            step = 1e-6 * max(1.0, abs(array[index]))
            moved = {a: {b: c.copy() for b, c in g.items()} for a, g in params.items()}
            moved[node][pname][index] += step
            up = loss(moved, X)
            moved[node][pname][index] -= 2 * step
            want = (up - loss(moved, X)) / (2 * step)
            assert abs(grads[node][pname][index] - want) <= 1e-6 * max(1.0, abs(want)), (node, pname)
    moved = X.copy()
    moved[1, 0] += 1e-6
    up = loss(params, moved)
    moved[1, 0] -= 2e-6
    assert abs(dX[1, 0] - (up - loss(params, moved)) / 2e-6) <= 1e-6 * max(1.0, abs(dX[1, 0]))


# --- value_and_grad, chunks, threads ------------------------------------------------------------

def test_value_and_grad_equals_vjp_of_the_loss_cotangents():
    net = _zoo("resnet_mlp")
    X = np.random.default_rng(6).uniform(0, 1, (300, 2))
    kernel = symnet.compile_vjp(net, ("value", "laplacian"))
    f = np.sin(X[:, 0])

    def loss(P, rows, r):
        return ((r.laplacian[:, 0] + np.sin(P[:, 0])) ** 2).sum() / len(X) + (r.value ** 2).sum() / len(X)
    value, grads, dX = kernel.value_and_grad(X, loss)
    result = kernel(X)
    want = np.mean((result.laplacian[:, 0] + f) ** 2) + np.mean(result.value ** 2)
    assert value == pytest.approx(want, rel=1e-13)
    cot = {"laplacian": 2 * (result.laplacian + f[:, None]) / len(X), "value": 2 * result.value / len(X)}
    grads2, dX2 = kernel.vjp(X, cot)
    for node in grads:
        for pname in grads[node]:
            np.testing.assert_allclose(grads[node][pname], grads2[node][pname], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dX, dX2, rtol=1e-12, atol=1e-15)


def test_chunks_and_threads_give_the_same_numbers_every_call():
    net = _zoo("modified_mlp")
    X = np.random.default_rng(7).uniform(0, 1, (5000, 2))
    threaded = symnet.compile_vjp(net, ("laplacian",))
    threaded.chunk = 700  # several chunks per thread
    single = symnet.compile_vjp(net, ("laplacian",), parallel=False)
    cot = {"laplacian": np.ones((5000, 1))}
    first, again, alone = threaded.vjp(X, cot), threaded.vjp(X, cot), single.vjp(X, cot)
    for node in first[0]:
        for pname in first[0][node]:
            assert np.array_equal(first[0][node][pname], again[0][node][pname])
            np.testing.assert_allclose(first[0][node][pname], alone[0][node][pname], rtol=1e-11, atol=1e-13)
    np.testing.assert_array_equal(threaded(X).laplacian, threaded(X).laplacian)
    # BLAS may round a row differently by its place in a block: the last bit, not more
    np.testing.assert_allclose(threaded(X).laplacian, single(X).laplacian, rtol=1e-14, atol=1e-15)


def test_chain_weights_as_layers_and_the_tail_of_tanh():
    net = symnet.Network.from_weights([[[40.0]], [[1.0]]], [[0.0], [0.0]], ["tanh", "linear"])
    kernel = symnet.compile_vjp(net, ("jacobian",))
    result = kernel([[1.0]])
    assert result.jacobian[0, 0, 0] == pytest.approx(40 * 4 * np.exp(-80.0), rel=1e-13)  # 40 tanh'(40): not 0
    same = kernel([[1.0]], weights=[(np.array([[40.0]]), np.zeros(1)), (np.array([[1.0]]), np.zeros(1))])
    assert same.jacobian[0, 0, 0] == result.jacobian[0, 0, 0]


def test_bad_input_is_refused_with_a_clear_message():
    net = _zoo("resnet_mlp")
    kernel = symnet.compile_vjp(net, ("laplacian",))
    with pytest.raises(symnet.ShapeError, match=r"points must have shape \(N, 2\)"):
        kernel(np.zeros((3, 3)))
    with pytest.raises(symnet.InputError, match="finite"):
        kernel(np.full((2, 2), np.nan))
    with pytest.raises(symnet.InputError, match="does not compute"):
        kernel.vjp(np.zeros((2, 2)), {"hessian": np.zeros((2, 1, 2, 2))})
    with pytest.raises(symnet.ShapeError, match="cotangent of 'laplacian'"):
        kernel.vjp(np.zeros((2, 2)), {"laplacian": np.zeros((3, 1))})
    with pytest.raises(symnet.WeightError, match="symbolic"):
        symnet.compile_vjp(symnet.Network.symbolic([2, 2, 1], "tanh"), ("value",))(np.zeros((1, 2)))
    with pytest.raises(symnet.ShapeError, match="graph"):
        kernel(np.zeros((1, 2)), weights=[(np.zeros((2, 2)), np.zeros(2))])


@pytest.mark.parametrize("keep", [True, False])
def test_forward_and_pullback_equal_call_and_vjp(monkeypatch, keep):
    if not keep:
        monkeypatch.setattr("symnet.kernels._vjp.KEEP_BYTES", 0)
    net = _zoo("fourier_mlp")
    X = np.random.default_rng(8).uniform(0, 1, (900, 2))
    kernel = symnet.compile_vjp(net, ("value", "laplacian", (1, 1, 1)))
    kernel.chunk = 128
    result, pullback = kernel.forward(X)
    assert pullback.kept is keep
    for name, array in kernel(X).as_dict().items():
        np.testing.assert_array_equal(result[name], array)
    cot = {"laplacian": np.cos(X[:, :1]), "partial_1_1_1": np.ones((900, 1))}
    (grads, dX), (want, wantX) = pullback(cot), kernel.vjp(X, cot)
    for node in want:
        for name in want[node]:
            np.testing.assert_array_equal(grads[node][name], want[node][name])
    np.testing.assert_array_equal(dX, wantX)


def test_a_transposed_weight_is_refused_not_reshaped():
    net = _zoo("resnet_mlp")
    kernel = symnet.compile_vjp(net, ("value",))
    params = kernel.params()
    node = kernel.owners[0][0]                                    # the first dense node: W (2, 16)
    params[node]["W"] = np.ascontiguousarray(params[node]["W"].T)
    with pytest.raises(symnet.ShapeError, match=r"has shape \(16, 2\), \(2, 16\) needed"):
        kernel(np.zeros((1, 2)), weights=params)


@pytest.mark.parametrize("name", sorted(zoo.ZOO))
@pytest.mark.parametrize("words", [("value", "laplacian"), ("value", "hessian", "biharmonic", (0, 0, 1))])
def test_the_generated_elementwise_rule_equals_the_numpy_rule_to_the_bit(name, words):
    from symnet.kernels._jets import JetSweep

    net = _zoo(name)
    kernel = symnet.compile_vjp(net, words)
    assert kernel.sweep.fused
    reference = JetSweep(net.graph, kernel.algebra, fused=False)
    X = np.random.default_rng(0).uniform(-1, 1, (40, net.n_inputs))
    params = kernel.params()
    S1, saved1 = kernel.sweep.forward(params, X)
    S2, saved2 = reference.forward(params, X)
    for node in S2:
        np.testing.assert_array_equal(S1[node], S2[node])
    out = net.graph.output
    seed = {out: np.random.default_rng(1).normal(size=S1[out].shape)}
    (g1, x1), (g2, x2) = kernel.sweep.backward_to_input(params, S1, saved1, seed), reference.backward_to_input(
        params, S2, saved2, seed)
    np.testing.assert_array_equal(x1, x2)
    for node in g2:
        for pname in g2[node]:
            np.testing.assert_array_equal(g1[node][pname], g2[node][pname])


def test_the_generated_rule_is_readable_and_cached():
    from symnet.kernels._jet_codegen import jet_module, jet_source

    algebra = JetAlgebra(2, [(0, 0), (1, 1)], collapse=True)
    source = jet_source(algebra)
    assert "p2_3 = ((z1 * z1) + (z2 * z2))" in source and "def backward(Z, F, G, SHARE)" in source
    assert jet_module(algebra) is jet_module(JetAlgebra(2, [(0, 0), (1, 1)], collapse=True))


def test_a_workspace_is_reused_chunk_after_chunk_and_changes_no_bit():
    """The sweeps' arrays come from the thread's workspace: the same memory for the next chunk (no fresh
    pages to fault in), the same numbers as fresh arrays, whatever the chunk's size."""
    from symnet.kernels._blocks import Workspace
    from symnet.kernels._loss import graph_arrays

    net = _zoo("resnet_mlp")
    kernel = symnet.compile_vjp(net, ("value", "laplacian"), parallel=False)
    params, space = graph_arrays(net.graph), Workspace()
    rng = np.random.default_rng(9)
    seed = {net.graph.output: np.ones((kernel.algebra.size, 40, 1))}
    kept = None
    for n in (40, 17, 40):
        X = rng.uniform(-1, 1, (n, 2))
        seed = {net.graph.output: rng.normal(size=(kernel.algebra.size, n, 1))}
        S, saved = kernel.sweep.forward(params, X, space)
        grads, into = kernel.sweep.backward_to_input(params, S, saved, seed, space=space)
        S0, saved0 = kernel.sweep.forward(params, X)
        grads0, into0 = kernel.sweep.backward_to_input(params, S0, saved0, seed)
        for name in S0:
            np.testing.assert_array_equal(S[name], S0[name])
        for node in grads0:
            for pname in grads0[node]:
                np.testing.assert_array_equal(grads[node][pname], grads0[node][pname])
        np.testing.assert_array_equal(into, into0)
        if n == 40 and kept is not None:
            assert len(kept) >= 4 and [name for name in kept if not np.shares_memory(S[name], kept[name])] == []
        if kept is None:  # the first chunk of 40 points' arrays: the third's are the same memory
            kept = {name: S[name] for name in S
                    if name != "x" and net.graph.by_name[name].op in ("dense", "activation")}


def test_a_loss_that_calls_the_same_kernel_again_gets_the_same_gradients():
    """value_and_grad's loss runs inside a chunk, between its forward and reverse sweeps: a call of
    the same kernel from there (same thread) gets fresh arrays, not the chunk's workspace."""
    net = symnet.Network.from_weights([np.array([[1.0, -2.0]]), np.array([[1.5], [0.5]])],
                                      [np.array([0.1, 0.2]), np.array([0.0])], ["tanh", "linear"])
    kernel = symnet.compile_vjp(net, ("value", "laplacian"), parallel=False)
    X = np.linspace(-2, 2, 50)[:, None]
    value, want, want_dX = kernel.value_and_grad(X, lambda P, rows, r: (r.laplacian ** 2).sum())

    def nested(P, rows, r):
        kernel.vjp(3 * X, {"value": np.ones((50, 1))})
        kernel.value_and_grad(-X, lambda P, rows, r: r.value.sum())
        return (r.laplacian ** 2).sum()
    again, got, got_dX = kernel.value_and_grad(X, nested)
    assert again == value
    np.testing.assert_array_equal(got_dX, want_dX)
    for node in want:
        for name in want[node]:
            np.testing.assert_array_equal(got[node][name], want[node][name])
