"""The ``symnet`` command, each subcommand run as a subprocess (``python -m symnet.cli`` and the console script)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import symnet  # noqa: E402
from symnet import cli  # noqa: E402
from symnet.io import save  # noqa: E402

STORY_003 = [np.array([[-1.3284513]]), np.array([-1.328055]), np.array([[0.5667597]]), np.array([1.0003909])]
ONES = symnet.Network.from_weights([[[1, 1], [1, 1]], [[1], [1]]], [[1, 1], [0]], ["sigmoid", "linear"])  # story 001


def run(*args: Any, cwd: Path, script: bool = False) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "symnet")] if script else [sys.executable, "-m", "symnet.cli"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def main(capsys: pytest.CaptureFixture[str], *args: Any) -> subprocess.CompletedProcess[str]:
    """The command in this process (quicker; each subcommand also runs as a subprocess somewhere here)."""
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, status, out, err)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def failed(result: subprocess.CompletedProcess[str], status: int = 2) -> str:
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Story 003's Keras model as a .keras file (and a trap twin), story 001's net as a symnet file, a state dict."""
    import keras
    import torch

    directory = tmp_path_factory.mktemp("cli")
    marker = directory / "pwned"
    old = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        with warnings.catch_warnings():  # Keras warns that it serialises the lambda's bytecode; numpy 2 about arrays
            warnings.simplefilter("ignore")
            for name, activation in (("parabola", lambda x: x**2),
                                     ("trap", lambda x, m=str(marker): (open(m, "w").close(), x**2)[1])):
                model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, activation=activation),
                                          keras.layers.Dense(1)])
                model.set_weights(STORY_003)
                model.save(directory / f"{name}.keras")
    finally:
        keras.config.set_floatx(old[0])
        keras.config.set_dtype_policy(old[1])
    marker.unlink(missing_ok=True)
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    torch.save(module.state_dict(), directory / "mlp.pt")
    return {"parabola": directory / "parabola.keras", "trap": directory / "trap.keras", "marker": marker,
            "ones": save(ONES, directory / "ones.npz"), "mlp": directory / "mlp.pt", "dir": directory,
            "wave": save(symnet.Network.from_weights([[[1.0]], [[2.0]]], None, ["tanh", "linear"]),
                         directory / "wave.npz")}


def test_demo(tmp_path: Path) -> None:
    out = ok(run("demo", cwd=tmp_path))
    assert "learned parabola: y = 1.0002078 x^2 + 1.9998188 x + 2.0000020" in out


def test_coeffs_of_a_keras_lambda_model_in_one_call(files: dict[str, Path]) -> None:
    out = ok(run("coeffs", files["parabola"], "--activation", "0=x**2", cwd=files["dir"], script=True))
    lines = out.splitlines()
    assert lines[0] == "polynomial coefficients of Network(1 -> 1 -> 1, activations=(t -> t**2, linear), numeric):"
    assert [line.split()[0] for line in lines[1:]] == ["x0**2", "x0", "1"]
    assert [round(float(line.split()[1]), 7) for line in lines[1:]] == [1.0002078, 1.9998188, 2.000002]


def test_a_lambda_in_a_keras_file_is_never_run(files: dict[str, Path]) -> None:
    err = failed(run("coeffs", files["trap"], cwd=files["dir"]))
    assert err.startswith("symnet coeffs: error: ")
    assert "has a Python lambda activation" in err and "--activation 0=x**2" in err and "--trust" in err
    assert not files["marker"].exists()
    assert "t -> t**2" in ok(run("inspect", files["trap"], "--activation", "0=x**2", cwd=files["dir"]))
    assert not files["marker"].exists()


def test_coeffs_formats(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(ok(main(capsys, "coeffs", files["parabola"], "--activation", "0=x**2", "--format", "json")))
    assert data["kind"] == "polynomial" and data["inputs"] == ["x0"]
    assert [c["exponents"] for c in data["coefficients"]] == [[2], [1], [0]]
    assert [round(c["value"], 7) for c in data["coefficients"]] == [1.0002078, 1.9998188, 2.000002]
    tex = ok(main(capsys, "coeffs", files["parabola"], "--activation", "0=x**2", "--format", "latex"))
    assert tex.startswith("y = ") and "x_{0}^{2}" in tex


def test_taylor_coefficients_when_not_a_polynomial(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    err = failed(main(capsys, "coeffs", files["wave"]))
    assert "is not a polynomial" in err and "--order N (and --about POINT)" in err
    out = ok(main(capsys, "coeffs", files["wave"], "--order", "3", "--about", "0"))
    assert out.splitlines()[0].startswith("taylor coefficients of Network(1 -> 1 -> 1") and "about (0), order 3" in out
    values = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert values == {"x0**3": "-0.666666666666667", "x0**2": "0", "x0": "2.0", "1": "0"}


def test_inspect(files: dict[str, Path]) -> None:
    out = ok(run("inspect", files["ones"], cwd=files["dir"]))
    assert "network:  Network(2 -> 2 -> 1, activations=(sigmoid, linear), numeric)" in out
    assert "  1      2 -> 2  sigmoid     numeric" in out
    assert "  y = 2*sigmoid(x0 + x1 + 1)" in out


def test_derive_at_points(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(ok(run("derive", files["ones"], "--at", "1,1", "--at=-1,0.5", "--format", "json",
                             cwd=files["dir"])))
    kernel = symnet.compile(ONES, ("value", "jacobian", "hessian"), backend="numpy")(np.array([[1, 1], [-1, 0.5]]))
    assert [p["x"] for p in data["points"]] == [[1.0, 1.0], [-1.0, 0.5]]
    np.testing.assert_array_equal([p["value"] for p in data["points"]], kernel.value)
    np.testing.assert_array_equal([p["gradient"] for p in data["points"]], kernel.jacobian)
    np.testing.assert_array_equal([p["hessian"] for p in data["points"]], kernel.hessian)
    assert round(data["points"][0]["gradient"][0][0], 7) == 0.0903533
    before = np.get_printoptions()
    text = ok(main(capsys, "derive", files["ones"], "--at", "1,1", "--order", "1", "--digits", "3"))
    assert text.splitlines()[0] == "x = [1., 1.]" and "gradient" in text and "hessian" not in text
    assert np.get_printoptions() == before  # the command's precision does not leak into the caller's numpy


def test_derive_points_from_csv(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "points.csv").write_text("x0,x1\n1,1\n0,0.5\n")
    data = json.loads(ok(main(capsys, "derive", files["ones"], "--csv", tmp_path / "points.csv", "--order", "0",
                              "--format", "json")))
    assert [p["x"] for p in data["points"]] == [[1.0, 1.0], [0.0, 0.5]] and "gradient" not in data["points"][0]
    (tmp_path / "bad.csv").write_text("1,1\n1,oops\n")
    assert "bad.csv, line 2" in failed(main(capsys, "derive", files["ones"], "--csv", tmp_path / "bad.csv"))
    assert "has 3 coordinates but the network takes 2" in failed(main(capsys, "derive", files["ones"], "--at", "1,2,3"))
    assert "give points with --at" in failed(main(capsys, "derive", files["ones"]))


def test_verify(files: dict[str, Path]) -> None:
    out = ok(run("verify", files["ones"], "--points", "4", cwd=files["dir"]))
    assert out.startswith("VerifyReport: ok; 4 of 4 points checked")


def test_verify_exits_1_when_the_checks_disagree(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    class Failed:
        ok = False

        def __repr__(self) -> str:
            return "VerifyReport: FAILED"

        def message(self) -> str:
            return "verify failed: planted"

    monkeypatch.setattr(symnet, "verify", lambda *args, **kwargs: Failed())
    assert cli.main(["verify", str(files["ones"])]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == "VerifyReport: FAILED" and err.strip() == "verify failed: planted"


def test_export(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok(run("export", files["ones"], "--lang", "c", "--derivatives", "value,gradient", "-o", "net.c", cwd=tmp_path))
    source = (tmp_path / "net.c").read_text()
    assert "void network(const double *x, double *value, double *gradient)" in source
    python = ok(main(capsys, "export", files["parabola"], "--activation", "0=x**2", "--lang", "python", "--name",
                     "parabola"))
    namespace: dict[str, Any] = {}
    exec(python, namespace)  # our own generated code
    assert abs(namespace["parabola"](1.0) - 5.0000286) < 1e-6


def test_a_torch_state_dict(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = ok(main(capsys, "inspect", files["mlp"], "--act", "tanh,linear", "--arch", "2-3-1"))
    assert "(torch)" in out and "Network(2 -> 3 -> 1, activations=(tanh, linear), numeric)" in out
    err = failed(main(capsys, "inspect", files["mlp"], "--arch", "2-4-1", "--act", "tanh"))
    assert "the weights give layer sizes 2-3-1, not the 2-4-1 given" in err
    assert "a state dict holds no activations" in failed(main(capsys, "inspect", files["mlp"]))
    assert "trust applies to .keras files" in failed(main(capsys, "inspect", files["mlp"], "--act", "tanh", "--trust"))


def test_errors_are_one_line_unless_debug(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = failed(run("inspect", "missing.npz", cwd=tmp_path))
    assert err.startswith("symnet inspect: error: ") and "missing.npz" in err and len(err.splitlines()) == 1
    assert "Traceback" in run("--debug", "inspect", "missing.npz", cwd=tmp_path).stderr
    with pytest.raises(FileNotFoundError):
        cli.main(["inspect", str(tmp_path / "missing.npz"), "--debug"])
    (tmp_path / "notes.txt").write_text("hello")
    assert "not a network file symnet reads" in failed(main(capsys, "inspect", tmp_path / "notes.txt"))


def test_bad_arguments(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    err = failed(main(capsys, "coeffs", files["parabola"], "--activation", "x**2"))
    assert "--activation 'x**2': write LAYER=EXPR" in err
    err = failed(main(capsys, "coeffs", files["parabola"], "--activation", "0=x^2"))
    assert 'expression "x^2": unexpected character \'^\' at position 1; use ** for powers' in err
    err = failed(main(capsys, "coeffs", files["parabola"], "--activation", "7=x"))
    assert "activation for layer 7: there are 2 Dense layers" in err
    assert "--act is for" not in err
    assert "a .keras file stores its architecture" in failed(main(capsys, "inspect", files["parabola"], "--act", "x"))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["derive", str(files["ones"]), "--at", "1,1", "--order", "3"])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert "'a' is not a number" in failed(main(capsys, "derive", files["ones"], "--at", "a,1"))


# --- nothing from a file reaches the terminal raw (issue 15) -----------------------------------------

RAW = ("\x1b", "\r", "\x07", "\u202e", "\u2066", "\u200b")


def test_control_characters_in_names_are_printed_escaped(files: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    name = "red\x1b[31m\r\x07\u202eevil\u2066\u200b"
    net = symnet.Network.from_weights([[[2.0]], [[1.0]]], None,
                                      [symnet.activations.from_form(symnet.activations.T**2, name=name), "linear"])
    monkeypatch.setattr(symnet.io, "read_network", lambda *args, **kwargs: net)
    for command in ("inspect", "coeffs", "verify"):
        out = ok(main(capsys, command, files["ones"]))
        assert not any(c in out for c in RAW), command
        assert command == "verify" or "red\\x1b[31m\\r\\x07\\u202eevil\\u2066\\u200b" in out, command


def test_error_messages_quoting_a_file_are_escaped_and_short(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    meta = {"format": "symnet-network", "version": 1, "inputs": ["x0"], "symbols": {},
            "layers": [{"fan_in": 1, "fan_out": 1, "activation": {"name": "\x1b[2J\u202etanh" * 1000, "form": "t"},
                        "W": {"text": [["1"]]}, "b": {"text": ["0"]}}]}
    path = tmp_path / "ansi.npz"
    with open(path, "wb") as stream:
        np.savez(stream, symnet=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    err = failed(main(capsys, "inspect", path))
    assert not any(c in err for c in RAW) and len(err.splitlines()) == 1 and len(err) < 2100
    assert "is named '\\x1b[2J\\u202etanh" in err


def test_planted_payloads_do_nothing_through_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    payload = f'x"""\nimport pathlib; pathlib.Path({str(marker)!r}).touch()\n"""'
    layer = {"fan_in": 1, "fan_out": 1, "activation": {"name": "tanh", "form": "tanh(t)"},
             "W": {"text": [["1"]]}, "b": {"text": ["0"]}}
    plants = [{**layer, "activation": {"name": payload, "form": "t"}},
              {**layer, "activation": {"name": "t -> t", "form": payload}},
              {**layer, "W": {"text": [[payload]]}}]
    for number, plant in enumerate(plants):
        meta = {"format": "symnet-network", "version": 1, "inputs": ["x0"], "symbols": {}, "layers": [plant]}
        path = tmp_path / f"plant{number}.npz"
        with open(path, "wb") as stream:
            np.savez(stream, symnet=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
        for command in (["inspect"], ["export", "--lang", "python"], ["export", "--lang", "c"], ["derive", "--at", "1"],
                        ["verify"], ["coeffs"]):
            err = failed(main(capsys, command[0], path, *command[1:]))
            assert err.count("\n") == 1, (command, err)
            assert not marker.exists(), (number, command)


@pytest.mark.parametrize("arguments, message", [
    (["coeffs", "{ones}", "--digits", "-5"], r"argument --digits: -5 is out of range: give an integer from 1 to 1000"),
    (["coeffs", "{ones}", "--digits", "10000000"], r"--digits: 10000000 is out of range"),
    (["derive", "{ones}", "--at", "1,1", "--digits", "0"], r"--digits: 0 is out of range"),
    (["coeffs", "{ones}", "--order", "-1"], r"--order: -1 is out of range: give an integer at least 0"),
    (["coeffs", "{ones}", "--output", "-1"], r"--output: -1 is out of range"),
    (["verify", "{ones}", "--points", "0"], r"--points: 0 is out of range: give an integer from 1 to 100000"),
    (["verify", "{ones}", "--seed", "-1"], r"--seed: -1 is out of range"),
    (["inspect", "{ones}", "--max-weights", "x"], r"--max-weights: 'x' is not an integer"),
])
def test_numeric_options_are_checked_by_the_parser(arguments: list[str], message: str, files: dict[str, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([a.format(ones=files["ones"]) for a in arguments])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and re.search(message, err), err


@pytest.mark.parametrize("content, message", [
    (b"x0,x1\n1,1\n0,\xff\n", r"bad\.csv, line 3: not UTF-8 text \(byte 0xff\); save the points as UTF-8 CSV"),
    (b"1,1\n1,nan\n", r"bad\.csv, line 2: the point \[1\.0, nan\] is not finite: give finite numbers"),
    (b"1e999,0\n", r"bad\.csv, line 1: the point \[inf, 0\.0\] is not finite"),
    (b"1,1\n2," + b"1" * 200_000 + b"\n", r"bad\.csv, line 2: not CSV: field larger than field limit"),
])
def test_bad_csv_points_are_refused_naming_the_file_and_line(content: bytes, message: str, files: dict[str, Path],
                                                            tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.csv").write_bytes(content)
    err = failed(main(capsys, "derive", files["ones"], "--csv", tmp_path / "bad.csv", "--format", "json"))
    assert re.search(message, err) and "internal error" not in err, err


def test_a_csv_with_a_byte_order_mark_reads(files: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "points.csv").write_bytes(b"\xef\xbb\xbfx0,x1\n1,1\n")
    data = json.loads(ok(main(capsys, "derive", files["ones"], "--csv", tmp_path / "points.csv", "--format", "json")))
    assert [p["x"] for p in data["points"]] == [[1.0, 1.0]]


@pytest.mark.parametrize("arguments, message", [
    (["derive", "{ones}", "--at", "nan,0", "--format", "json"], r"--at nan,0: the point \[nan, 0\.0\] is not finite"),
    (["derive", "{ones}", "--at", "1,1", "--at", "1e999,0"], r"--at 1e999,0: the point \[inf, 0\.0\] is not finite"),
    (["derive", "{ones}", "--at=-inf,0"], r"--at -inf,0: the point \[-inf, 0\.0\] is not finite"),
    (["coeffs", "{ones}", "--about", "0,nan"], r"--about: the point \[0, nan\] is not finite"),
])
def test_non_finite_points_are_refused(arguments: list[str], message: str, files: dict[str, Path],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    err = failed(main(capsys, *[a.format(ones=files["ones"]) for a in arguments]))
    assert re.search(message, err), err


def test_json_output_never_holds_nan_tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save(symnet.Network.from_weights([[[1e200]], [[1e200]]], None, ["linear", "linear"]), tmp_path / "big.npz")
    err = failed(main(capsys, "derive", path, "--at", "1e10", "--format", "json"))
    assert re.search(r"the result holds NaN or infinite numbers .* see them with --format text", err), err
    assert "inf" in ok(main(capsys, "derive", path, "--at", "1e10"))


def test_inspect_derive_verify_read_graph_keras_legacy_h5_and_onnx(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Each importer's files through the commands: a residual net as .keras, legacy .h5 and .onnx."""
    import keras
    import torch

    class Residual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp, self.block, self.out = torch.nn.Linear(2, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.tanh(self.inp(x))
            return self.out(h + torch.tanh(self.block(h)))

    module = Residual().double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, 2, dtype=torch.float64),), str(tmp_path / "res.onnx"), dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
        x = keras.Input((2,))
        h = keras.layers.Dense(4, activation="tanh")(x)
        model = keras.Model(x, keras.layers.Dense(1)(keras.layers.Add()([h, keras.layers.Dense(4, activation="tanh")(h)])))
        model.save(tmp_path / "res.keras")
        model.save(tmp_path / "res.h5")
    for name, want in (("res.onnx", symnet.from_torch(module)), ("res.keras", symnet.from_keras(model)),
                       ("res.h5", symnet.from_keras(model))):
        path = tmp_path / name
        assert "graph 2 -> 1" in ok(main(capsys, "inspect", path))
        data = json.loads(ok(main(capsys, "derive", path, "--at", "0.5,-0.25", "--format", "json")))
        expected = symnet.compile(want, ("value", "jacobian", "hessian"), backend="numpy")(np.array([[0.5, -0.25]]))
        np.testing.assert_allclose(data["points"][0]["hessian"], expected.hessian[0], rtol=1e-12, atol=1e-15)
        assert ok(main(capsys, "verify", path, "--points", "3")).startswith("VerifyReport: ok")
