"""symnet.dask: kernels pickled to worker processes, evaluated, reduced and verified over Dask arrays.

The distributed tests share one ``LocalCluster`` of two single-threaded worker processes on
loopback.  Worker processes inherit the environment, so they share the test session's
``SYMNET_CACHE_DIR`` (set in conftest.py) and find the kernels the tests compiled there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

# Dask is in the `test` extra: without it these tests fail rather than skip.
import cloudpickle  # installed with distributed
import dask
import dask.array as da
import distributed
import numpy as np
import pytest

import symnet
import symnet.dask as sd
from symnet import kernels

from conftest import random_network

DERIVATIVES = ("value", "jacobian", "hessian", "laplacian", (0, 0, 1))
NAMES = ("value", "jacobian", "hessian", "laplacian", "partial_0_0_1")


@pytest.fixture(scope="module")
def small() -> symnet.Network:
    """2-3-3-1 tanh: the expression strategy (every point computed on its own)."""
    return random_network(np.random.default_rng(0), [2, 3, 3, 1], ["tanh", "tanh", "linear"])


@pytest.fixture(scope="module")
def wide() -> symnet.Network:
    """2-16-16-1 tanh: the layered strategy (BLAS products over stacked points)."""
    return random_network(np.random.default_rng(1), [2, 16, 16, 1], ["tanh", "tanh", "linear"], scale=0.3)


@pytest.fixture(scope="module")
def expression_kernel(small: symnet.Network) -> symnet.Kernel:
    kernel = symnet.compile(small, DERIVATIVES)
    assert (kernel.strategy, kernel.backend) == ("expression", "numba")
    return kernel


@pytest.fixture(scope="module")
def layered_kernel(wide: symnet.Network) -> symnet.Kernel:
    kernel = symnet.compile(wide, ("value", "jacobian", "hessian", "laplacian"))
    assert (kernel.strategy, kernel.backend) == ("layered", "numba")
    return kernel


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        yield client


def points(n: int, chunk: int, seed: int = 2) -> tuple[np.ndarray, da.Array]:
    X = np.random.default_rng(seed).uniform(-2, 2, (n, 2))
    return X, da.from_array(X, chunks=(chunk, 2))


def assert_equal_results(got: symnet.KernelResult, want: symnet.KernelResult, names=NAMES) -> None:
    for name in names:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


# --- import and pickling -----------------------------------------------------------------------


def test_import_symnet_does_not_import_dask():
    code = "import sys, symnet; print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("strategy", ["expression", "layered"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernels_pickle_and_rebuild(small, strategy, backend, dtype):
    kernel = symnet.compile(small, ("value", "jacobian", "hessian"), backend=backend, dtype=dtype, strategy=strategy)
    X = np.random.default_rng(3).normal(size=(1000, 2))
    for dumps in (pickle.dumps, cloudpickle.dumps):
        again = pickle.loads(dumps(kernel))
        assert again is not kernel and again.net == kernel.net
        assert (again.strategy, again.backend, again.dtype, again.parallel, again.derivatives) == \
               (kernel.strategy, kernel.backend, kernel.dtype, kernel.parallel, kernel.derivatives)
        assert_equal_results(again(X), kernel(X), ("value", "jacobian", "hessian"))


def test_pickled_kernel_keeps_the_weights_it_was_given(small):
    kernel = symnet.compile(small, "value", backend="numpy")
    other = random_network(np.random.default_rng(9), [2, 3, 3, 1], ["tanh", "tanh", "linear"])
    moved = pickle.loads(pickle.dumps(kernel.with_weights(other)))
    X = np.random.default_rng(4).normal(size=(50, 2))
    assert moved.net == other
    np.testing.assert_array_equal(moved(X).value, symnet.compile(other, "value", backend="numpy")(X).value)
    assert not np.array_equal(moved(X).value, kernel(X).value)


def test_loss_kernels_and_networks_pickle(small):
    assert cloudpickle.loads(cloudpickle.dumps(small)) == small
    loss = symnet.compile_loss(small, "mse")
    X, Y = np.random.default_rng(5).normal(size=(20, 2)), np.random.default_rng(6).normal(size=(20, 1))
    value, grads = loss(X, Y)
    value2, grads2 = pickle.loads(pickle.dumps(loss))(X, Y)
    assert value2 == value
    for (dW, db), (dW2, db2) in zip(grads, grads2):
        np.testing.assert_array_equal(dW2, dW)
        np.testing.assert_array_equal(db2, db)


_FRESH = textwrap.dedent("""
    import json, pickle, sys
    import numpy as np
    from symnet import kernels
    folder = sys.argv[1]
    kernel = pickle.load(open(folder + "/kernel.pkl", "rb"))
    X = np.load(folder + "/X.npy")
    chunk = int(sys.argv[2])
    parts = [kernel(X[start:start + chunk]).as_dict() for start in range(0, len(X), chunk)]
    np.savez(folder + "/out.npz", **{name: np.concatenate([p[name] for p in parts]) for name in parts[0]})
    print(json.dumps({**kernels.stats, "loaded_from_disk": kernel.loaded_from_disk, "strategy": kernel.strategy}))
""")


def fresh_process(kernel: symnet.Kernel, X: np.ndarray, chunk: int, folder: Path, **env: str) -> tuple[dict, dict]:
    """Unpickle ``kernel`` in a new interpreter and evaluate ``X`` chunk by chunk there."""
    (folder / "kernel.pkl").write_bytes(pickle.dumps(kernel))
    np.save(folder / "X.npy", X)
    run = subprocess.run([sys.executable, "-c", _FRESH, str(folder), str(chunk)], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=120)
    assert run.returncode == 0, run.stderr
    with np.load(folder / "out.npz") as out:
        return json.loads(run.stdout), {name: out[name] for name in out.files}


@pytest.mark.parametrize("which", ["expression_kernel", "layered_kernel"])
def test_unpickled_kernel_in_a_fresh_process_uses_the_disk_cache(which, request, tmp_path):
    kernel = request.getfixturevalue(which)  # compiled here: the disk cache is warm
    X = np.random.default_rng(7).normal(size=(20_000, 2))
    stats, out = fresh_process(kernel, X, len(X), tmp_path)
    assert stats["loaded_from_disk"] and stats["strategy"] == kernel.strategy
    assert stats["sources_generated"] == 0 and stats["kernels_built"] == 1
    assert_equal_results(symnet.KernelResult(out), kernel(X), tuple(out))


def test_a_shipped_kernel_is_bytes_until_a_task_uses_it(expression_kernel):
    before = dict(kernels.stats)
    arrived = pickle.loads(pickle.dumps(sd._Shipped.of(expression_kernel)))  # what the scheduler holds
    assert kernels.stats == before  # unpickling the graph compiles nothing
    twin = pickle.loads(pickle.dumps(sd._Shipped.of(expression_kernel)))
    rebuilt = arrived.kernel()
    assert rebuilt is not expression_kernel and twin.kernel() is rebuilt  # one rebuild per process
    assert kernels.stats["sources_generated"] == before["sources_generated"]
    X = np.random.default_rng(3).normal(size=(100, 2))
    assert_equal_results(rebuilt(X), expression_kernel(X))


# --- evaluate, on Dask's threaded scheduler ----------------------------------------------------


def test_evaluate_is_lazy_with_chunks_shapes_and_dtypes(expression_kernel):
    calls = []

    def counted(block):
        calls.append(len(block))
        return block

    X, dX = points(10_001, 2_500)
    result = sd.evaluate(expression_kernel, dX.map_blocks(counted, meta=np.empty((0, 0))))
    assert calls == []  # nothing computed yet
    chunks = dX.chunks[0]
    expected = {"value": (1,), "jacobian": (1, 2), "hessian": (1, 2, 2), "laplacian": (1,), "partial_0_0_1": (1,)}
    for name, trailing in expected.items():
        array = result[name]
        assert isinstance(array, da.Array)
        assert array.shape == (10_001, *trailing) and array.dtype == np.float64
        assert array.chunks == (chunks, *((t,) for t in trailing))
    assert result[(0, 1, 0)] is result["partial_0_0_1"]
    computed = result.compute()
    assert sorted(calls) == sorted(chunks)  # every chunk evaluated once for all five outputs
    assert_equal_results(computed, expression_kernel(X))
    assert repr(result).startswith("DaskKernelResult(value=(10001, 1), jacobian=(10001, 1, 2)")


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_expression_strategy_equals_one_whole_array_call(small, backend):
    kernel = symnet.compile(small, DERIVATIVES, backend=backend)
    X, dX = points(30_000, 7_001)
    assert_equal_results(sd.evaluate(kernel, dX).compute(), kernel(X))


def test_the_old_method_says_where_evaluate_went(small):
    kernel = symnet.compile(small, DERIVATIVES, backend="numpy")
    with pytest.raises(AttributeError, match=r"kernel.map_blocks\(X\) is now symnet.dask.evaluate\(kernel, X\)"):
        kernel.map_blocks
    with pytest.raises(AttributeError, match="'Kernel' object has no attribute 'nothing'"):
        kernel.nothing


def test_layered_strategy_equals_the_same_chunks_evaluated_here(layered_kernel):
    X, dX = points(30_000, 7_001)
    names = ("value", "jacobian", "hessian", "laplacian")
    here = {name: np.concatenate([layered_kernel(X[s:s + 7_001])[name] for s in range(0, 30_000, 7_001)])
            for name in names}
    got = sd.evaluate(layered_kernel, dX).compute(scheduler="sync")
    assert_equal_results(got, symnet.KernelResult(here), names)
    whole = layered_kernel(X)  # another grouping of BLAS rows: equal up to round-off
    for name in names:
        np.testing.assert_allclose(got[name], whole[name], rtol=1e-12, atol=1e-13)


def test_evaluate_float32_integer_and_one_input_points(small):
    kernel32 = symnet.compile(small, ("value", "hessian"), dtype=np.float32, backend="numpy")
    X = np.arange(-50, 50).reshape(50, 2)
    got = sd.evaluate(kernel32, da.from_array(X, chunks=(16, 2))).compute()
    assert got.hessian.dtype == np.float32
    assert_equal_results(got, kernel32(X), ("value", "hessian"))

    line = symnet.Network.from_weights([[[1.5]], [[2.0]]], [[0.1], [0.0]], ["sin", "linear"])
    kernel = symnet.compile(line, ("value", "jacobian"), backend="numpy")
    x = np.linspace(-3, 3, 101)
    result = sd.evaluate(kernel, da.from_array(x, chunks=25))
    assert result.jacobian.shape == (101, 1, 1)
    assert_equal_results(result.compute(), kernel(x), ("value", "jacobian"))


def test_evaluate_merges_chunks_along_the_inputs_and_accepts_unknown_chunk_sizes(expression_kernel):
    X, _ = points(4_000, 4_000)
    split = da.from_array(X, chunks=(1_000, 1))
    assert_equal_results(sd.evaluate(expression_kernel, split).compute(), expression_kernel(X))
    dX = da.from_array(X, chunks=(1_000, 2))
    unknown = dX[dX[:, 0] > 0]  # boolean selection: chunk sizes unknown until computed
    result = sd.evaluate(expression_kernel, unknown)
    assert np.isnan(result.value.shape[0])
    assert_equal_results(result.compute(), expression_kernel(X[X[:, 0] > 0]))


def test_evaluate_rejects_bad_input(expression_kernel, small):
    X, dX = points(100, 50)
    with pytest.raises(symnet.InputError, match="dask.array.Array"):
        sd.evaluate(expression_kernel, X)
    with pytest.raises(symnet.InputError, match="compiled symnet.Kernel"):
        sd.evaluate(small, dX)
    with pytest.raises(symnet.ShapeError, match=r"takes 2 inputs"):
        sd.evaluate(expression_kernel, da.ones((10, 3), chunks=5))
    with pytest.raises(symnet.ShapeError, match=r"takes 2 inputs"):
        sd.evaluate(expression_kernel, da.ones(10, chunks=5))
    with pytest.raises(symnet.InputError, match="complex"):
        sd.evaluate(expression_kernel, da.ones((10, 2), chunks=5, dtype=complex))


# --- mean_squared and verify, on Dask's threaded scheduler --------------------------------------


def poisson_residual(P, result, source):
    return result.laplacian[:, 0] + source


def test_mean_squared_reduces_chunk_by_chunk(expression_kernel):
    X, dX = points(20_000, 3_000)
    source = da.from_array(np.sin(X[:, 0]) * X[:, 1], chunks=7_000)  # other chunks: rechunked to X's
    loss = sd.mean_squared(expression_kernel, dX, poisson_residual, source)
    assert isinstance(loss, da.Array) and loss.shape == () and loss.dtype == np.float64
    local = expression_kernel(X).laplacian[:, 0] + np.sin(X[:, 0]) * X[:, 1]
    np.testing.assert_allclose(loss.compute(), np.mean(local ** 2), rtol=1e-13)
    both = sd.mean_squared(expression_kernel, dX, lambda P, r: np.stack([r.value[:, 0], P[:, 0]], axis=1))
    want = np.mean(np.stack([expression_kernel(X).value[:, 0], X[:, 0]], axis=1) ** 2)
    np.testing.assert_allclose(both.compute(), want, rtol=1e-13)


def test_mean_squared_rejects_bad_input(expression_kernel):
    X, dX = points(100, 50)
    with pytest.raises(symnet.InputError, match="Dask array with one row per point"):
        sd.mean_squared(expression_kernel, dX, poisson_residual, X[:, 0])
    with pytest.raises(symnet.ShapeError, match="one row per point"):
        sd.mean_squared(expression_kernel, dX, poisson_residual, da.ones(99, chunks=50))
    with pytest.raises(symnet.InputError, match="residual must be a function"):
        sd.mean_squared(expression_kernel, dX, "laplacian")
    with pytest.raises(symnet.InputError, match="no points"):
        sd.mean_squared(expression_kernel, da.ones((0, 2), chunks=5), poisson_residual)
    with pytest.raises(symnet.ShapeError, match="residual returned shape"):
        sd.mean_squared(expression_kernel, dX, lambda P, r: r.value.sum()).compute()


def test_verify_samples_chunks_and_names_rows(expression_kernel):
    X, dX = points(10_000, 1_000)
    report = sd.verify(expression_kernel, dX, chunks=3, points_per_chunk=5, seed=1)
    assert report.ok and report.n_points == 15 and len(set(report.blocks.tolist())) == 3
    np.testing.assert_array_equal(report.X, X[report.rows])
    assert all(b * 1_000 <= r < (b + 1) * 1_000 for r, b in zip(report.rows, report.blocks))
    assert [c.derivative for c in report.comparisons].count("hessian") == 3


def test_verify_catches_a_wrong_kernel(small, expression_kernel):
    other = random_network(np.random.default_rng(8), [2, 3, 3, 1], ["tanh", "tanh", "linear"])
    # computes `small` but claims to be `other` (only possible unpickled: pickling rebuilds from .net)
    liar = dataclasses.replace(expression_kernel, net=other)
    X, dX = points(4_000, 1_000)
    report = sd.verify(liar, dX, chunks=2, points_per_chunk=4)
    assert not report.ok
    point = report.failures[0].point
    assert f"row {report.rows[point]} of X, in chunk {report.blocks[point]}" in report.message()
    with pytest.raises(symnet.VerificationError, match="verify failed"):
        sd.verify(liar, dX, chunks=2, points_per_chunk=4, raise_on_failure=True)


def test_verify_rejects_what_it_cannot_check(small, expression_kernel):
    X, dX = points(100, 50)
    with pytest.raises(symnet.InputError, match="float32"):
        sd.verify(symnet.compile(small, ("value", "jacobian"), dtype=np.float32, backend="numpy"), dX)
    with pytest.raises(symnet.InputError, match="'value'"):
        sd.verify(symnet.compile(small, "laplacian", backend="numpy"), dX)
    with pytest.raises(symnet.InputError, match="compute_chunk_sizes"):
        sd.verify(expression_kernel, dX[dX[:, 0] > 0])
    with pytest.raises(symnet.InputError, match="positive integer"):
        sd.verify(expression_kernel, dX, chunks=0)


# --- on a distributed cluster of two worker processes -------------------------------------------


def test_workers_share_the_cache_directory(client):
    dirs = client.run(lambda: os.environ.get("SYMNET_CACHE_DIR"))
    assert set(dirs.values()) == {os.environ["SYMNET_CACHE_DIR"]}


def worker_stats() -> dict:
    return {**kernels.stats, "rebuilt": len(sd._REBUILT)}


def test_cluster_evaluation_equals_local_evaluation(client, expression_kernel):
    X, dX = points(50_000, 5_000)
    before = client.run(worker_stats)
    result = sd.evaluate(expression_kernel, dX)
    assert_equal_results(result.compute(), expression_kernel(X))
    futures = client.compute([result.value, result.hessian])  # the distributed API works as well
    np.testing.assert_array_equal(futures[0].result(), expression_kernel(X).value)
    after = client.run(worker_stats)
    for address, stats in after.items():  # rebuilt from the disk cache, at most once per worker
        assert stats["sources_generated"] == before[address]["sources_generated"]
        assert stats["kernels_built"] - before[address]["kernels_built"] <= 1


def test_cluster_layered_evaluation_equals_local_evaluation_of_the_chunks(client, layered_kernel, tmp_path):
    X, dX = points(30_000, 6_000)
    got = sd.evaluate(layered_kernel, dX).compute()
    # Workers run BLAS on one thread (distributed's default); so does the reference process.
    _, here = fresh_process(layered_kernel, X, 6_000, tmp_path, OPENBLAS_NUM_THREADS="1")
    assert_equal_results(got, symnet.KernelResult(here), tuple(here))


def test_cluster_mean_squared_and_verify(client, expression_kernel):
    X, dX = points(40_000, 4_000)
    source = da.from_array(np.cos(X[:, 1]), chunks=4_000)
    loss = sd.mean_squared(expression_kernel, dX, lambda P, r, f: r.laplacian[:, 0] - f * P[:, 0], source)
    same_graph_here = loss.compute(scheduler="sync")
    assert loss.compute() == same_graph_here  # the same tree of sums, in the same order
    local = expression_kernel(X).laplacian[:, 0] - np.cos(X[:, 1]) * X[:, 0]
    np.testing.assert_allclose(same_graph_here, np.mean(local ** 2), rtol=1e-13)
    report = sd.verify(expression_kernel, dX, chunks=4, points_per_chunk=4, raise_on_failure=True)
    assert report.ok and report.n_checked == 16
    with pytest.raises(symnet.ShapeError, match="residual returned shape"):
        sd.mean_squared(expression_kernel, dX, lambda P, r: r.value.sum()).compute()


GATE_OPEN = 4  # chunks that run at once; the others wait for the test to open the gate


def gate(block: np.ndarray, flag: str, log: str, block_info=None) -> np.ndarray:
    """Pass chunk ``i`` through, recording that it ran; chunks past GATE_OPEN wait for ``flag``.

    A waiting chunk secedes from the worker's thread pool, so the open chunks' other tasks
    still run on the single worker thread meanwhile.
    """
    index = block_info[0]["chunk-location"][0]
    with open(log, "a") as handle:
        handle.write(f"{index}\n")
    if index >= GATE_OPEN and not os.path.exists(flag):
        distributed.secede()
        deadline = time.monotonic() + 60
        while not os.path.exists(flag):
            if time.monotonic() > deadline:
                raise TimeoutError("the test never opened the gate")
            time.sleep(0.01)
        distributed.rejoin()
    return block


def test_result_is_complete_and_exact_after_a_worker_restarts_mid_computation(client, expression_kernel, tmp_path):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this test module
    try:
        flag, log = tmp_path / "open", tmp_path / "log"
        X, dX = points(60_000, 5_000)  # 12 chunks
        gated = dX.map_blocks(gate, str(flag), str(log), meta=np.empty((0, 0)))
        result = sd.evaluate(expression_kernel, gated)
        chunk_of = {key: key[1] for key in dask.core.flatten(result.value.__dask_keys__())}
        pids = client.run(os.getpid)
        futures = client.compute(list(result.as_dict().values()))

        def finished() -> dict:  # chunk -> workers holding its finished `value`
            return {chunk_of[key]: holders for key, holders in client.who_has().items() if key in chunk_of and holders}

        deadline = time.monotonic() + 60
        while len(finished()) < GATE_OPEN:
            assert time.monotonic() < deadline, "the open chunks never finished"
            time.sleep(0.05)
        held = finished()
        victim = max(pids, key=lambda worker: sum(worker in holders for holders in held.values()))
        lost = sorted(chunk for chunk, holders in held.items() if victim in holders)
        assert lost and not any(f.done() for f in futures)  # mid-computation: the gated chunks still wait
        client.restart_workers([victim])
        assert pids[victim] not in client.run(os.getpid).values()  # a new process replaced it
        flag.touch()
        computed = dict(zip(result.as_dict(), client.gather(futures)))
        assert_equal_results(symnet.KernelResult(computed), expression_kernel(X))
        runs = [int(line) for line in log.read_text().split()]
        assert sorted(set(runs)) == list(range(12))
        assert all(runs.count(chunk) >= 2 for chunk in lost), (lost, runs)  # the victim's chunks ran again
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
