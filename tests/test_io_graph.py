"""Graph networks in and out: the file format's version 2, export (Python exec'd, C compiled) and the command line.

Round trips of the graph zoo (numeric, symbolic and mixed parameters), chain files unchanged byte for byte,
hostile graph files refused with a FileFormatError naming the file and node, and exported code run against
sympy.diff of the closed form at 30 digits.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import sympy

import symnet
from symnet import cli
from symnet.graph import (batch_norm, blend, concat, dense, fourier_features, inner, input, layer_norm, matmul,
                          network, normalize, rescale, rms_norm, scale, shift, softmax)
from symnet.graph import sum as graph_sum
from symnet.io import FileFormatError, export, load, save
from symnet.io import format as fmt
from conftest import WORDS, run_python

rng = np.random.default_rng(16)
ALPHA = sympy.Symbol("alpha", positive=True)
GAIN = sympy.Symbol("gain", real=True)


def _residual() -> symnet.Network:
    x = input(2)
    h = dense(x, rng.normal(size=(2, 3)), rng.normal(size=3), "tanh")
    h = h + dense(h, rng.normal(size=(3, 3)), None, "tanh")
    return network(x, dense(h, rng.normal(size=(3, 1)), [0.25]))


def _gated() -> symnet.Network:
    """jaxpi's ModifiedMlp: gates u, v and h <- h * u + (1 - h) * v."""
    x = input(2)
    u = dense(x, rng.normal(size=(2, 3)), rng.normal(size=3), "sigmoid")
    v = dense(x, rng.normal(size=(2, 3)), rng.normal(size=3), "sigmoid")
    h = dense(x, rng.normal(size=(2, 3)), rng.normal(size=3), "tanh")
    h = h * u + (1 - h) * v
    return network(x, dense(h, rng.normal(size=(3, 1)), [0.0]))


def _concat_slice() -> symnet.Network:
    x = input(2)
    h = dense(x, rng.normal(size=(2, 4)), rng.normal(size=4), "sin")
    g = concat(h[0:2], x, h[3])
    return network(x, dense(g, rng.normal(size=(5, 1)), [0.1]) + graph_sum(h[1:3]))


def _layer_norm() -> symnet.Network:
    x = input(2)
    h = dense(x, rng.normal(size=(2, 3)), rng.normal(size=3), "tanh")
    return network(x, dense(layer_norm(h, [1.5, 1.0, 0.5], 0.1), rng.normal(size=(3, 1)), [0.0]))


def _weight_norm() -> symnet.Network:
    x = input(2)
    h = dense(x, 3, "silu", parametrization="weight_norm", v=rng.normal(size=(2, 3)), g=[1.0, 2.0, 0.5])
    h = dense(h, 2, "tanh", parametrization="factorized", s=[0.1, -0.2], V=rng.normal(size=(3, 2)))
    return network(x, dense(rms_norm(h), rng.normal(size=(2, 1)), [0.0]))


def _fourier() -> symnet.Network:
    x = input(2)
    h = fourier_features(x, rng.normal(size=(2, 2)))
    return network(x, dense(h, rng.normal(size=(4, 1)), [0.0]))


def _two_heads() -> symnet.Network:
    """Input normalisation, BatchNorm at inference and two heads, one of them a softmax."""
    x = input(2, names=["t", "s"])
    h = dense(normalize(x, [0.5, -1.0], [2.0, 4.0]), rng.normal(size=(2, 3)), rng.normal(size=3), "softplus")
    h = batch_norm(h, [0.1, 0.2, 0.3], [1.0, 2.0, 0.5])
    return network(x, [dense(h, rng.normal(size=(3, 1)), [0.0]), softmax(dense(h, rng.normal(size=(3, 2)), None))])


def _deeponet() -> symnet.Network:
    branch, trunk = input(2), input(1)
    b = dense(dense(branch, rng.normal(size=(2, 3)), rng.normal(size=3), "tanh"), rng.normal(size=(3, 3)), None)
    t = dense(trunk, rng.normal(size=(1, 3)), rng.normal(size=3), "sin")
    return network([branch, trunk], inner(b, t))


def _symbolic() -> symnet.Network:
    """Symbolic weights (w{k}_{i}_{j}), a trainable scalar and vector, a PirateNet blend."""
    x = input(2)
    h = dense(x, 2, "tanh")
    f = dense(h, 2, "cos")
    return network(x, dense(scale(blend(f, h, ALPHA), [GAIN, 2]), 1))


def _mixed() -> symnet.Network:
    """Numbers, exact rationals, symbols and expressions of them in one graph; a constant matrix."""
    x = input(2)
    w = sympy.Symbol("w", real=True)
    h = dense(x, [[0.5, sympy.Rational(1, 3)], [w, sympy.sqrt(2) * w]], [1, 0.25], "elu(0.5)")
    h = shift(matmul(h, [[1.0, 2.0], [sympy.Rational(-1, 2), 0.0]]), sympy.exp(w))
    return network(x, dense(rescale(h, [2, 0.5], [sympy.Rational(1, 7), 0.0]), [[w], [1.5]], [0]))


def _traced() -> symnet.Network:
    x = input(1)
    h = dense(x, [[1.0, -2.0]], [0.5, 0.0], lambda t: t**2 / 2 + sympy.sin(t))
    return network(x, graph_sum(h) + dense(h, [[1.0], [1.0]], None, "leaky_relu(0.2)"))


ZOO: dict[str, Callable[[], symnet.Network]] = {
    "residual": _residual, "gated": _gated, "concat_slice": _concat_slice, "layer_norm": _layer_norm,
    "weight_norm": _weight_norm, "fourier": _fourier, "two_heads": _two_heads, "deeponet": _deeponet,
    "symbolic": _symbolic, "mixed": _mixed, "traced": _traced,
}


@pytest.fixture(scope="module")
def zoo() -> dict[str, symnet.Network]:
    return {name: build() for name, build in ZOO.items()}


def archive(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], bytes]:
    """A saved file's metadata, its arrays and the metadata's bytes."""
    with np.load(path, allow_pickle=False) as data:
        raw = data["symnet"].tobytes()
        return json.loads(raw), {k: data[k] for k in data.files if k != "symnet"}, raw


def write(path: Path, meta: Any, arrays: dict[str, np.ndarray]) -> Path:
    """A hand-made archive: ``meta`` as the JSON metadata plus the arrays."""
    with open(path, "wb") as stream:
        np.savez(stream, symnet=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return path


# --- round trips ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ZOO))
def test_graphs_round_trip_equal(name: str, zoo: dict[str, symnet.Network], tmp_path: Path) -> None:
    net = zoo[name]
    assert not net.is_chain
    path = save(net, tmp_path / "graph.npz")
    back = load(path)
    assert back == net and not back.is_chain
    assert back.graph.describe() == net.graph.describe()
    assert back.params == net.params and back.inputs == net.inputs
    for a, b in zip(back.graph.nodes, net.graph.nodes):  # attributes and their types, node by node
        assert a.key() == b.key()
        assert {k: type(v) for k, v in a.attrs.items()} == {k: type(v) for k, v in b.attrs.items()}
    meta, arrays, raw = archive(path)
    assert meta["version"] == fmt.GRAPH_VERSION == 2 and "layers" not in meta
    assert [n["name"] for n in meta["nodes"]] == [n.name for n in net.graph.nodes[1:]]
    assert archive(save(back, tmp_path / "again.npz"))[2] == raw  # saving what was loaded writes the same file


def test_numbers_keep_every_bit_and_exact_numbers_stay_exact(zoo: dict[str, symnet.Network], tmp_path: Path) -> None:
    net = zoo["mixed"]
    back = load(save(net, tmp_path / "mixed.npz"))
    h = back.graph.by_name["z1"].params["W"]
    assert h[0, 1] == sympy.Rational(1, 3) and isinstance(h[0, 1], sympy.Rational)
    offset = back.graph.by_name["rescale1"].attrs["offset"]
    assert offset[0, 0] == sympy.Rational(1, 7)
    meta, arrays, _ = archive(tmp_path / "mixed.npz")
    matrix = next(n for n in meta["nodes"] if n["op"] == "matmul")["attrs"]["matrix"]
    assert matrix == {"shape": [2, 2], "text": [["1.0", "2.0"], ["-1/2", "0.0"]]}
    numeric = zoo["residual"]
    path = save(numeric, tmp_path / "numeric.npz")
    meta, arrays, _ = archive(path)
    W = numeric.graph.by_name["z1"].params["W"]
    assert meta["nodes"][0]["params"]["W"] == {"shape": [2, 3], "array": "n0_W"}
    assert arrays["n0_W"].tolist() == [[float(v) for v in row] for row in W.tolist()]


def test_symbols_keep_their_assumptions(zoo: dict[str, symnet.Network], tmp_path: Path) -> None:
    back = load(save(zoo["symbolic"], tmp_path / "symbolic.npz"))
    alpha = next(p for p in back.params if p.name == "alpha")
    assert alpha == ALPHA and alpha.is_positive
    assert back.subs(alpha=0.5, gain=2.0) == zoo["symbolic"].subs(alpha=0.5, gain=2.0)


def test_softmax_and_traced_activations_are_stored_by_name_and_form(zoo: dict[str, symnet.Network],
                                                                    tmp_path: Path) -> None:
    meta, _, _ = archive(save(zoo["two_heads"], tmp_path / "heads.npz"))
    activations = [n["attrs"]["activation"] for n in meta["nodes"] if n["op"] == "activation"]
    assert {"name": "softmax", "form": None} in activations
    meta, _, _ = archive(save(zoo["layer_norm"], tmp_path / "ln.npz"))
    activations = [n["attrs"]["activation"] for n in meta["nodes"] if n["op"] == "activation"]
    assert {"name": "t -> 1/sqrt(t)", "form": "1/sqrt(t)"} in activations
    back = load(tmp_path / "ln.npz")
    point = [0.3, -0.7]
    assert [float(v) for v in back.forward(point)] == [float(v) for v in zoo["layer_norm"].forward(point)]


def test_a_graph_that_is_a_chain_is_saved_as_a_chain(tmp_path: Path) -> None:
    x = input(1)
    net = network(x, dense(dense(x, [[2.0, 1.0]], [0.5, 0.0], "tanh"), [[1.0], [3.0]], [0.0]))
    assert net.is_chain
    meta, _, _ = archive(save(net, tmp_path / "chain.npz"))
    assert meta["version"] == fmt.CHAIN_VERSION == 1 and "layers" in meta
    assert load(tmp_path / "chain.npz") == net


# --- chains: the files of the previous version, unchanged ---------------------------------------------------

#: sha256 of the metadata bytes that symnet wrote for these chains before graphs existed (commit 68f76e9)
CHAIN_FILES = {
    "numeric": ("a2f034c18d4329fbc1629d259d26b80e2b114eb052e113aa599208437a48b7c5",
                {"W1": [[2.0, -0.5]], "b1": [1.0, 0.0], "W2": [[3.0], [0.25]], "b2": [0.5]}),
    "mixed": ("cdc9617f54ec0810c509105501979dd96f5934e06ed46c9535befbf4416876a3", {}),
    "traced": ("848de46ec504d0b6b39af683b3d02d249620a2e55a38d27d8a0fcc3e9280a574", {"W1": [[1.5]], "W2": [[2.0]]}),
}


def _chain(name: str) -> symnet.Network:
    if name == "numeric":
        return symnet.Network.from_weights([[[2.0, -0.5]], [[3.0], [0.25]]], [[1.0, 0.0], [0.5]], ["tanh", "linear"])
    if name == "mixed":
        return symnet.Network.symbolic([1, 2, 1], ["elu(0.5)", "softmax"]).subs(w1_0_0=0.25,
                                                                               b1_1=sympy.Rational(1, 3))
    return symnet.Network.from_weights([[[1.5]], [[2.0]]], None, [lambda t: t**2 / 2 + sympy.sin(t), "sigmoid"],
                                       input_names=["u"])


@pytest.mark.parametrize("name", list(CHAIN_FILES))
def test_chain_files_are_unchanged_byte_for_byte(name: str, tmp_path: Path) -> None:
    digest, arrays = CHAIN_FILES[name]
    net = _chain(name)
    meta, saved, raw = archive(save(net, tmp_path / "chain.npz"))
    raw = raw.replace(f'"symnet_version": "{symnet.__version__}"'.encode(), b'"symnet_version": "0.1.0"')
    assert hashlib.sha256(raw).hexdigest() == digest
    assert {k: v.tolist() for k, v in saved.items()} == arrays
    assert all(v.dtype == np.float64 for v in saved.values())
    assert load(tmp_path / "chain.npz") == net


def test_a_version_1_file_written_by_hand_still_loads(tmp_path: Path) -> None:
    meta = {"format": "symnet-network", "version": 1, "inputs": ["x0"], "symbols": {"a": {"real": True}},
            "layers": [{"fan_in": 1, "fan_out": 1, "activation": {"name": "tanh", "form": "tanh(t)"},
                        "W": {"array": "W1"}, "b": {"text": ["a"]}}]}
    net = load(write(tmp_path / "v1.npz", meta, {"W1": np.array([[2.0]])}))
    assert net.is_chain and str(net) == "tanh(a + 2.0*x0)"


def test_each_version_knows_its_own_keys(tmp_path: Path) -> None:
    meta = {"format": "symnet-network", "version": 1, "inputs": ["x0"], "symbols": {}, "layers": [], "nodes": []}
    with pytest.raises(FileFormatError, match=r"v\.npz: the metadata has unknown keys \['nodes'\]; format version 1"):
        load(write(tmp_path / "v.npz", meta, {}))
    meta = {"format": "symnet-network", "version": 2, "inputs": ["x0"], "symbols": {}, "layers": [], "nodes": [],
            "output": "z1"}
    with pytest.raises(FileFormatError, match=r"v\.npz: the metadata has unknown keys \['layers'\]; format version 2"):
        load(write(tmp_path / "v.npz", meta, {}))


# --- hostile graph files -------------------------------------------------------------------------------------


def _base() -> symnet.Network:
    """dense, activation, slice, concat, mul, rescale, add: the ops a hostile file rewires."""
    x = input(2)
    h = dense(x, [[1.0, 0.5, -1.0], [0.25, 2.0, 0.5]], [0.1, sympy.Rational(1, 3), 0.0], "tanh")
    g = h[0:2] * concat(h[2], x[1])
    return network(x, dense(rescale(g, [2.0, 0.5], [1.0, -1.0]) + g, [[1.0], [2.0]], [0.5]))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    path = save(_base(), tmp_path_factory.mktemp("base") / "base.npz")
    meta, arrays, _ = archive(path)
    assert [n["name"] for n in meta["nodes"]] == ["z1", "a1", "slice1", "slice2", "slice3", "concat1", "mul1",
                                                 "rescale1", "add1", "z2"]
    return meta, arrays


def node(meta: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in meta["nodes"] if n["name"] == name)


def _set(name: str, key: str, value: Any) -> Callable[[dict[str, Any], dict[str, np.ndarray]], None]:
    def change(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        node(meta, name)[key] = value
    return change


def _attr(name: str, key: str, value: Any) -> Callable[[dict[str, Any], dict[str, np.ndarray]], None]:
    def change(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        node(meta, name)["attrs"][key] = value
    return change


def _param(name: str, key: str, value: Any) -> Callable[[dict[str, Any], dict[str, np.ndarray]], None]:
    def change(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        node(meta, name)["params"][key] = value
    return change


def _array(name: str, value: np.ndarray) -> Callable[[dict[str, Any], dict[str, np.ndarray]], None]:
    def change(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        arrays[name] = value
    return change


def _both(*changes: Callable[..., None]) -> Callable[[dict[str, Any], dict[str, np.ndarray]], None]:
    def change(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        for c in changes:
            c(meta, arrays)
    return change


def _doubling(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Concatenations that double the width each time: 18 small nodes ask for 2**18 units."""
    previous = "z2"
    for k in range(18):
        meta["nodes"].append({"name": f"c{k}", "op": "concat", "inputs": [previous, previous], "params": {},
                              "attrs": {}})
        previous = f"c{k}"
    meta["output"] = previous


def _top(key: str, value: Any) -> Callable[[dict[str, Any], dict[str, np.ndarray]], None]:
    def change(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        meta[key] = value
    return change


def _drop_attr(name: str, key: str) -> Callable[[dict[str, Any], dict[str, np.ndarray]], None]:
    def change(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        del node(meta, name)["attrs"][key]
    return change


HOSTILE = {
    # the op table
    "unknown op": (_set("a1", "op", "eval"), r"node 'a1' has op 'eval', which this symnet does not know; the ops are"),
    "input op": (_set("a1", "op", "input"), r"node 'a1' has op 'input', which this symnet does not know"),
    "op not text": (_set("a1", "op", ["tanh"]), r"nodes\[1\]\.op is list, not str"),
    "unknown parameter": (_param("z1", "evil", {"shape": [1, 1], "text": [["1"]]}),
                          r"node 'z1' \(dense\) has parameter 'evil'; op 'dense' takes W, b, v, g, s, V"),
    "parameter of another op": (_param("a1", "W", {"shape": [1, 1], "text": [["1"]]}),
                                r"node 'a1' \(activation\) has parameter 'W'; op 'activation' takes none"),
    "missing parameter": (_both(lambda meta, arrays: node(meta, "z2")["params"].pop("b"),
                                lambda meta, arrays: arrays.pop("n9_b")),
                          r"node 'z2' \(dense\): parameters \['W'\] but \['W', 'b'\] are needed"),
    "unknown attribute": (_attr("mul1", "code", 1), r"node 'mul1' \(mul\) has attribute 'code'; op 'mul' takes none"),
    "missing attribute": (_drop_attr("a1", "activation"), r"node 'a1' \(activation\): attributes \['activation'\] "
                                                          r"are missing"),
    "unknown node key": (_set("a1", "code", 1), r"nodes\[1\] has unknown keys \['code'\]; format version 2 knows"),
    "wrong arity": (_set("add1", "inputs", ["rescale1", "mul1", "mul1"]), r"node 'add1' \(add\): takes 2 input"),
    # names
    "duplicate name": (_set("a1", "name", "z1"), r"nodes\[1\] is named 'z1', a name used before \(an earlier node\)"),
    "the input's name": (_set("z1", "name", "x"), r"nodes\[0\] is named 'x', a name used before \(the input node\)"),
    "name with a space": (_set("z1", "name", "z 1"), r"nodes\[0\]\.name is 'z 1'; node names are ASCII identifiers"),
    "non-ASCII name": (_set("z1", "name", "zä"), r"nodes\[0\]\.name is 'zä'; node names are ASCII identifiers"),
    "control characters": (_set("z1", "name", "z\x1b[2J"), r"nodes\[0\]\.name is 'z\\x1b\[2J'; node names"),
    "long name": (_set("z1", "name", "z" * 65), r"nodes\[0\]\.name is 'zzz.*'; node names are ASCII identifiers of "
                                                r"at most 64"),
    "name not text": (_set("z1", "name", 7), r"nodes\[0\]\.name is int, not str"),
    "forward reference": (_set("z1", "inputs", ["a1"]), r"node 'z1' \(dense\): input 'a1' is not an earlier node"),
    "self reference": (_set("a1", "inputs", ["a1"]), r"node 'a1' \(activation\): input 'a1' is not an earlier node"),
    "input not text": (_set("a1", "inputs", [["z1"]]), r"node 'a1' \(activation\): input \['z1'\] is not an "
                                                       r"earlier node"),
    "unknown output": (_top("output", "nowhere"), r"output node 'nowhere' is not a node of the graph"),
    "output not text": (_top("output", 3), r"output is int, not str"),
    # sizes
    "huge units": (_attr("z1", "units", 10**6), r"node 'z1': units is 1000000, not an integer from 0 to 100000"),
    "huge shape": (_param("z1", "W", {"shape": [10**6, 3], "array": "n0_W"}),
                   r"node 'z1' \(dense\): W: shape \[1000000, 3\] must be \[rows, columns\], each from 1 to 100000"),
    "huge total": (_param("z1", "W", {"shape": [100_000, 100_000], "array": "n0_W"}),
                   r"the nodes up to node 'z1' \(dense\) have 10000000003 parameters and constants, more than "
                   r"1000000 \(symnet\.io\.format\.MAX_WEIGHTS\)"),
    "doubling widths": (_doubling, r"node 'c16' has 131072 units .*; a node has at most 100000 "
                                   r"\(symnet\.io\.format\.MAX_UNITS\)"),
    "too many inputs": (_set("concat1", "inputs", ["slice3"] * 100_001),
                        r"node 'concat1' \(concat\) has 100001 inputs"),
    # shapes
    "declared shape differs from the array": (_param("z1", "W", {"shape": [3, 3], "array": "n0_W"}),
                                              r"node 'z1': W \(n0_W\) has shape \(2, 3\) but the metadata declares "
                                              r"\(3, 3\)"),
    "shape that does not fit the graph": (_both(_param("z1", "W", {"shape": [3, 3], "array": "n0_W"}),
                                                _array("n0_W", np.ones((3, 3)))),
                                          r"node 'z1' \(dense\): parameter W has shape \(3, 3\) but \(2, 3\) is "
                                          r"needed"),
    "units disagree with W": (_attr("z1", "units", 4), r"node 'z1' \(dense\): parameter W has shape \(2, 3\) but "
                                                       r"\(2, 4\) is needed"),
    "widths that do not broadcast": (_set("mul1", "inputs", ["a1", "slice1"]), r"node 'mul1' \(mul\): widths 3 and 2"),
    "slice past the end": (_attr("slice1", "stop", 9), r"node 'slice1' \(slice\): slice \[0:9\] is not a non-empty"),
    "text of the wrong shape": (_param("z1", "b", {"shape": [1, 3], "text": ["0.1", "1/3", "0.0"]}),
                                r"node 'z1': b text must be nested lists \(1, 3\) expressions"),
    "constant of the wrong width": (_both(_attr("rescale1", "scale", {"shape": [1, 3], "array": "n7_scale"}),
                                          _array("n7_scale", np.ones((1, 3)))),
                                    r"node 'rescale1' \(rescale\): scale has shape \(1, 3\) but \(1, 2\) or \(1, 1\)"),
    # JSON types
    "nodes not a list": (_top("nodes", {"z1": {}}), r"nodes is dict, not list"),
    "no nodes": (_top("nodes", []), r"the file lists no nodes"),
    "node not an object": (lambda meta, arrays: meta["nodes"].insert(0, ["z1"]), r"nodes\[0\] is list, not an object"),
    "inputs not a list": (_set("a1", "inputs", "z1"), r"nodes\[1\]\.inputs is str, not list"),
    "params not an object": (_set("a1", "params", []), r"nodes\[1\]\.params is list, not dict"),
    "attrs not an object": (_set("a1", "attrs", None), r"nodes\[1\]\.attrs is NoneType, not dict"),
    "units as text": (_attr("z1", "units", "3"), r"node 'z1': units is '3', not an integer"),
    "units as a boolean": (_attr("z1", "units", True), r"node 'z1': units is True, not an integer"),
    "slice bound a float": (_attr("slice1", "start", 0.0), r"node 'slice1': start is 0\.0, not an integer"),
    "unknown parametrization": (_attr("z1", "parametrization", "__import__"),
                                r"node 'z1': parametrization is '__import__', not one of plain, weight_norm, "
                                r"factorized"),
    "activation as text": (_attr("a1", "activation", "tanh"), r"node 'a1': activation is str, not an object"),
    "shape with a boolean": (_param("z1", "W", {"shape": [True, 3], "array": "n0_W"}),
                             r"node 'z1' \(dense\): W: shape \[True, 3\] must be \[rows, columns\]"),
    "matrix with an unknown key": (_param("z1", "W", {"shape": [2, 3], "array": "n0_W", "pickle": 1}),
                                   r"node 'z1' \(dense\): W has unknown keys \['pickle'\]"),
    "matrix neither array nor text": (_both(_param("z1", "W", {"shape": [2, 3]}),
                                            lambda meta, arrays: arrays.pop("n0_W")),
                                      r"node 'z1': W must be \{'array': name\} or \{'text': \[\.\.\.\]\}"),
    "matrix not an object": (_param("z1", "W", [[1.0, 2.0, 3.0]]), r"node 'z1' \(dense\): W is list, not an object"),
    # values
    "an activation whose name and form disagree": (_attr("a1", "activation", {"name": "tanh", "form": "t**2"}),
                                                   r"node 'a1': activation 'tanh' is stored with the form 't\*\*2'"),
    "an unknown activation": (_attr("a1", "activation", {"name": "evil", "form": "t"}),
                              r"node 'a1': activation is 'evil', an unknown activation"),
    "code in an expression": (_param("z1", "b", {"shape": [1, 3], "text": [["__import__('os')", "0", "0"]]}),
                              r"node 'z1': b\[0, 0\]: expression \"__import__\('os'\)\": unknown function"),
    "a symbol in a constant": (_both(_top("symbols", {"w": {"real": True}}),
                                     _attr("rescale1", "offset", {"shape": [1, 2], "text": [["w", "0"]]}),
                                     lambda meta, arrays: arrays.pop("n7_offset")),
                               r"node 'rescale1': offset\[0, 0\]: expression \"w\": unknown name 'w'"),
    "a number beyond float64": (_param("z1", "b", {"shape": [1, 3], "text": [["exp(1000)", "0", "0"]]}),
                                r"node 'z1': b\[0, 0\] is 'exp\(1000\)': .*not a finite real float64"),
    "a NaN weight": (_array("n0_W", np.full((2, 3), np.nan)), r"node 'z1': W\[0, 0\] is nan; weights must be finite"),
    "an array of another dtype": (_array("n0_W", np.ones((2, 3), dtype=np.float32)),
                                  r"node 'z1': W \(n0_W\) has dtype float32; symnet stores float64"),
    "an unexpected array": (_array("extra", np.ones(1)), r"unexpected arrays \['extra'\]; a symnet file holds only the "
                                                         r"arrays its nodes name"),
    "an array used twice": (_both(_attr("rescale1", "offset", {"shape": [1, 2], "array": "n7_scale"}),
                                  lambda meta, arrays: arrays.pop("n7_offset")),
                            r"node 'rescale1': offset reuses array 'n7_scale'"),
    "a missing array": (lambda meta, arrays: arrays.pop("n0_W"), r"node 'z1': W refers to array 'n0_W', which the "
                                                                 r"archive does not hold"),
    "an input named like a parameter": (_both(_top("symbols", {"x0": {"real": True}}),
                                              _param("z2", "b", {"shape": [1, 1], "text": [["x0"]]}),
                                              lambda meta, arrays: arrays.pop("n9_b")),
                                        r"input names \['x0'\] are also parameter names"),
    "the input as the output": (_top("output", "x"), r"the output is the input itself"),
    "two inputs of one name": (lambda meta, arrays: meta.__setitem__("inputs", [meta["inputs"][0]] * len(meta["inputs"])),
                               r"input names \(x0, x0\) must be distinct"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_graph_files_are_refused(case: str, base: tuple[dict[str, Any], dict[str, np.ndarray]],
                                         tmp_path: Path) -> None:
    change, message = HOSTILE[case]
    meta, arrays = json.loads(json.dumps(base[0])), dict(base[1])
    change(meta, arrays)
    path = write(tmp_path / "hostile.npz", meta, arrays)
    with pytest.raises(FileFormatError, match=r"hostile\.npz: .*" + message) as caught:
        load(path)
    assert str(caught.value).isprintable()


def test_the_base_of_the_hostile_files_loads(base: tuple[dict[str, Any], dict[str, np.ndarray]],
                                             tmp_path: Path) -> None:
    assert load(write(tmp_path / "base.npz", *base)) == _base()


def test_the_node_limit_is_read_when_loading(base: tuple[dict[str, Any], dict[str, np.ndarray]], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "many.npz", *base)
    monkeypatch.setattr(fmt, "MAX_NODES", 5)
    with pytest.raises(FileFormatError, match=r"many\.npz: the file lists 10 nodes, more than 5 "
                                              r"\(symnet\.io\.format\.MAX_NODES\)"):
        load(path)
    monkeypatch.setattr(fmt, "MAX_NODES", 10)
    assert load(path) == _base()


PAYLOAD = 'x"""\nimport pathlib; pathlib.Path({marker!r}).touch()\n"""'


def test_planted_payloads_in_a_graph_file_write_nothing(base: tuple[dict[str, Any], dict[str, np.ndarray]],
                                                        tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = PAYLOAD.format(marker=str(marker))
    changes = [_set("a1", "name", payload), _set("a1", "op", payload), _set("a1", "inputs", [payload]),
               _param("z1", payload, {"shape": [1, 1], "text": [["1"]]}), _attr("a1", payload, 1),
               _attr("a1", "activation", {"name": f"t -> {payload}", "form": payload}),
               _attr("a1", "activation", {"name": payload, "form": "t"}), _top("output", payload),
               _attr("z1", "parametrization", payload), _set("a1", payload, 1),
               _param("z1", "b", {"shape": [1, 3], "text": [[payload, "0", "0"]]})]
    for number, change in enumerate(changes):
        meta, arrays = json.loads(json.dumps(base[0])), dict(base[1])
        change(meta, arrays)
        path = write(tmp_path / f"plant{number}.npz", meta, arrays)
        with pytest.raises(FileFormatError) as caught:
            export(load(path), "python")
        assert str(caught.value).isprintable(), number
        assert not marker.exists(), number
    assert cli.main(["inspect", str(tmp_path / "plant0.npz")]) == 2
    assert not marker.exists()


def test_save_refuses_what_load_would_refuse(tmp_path: Path) -> None:
    from symnet.graph import Graph, Node

    x = input(1)
    net = network(x, dense(x, [[1.0]], [0.0], "tanh") + x)
    graph = net.graph
    nodes = [Node(n.name, n.op, n.inputs, n.params, {**n.attrs, "units": True} if n.op == "dense" else n.attrs, 0)
             for n in graph.nodes[1:]]
    odd = symnet.Network.from_graph(Graph(graph.inputs, nodes, graph.output))  # units True passes Graph's checks
    with pytest.raises(FileFormatError, match=r"odd\.npz: cannot save node 'z1': attribute 'units' = True: it must be "
                                              r"an integer from 0 to 100000"):
        save(odd, tmp_path / "odd.npz")
    assert not (tmp_path / "odd.npz").exists()
    u = sympy.Symbol("u", positive=True)
    renamed = symnet.Network.from_graph(graph.with_inputs([u]))
    with pytest.raises(FileFormatError, match=r"cannot save input 'u': a graph's inputs are saved as real symbols"):
        save(renamed, tmp_path / "u.npz")
    y = input(1)
    dummy = network(y, dense(y, [[sympy.Dummy("d")]], [0.0], "tanh") + y)
    with pytest.raises(FileFormatError, match=r"cannot save parameter"):
        save(dummy, tmp_path / "dummy.npz")


# --- export --------------------------------------------------------------------------------------------------

EXPORTED = ("residual", "gated", "layer_norm", "weight_norm", "fourier", "two_heads", "deeponet", "traced")
POINTS = np.random.default_rng(7).uniform(-1.5, 1.5, size=(3, 3))


def reference(net: symnet.Network, X: np.ndarray) -> dict[str, np.ndarray]:
    """Value, gradient, Hessian and Laplacian from sympy.diff of the closed form, at 30 digits."""
    xs = net.inputs
    d = len(xs)
    out: dict[str, list[Any]] = {w: [] for w in WORDS}
    forms = net.outputs
    grads = [[sympy.diff(f, x) for x in xs] for f in forms]
    hessians = [[[sympy.diff(g[i], xs[j]) for j in range(d)] for i in range(d)] for g in grads]
    for point in X:
        at = {x: sympy.Float(float(v), 30) for x, v in zip(xs, point)}

        def value(e: sympy.Expr) -> float:
            return float(e.xreplace(at).evalf(30))

        out["value"].append([value(f) for f in forms])
        out["gradient"].append([[value(e) for e in g] for g in grads])
        out["hessian"].append([[[value(e) for e in row] for row in h] for h in hessians])
        out["laplacian"].append([sum(value(h[i][i]) for i in range(d)) for h in hessians])
    return {w: np.array(v, dtype=float) for w, v in out.items()}


@pytest.fixture(scope="module")
def cc() -> str:
    found = shutil.which("cc") or shutil.which("gcc")
    if found is None:  # pragma: no cover - the suite's machines have one
        pytest.fail("no C compiler (cc or gcc) on PATH: the C export cannot be checked; install gcc")
    return found


def run_c(source: str, net: symnet.Network, X: np.ndarray, cc: str, directory: Path) -> dict[str, np.ndarray]:
    (directory / "net.c").write_text(source)
    library = directory / "net.so"
    subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-o", str(library),
                    str(directory / "net.c"), "-lm"], check=True, capture_output=True, timeout=120)
    function = ctypes.CDLL(str(library)).network
    m, d = net.n_outputs, net.n_inputs
    sizes = {"value": m, "gradient": m * d, "hessian": m * d * d, "laplacian": m}
    shapes = {"value": (m,), "gradient": (m, d), "hessian": (m, d, d), "laplacian": (m,)}
    out: dict[str, list[np.ndarray]] = {w: [] for w in WORDS}
    for x in X:
        buffers = {w: (ctypes.c_double * sizes[w])() for w in WORDS}
        function((ctypes.c_double * d)(*x), *buffers.values())
        for w in WORDS:
            out[w].append(np.array(buffers[w][:]).reshape(shapes[w]))
    return {w: np.array(v) for w, v in out.items()}


@pytest.mark.parametrize("name", EXPORTED)
def test_exported_python_and_c_of_a_graph_match_sympy(name: str, zoo: dict[str, symnet.Network], cc: str,
                                                      tmp_path: Path) -> None:
    net = zoo[name]
    X = POINTS[:, :net.n_inputs]
    want = reference(net, X)
    source = export(net, "python", WORDS)
    assert source == export(load(save(net, tmp_path / "net.npz")), "python", WORDS)  # the file exports the same
    for got in (run_python(source, net, X), run_c(export(net, "c", WORDS), net, X, cc, tmp_path)):
        for word in WORDS:
            np.testing.assert_allclose(got[word], want[word], rtol=1e-11, atol=1e-12, err_msg=f"{name}: {word}")


def test_latex_export_of_a_symbolic_graph(zoo: dict[str, symnet.Network]) -> None:
    text = export(zoo["symbolic"], "latex", ("value", "gradient"))
    lines = text.splitlines()
    assert lines[0] == "\\begin{aligned}" and lines[-1] == "\\end{aligned}"
    assert lines[1].startswith("y &= ") and "\\alpha" in lines[1] and "gain" in lines[1]
    assert [line.split(" &= ")[0] for line in lines[2:4]] == ["\\frac{\\partial y}{\\partial x_{0}}",
                                                             "\\frac{\\partial y}{\\partial x_{1}}"]
    with pytest.raises(symnet.InputError, match=r"exporting python code needs numeric weights"):
        export(zoo["symbolic"], "python")


# --- the command line ----------------------------------------------------------------------------------------


def main(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, str, str]:
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def test_inspect_lists_the_nodes_of_a_graph_file(zoo: dict[str, symnet.Network], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    net = zoo["layer_norm"]
    path = save(net, tmp_path / "ln.npz")
    status, out, err = main(capsys, "inspect", path, "--max-weights", "1000")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[1] == f"network:  {net!r}" and lines[2] == "inputs:   x0, x1"
    assert lines[3] == "weights:  numeric"
    assert lines[4] == f"nodes:    {len(net.graph.nodes) - 1} after the input, output {net.graph.output}"
    described = net.graph.describe().splitlines()
    assert lines[5:5 + len(described)] == ["  " + line for line in described]
    assert lines[5 + len(described)] == "closed form:"
    shown = lines[6 + len(described)].removeprefix("  y = ")
    assert sympy.sstr(net.outputs[0], full_prec=False) == shown
    status, out, err = main(capsys, "inspect", save(zoo["symbolic"], tmp_path / "sym.npz"), "--max-weights", "3")
    assert status == 0 and f"weights:  {len(zoo['symbolic'].params)} symbols" in out
    assert "closed form: not shown" in out


def test_inspect_does_not_build_a_closed_form_too_big_to_print(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A few nodes sharing values make a closed form of 2**60 terms: inspect estimates it and shows none."""
    from symnet.graph import activation

    x = input(1)
    h = x
    for _ in range(60):
        h = h * activation(h, "sin")
    status, out, err = main(capsys, "inspect", save(network(x, h), tmp_path / "deep.npz"))
    assert status == 0, err
    assert "mul60 = mul(mul59, a60)  [1]" in out and "closed form: not shown" in out


def test_derive_and_export_on_a_graph_file(zoo: dict[str, symnet.Network], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    net = zoo["gated"]
    path = save(net, tmp_path / "gated.npz")
    X = POINTS[:2, :2]
    want = reference(net, X)
    at = ["--at=" + ",".join(repr(float(v)) for v in point) for point in X]  # "=": a point may start with "-"
    status, out, err = main(capsys, "derive", path, *at, "--format", "json")
    assert status == 0, err
    points = json.loads(out)["points"]
    np.testing.assert_allclose([p["value"] for p in points], want["value"], rtol=1e-12)
    np.testing.assert_allclose([p["gradient"] for p in points], want["gradient"], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose([p["hessian"] for p in points], want["hessian"], rtol=1e-10, atol=1e-12)
    status, out, err = main(capsys, "export", path, "--lang", "python", "--derivatives", "value,gradient,hessian,"
                            "laplacian", "-o", tmp_path / "gated.py")
    assert status == 0, err
    got = run_python((tmp_path / "gated.py").read_text(), net, X)
    np.testing.assert_allclose(got["laplacian"], want["laplacian"], rtol=1e-11, atol=1e-12)


def test_the_command_runs_on_a_graph_file_as_a_subprocess(zoo: dict[str, symnet.Network], tmp_path: Path) -> None:
    path = save(zoo["residual"], tmp_path / "residual.npz")
    result = subprocess.run([sys.executable, "-m", "symnet.cli", "inspect", str(path)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "add1 = add(a1, a2)  [3]" in result.stdout


def test_verify_on_a_graph_file(zoo: dict[str, symnet.Network], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """Last: verify reads check/, which works on graphs through its own backprop."""
    path = save(zoo["residual"], tmp_path / "residual.npz")
    status, out, err = main(capsys, "verify", path, "--points", "3")
    assert status == 0, (out, err)
    assert out.startswith("VerifyReport: ok; 3 of 3 points checked")
