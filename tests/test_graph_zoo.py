"""The PINN zoo (symnet.graph.zoo) against independent references.

Every zoo net, at a small size, gives value, gradient, Hessian, Laplacian, biharmonic and the
partial ``(0, 0, 1)`` that agree with nested float64 PyTorch autograd of an independent torch
evaluator of ``net.graph`` (one rule per op, LayerNorm by hand); the smallest instances agree
with ``sympy.diff`` at 30 digits.
"""

from __future__ import annotations

# the test extra installs torch and dask: a missing one fails here, never skips
import dask.array as da
import numpy as np
import pytest
import sympy
import torch

import symnet
import symnet.dask
from symnet.graph import zoo
from symnet.program import build, closure
from symnet.requests import QUANTITIES

from strategies import SMALL_ZOO

SMALL = SMALL_ZOO

#: The smallest instances, for sympy.diff of the closed form.
TINY = {
    "resnet_mlp": dict(d_in=2, width=2, blocks=1),
    "modified_mlp": dict(d_in=2, width=2, depth=1),
    "pirate_net": dict(d_in=2, width=2),
    "fourier_mlp": dict(d_in=2, features=1, width=2, depth=1),
    "deeponet": dict(sensors=1, coords=1, width=2, depth=1, p=2),
    "layer_norm_mlp": dict(d_in=2, width=3, depth=1),
    "weight_norm_mlp": dict(d_in=2, width=2, depth=1),
    "normalized_two_heads": dict(d_in=2, width=2, depth=1),
}


# --- an independent torch evaluator of a graph, op by op --------------------------------------

def _t(matrix: sympy.MatrixBase) -> torch.Tensor:
    return torch.tensor(np.array(matrix.tolist(), dtype=float), dtype=torch.float64)


_ACT = {
    "tanh": torch.tanh, "sin": torch.sin, "cos": torch.cos, "silu": torch.nn.functional.silu,
    "t -> 1/sqrt(t)": torch.rsqrt, "sigmoid": torch.sigmoid, "exp": torch.exp, "linear": lambda t: t,
    "square": lambda t: t * t, "softplus": torch.nn.functional.softplus,
}


def _dense(node, a):
    p = node.params
    kind = node.attrs.get("parametrization", "plain")
    if kind == "plain":
        W = _t(p["W"])
    elif kind == "weight_norm":
        v, g = _t(p["v"]), _t(p["g"])
        W = g * v / torch.linalg.vector_norm(v, dim=0, keepdim=True)
    elif kind == "factorized":
        W = torch.exp(_t(p["s"])) * _t(p["V"])
    else:
        raise AssertionError(f"no torch rule for parametrization {kind!r}")
    return a @ W + _t(p["b"])[0]


_RULES = {
    "dense": _dense,
    "matmul": lambda n, a: a @ _t(n.attrs["matrix"]),
    "add": lambda n, a, b: a + b,
    "sub": lambda n, a, b: a - b,
    "mul": lambda n, a, b: a * b,
    "scale": lambda n, a: a * _t(n.params["s"])[0],
    "shift": lambda n, a: a + _t(n.params["t"])[0],
    "rescale": lambda n, a: a * _t(n.attrs["scale"])[0] + _t(n.attrs["offset"])[0],
    "concat": lambda n, *a: torch.cat(a, -1),
    "slice": lambda n, a: a[..., n.attrs["start"]:n.attrs["stop"]],
    "sum": lambda n, a: a.sum(-1, keepdim=True),
    "mean": lambda n, a: a.mean(-1, keepdim=True),
    "activation": lambda n, a: _ACT[n.activation.name](a),
}


def _forward(graph, x):
    values = {graph.nodes[0].name: x}
    for node in graph.nodes[1:]:
        assert node.op in _RULES, f"no torch rule for op {node.op!r}"
        values[node.name] = _RULES[node.op](node, *[values[i] for i in node.inputs])
    return values[graph.output]


def _torch_jets(graph, point, wanted, k):
    """``{alpha: d^alpha y_k(point)}`` by nested float64 autograd."""
    x = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    cache = {(): _forward(graph, x)[k]}
    grads = {}
    for alpha in closure(wanted):
        if not alpha:
            continue
        parent = alpha[:-1]
        if parent not in grads:
            grads[parent] = torch.autograd.grad(cache[parent], x, create_graph=True)[0]
        cache[alpha] = grads[parent][alpha[-1]]
    return {a: cache[a].item() for a in wanted}


def _wanted(d):
    value = [()]
    gradient = [(i,) for i in range(d)]
    hessian = QUANTITIES["hessian"].multi_indices(d)
    biharmonic = QUANTITIES["biharmonic"].multi_indices(d)
    return sorted(set(value + gradient + hessian + biharmonic + [(0, 0, 1)]), key=lambda a: (len(a), a))


def _close(got, want, rel=1e-12, floor=1e-3):
    return abs(got - want) <= rel * max(abs(want), floor)


def _p30(point):
    return [sympy.Float(float(v), 30) for v in point]


# --- jets against torch ------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SMALL))
def test_zoo_jets_match_torch(name):
    net = zoo.ZOO[name](**SMALL[name])
    assert not net.is_chain
    d = net.n_inputs
    wanted = _wanted(d)
    program = build(net, wanted)
    rng = np.random.default_rng(7)
    for _ in range(2):
        point = rng.normal(size=d)
        for k in range(net.n_outputs):
            jet = program.jets[k]
            exprs = sympy.ImmutableMatrix([jet.get(a, sympy.S.Zero) for a in wanted])
            got = dict(zip(wanted, (float(v) for v in program.substitute_inputs(_p30(point), exprs))))
            ref = _torch_jets(net.graph, point, wanted, k)
            bad = {a: (got[a], ref[a]) for a in wanted if not _close(got[a], ref[a])}
            assert not bad, f"{name} output {k}: {bad}"
            # the assembled quantities, too
            lap = sum(got[(i, i)] for i in range(d))
            assert _close(lap, sum(ref[(i, i)] for i in range(d)))
            bih = sum((1 if i == j else 2) * ref[(i, i, j, j)] for i in range(d) for j in range(i, d))
            bih_expr = QUANTITIES["biharmonic"].entries(jet, d)[0][1]
            bih_got = float(program.substitute_inputs(_p30(point), sympy.ImmutableMatrix([bih_expr]))[0])
            assert _close(bih_got, bih)
            assert _close(got[(0, 0, 1)], ref[(0, 0, 1)])


def test_layer_norm_mlp_matches_hand_written_torch_layer_norm():
    """layer_norm_mlp against a torch model written from its definition, not from its graph:
    ``tanh(LayerNorm(x W1 + b1)) W2 + b2``, LayerNorm by hand (eps 1e-5; not F.layer_norm, whose
    nested third derivative is wrong in some torch versions)."""
    net = zoo.layer_norm_mlp(d_in=2, width=3, depth=1)
    nodes = {n.op: n for n in net.graph.nodes if n.op in ("scale", "shift")}
    first, head = [n for n in net.graph.nodes if n.op == "dense"]
    gamma, beta = _t(nodes["scale"].params["s"])[0], _t(nodes["shift"].params["t"])[0]

    class Model(torch.nn.Module):
        def forward(self, x):
            z = x @ _t(first.params["W"]) + _t(first.params["b"])[0]
            centred = z - z.mean(-1, keepdim=True)
            variance = (centred * centred).mean(-1, keepdim=True)
            h = torch.tanh(centred / torch.sqrt(variance + 1e-5) * gamma + beta)
            return h @ _t(head.params["W"]) + _t(head.params["b"])[0]

    wanted = _wanted(2)
    program = build(net, wanted)
    model = Model()
    for point in np.random.default_rng(5).normal(size=(2, 2)):
        x = torch.tensor(point, dtype=torch.float64, requires_grad=True)
        cache, grads = {(): model(x)[0]}, {}
        for alpha in closure(wanted):
            if alpha:
                if alpha[:-1] not in grads:
                    grads[alpha[:-1]] = torch.autograd.grad(cache[alpha[:-1]], x, create_graph=True)[0]
                cache[alpha] = grads[alpha[:-1]][alpha[-1]]
        exprs = sympy.ImmutableMatrix([program.jets[0].get(a, sympy.S.Zero) for a in wanted])
        got = program.substitute_inputs(_p30(point), exprs)
        for alpha, value in zip(wanted, got):
            assert _close(float(value), cache[alpha].item()), alpha


# --- sympy.diff of the closed form on the smallest instances ----------------------------------

# pirate_net is left out: sympy.diff of its closed form to order 4 takes minutes.
@pytest.mark.parametrize("name", sorted(set(TINY) - {"pirate_net"}))
def test_zoo_partials_match_sympy_diff(name):
    net = zoo.ZOO[name](**TINY[name])
    _check_sympy_diff(net, [(0, 0, 1), (0, 0, 1, 1)])


def test_pirate_net_second_order_matches_sympy_diff():
    """pirate_net only to order 2: its order-4 sympy.diff is too slow for the suite."""
    net = zoo.ZOO["pirate_net"](**TINY["pirate_net"])
    _check_sympy_diff(net, [(0,), (0, 1)])


def _check_sympy_diff(net, wanted):
    X = net.inputs
    point = np.random.default_rng(2).normal(size=net.n_inputs)
    values = _p30(point)
    sub = dict(zip(X, values))
    program = build(net, wanted)
    for k in range(net.n_outputs):
        for alpha in wanted:
            ref = sympy.diff(net.outputs[k], *[X[i] for i in alpha]).xreplace(sub).evalf(30)
            got = program.substitute_inputs(values, sympy.ImmutableMatrix([program.jets[k][alpha]]))[0]
            assert abs(ref - got) <= sympy.Float("1e-13") * max(abs(ref), 1), (alpha, k, ref, got)


# --- printing and the flat forms --------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SMALL))
def test_zoo_nets_print(name):
    net = zoo.ZOO[name](**SMALL[name])
    text = repr(net)
    assert text.startswith("Network(graph")
    assert str(net)
    described = net.graph.describe()
    assert all(node.name in described for node in net.graph.nodes[1:])


def test_flat_forms_match_jets_resnet():
    net = zoo.resnet_mlp(d_in=2, width=3, blocks=1)
    d = net.n_inputs
    point = _p30(np.random.default_rng(3).normal(size=d))
    sub = dict(zip(net.inputs, point))
    program = build(net, _wanted(d))
    jet = program.jets[0]

    def at(expr):
        return program.substitute_inputs(point, sympy.ImmutableMatrix([expr]))[0]

    def flat(expr):
        return sympy.sympify(expr).xreplace(sub).evalf(30)

    tol = sympy.Float("1e-13")
    H = symnet.hessian(net)
    assert H.shape == (d, d)
    for i in range(d):
        for j in range(d):
            want = at(jet[tuple(sorted((i, j)))])
            assert abs(flat(H[i, j]) - want) <= tol * max(abs(want), 1)
    lap = at(sum(jet[(i, i)] for i in range(d)))
    assert abs(flat(symnet.laplacian(net)) - lap) <= tol * max(abs(lap), 1)
    bih = at(QUANTITIES["biharmonic"].entries(jet, d)[0][1])
    assert abs(flat(symnet.biharmonic(net)) - bih) <= tol * max(abs(bih), 1)


# --- every public function on every zoo net ---------------------------------------------------

def _torch_quantities(net, X, k=0):
    """Value, gradient, Hessian, Laplacian, biharmonic and d^3/dx0^2 dx1 of output k by torch."""
    d = net.n_inputs
    wanted = _wanted(d)
    rows = [_torch_jets(net.graph, point, wanted, k) for point in X]
    return {
        "value": np.array([r[()] for r in rows]),
        "jacobian": np.array([[r[(i,)] for i in range(d)] for r in rows]),
        "hessian": np.array([[[r[tuple(sorted((i, j)))] for j in range(d)] for i in range(d)] for r in rows]),
        "laplacian": np.array([sum(r[(i, i)] for i in range(d)) for r in rows]),
        "biharmonic": np.array([sum((1 if i == j else 2) * r[(i, i, j, j)] for i in range(d) for j in range(i, d))
                                for r in rows]),
        (0, 0, 1): np.array([r[(0, 0, 1)] for r in rows]),
    }


def _assert_kernel_matches_torch(net, kernel, X, rtol=1e-11, atol=1e-12):
    result = kernel(X)
    for k in range(net.n_outputs):
        want = _torch_quantities(net, X, k)
        np.testing.assert_allclose(result.value[:, k], want["value"], rtol=rtol, atol=atol)
        np.testing.assert_allclose(result.jacobian[:, k], want["jacobian"], rtol=rtol, atol=atol)
        np.testing.assert_allclose(result.hessian[:, k], want["hessian"], rtol=rtol, atol=atol)
        np.testing.assert_allclose(result.laplacian[:, k], want["laplacian"], rtol=rtol, atol=atol)
        np.testing.assert_allclose(result.biharmonic[:, k], want["biharmonic"], rtol=rtol, atol=atol)
        np.testing.assert_allclose(result[(0, 0, 1)][:, k], want[(0, 0, 1)], rtol=rtol, atol=atol)


_ALL = ("value", "jacobian", "hessian", "laplacian", "biharmonic", (0, 0, 1))


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_public_function_runs_on_every_zoo_net(name, tmp_path):
    """The issue's list, on each zoo net: closed form and printing, the derivative functions, taylor,
    param_grad against compile_loss, compile (expression and layered), fit, verify,
    save/load, export, Dask, and the functions that cannot apply refuse with a SymnetError."""
    import warnings

    net = zoo.ZOO[name](**TINY[name])  # the smallest: the flat closed forms of larger ones are huge
    d, m = net.n_inputs, net.n_outputs
    X = np.random.default_rng(11).uniform(-1, 1, (3, d))
    Y = np.random.default_rng(12).uniform(-1, 1, (3, m))
    assert net.outputs.shape == (m, 1) and str(net) and repr(net).startswith("Network(graph")

    # the exact derivative functions, at a point, against torch
    point = X[0]
    sub = dict(zip(net.inputs, point))
    want = _torch_quantities(net, X[:1], 0)
    output = 0 if m > 1 else None
    checks = {
        "value": (net.outputs[0], want["value"][0]),
        "grad": (symnet.grad(net, output=output), want["jacobian"][0]),
        "hessian": (symnet.hessian(net, output=output), want["hessian"][0]),
        "laplacian": (symnet.laplacian(net, output=output), want["laplacian"][0]),
        "diff": (symnet.diff(net, 0, 0, 1, output=output), want[(0, 0, 1)][0]),
    }
    assert symnet.jacobian(net).shape == (m, d)
    for what, (expr, ref) in checks.items():
        got = np.array(sympy.Matrix([expr]).xreplace(sub).evalf(20).tolist(), dtype=float).reshape(np.shape(ref))
        np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-12, err_msg=what)

    # taylor's first coefficients are the value and the gradient
    coefficients = symnet.taylor(net, list(point), 1, output=output)
    assert abs(float(coefficients[(0,) * d]) - want["value"][0]) <= 1e-11 * max(1, abs(want["value"][0]))
    for i in range(d):
        e = tuple(int(j == i) for j in range(d))
        assert abs(float(coefficients[e]) - want["jacobian"][0][i]) <= 1e-11 * max(1, abs(want["jacobian"][0][i]))

    # param_grad (exact) and compile_loss (numeric reverse mode) agree, node by node
    exact = symnet.param_grad(net, "mse", (X, Y))
    loss, numeric = symnet.compile_loss(net, "mse")(X, Y)
    assert set(exact) == set(numeric) and np.isfinite(loss)
    for node in exact:
        assert set(exact[node]) == set(numeric[node]), node
        for param, ref in exact[node].items():
            np.testing.assert_allclose(np.asarray(numeric[node][param], dtype=float).ravel(),
                                       np.array(sympy.Matrix(ref).evalf(20).tolist(), dtype=float).ravel(),
                                       rtol=1e-9, atol=1e-12, err_msg=f"{node}.{param}")

    # compile: the expression and the layered kernels against torch
    kernel = symnet.compile(net, _ALL, backend="numpy", strategy="expression")
    assert "EXPRESSION_LIMIT" in symnet.compile(net, _ALL, backend="numpy").strategy_reason
    _assert_kernel_matches_torch(net, kernel, X)
    _assert_kernel_matches_torch(net, symnet.compile(net, _ALL, backend="numpy", strategy="layered"), X)

    # fit, verify, save/load, export, Dask
    fitted = symnet.fit(net, X, Y if m > 1 else Y[:, 0], max_iter=3)
    assert np.isfinite(fitted.loss) and fitted.net.graph.nodes[-1].op == net.graph.nodes[-1].op
    assert symnet.verify(net, X).ok
    again = symnet.load(symnet.save(net, tmp_path / f"{name}.npz"))
    assert again == net
    for language in ("c", "python", "latex"):
        assert symnet.io.export(net, language, derivatives=("value", "jacobian"))
    lazy = symnet.dask.evaluate(kernel, da.from_array(X, chunks=(2, d))).compute()
    np.testing.assert_array_equal(lazy.hessian, kernel(X).hessian)

    # what cannot apply says why
    with pytest.raises(symnet.NotAChainError):
        symnet.formula(net, "value")
    with pytest.raises(symnet.SymnetError, match="not a polynomial"):
        symnet.coefficients(net, output=output)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not symnet.kinks(net, X).hits  # smooth nets have none


def test_a_gated_net_of_polynomial_activations_has_exact_coefficients():
    net = zoo.modified_mlp(d_in=2, width=2, depth=1, activation="square")
    coefficients = symnet.coefficients(net)
    poly = dict(sympy.Poly(sympy.expand(net.outputs[0]), *net.inputs).terms())
    assert set(coefficients) == set(poly) and max(sum(e) for e in poly) == 4  # square of a square
    for monomial, value in poly.items():  # the same sums of float products, in another order
        assert abs(coefficients[monomial] - value) <= 1e-13 * max(1, abs(value)), monomial


# --- realistic size ---------------------------------------------------------------------------

#: The zoo at width 64, as PINN codes train them (jaxpi and PhysicsNeMo default to 256-512
#: wide); ``auto`` takes the layered strategy at this size.
REALISTIC = {name: dict(width=64) for name in SMALL}


@pytest.mark.parametrize("name", sorted(REALISTIC))
def test_zoo_at_realistic_size_matches_torch(name):
    """The compiled kernels of each zoo net at width 64 (``auto``: the layered strategy, numba and
    numpy backends): value, gradient, Hessian, Laplacian, biharmonic and d^3/dx0^2 dx1 against
    nested torch autograd."""
    net = zoo.ZOO[name](**REALISTIC[name])
    X = np.random.default_rng(13).uniform(-1, 1, (4, net.n_inputs))
    for backend in ("numba", "numpy"):
        kernel = symnet.compile(net, _ALL, backend=backend)
        assert kernel.strategy == "layered"
        _assert_kernel_matches_torch(net, kernel, X, rtol=1e-10, atol=1e-11)
