"""The layered strategy on graph networks (symnet/kernels/_graph_layered.py): layered (numpy and
numba backends) and expression kernels agree with each other on the zoo and on random DAGs over
the op set; the slots follow the values' lifetimes and a call's memory stays bounded with long
skip connections; Leibniz's rule; tangents only along the inputs asked for."""

from __future__ import annotations

import tracemalloc

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symnet
from symnet.graph import dense, input, mul, network, zoo
from symnet.kernels import _graph_adjoint, _layered
from symnet.kernels._graph_layered import Slots, leibniz_terms

from strategies import random_dags

ALL = ("value", "jacobian", "hessian", "laplacian", "biharmonic", (0, 0, 1))

#: each zoo net at a size where the expression kernel (the reference here) builds in seconds
SIZES = {
    "resnet_mlp": dict(width=5, blocks=2),
    "modified_mlp": dict(width=4, depth=2),
    "pirate_net": dict(width=4, blocks=1),
    "fourier_mlp": dict(features=3, width=4, depth=2),
    "deeponet": dict(sensors=2, coords=2, width=4, depth=2, p=3),
    "layer_norm_mlp": dict(width=4, depth=2),
    "weight_norm_mlp": dict(width=4, depth=2),
    "normalized_two_heads": dict(width=4, depth=2),
}


def _compare(got, want, rtol=1e-12):
    for name, reference in want.as_dict().items():
        scale_ = max(1.0, float(np.max(np.abs(reference))))
        np.testing.assert_allclose(got[name], reference, rtol=rtol, atol=rtol * scale_, err_msg=str(name))


@pytest.mark.parametrize("name", sorted(SIZES))
def test_layered_matches_the_expression_kernel_on_the_zoo(name):
    net = zoo.ZOO[name](**SIZES[name])
    X = np.random.default_rng(3).uniform(-1.5, 1.5, (23, net.n_inputs))
    want = symnet.compile(net, ALL, backend="numpy", strategy="expression")(X)
    hessian = ("value", "jacobian", "hessian", "laplacian")
    for backend in ("numpy", "numba"):
        kernel = symnet.compile(net, ALL, backend=backend, strategy="layered")
        assert kernel.strategy == "layered"
        _compare(kernel(X).as_dict(), want)
        adjoint = symnet.compile(net, hessian, backend=backend, strategy="layered", schedule="forward-adjoint")
        assert adjoint.schedule == "forward-adjoint"
        _compare(adjoint(X).as_dict(), symnet.compile(net, hessian, backend="numpy", strategy="expression")(X))


def test_a_laplacian_alone_takes_one_collapsed_stream_on_a_graph():
    net = zoo.pirate_net(width=4, blocks=1)
    kernel = symnet.compile(net, ("value", "laplacian"), backend="numpy", strategy="layered")
    assert kernel._plan.streams == 1 + 2 + 1  # value, two tangents, the Laplacian
    X = np.random.default_rng(4).normal(size=(9, 2))
    _compare(kernel(X).as_dict(), symnet.compile(net, ("value", "laplacian"), backend="numpy",
                                                 strategy="expression")(X))


def test_the_biharmonic_streams_are_its_entries_and_their_sub_multi_indices():
    """d inputs: value, d tangents, d(d+1)/2 pairs, the entries (i,i,k) and (i,k,k) of order 3 and
    (i,i,k,k) of order 4: 1 + 2 + 3 + 4 + 3 = 13 for d = 2 (the count docs/kernels.md states)."""
    net = zoo.resnet_mlp(width=4, blocks=1)
    kernel = symnet.compile(net, ("biharmonic",), backend="numpy", strategy="layered")
    assert kernel._plan.streams == 13
    chain = symnet.Network.from_weights([np.full((2, 3), 0.3), np.full((3, 1), 0.5)], None, ["tanh", "linear"])
    X = np.random.default_rng(5).normal(size=(7, 2))
    for each in (net, chain):  # chains assemble the biharmonic in the layered strategy too
        got = symnet.compile(each, ("biharmonic",), backend="numpy", strategy="layered")(X)
        _compare(got.as_dict(), symnet.compile(each, ("biharmonic",), backend="numpy", strategy="expression")(X))


def test_tangents_go_only_along_the_inputs_the_partials_name():
    """A DeepONet's derivatives along its trunk coordinates carry no tangents of its sensors."""
    net = zoo.deeponet(sensors=5, coords=2, width=4, depth=1, p=3)
    request = ("value", (5,), (6,), (5, 5), (5, 6), (6, 6), (5, 5, 6))
    kernel = symnet.compile(net, request, backend="numpy", strategy="layered")
    assert kernel._plan.directions == [5, 6] and kernel._plan.streams == 1 + 2 + 3 + 1
    branch = [name for name, varies in kernel._plan.varies.items() if not varies]
    assert len(branch) == 1 + 2 * 1 + 1  # the sensors' slice, dense + tanh, the last dense: values only
    X = np.random.default_rng(6).normal(size=(11, 7))
    _compare(kernel(X).as_dict(), symnet.compile(net, request, backend="numpy", strategy="expression")(X))


def test_nodes_that_do_not_vary_with_the_asked_inputs():
    """Found by the random DAGs: a product of two value-only factors, and an output that does not
    depend on the input the partials name (its derivatives are 0)."""
    x = input(2)
    s = x[0:1]
    request = ("value", (1,), (1, 1), (1, 1, 1))
    X = np.random.default_rng(2).uniform(-1, 1, (6, 2))
    for out in (dense(mul(s, s), [[1.5]]) + dense(x, [[1.0], [0.5]]), dense(s + s, [[2.0]]) + dense(s, [[1.0]])):
        net = network(x, out)
        want = symnet.compile(net, request, backend="numpy", strategy="expression")(X)
        for backend in ("numpy", "numba"):
            _compare(symnet.compile(net, request, backend=backend, strategy="layered")(X).as_dict(), want)


def test_leibniz_terms_are_the_product_rule():
    # one input, to order 3: (ab)''' = a b''' + 3 a' b'' + 3 a'' b' + a''' b
    terms = leibniz_terms(1, [(0, 0)], False, [(0, 0, 0)])
    assert terms[3] == [(1, 0, 3), (3, 1, 2), (3, 2, 1), (1, 3, 0)]
    # the collapsed Laplacian: a lap b + lap a b + 2 sum_i da_i db_i
    assert leibniz_terms(2, [], True, [])[3] == [(1, 0, 3), (1, 3, 0), (2, 1, 1), (2, 2, 2)]
    # a mixed pair: d2(ab)/dx0 dx1 = a b01 + a0 b1 + a1 b0 + a01 b
    assert sorted(leibniz_terms(2, [(0, 1)], False, [])[3]) == [(1, 0, 3), (1, 1, 2), (1, 2, 1), (1, 3, 0)]


def test_tails_stay_relatively_exact_through_a_graph():
    """tanh' at z = 40 is 1.7e-17, not 0: a residual graph whose unit saturates keeps its slope."""
    x = input(1)
    h = dense(x, [[40.0]], [0.0], "tanh")
    net = network(x, dense(h * h, [[1.0]]) + dense(h, [[1.0]]))  # y = tanh(40x)^2 + tanh(40x)
    X = np.array([[1.0]])
    got = symnet.compile(net, ("jacobian",), backend="numba", strategy="layered")(X).jacobian[0, 0, 0]
    with mpmath.workdps(40):
        want = float((2 * mpmath.tanh(40) + 1) * 40 * mpmath.sech(40) ** 2)
    assert want != 0 and abs(got - want) <= 1e-13 * abs(want)


def test_float32_layered_graph():
    net = zoo.resnet_mlp(width=6, blocks=2)
    X = np.random.default_rng(8).normal(size=(10, 2))
    got = symnet.compile(net, ("value", "hessian"), backend="numba", strategy="layered", dtype=np.float32)(X)
    want = symnet.compile(net, ("value", "hessian"), backend="numpy", strategy="layered")(X)
    assert got.hessian.dtype == np.float32
    np.testing.assert_allclose(got.hessian, want.hessian, rtol=1e-4, atol=1e-4)


# --- the slots follow the values' lifetimes ---------------------------------------------------


def test_slots_are_reused_and_taken_in_place():
    rng = np.random.default_rng(0)
    x = input(2)
    h = x
    for _ in range(4):  # a plain chain of dense + tanh written as a graph: two slots ping-pong
        h = dense(h, rng.normal(size=(h.width, 3)), None, "tanh")
    chain_like = Slots(network(x, dense(h, rng.normal(size=(3, 1))) + dense(x, rng.normal(size=(2, 1)))).graph)
    assert chain_like.count == 2
    assert all(node.name in chain_like.in_place for node in chain_like.live if node.op == "activation")


def _long_skips(depth: int, width: int, seed: int = 0):
    """``h_k = tanh(dense(h_{k-1}))``, and the output adds every ``h_k``: every value lives to the end."""
    rng = np.random.default_rng(seed)
    x = input(2)
    h, kept = x, []
    for _ in range(depth):
        h = dense(h, rng.normal(scale=0.7, size=(h.width, width)), rng.normal(size=width), "tanh")
        kept.append(h)
    total = kept[0]
    for k in kept[1:]:
        total = total + k
    return network(x, dense(total, rng.normal(size=(width, 1))))


def test_the_forward_adjoint_schedule_refuses_what_goes_forward():
    net = zoo.resnet_mlp(width=4, blocks=1)
    with pytest.raises(symnet.InputError, match="order 3 or more are propagated forward"):
        symnet.compile(net, ("value", (0, 0, 1)), strategy="layered", schedule="forward-adjoint", backend="numpy")
    with pytest.raises(symnet.InputError, match="a Laplacian alone goes forward"):
        symnet.compile(net, ("value", "laplacian"), strategy="layered", schedule="forward-adjoint", backend="numpy")
    assert symnet.compile(net, ("hessian",), strategy="layered", backend="numpy").schedule == "forward"


@pytest.mark.parametrize("schedule", ["forward", "forward-adjoint"])
def test_long_skip_connections_keep_their_slots_and_the_memory_bound(monkeypatch, schedule):
    net = _long_skips(depth=12, width=16)
    slots = Slots(net.graph)
    assert slots.count >= 12  # every h_k is alive until the sum reads it
    budgets = {"forward": _layered, "forward-adjoint": _graph_adjoint}  # each schedule has its own budget
    monkeypatch.setattr(budgets[schedule], "MEMORY_BUDGET", 256 * 1024)
    kernel = symnet.compile(net, ("value", "jacobian", "hessian"), backend="numba", strategy="layered",
                            schedule=schedule, parallel=False, cache=False)
    assert kernel.schedule == schedule
    plan = kernel._plan
    assert plan.buffer_bytes() <= 256 * 1024 and plan.chunk_size() < 400  # several chunks of points
    X = np.random.default_rng(1).normal(size=(2000, 2))
    kernel(X[:10])
    tracemalloc.start()
    try:
        result = kernel(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    results = sum(a.nbytes for a in result.as_dict().values())
    assert peak <= results + 256 * 1024 + 200_000, (peak, results)  # results, the budget, small change
    want = symnet.compile(net, ("value", "jacobian", "hessian"), backend="numpy", strategy="expression")(X[:50])
    _compare({k: v[:50] for k, v in result.as_dict().items()}, want, rtol=1e-11)


def test_a_new_memory_budget_between_calls_gets_fresh_buffers_and_views():
    """The per-thread views of the slots are kept per chunk size; a budget read at call time changes the
    chunk and the buffers, and the views follow (same numbers as a kernel built at that budget)."""
    net = zoo.modified_mlp(d_in=2, width=8, depth=2)
    kernel = symnet.compile(net, ("value", "jacobian", "hessian"), strategy="layered", schedule="forward",
                            parallel=False, cache=False)
    X = np.random.default_rng(4).normal(size=(700, 2))
    first = kernel(X).as_dict()
    chunk = kernel._plan.chunk_size()
    original = _layered.MEMORY_BUDGET
    try:
        _layered.MEMORY_BUDGET = 64 * 1024
        assert kernel._plan.chunk_size() < min(chunk, 700)  # several chunks, the last one shorter
        second = kernel(X).as_dict()
        fresh = symnet.compile(net, ("value", "jacobian", "hessian"), strategy="layered", schedule="forward",
                               parallel=False, cache=False)(X).as_dict()
    finally:
        _layered.MEMORY_BUDGET = original
    third = kernel(X).as_dict()
    for name, array in first.items():  # BLAS may round a product of other shape differently: bit for bit per size
        np.testing.assert_array_equal(second[name], fresh[name], err_msg=name)
        np.testing.assert_array_equal(third[name], array, err_msg=name)
        np.testing.assert_allclose(second[name], array, rtol=1e-12, atol=1e-14, err_msg=name)


# --- random DAGs over the op set ----------------------------------------------------------------

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_dags(), st.sampled_from([("value", "jacobian", "hessian", "laplacian", (0, 0, 1)),
                                       ("value", (1,), (1, 1), (1, 1, 1))]))
def test_random_dags_agree_across_strategies_and_backends(net, words):
    """Every request on random DAGs; partials along x1 only leave nodes reading x[0:1] value-only."""
    X = np.random.default_rng(2).uniform(-1, 1, (6, 2))
    want = symnet.compile(net, words, backend="numpy", strategy="expression")(X)
    for backend in ("numpy", "numba"):
        got = symnet.compile(net, words, backend=backend, strategy="layered")(X)
        _compare(got.as_dict(), want, rtol=1e-10)
        if "hessian" in words and not net.is_chain:  # the forward-adjoint sweep, with the products' cross terms
            words2 = ("value", "jacobian", "hessian", "laplacian")
            got = symnet.compile(net, words2, backend=backend, strategy="layered", schedule="forward-adjoint")(X)
            _compare(got.as_dict(), symnet.compile(net, words2, backend="numpy", strategy="expression")(X), rtol=1e-10)


def _softmax_nets(name="softmax"):
    rng = np.random.default_rng(5)
    x = input(2)
    h = dense(x, rng.normal(size=(2, 5)), rng.normal(size=5), "tanh")
    graph = network(x, dense(dense(h, rng.normal(size=(5, 3)), rng.normal(size=3), name) + h[0],
                             rng.normal(size=(3, 2))))
    chain = symnet.Network.from_weights([rng.normal(size=(2, 6)), rng.normal(size=(6, 4))],
                                        [rng.normal(size=6), rng.normal(size=4)], ["tanh", name])
    return {"graph": graph, "chain": chain}


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("kind", ["graph", "chain"])
def test_softmax_goes_through_its_parts_on_the_layered_strategy(kind, name):
    net = _softmax_nets(name)[kind]
    X = np.random.default_rng(1).uniform(-1, 1, (40, 2))
    for request in (("value", "jacobian", "hessian"), ("value", "laplacian"), ("biharmonic",), ((0, 0, 1),)):
        want = symnet.compile(net, request, backend="numpy", strategy="expression")(X)
        for backend in ("numpy", "numba"):
            kernel = symnet.compile(net, request, backend=backend, strategy="layered")
            assert kernel.schedule == "forward"
            _compare(kernel(X).as_dict(), want, rtol=1e-12)
    auto = symnet.compile(net, ("value", "hessian"))
    assert "EXPRESSION_LIMIT" in auto.strategy_reason  # both strategies shift softmax: size decides
    with pytest.raises(symnet.InputError, match=f"no rule for {name}"):
        symnet.compile(net, ("hessian",), strategy="layered", schedule="forward-adjoint")


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("strategy", ["layered", "expression"])
def test_softmax_derivatives_keep_their_relative_accuracy_in_the_tails(strategy, name):
    """s = softmax(40x, -40x, 0): at x = 1, ds0/dx = 1.7e-16 is 40 (1 - s0) up to e^-80; formed
    as 1 - s0 it would be 0 (log_softmax likewise: d/dx of unit 0 is 40 (1 - s0 + s1), not
    40 - 40 s0).  At x = 20 the logit 800 overflows an unshifted exp; at x = 0 all three tie.
    Every entry of orders 1 to 3 against SymPy at 60 digits, on both strategies (each shifts by
    the largest unit)."""
    net = symnet.Network.from_weights([[[40.0, -40.0, 0.0]]], [[0.0, 0.0, 0.0]], [name])
    points = [sympy.Integer(1), sympy.Integer(-1), sympy.Rational(1, 2), sympy.Rational(-3, 4), sympy.Integer(0),
              sympy.Integer(20)]
    X = np.array([[float(v)] for v in points])
    x = sympy.Symbol("x")
    logits = [40 * x, -40 * x, sympy.Integer(0)]
    for backend in ("numpy", "numba"):
        got = symnet.compile(net, ("value", "jacobian", "hessian", (0, 0, 0)), backend=backend, strategy=strategy)(X)
        for i, logit in enumerate(logits):
            s = sympy.exp(logit) / sum(sympy.exp(z) for z in logits) if name == "softmax" else \
                logit - sympy.log(sum(sympy.exp(z) for z in logits))
            for p, value in enumerate(points):
                for order, entry in ((1, got.jacobian[p, i, 0]), (2, got.hessian[p, i, 0, 0]), (3, got[(0, 0, 0)][p, i])):
                    exact = float(sympy.diff(s, x, order).subs(x, value).evalf(60, maxn=4000))  # e^-800 terms
                    # at the tie x = 0 an odd derivative of the even s2 is 0: round-off of terms ~40^order
                    tolerance = 1e-14 * (abs(exact) if value != 0 else 40 ** order)
                    assert abs(entry - exact) <= tolerance, (backend, i, value, order, entry, exact)


@pytest.mark.parametrize("strategy", ["layered", "expression"])
def test_log_softmax_values_keep_their_digits_next_to_a_dominant_unit(strategy):
    """log_softmax(0, -40, -40)_0 = -log(1 + 2e^-40) = -8.5e-18: log1p of the other units' sum,
    where log of the rounded sum gives 0; against mpmath at 50 digits, and in exported code."""
    mpmath.mp.dps = 50
    for logits in ([0.0, -40.0, -40.0], [700.0, 710.0, 720.0], [0.0, -10.0, -60.0], [3.0, 3.0, -30.0]):
        net = symnet.Network.from_weights([np.array([logits])], None, ["log_softmax"])
        exact = [float(mpmath.mpf(z) - mpmath.log(sum(mpmath.exp(mpmath.mpf(k)) for k in logits))) for z in logits]
        for backend in ("numpy", "numba"):
            got = symnet.compile(net, "value", strategy=strategy, backend=backend)(np.array([[1.0]])).value[0]
            np.testing.assert_allclose(got, exact, rtol=4e-16, atol=0)
        np.testing.assert_allclose(symnet.activations.get("log_softmax").numpy(np.array(logits)), exact, rtol=4e-16)
    namespace: dict = {}
    exec(compile(symnet.io.export(net, "python"), "<export>", "exec"), namespace)  # our own generated code
    np.testing.assert_allclose(namespace["network"](1.0), exact, rtol=4e-16)


@pytest.mark.parametrize("name, constant", [("softmax", 1.0), ("log_softmax", 0.0)])
@pytest.mark.parametrize("strategy", ["expression", "layered"])
def test_a_one_unit_softmax_is_one_everywhere(strategy, name, constant):
    """softmax of one unit is exp(z) / exp(z) = 1, log_softmax z - log(exp(z)) = 0: no overflow past
    |z| = 709 (float32: 88), no 0/0."""
    net = symnet.Network.from_weights([np.array([[1.0]])], None, [name])
    for dtype, big in ((np.float64, 800.0), (np.float32, 100.0)):
        X = np.array([[big], [-big], [0.5]], dtype)
        for backend in ("numpy", "numba"):
            got = symnet.compile(net, ("value", "jacobian", "hessian"), strategy=strategy, backend=backend,
                                 dtype=dtype)(X)
            assert np.array_equal(got.value, np.full((3, 1), constant)) and not got.jacobian.any()
            assert not got.hessian.any()


@pytest.mark.parametrize("name, limit", [("softmax", [[1.0, 0.0]]), ("log_softmax", [[0.0, -np.inf]])])
@pytest.mark.parametrize("strategy", ["expression", "layered"])
def test_a_logit_that_overflows_to_minus_infinity_gives_its_limit(strategy, name, limit):
    """z = (1, -1e300 x) at x = 1e10: the second logit is -inf, softmax (1, 0) with zero slopes,
    log_softmax (0, -inf) (the shift takes the largest value itself, never 0 * -inf)."""
    net = symnet.Network.from_weights([np.array([[0.0, -1e300]])], [np.array([1.0, 0.0])], [name])
    with np.errstate(over="ignore"):
        got = symnet.compile(net, ("value", "jacobian"), strategy=strategy, backend="numpy")(np.array([[1e10]]))
    assert got.value.tolist() == limit and np.isfinite(got.jacobian).all()


def test_auto_counts_a_softmax_layers_statements():
    """A 1 -> 200 softmax asking for values alone has 200 weights but some 1,800 statements
    unrolled (55-63 s of numba compile): auto takes the layered strategy; a 2 -> 3 one stays."""
    rng = np.random.default_rng(0)
    wide = symnet.Network.from_weights([rng.normal(size=(1, 200))], None, ["softmax"])
    kernel = symnet.compile(wide, ("value",), backend="numpy")
    assert kernel.strategy == "layered" and "1800 weight-times-stream terms" in kernel.strategy_reason
    small = symnet.Network.from_weights([rng.normal(size=(2, 3))], None, ["softmax"])
    assert symnet.compile(small, ("value", "jacobian", "hessian"), backend="numpy").strategy == "expression"
