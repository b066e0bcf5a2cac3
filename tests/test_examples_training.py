"""The training and non-smooth examples run on their own and print the numbers they promise."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run(name: str, *args: str, cwd: pathlib.Path | None = None) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                            timeout=300, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def number_after(text: str, label: str) -> float:
    match = re.search(re.escape(label) + r"\s*([-+0-9.eE]+)", text)
    assert match, f"{label!r} not in the output:\n{text}"
    return float(match.group(1))


def test_train_parabola():
    out = run("train_parabola.py")
    assert number_after(out, "max |learned - target| =") < 1e-3
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("x^")}
    assert rows["x^2"][1] == "a**2*c" and rows["x^1"][1] == "2*a*b*c" and rows["x^0"][1:4] == ["b**2*c", "+", "d"]
    for power, target in (("x^2", 1), ("x^1", 2), ("x^0", 2)):
        assert abs(float(rows[power][-2]) - target) < 1e-3
    assert "learned parabola: y = 1.0000" in out or "learned parabola: y = 0.9999" in out
    assert "converged" in out and "not converged" not in out.splitlines()[0]


def test_sine_derivatives(tmp_path):
    out = run("sine_derivatives.py", "--out", str(tmp_path / "plot.png"), cwd=tmp_path)
    png = (tmp_path / "plot.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    number = r"\s+([0-9.]+e[-+][0-9]+)"
    errors = {match.group(1): [float(v) for v in match.groups()[1:]]
              for match in re.finditer(r"^(tanh|relu)" + 3 * number + "$", out, re.MULTILINE)}
    tanh_f, tanh_f1, tanh_f2 = errors["tanh"]
    assert tanh_f < 2e-3 and tanh_f1 < 2e-2 and tanh_f2 < 0.1  # smooth: all three derivatives follow
    relu_f, relu_f1, relu_f2 = errors["relu"]
    assert relu_f < 1e-2 and relu_f1 < 0.3 and abs(relu_f2 - 1.0) < 1e-3  # f'' = 0 a.e. misses -sin entirely
    assert "relu f'' at all 2001 points is exactly 0: True" in out
    assert number_after(out, "relu net:") > 10 and "kinks on the real line" in out
    assert "default: sine_derivatives.png" in run("sine_derivatives.py", "--help")  # in the current directory


def test_sobolev():
    out = run("sobolev.py")
    ratio = number_after(out, "values only / values + gradients at the same 60 points:")
    assert ratio > 2
    rows = {line[:33].strip(): line[33:].split() for line in out.splitlines()
            if line.startswith(("values", "001"))}
    assert set(rows) == {"values at 60 points", "values at 180 points", "values + gradients at 60 points",
                         "001's mix at 60 points"}
    numbers_given = {name: int(values[0]) for name, values in rows.items()}
    assert numbers_given == {"values at 60 points": 60, "values at 180 points": 180,
                             "values + gradients at 60 points": 180, "001's mix at 60 points": 60}
    gradient_error = {name: float(values[2]) for name, values in rows.items()}
    assert gradient_error["values + gradients at 60 points"] < gradient_error["values at 60 points"] / 2


def test_softmax_gradient():
    out = run("softmax_gradient.py")
    expected = ["[[ 0.21924763  0.14356247 -0.36281009]", " [ 0.32887144  0.2153437  -0.54421514]]"]
    lines = out.splitlines()
    exact_at = lines.index("exact dL/dW (symnet.param_grad):")
    assert lines[exact_at + 1:exact_at + 3] == expected
    numeric_at = next(i for i, line in enumerate(lines) if line.startswith("numerical dL/dW"))
    assert lines[numeric_at + 1:numeric_at + 3] == expected
    assert number_after(out, "max |exact - numerical| =") < 1e-8
    assert "when sum(t) = 1: True" in out and "gives the exact numbers again: True" in out


def _quick_pde_run(name: str, tmp_path: pathlib.Path) -> str:
    out = run(name, "--quick", "--out", str(tmp_path / "plot.png"), cwd=tmp_path)
    png = (tmp_path / "plot.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert f"wrote {tmp_path / 'plot.png'}" in out
    assert 0 < number_after(out, "time =") < 300
    return out


def test_poisson_quick(tmp_path):
    out = _quick_pde_run("poisson.py", tmp_path)
    error = number_after(out, "relative L2 error =")
    assert 0 < error < 4e-2  # measured 1.1e-2 to 1.3e-2 for the quick run (the full run: below 1e-3)
    assert number_after(out, "max abs error =") < 0.1
    assert "200 interior + 40 boundary points" in out


def test_burgers_quick(tmp_path):
    out = _quick_pde_run("burgers.py", tmp_path)
    assert "derivatives the residual reads: ('value', (1,), (0,), (0, 0))" in out
    error = number_after(out, "relative L2 error =")
    assert 0 < error < 0.15  # measured 4.9e-2 for the quick run (the full run: below 1e-3)
    assert "default: burgers.png" in run("burgers.py", "--help")
