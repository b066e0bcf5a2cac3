"""symnet's file format: exact round trips (a property test), and every kind of bad file refused clearly."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
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


def test_user_registered_activation_loads_only_where_registered_with_the_same_form(tmp_path: Path) -> None:
    cube = symnet.activations.from_form(T**3, name="cube")
    symnet.activations.register("cube", cube)
    try:
        net = symnet.Network.from_weights([[[2.0]]], None, "cube")
        path = save(net, tmp_path / "cube.npz")
        back = load(path)
        assert back == net and back.activations[0].name == "cube"
    finally:
        symnet.activations.unregister("cube")
    with pytest.raises(FileFormatError, match=r"cube\.npz: layer 1's activation is 'cube', an unknown activation \(the "
                       r"file gives its form 't\*\*3': register the activation under this name, with this form, "
                       r"before loading\)"):
        load(path)  # a name alone could claim anything: only the registry vouches for it
    symnet.activations.register("cube", symnet.activations.from_form(T**5, name="cube"))
    try:
        with pytest.raises(FileFormatError, match=r"activation 'cube' is stored with the form 't\*\*3', but the "
                           r"registered 'cube' is 't\*\*5'"):
            load(path)
    finally:
        symnet.activations.unregister("cube")


def test_save_writes_exactly_the_path_and_nothing_else(tmp_path: Path) -> None:
    path = save(PARABOLA, tmp_path / "model.symnet")
    assert path == tmp_path / "model.symnet" and sorted(os.listdir(tmp_path)) == ["model.symnet"]
    assert detect(path) == "symnet"
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["W1.npy", "W2.npy", "b1.npy", "b2.npy", "symnet.npy"]


def test_symnet_save_is_the_format_s_save_and_the_old_method_says_so(tmp_path: Path) -> None:
    assert symnet.save is save
    assert load(symnet.save(PARABOLA, tmp_path / "p.npz")) == PARABOLA
    with pytest.raises(AttributeError, match=r"Network.save\(path\) is now symnet.save\(net, path\)"):
        PARABOLA.save
    with pytest.raises(AttributeError, match="'Network' object has no attribute 'nothing'"):
        PARABOLA.nothing


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
    with pytest.raises(UntrustedCodeError, match=r"objects\.npz: array 'symnet' holds a pickled Python object array"):
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
    ({"activation": {"name": "warp_drive", "form": None}}, {"W1": np.ones((1, 1))}, r"activation is 'warp_drive', an unknown activation; registered activations: cos, "),
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
    ({"format": "symnet-network", "version": 99}, r"format version 99, newer than this symnet reads \(2\); upgrade"),
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
    if content.startswith(b"\x89HDF"):  # a legacy Keras .h5 to detect(); this one is only a header
        assert detect(path) == "keras"
        with pytest.raises(FileFormatError, match=r"other\.npz: not a readable HDF5 file"):
            read_network(path)
        return
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


# --- activation names: validated on load (issue 15) ----------------------------------------------

PAYLOAD = 'x"""\nimport pathlib; pathlib.Path({marker!r}).touch()\n"""'


@pytest.mark.parametrize("activation, message", [
    ({"name": "tanh", "form": "t**2"},
     r"layer 1's activation 'tanh' is stored with the form 't\*\*2', but the registered 'tanh' is 'tanh\(t\)': the "
     r"file's name and form disagree"),
    ({"name": "leaky_relu(alpha=0.2)", "form": "0.3*t + 0.7*Max(0, t)"}, r"'leaky_relu\(alpha=0\.2\)' is stored with"),
    ({"name": "leaky_relu(alpha=os.system)", "form": "t"}, r"cannot read parameter 'alpha=os.system'"),
    ({"name": "leaky_relu(alpha=__import__('os'))", "form": "t"}, r"neither a registered activation"),
    ({"name": " tanh", "form": "tanh(t)"}, r"is named ' tanh': neither a registered activation"),
    ({"name": "linear", "form": None}, r"activation 'linear' is stored without its form"),
    ({"name": "softmax", "form": "t"}, r"'softmax' acts on a whole layer and has no form, but the file gives"),
    ({"name": "t -> t**3", "form": "t**2"},
     r"is named 't -> t\*\*3' but its form 't\*\*2' gives the name 't -> t\*\*2'; a traced activation's name"),
    ({"name": "t -> t**2 ", "form": "t**2"}, r"is named 't -> t\*\*2 ' but its form"),
    ({"name": "t -> t**2", "form": None}, r"'t -> t\*\*2' is stored without its form"),
    ({"name": "x" * 300, "form": "t"}, r"is named 'xxxxx.*\.\.\.: neither a registered"),
    ({"name": "tanh\x1b[2J\u202e", "form": "tanh(t)"}, r"is named 'tanh\\x1b\[2J\\u202e': neither"),
    ({"name": PAYLOAD, "form": "t**2"}, r"is named 'x\"\"\"\\nimport pathlib.*\.\.\.: neither a registered"),
])
def test_an_activation_name_must_be_the_registry_s_or_the_traced_form_s(activation: dict, message: str,
                                                                       tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    activation = {k: v.format(marker=str(marker)) if k == "name" and v == PAYLOAD else v for k, v in activation.items()}
    path = write(tmp_path / "named.npz", good_meta(activation=activation), W1=np.ones((1, 1)))
    with pytest.raises(FileFormatError, match=r"named\.npz: .*" + message) as caught:
        load(path)
    assert str(caught.value).isprintable()  # the name is quoted escaped, never raw
    assert not marker.exists()


def test_registered_and_traced_names_load(tmp_path: Path) -> None:
    for activation in ({"name": "t -> t**2", "form": "t**2"}, {"name": "tanh", "form": "tanh(t)"},
                       {"name": "leaky_relu(alpha=0.2)", "form": "0.2*t + 0.8*Max(0, t)"}):
        path = write(tmp_path / "ok.npz", good_meta(activation=activation), W1=np.ones((1, 1)))
        assert load(path).activations[0].name == activation["name"]


@pytest.mark.parametrize("name", ["tanh", 'x"""\nimport os\n"""', "t -> t**3", "cube\x1b[2J"])
def test_save_refuses_an_activation_name_that_load_would_refuse(name: str, tmp_path: Path) -> None:
    net = symnet.Network.from_weights([[[1.0]]], None, symnet.activations.from_form(T**2, name=name))
    with pytest.raises(FileFormatError, match=r"cannot save, load would refuse the file: .*x\.npz: layer 1's "
                                              r"activation"):
        save(net, tmp_path / "x.npz")
    assert not os.listdir(tmp_path)


# --- numbers out of range (issue 15) ---------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("1e300**1000", r"'1e300\*\*1000': 1\.0+5e\+300000 is not a finite real float64 number"),
    ("exp(1000)", r"exp\(1000\) is not a finite real float64 number \(math range error\)"),
    ("1e400", r"the number 1e400 at position 0 does not fit a float64"),
    ("1e-400", r"the number 1e-400 at position 0 is too small for a float64"),
    ("sqrt(-1)", r"'sqrt\(-1\)': I is not a finite real float64 number"),
    ("log(-1)", r"'log\(-1\)': I\*pi is not a finite real float64"),
    ("(-8)**(1/3)", r"is not a finite real float64 number"),
    ("a*exp(1000) + 1", r"'a\*exp\(1000\) \+ 1': exp\(1000\) is not a finite real float64"),
    ("sin(exp(exp(exp(4))))", r"is not a finite real float64 number"),  # SymPy's evalf would never return
    ("log(0)", r"zoo is not a finite real float64 number"),
    ("10**400", r"'10\*\*400': 10000.* is not a finite real float64 number"),
])
def test_weights_beyond_float64_or_not_real_are_refused(text: str, message: str, tmp_path: Path) -> None:
    meta = good_meta(b={"text": [text]})
    meta["symbols"] = {"a": {"real": True}}
    path = write(tmp_path / "range.npz", meta, W1=np.ones((1, 1)))
    with pytest.raises(FileFormatError, match=r"range\.npz: layer 1: b\[0\]" + r".*" + message):
        load(path)


@pytest.mark.parametrize("form, message", [
    ("t*exp(1000)", r"its form has a number that is not a finite real float64: exp\(1000\)"),
    ("sqrt(-1)*t", r"its form has a number that is not a finite real float64: I is not"),
    ("t**10**10", r"exponent larger than 1000 \(MAX_INTEGER_EXPONENT\)"),
    ("Abs(t**10**10 - 2)", r"exponent larger than 1000"),
])
def test_activation_forms_out_of_range_are_refused(form: str, message: str, tmp_path: Path) -> None:
    path = write(tmp_path / "form.npz", good_meta(activation={"name": f"t -> {form}", "form": form}),
                 W1=np.ones((1, 1)))
    with pytest.raises(FileFormatError, match=r"form\.npz: layer 1's activation: .*" + message):
        load(path)


# --- the archive itself: every failure a FileFormatError, nothing allocated from a header (issue 15) ----


def test_damaged_bytes_are_file_format_errors(tmp_path: Path) -> None:
    data = save(PARABOLA, tmp_path / "good.npz").read_bytes()
    path = tmp_path / "flipped.npz"
    kinds: set[str] = set()
    for position in range(0, len(data), 3):  # one byte inverted at every third position, and truncations there
        for damaged in (data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1:], data[:position]):
            path.write_bytes(damaged)
            try:
                back = load(path)
            except FileFormatError as exc:
                kinds.add(str(exc).split("(")[1].split(":")[0] if "is corrupt" in str(exc) else "other")
            else:
                assert back == PARABOLA  # a byte the reader never looks at (a timestamp, a comment)
    assert {"zlib.error", "zipfile.BadZipFile"} <= kinds  # the kinds of damage that once escaped raw


def test_a_changed_weight_in_a_stored_archive_fails_its_checksum(tmp_path: Path) -> None:
    data = bytearray(write(tmp_path / "stored.npz", good_meta(), W1=np.array([[1.2345]])).read_bytes())
    data[data.index(np.array([1.2345]).tobytes())] ^= 1  # np.savez stores uncompressed: the float's bytes are there
    (tmp_path / "flipped.npz").write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=r"flipped\.npz: the archive is corrupt or truncated \(zipfile\.BadZipFile: "
                                              r"Bad CRC-32 for file 'W1\.npy'\)"):
        load(tmp_path / "flipped.npz")


def _member(name: str, header: dict, body: bytes = b"") -> tuple[str, bytes]:
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, header)
    return f"{name}.npy", stream.getvalue() + body


def _zip(path: Path, *members: tuple[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def test_a_header_declaring_huge_arrays_allocates_nothing(tmp_path: Path) -> None:
    meta = json.dumps(good_meta()).encode()
    symnet_member = _member("symnet", {"descr": "|u1", "fortran_order": False, "shape": (len(meta),)}, meta)
    huge = _member("W1", {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}, b"\0" * 8)
    with pytest.raises(FileFormatError, match=r"huge\.npz: layer 1: W \(W1\) has shape \(1000000, 1000000\) but the "
                                              r"layer needs \(1, 1\)"):
        load(_zip(tmp_path / "huge.npz", symnet_member, huge))
    lying = _member("symnet", {"descr": "|u1", "fortran_order": False, "shape": (10**12,)}, meta)
    with pytest.raises(FileFormatError, match=r"lying\.npz: the metadata \(symnet\) must be 1-D uint8 of at most "
                                              r"67108864 bytes \(symnet\.io\.format\.MAX_METADATA_BYTES\), not \(1000000000000,\)"):
        load(_zip(tmp_path / "lying.npz", lying))
    short = _member("W1", {"descr": "<f8", "fortran_order": False, "shape": (1, 1)}, b"\0" * 3)
    with pytest.raises(FileFormatError, match=r"short\.npz: layer 1: W \(W1\) is truncated: 3 of 8 bytes"):
        load(_zip(tmp_path / "short.npz", symnet_member, short))
    long = _member("W1", {"descr": "<f8", "fortran_order": False, "shape": (1, 1)}, b"\0" * 16)
    with pytest.raises(FileFormatError, match=r"long\.npz: layer 1: W \(W1\) has bytes after its 8 bytes of data"):
        load(_zip(tmp_path / "long.npz", symnet_member, long))


@pytest.mark.parametrize("change, message", [
    ({"fan_out": 10**6}, r"layer 1 has 1000000 units, more than 100000 \(symnet\.io\.format\.MAX_UNITS\)"),
    # checked against the header, never built
    ({"fan_out": 90_000}, r"layer 1: W \(W1\) has shape \(1, 1\) but the layer needs \(1, 90000\)"),
])
def test_declared_sizes_are_bounded_before_anything_is_built(change: dict, message: str, tmp_path: Path) -> None:
    path = write(tmp_path / "big.npz", good_meta(**change), W1=np.ones((1, 1)))
    with pytest.raises(FileFormatError, match=r"big\.npz: " + message):
        load(path)


def test_too_many_layers_or_weights(tmp_path: Path) -> None:
    layer = {"fan_in": 1, "fan_out": 1, "activation": {"name": "linear", "form": "t"},
             "W": {"text": [["1"]]}, "b": {"text": ["0"]}}
    meta = {**good_meta(), "layers": [layer] * 1001}
    with pytest.raises(FileFormatError, match=r"deep\.npz: the file lists 1001 layers, more than 1000 "
                                              r"\(symnet\.io\.format\.MAX_LAYERS\)"):
        load(write(tmp_path / "deep.npz", meta))
    wide = [{**layer, "fan_out": 5000}, {**layer, "fan_in": 5000, "fan_out": 5000}]
    meta = {**good_meta(), "layers": wide}
    with pytest.raises(FileFormatError, match=r"wide\.npz: the layers up to layer 2 have 25015000 weights and biases, "
                                              r"more than 1000000 \(symnet\.io\.format\.MAX_WEIGHTS\)"):
        load(write(tmp_path / "wide.npz", meta))


def test_deeply_nested_json_is_a_file_format_error(tmp_path: Path) -> None:
    path = tmp_path / "nested.npz"
    with open(path, "wb") as stream:
        np.savez(stream, symnet=np.frombuffer(b"[" * 100_000 + b"]" * 100_000, dtype=np.uint8))
    with pytest.raises(FileFormatError, match=r"nested\.npz: the metadata is not valid JSON \(nested too deeply\)"):
        load(path)


@pytest.mark.parametrize("members, message", [
    ([("symnet.npy", b""), ("symnet.npy", b"")], r"the archive holds 'symnet\.npy' twice"),
    ([("../evil.npy", b"")], r"unexpected member '\.\./evil\.npy' in the archive"),
    ([("notes.txt", b"hi")], r"unexpected member 'notes\.txt'"),
])
def test_archive_members_must_be_arrays(members: list, message: str, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        path = _zip(tmp_path / "members.npz", *members)
    with pytest.raises(FileFormatError, match=r"members\.npz: " + message):
        load(path)


def test_an_unsupported_compression_is_a_file_format_error(tmp_path: Path) -> None:
    path = save(PARABOLA, tmp_path / "method.npz")
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")  # the first member's central directory entry
    data[central + 10:central + 12] = (99).to_bytes(2, "little")  # a compression method no one knows
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=r"method\.npz: the archive is corrupt or truncated "
                                              r"\(NotImplementedError: That compression method is not supported\)"):
        load(path)


def test_opening_errors_keep_their_own_kind_and_read_errors_are_not_called_corruption(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(IsADirectoryError):
        load(tmp_path)
    path = save(PARABOLA, tmp_path / "disk.npz")

    def failing_read(self: object, *args: object) -> bytes:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(zipfile.ZipExtFile, "read", failing_read)
    with pytest.raises(FileFormatError, match=r"disk\.npz: reading the archive failed \(OSError: \[Errno 5\] "
                                              r"Input/output error\); the file is damaged or the disk could not"):
        load(path)


@pytest.mark.parametrize("meta_change, message", [
    ({"inputs": ["x\u202e0"]}, r"inputs\[0\] is 'x\\u202e0'; input names are identifiers"),
    ({"inputs": [7]}, r"inputs\[0\] is 7; input names are identifiers"),
    ({"inputs": ["x" * 201]}, r"input names are identifiers of at most 200 characters"),
    ({"version": True}, r"format version True is not a positive integer"),
    ({"symbols": {"w" * 201: {}}}, r"is not an identifier of at most 200 ASCII characters"),
    ({"layers": [[]]}, r"layers\[0\] is list, not an object"),
])
def test_metadata_fields_of_the_wrong_kind(meta_change: dict, message: str, tmp_path: Path) -> None:
    path = write(tmp_path / "kinds.npz", {**good_meta(), **meta_change}, W1=np.ones((1, 1)))
    with pytest.raises(FileFormatError, match=r"kinds\.npz: .*" + message):
        load(path)


# --- the expression reader's limits (issue 15) ------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("t**10**10", r"the power at position 1 has an exponent larger than 1000 \(MAX_INTEGER_EXPONENT\)"),
    ("(t**1000)**1000", r"a power with an exponent larger than 1000"),
    ("t**1000*t**1000", r"a power with an exponent larger than 1000"),
    ("t**1e10", r"exponent larger than 1000"),
    ("Max(" + ", ".join(["t"] * 33) + ")", r"Max at position 0 has more than 32 arguments \(MAX_ARGUMENTS\)"),
    ("t+" * 50_000 + "t", r"expression of 100,001 characters is longer than 100,000"),
    ("-" * 150 + "t", r"nested more than 100 levels deep"),
    ("exp(" * 120 + "t" + ")" * 120, r"nested more than 100 levels deep"),
])
def test_the_reader_refuses_past_its_limits(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        parse(text, {"t": T})


def test_the_reader_is_linear_in_the_number_of_terms(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {"terms": 0}
    flatten = sympy.Add.flatten.__func__  # type: ignore[attr-defined]

    def counting(cls: type, seq: list) -> object:
        seen["terms"] += len(seq)
        return flatten(cls, seq)

    n = 2000
    text = " + ".join(f"{i}.5*t**{i % 7}" for i in range(n))  # 26 kB: adding term by term flattened ~n**2/2 terms
    monkeypatch.setattr(sympy.Add, "flatten", classmethod(counting))
    result = parse(text, {"t": T})
    monkeypatch.undo()
    assert seen["terms"] < 5 * n
    assert result == sympy.Add(*(sympy.Float(i + 0.5) * T ** (i % 7) for i in range(n)))


def test_error_messages_show_file_text_escaped() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse("t\x1b[2J\u202e", {"t": T})
    assert str(caught.value).isprintable() and "\\x1b" in str(caught.value)


# --- planted payloads write nothing (issue 15) --------------------------------------------------------


class _Plant:
    """Pickles as a call that creates the marker file, if anything ever unpickles it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (str(self.marker), "w"))


def test_planted_payloads_in_a_symnet_file_write_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = PAYLOAD.format(marker=str(marker))
    layer = good_meta()["layers"][0]
    metas = [
        good_meta(activation={"name": payload, "form": "t"}),
        good_meta(activation={"name": "t -> t", "form": payload}),
        good_meta(activation={"name": f"t -> {payload}", "form": payload}),
        {**good_meta(), "inputs": [payload]},
        {**good_meta(), "symbols": {payload: {}}},
        {**good_meta(), "symbols": {"a": {payload: True}}},
        good_meta(b={"text": [payload]}),
        {**good_meta(), "layers": [{**layer, payload: 1}]},
        {**good_meta(), payload: 1},
        good_meta(activation={"name": "tanh", "form": "tanh(t)", payload: 1}),
    ]
    for number, meta in enumerate(metas):
        path = write(tmp_path / f"plant{number}.npz", meta, W1=np.ones((1, 1)))
        with pytest.raises(FileFormatError) as caught:
            symnet.compile(load(path), ("value",))
        assert str(caught.value).isprintable(), number
        assert not marker.exists(), number
    for name in ("symnet", "W1"):
        path = tmp_path / f"pickle_{name}.npz"
        arrays = {"symnet": np.frombuffer(json.dumps(good_meta()).encode(), dtype=np.uint8), "W1": np.ones((1, 1))}
        arrays[name] = np.array([_Plant(marker)], dtype=object)
        with open(path, "wb") as stream:
            np.savez(stream, **arrays)
        with pytest.raises(UntrustedCodeError, match=rf"pickle_{name}\.npz: array '{name}' holds a pickled Python"):
            load(path)
        assert not marker.exists()


# --- nested Max/Min and deeply nested forms (issue 15) ---------------------------------------------


def test_nested_max_cannot_get_around_the_argument_limit() -> None:
    # SymPy flattens Max(Max(...), Max(...)) into one Max whose pairwise checks are superlinear
    text = "Max(" + ",".join("Max(" + ",".join(f"{17 * j + i}*t" for i in range(17)) + ")" for j in range(4)) + ")"
    start = time.perf_counter()
    with pytest.raises(ExpressionError, match=r"Max at position 0 has 68 arguments once the Max nested in it are "
                                              r"merged, more than 32 \(MAX_ARGUMENTS\)"):
        parse(text, {"t": T})
    with pytest.raises(ExpressionError, match=r"Min at position 0 has 33 arguments .*\(MAX_ARGUMENTS\)"):
        parse("Min(t, Min(" + ", ".join(f"{i}*t" for i in range(32)) + "))", {"t": T})
    assert time.perf_counter() - start < 15  # generous: CI machines stall; unbounded, this took minutes
    # a Min inside a Max is not merged, and 32 merged arguments are still read
    assert parse("Max(0, Min(1, t))", {"t": T}) == sympy.Max(0, sympy.Min(1, T))
    assert len(parse("Max(Max(" + ", ".join(f"{i}*t" for i in range(16)) + "), "
                     + ", ".join(f"{i}*t" for i in range(16, 32)) + ")", {"t": T}).args) == 32


def test_a_file_whose_form_nests_deep_is_refused_quickly(tmp_path: Path) -> None:
    form = "sin(" * 95 + "t" + ")" * 95  # under the reader's MAX_DEPTH; building it took a minute
    path = write(tmp_path / "deep.npz", good_meta(activation={"name": f"t -> {form}", "form": form}),
                 W1=np.ones((1, 1)))
    start = time.perf_counter()
    with pytest.raises(FileFormatError, match=r"deep\.npz: layer 1's activation: .*symnet\.limits\.MAX_FORM_DEPTH"):
        load(path)
    assert time.perf_counter() - start < 15  # generous for a busy CI machine; unbounded it took a minute


def test_many_small_max_cannot_add_up_to_a_hang() -> None:
    """Each Max under MAX_ARGUMENTS, hundreds of them: the whole expression's Max/Min arguments are counted."""
    import time

    from symnet.io._expr import ExpressionError, parse

    t = sympy.Symbol("t", real=True)
    text = " + ".join("Max(" + ",".join(f"{8 * j + i}*t" for i in range(8)) + ")" for j in range(200))
    start = time.perf_counter()
    with pytest.raises(ExpressionError, match=r"more than 128 Max/Min arguments in all \(MAX_PIECEWISE_ARGUMENTS\)"):
        parse(text, {"t": t})
    assert time.perf_counter() - start < 15  # generous for a busy CI machine; unbounded it hangs
    assert parse("Max(0, t) + 0.01*Min(0, t)", {"t": t}) == sympy.Max(0, t) + sympy.Float(0.01) * sympy.Min(0, t)


def test_symnet_io_load_names_keras_and_torch_archives_and_symnet_load_reads_them(tmp_path):
    import torch

    keras_like = tmp_path / "model.keras"
    with zipfile.ZipFile(keras_like, "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(FileFormatError, match=r"model\.keras: a Keras \.keras model, not a symnet file; read it with "
                                              r"symnet\.load\(path\)"):
        symnet.io.load(keras_like)
    module = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    state = tmp_path / "mlp.pt"
    torch.save(module.state_dict(), state)
    with pytest.raises(FileFormatError, match=r"mlp\.pt: a PyTorch file, not a symnet file"):
        symnet.io.load(state)
    assert symnet.load(state, layer_activations=["tanh", "linear"]) == symnet.from_torch(module)
    saved = symnet.save(symnet.from_torch(module), tmp_path / "net.npz")
    assert symnet.load(saved) == symnet.io.load(saved)


def test_symnet_load_needs_a_path():
    with pytest.raises(symnet.InputError, match=r"a path to a network file is a str or os.PathLike, not int"):
        symnet.load(5)
