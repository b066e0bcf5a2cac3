"""Export as C (compiled with cc and called through ctypes), Python (exec'd) and LaTeX; values match the kernels."""

from __future__ import annotations

import ast
import ctypes
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sympy

import symnet
from symnet.io import export
from conftest import WORDS, run_python

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


@pytest.mark.parametrize("name", list(NETS))
def test_python_export_matches_the_kernel(name: str) -> None:
    net = NETS[name]
    source = export(net, "python", WORDS)
    assert source == export(net, "python", WORDS)  # deterministic
    got, want = run_python(source, net, POINTS), expected(net, POINTS)
    for word in WORDS:
        np.testing.assert_allclose(got[word], want[word], rtol=1e-12, atol=1e-13, err_msg=word)


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_units_whose_inlined_arguments_differ_only_by_a_number_keep_their_own_derivatives(act: str) -> None:
    """One input, no bias: the pre-activations 1.0*x0, 3.0*x0, -2.0*x0 are inlined into the
    activations, and each unit's derivative must use its own (the tail-safe rewrite once reused unit
    0's for all)."""
    net = symnet.Network.from_weights([[[1.0, 3.0, -2.0]], [[1.0], [1.0], [0.5]]], None, [act, "linear"])
    X = np.array([[0.5], [-0.25], [1.5]])
    got = run_python(export(net, "python", WORDS), net, X)
    x = net.inputs[0]
    for word, expr in (("value", net.expr), ("gradient", sympy.diff(net.expr, x)),
                       ("hessian", sympy.diff(net.expr, x, 2))):
        want = [float(expr.subs(x, float(point)).evalf(30)) for point in X[:, 0]]
        np.testing.assert_allclose(got[word].reshape(len(X)), want, rtol=1e-13, err_msg=word)


def test_python_export_survives_extreme_inputs() -> None:
    net = symnet.Network.from_weights([[[1.0]], [[1.0]]], None, ["sigmoid", "softplus"])
    namespace: dict[str, Any] = {}
    exec(export(net, "python", ("value", "gradient")), namespace)
    for x in (-800.0, 800.0):  # math.exp would overflow in the textbook formula
        value, gradient = namespace["network"](x)
        assert np.isfinite(value) and np.isfinite(gradient[0])


def test_python_export_of_softmax_is_shifted_by_the_largest_unit() -> None:
    """softmax(x, -x, 0): exp(800) overflows unshifted; shifted, s0 = 1 and ds0/dx = s0 (1 - s0 + s1)
    keeps its relative accuracy (at x = 20 it is about e^-20 = 2e-9, of which 1 - s0 formed
    directly would keep 8 digits)."""
    net = symnet.Network.from_weights([[[1.0, -1.0, 0.0]]], None, ["softmax"])
    namespace: dict[str, Any] = {}
    exec(export(net, "python", ("value", "gradient")), namespace)
    x = sympy.Symbol("x")
    logits = (x, -x, sympy.Integer(0))
    s0 = sympy.exp(x) / sum(sympy.exp(z) for z in logits)
    for point in (800, 20, -3):
        value, gradient = namespace["network"](float(point))
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient))
        exact = float(sympy.diff(s0, x).subs(x, sympy.Integer(point)).evalf(30, maxn=4000))
        assert abs(gradient[0][0] - exact) <= 1e-14 * abs(exact), (point, gradient[0][0], exact)


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
    ({"name": "double"}, r"name 'double' must be an ASCII identifier and not a reserved word"),
    ({"name": "my net"}, r"name 'my net' must be an ASCII identifier"),
])
def test_export_errors(kwargs: dict, message: str) -> None:
    arguments = {"net": NETS["kinks"], "lang": "python", **kwargs}
    with pytest.raises(symnet.InputError, match=message):
        export(**arguments)


# --- names never reach generated text raw (issue 15) ------------------------------------------------

HOSTILE = 'x"""\nimport pathlib; pathlib.Path({marker!r}).touch()\n""" */ \x1b[2J \u202e \\'


def test_hostile_activation_names_are_escaped_in_exported_code(cc: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    name = HOSTILE.format(marker=str(marker))
    net = symnet.Network.from_weights([[[2.0]], [[3.0]]], [[1.0], [0.5]],
                                      [symnet.activations.from_form(symnet.activations.T**2, name=name), "linear"])
    python = export(net, "python", ("value", "gradient"))
    c = export(net, "c", ("value", "gradient"))
    for source in (python, c):
        assert all(line.isprintable() for line in source.splitlines())  # no control or bidi characters
    tree = ast.parse(python)
    assert [type(node).__name__ for node in tree.body] == ["Expr", "Import", "FunctionDef"]  # a docstring, no more
    assert "\\x1b[2J \\u202e" in ast.get_docstring(tree) and '\\"\\"\\"' in python
    namespace: dict[str, Any] = {}
    exec(compile(python, "<symnet export>", "exec"), namespace)
    assert namespace["network"](1.0) == (27.5, [36.0])
    assert c.count("*/") == 1 and c.index("*/") < c.index("#include")  # the header comment ends where it should
    got = run_c(export(net, "c", WORDS), net, np.array([[1.0]]), cc, tmp_path)
    assert got["value"][0, 0] == 27.5
    assert not marker.exists()


def test_c_comments_cannot_be_ended_or_spliced() -> None:
    from symnet.io.export import _c_comment

    assert _c_comment("/* a */ b") == "/* a * / b"
    assert _c_comment(" * ends in \\") == " * ends in \\ " and _c_comment(" * ??/") == " * ??/ "


def test_latex_export_refuses_names_that_are_not_identifiers() -> None:
    net = symnet.Network.from_weights([[[sympy.Symbol("a}\\input{/etc/passwd", real=True)]]], None, "tanh")
    with pytest.raises(symnet.InputError, match=r"cannot export LaTeX: the name 'a}\\\\input\{/etc/passwd' is not "
                                                r"an identifier; rename it"):
        export(net, "latex")


def test_a_unicode_input_name_cannot_collide_with_a_generated_name(cc: str, tmp_path: Path) -> None:
    # Python reads identifiers NFKC-normalised: the full-width ｚ1_0 *is* z1_0, the first neuron's local
    net = symnet.Network.from_weights([[[2.0, -1.0]], [[3.0], [0.5]]], [[1.0, 0.25], [0.5]], ["tanh", "linear"],
                                      input_names=["\uff5a1_0"])
    source = export(net, "python", WORDS)
    assert "def network(z1_0):" in source and "    z1_0_1 = " in source
    np.testing.assert_allclose(run_python(source, net, POINTS[:, :1])["value"], expected(net, POINTS[:, :1])["value"],
                               rtol=1e-12)
    c = export(net, "c", WORDS)
    assert c[c.index("*/"):].isascii() and "const double z1_0 = x[0];" in c
    np.testing.assert_allclose(run_c(c, net, POINTS[:, :1], cc, tmp_path)["value"],
                               expected(net, POINTS[:, :1])["value"], rtol=1e-12)


@pytest.mark.parametrize("names", [["_1", "\u03be"], ["\u2168", "IX"]])  # '_1' once looped for ever; Ⅸ is IX to NFKC
def test_input_names_become_distinct_identifiers(names: list[str], cc: str, tmp_path: Path) -> None:
    net = symnet.Network.from_weights([[[1.0], [2.0]]], [[0.5]], "tanh", input_names=names)
    source = export(net, "python", WORDS)
    arguments = ast.parse(source).body[-1].args.args  # type: ignore[attr-defined]
    assert len({unicodedata.normalize("NFKC", a.arg) for a in arguments}) == 2
    np.testing.assert_allclose(run_python(source, net, POINTS)["gradient"], expected(net, POINTS)["gradient"],
                               rtol=1e-12)
    c = export(net, "c", WORDS)
    assert c[c.index("*/"):].isascii()  # the code; the comment names the inputs as they are
    np.testing.assert_allclose(run_c(c, net, POINTS, cc, tmp_path)["gradient"], expected(net, POINTS)["gradient"],
                               rtol=1e-12)


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softplus", "silu", "gelu", "elu"])
def test_c_export_keeps_the_tails(name: str, cc: str, tmp_path: Path) -> None:
    """The C prints the kernels' tail-safe forms: tanh'(40) is 7.2e-35, not 1 - 1 = 0 (mpmath at 60+ digits)."""
    from test_tails import TAILS, assert_accurate

    net = symnet.Network.from_weights([[[1.0]], [[1.0]]], [[0.0], [0.0]], [name, "linear"])
    got = run_c(export(net, "c", WORDS), net, np.array(TAILS).reshape(-1, 1), cc, tmp_path)
    for k, word in enumerate(("value", "gradient", "hessian")):
        assert_accurate(name, k, TAILS, got[word], "export c")


@pytest.mark.parametrize("names", [["abs", "max"], ["expm1", "erfc"], ["M_PI", "M_E"], ["erf", "linux"],
                                   ["symnet_sigmoid", "_sigmoid"], ["_softplus", "FP_NAN"]])
def test_input_names_cannot_shadow_what_the_printers_emit(names: list[str], cc: str, tmp_path: Path) -> None:
    # abs(...) in Python, expm1/erfc/erf in C (elu, gelu), M_PI and M_E as math.h macros, linux predefined by GNU C
    net = symnet.Network.from_weights([[[1.0, -0.5], [3.0, 0.25]], [[1.0], [2.0]]], [[0.1, -0.2], [0.3]],
                                      ["elu", "gelu"], input_names=names)
    source = export(net, "python", WORDS)
    np.testing.assert_allclose(run_python(source, net, POINTS)["gradient"], expected(net, POINTS)["gradient"],
                               rtol=1e-12)
    c = export(net, "c", WORDS)
    np.testing.assert_allclose(run_c(c, net, POINTS, cc, tmp_path)["hessian"], expected(net, POINTS)["hessian"],
                               rtol=1e-12, atol=1e-13)
    net = symnet.Network.from_weights([[[1.0], [3.0]]], [[0.1]], ["softplus"], input_names=["abs", "max"])
    assert "def network(abs_1, max_1):" in export(net, "python")
    net = symnet.Network.from_weights([[[1.0], [3.0]]], [[0.1]], ["elu"], input_names=["M_PI", "expm1"])
    assert "const double v_M_PI = x[0];" in export(net, "c") and "const double expm1_1 = x[1];" in export(net, "c")


@pytest.mark.parametrize("name", ["abs", "expm1", "M_PI", "M_SQRT2", "__x", "_Bool", "symnet_sigmoid", "linux"])
def test_export_refuses_a_function_name_the_printers_use(name: str) -> None:
    with pytest.raises(symnet.InputError, match=rf"name '{name}' must be an ASCII identifier and not a reserved word"):
        export(NETS["kinks"], "c", name=name)
