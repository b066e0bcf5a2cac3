"""Result memory recycled between kernel calls (symnet.kernels._pool)."""

import threading

import numpy as np
import pytest

import symnet
from symnet.kernels import _pool

N = 1 << 16  # value + gradient + Hessian of a 1-input net: 3 * 8 * N bytes, above MIN_BYTES


@pytest.fixture(scope="module")
def kernel():
    net = symnet.Network.from_weights([[[0.7, -1.1]], [[1.3], [0.4]]], [[0.1, 0.2], [0.3]], ["tanh", "linear"])
    return symnet.compile(net, ("value", "jacobian", "hessian"), backend="numpy")


def test_pooled_results_are_large_enough():
    assert 3 * 8 * N >= _pool.MIN_BYTES


def test_a_result_still_held_is_never_overwritten(kernel):
    X = np.linspace(-1, 1, N).reshape(-1, 1)
    first = kernel(X)
    kept = {name: array.copy() for name, array in first.as_dict().items()}
    for _ in range(3):
        kernel(-2 * X)
    for name, array in first.as_dict().items():
        assert np.array_equal(array, kept[name]), name


def test_a_view_keeps_its_memory_alive(kernel):
    X = np.linspace(-1, 1, N).reshape(-1, 1)
    hessian = kernel(X).hessian[:, 0, 0, 0]  # only a view of one array survives
    want = hessian.copy()
    for _ in range(3):
        kernel(3 * X)
    assert np.array_equal(hessian, want)


def test_dropped_results_are_reused(kernel):
    X = np.linspace(-1, 1, N).reshape(-1, 1)
    address = kernel(X).value.ctypes.data
    again = kernel(X)
    assert again.value.ctypes.data == address
    np.testing.assert_array_equal(again.value, kernel(X).value)


def test_pool_is_bounded_and_releasable(kernel):
    X = np.linspace(-1, 1, N).reshape(-1, 1)
    held = [kernel(X) for _ in range(5)]
    assert kernel._pool.nbytes <= _pool.KEEP * 3 * 8 * N + 1024
    assert len({r.value.ctypes.data for r in held}) == 5  # every held result has its own memory
    kernel.release_memory()
    assert kernel._pool.nbytes == 0
    np.testing.assert_array_equal(held[0].value, held[4].value)


def test_small_results_are_not_pooled(kernel):
    kernel.release_memory()
    kernel(np.zeros((4, 1)))
    assert kernel._pool.nbytes == 0


def test_threads_never_share_memory(kernel):
    X = np.linspace(-1, 1, N).reshape(-1, 1)
    want = kernel(X).hessian.copy()
    failures = []

    def work(scale):
        for _ in range(20):
            result = kernel(scale * X)
            expected = kernel(scale * X).hessian  # a second call while the first is held
            if not np.array_equal(result.hessian, expected):
                failures.append(scale)

    threads = [threading.Thread(target=work, args=(s,)) for s in (1.0, -1.0, 0.5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    np.testing.assert_array_equal(kernel(X).hessian, want)


def test_out_arrays_bypass_the_pool(kernel):
    X = np.linspace(-1, 1, N).reshape(-1, 1)
    kernel.release_memory()
    out = symnet.kernels.KernelResult({k: np.empty_like(v) for k, v in kernel(X).as_dict().items()})
    kernel.release_memory()
    kernel(X, out=out)
    assert kernel._pool.nbytes == 0
