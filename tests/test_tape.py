"""symnet.tape: reverse mode over numpy expressions, each rule against central differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symnet import ResidualError
from symnet.tape import UFUNCS, Traced, gradients


def _check(fn, *arrays, rtol=1e-7):
    leaves = [Traced(a) for a in arrays]
    got = gradients(fn(*leaves), leaves)
    for k, a in enumerate(arrays):
        want = np.zeros_like(a)
        for index in np.ndindex(a.shape):
            step = 1e-6 * max(1.0, abs(a[index]))
            up = [b.copy() for b in arrays]
            up[k][index] += step
            down = [b.copy() for b in arrays]
            down[k][index] -= step
            want[index] = (float(fn(*up)) - float(fn(*down))) / (2 * step)
        np.testing.assert_allclose(got[k], want, rtol=rtol, atol=1e-8)


_RULES = {
    "add, broadcast": (lambda a, b: ((a + b) ** 2).sum(), [(3, 2), (2,)]),
    "sub, reversed": (lambda a, b: ((1.0 - a * b) ** 2).sum(), [(3, 2), (3, 1)]),
    "div both ways": (lambda a, b: (a / (b + 3.0) + 2.0 / (a + 3.0)).sum(), [(4,), (4,)]),
    "power": (lambda a, b: ((a + 3.0) ** 3 + (a + 3.0) ** (b + 1.0)).sum(), [(3,), (3,)]),
    "index and slices": (lambda a, b: (a[:, 0] * a[:, 1] + a[[0, 0, 2], 1] .sum() * b[1]).sum(), [(3, 2), (2,)]),
    "sum and mean": (lambda a, b: np.sum(a, axis=0) @ np.arange(2.0) + np.mean(a * b), [(3, 2), (3, 2)]),
    "stack, concat, transpose, reshape": (
        lambda a, b: (np.stack([a, b], axis=1) ** 2).sum() + np.concatenate([a, b]).T.reshape(-1)[3] * 2,
        [(3,), (3,)]),
    "constant matmul": (lambda a, b: ((np.ones((2, 3)) @ a) * (a @ np.ones(2))[:2, None]).sum() + b.sum(),
                        [(3, 2), (1,)]),
}


@pytest.mark.parametrize("name", sorted(_RULES))
def test_rules_match_central_differences(name):
    fn, shapes = _RULES[name]
    rng = np.random.default_rng(len(name))
    _check(fn, *[rng.uniform(0.2, 1.0, shape) for shape in shapes])


@pytest.mark.parametrize("name", sorted(UFUNCS))
def test_every_ufunc_matches_central_differences(name):
    x = np.array([0.3, 0.7, 1.1])
    _check(lambda a: getattr(np, name)(a).sum() * 1.5, x)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-2, 2), min_size=3, max_size=3), st.integers(0, 3))
def test_composition_rule(values, which):
    """A chain of three ufuncs: the product of their slopes (the chain rule) holds anywhere."""
    x = np.array(values)
    names = [("sin", "tanh", "exp"), ("cos", "arctan", "square"), ("sinh", "cosh", "tanh"), ("exp", "sin", "cos")][which]
    _check(lambda a: (getattr(np, names[2])(getattr(np, names[1])(getattr(np, names[0])(a)))).sum(), x, rtol=1e-6)


def test_unsupported_operations_are_refused_by_name():
    x = Traced(np.array([1.0, 2.0]))
    with pytest.raises(ResidualError, match="np.floor"):
        np.floor(x)
    with pytest.raises(ResidualError, match="np.sort"):
        np.sort(x)
    with pytest.raises(ResidualError, match="np.where"):
        np.where(x > 1.5, x, 0.0)
    with pytest.raises(ResidualError, match="branch"):
        if x[0]:
            pass
    with pytest.raises(ResidualError, match="float"):
        float(x.sum())
    with pytest.raises(ResidualError, match="scalar"):
        gradients(x * 2, [x])
    with pytest.raises(ResidualError, match="not computed from"):
        gradients(np.float64(1.0), [x])


def test_masks_are_plain_arrays_and_reused_values_accumulate():
    x = Traced(np.array([1.0, 2.0, 3.0]))
    mask = x > 1.5
    assert isinstance(mask, np.ndarray) and mask.tolist() == [False, True, True]
    y = (x * mask * x + x).sum()                       # x used three times
    [g] = gradients(y, [x])
    np.testing.assert_array_equal(g, 2 * np.array([1.0, 2.0, 3.0]) * mask + 1.0)
