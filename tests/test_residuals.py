"""Residual losses (symnet.residuals) and fit(residual=..., terms=...)."""

from __future__ import annotations

import numpy as np
import pytest

import symnet
from symnet import Residual, ResidualError
from symnet.graph import zoo
from symnet.residuals import ResidualLoss


def _f(P):
    return 2 * np.pi ** 2 * np.sin(np.pi * P[:, 0]) * np.sin(np.pi * P[:, 1])


def _boundary(k=8):
    t = np.linspace(0, 1, k)
    return np.concatenate([np.c_[t, 0 * t], np.c_[t, 0 * t + 1], np.c_[0 * t, t], np.c_[0 * t + 1, t]])


def test_derivatives_are_read_from_the_residual():
    net = symnet.Network.symbolic([2, 3, 1], ["tanh", "linear"])
    term = Residual(np.zeros((3, 2)), lambda P, r: r[(1,)][:, 0] + 6 * r.value[:, 0] * r[(0,)][:, 0] + r[(0, 0, 0)][:, 0])
    assert term.derivatives_read(net) == ((1,), "value", (0,), (0, 0, 0))
    assert Residual(np.zeros((1, 2)), lambda P, r: r.grad[:, 0, 1]).derivatives_read(net) == ("jacobian",)


def test_the_loss_and_its_gradient_match_central_differences():
    net = zoo.resnet_mlp(width=6, blocks=1, seed=2)
    rng = np.random.default_rng(0)
    P = rng.uniform(0, 1, (40, 2))

    def kdv(P, r):  # a third-order nonlinear residual, two outputs of it per point
        u, ux, ut, uxxx = r.value[:, 0], r[(0,)][:, 0], r[(1,)][:, 0], r[(0, 0, 0)][:, 0]
        return np.stack([ut + 6 * u * ux + uxxx, np.sin(u) * r.laplacian[:, 0]], axis=1)
    loss = ResidualLoss(net, [Residual(P, kdv), Residual(_boundary(), lambda P, r: r.value[:, 0] - P[:, 0], 3.0)])
    params = loss.kernels[0].params()
    value, grads = loss(params)
    for node, group in params.items():
        for name, array in group.items():
            index = tuple(rng.integers(0, s) for s in array.shape)
            step = 1e-6
            array[index] += step
            up = loss(params)[0]
            array[index] -= 2 * step
            down = loss(params)[0]
            array[index] += step
            want = (up - down) / (2 * step)
            assert abs(grads[node][name][index] - want) <= 1e-6 * max(1.0, abs(want)), (node, name)
    # the value itself, from a plain kernel
    r = symnet.compile_vjp(net, ("value", "laplacian", (0,), (1,), (0, 0, 0)))(P)
    u = r.value[:, 0]
    res = np.stack([r[(1,)][:, 0] + 6 * u * r[(0,)][:, 0] + r[(0, 0, 0)][:, 0], np.sin(u) * r.laplacian[:, 0]], 1)
    rb = symnet.compile_vjp(net, ("value",))(_boundary()).value[:, 0] - _boundary()[:, 0]
    assert value == pytest.approx(np.mean(res ** 2) + 3.0 * np.mean(rb ** 2), rel=1e-13)


def test_fit_solves_a_small_poisson_problem_and_is_repeatable():
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 1, (200, 2))
    start = symnet.Network.symbolic([2, 12, 12, 1], ["tanh", "tanh", "linear"])
    kwargs = dict(residual=lambda P, r: r.laplacian[:, 0] + _f(P),
                  terms=[Residual(_boundary(), lambda P, r: r.value[:, 0], weight=10.0)], seed=3)
    first = symnet.fit(start, X, optimizer="adam", max_iter=150, lr=5e-3, **kwargs)
    again = symnet.fit(start, X, optimizer="adam", max_iter=150, lr=5e-3, **kwargs)
    np.testing.assert_array_equal(first.history, again.history)
    assert first.history[-1] < 0.2 * first.history[0]
    refined = symnet.fit(first.net, X, max_iter=200, **kwargs)
    assert refined.net.is_chain and refined.net.layer_sizes == (2, 12, 12, 1)
    assert refined.loss < 0.1 * first.loss


def test_fit_combines_residuals_with_value_targets_on_a_graph():
    net = zoo.modified_mlp(width=5, depth=1, seed=0)
    X = np.random.default_rng(2).uniform(-1, 1, (30, 2))
    y = np.where(np.arange(30) % 3 == 0, np.nan, X[:, 0] ** 2)
    result = symnet.fit(net, X, y, residual=lambda P, r: r.hessian[:, 0, 0, 1], max_iter=30)
    assert not result.net.is_chain and result.loss < result.history[0]
    # the same data loss alone, through the residual path, equals fit's ordinary loss
    alone = symnet.fit(net, X, y, terms=[Residual(X[:1], lambda P, r: 0.0 * r.value[:, 0])], max_iter=1)
    plain = symnet.fit(net, X, y, max_iter=1)
    assert alone.history[0] == pytest.approx(plain.history[0], rel=1e-12)


def test_residual_mistakes_get_clear_errors():
    net = symnet.Network.symbolic([2, 3, 1], ["tanh", "linear"])
    X = np.zeros((4, 2))
    with pytest.raises(ResidualError, match="reads none of its results"):
        symnet.fit(net, X, residual=lambda P, r: P[:, 0])
    with pytest.raises(ResidualError, match="no derivative symnet computes"):
        symnet.fit(net, X, residual=lambda P, r: r.curl[:, 0])
    with pytest.raises(ResidualError, match="one row per point"):
        symnet.fit(net, X, residual=lambda P, r: r.laplacian.sum())
    with pytest.raises(ResidualError, match="np.floor"):
        symnet.fit(net, X, residual=lambda P, r: np.floor(r.value[:, 0]))
    with pytest.raises(ResidualError, match="leaves out"):
        symnet.fit(net, terms=[Residual(X, lambda P, r: r.laplacian[:, 0], derivatives=("value",))])
    with pytest.raises(symnet.InputError, match="loss='mse'"):
        symnet.fit(net, X, residual=lambda P, r: r.value[:, 0], loss="cross_entropy")
    with pytest.raises(symnet.InputError, match="terms\\[0\\]"):
        symnet.fit(net, terms=[(X, lambda P, r: r.value)])
    with pytest.raises(symnet.ShapeError, match=r"points must have shape \(n, 2\)"):
        symnet.fit(net, terms=[Residual(np.zeros((3, 3)), lambda P, r: r.value[:, 0])])
    with pytest.raises(symnet.InputError, match="weight"):
        symnet.fit(net, terms=[Residual(X, lambda P, r: r.value[:, 0], weight=-1)])


def test_minibatches_take_rows_of_the_first_term():
    net = symnet.Network.symbolic([2, 6, 1], ["tanh", "linear"])
    X = np.random.default_rng(5).uniform(0, 1, (64, 2))
    kwargs = dict(residual=lambda P, r: r.laplacian[:, 0] + _f(P), optimizer="adam", max_iter=5, batch_size=16,
                  terms=[Residual(_boundary(3), lambda P, r: r.value[:, 0])], seed=1)
    first, again = symnet.fit(net, X, **kwargs), symnet.fit(net, X, **kwargs)
    np.testing.assert_array_equal(first.history, again.history)
    assert first.n_evaluations == 1 + 5 * (4 + 1)        # the start, then per epoch 4 batches and the full loss


def test_broadcasting_and_outside_data_are_caught_and_data_is_given_by_rows():
    net = symnet.Network.from_weights([[[1.0, 0.5]], [[1.0], [1.0]]], [[0.0, 0.0], [0.0]], ["tanh", "linear"])
    X = np.linspace(-1, 1, 7)
    with pytest.raises(ResidualError, match="broadcasts one point against the others"):
        symnet.fit(net, X, residual=lambda P, r: r.laplacian - np.sin(P[:, 0]))
    Y = np.cos(X)
    with pytest.raises(ResidualError, match="data=array"):
        symnet.fit(net, X, residual=lambda P, r: r.value[:, 0] - Y)
    term = Residual(X, lambda P, r, y: r.value[:, 0] - y, data=Y)
    loss = ResidualLoss(net, [term])
    value, _ = loss(loss.kernels[0].params())
    assert value == pytest.approx(np.mean((symnet.compile_vjp(net)(X).value[:, 0] - Y) ** 2), rel=1e-14)
    with pytest.raises(symnet.ShapeError, match="one row per point"):
        ResidualLoss(net, [Residual(X, lambda P, r, y: r.value[:, 0] - y, data=Y[:3])])


def test_new_user_findings_get_clear_answers():
    net = symnet.Network.from_weights([[[1.0, 0.5]], [[1.0], [1.0]]], [[0.0, 0.0], [0.0]], ["tanh", "linear"])
    X = np.linspace(0.1, 1, 6)
    with pytest.raises(ResidualError, match="cannot branch"):
        symnet.fit(net, X, residual=lambda P, r: r.value[:, 0] - 1 if r.value[0, 0] > 0 else r.value[:, 0])
    with pytest.raises(ResidualError, match=r"cannot use \.copy"):
        symnet.fit(net, X, residual=lambda P, r: r.value.copy()[:, 0])
    squeezed = symnet.fit(net, X, residual=lambda P, r: r.laplacian.squeeze() + 1.0, max_iter=2)
    assert squeezed.n_iterations >= 1
    aliased = Residual(X, lambda P, r: r.gradient[:, 0, 0] - 1.0, derivatives="gradient")
    assert aliased.derivatives_read(net) == ("gradient",)
    assert symnet.fit(net, terms=[aliased], max_iter=2).n_iterations >= 1
    with pytest.raises(symnet.InputError, match=r"term 0 \(residual\): the residual is not finite at 1 of its points"):
        symnet.fit(net, X, residual=lambda P, r: r.value[:, 0] - np.log(P[:, 0] - 0.1))
    kernel = symnet.compile_vjp(net, ("value", (0, 0)))
    grads, _ = kernel.vjp(X[:, None], {(0, 0): np.ones((6, 1))})
    assert set(grads) == {"z1", "z2"}
    with pytest.raises(AttributeError, match="no result 'laplcian'"):
        kernel(X[:, None]).laplcian
    with pytest.raises(symnet.InputError, match="at least one derivative"):
        symnet.compile_vjp(net, ())


def test_each_terms_share_of_the_loss_is_kept_and_adds_up_to_the_history():
    net = zoo.resnet_mlp(width=4, blocks=1, seed=0)
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 1, (40, 2))
    y = np.where(np.arange(40) % 2 == 0, np.nan, X[:, 0])
    terms = [Residual(_boundary(3), lambda P, r: r.value[:, 0], weight=10.0, name="boundary"),
             Residual(X[:5], lambda P, r: r.jacobian[:, 0, 0] - 1.0),
             Residual(X[:5], lambda P, r: r.value[:, 0], weight=0.0, name="watched")]
    for optimizer in ("lbfgs", "adam"):
        result = symnet.fit(net, X, y, residual=lambda P, r: r.laplacian[:, 0] + _f(P), terms=terms,
                            optimizer=optimizer, max_iter=15)
        assert list(result.terms) == ["values y", "residual", "boundary", "terms[1]", "watched"]
        for name, shares in result.terms.items():
            assert shares.shape == result.history.shape, name
        np.testing.assert_allclose(sum(result.terms.values()), result.history, rtol=1e-13)
        assert np.all(result.terms["watched"] == 0.0) and np.all(result.terms["boundary"] > 0)
        # each share is that term's loss alone at the trained weights
        alone = symnet.fit(result.net, terms=[terms[0]], max_iter=1)
        assert alone.history[0] == pytest.approx(result.terms["boundary"][-1], rel=1e-12)
    plain = symnet.fit(net, X, y, max_iter=3)
    assert plain.terms == {}


def test_adam_takes_a_learning_rate_schedule():
    net = symnet.Network.symbolic([2, 5, 1], ["tanh", "linear"])
    X = np.random.default_rng(6).uniform(0, 1, (30, 2))
    kwargs = dict(residual=lambda P, r: r.laplacian[:, 0] + _f(P), optimizer="adam", max_iter=20, seed=2)
    fixed = symnet.fit(net, X, lr=3e-3, **kwargs)
    constant = symnet.fit(net, X, lr=lambda epoch: 3e-3, **kwargs)
    np.testing.assert_array_equal(fixed.history, constant.history)
    seen = []
    decayed = symnet.fit(net, X, lr=lambda epoch: seen.append(epoch) or 3e-3 * 0.5 ** epoch, **kwargs)
    assert seen == list(range(1, 21)) and not np.array_equal(decayed.history, fixed.history)
    for bad, message in ((lambda k: 0.0, r"lr\(1\) gave 0\.0"), (lambda k: float("nan") if k == 3 else 1e-3,
                                                                  r"lr\(3\) gave nan"),
                         (lambda k: 1 / 0, r"lr\(1\) raised ZeroDivisionError")):
        with pytest.raises(symnet.InputError, match=message):
            symnet.fit(net, X, lr=bad, **kwargs)
