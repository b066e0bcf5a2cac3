"""symnet.compile: every backend, strategy and dtype against the exact expression."""

import os
import pathlib
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import symnet
from symnet import kernels

from conftest import evaluate, random_network

CASES = [("numpy", "expression"), ("numba", "expression"), ("numpy", "layered"), ("numba", "layered")]


def exact(net, X):
    """value, Jacobian, Hessian at X from the flat SymPy expressions, in 30-digit arithmetic."""
    J = symnet.jacobian(net)
    H = [symnet.hessian(net, output=k) for k in range(net.n_outputs)]
    value = np.array([[evaluate(net.outputs[k], net.inputs, x) for k in range(net.n_outputs)] for x in X])
    jac = np.array([[[evaluate(J[k, i], net.inputs, x) for i in range(net.n_inputs)] for k in range(net.n_outputs)] for x in X])
    hes = np.array([[[[evaluate(H[k][i, j], net.inputs, x) for j in range(net.n_inputs)] for i in range(net.n_inputs)]
                     for k in range(net.n_outputs)] for x in X])
    return value, jac, hes


def assert_close(got, want, dtype=np.float64):
    scale = 1 + np.max(np.abs(want))
    tol = 64 * np.finfo(dtype).eps * scale
    assert np.max(np.abs(got - want)) <= tol, (np.max(np.abs(got - want)), tol)


@pytest.mark.parametrize("backend, strategy", CASES)
@pytest.mark.parametrize("seed, sizes, acts", [
    (0, [2, 3, 2], ["tanh", "linear"]),
    (1, [3, 2, 2, 1], ["sigmoid", "softplus", "linear"]),
    (2, [1, 4, 1], ["gelu", "linear"]),
    (3, [2, 2, 2, 2], ["silu", "sin", "exp"]),
])
def test_kernels_match_the_exact_expression(backend, strategy, seed, sizes, acts):
    net = random_network(np.random.default_rng(seed), sizes, acts)
    X = np.random.default_rng(seed + 10).uniform(-1.5, 1.5, (5, sizes[0]))
    value, jac, hes = exact(net, X)
    kernel = symnet.compile(net, ("value", "jacobian", "hessian", "laplacian"), backend=backend, strategy=strategy)
    assert kernel.strategy == strategy
    result = kernel(X)
    assert_close(result.value, value)
    assert_close(result.jacobian, jac)
    assert_close(result.hessian, hes)
    assert_close(result.laplacian, np.trace(hes, axis1=2, axis2=3))


@pytest.mark.parametrize("backend, strategy", CASES)
def test_float32_kernels(backend, strategy):
    net = random_network(np.random.default_rng(5), [2, 3, 1], ["tanh", "linear"])
    X = np.random.default_rng(6).uniform(-1, 1, (4, 2))
    value, jac, hes = exact(net, X)
    result = symnet.compile(net, backend=backend, strategy=strategy, dtype=np.float32)(X)
    assert result.value.dtype == result.hessian.dtype == np.float32
    assert_close(result.value, value, np.float32)
    assert_close(result.jacobian, jac, np.float32)
    assert_close(result.hessian, hes, np.float32)


def test_explicit_partials_and_single_points():
    net = random_network(np.random.default_rng(7), [2, 3, 1], ["tanh", "linear"])
    kernel = symnet.compile(net, ["value", (0, 0, 1), ("x1",)], backend="numpy")
    x = np.array([0.3, -0.4])
    result = kernel(x)
    assert result.value.shape == (1,) and result[(0, 0, 1)].shape == (1,)
    third = symnet.diff(net, 0, 0, 1)
    assert result[(1, 0, 0)][0] == pytest.approx(evaluate(third, net.inputs, x), rel=1e-13)
    assert result[(1,)][0] == pytest.approx(evaluate(symnet.diff(net, 1), net.inputs, x), rel=1e-13)
    with pytest.raises(AttributeError, match="'hessian' was not requested"):
        result.hessian
    with pytest.raises(KeyError, match="was not requested"):
        result[(0, 0)]


def test_auto_strategy_chooses_by_size_and_says_so():
    small = random_network(np.random.default_rng(0), [1, 1, 1], ["square", "linear"])
    wide = random_network(np.random.default_rng(0), [2, 64, 64, 1], ["tanh", "tanh", "linear"])
    soft = random_network(np.random.default_rng(0), [2, 3], ["softmax"])
    assert symnet.compile(small, backend="numpy").strategy == "expression"
    assert symnet.compile(wide, backend="numpy").strategy == "layered"
    assert symnet.compile(soft, backend="numpy").strategy == "expression"  # both shift softmax: size decides
    wide_soft = random_network(np.random.default_rng(0), [2, 64, 10], ["tanh", "softmax"])
    assert symnet.compile(wide_soft, backend="numpy").strategy == "layered"
    assert symnet.compile(wide, [(0, 0, 1)], backend="numpy").strategy == "layered"
    tiny = random_network(np.random.default_rng(0), [2, 2, 1], ["tanh", "linear"])
    assert symnet.compile(tiny, [(0, 0, 0, 0, 1, 1, 1)], backend="numpy").strategy == "expression"  # order 7


def test_softmax_kernel():
    net = random_network(np.random.default_rng(4), [2, 3, 3], ["tanh", "softmax"])
    X = np.random.default_rng(1).normal(size=(3, 2))
    value, jac, hes = exact(net, X)
    result = symnet.compile(net, backend="numpy")(X)
    assert_close(result.value, value)
    assert_close(result.jacobian, jac)
    assert_close(result.hessian, hes)
    np.testing.assert_allclose(result.value.sum(axis=1), 1.0, rtol=1e-15)


def test_weights_are_runtime_arguments():
    rng = np.random.default_rng(8)
    first = random_network(rng, [2, 3, 1], ["tanh", "linear"])
    second = random_network(rng, [2, 3, 1], ["tanh", "linear"])
    k1 = symnet.compile(first, backend="numba")
    built = dict(kernels.stats)
    k2 = symnet.compile(second, backend="numba")
    assert kernels.stats == built  # no new source, no new compilation
    assert k2.build_seconds == 0.0 and k1.source == k2.source
    X = rng.normal(size=(4, 2))
    np.testing.assert_allclose(k2(X).value, symnet.compile(second, backend="numpy")(X).value, rtol=1e-13)  # vectorised tanh: within 3 ulp
    np.testing.assert_allclose(k1.with_weights(second)(X).hessian, k2(X).hessian, rtol=0, atol=0)
    with pytest.raises(symnet.ShapeError, match="another architecture"):
        k1.with_weights(random_network(rng, [2, 4, 1], ["tanh", "linear"]))


def test_source_is_deterministic_and_readable():
    net = random_network(np.random.default_rng(9), [2, 2, 1], ["sigmoid", "linear"])
    a = symnet.compile(net, backend="numpy")
    kernels._MEMO.clear()
    b = symnet.compile(net, backend="numpy")
    assert a.source == b.source
    assert "def kernel(X, W1, b1, W2, b2, value, jacobian, hessian):" in a.source
    assert "scipy.special.expit(z1_0)" in a.source


def test_input_checks():
    net = random_network(np.random.default_rng(0), [2, 3, 1], ["tanh", "linear"])
    kernel = symnet.compile(net, backend="numpy")
    with pytest.raises(symnet.ShapeError, match=r"X has shape \(4, 3\) but the network takes 2 inputs"):
        kernel(np.zeros((4, 3)))
    with pytest.raises(symnet.InputError, match="complex"):
        kernel(np.zeros((4, 2), complex))
    with pytest.raises(symnet.InputError, match="dtype <U1"):
        kernel(np.array([["a", "b"]]))
    ints = kernel(np.array([[1, 2], [0, -1]]))
    np.testing.assert_array_equal(ints.value, kernel(np.array([[1.0, 2.0], [0.0, -1.0]])).value)
    wide = np.random.default_rng(1).normal(size=(5, 4))
    np.testing.assert_array_equal(kernel(wide[:, ::2]).jacobian, kernel(np.ascontiguousarray(wide[:, ::2])).jacobian)
    empty = kernel(np.zeros((0, 2)))
    assert empty.value.shape == (0, 1) and empty.hessian.shape == (0, 1, 2, 2)
    with pytest.raises(symnet.InputError, match="unknown derivative 'hessain'"):
        symnet.compile(net, ["hessain"])
    with pytest.raises(symnet.InputError, match="backend must be one of"):
        symnet.compile(net, backend="jax")
    with pytest.raises(symnet.InputError, match="dtype must be float64 or float32"):
        symnet.compile(net, dtype=np.int32)
    with pytest.raises(symnet.InputError, match="compile needs numeric weights"):
        symnet.compile(symnet.Network.symbolic([1, 1], "tanh"))


@pytest.mark.parametrize("backend, strategy", CASES)
def test_nan_propagates_to_its_point_only(backend, strategy):
    net = random_network(np.random.default_rng(2), [2, 3, 1], ["relu", "linear"])
    X = np.array([[0.1, 0.2], [np.nan, 0.0], [0.4, -0.3]])
    result = symnet.compile(net, backend=backend, strategy=strategy)(X)
    assert np.isnan(result.value[1]).all() and np.isnan(result.jacobian[1]).all()
    assert np.isfinite(result.value[[0, 2]]).all() and np.isfinite(result.hessian[[0, 2]]).all()


@pytest.mark.parametrize("backend, strategy", CASES)
def test_saturation(backend, strategy):
    for act, z in [("tanh", 500.0), ("softplus", 800.0), ("sigmoid", 800.0), ("softplus", np.inf),
                   ("sigmoid", np.inf), ("silu", 800.0)]:
        net = symnet.Network.from_weights([[[1.0]], [[1.0]]], [[0.0], [0.0]], [act, "linear"])
        result = symnet.compile(net, backend=backend, strategy=strategy)(np.array([[z], [-z]]))
        fn = symnet.activations.get(act)
        with np.errstate(all="ignore"):
            want = np.array([fn.numpy(np.array([z]))[0], fn.numpy(np.array([-z]))[0]])
            slope = np.array([fn.numpy_derivative(np.array([z]))[0], fn.numpy_derivative(np.array([-z]))[0]])
        np.testing.assert_allclose(result.value[:, 0], want, rtol=1e-15, atol=0)
        np.testing.assert_allclose(result.jacobian[:, 0, 0], slope, rtol=1e-15, atol=1e-300)
        assert np.isfinite(result.hessian).all()


@pytest.mark.parametrize("acts, blocked", [(["tanh", "sigmoid", "linear"], True), (["square", "linear", "linear"], False),
                                           (["sin", "softplus", "linear"], True)])
def test_numba_expression_layout_and_block_edges(acts, blocked):
    """Blocked (vectorised exp/tanh/sigmoid) or per point, as the functions allow; every block edge exact."""
    from symnet.kernels.codegen import BLOCK

    net = random_network(np.random.default_rng(11), [2, 3, 2, 1], acts)
    kernel = symnet.compile(net, backend="numba", strategy="expression", parallel=True)
    assert ("for block in numba.prange" in kernel.source) is blocked
    assert ("_vecmath." in kernel.source) is blocked  # softplus' is a sigmoid
    if acts[0] == "tanh":  # a unit's function and its derivatives' factor: one call, one exp
        assert kernel.source.count("tanh_with_pair_call(") == 3 and kernel.source.count("sigmoid_both_call(") == 2
        assert "sigmoid_pair_call(" not in kernel.source and "sigmoid_call(-" not in kernel.source
    X = np.random.default_rng(5).normal(size=(2 * BLOCK + 3, 2)) * 3
    for n in (0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 3):
        got, want = kernel(X[:n]), symnet.compile(net, backend="numpy")(X[:n])
        for name in ("value", "jacobian", "hessian"):
            assert getattr(got, name).shape == getattr(want, name).shape
            np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-12, atol=1e-13)
    # a point's bits do not depend on where in its block it falls (vector body or scalar remainder)
    whole = kernel(X).hessian
    np.testing.assert_array_equal(kernel(X[5:]).hessian, whole[5:])
    np.testing.assert_array_equal(np.concatenate([kernel(X[i:i + 1]).hessian for i in range(0, 40)]), whole[:40])
    value, jac, hes = exact(net, X[:7])
    result = kernel(X[:7])
    assert_close(result.value, value)
    assert_close(result.jacobian, jac)
    assert_close(result.hessian, hes)


def test_relu_kernel_returns_almost_everywhere_values():
    net = symnet.Network.from_weights([[[1.0, -1.0]], [[1.0], [1.0]]], None, ["relu", "linear"])  # |x|
    for backend, strategy in CASES:
        result = symnet.compile(net, backend=backend, strategy=strategy)(np.array([[-2.0], [0.0], [3.0]]))
        np.testing.assert_array_equal(result.value[:, 0], [2.0, 0.0, 3.0])
        np.testing.assert_array_equal(result.jacobian[:, 0, 0], [-1.0, 0.0, 1.0])  # Heaviside(0) = 1/2 each side
        np.testing.assert_array_equal(result.hessian[:, 0, 0, 0], [0.0, 0.0, 0.0])


def test_out_reuses_arrays():
    net = random_network(np.random.default_rng(3), [2, 3, 1], ["tanh", "linear"])
    kernel = symnet.compile(net, backend="numpy")
    X = np.random.default_rng(0).normal(size=(6, 2))
    first = kernel(X)
    again = kernel(X * 2, out=first)
    assert again.value is first.value
    np.testing.assert_allclose(again.jacobian, kernel(X * 2).jacobian, rtol=0, atol=0)
    with pytest.raises(symnet.ShapeError, match="out cannot hold the result"):
        kernel(X[:3], out=first)


def test_threads_share_a_kernel():
    net = random_network(np.random.default_rng(3), [2, 3, 1], ["tanh", "linear"])
    kernel = symnet.compile(net, backend="numba")
    X = np.random.default_rng(0).normal(size=(2000, 2))
    want = kernel(X).hessian
    results = []
    threads = [threading.Thread(target=lambda: results.append(kernel(X).hessian)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(np.array_equal(r, want) for r in results)


def test_numba_missing_is_said(monkeypatch):
    monkeypatch.setattr(kernels, "_numba_available", lambda: False)
    net = random_network(np.random.default_rng(3), [2, 2, 1], ["tanh", "linear"])
    with pytest.warns(kernels.NumbaUnavailableWarning, match="numba is not available"):
        kernel = symnet.compile(net, backend="numba")
    assert kernel.backend == "numpy"
    # a forward-adjoint kernel unpickled where numba is missing still evaluates, and says how
    wide = random_network(np.random.default_rng(4), [3, 30, 30, 1], ["tanh", "tanh", "linear"])
    with pytest.warns(kernels.NumbaUnavailableWarning, match="and the forward schedule"):
        rebuilt = symnet.compile(wide, "hessian", strategy="layered", schedule="forward-adjoint")
    assert (rebuilt.backend, rebuilt.schedule) == ("numpy", "forward")


PROBE = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    start = time.perf_counter()
    import symnet
    net = symnet.Network.from_weights([np.ones((2, 2)), np.ones((2, 1))], [np.ones(2), np.zeros(1)], ["sigmoid", "linear"])
    t = time.perf_counter()
    kernel = symnet.compile(net, backend="numba")
    value = float(kernel(np.array([[1.0, 1.0]])).jacobian[0, 0, 0])
    print(json.dumps({"from_disk": kernel.loaded_from_disk, "compile": time.perf_counter() - t,
                      "sources": symnet.kernels.stats["sources_generated"], "jacobian": value}))
""")


def run_probe(cache_dir):
    env = dict(os.environ, SYMNET_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    import json
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_disk_cache_across_processes_and_corruption(tmp_path):
    first = run_probe(tmp_path)
    assert not first["from_disk"] and first["sources"] == 1
    assert first["jacobian"] == pytest.approx(0.0903533, abs=5e-8)
    second = run_probe(tmp_path)
    assert second["from_disk"] and second["sources"] == 0  # no code generation, numba loads its cache
    [cached] = list(pathlib.Path(tmp_path).glob("k*.py"))
    cached.write_text(cached.read_text().replace("math", "mathh", 1))  # a tampered entry is not trusted
    third = run_probe(tmp_path)
    assert not third["from_disk"] and third["jacobian"] == first["jacobian"]
    for index in pathlib.Path(tmp_path, "__pycache__").glob("*"):
        index.write_bytes(b"garbage")  # corrupt numba cache files: numba rebuilds them
    fourth = run_probe(tmp_path)
    assert fourth["jacobian"] == first["jacobian"]


def test_two_processes_build_the_same_kernel_at_once(tmp_path):
    env = dict(os.environ, SYMNET_CACHE_DIR=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", PROBE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert len(list(pathlib.Path(tmp_path).glob("k*.py"))) == 1
    assert not list(pathlib.Path(tmp_path).glob(".*.tmp"))


@pytest.mark.parametrize("loss, last", [("mse", "linear"), ("mse", "sigmoid"), ("cross_entropy", "softmax"),
                                        ("cross_entropy", "sigmoid"), ("softmax_cross_entropy", "linear"),
                                        ("mse", "softmax"), ("mse", "log_softmax"),
                                        ("softmax_cross_entropy", "log_softmax")])
def test_loss_kernel_matches_param_grad(loss, last):
    rng = np.random.default_rng(11)
    net = random_network(rng, [2, 4, 3, 2], ["tanh", "softplus", last])
    X = rng.normal(size=(7, 2))
    Y = rng.dirichlet([1, 1], size=7) if loss != "mse" else rng.normal(size=(7, 2))
    value, grads = symnet.compile_loss(net, loss)(X, Y)
    exact = symnet.param_grad(net, loss, (X, Y))
    for (dW, db), (eW, eb) in zip(grads, exact):
        np.testing.assert_allclose(dW, np.array(eW.evalf(), float), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(db, np.array(eb.evalf(), float).ravel(), rtol=1e-12, atol=1e-15)
    other = random_network(rng, [2, 4, 3, 2], ["tanh", "softplus", last])
    _, moved = symnet.compile_loss(net, loss)(X, Y, weights=other)
    np.testing.assert_allclose(moved[0][0], np.array(symnet.param_grad(other, loss, (X, Y))[0][0].evalf(), float),
                               rtol=1e-12, atol=1e-15)


def test_loss_kernel_seed_004_and_errors():
    W = np.array([[0.47355232, 0.9977393, 0.84668094], [0.85557411, 0.03563661, 0.69422093]])
    net = symnet.Network.from_weights([W], None, "softmax")
    value, [(dW, db)] = symnet.compile_loss(net, "cross_entropy")(np.array([[0.6, 0.9]]), np.array([2]))
    np.testing.assert_allclose(dW, [[0.21924763, 0.14356247, -0.36281009], [0.32887144, 0.2153437, -0.54421514]],
                               atol=1e-6)
    with pytest.raises(symnet.InputError, match="unknown loss"):
        symnet.compile_loss(net, "l1")
    with pytest.raises(symnet.InputError, match="log_softmax layer gives log-probabilities.*softmax_cross_entropy"):
        symnet.compile_loss(symnet.Network.from_weights([W], None, "log_softmax"), "cross_entropy")(
            np.array([[0.6, 0.9]]), np.array([2]))
    with pytest.raises(symnet.ShapeError, match="Y has shape"):
        symnet.compile_loss(random_network(np.random.default_rng(0), [2, 1], ["linear"]), "mse")(np.zeros((3, 2)),
                                                                                                  np.zeros((2, 1)))


def test_cross_entropy_refuses_outputs_below_zero_wherever_they_come_from():
    """Log-probabilities reach a cross entropy through a slice (the output node is no log_softmax):
    the kernel names the negative output rather than returning NaN, and fit says the same."""
    rng = np.random.default_rng(0)
    x = symnet.graph.input(2)
    net = symnet.graph.network(x, symnet.graph.log_softmax(symnet.graph.dense(x, rng.normal(size=(2, 3))))[0:2])
    X, labels = rng.normal(size=(4, 2)), np.array([0, 1, 0, 1])
    message = r"cross_entropy reads the outputs as probabilities, but output \d is -\d.*softmax_cross_entropy"
    with pytest.raises(symnet.InputError, match=message):
        symnet.compile_loss(net, "cross_entropy")(X, labels)
    with pytest.raises(symnet.InputError, match=message):
        symnet.fit(net, X, labels, loss="cross_entropy", max_iter=3)
    value, _ = symnet.compile_loss(net, "softmax_cross_entropy")(X, labels)
    assert np.isfinite(value)


def test_loss_kernel_takes_weight_arrays():
    rng = np.random.default_rng(12)
    net = random_network(rng, [2, 3, 1], ["tanh", "linear"])
    other = random_network(rng, [2, 3, 1], ["tanh", "linear"])
    X, Y = rng.normal(size=(5, 2)), rng.normal(size=(5, 1))
    kernel = symnet.compile_loss(net, "mse")
    arrays = [(la.weight_array(), la.bias_array()) for la in other.layers]
    by_arrays, by_net = kernel(X, Y, weights=arrays), kernel(X, Y, weights=other)
    assert by_arrays[0] == by_net[0]
    for (a, b), (c, e) in zip(by_arrays[1], by_net[1]):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, e)
    with pytest.raises(symnet.ShapeError, match=r"layer 2: W \(2, 1\) and b \(1,\) given, \(3, 1\)"):
        kernel(X, Y, weights=[arrays[0], (np.zeros((2, 1)), np.zeros(1))])


@pytest.mark.parametrize("backend, strategy", CASES)
def test_progress_reports_every_piece_and_changes_nothing(backend, strategy, capsys):
    net = random_network(np.random.default_rng(4), [2, 3, 1], ["tanh", "linear"])
    kernel = symnet.compile(net, backend=backend, strategy=strategy)
    X = np.random.default_rng(1).normal(size=(150_000, 2))
    seen = []
    result = kernel(X, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (len(X), len(X))
    assert [done for done, _ in seen] == sorted({done for done, _ in seen})  # strictly increasing
    plain = kernel(X)
    for name, array in plain.as_dict().items():
        np.testing.assert_array_equal(result[name], array)
    kernel(X[:10], progress=True)
    assert "symnet: 100% of 10 points" in capsys.readouterr().err


@pytest.mark.parametrize("backend, schedule, width", [("numpy", "forward", 97), ("numba", "forward-adjoint", 98)])
def test_layered_memory_is_the_results_plus_a_fixed_budget(monkeypatch, backend, schedule, width):
    """10^7 points of a 3-128-128-128-128-1 net: 1.04 GB of results plus at most MEMORY_BUDGET of buffers per thread."""
    import tracemalloc

    from symnet.kernels import _adjoint, _layered

    monkeypatch.setattr(_layered, "MEMORY_BUDGET", 4 * 2**20)
    monkeypatch.setattr(_adjoint, "MEMORY_BUDGET", 4 * 2**20)
    net = random_network(np.random.default_rng(5), [3, width, width, 1], ["softplus", "softplus", "linear"])
    kernel = symnet.compile(net, backend=backend, strategy="layered")  # an architecture no other test compiles
    assert kernel.schedule == schedule
    budget = (_layered if schedule == "forward" else _adjoint).MEMORY_BUDGET
    X = np.random.default_rng(2).normal(size=(40_000, 3))
    results = X.shape[0] * (1 + 3 + 9) * 8
    tracemalloc.start()
    try:
        kernel(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= results + kernel._plan.threads * budget + 2**20, (peak, results)
    assert peak >= results  # the measurement sees numpy's allocations at all


@pytest.mark.parametrize("seed, sizes, acts", [
    (0, [3, 5, 4, 1], ["tanh", "softplus", "linear"]),
    (1, [5, 4, 2], ["sigmoid", "silu"]),  # two outputs, a nonlinear last layer
    (2, [4, 6, 6, 1], ["relu", "elu", "tanh"]),
    (3, [8, 7, 1], ["gelu", "linear"]),
    (4, [3, 6, 6, 6, 2], ["linear", "tanh", "linear", "softplus"]),  # linear first and middle layers
])
def test_forward_adjoint_agrees_with_the_expression_kernel(seed, sizes, acts):
    net = random_network(np.random.default_rng(seed), sizes, acts)
    request = ("value", "jacobian", "hessian", "laplacian", (0, 2), (1,))
    layered = symnet.compile(net, request, strategy="layered")
    assert layered.schedule == "forward-adjoint"
    X = np.random.default_rng(seed).normal(size=(300, sizes[0]))
    got, want = layered(X), symnet.compile(net, request, backend="numpy", strategy="expression")(X)
    for name, array in want.as_dict().items():
        assert_close(got[name], array)
    assert np.array_equal(got.hessian, got.hessian.transpose(0, 1, 3, 2))  # exactly symmetric


@pytest.mark.parametrize("request_", [((0, 1),), ("value", (2, 2), (0, 1)), ("laplacian", (1, 2)), ("jacobian", (0, 0))])
def test_forward_adjoint_computes_only_the_second_partials_asked_for(request_):
    net = random_network(np.random.default_rng(7), [3, 9, 9, 1], ["tanh", "softplus", "linear"])
    layered = symnet.compile(net, request_, strategy="layered")
    assert layered.schedule == "forward-adjoint"
    X = np.random.default_rng(8).normal(size=(200, 3))
    got, want = layered(X), symnet.compile(net, request_, backend="numpy", strategy="expression")(X)
    assert set(got.as_dict()) == set(want.as_dict())
    for name, array in want.as_dict().items():
        assert_close(got[name], array)


@pytest.mark.slow
def test_the_schedule_follows_the_stream_count():
    wide = lambda d, m: random_network(np.random.default_rng(0), [d, 40, m], ["tanh", "linear"])  # noqa: E731
    assert symnet.compile(wide(3, 1), "hessian").schedule == "forward-adjoint"  # 5 streams, not 10
    assert symnet.compile(wide(2, 1), "hessian").schedule == "forward-adjoint"  # 4, not 6
    assert symnet.compile(wide(3, 3), "hessian").schedule == "forward-adjoint"  # 7, not 10
    assert symnet.compile(wide(2, 3), "hessian").schedule == "forward"  # 6 either way: forward measured faster
    assert symnet.compile(wide(1, 1), "hessian").schedule == "forward"  # 3 either way
    assert symnet.compile(wide(8, 1), "laplacian").schedule == "forward"  # forward Laplacian: 10 streams
    assert symnet.compile(wide(3, 1), (0, 1)).schedule == "forward-adjoint"  # forward pushes every pair
    assert symnet.compile(wide(3, 1), "hessian", backend="numpy").schedule == "forward"
    one_layer = random_network(np.random.default_rng(0), [3, 40], ["tanh"])
    assert symnet.compile(one_layer, "hessian", strategy="layered").schedule == "forward"  # nothing to sweep
    assert symnet.compile(wide(1, 1), "hessian", strategy="expression").schedule is None


def test_forward_adjoint_keeps_nan_to_its_point():
    net = random_network(np.random.default_rng(6), [3, 30, 30, 1], ["tanh", "tanh", "linear"])
    kernel = symnet.compile(net, "hessian", strategy="layered")
    assert kernel.schedule == "forward-adjoint"
    X = np.random.default_rng(0).normal(size=(5, 3))
    X[2, 1] = np.nan
    X[4] = 600.0  # saturated: f' and f'' are 0 there, not NaN
    hessian = kernel(X).hessian
    assert np.isnan(hessian[2]).all() and np.isfinite(hessian[[0, 1, 3, 4]]).all()
    forward = symnet.compile(net, "hessian", backend="numpy", strategy="layered")  # the forward schedule
    assert_close(hessian[[0, 1, 3, 4]], forward(X[[0, 1, 3, 4]]).hessian)


def test_the_schedule_can_be_chosen_and_is_checked():
    net = random_network(np.random.default_rng(0), [3, 20, 20, 1], ["tanh", "tanh", "linear"])
    X = np.random.default_rng(1).normal(size=(100, 3))
    forward = symnet.compile(net, "hessian", strategy="layered", schedule="forward")
    assert forward.schedule == "forward"
    assert_close(forward(X).hessian, symnet.compile(net, "hessian", strategy="layered")(X).hessian)
    with pytest.raises(symnet.InputError, match="numba backend"):
        symnet.compile(net, "hessian", backend="numpy", strategy="layered", schedule="forward-adjoint")
    with pytest.raises(symnet.InputError, match="a Laplacian alone goes forward"):
        symnet.compile(net, "laplacian", strategy="layered", schedule="forward-adjoint")
    with pytest.raises(symnet.InputError, match="pass strategy='layered'"):
        symnet.compile(net, "hessian", strategy="expression", schedule="forward")
    with pytest.raises(symnet.InputError, match="schedule must be one of"):
        symnet.compile(net, "hessian", schedule="reverse")


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 4), m=st.integers(1, 3),
       hidden=st.lists(st.integers(1, 12), min_size=1, max_size=3),
       names=st.lists(st.sampled_from(["tanh", "sigmoid", "softplus", "silu", "gelu", "elu", "relu", "sin", "linear"]),
                      min_size=4, max_size=4))
def test_the_layer_sum_of_forward_adjoint_equals_taylor_mode(seed, d, m, hidden, names):
    """H = sum_l J_l^T diag(g_l f_l'') J_l (forward-adjoint) against second-order Taylor mode, on random nets."""
    rng = np.random.default_rng(seed)
    sizes = [d, *hidden, m]
    net = random_network(rng, sizes, names[: len(sizes) - 1])
    request = ("value", "jacobian", "hessian", "laplacian")
    adjoint = symnet.compile(net, request, strategy="layered", schedule="forward-adjoint")
    forward = symnet.compile(net, request, strategy="layered", schedule="forward")
    X = rng.normal(size=(40, d))
    got, want = adjoint(X), forward(X)
    for name, array in want.as_dict().items():
        assert_close(got[name], array)


@pytest.mark.parametrize("d, act, schedule, computes_z", [
    (1, "tanh", "forward", True), (4, "sigmoid", "forward-adjoint", True), (2, "relu", "forward", True),
    (5, "tanh", "forward", False),  # more inputs than AFFINE_INPUTS: one product over the chunk
    (2, "softplus", "forward-adjoint", False),  # numpy reads z first (log1p)
    (2, "linear", "forward", False),  # no pass at all
])
def test_a_first_layer_with_few_inputs_computes_z_in_its_pass(d, act, schedule, computes_z):
    net = random_network(np.random.default_rng(d), [d, 6, 5, 1], [act, "tanh", "linear"])
    request = ("value", "jacobian", "hessian")
    kernel = symnet.compile(net, request, strategy="layered", schedule=schedule)
    assert kernel._plan.first_affine is computes_z
    X = np.asfortranarray(np.random.default_rng(0).normal(size=(700, d)))  # a strided input takes the same path
    got, want = kernel(X), symnet.compile(net, request, backend="numpy", strategy="expression")(X)
    for name, array in want.as_dict().items():
        assert_close(got[name], array)


HIGHER_ORDER_NETS = [
    (0, [2, 5, 4, 1], ["tanh", "softplus", "linear"]),
    (1, [1, 6, 1], ["gelu", "linear"]),  # numpy computes erf before the loop
    (2, [3, 3, 3, 2], ["sigmoid", "silu", "tanh"]),  # two outputs, a nonlinear last layer
    (3, [6, 5, 1], ["tanh", "linear"]),  # more inputs than AFFINE_INPUTS
    (4, [2, 3, 3, 1], ["linear", "sin", "linear"]),  # a linear first layer
    (5, [2, 4, 1], ["relu", "linear"]),  # almost-everywhere values
]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("seed, sizes, acts", HIGHER_ORDER_NETS)
def test_layered_higher_order_partials_match_the_exact_expression(backend, seed, sizes, acts):
    net = random_network(np.random.default_rng(seed), sizes, acts)
    d = sizes[0]
    requests = [("value", "laplacian", (0, 0, 0), (d - 1, 0, 0), (0, d - 1, d - 1)),  # only the pairs they need
                ("jacobian", "hessian", (0, d - 1, 0)),  # every pair
                ((0, 0, d - 1, d - 1), (0, d - 1, 0, 0, d - 1)),  # orders 4 and 5: the biharmonic's terms, ...
                ((0,) * 6,)]  # and the highest order the layered strategy takes
    X = np.random.default_rng(seed + 10).uniform(-1.5, 1.5, (5, d))
    results = []
    for request in requests:
        kernel = symnet.compile(net, request, backend=backend, strategy="layered")
        assert kernel.schedule == "forward"
        got, want = kernel(X), symnet.compile(net, request, backend="numpy", strategy="expression")(X)
        for name, array in want.as_dict().items():
            assert_close(got[name], array)
        results.append(got)
    if backend == "numpy":
        return
    # and against 30-digit arithmetic: a third partial by sympy.diff of the flat expression,
    # independent of symnet's chain-rule program
    third = sympy.diff(net.outputs[0], net.inputs[0], net.inputs[d - 1], net.inputs[0])
    third = third.replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)  # relu: 0 almost everywhere
    assert_close(results[1][(0, 0, d - 1)][:, 0], np.array([evaluate(third, net.inputs, x) for x in X]))


@pytest.mark.slow
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 3),
       hidden=st.lists(st.integers(1, 9), min_size=1, max_size=3),
       names=st.lists(st.sampled_from(["tanh", "sigmoid", "softplus", "silu", "gelu", "elu", "sin", "linear"]),
                      min_size=4, max_size=4),
       alpha=st.lists(st.integers(0, 2), min_size=2, max_size=4), along=st.integers(0, 2))
def test_a_higher_order_partial_is_the_derivative_of_the_one_below(seed, d, hidden, names, alpha, along):
    """d^(alpha + l) y against a central difference of the layered d^alpha y along x_l (orders 3 to 5)."""
    rng = np.random.default_rng(seed)
    net = random_network(rng, [d, *hidden, 1], names[: len(hidden) + 1])
    alpha, l = tuple(sorted(a % d for a in alpha)), along % d
    beta = tuple(sorted(alpha + (l,)))
    kernel = symnet.compile(net, (alpha, beta), strategy="layered")
    X = rng.uniform(-1, 1, (20, d))
    step = np.zeros(d)
    step[l] = h = 1e-4
    difference = (kernel(X + step)[alpha][:, 0] - kernel(X - step)[alpha][:, 0]) / (2 * h)
    # O(h^2) truncation with derivatives of order 7 of these nets well below 1e3
    assert np.max(np.abs(kernel(X)[beta][:, 0] - difference)) <= 1e-4 * (1 + np.max(np.abs(difference)))


def test_faa_di_bruno_terms():
    from symnet.kernels._layered import _partitions, higher_streams

    # d4 f(z) = f1 z4 + f2 (4 z1 z3 + 3 z2^2) + 6 f3 z1^2 z2 + f4 z1^4 (fk, zk: k-th derivatives)
    assert _partitions((0, 0, 0, 0)) == {((0,), (0, 0, 0)): 4, ((0, 0), (0, 0)): 3,
                                         ((0,), (0,), (0, 0)): 6, ((0,), (0,), (0,), (0,)): 1}
    # the number of partitions of 5 distinct positions into 2 or more blocks: Bell(5) - 1
    assert sum(_partitions((0, 1, 2, 3, 4)).values()) == 51
    assert higher_streams([(0, 0, 1, 1), (2,), (1, 2)]) == [(0, 0, 1), (0, 1, 1), (0, 0, 1, 1)]


def test_the_layered_strategy_takes_higher_orders_and_says_what_it_cannot():
    wide = random_network(np.random.default_rng(0), [2, 40, 40, 1], ["tanh", "tanh", "linear"])
    assert symnet.compile(wide, ("value", (0, 1, 1))).strategy == "layered"  # auto: too big for the expression
    assert symnet.compile(wide, ((0, 0, 0, 0), (0, 0, 1, 1), (1, 1, 1, 1))).strategy == "layered"  # a biharmonic
    with pytest.raises(symnet.InputError, match="partials of order 7 or more"):
        symnet.compile(wide, (0, 0, 0, 0, 1, 1, 1), strategy="layered")
    assert symnet.compile(wide, ("hessian", (0, 0, 1))).schedule == "forward"  # auto
    with pytest.raises(symnet.InputError, match="partials of order 3 or more are propagated forward"):
        symnet.compile(wide, ("hessian", (0, 0, 1)), strategy="layered", schedule="forward-adjoint")


# --- no user text in generated source (issue 15) ---------------------------------------------

HOSTILE = 'x"""\nimport pathlib; pathlib.Path({marker!r}).touch()\n"""'


def hostile_square(name):
    # dataclasses.replace: the name reaches the kernels even if from_form one day refuses it
    import dataclasses
    from symnet.activations import T
    return dataclasses.replace(symnet.activations.from_form(T**2), name=name)


def square_nets(act):
    rng = np.random.default_rng(8)
    W, b = [rng.normal(size=(2, 3)), rng.normal(size=(3, 1))], [rng.normal(size=3), rng.normal(size=1)]
    return symnet.Network.from_weights(W, b, [act, "linear"]), \
        symnet.Network.from_weights(W, b, [hostile_square("t -> t**2"), "linear"])


def test_a_hostile_activation_name_runs_nothing_in_any_kernel(tmp_path, monkeypatch):
    monkeypatch.setattr(kernels, "_MEMO", {})  # kernels are keyed by the form: build each one here
    from symnet.kernels._sobolev import derivative_pass
    from symnet.check._lambdify_kernel import lambdify_kernel

    marker = tmp_path / "MARKER"
    hostile, plain = square_nets(hostile_square(HOSTILE.format(marker=str(marker))))
    X, Y = np.array([[0.3, -0.5], [1.5, 0.25]]), np.array([[1.0], [-1.0]])
    want = exact(plain, X)  # the same form under a plain name (kernels of one form share a key: not them)
    for backend, strategy, schedule in [(b, s, "auto") for b, s in CASES] + [("numba", "layered", "forward-adjoint")]:
        got = symnet.compile(hostile, backend=backend, strategy=strategy, schedule=schedule, cache=True)(X)
        for array, reference in zip((got.value, got.jacobian, got.hessian), want):
            assert_close(array, reference)
    assert 'x"""' not in symnet.compile(hostile, backend="numba", strategy="layered").source
    assert symnet.compile_loss(hostile, "mse")(X, Y)[0] == symnet.compile_loss(plain, "mse")(X, Y)[0]
    assert derivative_pass(hostile.activations[0])[1] == derivative_pass(plain.activations[0])[1]
    np.testing.assert_array_equal(lambdify_kernel(hostile, ["hessian"])(X).hessian,
                                  lambdify_kernel(plain, ["hessian"])(X).hessian)
    trained = symnet.fit(hostile, X, Y, max_iter=3).history
    np.testing.assert_array_equal(trained, symnet.fit(plain, X, Y, max_iter=3).history)
    assert not marker.exists()


@pytest.mark.parametrize("name", ['a\\', 'b"', 'c"""', "*/ d", "e\r\nimport os", "f\u202eg", "h\x00i", "j'''k",
                                  'l\\\\"""\nprint(1)\n#'])  # l\\""" : the backslashes escape each other
def test_generated_docstrings_are_inert_whatever_the_name(name, monkeypatch):
    import ast

    monkeypatch.setattr(kernels, "_MEMO", {})  # kernels are keyed by the form: build each one here

    hostile, plain = square_nets(hostile_square(name))
    for strategy in ("expression", "layered"):
        kernel = symnet.compile(hostile, backend="numpy", strategy=strategy)
        # module level holds docstrings, imports, constants and functions only: nothing runs on import
        for node in ast.parse(kernel.source).body:
            assert isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign, ast.FunctionDef)) or \
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant), ast.dump(node)
        assert kernel.source.isascii() and "\r" not in kernel.source and "\x00" not in kernel.source
        point = np.array([[0.5, 2.0]])
        assert_close(kernel(point).hessian, exact(plain, point)[2])


def test_program_names_are_ascii_so_python_cannot_fold_two_into_one():
    from types import SimpleNamespace

    from symnet.kernels.codegen import _Names
    from symnet.program import Node

    fullwidth, ascii_, keyword_ = Node("a1_0[\uff58]"), Node("a1_0[x]"), Node("lambda")
    names = _Names(SimpleNamespace(inputs=[], assignments=[(fullwidth, 0), (ascii_, 0), (keyword_, 0)]), {}).map
    assert all(name.isascii() and name.isidentifier() for name in names.values())
    assert len(set(names.values())) == 3 and names[keyword_] != "lambda"


# --- Ctrl-C lands between pieces of a big batch (issue 15) -----------------------------------


def test_numba_expression_batches_go_in_pieces_of_bounded_work(monkeypatch):
    net = random_network(np.random.default_rng(2), [2, 3, 1], ["tanh", "linear"])
    kernel = symnet.compile(net, backend="numba", strategy="expression")
    lines = kernel.source.count("\n")
    assert kernel._numba_chunk == max(4096, kernels._kernel._INTERRUPT_WORK // lines)
    X = np.random.default_rng(3).normal(size=(10_000, 2))
    calls = []
    run = kernels.Kernel._run_numba
    monkeypatch.setattr(kernels.Kernel, "_run_numba", lambda self, points, arrays: (calls.append(len(points)),
                                                                                     run(self, points, arrays)))
    monkeypatch.setattr(kernels._kernel, "_INTERRUPT_WORK", 1 << 60)
    whole = kernel(X)
    assert calls == [10_000]
    calls.clear()
    monkeypatch.setattr(kernels._kernel, "_INTERRUPT_WORK", 1)  # the smallest piece: 4096 points
    pieces = kernel(X)
    assert calls == [4096, 4096, 1808]
    for name, array in whole.as_dict().items():
        np.testing.assert_array_equal(pieces[name], array)
    assert kernels._kernel._spans(10, 4, [(0, 6), (6, 10)]) == [(0, 4), (4, 6), (6, 10)]
    assert kernels._kernel._spans(0, 4, []) == []


def test_an_interrupt_lands_between_pieces(monkeypatch):
    import _thread

    net = random_network(np.random.default_rng(2), [2, 3, 1], ["tanh", "linear"])
    kernel = symnet.compile(net, backend="numba", strategy="expression")
    monkeypatch.setattr(kernels._kernel, "_INTERRUPT_WORK", 1)
    calls = []
    run = kernels.Kernel._run_numba

    def run_then_ctrl_c(self, points, arrays):
        run(self, points, arrays)
        calls.append(len(points))
        if len(calls) == 2:
            _thread.interrupt_main()  # what Ctrl-C does while the second piece runs

    monkeypatch.setattr(kernels.Kernel, "_run_numba", run_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        kernel(np.zeros((50_000, 2)))
    assert calls == [4096, 4096]  # the rest of the batch was not computed


def test_masked_points_and_odd_derivative_requests_are_refused():
    net = symnet.Network.from_weights([[[1.0]]], [[0.0]], ["sigmoid"])
    kernel = symnet.compile(net, backend="numpy")
    with pytest.raises(symnet.InputError, match="X is a masked array, and its mask would be ignored"):
        kernel(np.ma.masked_array([[0.3]], mask=[[1]]))
    with pytest.raises(symnet.InputError, match="X is complex"):
        kernel(np.array([[0.3 + 1j]]))
    with pytest.raises(symnet.InputError, match=r"X has dtype datetime64\[s\]; give real numbers"):
        kernel(np.array([[3]], dtype="datetime64[s]"))
    with pytest.raises(symnet.InputError, match="X has dtype <U3; give real numbers"):
        kernel(np.array([["0.3"]]))
    with pytest.raises(symnet.InputError, match=r"cannot read derivatives=3: give names from value, jacobian, hessian"):
        symnet.compile(net, derivatives=3, backend="numpy")



@pytest.mark.parametrize("act, keep", [("sin", False), ("cos", True)])
def test_sin_and_cos_passes_take_libms_values_past_the_reductions_limit(act, keep):
    """A point with an argument past _vecmath.SIN_COS_LIMIT, NaN or infinite takes libm's sin and cos."""
    from symnet.activations import get
    from symnet.kernels import _cache, _vecmath
    from symnet.kernels._layered import _fused_source, pair_indices

    source = _fused_source(get(act), 1, [(0, 0)], True, False, "test", keep=keep)
    assert "_vecmath.sin_cos(" in source and "_vecmath.sin_cos_wide(" in source
    apply = _cache.load_or_write(_cache.key_of(source), source, lambda: source, use_disk=False)[0].apply
    Z = np.random.default_rng(0).normal(size=(6, 9))
    Z[::2, 3] = [4 * _vecmath.SIN_COS_LIMIT, np.nan, -np.inf]  # rows with one wide point, next to rows without
    Z[1, 1] = -1e300
    tangent, second, laplacian = (np.full((1,) + Z.shape, 0.5) for _ in range(3))
    kept = (np.empty_like(Z), np.empty_like(Z)) if keep else ()
    with np.errstate(all="ignore"):
        values = Z.copy()
        apply(values, tangent, second, laplacian, np.empty((0,) + Z.shape), *pair_indices([(0, 0)]),
              np.empty((1,) + Z.shape), *kept)
        f, f1, f2 = (np.sin(Z), np.cos(Z), -np.sin(Z)) if act == "sin" else (np.cos(Z), -np.sin(Z), -np.cos(Z))
    np.testing.assert_allclose(values, f, rtol=4e-16, atol=0)
    np.testing.assert_allclose(tangent[0], 0.5 * f1, rtol=4e-16, atol=0)
    np.testing.assert_allclose(second[0], 0.5 * f1 + 0.25 * f2, rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(laplacian[0], 0.5 * f1 + 0.25 * f2, rtol=1e-15, atol=1e-16)
    if keep:
        np.testing.assert_allclose(kept[0], f1, rtol=4e-16, atol=0)
        np.testing.assert_allclose(kept[1], f2, rtol=4e-16, atol=0)


@pytest.mark.parametrize("act", ["tanh", "sin", "softplus", "gelu"])
def test_a_separate_pass_writes_what_the_in_place_pass_writes_and_leaves_its_input(act):
    """``separate``: f(Z) and f'(Z) TAN into OZ, OTAN (the graph sweep keeps Z), bit for bit the in-place values."""
    from symnet.activations import get
    from symnet.kernels import _cache
    from symnet.kernels._layered import _fused_source, pair_indices

    def load(**flags):
        source = _fused_source(get(act), 2, [], False, False, "test", keep=True, **flags)
        return _cache.load_or_write(_cache.key_of(source), source, lambda: source, use_disk=False)[0].apply

    Z = np.random.default_rng(1).normal(scale=3, size=(5, 7))
    Z[0, :3] = [40.0, -1e300, np.nan]
    TAN = np.random.default_rng(2).normal(size=(2,) + Z.shape)
    empty, (pi, pk) = np.empty((0,) + Z.shape), pair_indices([])
    with np.errstate(all="ignore"):
        values, tangents, kept = Z.copy(), TAN.copy(), (np.empty_like(Z), np.empty_like(Z))
        load()(values, tangents, empty, empty, empty, pi, pk, np.empty((4,) + Z.shape), *kept)
        OZ, OTAN, kept2 = np.empty_like(Z), np.empty_like(TAN), (np.empty_like(Z), np.empty_like(Z))
        Z0, TAN0 = Z.copy(), TAN.copy()
        load(separate=True)(Z, TAN, empty, empty, empty, pi, pk, np.empty((4,) + Z.shape), *kept2, OZ, OTAN)
    np.testing.assert_array_equal(Z, Z0)  # the input stays
    np.testing.assert_array_equal(TAN, TAN0)
    for got, want in [(OZ, values), (OTAN, tangents), *zip(kept2, kept)]:
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="value and the tangents only"):
        _fused_source(get(act), 2, [(0, 1)], False, False, "test", keep=True, separate=True)


@pytest.mark.parametrize("act, d, schedule", [("sin", 1, "forward"), ("cos", 2, "forward-adjoint"),
                                             ("sin", 5, "forward-adjoint"), ("cos", 3, "forward")])
def test_sin_and_cos_nets_take_any_input(act, d, schedule):
    """Every layer (the first computing z itself or not), both schedules, points near and past the limit."""
    from symnet.kernels import _vecmath

    net = random_network(np.random.default_rng(d), [d, 6, 5, 1], [act, act, "linear"])
    request = ("value", "jacobian", "hessian", "laplacian")
    kernel = symnet.compile(net, request, strategy="layered", schedule=schedule)
    X = np.random.default_rng(0).normal(size=(300, d))
    wide = np.arange(300) % 7 == 0
    X[wide] *= 4 * _vecmath.SIN_COS_LIMIT
    X[5, 0], X[11, -1] = np.nan, np.inf
    with np.errstate(all="ignore"):
        got = kernel(X)
        want = symnet.compile(net, request, backend="numpy", strategy="expression")(X)
    for name, array in want.as_dict().items():
        close = ~wide & np.isfinite(X).all(axis=1)
        assert_close(got[name][close], array[close])
        # sin(z) at z ~ 1e6 moves by ~1e-10 when z moves by an ulp: the two compute z by different sums
        np.testing.assert_allclose(got[name][wide], array[wide], rtol=1e-6, atol=1e-6 * np.abs(array[wide]).max())
        assert np.isnan(got[name][[5, 11]]).all()


def test_a_form_with_two_sine_arguments_checks_both_against_the_limit():
    """sin(z) + cos(3z) / 3: a point whose 3z is past the limit while z is not takes libm's sin and cos."""
    from symnet.activations import T, from_form
    from symnet.kernels import _cache, _vecmath
    from symnet.kernels._layered import _fused_source, pair_indices

    activation = from_form(sympy.sin(T) + sympy.cos(3 * T) / 3)
    source = _fused_source(activation, 1, [(0, 0)], False, False, "test")
    apply = _cache.load_or_write(_cache.key_of(source), source, lambda: source, use_disk=False)[0].apply
    Z = np.random.default_rng(1).normal(size=(4, 5))
    Z[1, 2] = 0.5 * _vecmath.SIN_COS_LIMIT + 0.3  # z within the limit, 3z past it
    tangent, second = np.full((1,) + Z.shape, 0.5), np.full((1,) + Z.shape, 0.5)
    values = Z.copy()
    apply(values, tangent, second, np.empty((0,) + Z.shape), np.empty((0,) + Z.shape), *pair_indices([(0, 0)]),
          np.empty((1,) + Z.shape))
    np.testing.assert_allclose(values, np.sin(Z) + np.cos(3 * Z) / 3, rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(tangent[0], 0.5 * (np.cos(Z) - np.sin(3 * Z)), rtol=1e-15, atol=1e-16)
