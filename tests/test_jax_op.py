"""symnet.jax: the derivative kernels as a JAX op (custom_vjp over two host callbacks).

Three checks of the op's gradients: JAX's own checker (finite differences of the forward pass
against the reverse pass) on a chain and on every zoo net; the same chain written in
jax.numpy, differentiated by JAX alone, agreeing on a Poisson loss and its parameter
gradient to 1e-12; and the gradient with respect to the points against the kernel's Jacobian.

JAX's 64-bit mode is switched on for this module only (the ``x64`` fixture puts it back).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

# JAX is in the `test` extra: without it these tests fail rather than skip.
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import symnet
import symnet.jax as sj
from symnet.graph import zoo

from strategies import SMALL_ZOO

REQUESTS = ["value", "laplacian", "hessian", "biharmonic", (0, 0, 1)]
SIZES = SMALL_ZOO  # small widths: a few parameters per node, every node kind of the zoo


@pytest.fixture(scope="module", autouse=True)
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture(scope="module")
def chain() -> symnet.Network:
    """2-3-3-1 tanh, linear output."""
    rng = np.random.default_rng(19)
    sizes = [2, 3, 3, 1]
    return symnet.Network.from_weights([rng.normal(scale=0.8, size=(a, b)) for a, b in zip(sizes, sizes[1:])],
                                       [rng.normal(scale=0.3, size=b) for b in sizes[1:]],
                                       ["tanh", "tanh", "linear"])


def points(n: int, d: int, seed: int = 0) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, size=(n, d)))


def relative(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# --- the op's gradients ---------------------------------------------------------------------------


@pytest.mark.parametrize("request_", REQUESTS, ids=str)
def test_check_grads_on_a_chain(chain, request_):
    fn, params = sj.derivatives(chain, (request_,))
    check_grads(fn, (params, points(6, 2)), order=1, modes=("rev",))


@pytest.mark.parametrize("name", sorted(SIZES))
def test_check_grads_on_the_zoo(name):
    net = zoo.ZOO[name](**SIZES[name])
    fn, params = sj.derivatives(net, REQUESTS)
    assert fn.outputs == ("value", "hessian", "laplacian", "biharmonic", "partial_0_0_1")
    X = points(5, net.n_inputs, seed=1)
    out = fn(params, X)
    expected = fn.kernel(np.asarray(X))
    for key in fn.outputs:
        assert out[key].dtype == jnp.float64
        np.testing.assert_array_equal(np.asarray(out[key]), expected[key])
    check_grads(fn, (params, X), order=1, modes=("rev",))


def test_check_grads_catches_a_planted_error(chain, monkeypatch):
    """The checker above can fail: a reverse pass off by 0.1% in one parameter is caught."""
    fn, params = sj.derivatives(chain, ("laplacian",))
    exact = fn.kernel.vjp

    def planted(*args, **kwargs):
        grads, dX = exact(*args, **kwargs)
        grads["z2"]["W"] = grads["z2"]["W"] * 1.001
        return grads, dX
    monkeypatch.setattr(fn.kernel, "vjp", planted)
    with pytest.raises(AssertionError):
        check_grads(fn, (params, points(6, 2)), order=1, modes=("rev",))


def test_point_gradient_is_the_jacobian(chain):
    fn, params = sj.derivatives(chain, ("value",))
    X = points(4, 2)
    dX = jax.grad(lambda X: jnp.sum(fn(params, X)["value"]))(X)
    jacobian = symnet.compile_vjp(chain, ("jacobian",))(np.asarray(X)).jacobian[:, 0, :]
    np.testing.assert_allclose(np.asarray(dX), jacobian, rtol=1e-13, atol=1e-15)


# --- against the same network in jax.numpy -------------------------------------------------------


def mlp(params, x):
    """The chain, written in jax.numpy: one point ``x`` ``(2,)`` -> a scalar."""
    h = jnp.tanh(x @ params["z1"]["W"] + params["z1"]["b"][0])
    h = jnp.tanh(h @ params["z2"]["W"] + params["z2"]["b"][0])
    return (h @ params["z3"]["W"] + params["z3"]["b"][0])[0]


def source(X):
    return jnp.sin(np.pi * X[:, 0]) * X[:, 1]


def poisson_symnet(fn):
    def loss(params, X):
        return jnp.mean((fn(params, X)["hessian"][:, 0].trace(axis1=1, axis2=2) + source(X)) ** 2)
    return loss


def poisson_jax(params, X):
    hessians = jax.vmap(jax.hessian(mlp, argnums=1), in_axes=(None, 0))(params, X)
    return jnp.mean((jnp.trace(hessians, axis1=1, axis2=2) + source(X)) ** 2)


def test_poisson_loss_and_gradient_match_pure_jax(chain):
    fn, params = sj.derivatives(chain, ("hessian",))
    X = points(16, 2, seed=2)
    np.testing.assert_allclose(np.asarray(jax.vmap(mlp, in_axes=(None, 0))(params, X)),
                               symnet.compile_vjp(chain)(np.asarray(X)).value[:, 0],
                               rtol=1e-13)
    ours, ours_grad = jax.jit(jax.value_and_grad(poisson_symnet(fn)))(params, X)
    theirs, theirs_grad = jax.jit(jax.value_and_grad(poisson_jax))(params, X)
    assert abs(float(ours) - float(theirs)) <= 1e-12 * abs(float(theirs))
    for node in params:
        for name in params[node]:
            assert relative(ours_grad[node][name], theirs_grad[node][name]) < 1e-12, (node, name)


def test_gradient_descent_under_jit_lowers_the_loss(chain):
    fn, params = sj.derivatives(chain, ("hessian",))
    X = points(32, 2, seed=3)
    loss = poisson_symnet(fn)

    @jax.jit
    def step(params):
        value, grads = jax.value_and_grad(loss)(params, X)
        return value, jax.tree_util.tree_map(lambda p, g: p - 0.01 * g, params, grads)

    history = []
    for _ in range(5):
        value, params = step(params)
        history.append(float(value))
    assert all(b < a for a, b in zip(history, history[1:])), history
    trained = sj.network(chain, params)
    assert trained.is_chain and trained.layer_sizes == chain.layer_sizes
    again, own = sj.derivatives(trained, ("hessian",))
    np.testing.assert_array_equal(np.asarray(again(own, X)["hessian"]), np.asarray(fn(params, X)["hessian"]))


# --- network(): parameters back into a Network ---------------------------------------------------


def test_network_rebuilds_chains_and_graphs(chain):
    _, params = sj.derivatives(chain)
    assert sj.network(chain, params).expr == chain.expr
    net = zoo.ZOO["weight_norm_mlp"](**SIZES["weight_norm_mlp"])
    fn, params = sj.derivatives(net, ("laplacian",))
    moved = jax.tree_util.tree_map(lambda p: p * 1.1, params)
    rebuilt = sj.network(net, moved)
    assert not rebuilt.is_chain and [n.name for n in rebuilt.graph.nodes] == [n.name for n in net.graph.nodes]
    X = points(5, 2, seed=4)
    np.testing.assert_allclose(symnet.compile_vjp(rebuilt, ("laplacian",))(np.asarray(X)).laplacian,
                               np.asarray(fn(moved, X)["laplacian"]), rtol=1e-14, atol=1e-14)


def test_network_checks_the_parameters(chain):
    _, params = sj.derivatives(chain)
    with pytest.raises(symnet.ShapeError, match=r"params must give the nodes \['z1', 'z2', 'z3'\]"):
        sj.network(chain, {"z1": params["z1"], "z3": params["z3"]})
    with pytest.raises(symnet.ShapeError, match=r"params\['z1'\]\['W'\] has shape \(3, 3\), \(2, 3\) needed"):
        sj.network(chain, {**params, "z1": {"W": np.zeros((3, 3)), "b": params["z1"]["b"]}})
    with pytest.raises(symnet.ShapeError, match=r"params\['z1'\]\['W'\] has shape \(3, 2\), \(2, 3\) needed"):
        sj.network(chain, {**params, "z1": {"W": params["z1"]["W"].T, "b": params["z1"]["b"]}})  # same size
    flat = {node: {"W": p["W"], "b": p["b"][0]} for node, p in params.items()}          # biases as (w,)
    assert sj.network(chain, flat).expr == chain.expr


# --- transformations -----------------------------------------------------------------------------


def test_vmap_runs_once_per_batch_element(chain):
    fn, params = sj.derivatives(chain, ("laplacian",))
    XB = jnp.stack([points(4, 2, seed=s) for s in range(3)])
    batched = jax.vmap(lambda X: fn(params, X)["laplacian"])(XB)
    np.testing.assert_array_equal(np.asarray(batched), np.stack([np.asarray(fn(params, X)["laplacian"]) for X in XB]))
    grad = jax.grad(lambda p, X: jnp.sum(fn(p, X)["laplacian"]))
    per_batch = jax.jit(jax.vmap(grad, in_axes=(None, 0)))(params, XB)
    for k, X in enumerate(XB):
        np.testing.assert_array_equal(np.asarray(per_batch["z2"]["W"][k]), np.asarray(grad(params, X)["z2"]["W"]))


def test_higher_orders_are_refused(chain):
    fn, params = sj.derivatives(chain, ("value",))
    X = points(3, 2)
    with pytest.raises(ValueError, match="Pure callbacks do not support JVP"):
        jax.hessian(lambda p: jnp.sum(fn(p, X)["value"]))(params)
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(lambda X: fn(params, X)["value"], (X,), (X,))


def test_other_dtypes_are_cast_to_float64(chain):
    fn, params = sj.derivatives(chain, ("value",))
    single = jax.tree_util.tree_map(lambda p: p.astype(jnp.float32), params)
    X = points(3, 2).astype(jnp.float32)
    assert fn(single, X)["value"].dtype == jnp.float64
    grads = jax.grad(lambda p: jnp.sum(fn(p, X)["value"]))(single)
    assert grads["z1"]["W"].dtype == jnp.float32
    one_input = symnet.Network.from_weights([[[1.0]], [[1.0]]], [[0.0], [0.0]], ["sin", "linear"])
    fn, params = sj.derivatives(one_input, ("jacobian",))
    np.testing.assert_allclose(np.asarray(fn(params, jnp.array([0.0, np.pi]))["jacobian"][:, 0, 0]), [1.0, -1.0])


# --- errors --------------------------------------------------------------------------------------


def test_x64_is_required(chain):
    fn, params = sj.derivatives(chain)
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(symnet.InputError, match=r"jax_enable_x64"):
            sj.derivatives(chain)
        with pytest.raises(symnet.InputError, match=r"64-bit mode"):
            fn(params, np.zeros((1, 2)))
    finally:
        jax.config.update("jax_enable_x64", True)


def test_arguments_are_checked_while_tracing(chain):
    fn, params = sj.derivatives(chain)
    with pytest.raises(symnet.ShapeError, match=r"points must have shape \(N, 2\), not \(3, 1\)"):
        fn(params, jnp.zeros((3, 1)))
    with pytest.raises(symnet.ShapeError, match=r"params has no node 'z2'"):
        fn({"z1": params["z1"], "z3": params["z3"]}, jnp.zeros((3, 2)))
    with pytest.raises(symnet.ShapeError, match=r"params names \['z9'\]"):
        fn({**params, "z9": {}}, jnp.zeros((3, 2)))
    with pytest.raises(symnet.ShapeError, match=r"params\['z1'\]\['W'\] has shape \(2, 2\), \(2, 3\) needed"):
        fn({**params, "z1": {"W": jnp.zeros((2, 2)), "b": params["z1"]["b"]}}, jnp.zeros((3, 2)))
    with pytest.raises(symnet.ShapeError, match=r"params\['z1'\]\['W'\] has shape \(3, 2\), \(2, 3\) needed"):
        fn({**params, "z1": {"W": params["z1"]["W"].T, "b": params["z1"]["b"]}}, jnp.zeros((3, 2)))  # same size
    flat = {node: {"W": p["W"], "b": p["b"][0]} for node, p in params.items()}          # biases as (w,)
    X = points(3, 2)
    np.testing.assert_array_equal(np.asarray(fn(flat, X)["value"]), np.asarray(fn(params, X)["value"]))
    assert fn(params, jnp.zeros((0, 2)))["value"].shape == (0, 1)                      # no points
    with pytest.raises(symnet.WeightError, match="symbolic"):
        sj.derivatives(symnet.Network.symbolic([1, 1], "tanh"))


def test_non_finite_points_fail_with_symnets_message(chain):
    fn, params = sj.derivatives(chain)
    with pytest.raises(Exception, match="points must be finite numbers"):
        jax.block_until_ready(jax.jit(fn)(params, jnp.array([[0.0, np.nan]])))


def test_import():
    """``import symnet`` does not import JAX; ``symnet.jax`` without JAX says how to install it."""
    script = textwrap.dedent("""
        import sys
        import symnet
        assert "jax" not in sys.modules, "import symnet imported jax"
        sys.modules["jax"] = None           # as if JAX were not installed
        try:
            import symnet.jax
        except ImportError as error:
            print(error)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pip install 'jax>=0.4.34'" in done.stdout
