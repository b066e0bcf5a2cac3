"""Finite differences: 004's numbers, the convergence rates, honest error estimates, the pitfalls."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symnet import InputError, ShapeError
from symnet.check import finite_differences, finite_differences_params


def function_2(X):
    """004's f(x0, x1) = x0**2 + x1**2 on a batch (N, 2)."""
    return X[:, 0] ** 2 + X[:, 1] ** 2


def wavy(X):
    """Two outputs with every kind of second derivative, and their exact derivatives below."""
    a, b, c = X[:, 0], X[:, 1], X[:, 2]
    return np.stack([np.sin(a) * np.exp(b) + c**3 * a, np.cos(b * c)], axis=1)


def wavy_jacobian(x):
    a, b, c = x
    return np.array([[np.cos(a) * np.exp(b) + c**3, np.sin(a) * np.exp(b), 3 * c**2 * a],
                     [0.0, -c * np.sin(b * c), -b * np.sin(b * c)]])


def wavy_hessian(x):
    a, b, c = x
    cross = -np.sin(b * c) - b * c * np.cos(b * c)
    return np.array([
        [[-np.sin(a) * np.exp(b), np.cos(a) * np.exp(b), 3 * c**2],
         [np.cos(a) * np.exp(b), np.sin(a) * np.exp(b), 0.0],
         [3 * c**2, 0.0, 6 * c * a]],
        [[0.0, 0.0, 0.0], [0.0, -c * c * np.cos(b * c), cross], [0.0, cross, -b * b * np.cos(b * c)]],
    ])


def test_004_numerical_gradient_of_function_2():
    fd = finite_differences(function_2, [[3.0, 4.0], [0.0, 2.0], [3.0, 0.0]])
    np.testing.assert_allclose(fd.derivative, [[6, 8], [0, 4], [6, 0]], atol=1e-9)
    assert fd.derivative.shape == fd.error.shape == (3, 2)
    assert np.all(np.abs(fd.derivative - [[6, 8], [0, 4], [6, 0]]) <= fd.error)


def test_004_partial_derivatives_one_point():
    fd = finite_differences(function_2, [3.0, 4.0])
    np.testing.assert_allclose(fd.derivative, [6.0, 8.0], atol=1e-9)


def test_the_quotient_divides_by_2h():
    """004's seed wrote (f(x+h) - f(x-h)) / 2*h; a line of slope 7 must come out as 7."""
    fd = finite_differences(lambda X: 7 * X[:, 0], [[3.0], [-1e6]])
    np.testing.assert_allclose(fd.derivative, [[7.0], [7.0]], rtol=1e-10)
    assert np.all(np.abs(fd.derivative - 7) <= fd.error)


def test_a_step_that_vanishes_is_refused():
    """004's h = 1e-50: x + h == x, so the quotient would be 0/0."""
    with pytest.raises(InputError, match=r"step 1e-50 vanishes next to x = 3.0 .*step=None"):
        finite_differences(function_2, [3.0, 4.0], step=1e-50)


def test_the_step_is_representable_and_scales_with_x():
    X = np.array([[0.1, 3.0, -7e5]])
    fd = finite_differences(lambda P: P.sum(axis=1), X)
    assert np.all((X + fd.step) - X == fd.step)
    expected = np.finfo(float).eps ** (1 / 3) * np.maximum(1.0, np.abs(X))
    np.testing.assert_allclose(fd.step, expected, rtol=1e-9)
    np.testing.assert_allclose(fd.reach, 4 * fd.step)
    assert finite_differences(lambda P: P.sum(axis=1), X, order=2, richardson=True).reach == pytest.approx(
        8 * np.finfo(float).eps ** (1 / 6) * np.maximum(1.0, np.abs(X)))


@pytest.mark.parametrize("richardson", [False, True])
def test_jacobian_and_hessian_of_a_vector_function(richardson):
    X = np.random.default_rng(0).normal(size=(6, 3)) * 1.5
    jac = finite_differences(wavy, X, richardson=richardson)
    hess = finite_differences(wavy, X, order=2, richardson=richardson)
    assert jac.derivative.shape == (6, 2, 3) and hess.derivative.shape == (6, 2, 3, 3)
    exact_j = np.stack([wavy_jacobian(x) for x in X])
    exact_h = np.stack([wavy_hessian(x) for x in X])
    assert np.all(np.abs(jac.derivative - exact_j) <= jac.error)
    assert np.all(np.abs(hess.derivative - exact_h) <= hess.error)
    # the estimates are useful, not just safe: near the optimum accuracy of each method
    assert jac.error.max() < (1e-10 if richardson else 1e-8) * np.abs(exact_j).max()
    assert hess.error.max() < (1e-7 if richardson else 1e-5) * np.abs(exact_h).max()


def _rate(order, richardson, steps):
    x = np.array([[0.7, -0.4, 1.1]])
    exact = (wavy_jacobian if order == 1 else wavy_hessian)(x[0])
    errors = [np.abs(finite_differences(wavy, x, order, step=h, richardson=richardson).derivative[0] - exact).max()
              for h in steps]
    return np.polyfit(np.log(steps), np.log(errors), 1)[0]


@pytest.mark.parametrize("order, richardson, expected", [(1, False, 2), (2, False, 2), (1, True, 4)])
def test_error_shrinks_at_the_expected_rate(order, richardson, expected):
    """Central differences are second order in h; Richardson extrapolation makes them fourth order."""
    steps = np.geomspace(0.2, 0.02, 5) if richardson else np.geomspace(0.05, 0.002, 6)
    assert _rate(order, richardson, steps) == pytest.approx(expected, abs=0.25)


@settings(max_examples=40, deadline=None)
@given(point=st.lists(st.floats(-30, 30), min_size=3, max_size=3), order=st.sampled_from([1, 2]),
       richardson=st.booleans())
def test_the_error_estimate_is_honest(point, order, richardson):
    X = np.array([point]) / 10  # cos(b c) with |b c| up to 9: a few oscillations, exp up to e**3
    fd = finite_differences(wavy, X, order, richardson=richardson)
    exact = (wavy_jacobian if order == 1 else wavy_hessian)(X[0])
    assert np.all(np.abs(fd.derivative[0] - exact) <= fd.error[0])


def test_a_function_that_varies_on_the_scale_of_the_step_gets_smaller_steps():
    """sin(20000 x): the default second-order step 1.2e-4 spans 2.4 radians, far from asymptotic."""
    X = np.array([[0.3], [1.0]])
    fd = finite_differences(lambda P: np.sin(2e4 * P[:, 0]), X, order=2)
    exact = -4e8 * np.sin(2e4 * X)
    assert np.all(fd.step < np.finfo(float).eps ** 0.25 / 2)
    assert np.all(np.abs(fd.derivative[:, :, 0] - exact) <= fd.error[:, :, 0])
    assert np.all(fd.error[:, :, 0] < 0.5 * np.abs(exact))
    fixed = finite_differences(lambda P: np.sin(2e4 * P[:, 0]), X, order=2, step=1.2e-4)
    np.testing.assert_array_equal(fixed.step, (X + 1.2e-4) - X)  # a step given is kept


def test_noise_raises_the_error_estimate():
    quiet = finite_differences(function_2, [3.0, 4.0])
    loud = finite_differences(function_2, [3.0, 4.0], noise=1e-6)
    assert np.all(loud.error > 100 * quiet.error)
    assert finite_differences(wavy, [[1.0, 2.0, 3.0]], noise=[[1e-9, 0.0]]).error.shape == (1, 2, 3)


def test_004_simple_net_gradient_with_respect_to_W():
    x, t = np.array([0.6, 0.9]), np.array([0.0, 0.0, 1.0])

    def loss(W):
        y = np.exp(x @ W) / np.exp(x @ W).sum()
        return -np.sum(t * np.log(y))

    W = np.array([[0.47355232, 0.9977393, 0.84668094], [0.85557411, 0.03563661, 0.69422093]])
    fd = finite_differences_params(loss, W)
    expected = [[0.21924763, 0.14356247, -0.36281009], [0.32887144, 0.2153437, -0.54421514]]
    assert fd.derivative.shape == fd.error.shape == fd.step.shape == (2, 3)
    np.testing.assert_allclose(fd.derivative, expected, atol=5e-9)
    assert fd.error.max() < 1e-8
    second = finite_differences_params(loss, W, order=2)
    assert second.derivative.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(second.derivative.reshape(6, 6), second.derivative.reshape(6, 6).T, atol=1e-7)


def test_errors_name_the_argument():
    with pytest.raises(InputError, match="order must be 1 .* or 2"):
        finite_differences(function_2, [1.0, 2.0], order=3)
    with pytest.raises(ShapeError, match=r"X has shape \(2, 2, 2\)"):
        finite_differences(function_2, np.zeros((2, 2, 2)))
    with pytest.raises(InputError, match="inf or nan"):
        finite_differences(function_2, [1.0, np.nan])
    with pytest.raises(ShapeError, match=r"f returned shape \(3,\) for a batch of shape \(12, 2\)"):
        finite_differences(lambda X: np.zeros(3), [1.0, 2.0])
    with pytest.raises(InputError, match="step must be positive"):
        finite_differences(function_2, [1.0, 2.0], step=-1e-3)
    with pytest.raises(ShapeError, match="step has shape"):
        finite_differences(function_2, [1.0, 2.0], step=[1e-3, 1e-3, 1e-3])
    with pytest.raises(ShapeError, match="noise has shape"):
        finite_differences(function_2, [[1.0, 2.0]], noise=[1e-9, 1e-9])
    with pytest.raises(ShapeError, match="loss must return one number"):
        finite_differences_params(lambda W: W, np.ones(2))
