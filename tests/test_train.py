"""symnet.train.fit: exact gradients (checked against finite differences and param_grad), the loss
it minimises, both optimizers, early stopping, progress, and errors."""

from __future__ import annotations

import numpy as np
import pytest

import symnet
from symnet.check.backprop import backprop
from symnet.errors import InputError, ShapeError
from symnet.kinks import kinks
from symnet.train import FitResult, _Objective, _pack, _start, _unpack, fit


def random_net(seed: int, sizes: list[int], activations: list[str], scale: float = 0.8) -> symnet.Network:
    rng = np.random.default_rng(seed)
    return symnet.Network.from_weights([rng.normal(scale=scale, size=(a, b)) for a, b in zip(sizes, sizes[1:])],
                                       [rng.normal(scale=0.3, size=b) for b in sizes[1:]], activations)


def weights_of(net: symnet.Network) -> np.ndarray:
    return _pack([(layer.weight_array(), layer.bias_array()) for layer in net.layers])


def with_gaps(rng: np.random.Generator, array: np.ndarray, fraction: float) -> np.ndarray:
    array = array.copy()
    array[rng.random(array.shape) < fraction] = np.nan
    return array


def assert_gradient_matches_finite_differences(objective: _Objective, theta: np.ndarray) -> None:
    value, gradient = objective(theta)
    fd = symnet.finite_differences_params(lambda t: objective(t)[0], theta)
    assert np.all(np.abs(gradient - fd.derivative) <= fd.error + 1e-12), np.max(np.abs(gradient - fd.derivative))
    assert np.max(np.abs(gradient)) > 1e-3  # a real test, not zeros against zeros


# --- the gradient -------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes, activations", [
    ([2, 4, 3, 2], ["tanh", "sigmoid", "linear"]),
    ([3, 3, 3, 2], ["softplus", "gelu", "tanh"]),
    ([2, 3, 3, 1], ["elu(0.5)", "silu", "linear"]),
    ([1, 4, 1], ["square", "sin"]),
])
def test_gradient_with_derivative_targets_matches_finite_differences(sizes, activations):
    rng = np.random.default_rng(len(sizes) + sizes[0])
    net = random_net(1, sizes, activations)
    n, d, m = 7, sizes[0], sizes[-1]
    X = rng.normal(size=(n, d))
    y = with_gaps(rng, rng.normal(size=(n, m)), 0.3)
    dy = with_gaps(rng, rng.normal(size=(n, m, d)), 0.4)
    objective = _Objective(net, X, y, dy, "mse", value_weight=0.7, derivative_weight=1.3)
    assert objective.kind == "sobolev"
    assert_gradient_matches_finite_differences(objective, weights_of(net))


def test_gradient_of_relu_nets_away_from_kinks_matches_finite_differences():
    rng = np.random.default_rng(5)
    net = random_net(2, [2, 5, 4, 1], ["relu", "leaky_relu(0.2)", "linear"])
    X = rng.normal(size=(40, 2))
    X = X[~kinks(net, X, tol=1e-3).near][:8]  # finite differences must not step over a kink
    assert len(X) == 8
    objective = _Objective(net, X, rng.normal(size=(8, 1)), rng.normal(size=(8, 1, 2)), "mse", 1.0, 1.0)
    assert_gradient_matches_finite_differences(objective, weights_of(net))


def test_value_only_gradient_equals_param_grad_on_both_paths():
    rng = np.random.default_rng(3)
    net = random_net(3, [2, 3, 2], ["tanh", "sigmoid"])
    X, y = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    exact = [(np.array(dW.tolist(), dtype=float), np.array(db.tolist(), dtype=float).ravel())
             for dW, db in symnet.param_grad(net, "mse", (X, y))]
    kernel_path = _Objective(net, X, y, None, "mse", 1.0, 1.0)
    sobolev_path = _Objective(net, X, y, np.full((5, 2, 2), np.nan), "mse", 1.0, 1.0)
    assert (kernel_path.kind, sobolev_path.kind) == ("compile_loss", "sobolev")
    for objective in (kernel_path, sobolev_path):
        value, gradient = objective(weights_of(net))
        assert value == pytest.approx(np.mean((backprop(net, X).value - y) ** 2), rel=1e-14)
        assert np.allclose(gradient, _pack(exact), rtol=1e-13, atol=1e-15)
    assert_gradient_matches_finite_differences(kernel_path, weights_of(net))


def test_the_loss_is_the_weighted_mean_of_the_given_errors():
    rng = np.random.default_rng(4)
    net = random_net(4, [2, 4, 2], ["tanh", "linear"])
    X = rng.normal(size=(9, 2))
    y, dy = with_gaps(rng, rng.normal(size=(9, 2)), 0.5), with_gaps(rng, rng.normal(size=(9, 2, 2)), 0.5)
    numeric = backprop(net, X)
    value_part = np.nanmean((numeric.value - y) ** 2)
    slope_part = np.nanmean((numeric.jacobian - dy) ** 2)
    loss, _ = _Objective(net, X, y, dy, "mse", 0.25, 4.0)(weights_of(net))
    assert loss == pytest.approx(0.25 * value_part + 4.0 * slope_part, rel=1e-13)
    only_slopes, _ = _Objective(net, X, None, dy, "mse", 0.25, 4.0)(weights_of(net))
    assert only_slopes == pytest.approx(4.0 * slope_part, rel=1e-13)


def small_chunks_and_blocks(monkeypatch) -> None:
    """Chunks and elementwise blocks of 8 points: every seam exercised."""
    from symnet.kernels import _blocks

    monkeypatch.setattr(_blocks, "CHUNK_BYTES", 1)
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 1)


@pytest.mark.parametrize("dy_fraction", [None, 0.3])
def test_chunks_blocks_and_threads_change_no_result(monkeypatch, dy_fraction):
    """53 points in chunks of 8 (the last one short) and blocks of 8 rows, against one of each."""
    rng = np.random.default_rng(8)
    net = random_net(8, [2, 5, 4, 1], ["tanh", "softplus", "linear"])
    X, y = rng.normal(size=(53, 2)), rng.normal(size=(53, 1))
    dy = None if dy_fraction is None else with_gaps(rng, rng.normal(size=(53, 1, 2)), dy_fraction)
    whole = _Objective(net, X, y, dy, "mse", 0.7, 1.3)(weights_of(net))
    small_chunks_and_blocks(monkeypatch)
    objective = _Objective(net, X, y, dy, "mse", 0.7, 1.3)
    for _ in range(2):  # the second call reuses the first one's buffers
        value, gradient = objective(weights_of(net))
        assert value == pytest.approx(whole[0], rel=1e-14)
        np.testing.assert_allclose(gradient, whole[1], rtol=1e-13, atol=1e-15)
    rows = np.arange(3, 50, 2)  # minibatches: a subset of the points, in chunks too
    np.testing.assert_allclose(objective(weights_of(net), rows)[1],
                               _Objective(net, X[rows], y[rows], None if dy is None else dy[rows], "mse", 0.7, 1.3)(
                                   weights_of(net))[1], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("sizes, activations", [([3, 4, 3, 2], ["tanh", "softplus", "sigmoid"]),
                                                 ([2, 5, 1], ["gelu", "linear"]), ([1, 3, 2], ["sin", "tanh"])])
def test_both_schedules_give_the_same_gradient(sizes, activations):
    from symnet.kernels._sobolev import SobolevLoss

    rng = np.random.default_rng(10)
    net = random_net(10, sizes, activations)
    n, d, m = 11, sizes[0], sizes[-1]
    X, y = rng.normal(size=(n, d)), with_gaps(rng, rng.normal(size=(n, m)), 0.3)
    dy = with_gaps(rng, rng.normal(size=(n, m, d)), 0.3)
    weights = [(layer.weight_array(), layer.bias_array()) for layer in net.layers]
    losses = [SobolevLoss(net.activations, X, y, dy, 0.7, 1.3, reverse=reverse) for reverse in (False, True)]
    assert [loss.reverse for loss in losses] == [False, True]
    assert SobolevLoss(net.activations, X, y, dy).reverse == (m < d)  # the one with fewer products
    (tangents, by_tangents), (reverse, by_reverse) = (loss(weights) for loss in losses)
    assert reverse == pytest.approx(tangents, rel=1e-14)
    np.testing.assert_allclose(_pack(by_reverse), _pack(by_tangents), rtol=1e-12, atol=1e-14)


def test_threads_may_share_one_objective():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(9)
    net = random_net(9, [2, 16, 1], ["tanh", "linear"])
    X, y, dy = rng.normal(size=(3000, 2)), rng.normal(size=(3000, 1)), rng.normal(size=(3000, 1, 2))
    for slopes in (None, dy):
        objective = _Objective(net, X, y, slopes, "mse", 1.0, 1.0)
        thetas = [weights_of(random_net(seed, [2, 16, 1], ["tanh", "linear"])) for seed in range(6)]
        alone = [objective(theta) for theta in thetas]
        with ThreadPoolExecutor(3) as pool:
            together = list(pool.map(objective, thetas * 3))
        for (value, gradient), (expected, expected_gradient) in zip(together, alone * 3):
            assert value == expected
            np.testing.assert_array_equal(gradient, expected_gradient)


def test_weights_vector_follows_the_order_of_params():
    net = random_net(5, [2, 3, 1], ["tanh", "linear"])
    twin = symnet.Network.symbolic(net.layer_sizes, net.activations)
    theta = weights_of(net)
    assert twin.subs(dict(zip(twin.params, theta.tolist()))) == net
    assert all(np.shares_memory(W, theta) for W, _ in _unpack(theta, [(2, 3), (3, 1)]))


def test_symbolic_entries_start_glorot_uniform_and_numeric_ones_as_given():
    mixed = symnet.Network.symbolic([4, 6, 1], ["tanh", "linear"]).subs(b2_0=0.5)
    theta = _start(mixed, np.random.default_rng(0))
    (W1, b1), (W2, b2) = _unpack(theta, [(4, 6), (6, 1)])
    assert np.all(np.abs(W1) <= np.sqrt(6 / 10)) and np.all(np.abs(W2) <= np.sqrt(6 / 7)) and W1.std() > 0.1
    assert np.all(b1 == 0) and b2.tolist() == [0.5]
    line = symnet.Network.symbolic([1, 1], "linear")
    with pytest.raises(InputError, match="expression, not a single parameter"):
        fit(line.subs(w1_0_0=2 * line.params[1]), [0.0, 1.0], [0.0, 1.0])  # w = 2 b: not a plain symbol


# --- training -----------------------------------------------------------------------------------


def test_parabola_is_learned_to_1e_3_in_seconds():
    x = np.random.default_rng(42).random(999)
    result = fit(symnet.Network.symbolic([1, 1, 1], ["square", "linear"]), x, x**2 + 2 * x + 2, seed=1)
    coefficients = symnet.coefficients(result.net)
    assert [float(coefficients[p]) for p in (2, 1, 0)] == pytest.approx([1, 2, 2], abs=1e-3)
    assert result.converged and result.seconds < 10
    assert isinstance(result, FitResult) and "lbfgs" in repr(result)
    assert result.history.shape == (result.n_iterations + 1,) and result.history[-1] == result.loss
    assert np.all(np.diff(result.history) <= 0)  # L-BFGS iterations only go down


def test_derivative_data_beats_values_alone_on_the_derivative():
    rng = np.random.default_rng(0)
    f = lambda X: np.sin(X[:, 0]) * np.cos(X[:, 1])  # noqa: E731
    grad = lambda X: np.stack([np.cos(X[:, 0]) * np.cos(X[:, 1]), -np.sin(X[:, 0]) * np.sin(X[:, 1])], 1)  # noqa: E731
    X, test = rng.uniform(-np.pi, np.pi, size=(40, 2)), rng.uniform(-np.pi, np.pi, size=(500, 2))
    start = symnet.Network.symbolic([2, 10, 10, 1], ["tanh", "tanh", "linear"])
    errors = {}
    for name, targets in (("values", {"y": f(X)}), ("sobolev", {"y": f(X), "dy": grad(X)})):
        net = fit(start, X, seed=0, max_iter=400, **targets).net
        errors[name] = np.sqrt(np.mean((backprop(net, test).jacobian[:, 0] - grad(test)) ** 2))
    assert errors["sobolev"] < errors["values"] / 2, errors


def test_derivative_targets_alone_fix_the_slope():
    x = np.linspace(-2, 2, 9)
    start = symnet.Network.from_weights([[[0.5]], [[1.0]]], [[0.0], [0.0]], ["square", "linear"])
    result = fit(start, x, dy=(2 * x + 1).reshape(-1, 1))  # dy (N, d) for one output
    c = symnet.coefficients(result.net)
    assert (float(c[2]), float(c[1])) == pytest.approx((1.0, 1.0), abs=1e-6)  # the constant is left free
    assert result.converged and result.loss < 1e-20


def test_adam_full_batch_and_minibatches_are_repeatable():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 2))
    y = X @ np.array([1.5, -2.0]) + 0.5
    start = symnet.Network.symbolic([2, 1], "linear")
    full = fit(start, X, y, optimizer="adam", lr=0.05, max_iter=600, seed=3)
    assert full.loss < 1e-6 and full.history.shape == (full.n_iterations + 1,)
    assert full.n_evaluations == full.n_iterations + 1
    a = fit(start, X, y, optimizer="adam", lr=0.02, max_iter=40, batch_size=16, seed=7)
    b = fit(start, X, y, optimizer="adam", lr=0.02, max_iter=40, batch_size=16, seed=7)
    c = fit(start, X, y, optimizer="adam", lr=0.02, max_iter=40, batch_size=16, seed=8)
    assert np.array_equal(a.history, b.history) and not np.array_equal(a.history, c.history)
    assert a.n_evaluations == 40 * 4 + 41  # four batches per epoch, one full evaluation per epoch and at start
    assert a.history[-1] < a.history[0] / 10


def test_adam_stops_early_with_patience_and_reports_divergence():
    x = np.linspace(0, 1, 20)
    start = symnet.Network.from_weights([[[1.0]]], [[0.0]], "linear")
    early = fit(start, x, 2 * x, optimizer="adam", lr=0.1, max_iter=5000, patience=5, tol=1e-3)
    assert early.converged and early.n_iterations < 5000 and "5 iterations in a row" in early.message
    exploding = symnet.Network.from_weights([[[0.1]], [[0.1]]], None, ["exp", "exp"])  # exp(w2 exp(w1 x))
    diverged = fit(exploding, np.linspace(0, 1, 10), np.full(10, 1e3), optimizer="adam", lr=50.0, max_iter=100)
    assert not diverged.converged and "diverged" in diverged.message
    assert np.all(np.isfinite(diverged.history)) and diverged.net.is_numeric


def test_progress_history_and_callback(capsys):
    x = np.linspace(-1, 1, 11)
    seen = []

    def watch(iteration, loss, weights):
        seen.append((iteration, loss, [W.copy() for W, _ in weights]))
        return iteration == 3

    result = fit(symnet.Network.symbolic([1, 4, 1], ["tanh", "linear"]), x, np.sin(3 * x), verbose=1, callback=watch)
    assert [s[0] for s in seen] == [1, 2, 3] and result.n_iterations == 3 and not result.converged
    assert "callback asked to stop at iteration 3" in result.message
    assert [s[1] for s in seen] == result.history[1:].tolist()
    printed = capsys.readouterr().out
    assert "fit[lbfgs] iteration      3  loss" in printed and "fit[lbfgs]: 3 iterations" in printed
    quiet = fit(symnet.Network.symbolic([1, 1], "linear"), x, x)
    assert capsys.readouterr().out == "" and quiet.converged


def test_cross_entropy_classification():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 2))
    labels = (X[:, 0] + X[:, 1] + rng.normal(size=60) > 0).astype(int)  # not separable: the weights stay finite
    result = fit(symnet.Network.symbolic([2, 2], "softmax"), X, labels, loss="cross_entropy", max_iter=50)
    predicted = backprop(result.net, X).value.argmax(axis=1)
    assert np.mean(predicted == labels) > 0.75 and result.converged and result.history[-1] < result.history[0] / 2


def test_fit_returns_a_new_network_with_the_same_inputs():
    start = symnet.Network.from_weights([[[1.0], [1.0]]], [[0.0]], "linear", input_names=["u", "v"])
    result = fit(start, [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], [1.0, 2.0, 3.0])
    assert [s.name for s in result.net.inputs] == ["u", "v"] and result.net is not start
    assert start.layers[0].weight_array().tolist() == [[1.0], [1.0]]  # the start is unchanged


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, match", [
    ({"y": np.zeros((5, 2))}, ShapeError, r"y has shape \(5, 2\) but \(5, 1\) is needed \(or \(5,\) for one output\)"),
    ({"y": np.zeros(5), "dy": np.zeros((5, 3))}, ShapeError, r"dy has shape \(5, 3\) but \(5, 2\) or \(5, 1, 2\)"),
    ({}, InputError, "fit needs targets"),
    ({"y": np.full(5, np.nan)}, InputError, "every target is missing"),
    ({"y": np.full(5, np.inf)}, InputError, "y holds inf"),
    ({"y": np.zeros(5), "dy": np.zeros((5, 2)), "loss": "cross_entropy"}, InputError, "need loss='mse'"),
    ({"y": np.zeros(5), "optimizer": "sgd"}, InputError, "optimizer must be one of"),
    ({"y": np.zeros(5), "batch_size": 2}, InputError, "batch_size is for optimizer='adam'"),
    ({"y": np.zeros(5), "lr": lambda epoch: 1e-3}, InputError, "lr: Adam's settings, which L-BFGS does not use"),
    ({"y": np.zeros(5), "beta1": 0.5, "eps": 1e-6}, InputError, "beta1, eps: Adam's settings"),
    ({"y": np.zeros(5), "max_iter": 0}, InputError, "max_iter must be an integer >= 1"),
    ({"y": np.zeros(5), "value_weight": -1.0}, InputError, "value_weight must be >= 0"),
    ({"y": np.zeros(5), "optimizer": "adam", "beta1": 1.0}, InputError, r"beta1 must lie in \[0, 1\)"),
    ({"y": np.zeros(5), "loss": "hinge"}, InputError, "unknown loss 'hinge'"),
])
def test_bad_arguments_are_named(kwargs, error, match):
    net = symnet.Network.symbolic([2, 3, 1], ["tanh", "linear"])
    with pytest.raises(error, match=match):
        fit(net, np.zeros((5, 2)), **kwargs)


def test_bad_points_are_named():
    net = symnet.Network.symbolic([2, 1], "linear")
    with pytest.raises(ShapeError, match=r"X has shape \(4, 3\) but the network takes 2 inputs"):
        fit(net, np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(InputError, match="X holds NaN"):
        fit(net, np.full((4, 2), np.nan), np.zeros(4))
