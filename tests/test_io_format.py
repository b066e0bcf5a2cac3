"""symnet's file format: exact round trips (a property test), and every kind of bad file refused clearly."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import symnet
from symnet.activations import T
from symnet.io import FileFormatError, UntrustedCodeError, detect, load, read_network, save
from symnet.io._expr import ExpressionError, parse, to_text

PARABOLA = symnet.Network.from_weights([[[-1.3284513]], [[0.5667597]]], [[-1.328055], [1.0003909]],
                                       [lambda x: x**2, "linear"])


def roundtrip(net: symnet.Network, directory: Path) -> symnet.Network:
    return load(save(net, directory / "net.npz"))


def write(path: Path, meta: dict | None, **arrays: np.ndarray) -> Path:
    """A hand-made archive: ``meta`` as the JSON metadata plus the given arrays."""
    if meta is not None:
        arrays["symnet"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as stream:
        np.savez(stream, **arrays)
    return path


def good_meta(**layer: object) -> dict:
    entry = {"fan_in": 1, "fan_out": 1, "activation": {"name": "tanh", "form": "tanh(t)"},
             "W": {"array": "W1"}, "b": {"text": ["0"]}, **layer}
    return {"format": "symnet-network", "version": 1, "inputs": ["x0"], "symbols": {}, "layers": [entry]}


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("net", [
    PARABOLA,
    symnet.Network.symbolic([2, 3, 1], ["tanh", "linear"]),
    symnet.Network.symbolic([2, 2, 2], ["sigmoid", "softmax"], input_names=["u", "v"], bias=False),
    symnet.Network.symbolic([1, 2, 1], ["elu(0.5)", "leaky_relu(0.2)"]).subs(w1_0_0=0.25, b1_1=sympy.Rational(1, 3)),
    symnet.Network.from_weights([[[1, sympy.sqrt(2)]], [[sympy.pi], [sympy.Symbol("a", positive=True)]]],
                                [[sympy.E, -1], [sympy.exp(sympy.Symbol("c", real=True))]], ["gelu", "softplus"]),
    symnet.Network.from_weights([np.arange(6.0).reshape(2, 3) - 2.5, np.ones((3, 1))], None,
                                ["silu", lambda x: sympy.exp(-x**2) + sympy.Abs(x)]),
    symnet.Network.from_weights([[[5e-324, -0.0, 1.7976931348623157e308]]], [[0.1, 1e-300, -2.5]], "relu"),
    symnet.Network.from_weights([[[0.5]]], None, "leaky_relu(0.123456789)"),  # a name that rounds alpha
], ids=["parabola", "symbolic", "softmax", "mixed", "constants", "traced", "extreme-floats", "leaky-name"])
def test_round_trip_is_exact(net: symnet.Network, tmp_path: Path) -> None:
    back = roundtrip(net, tmp_path)
    assert back == net
    assert [a.name for a in back.activations] == [a.name for a in net.activations]
    assert back.inputs == net.inputs and back.params == net.params
    if net.is_numeric:  # bit for bit
        for a, b in zip(net.layers, back.layers):
            assert a.weight_array().tobytes() == b.weight_array().tobytes()


def test_user_registered_activation_loads_without_the_registry(tmp_path: Path) -> None:
    cube = symnet.activations.from_form(T**3, name="cube")
    symnet.activations.register("cube", cube)
    try:
        net = symnet.Network.from_weights([[[2.0]]], None, "cube")
        path = save(net, tmp_path / "cube.npz")
    finally:
        symnet.activations.unregister("cube")
    back = load(path)  # the form travels with the file
    assert back == net and back.activations[0].name == "cube"


def test_save_writes_exactly_the_path_and_nothing_else(tmp_path: Path) -> None:
    path = save(PARABOLA, tmp_path / "model.symnet")
    assert path == tmp_path / "model.symnet" and sorted(os.listdir(tmp_path)) == ["model.symnet"]
    assert detect(path) == "symnet"
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["W1.npy", "W2.npy", "b1.npy", "b2.npy", "symnet.npy"]


def test_read_network_of_a_symnet_file(tmp_path: Path) -> None:
    path = save(PARABOLA, tmp_path / "p.npz")
    assert read_network(path) == PARABOLA
    with pytest.raises(FileFormatError, match=r"p\.npz: a symnet file stores its architecture and activations"):
        read_network(path, activations={0: "x"})


def test_importing_symnet_io_imports_no_framework() -> None:
    code = "import sys, symnet.io; print(sorted(m for m in ('keras', 'torch', 'h5py') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_metadata_is_readable_json(tmp_path: Path) -> None:
    net = symnet.Network.symbolic([1, 1, 1], ["square", "linear"])
    with np.load(save(net, tmp_path / "s.npz"), allow_pickle=False) as archive:
        meta = json.loads(archive["symnet"].tobytes())
    assert meta["layers"][0]["W"] == {"text": [["w1_0_0"]]}
    assert meta["layers"][0]["activation"] == {"name": "square", "form": "t**2"}
    assert meta["symbols"]["w1_0_0"] == {"real": True}


finite = st.floats(allow_nan=False, allow_infinity=False)
elementwise = st.one_of(
    st.sampled_from(["linear", "tanh", "sigmoid", "relu", "softplus", "silu", "gelu", "sin", "cos", "exp", "square"]),
    st.floats(0.001, 0.9).map(lambda a: symnet.activations.activation("leaky_relu", alpha=a)),
    st.floats(0.1, 3.0).map(lambda a: symnet.activations.activation("elu", alpha=a)),
)


@st.composite
def numeric_nets(draw: st.DrawFn) -> symnet.Network:
    sizes = draw(st.lists(st.integers(1, 3), min_size=2, max_size=4))
    acts = [draw(elementwise) for _ in sizes[1:]]
    if draw(st.booleans()):
        acts[-1] = "softmax"
    weights = [np.array(draw(st.lists(finite, min_size=a * b, max_size=a * b))).reshape(a, b)
               for a, b in zip(sizes, sizes[1:])]
    biases = [None if draw(st.booleans()) else np.array(draw(st.lists(finite, min_size=b, max_size=b)))
              for b in sizes[1:]]
    return symnet.Network.from_weights(weights, biases, acts)


@settings(max_examples=40, deadline=None)
@given(numeric_nets())
def test_property_numeric_round_trip(net: symnet.Network) -> None:
    with tempfile.TemporaryDirectory() as directory:
        assert roundtrip(net, Path(directory)) == net


a, b = sympy.symbols("a b", real=True)
entries = st.one_of(
    finite.map(sympy.Float),
    st.integers(-10**30, 10**30).map(sympy.Integer),
    st.fractions(max_denominator=10**6).map(lambda f: sympy.Rational(f.numerator, f.denominator)),
    st.sampled_from([a, b, a * b, -a / 3, a**2 + 0.5 * b, sympy.sqrt(2) * a, sympy.exp(-a), symnet.sigmoid(b),
                     sympy.Max(a, 0), sympy.Heaviside(b), sympy.log(a**2 + 1), a**-2, sympy.erf(a) - b]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(entries, min_size=6, max_size=6), elementwise)
def test_property_symbolic_round_trip(values: list[sympy.Expr], act: object) -> None:
    net = symnet.Network.from_weights([[values[:2]], [[values[2]], [values[3]]]], [values[4:6], [0]],
                                      [act, "linear"])
    with tempfile.TemporaryDirectory() as directory:
        assert roundtrip(net, Path(directory)) == net


# --- what save refuses -----------------------------------------------------------------------------


@pytest.mark.parametrize("net, message", [
    (symnet.Network.from_weights([[[sympy.Float("0.1", 30)]]], None, "tanh"), "precision.*float64"),
    (symnet.Network.from_weights([[[sympy.Symbol("a b", real=True)]]], None, "tanh"), "only plain sympy.Symbol"),
    (symnet.Network.from_weights([[[sympy.Dummy("d")]]], None, "tanh"), "Dummy"),
    (symnet.Network.from_weights([[[1.0]]], None, lambda x: sympy.atan(x)), "unknown function 'atan'"),
    (symnet.Network.from_weights([[[sympy.cosh(sympy.Symbol("a", real=True))]]], None, "tanh"), "cosh"),
])
def test_save_refuses_what_it_cannot_write_back(net: symnet.Network, message: str, tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match=message):
        save(net, tmp_path / "x.npz")
    assert not os.listdir(tmp_path)  # nothing half-written


# --- bad files ----------------------------------------------------------------------------------------


def test_a_pickle_is_refused_unread(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"layers": [1, 2]}))
    with pytest.raises(FileFormatError, match=r"evil\.npz: not a symnet file \(it looks like a Python pickle"):
        load(path)
    assert not marker.exists()


def test_a_pickled_object_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "objects.npz"
    with open(path, "wb") as stream:
        np.savez(stream, symnet=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UntrustedCodeError, match=r"objects\.npz: holds a pickled Python object array"):
        load(path)


@pytest.mark.parametrize("where, text", [
    ("W", "__import__('os').system('touch {marker}')"),
    ("b", "eval('1')"),
    ("activation", "t.__class__"),
])
def test_code_in_an_expression_is_refused_and_never_run(where: str, text: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = text.format(marker=marker)
    meta = good_meta()
    if where == "activation":
        meta["layers"][0]["activation"]["form"] = text
    else:
        meta["layers"][0][where] = {"text": [[text]] if where == "W" else [text]}
    arrays = {"W1": np.ones((1, 1))} if where != "W" else {}
    path = write(tmp_path / "evil.npz", meta, **arrays)
    token = {"W": "'__import__'", "b": "'eval'", "activation": "'.'"}[where]
    with pytest.raises(FileFormatError, match=rf"evil\.npz: .*(unknown function|unexpected character) {token}"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize("change, arrays, message", [
    ({}, {"W1": np.ones((2, 1))}, r"layer 1: W \(W1\) has shape \(2, 1\) but the layer needs \(1, 1\)"),
    ({}, {"W1": np.array([[np.nan]])}, r"layer 1: W\[0, 0\] is nan; weights must be finite"),
    ({}, {"W1": np.array([[np.inf]])}, r"layer 1: W\[0, 0\] is inf"),
    ({}, {"W1": np.ones((1, 1), np.float32)}, r"W1\) has dtype float32; symnet stores float64"),
    ({}, {"W1": np.ones((1, 1)), "extra": np.ones(1)}, r"unexpected arrays \['extra'\]"),
    ({}, {}, r"refers to array 'W1', which the archive does not hold"),
    ({"b": {"text": ["nan"]}}, {"W1": np.ones((1, 1))}, r"b\[0\]: .*unknown name 'nan'"),
    ({"b": {"text": ["1/0"]}}, {"W1": np.ones((1, 1))}, r"division by zero"),
    ({"b": {"text": ["a"]}}, {"W1": np.ones((1, 1))}, r"unknown name 'a'"),
    ({"b": {"text": ["1", "2"]}}, {"W1": np.ones((1, 1))}, r"b text must be a list of \(1,\) expressions"),
    ({"b": {"text": ["10**10**10"]}}, {"W1": np.ones((1, 1))}, r"exponent larger than 1000"),
    ({"fan_out": 2}, {"W1": np.ones((1, 1))}, r"layer 1: W \(W1\) has shape \(1, 1\) but the layer needs \(1, 2\)"),
    ({"fan_in": 3}, {"W1": np.ones((1, 1))}, r"layer 1 has fan_in=3, fan_out=1 but 1 inputs"),
    ({"activation": {"name": "softmax", "form": None}, "fan_out": 1}, {"W1": np.ones((1, 1))}, None),
    ({"activation": {"name": "tanh"}}, {"W1": np.ones((1, 1))}, r"activation 'tanh' is stored without its form"),
    ({"activation": {"name": "warp_drive", "form": None}}, {"W1": np.ones((1, 1))}, r"unknown activation 'warp_drive'"),
    ({"W": "W1"}, {"W1": np.ones((1, 1))}, r"layers\[0\]\.W is str, not dict"),
])
def test_corrupt_contents_are_named(change: dict, arrays: dict, message: str | None, tmp_path: Path) -> None:
    meta = good_meta(**change)
    path = write(tmp_path / "bad.npz", meta, **arrays)
    if message is None:  # a control: this one is fine
        assert load(path).activations[0].name == "softmax"
        return
    with pytest.raises(FileFormatError, match=r"bad\.npz: .*" + message):
        load(path)


@pytest.mark.parametrize("meta, message", [
    (None, r"without symnet metadata"),
    ({"format": "other"}, r"does not describe a 'symnet-network' file"),
    ({"format": "symnet-network", "version": 99}, r"format version 99, newer than this symnet reads \(1\); upgrade"),
    ({"format": "symnet-network", "version": 1}, r"the metadata lacks symbols"),
    ({"format": "symnet-network", "version": 1, "symbols": {"w": {"real": "yes"}}}, r"symbol 'w' has assumptions"),
    ({"format": "symnet-network", "version": 1, "symbols": {"w": {"color": True}}}, r"symbol 'w' has assumptions"),
    ({"format": "symnet-network", "version": 1, "symbols": {"w": {"real": True, "imaginary": True}}},
     r"inconsistent assumptions"),
    ({"format": "symnet-network", "version": 1, "symbols": {"os.system": {}}}, r"'os.system' is not an identifier"),
    ({"format": "symnet-network", "version": 1, "symbols": {}, "inputs": [], "layers": []}, r"lists no layers"),
])
def test_bad_metadata_is_named(meta: dict | None, message: str, tmp_path: Path) -> None:
    path = write(tmp_path / "meta.npz", meta, W1=np.ones((1, 1)))
    with pytest.raises(FileFormatError, match=r"meta\.npz: .*" + message):
        load(path)


def test_metadata_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "garbled.npz"
    with open(path, "wb") as stream:
        np.savez(stream, symnet=np.frombuffer(b"{not json", dtype=np.uint8))
    with pytest.raises(FileFormatError, match=r"garbled\.npz: the metadata is not valid JSON"):
        load(path)


def test_truncated_file(tmp_path: Path) -> None:
    path = save(PARABOLA, tmp_path / "cut.npz")
    data = path.read_bytes()
    for keep in (len(data) // 2, len(data) - 10):
        path.write_bytes(data[:keep])
        with pytest.raises(FileFormatError, match=r"cut\.npz: the archive is corrupt or truncated"):
            load(path)


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b'{"layers": []}', "it looks like JSON"),
    (b"\x93NUMPY\x01\x00", "it is a single .npy array"),
    (b"\x89HDF\r\n\x1a\n", "it is an HDF5 file"),
])
def test_other_files_are_named(content: bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    path.write_bytes(content)
    with pytest.raises(FileFormatError, match=rf"other\.npz: not a symnet file \({message}"):
        load(path)
    with pytest.raises(FileFormatError, match=r"other\.npz: not a network file symnet reads"):
        detect(path)


def test_a_missing_file_is_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nowhere.npz")


# --- the expression reader -------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("x^2", r"unexpected character '\^' at position 1; use \*\* for powers"),
    ("x.real", r"unexpected character '\.' at position 1"),
    ("lambda", r"unknown name 'lambda'"),
    ("exp", r"unknown name 'exp' at position 0 \(did you mean exp\(\.\.\.\)\?\)"),
    ("open('f')", r"unknown function 'open'"),
    ("(" * 200 + "x" + ")" * 200, r"nested more than 100 levels deep"),
    ("9" * 500, r"more than 400 characters"),
    ("(2**1000)**5", r"exact number of more than 4096 bits"),
    ("2**1000*2**1000*2**1000*2**1000*2**1000", r"exact number of more than 4096 bits"),
    ("1e400", r"does not fit a float64"),
    ("Max()", r"Max at position 0 takes 1 or more argument\(s\), not 0"),
    ("x x", r"unexpected 'x' at position 2"),
    ("", r"expected a number, a name or '\(' at position 0 but found the end"),
])
def test_expression_errors_name_the_token(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        parse(text, {"x": T})


def test_expression_reader_follows_python_precedence() -> None:
    x = T
    assert parse("-x**2", {"x": x}) == -x**2
    assert parse("2**-1*x", {"x": x}) == x / 2
    assert parse("2**3**2", {"x": x}) == 2**9
    assert parse("1 - 2 - 3", {"x": x}) == -4
    assert parse("6/2/3", {"x": x}) == 1
    assert parse("+x", {"x": x}) == x
    assert parse("1/3", {"x": x}) == sympy.Rational(1, 3)  # exact
    assert parse("0.1", {"x": x}) == sympy.Float(0.1)  # the float64 0.1, exactly


def test_to_text_refuses_unknown_symbols() -> None:
    with pytest.raises(ExpressionError, match="symbol 'y' cannot be written"):
        to_text(sympy.Symbol("y", real=True), {"x": T})
