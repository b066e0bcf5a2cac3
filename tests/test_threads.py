"""Chunks on several threads: every range once, progress from the caller, errors raised, BLAS left alone."""

import os
import threading
import time

import numpy as np
import pytest
import threadpoolctl

import symnet
from symnet.kernels import _threads
from symnet.kernels._threads import over_chunks

from conftest import random_network


def blas_threads() -> list[int]:
    """Thread counts of numpy's BLAS (the one the kernels call; scipy's is left alone)."""
    package = os.path.dirname(np.__file__)
    infos = [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    own = [info for info in infos if info["filepath"].startswith(package)] or infos
    return [info["num_threads"] for info in own]


def test_serial_ranges_in_order_with_progress():
    spans, seen = [], []
    over_chunks(10, 4, lambda start, stop: spans.append((start, stop)), seen.append)
    assert spans == [(0, 4), (4, 8), (8, 10)] and seen == [4, 8, 10]
    over_chunks(0, 4, lambda start, stop: spans.append("never"), seen.append)
    assert "never" not in spans


def test_parallel_covers_every_point_once_on_two_threads_and_reports_from_the_caller():
    n, caller = 20 * _threads.SMALLEST_SHARE, threading.get_ident()
    hits = np.zeros(n, dtype=int)
    workers, reporters, seen, blas_inside = set(), set(), [], []

    def work(start, stop):
        assert stop - start <= _threads.SMALLEST_SHARE  # never more than the chunk asked for
        workers.add(threading.get_ident())
        blas_inside.append(blas_threads())
        time.sleep(0.002)  # long enough that both threads take some ranges
        hits[start:stop] += 1

    def report(done):
        reporters.add(threading.get_ident())
        seen.append(done)

    before = blas_threads()
    over_chunks(n, _threads.SMALLEST_SHARE, work, report, threads=2)
    assert (hits == 1).all()
    assert len(workers) == 2 and caller in workers and reporters == {caller}
    assert seen[-1] == n and seen == sorted(set(seen))
    assert all(counts == [1] for counts in blas_inside)
    assert blas_threads() == before  # restored


def test_a_small_batch_stays_in_the_calling_thread():
    workers = set()
    over_chunks(_threads.SMALLEST_SHARE, 256, lambda start, stop: workers.add(threading.get_ident()), threads=2)
    assert workers == {threading.get_ident()}


def test_the_first_error_is_raised_and_stops_the_rest():
    started = []

    def work(start, stop):
        started.append(start)
        if start == 0:
            raise ValueError("chunk 0 failed")
        time.sleep(0.001)

    with pytest.raises(ValueError, match="chunk 0 failed"):
        over_chunks(100 * _threads.SMALLEST_SHARE, _threads.SMALLEST_SHARE, work, threads=2)
    assert len(started) < 100


def test_the_blas_limit_is_counted_across_concurrent_calls():
    before = blas_threads()
    inside, leave = threading.Event(), threading.Event()

    def other():
        with _threads._blas_on_one_thread():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(5)
    with _threads._blas_on_one_thread():
        pass
    assert blas_threads() == [1]  # the other call is still running
    leave.set()
    thread.join()
    assert blas_threads() == before


def test_where_blas_threads_cannot_be_set_kernels_say_they_run_serially(monkeypatch):
    net = random_network(np.random.default_rng(0), [2, 30, 1], ["tanh", "linear"])
    assert _threads._blas_thread_count() is not None  # numpy's wheel bundles OpenBLAS
    assert symnet.compile(net, strategy="layered").threads == _threads.thread_count() > 1
    monkeypatch.setattr(_threads, "_blas_thread_count", lambda: None)
    kernel = symnet.compile(net, strategy="layered", cache=False)
    assert kernel.threads == 1
    X = np.random.default_rng(1).normal(size=(5000, 2))
    np.testing.assert_allclose(kernel(X).hessian, symnet.compile(net, strategy="expression")(X).hessian,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sizes, acts, request_", [
    ([1, 32, 32, 1], ["tanh", "tanh", "linear"], ("value", "jacobian", "hessian")),
    ([3, 24, 24, 1], ["softplus", "gelu", "linear"], ("value", "jacobian", "hessian")),
    ([2, 40, 40, 1], ["tanh", "silu", "linear"], ("value", "laplacian")),
])
def test_parallel_kernels_agree_with_serial_ones(sizes, acts, request_):
    net = random_network(np.random.default_rng(len(acts) + sizes[0]), sizes, acts)
    parallel = symnet.compile(net, request_, strategy="layered")
    serial = symnet.compile(net, request_, strategy="layered", parallel=False)
    assert parallel.threads == _threads.thread_count() and serial.threads == 1
    X = np.random.default_rng(1).normal(size=(50_000, sizes[0]))
    got, want = parallel(X), serial(X)
    for name, array in want.as_dict().items():
        np.testing.assert_allclose(got[name], array, rtol=1e-13, atol=1e-13)


def test_sums_over_chunks_are_added_in_point_order():
    n = 40 * _threads.SMALLEST_SHARE
    values = np.random.default_rng(0).normal(size=n) * 10.0 ** np.random.default_rng(1).integers(-8, 8, n)

    def work(start, stop, sums):
        time.sleep(0.001 * (start % 3))  # the threads finish out of order
        sums[0][0][0] += values[start:stop].sum()
        return float(stop - start)

    results = [_threads.sum_over_chunks(n, 2 * _threads.SMALLEST_SHARE, work, [(np.zeros(1),)], threads=2)
               for _ in range(3)]
    assert all(total == n for total, _ in results)
    assert results[0][1][0][0][0] == results[1][1][0][0][0] == results[2][1][0][0][0]  # bit for bit
    assert np.isclose(results[0][1][0][0][0], values.sum(), rtol=1e-9, atol=1e-6)


def test_parallel_loss_gradients_agree_with_serial_ones_and_repeat_exactly():
    from symnet.kernels._sobolev import SobolevLoss
    from symnet.kernels._loss import LossKernel

    rng = np.random.default_rng(2)
    net = random_network(rng, [2, 16, 16, 1], ["tanh", "tanh", "linear"])
    X = rng.normal(size=(20_000, 2))
    Y = np.sin(X[:, :1])
    DY = np.where(rng.random((20_000, 1, 2)) < 0.5, np.nan, 1.0)  # some derivative targets missing
    weights = [(layer.weight_array(), layer.bias_array()) for layer in net.layers]
    pairs = [(LossKernel(net, "mse", parallel=False), LossKernel(net, "mse")),
             (SobolevLoss(net.activations, X, Y, DY, parallel=False), SobolevLoss(net.activations, X, Y, DY))]
    for serial, parallel in pairs:
        call = (lambda kernel: kernel(X, Y, weights)) if isinstance(serial, LossKernel) else (lambda kernel: kernel(weights))
        (want, want_grads), (got, got_grads), (again, again_grads) = call(serial), call(parallel), call(parallel)
        assert np.isclose(got, want, rtol=1e-13) and got == again
        for (dW, db), (dW_want, db_want), (dW_again, db_again) in zip(got_grads, want_grads, again_grads):
            np.testing.assert_allclose(dW, dW_want, rtol=1e-11, atol=1e-15)
            np.testing.assert_allclose(db, db_want, rtol=1e-11, atol=1e-15)
            assert np.array_equal(dW, dW_again) and np.array_equal(db, db_again)
