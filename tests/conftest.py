"""Shared helpers for the tests: random networks and numeric evaluation of SymPy results."""

from __future__ import annotations

import os
from typing import Any

import mpmath
import numpy as np
import sympy
from hypothesis import settings

import symnet

# Hypothesis: CI (CI=true, as .ci/run is called) replays a fixed set of examples, so a good change is
# never rejected by a new random one; a failure prints the example and its reproduction blob.  Local runs
# explore new examples each time (turn what they find into fixed tests).  HYPOTHESIS_PROFILE overrides.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True, deadline=None)
settings.register_profile("explore", print_blob=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "explore"))

SMOOTH = ["linear", "sigmoid", "tanh", "softplus", "silu", "gelu", "sin", "cos", "exp", "square", "elu(1.0)"]
SMOOTH = [a for a in SMOOTH if a != "elu(1.0)"]  # elu is C1 only at 0: smooth in value, not in second derivative


#: Scripts that made test data in other environments (tests/data/make_flax_mlp.py needs flax and
#: jax2onnx): not test modules, and their imports are not test dependencies.
collect_ignore_glob = ["data/*.py"]


def random_network(rng: np.random.Generator, sizes: list[int], activations: list[str], scale: float = 0.7) -> symnet.Network:
    weights = [rng.normal(scale=scale, size=(a, b)) for a, b in zip(sizes, sizes[1:])]
    biases = [rng.normal(scale=0.3, size=b) for b in sizes[1:]]
    return symnet.Network.from_weights(weights, biases, activations)


def evaluate(expr: sympy.Expr, symbols: tuple[sympy.Symbol, ...], point: np.ndarray, digits: int = 30) -> float:
    """Value of ``expr`` at ``point`` in ``digits``-digit arithmetic (mpmath), independent of numpy."""
    expr = sympy.sympify(expr).replace(symnet.sigmoid, lambda a: 1 / (1 + sympy.exp(-a)))
    expr = expr.replace(symnet.softplus, lambda a: sympy.log(1 + sympy.exp(a)))
    fn = sympy.lambdify(symbols, expr, "mpmath")
    with mpmath.workdps(digits):
        return float(fn(*[mpmath.mpf(float(v)) for v in point]))


def reference_derivative(net: symnet.Network, output: int, wrt: list[int], point: np.ndarray) -> float:
    """d^wrt y_output at ``point`` by ``sympy.diff`` of the flat expression: the independent oracle.

    Differentiates the symbolic twin of ``net`` (same architecture, weights as symbols; SymPy
    is far faster there than with Float weights) and substitutes the weights afterwards.
    """
    twin = symnet.Network.symbolic(net.layer_sizes, net.activations)
    expr = sympy.diff(twin.outputs[output], *[twin.inputs[i] for i in wrt])
    weights = [float(v) for layer in net.layers for v in (*layer.weight, *layer.bias)]
    return evaluate(expr, twin.inputs + twin.params, np.concatenate([point, weights]))


def pytest_configure(config):
    """Kernels compiled by the tests go to a private cache directory, not the user's."""
    import tempfile

    os.environ["SYMNET_CACHE_DIR"] = tempfile.mkdtemp(prefix="symnet-test-cache-")


#: What the exported Python function of a network returns, in order (symnet.io.export).
WORDS = ("value", "gradient", "hessian", "laplacian")


def run_python(source: str, net: symnet.Network, X: np.ndarray) -> dict[str, np.ndarray]:
    """Run an exported Python source (our own generated code) at the points ``X``: each word's array."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<symnet export>", "exec"), namespace)  # our own generated code
    out: dict[str, list[Any]] = {w: [] for w in WORDS}
    for x in X:
        for word, value in zip(WORDS, namespace["network"](*x)):
            out[word].append(value)
    m, d = net.n_outputs, net.n_inputs
    shapes = {"value": (m,), "gradient": (m, d), "hessian": (m, d, d), "laplacian": (m,)}
    return {w: np.array(v, dtype=float).reshape((len(X), *shapes[w])) for w, v in out.items()}
