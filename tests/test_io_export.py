"""Export as C (compiled with cc and called through ctypes), Python (exec'd) and LaTeX; values match the kernels."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sympy

import symnet
from symnet.io import export

WORDS = ("value", "gradient", "hessian", "laplacian")
POINTS = np.random.default_rng(5).normal(size=(6, 2))

rng = np.random.default_rng(4)
NETS = {
    "smooth": symnet.Network.from_weights(
        [rng.normal(size=(2, 4)), rng.normal(size=(4, 3)), rng.normal(size=(3, 3)), rng.normal(size=(3, 2))],
        [rng.normal(size=4), rng.normal(size=3), rng.normal(size=3), rng.normal(size=2)],
        ["sigmoid", "softplus", "gelu", "softmax"]),
    "kinks": symnet.Network.from_weights(
        [rng.normal(size=(2, 3)), rng.normal(size=(3, 3)), rng.normal(size=(3, 2)), rng.normal(size=(2, 1))],
        [rng.normal(size=3), rng.normal(size=3), rng.normal(size=2), None],
        ["relu", "leaky_relu(0.2)", "elu(0.5)", "linear"]),
    "mixed": symnet.Network.from_weights(
        [rng.normal(size=(2, 3)), rng.normal(size=(3, 2)), rng.normal(size=(2, 1))], None,
        ["tanh", "silu", lambda x: sympy.sin(x) + x**2 / 2], input_names=["lambda", "x"]),
}


def expected(net: symnet.Network, X: np.ndarray) -> dict[str, np.ndarray]:
    result = symnet.compile(net, ("value", "jacobian", "hessian", "laplacian"), backend="numpy")(X)
    return {"value": result.value, "gradient": result.jacobian, "hessian": result.hessian,
            "laplacian": result.laplacian}


def run_python(source: str, net: symnet.Network, X: np.ndarray) -> dict[str, np.ndarray]:
    namespace: dict[str, Any] = {}
    exec(compile(source, "<symnet export>", "exec"), namespace)  # our own generated code
    out: dict[str, list[Any]] = {w: [] for w in WORDS}
    for x in X:
        for word, value in zip(WORDS, namespace["network"](*x)):
            out[word].append(value)
    m, d = net.n_outputs, net.n_inputs
    shapes = {"value": (m,), "gradient": (m, d), "hessian": (m, d, d), "laplacian": (m,)}
    return {w: np.array(v, dtype=float).reshape((len(X), *shapes[w])) for w, v in out.items()}


@pytest.mark.parametrize("name", list(NETS))
def test_python_export_matches_the_kernel(name: str) -> None:
    net = NETS[name]
    source = export(net, "python", WORDS)
    assert source == export(net, "python", WORDS)  # deterministic
    got, want = run_python(source, net, POINTS), expected(net, POINTS)
    for word in WORDS:
        np.testing.assert_allclose(got[word], want[word], rtol=1e-12, atol=1e-13, err_msg=word)


def test_python_export_survives_extreme_inputs() -> None:
    net = symnet.Network.from_weights([[[1.0]], [[1.0]]], None, ["sigmoid", "softplus"])
    namespace: dict[str, Any] = {}
    exec(export(net, "python", ("value", "gradient")), namespace)
    for x in (-800.0, 800.0):  # math.exp would overflow in the textbook formula
        value, gradient = namespace["network"](x)
        assert np.isfinite(value) and np.isfinite(gradient[0])


def test_python_export_of_one_derivative_returns_it_alone() -> None:
    net = symnet.Network.from_weights([[[2.0]], [[3.0]]], [[1.0], [0.5]], ["square", "linear"])
    namespace: dict[str, Any] = {}
    exec(export(net, "python", "hessian", name="curvature"), namespace)
    assert namespace["curvature"](0.3) == [[24.0]]


@pytest.fixture(scope="module")
def cc() -> str:
    found = shutil.which("cc") or shutil.which("gcc")
    if found is None:
        pytest.fail("no C compiler (cc or gcc) on PATH: the C export cannot be checked; install gcc")
    return found


def run_c(source: str, net: symnet.Network, X: np.ndarray, cc: str, directory: Path) -> dict[str, np.ndarray]:
    (directory / "net.c").write_text(source)
    library = directory / "libnet.so"
    subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-o", str(library),
                    str(directory / "net.c"), "-lm"], check=True, capture_output=True, text=True)
    function = ctypes.CDLL(str(library)).network
    m, d = net.n_outputs, net.n_inputs
    sizes = {"value": m, "gradient": m * d, "hessian": m * d * d, "laplacian": m}
    out = {w: np.zeros((len(X), sizes[w])) for w in WORDS}
    pointer = ctypes.POINTER(ctypes.c_double)
    for p, x in enumerate(np.ascontiguousarray(X, dtype=np.float64)):
        rows = {w: np.zeros(sizes[w]) for w in WORDS}
        function(x.ctypes.data_as(pointer), *(rows[w].ctypes.data_as(pointer) for w in WORDS))
        for w in WORDS:
            out[w][p] = rows[w]
    shapes = {"value": (m,), "gradient": (m, d), "hessian": (m, d, d), "laplacian": (m,)}
    return {w: out[w].reshape((len(X), *shapes[w])) for w in WORDS}


@pytest.mark.parametrize("name", list(NETS))
def test_c_export_compiles_and_matches_the_kernel(name: str, cc: str, tmp_path: Path) -> None:
    net = NETS[name]
    source = export(net, "c", WORDS)
    assert "void network(const double *x, double *value, double *gradient, double *hessian, double *laplacian)" \
        in source
    got, want = run_c(source, net, POINTS, cc, tmp_path), expected(net, POINTS)
    for word in WORDS:
        np.testing.assert_allclose(got[word], want[word], rtol=1e-12, atol=1e-13, err_msg=word)


def test_c_export_keeps_every_bit_of_the_weights(cc: str, tmp_path: Path) -> None:
    net = symnet.Network.from_weights([[[0.1 + 2**-52]]], [[np.nextafter(1.0, 2.0)]], "linear")
    got = run_c(export(net, "c", WORDS), net, np.array([[1.0]]), cc, tmp_path)
    assert got["value"][0, 0] == 0.1 + 2**-52 + np.nextafter(1.0, 2.0)


def test_latex_export() -> None:
    x0, x1 = sympy.symbols("x0 x1", real=True)
    net = symnet.Network.symbolic([2, 1], "sigmoid")
    tex = export(net, "latex", ("value", "gradient", "hessian", "laplacian"))
    assert tex.startswith("\\begin{aligned}\ny &= \\sigma\\left(") and tex.endswith("\\end{aligned}")
    assert "\\frac{\\partial y}{\\partial x_{0}} &= " in tex
    assert "\\frac{\\partial^{2} y}{\\partial x_{0}^{2}} &= " in tex
    assert "\\frac{\\partial^{2} y}{\\partial x_{0} \\partial x_{1}} &= " in tex
    assert "\\frac{\\partial^{2} y}{\\partial x_{1} \\partial x_{0}}" not in tex  # symmetric: written once
    assert "\\Delta y &= " in tex and "w_{1 0 0} x_{0}" in tex  # symbolic weights are fine here
    two = export(NETS["smooth"], "latex", "value")
    assert "y_{0} &= " in two and "y_{1} &= " in two


@pytest.mark.parametrize("kwargs, message", [
    ({"net": symnet.Network.symbolic([1, 1], "tanh"), "lang": "c"},
     r"exporting c code needs numeric weights, but w1_0_0, b1_0 are symbols"),
    ({"lang": "fortran"}, r"lang must be one of c, python, latex, not 'fortran'"),
    ({"derivatives": ("value", "curl")}, r"cannot export derivative 'curl'; choose from value, gradient"),
    ({"derivatives": ()}, r"derivatives is empty"),
    ({"name": "double"}, r"name 'double' must be an identifier and not a reserved word"),
    ({"name": "my net"}, r"name 'my net' must be an identifier"),
])
def test_export_errors(kwargs: dict, message: str) -> None:
    arguments = {"net": NETS["kinks"], "lang": "python", **kwargs}
    with pytest.raises(symnet.InputError, match=message):
        export(**arguments)
