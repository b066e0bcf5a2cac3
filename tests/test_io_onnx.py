"""symnet.io.onnx: ONNX files parsed (never run) into graphs; PyTorch's exports of the zoo, hand-built
graphs against onnxruntime, and files that try to read outside their folder."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import symnet
from symnet.io import FileFormatError, UnsupportedLayerError
from symnet.io.onnx import from_onnx, op_table
from test_io_torch_graph import ZOO, Piecewise, _reference

WIDTHS = {"deeponet": [5, 2], "normalised": [3], "shared": [4]}


def _export(module: torch.nn.Module, widths: list[int], path: Path, dtype: torch.dtype = torch.float64) -> Path:
    args = tuple(torch.zeros(1, w, dtype=dtype) for w in widths)
    with torch.no_grad():
        out = module(*args)
    names = [f"in{i}" for i in range(len(args))]
    outs = [f"out{i}" for i in range(len(out) if isinstance(out, tuple) else 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notices
        torch.onnx.export(module, args, str(path), dynamo=False, input_names=names, output_names=outs,
                          dynamic_axes={k: {0: "n"} for k in names + outs})
    return path


@pytest.mark.parametrize("name", sorted(ZOO))
def test_pytorch_exports_of_the_zoo_match_autograd(name: str, tmp_path: Path) -> None:
    torch.manual_seed(7)
    module = ZOO[name]().double().eval()
    widths = WIDTHS.get(name, [2])
    path = _export(module, widths, tmp_path / f"{name}.onnx")
    net = from_onnx(path)
    assert symnet.load(path) == net  # symnet.load recognises the file
    X = np.random.default_rng(3).uniform(-1.5, 1.5, (5, net.n_inputs))
    value, jac, hes = _reference(module, widths, X)
    result = symnet.compile(net, ("value", "jacobian", "hessian"), backend="numpy")(X)
    scale = 1.0 + np.abs(hes).max()
    np.testing.assert_allclose(result.value, value, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(result.jacobian, jac, rtol=1e-10, atol=1e-11 * scale)
    np.testing.assert_allclose(result.hessian, hes, rtol=1e-9, atol=1e-10 * scale)


@pytest.mark.parametrize("name", ["resnet", "modified_mlp", "fourier", "pirate", "classifier"])
def test_onnxruntime_agrees_on_float32_exports(name: str, tmp_path: Path) -> None:
    torch.manual_seed(7)
    path = _export(ZOO[name]().eval(), [2], tmp_path / "m.onnx", torch.float32)
    net = from_onnx(path)
    X = np.random.default_rng(0).uniform(-1, 1, (16, 2))
    want = ort.InferenceSession(str(path)).run(None, {"in0": X.astype(np.float32)})[0]
    np.testing.assert_allclose(symnet.compile(net, "value", backend="numpy")(X).value, want, rtol=2e-5, atol=2e-6)


def _model(nodes: list, inputs: list, outputs: list, initializers: list, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _input(name: str, width: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.DOUBLE, ["n", width])


def test_hand_built_ops_against_onnxruntime(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    init = [numpy_helper.from_array(rng.normal(size=(4, 3)), "W"), numpy_helper.from_array(rng.normal(size=4), "b"),
            numpy_helper.from_array(rng.normal(size=(4, 2)), "M"),
            numpy_helper.from_array(np.array([1], np.int64), "s0"), numpy_helper.from_array(np.array([3], np.int64), "s1"),
            numpy_helper.from_array(np.array([1], np.int64), "ax"), numpy_helper.from_array(np.array([2.0]), "two"),
            numpy_helper.from_array(np.array(-0.5), "lo"), numpy_helper.from_array(np.array(0.7), "hi")]
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["h"], name="fc", transB=1, alpha=0.5, beta=2.0),
        helper.make_node("Tanh", ["h"], ["t"], name="act"),
        helper.make_node("Slice", ["t", "s0", "s1", "ax"], ["mid"], name="mid"),
        helper.make_node("Mul", ["mid", "mid"], ["sq"], name="sq"),
        helper.make_node("Sub", ["two", "sq"], ["d"], name="d"),
        helper.make_node("MatMul", ["t", "M"], ["p"], name="proj"),
        helper.make_node("LeakyRelu", ["p"], ["lr"], name="lr", alpha=0.3),
        helper.make_node("Clip", ["lr", "lo", "hi"], ["c"], name="clip"),
        helper.make_node("ReduceSum", ["c", "ax"], ["r"], name="total", keepdims=1),
        helper.make_node("Concat", ["d", "r"], ["y"], name="cat", axis=-1),
    ]
    model = _model(nodes, [_input("x", 3)], [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["n", 3])],
                   init)
    path = tmp_path / "ops.onnx"
    onnx.save(model, str(path))
    net = from_onnx(path)
    X = rng.normal(size=(20, 3))
    want = ort.InferenceSession(str(path)).run(None, {"x": X})[0]
    np.testing.assert_allclose(symnet.compile(net, "value", backend="numpy")(X).value, want, rtol=1e-13, atol=1e-14)
    assert [n.name for n in net.graph.nodes][1:3] == ["fc", "act"]


def _tiny(tmp_path: Path, nodes: list, init: list | None = None, width: int = 2, opset: int = 17,
          name: str = "m.onnx") -> Path:
    model = _model(nodes, [_input("x", width)], [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["n", 1])],
                   init or [], opset)
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def test_refusals_name_the_node_and_the_op(tmp_path: Path) -> None:
    w = [numpy_helper.from_array(np.ones((2, 1)), "W")]
    path = _tiny(tmp_path, [helper.make_node("MatMul", ["x", "W"], ["h"], name="fc"),
                            helper.make_node("Atan", ["h"], ["y"], name="angle")], w)
    with pytest.raises(UnsupportedLayerError, match=r"m\.onnx: node angle \(Atan\) is not an op symnet reads; it reads "
                                                    r"Abs, Add, BatchNormalization"):
        from_onnx(path)
    custom = helper.make_node("MyOp", ["x"], ["y"], name="mine", domain="com.evil")
    path = _tiny(tmp_path, [custom], name="custom.onnx")
    with pytest.raises(UnsupportedLayerError, match=r"node mine \(MyOp\): domain com\.evil; symnet reads the default"):
        from_onnx(path)
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x08\x07\x12\x99not a model" * 10)
    with pytest.raises(FileFormatError, match=r"junk\.onnx: not a readable ONNX model"):
        from_onnx(path)


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "link/data.bin"])
def test_external_data_outside_the_models_folder_is_never_read(tmp_path: Path, location: str) -> None:
    outside = tmp_path / "secret.bin"
    outside.write_bytes(np.ones(2).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(tmp_path, folder / "link")
    (tmp_path / "data.bin").write_bytes(np.ones(2).tobytes())
    tensor = numpy_helper.from_array(np.ones((2, 1)), "W")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    path = _tiny(folder, [helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")], [tensor])
    with pytest.raises(FileFormatError, match=r"external data at .* (outside the model's folder|passes through a link)"):
        from_onnx(path)


def test_external_data_beside_the_model_is_read_within_its_range(tmp_path: Path) -> None:
    weights = np.array([[2.0], [-3.0]])
    (tmp_path / "w.bin").write_bytes(b"\0" * 8 + weights.tobytes())
    tensor = numpy_helper.from_array(weights, "W")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "w.bin"), ("offset", "8"), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    path = _tiny(tmp_path, [helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")], [tensor])
    net = from_onnx(path)
    np.testing.assert_array_equal(symnet.compile(net, "value", backend="numpy")(np.array([[1.0, 1.0]])).value, [[-1.0]])
    for (offset, length), message in ((("8", "64"), r"external data of 64 bytes for a tensor of 16"),
                                      (("16", "16"), r"external data range \[16, 32\) outside the 24-byte file"),
                                      (("0x8", "16"), r"offset 0x8 or length 16 is not a whole number")):
        tensor.external_data[1].value, tensor.external_data[2].value = offset, length
        onnx.save(_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")], [_input("x", 2)],
                         [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["n", 1])], [tensor]), str(path))
        with pytest.raises(FileFormatError, match=message):
            from_onnx(path)


def test_the_docs_list_the_onnx_op_table_as_generated() -> None:
    text = (Path(__file__).parents[1] / "docs" / "io.md").read_text()
    block = text.split("<!-- onnx_op_table: start -->\n", 1)[1].split("\n<!-- onnx_op_table: end -->", 1)[0]
    assert block == op_table(), "docs/io.md's ONNX op table is stale: paste symnet.io.onnx.op_table() there"


def _constants(**arrays: np.ndarray) -> list:
    return [numpy_helper.from_array(np.asarray(v), k) for k, v in arrays.items()]


@pytest.mark.parametrize("nodes, constants, message", [
    ([helper.make_node("Cast", ["x"], ["c"], to=TensorProto.INT32), helper.make_node("Cast", ["c"], ["y"], to=11)], {},
     r"a Cast of computed values to INT32 rounds them"),
    ([helper.make_node("Gather", ["x", "i"], ["g"], axis=1), helper.make_node("Add", ["g", "x"], ["y"])],
     {"i": np.array(0, np.int64)}, r"\(N,\) .* ONNX broadcasts to \(N, N\)"),
    ([helper.make_node("Tanh", ["x"], ["t"]), helper.make_node("Split", ["t"], ["y", "z"], axis=1, split=[1, 1])], {},
     r"split given as an attribute, which opset 17 does not have"),
    ([helper.make_node("ReduceSum", ["x"], ["y"], axes=[1])], {}, r"axes given as an attribute, which opset 17"),
    ([helper.make_node("Add", ["x"], ["y"])], {}, r"symnet cannot read this node's inputs or attributes \(IndexError"),
    ([helper.make_node("PRelu", ["x", "x"], ["p"]), helper.make_node("ReduceSum", ["p", "ax"], ["y"])],
     {"ax": np.array([1], np.int64)}, r"node n0 \(PRelu\): its slope is computed from the inputs; symnet reads a "
                                      r"constant there"),
    ([helper.make_node("PRelu", ["x", "s"], ["p"]), helper.make_node("ReduceSum", ["p", "ax"], ["y"])],
     {"s": np.ones((2, 2)), "ax": np.array([1], np.int64)},
     r"node n0 \(PRelu\): a constant of shape \(2, 2\) does not broadcast over 2 features"),
    ([helper.make_node("Gather", ["x", "i"], ["g"], axis=1), helper.make_node("Max", ["g", "x"], ["m"]),
      helper.make_node("ReduceSum", ["m", "ax"], ["y"])],
     {"i": np.array(0, np.int64), "ax": np.array([1], np.int64)}, r"node n1 \(Max\): reads a value ONNX holds as \(N,\)"),
])
def test_onnx_graphs_that_would_import_as_something_else_are_refused(tmp_path, nodes, constants, message):
    for k, node in enumerate(nodes):
        node.name = f"n{k}"
    path = _tiny(tmp_path, nodes, _constants(**constants))
    with pytest.raises(UnsupportedLayerError, match=message):
        from_onnx(path)


def test_prelu_max_and_min_exported_by_pytorch_match_the_live_import(tmp_path: Path) -> None:
    """nn.PReLU and F.prelu (PRelu), torch.maximum / max / minimum (Max, Min, with a constant too)."""
    torch.manual_seed(5)
    module = Piecewise().double().eval()
    path = _export(module, [2], tmp_path / "piecewise.onnx")
    assert {"PRelu", "Max", "Min"} <= {node.op_type for node in onnx.load(str(path)).graph.node}
    net = from_onnx(path)
    live = symnet.io.from_torch(module)
    X = np.random.default_rng(3).uniform(-1.5, 1.5, (8, 2))
    words = ("value", "jacobian", "hessian")
    got = symnet.compile(net, words, backend="numpy")(X).as_dict()
    want = symnet.compile(live, words, backend="numpy")(X).as_dict()
    for word in words:
        np.testing.assert_allclose(got[word], want[word], rtol=1e-13, atol=1e-14, err_msg=word)
    # (onnxruntime has no float64 PRelu kernel: the next test runs it in float32)


def test_variadic_max_min_and_prelu_slopes_against_onnxruntime(tmp_path: Path) -> None:
    """Max of three (one a constant row), Min of two and of one, PRelu with one slope and one per
    feature (float32 only in onnxruntime, so between Casts): the formula in float64, onnxruntime in
    float32, and the slopes are scale parameters."""
    rng = np.random.default_rng(4)
    W, V, c = rng.normal(size=(3, 3)), rng.normal(size=(3, 3)), np.array([0.2, -0.1, 0.0])
    one, each = np.array([0.25], np.float32), np.array([0.5, -1.0, 2.0], np.float32)
    init = _constants(W=W, V=V, c=c, one=one, each=each)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["a"], name="a"),
             helper.make_node("MatMul", ["x", "V"], ["b"], name="b"),
             helper.make_node("Max", ["a", "b", "c"], ["hi"], name="hi"),
             helper.make_node("Min", ["a", "b"], ["lo"], name="lo"),
             helper.make_node("Min", ["lo"], ["lo1"], name="lo1"),
             helper.make_node("Concat", ["hi", "lo1"], ["both"], name="both", axis=1),
             helper.make_node("Cast", ["both"], ["both32"], name="to32", to=TensorProto.FLOAT),
             helper.make_node("Split", ["both32"], ["hi32", "lo32"], name="halves", axis=1),
             helper.make_node("PRelu", ["hi32", "one"], ["p"], name="p"),
             helper.make_node("PRelu", ["lo32", "each"], ["q"], name="q"),
             helper.make_node("Concat", ["p", "q"], ["y32"], name="cat", axis=1),
             helper.make_node("Cast", ["y32"], ["y"], name="to64", to=TensorProto.DOUBLE)]
    model = _model(nodes, [_input("x", 3)], [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["n", 6])], init)
    path = tmp_path / "extrema.onnx"
    onnx.save(model, str(path))
    net = from_onnx(path)
    X = rng.normal(size=(30, 3))
    got = symnet.compile(net, "value", backend="numpy")(X).value
    a, b = X @ W, X @ V
    hi, lo = np.maximum(np.maximum(a, b), c), np.minimum(a, b)
    formula = np.concatenate([np.where(hi > 0, hi, 0.25 * hi), np.where(lo > 0, lo, each * lo)], axis=1)
    np.testing.assert_allclose(got, formula, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got, ort.InferenceSession(str(path)).run(None, {"x": X})[0], rtol=1e-6, atol=1e-6)
    assert [np.asarray(n.params["s"], dtype=np.float64).ravel().tolist() for n in net.graph.nodes
            if n.op == "scale"] == [[0.25], [0.5, -1.0, 2.0]]


def test_integer_constants_fold_as_onnx_computes_them(tmp_path: Path) -> None:
    nodes = [helper.make_node("Div", ["a", "b"], ["q"], name="q"), helper.make_node("Cast", ["q"], ["qf"], to=11),
             helper.make_node("Mul", ["x", "qf"], ["p"], name="p"), helper.make_node("ReduceSum", ["p", "ax"], ["y"])]
    path = _tiny(tmp_path, nodes, _constants(a=np.array(7, np.int64), b=np.array(2, np.int64),
                                             ax=np.array([1], np.int64)))
    X = np.array([[1.0, 2.0]])
    want = ort.InferenceSession(str(path)).run(None, {"x": X})[0]
    np.testing.assert_allclose(symnet.compile(from_onnx(path), "value", backend="numpy")(X).value, want)
    assert want[0, 0] == 9.0  # 7 // 2 = 3, not 3.5


def test_a_flax_mlp_exported_by_jax2onnx() -> None:
    """tests/data/flax_mlp.onnx: a Flax nnx residual MLP (float32), made by tests/data/make_flax_mlp.py."""
    path = Path(__file__).parent / "data" / "flax_mlp.onnx"
    net = from_onnx(path)
    X = np.random.default_rng(2).normal(size=(32, 2))
    session = ort.InferenceSession(str(path))
    want = session.run(None, {session.get_inputs()[0].name: X.astype(np.float32)})[0]
    np.testing.assert_allclose(symnet.compile(net, "value", backend="numpy")(X).value, want, rtol=1e-5, atol=1e-6)
    assert [node.op for node in net.graph.nodes].count("add") == 1  # the residual


def test_an_empty_reduction_with_noop_keeps_its_input(tmp_path: Path) -> None:
    nodes = [helper.make_node("ReduceSum", ["w"], ["r"], name="r", keepdims=0, noop_with_empty_axes=1),
             helper.make_node("Mul", ["x", "r"], ["y"], name="y")]
    model = _model(nodes, [_input("x", 3)], [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["n", 3])],
                   _constants(w=np.array([1.0, 2.0, 3.0])), opset=18)
    path = tmp_path / "noop.onnx"
    onnx.save(model, str(path))
    X = np.array([[1.0, 1.0, 1.0]])
    want = ort.InferenceSession(str(path)).run(None, {"x": X})[0]
    np.testing.assert_array_equal(symnet.compile(from_onnx(path), "value", backend="numpy")(X).value, want)


def test_pytorchs_exports_of_columns_held_as_n(tmp_path: Path) -> None:
    """x[:, 0] (a scalar Gather), sums without keepdim and unsqueeze(1), through PyTorch's export."""
    class Columns(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.tanh(self.fc(x))
            return torch.cat([(h[:, 0] * h[:, 1]).unsqueeze(1), h.sum(-1).unsqueeze(-1)], dim=1) * h[:, :2]

    torch.manual_seed(0)
    module = Columns().double().eval()
    net = from_onnx(_export(module, [2], tmp_path / "cols.onnx"))
    X = np.random.default_rng(0).normal(size=(4, 2))
    np.testing.assert_allclose(symnet.compile(net, "value", backend="numpy")(X).value,
                               module(torch.as_tensor(X)).detach().numpy(), rtol=1e-13)


def test_transpose_and_expand_fold_on_constants_and_keep_features(tmp_path: Path) -> None:
    """A transposed weight matrix (as PyTorch's newer exporter writes ``x @ W.T``) and Expand, against onnxruntime."""
    rng = np.random.default_rng(4)
    init = [numpy_helper.from_array(rng.normal(size=(4, 3)), "W"), numpy_helper.from_array(rng.normal(size=(4,)), "b"),
            numpy_helper.from_array(np.array([1, 4], np.int64), "row"), numpy_helper.from_array(rng.normal(size=(4, 1)), "V"),
            numpy_helper.from_array(np.array([1, 4], np.int64), "four")]
    nodes = [
        helper.make_node("Transpose", ["W"], ["Wt"], name="wt", perm=[1, 0]),
        helper.make_node("MatMul", ["x", "Wt"], ["h0"], name="fc"),
        helper.make_node("Expand", ["b", "row"], ["bb"], name="bias_row"),
        helper.make_node("Add", ["h0", "bb"], ["h"], name="add"),
        helper.make_node("Tanh", ["h"], ["t"], name="act"),
        helper.make_node("Transpose", ["t"], ["t2"], name="same", perm=[0, 1]),
        helper.make_node("MatMul", ["t2", "V"], ["one"], name="head"),
        helper.make_node("Expand", ["one", "four"], ["wide"], name="copies"),
        helper.make_node("Mul", ["wide", "t"], ["y0"], name="gate"),
        helper.make_node("ReduceSum", ["y0", "ax"], ["y"], name="total", keepdims=1),
    ]
    init.append(numpy_helper.from_array(np.array([1], np.int64), "ax"))
    path = _tiny(tmp_path, nodes, init, width=3)
    net = from_onnx(path)
    X = rng.normal(size=(15, 3))
    want = ort.InferenceSession(str(path)).run(None, {"x": X})[0]
    np.testing.assert_allclose(symnet.compile(net, "value", backend="numpy")(X).value, want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("node, message", [
    (helper.make_node("Transpose", ["x"], ["y"], name="swap"), r"node swap \(Transpose\).*swaps the points with the features"),
    (helper.make_node("Expand", ["x", "shape"], ["y"], name="grow"), r"node grow \(Expand\).*keep the points"),
])
def test_transpose_and_expand_of_points_are_refused(tmp_path: Path, node, message) -> None:
    init = [numpy_helper.from_array(np.array([5, 2], np.int64), "shape")]
    with pytest.raises(UnsupportedLayerError, match=message):
        from_onnx(_tiny(tmp_path, [node], init))


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.5])
def test_celu_is_alpha_times_elu_of_x_over_alpha(tmp_path: Path, alpha: float) -> None:
    """Celu (float32 only in ONNX, so between Casts) against its formula in float64 and onnxruntime
    in float32, and at alpha = 1 the elu activation itself (Keras' celu default)."""
    nodes = [helper.make_node("Cast", ["x"], ["x32"], name="in", to=TensorProto.FLOAT),
             helper.make_node("Celu", ["x32"], ["c32"], name="celu", alpha=alpha),
             helper.make_node("Cast", ["c32"], ["c"], name="out", to=TensorProto.DOUBLE),
             helper.make_node("ReduceSum", ["c", "ax"], ["y"], name="total", keepdims=1)]
    path = _tiny(tmp_path, nodes, [numpy_helper.from_array(np.array([1], np.int64), "ax")])
    net = from_onnx(path)
    X = np.random.default_rng(3).normal(scale=3, size=(40, 2))
    got = symnet.compile(net, "value", backend="numpy")(X).value
    formula = np.where(X > 0, X, alpha * np.expm1(X / alpha)).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got, formula, rtol=1e-14, atol=1e-15)
    want = ort.InferenceSession(str(path)).run(None, {"x": X})[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    if alpha == 1.0:
        assert [n.activation.name for n in net.graph.nodes if n.op == "activation"] == ["elu(alpha=1.0)"]
    with pytest.raises(UnsupportedLayerError, match=r"Celu\(alpha=-1.0\) needs a finite alpha > 0"):
        from_onnx(_tiny(tmp_path, [helper.make_node("Celu", ["x"], ["c"], name="celu", alpha=-1.0),  # (refused first)
                                   helper.make_node("ReduceSum", ["c", "ax"], ["y"], name="total", keepdims=1)],
                        [numpy_helper.from_array(np.array([1], np.int64), "ax")], name="bad.onnx"))


def test_a_matmuls_bias_is_a_parameter_and_other_constants_are_fixed(tmp_path: Path) -> None:
    """MatMul then Add of a row (read by that Add alone) is one dense node with that bias, a
    parameter; a MatMul read twice keeps a zero bias and the Adds are fixed rescales; Div by a
    tensor, Abs, Sqrt and Min with a huge constant (exact on t's side: t - relu(t - c)) against
    onnxruntime."""
    rng = np.random.default_rng(6)
    W, b, V, c = rng.normal(size=(2, 3)), rng.normal(size=3), rng.normal(size=(3, 1)), rng.normal(size=3)
    init = _constants(W=W, b=b, V=V, c=c, big=np.array(1e12), one=np.array(1.0))
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="fc"),
             helper.make_node("Add", ["h", "b"], ["z"], name="bias"),
             helper.make_node("Abs", ["z"], ["az"], name="abs"),
             helper.make_node("Add", ["az", "one"], ["den"], name="den"),
             helper.make_node("Div", ["z", "den"], ["soft"], name="softsign"),
             helper.make_node("Sqrt", ["den"], ["root"], name="root"),
             helper.make_node("Min", ["root", "big"], ["small"], name="clip"),
             helper.make_node("Mul", ["soft", "small"], ["prod"], name="prod"),
             helper.make_node("MatMul", ["prod", "V"], ["y"], name="out")]
    path = _tiny(tmp_path, nodes, init)
    net = from_onnx(path)
    dense = [node for node in net.graph.nodes if node.op == "dense"]
    assert [node.name for node in dense] == ["bias", "out"]
    np.testing.assert_array_equal(np.asarray(dense[0].params["b"], dtype=np.float64).ravel(), b)
    assert not [node for node in net.graph.nodes if node.op in ("scale", "shift")]
    X = rng.normal(size=(20, 2))
    z = X @ W + b
    want = (z / (1 + np.abs(z)) * np.sqrt(1 + np.abs(z))) @ V
    got = symnet.compile(net, "value", backend="numpy")(X).value
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got, ort.InferenceSession(str(path)).run(None, {"x": X})[0], rtol=1e-13, atol=1e-14)
    twice = [helper.make_node("MatMul", ["x", "W"], ["h"], name="fc"),
             helper.make_node("Add", ["h", "c"], ["z"], name="shifted"),
             helper.make_node("Mul", ["h", "z"], ["p"], name="p"),
             helper.make_node("MatMul", ["p", "V"], ["y"], name="out")]
    net = from_onnx(_tiny(tmp_path, twice, init, name="twice.onnx"))
    assert [node.op for node in net.graph.nodes] == ["input", "dense", "rescale", "mul", "dense"]


class _Views(torch.nn.Module):
    """``x.view(x.size(0), -1)``, ``x.reshape(x.shape[0], -1)`` and ``torch.flatten(x, 1)``: in a
    dynamic-batch export, Reshapes whose target shape a Shape -> Gather -> Unsqueeze -> Concat
    subgraph computes from the batch size."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc(x))
        h = h.view(h.size(0), -1)
        h = h.reshape(h.shape[0], -1)
        return self.out(torch.flatten(h, 1))


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_reshapes_to_a_shape_computed_from_the_batch_size(exporter: str, tmp_path: Path) -> None:
    """Both of PyTorch's exporters (the dynamo one unoptimised, so its shape arithmetic -- Shape with
    start/end, Squeeze, Reshape to [-1], Concat, Reshape(allowzero=1) -- stays in the file): the
    Reshapes are the identity, and the import agrees with autograd and with onnxruntime."""
    torch.manual_seed(3)
    module = _Views().double().eval()
    path = tmp_path / f"views_{exporter}.onnx"
    if exporter == "torchscript":
        _export(module, [3], path)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.zeros(2, 3, dtype=torch.float64),), str(path), dynamo=True,
                              optimize=False, verbose=False, dynamic_shapes={"x": {0: torch.export.Dim("n")}})
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"Shape", "Concat", "Reshape"} <= ops
    net = from_onnx(path)
    assert [node.op for node in net.graph.nodes] == ["input", "dense", "activation", "dense", "activation"]
    X = np.random.default_rng(3).uniform(-1.5, 1.5, (5, 3))
    value, jac, hes = _reference(module, [3], X)
    result = symnet.compile(net, ("value", "jacobian", "hessian"), backend="numpy")(X)
    np.testing.assert_allclose(result.value, value, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(result.jacobian, jac, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(result.hessian, hes, rtol=1e-11, atol=1e-12)
    session = ort.InferenceSession(str(path))
    want = session.run(None, {session.get_inputs()[0].name: X})[0]
    np.testing.assert_allclose(result.value, want, rtol=1e-13, atol=1e-14)


def _shape_nodes(*nodes: Any) -> list:
    for k, node in enumerate(nodes):
        node.name = node.name or f"n{k}"
    return list(nodes)


def test_shape_arithmetic_as_the_exporters_write_it_against_onnxruntime(tmp_path: Path) -> None:
    """Hand-built: Shape with start/end (opset 15), Slice, Gather, Squeeze, Unsqueeze, Cast, Mul and
    Div by 1, Constant value_ints, 0 (copy an axis) and -1 (inferred) in the target; an (N, 1)
    column reshaped to (N,) and back; onnxruntime runs each file to the same values."""
    c = _constants(zero=np.array([0], np.int64), one=np.array([1], np.int64), big=np.array([2**62], np.int64),
                   i0=np.array(0, np.int64), ax0=np.array([0], np.int64), W=np.ones((4, 1)) / 4)
    nodes = _shape_nodes(
        helper.make_node("Tanh", ["x"], ["t"]),
        helper.make_node("Shape", ["t"], ["s"], start=0, end=1),  # [N]
        helper.make_node("Shape", ["t"], ["full"]),  # [N, 4]
        helper.make_node("Slice", ["full", "zero", "big"], ["again"]),  # [N, 4]
        helper.make_node("Gather", ["again", "i0"], ["n"], axis=0),  # N
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),  # [N]
        helper.make_node("Cast", ["n1"], ["n32"], to=TensorProto.INT32),
        helper.make_node("Cast", ["n32"], ["n64"], to=TensorProto.INT64),
        helper.make_node("Mul", ["n64", "one"], ["same"]),  # N * 1
        helper.make_node("Div", ["same", "one"], ["still"]),  # N / 1
        helper.make_node("Constant", [], ["minus"], value_ints=[-1]),
        helper.make_node("Concat", ["still", "minus"], ["target"], axis=0),  # [N, -1]
        helper.make_node("Reshape", ["t", "target"], ["r"]),
        helper.make_node("Concat", ["zero", "minus"], ["copy"], axis=0),  # [0, -1]
        helper.make_node("Reshape", ["r", "copy"], ["r2"]),
        helper.make_node("MatMul", ["r2", "W"], ["col"]),  # (N, 1)
        helper.make_node("Reshape", ["col", "s"], ["flat"]),  # (N,)
        helper.make_node("Exp", ["flat"], ["e"]),
        helper.make_node("Concat", ["s", "one"], ["back"], axis=0),  # [N, 1]
        helper.make_node("Reshape", ["e", "back"], ["y"]))
    path = tmp_path / "shapes.onnx"
    onnx.save(_model(nodes, [_input("x", 4)], [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["n", 1])],
                     c, opset=17), str(path))
    net = from_onnx(path)
    X = np.random.default_rng(2).normal(size=(6, 4))
    want = ort.InferenceSession(str(path)).run(None, {"x": X})[0]
    np.testing.assert_allclose(symnet.compile(net, "value", backend="numpy")(X).value, want, rtol=1e-14)


@pytest.mark.parametrize("nodes, constants, message", [
    ([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Mul", ["s", "two"], ["t"]),
      helper.make_node("Reshape", ["x", "t"], ["y"])], {"two": np.array([2, 1], np.int64)},
     r"node n1 \(Mul\): N \* 2 on the batch size N; symnet's shape arithmetic keeps N only where it stays N"),
    ([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Cast", ["s"], ["f"], to=TensorProto.DOUBLE),
      helper.make_node("Mul", ["x", "f"], ["y"])], {},
     r"node n1 \(Cast\): a Cast of \[N, 2\], which holds the batch size N, to DOUBLE"),
    ([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Expand", ["x", "s"], ["y"])], {},
     r"node n1 \(Expand\): reads the shape \[N, 2\], which holds the batch size N; symnet evaluates such shapes "
     r"through Add, Cast, Concat"),
    ([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Concat", ["one", "s"], ["t"], axis=0),
      helper.make_node("Reshape", ["x", "t"], ["y"])], {"one": np.array([1], np.int64)},
     r"node n2 \(Reshape\): Reshape of an \(N, 2\) value to \(1, N, 2\); symnet reads reshapes that keep \(N, 2\)"),
    ([helper.make_node("Reshape", ["x", "t"], ["y"])], {"t": np.array([2, -1], np.int64)},
     r"node n0 \(Reshape\): Reshape of an \(N, 2\) value to \(2, N\); symnet reads reshapes that keep \(N, 2\)"),
    ([helper.make_node("Reshape", ["x", "t"], ["y"], allowzero=1)], {"t": np.array([0, 2], np.int64)},
     r"Reshape of an \(N, 2\) value to \(0, 2\): entry 0 is 0 \(allowzero\)"),
    ([helper.make_node("Reshape", ["x", "t"], ["y"])], {"t": np.array([-1, 1], np.int64)},
     r"Reshape of an \(N, 2\) value to \(-1, 1\) would merge or split the points; symnet reads reshapes that "
     r"keep the points on the first axis"),
    ([helper.make_node("Shape", ["x"], ["y"])], {}, r"output y is a shape vector; symnet's outputs are \(N, d\)"),
    ([helper.make_node("Unsqueeze", ["x", "one"], ["u"]), helper.make_node("Tanh", ["u"], ["y"])],
     {"one": np.array([1], np.int64)}, r"node n1 \(Tanh\): reads an \(N, 1, 2\) value \(an Unsqueeze of an \(N, w\) "
                                      r"one\); symnet reads it only in a batched MatMul"),
    ([helper.make_node("Unsqueeze", ["x", "two"], ["u"]), helper.make_node("MatMul", ["u", "u"], ["y"])],
     {"two": np.array([2], np.int64)}, r"node n1 \(MatMul\): a batched MatMul of \(N, 2, 1\) by \(N, 2, 1\); symnet "
                                       r"reads a row \(N, 1, w\) by a column \(N, w, 1\)"),
    ([helper.make_node("Unsqueeze", ["x", "three"], ["y"])], {"three": np.array([3], np.int64)},
     r"Unsqueeze over axes \[3\] of an \(N, 2\) value; symnet reads Unsqueeze\(axes=\[1\]\) of an \(N,\) value"),
])
def test_shapes_symnet_cannot_decide_are_refused_with_the_node_named(tmp_path, nodes, constants, message):
    path = _tiny(tmp_path, _shape_nodes(*nodes), _constants(**constants))
    with pytest.raises(UnsupportedLayerError, match=message):
        from_onnx(path)


def test_shape_arithmetic_by_zero_is_whole_numbers(tmp_path: Path) -> None:
    """[N, 2] + [0, 0] and [N, 2] - [0, 0]: the whole-number entry 2 + 0 folds (it once raised
    ZeroDivisionError, every kind's result computed for each entry, Div's by 0 too)."""
    nodes = _shape_nodes(helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Add", ["s", "zeros"], ["a"]),
                         helper.make_node("Sub", ["a", "zeros"], ["t"]), helper.make_node("Reshape", ["x", "t"], ["r"]),
                         helper.make_node("Tanh", ["r"], ["y"]))
    path = _tiny(tmp_path, nodes, _constants(zeros=np.zeros(2, np.int64)))
    X = np.random.default_rng(1).normal(size=(5, 2))
    want = ort.InferenceSession(str(path)).run(None, {"x": X})[0]
    np.testing.assert_allclose(symnet.compile(from_onnx(path), "value", backend="numpy")(X).value, want, rtol=1e-14)


def test_shape_vectors_are_bounded(tmp_path: Path) -> None:
    nodes = _shape_nodes(helper.make_node("Shape", ["x"], ["s"]),
                         helper.make_node("Concat", ["s", "many"], ["t"], axis=0),
                         helper.make_node("Reshape", ["x", "t"], ["y"]))
    path = _tiny(tmp_path, nodes, _constants(many=np.ones(200, np.int64)))
    with pytest.raises(UnsupportedLayerError, match=r"node n1 \(Concat\): combines the batch size N with 200 "
                                                    r"numbers; symnet evaluates shape vectors of up to 64 entries"):
        from_onnx(path)
