"""symnet.io.keras_graph: Keras functional models that are graphs, live and from .keras files.

Keras computes float64 matrix products in float32, so the exact comparisons use a float64
reference written here with torch from each layer's weights (``_forward``), and Keras' own
``model(x)`` is compared to float32 accuracy by ``from_keras``'s check.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import symnet  # noqa: E402
from symnet import ImportMismatchError  # noqa: E402
from symnet.io import UnsupportedLayerError, from_keras, load_keras  # noqa: E402
from symnet.io.keras_graph import layer_table  # noqa: E402
from test_io_keras import float64  # noqa: E402,F401 - the module's float64 Keras policy, autouse

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

L = keras.layers


def _w(model: Any, name: str) -> list[torch.Tensor]:
    return [torch.as_tensor(np.asarray(w.value.detach().cpu().numpy(), dtype=np.float64)) for w in
            model.get_layer(name).weights]


def _dense(model: Any, name: str, x: torch.Tensor, act: Callable[[torch.Tensor], torch.Tensor] | None = None):
    kernel, *bias = _w(model, name)
    z = x @ kernel + (bias[0] if bias else 0.0)
    return z if act is None else act(z)


def residual() -> tuple[Any, Callable[..., torch.Tensor]]:
    x = keras.Input((2,))
    h = L.Dense(6, activation="tanh", name="inp")(x)
    h = L.Add(name="res")([h, L.Dense(6, activation="tanh", name="block")(h)])
    model = keras.Model(x, L.Dense(1, name="out")(h))

    def forward(x: torch.Tensor) -> torch.Tensor:
        h = _dense(model, "inp", x, torch.tanh)
        h = h + _dense(model, "block", h, torch.tanh)
        return _dense(model, "out", h)
    return model, forward


def gated() -> tuple[Any, Callable[..., torch.Tensor]]:
    x = keras.Input((2,))
    u, v = L.Dense(5, activation="tanh", name="u")(x), L.Dense(5, activation="tanh", name="v")(x)
    h = L.Dense(5, activation="sigmoid", name="h")(x)
    one_minus_h = L.Rescaling(-1.0, offset=1.0, name="flip")(h)
    g = L.Add(name="gate")([L.Multiply(name="hu")([h, u]), L.Multiply(name="hv")([one_minus_h, v])])
    model = keras.Model(x, L.Dense(1, name="out")(g))

    def forward(x: torch.Tensor) -> torch.Tensor:
        u, v = _dense(model, "u", x, torch.tanh), _dense(model, "v", x, torch.tanh)
        h = _dense(model, "h", x, torch.sigmoid)
        return _dense(model, "out", h * u + (1 - h) * v)
    return model, forward


def normalised() -> tuple[Any, Callable[..., torch.Tensor]]:
    x = keras.Input((3,))
    n = L.Normalization(mean=[0.5, -1.0, 2.0], variance=[4.0, 0.25, 1.0], name="norm")(x)
    h = L.Dense(4, activation="silu", name="d1")(n)
    b = L.BatchNormalization(name="bn")(h)
    c = L.Concatenate(name="cat")([L.LayerNormalization(name="ln")(b), L.Dropout(0.5, name="drop")(n)])
    model = keras.Model(x, [L.Dense(1, name="head1")(c), L.Dense(2, activation="softplus", name="head2")(c)])
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.linspace(-0.3, 0.3, 4))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 4))

    def forward(x: torch.Tensor) -> torch.Tensor:
        mean, variance = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([4.0, 0.25, 1.0])
        n = (x - mean) / torch.sqrt(variance)
        h = _dense(model, "d1", n, torch.nn.functional.silu)
        gamma, beta, mm, mv = _w(model, "bn")
        b = (h - mm) / torch.sqrt(mv + bn.epsilon) * gamma + beta
        g2, b2 = _w(model, "ln")
        ln = torch.nn.functional.layer_norm(b, (4,), g2, b2, eps=model.get_layer("ln").epsilon)
        c = torch.cat([ln, n], dim=-1)
        return torch.cat([_dense(model, "head1", c), _dense(model, "head2", c, torch.nn.functional.softplus)], -1)
    return model, forward


def deeponet() -> tuple[Any, Callable[..., torch.Tensor]]:
    u, y = keras.Input((4,), name="sensors"), keras.Input((2,), name="coords")
    branch = L.Dense(3, name="branch")(L.Dense(6, activation="tanh", name="b1")(u))
    trunk = L.Dense(3, activation="tanh", name="trunk")(L.Dense(6, activation="tanh", name="t1")(y))
    shared = L.Dense(3, activation="tanh", name="shared")
    out = L.Dense(1, name="out")(L.Multiply(name="prod")([shared(branch), shared(trunk)]))
    model = keras.Model([u, y], out)

    def forward(x: torch.Tensor) -> torch.Tensor:
        b = _dense(model, "branch", _dense(model, "b1", x[:, :4], torch.tanh))
        t = _dense(model, "trunk", _dense(model, "t1", x[:, 4:], torch.tanh), torch.tanh)
        return _dense(model, "out", _dense(model, "shared", b, torch.tanh) * _dense(model, "shared", t, torch.tanh))
    return model, forward


def piecewise() -> tuple[Any, Callable[..., torch.Tensor]]:
    """PReLU (per feature and shared), Maximum of three, Minimum, UnitNormalization and Dot (plain and
    normalize=True): composites of relu, sub, scale, mul, sum and 1/sqrt nodes."""
    x = keras.Input((3,))
    a, b, c = L.Dense(4, name="a")(x), L.Dense(4, activation="tanh", name="b")(x), L.Dense(4, name="c")(x)
    p = L.PReLU(alpha_initializer=keras.initializers.RandomUniform(0.1, 0.6), name="pr")(a)
    q = L.PReLU(shared_axes=[1], alpha_initializer=keras.initializers.Constant(0.3), name="pr_shared")(b)
    high, low = L.Maximum(name="high")([p, q, c]), L.Minimum(name="low")([p, c])
    unit = L.UnitNormalization(name="unit")(high)
    dot, cosine = L.Dot(axes=1, name="dot")([unit, low]), L.Dot(axes=-1, normalize=True, name="cos")([high, low])
    model = keras.Model(x, [dot, cosine, L.Dense(2, name="out")(unit)])

    def forward(x: torch.Tensor) -> torch.Tensor:
        def prelu(h: torch.Tensor, layer: str) -> torch.Tensor:
            return torch.relu(h) - _w(model, layer)[0] * torch.relu(-h)

        def normalize(h: torch.Tensor, eps: float) -> torch.Tensor:
            return h / torch.clamp(torch.linalg.vector_norm(h, dim=-1, keepdim=True), min=eps)

        a, b, c = _dense(model, "a", x), _dense(model, "b", x, torch.tanh), _dense(model, "c", x)
        p, q = prelu(a, "pr"), prelu(b, "pr_shared")
        high, low = torch.maximum(torch.maximum(p, q), c), torch.minimum(p, c)
        unit = normalize(high, 1e-12)
        cosine = (normalize(high, 1e-7) * normalize(low, 1e-7)).sum(-1, keepdim=True)
        return torch.cat([(unit * low).sum(-1, keepdim=True), cosine, _dense(model, "out", unit)], -1)
    return model, forward


def classifier() -> tuple[Any, Callable[..., torch.Tensor]]:
    """Two heads averaged (Average: a fixed 1/2, no parameter) into log-probabilities (log_softmax)."""
    x = keras.Input((2,))
    h = L.Dense(5, activation="tanh", name="h")(x)
    mean = L.Average(name="avg")([L.Dense(3, name="p")(h), L.Dense(3, activation="tanh", name="q")(h)])
    model = keras.Model(x, L.Dense(3, activation="log_softmax", name="out")(mean))

    def forward(x: torch.Tensor) -> torch.Tensor:
        h = _dense(model, "h", x, torch.tanh)
        mean = (_dense(model, "p", h) + _dense(model, "q", h, torch.tanh)) / 2
        return torch.log_softmax(_dense(model, "out", mean), dim=-1)
    return model, forward


MODELS = {"residual": residual, "gated": gated, "normalised": normalised, "deeponet": deeponet,
          "piecewise": piecewise, "classifier": classifier}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_functional_graphs_import_live_and_from_files(name: str, tmp_path: Path) -> None:
    keras.utils.set_random_seed(3)
    model, forward = MODELS[name]()
    net = from_keras(model)  # checked layer by layer and end to end against Keras
    model.save(tmp_path / "model.keras")
    assert load_keras(tmp_path / "model.keras") == net
    assert symnet.load(tmp_path / "model.keras") == net
    X = np.random.default_rng(1).uniform(-1.5, 1.5, (4, net.n_inputs))
    result = symnet.compile(net, ("value", "jacobian", "hessian"), backend="numpy")(X)
    for p, x in enumerate(torch.as_tensor(X)):
        def f(y: torch.Tensor) -> torch.Tensor:
            return forward(y[None, :])[0]

        np.testing.assert_allclose(result.value[p], f(x).numpy(), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(result.jacobian[p], torch.autograd.functional.jacobian(f, x).numpy(),
                                   rtol=1e-11, atol=1e-12)
        hessian = torch.autograd.functional.jacobian(
            lambda y: torch.autograd.functional.jacobian(f, y, create_graph=True), x).numpy()
        np.testing.assert_allclose(result.hessian[p], hessian, rtol=1e-10, atol=1e-11)


def test_average_is_a_constant_mean_and_log_softmax_outputs_take_the_negative_log_likelihood() -> None:
    """Average's 1/n is no parameter (fit would train it), so the graph's parameters are Keras'
    trainable weights; log_softmax outputs train with softmax_cross_entropy (their NLL) and refuse
    cross_entropy, which reads probabilities."""
    keras.utils.set_random_seed(3)
    model, forward = classifier()
    net = from_keras(model)
    numbers = sum(m.shape[0] * m.shape[1] for node in net.graph.nodes[1:] for m in node.params.values())
    assert numbers == sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 63
    X = np.random.default_rng(2).uniform(-1, 1, (6, 2))
    labels = np.array([0, 1, 2, 2, 1, 0])
    value, grads = symnet.compile_loss(net, "softmax_cross_entropy")(X, labels)
    logp = forward(torch.as_tensor(X))
    assert value == pytest.approx(float(-logp[np.arange(6), labels].mean()), rel=1e-12)
    assert sum(len(group) for group in grads.values()) == len(model.trainable_weights)
    (W, bias), h = _w(model, "out"), _dense(model, "h", torch.as_tensor(X), torch.tanh)
    mean = (_dense(model, "p", h) + _dense(model, "q", h, torch.tanh)) / 2
    W.requires_grad_(True)
    nll = -torch.log_softmax(mean @ W + bias, dim=-1)[np.arange(6), labels].mean()
    nll.backward()
    (dense_out,) = [node.name for node in net.graph.nodes if node.op == "dense" and node.width == 3 and
                    node.inputs == ("avg",)]
    np.testing.assert_allclose(grads[dense_out]["W"], W.grad.numpy(), rtol=1e-11, atol=1e-14)
    with pytest.raises(symnet.InputError, match="log-probabilities"):
        symnet.compile_loss(net, "cross_entropy")(X, labels)


def test_lambda_layers_are_traced_or_given_and_a_files_lambda_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    def fourier(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):  # SymPy's trace: keras.ops cannot take a symbol
            return keras.ops.sin(t)
        marker.touch()
        return keras.ops.sin(t)

    x = keras.Input((2,))
    h = L.Dense(3, name="d")(x)
    doubled = L.Lambda(lambda t: t * 2, name="twice")(h)  # SymPy traces this one
    waves = L.Lambda(fourier, name="waves")(h)
    model = keras.Model(x, L.Dense(1, name="o")(L.Add(name="a")([doubled, waves])))
    with pytest.raises(symnet.ActivationError, match=r"layer 'waves' \(Lambda\): .*activations=\{'waves': "):
        from_keras(model)
    net = from_keras(model, activations={"waves": "sin(x)"})  # the check compares it with Keras
    with pytest.raises(ImportMismatchError, match=r"layer 'waves' gives values that differ"):
        from_keras(model, activations={"waves": "cos(x)"})
    marker.unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(tmp_path / "lam.keras")
    with pytest.raises(symnet.io.UntrustedCodeError, match=r"layer 'twice' \(Lambda\) .* symnet never runs code"):
        load_keras(tmp_path / "lam.keras")
    assert load_keras(tmp_path / "lam.keras", activations={"twice": "2*x", "waves": "sin(x)"}) == net
    assert not marker.exists()  # nothing from the file ran


def test_foreign_modules_are_refused_without_importing_them(tmp_path: Path) -> None:
    residual_model, _ = residual()
    residual_model.save(tmp_path / "ok.keras")
    with zipfile.ZipFile(tmp_path / "ok.keras") as archive:
        config = json.loads(archive.read("config.json"))
        weights = archive.read("model.weights.h5")
    config["config"]["layers"][2]["module"] = "os"  # a file naming a module to import
    evil = tmp_path / "evil.keras"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights)
    with pytest.raises(UnsupportedLayerError, match=r"evil\.keras: layer 'block' \(Dense\) from module 'os' is not "
                                                    r"supported; .* never imports a module a file names"):
        load_keras(evil)


def test_normalization_invert_is_refused() -> None:
    x = keras.Input((2,))
    model = keras.Model(x, L.Dense(1)(L.Add()([x, L.Normalization(mean=0.0, variance=1.0, invert=True)(x)])))
    with pytest.raises(UnsupportedLayerError, match=r"invert=True \(denormalisation\) is not supported"):
        from_keras(model)


def test_prelus_alpha_is_a_parameter_of_the_graph_and_max_min_kinks_are_reported() -> None:
    keras.utils.set_random_seed(3)
    model, _ = piecewise()
    net = from_keras(model)
    scales = [node.params["s"] for node in net.graph.nodes if node.op == "scale"]
    alpha = np.asarray(model.get_layer("pr").alpha.value.detach().cpu().numpy(), dtype=np.float64)
    assert [np.asarray(s, dtype=np.float64).ravel().tolist() for s in scales] == [alpha.tolist(), [0.3]]
    x = keras.Input((2,))
    twin = keras.Model(x, L.Maximum(name="m")([L.Dense(1, name="u")(x), L.Dense(1, name="v")(x)]))
    net = from_keras(twin)
    tie = symnet.kinks(net, X=[[0.0, 0.0], [1.0, -1.0]], tol=1e-12)  # zero biases: u = v = 0 at the origin
    assert tie.near.tolist() == [True, False]
    u, v = (np.asarray(twin.get_layer(k).kernel.value.detach().cpu().numpy()).ravel() for k in "uv")
    gradient = symnet.compile(net, "jacobian", backend="numpy")(np.zeros((1, 2))).jacobian[0, 0]
    np.testing.assert_allclose(gradient, (u + v) / 2, rtol=1e-13)  # relu'(0) = 1/2: the mean slope, as torch.maximum
    assert [hit.node for hit in tie.hits] == ["a1"] * int(tie.near.sum())  # the one relu of max(u, v)


def test_a_sequential_model_with_prelu_is_read_as_a_graph(tmp_path: Path) -> None:
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((2,)), L.Dense(3, name="d"),
                              L.PReLU(alpha_initializer=keras.initializers.Constant([0.1, 0.2, -0.5]), name="p"),
                              L.Dense(1, name="o")])
    net = from_keras(model)
    model.save(tmp_path / "seq.keras")
    assert load_keras(tmp_path / "seq.keras") == net
    X = np.random.default_rng(0).normal(size=(6, 2))
    want = np.asarray(model(torch.as_tensor(X)).detach().cpu().numpy())  # float32 matrix products
    np.testing.assert_allclose(symnet.compile(net, "value", backend="numpy")(X).value, want, rtol=1e-5, atol=1e-6)
    assert [n.op for n in net.graph.nodes] == ["input", "dense", "activation", "sub", "scale", "add", "dense"]


def _edited(tmp_path: Path, model: Any, layer: str, **changes: Any) -> Path:
    """``model`` saved, then ``layer``'s config changed in the file (what Keras would not build live)."""
    model.save(tmp_path / "ok.keras")
    with zipfile.ZipFile(tmp_path / "ok.keras") as archive:
        config = json.loads(archive.read("config.json"))
        weights = archive.read("model.weights.h5")
    next(entry for entry in config["config"]["layers"] if entry["config"]["name"] == layer)["config"].update(changes)
    path = tmp_path / "edited.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights)
    return path


@pytest.mark.parametrize("layer, changes, message", [
    ("pr", {"shared_axes": [2]}, r"layer 'pr' \(PReLU\): shared_axes=\[2\]; on symnet's \(N, features\) tensors PReLU "
                                 r"has one alpha per feature \(shared_axes=None\) or one for all features"),
    ("pr_shared", {"shared_axes": [1, 2]}, r"layer 'pr_shared' \(PReLU\): shared_axes=\[1, 2\]"),
    ("dot", {"axes": [1, 2]}, r"layer 'dot' \(Dot\): axes=\[1, 2\]; on symnet's \(N, features\) tensors Dot multiplies "
                              r"over the features: axes=1 or -1"),
    ("dot", {"axes": 0}, r"layer 'dot' \(Dot\): axes=0;"),
    ("unit", {"axis": 0}, r"layer 'unit' \(UnitNormalization\): axis 0; symnet's tensors are \(N, features\)"),
])
def test_prelu_dot_and_unit_norm_over_other_axes_are_refused(tmp_path: Path, layer: str, changes: dict,
                                                             message: str) -> None:
    keras.utils.set_random_seed(3)
    model, _ = piecewise()
    with pytest.raises(UnsupportedLayerError, match=message):
        load_keras(_edited(tmp_path, model, layer, **changes))


def test_a_live_unit_normalization_over_the_points_is_refused() -> None:
    x = keras.Input((3,))
    model = keras.Model(x, L.Dense(1, name="o")(L.UnitNormalization(axis=0, name="unit")(x)))
    with pytest.raises(UnsupportedLayerError, match=r"layer 'unit' \(UnitNormalization\): axis 0; symnet's tensors"):
        from_keras(model)


def test_the_docs_list_the_keras_layer_table_as_generated() -> None:
    text = (Path(__file__).parents[1] / "docs" / "io.md").read_text()
    block = text.split("<!-- keras_layer_table: start -->\n", 1)[1].split("\n<!-- keras_layer_table: end -->", 1)[0]
    assert block == layer_table(), "docs/io.md's Keras layer table is stale: paste keras_graph.layer_table() there"


@pytest.mark.parametrize("name", ["residual", "gated", "deeponet"])
def test_legacy_h5_full_model_files(name: str, tmp_path: Path) -> None:
    import warnings

    keras.utils.set_random_seed(3)
    model, _ = MODELS[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras: HDF5 "is considered legacy"
        model.save(tmp_path / "model.h5")
    assert load_keras(tmp_path / "model.h5") == from_keras(model)
    assert symnet.load(tmp_path / "model.h5") == from_keras(model)


def test_a_keras_2_sequential_h5_is_read(tmp_path: Path) -> None:
    """The Keras 2 config format: the first layer carries batch_input_shape, inbound nodes are nested lists."""
    import h5py

    config = {"class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"class_name": "Dense", "config": {"name": "d0", "units": 2, "activation": "tanh", "use_bias": True,
                                           "batch_input_shape": [None, 1]}},
        {"class_name": "Dense", "config": {"name": "d1", "units": 1, "activation": "linear", "use_bias": True}}]}}
    rng = np.random.default_rng(0)
    arrays = {"d0": [rng.normal(size=(1, 2)), rng.normal(size=2)], "d1": [rng.normal(size=(2, 1)), rng.normal(size=1)]}
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        root = f.create_group("model_weights")
        for layer, (kernel, bias) in arrays.items():
            group = root.create_group(layer)
            group.attrs["weight_names"] = [f"{layer}/kernel:0".encode(), f"{layer}/bias:0".encode()]
            group.create_dataset(f"{layer}/kernel:0", data=kernel)
            group.create_dataset(f"{layer}/bias:0", data=bias)
    net = load_keras(path)
    assert net == symnet.Network.from_weights([arrays["d0"][0], arrays["d1"][0]], [arrays["d0"][1], arrays["d1"][1]],
                                              ["tanh", "linear"])
    with h5py.File(tmp_path / "weights_only.h5", "w") as f:
        f.create_group("model_weights")
    with pytest.raises(symnet.io.FileFormatError, match=r"weights_only\.h5: an HDF5 file without a model_config"):
        load_keras(tmp_path / "weights_only.h5")


def _chain_config(n: int, reverse: bool) -> dict[str, Any]:
    layers = [{"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [None, 2]}}]
    previous = "in"
    for k in range(n):
        layers.append({"class_name": "Dropout", "config": {"name": f"d{k}", "rate": 0.1},
                       "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                                    "config": {"keras_history": [previous, 0, 0]}}], "kwargs": {}}]})
        previous = f"d{k}"
    layers.append({"class_name": "Dense", "config": {"name": "out", "units": 1},
                   "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                                "config": {"keras_history": [previous, 0, 0]}}], "kwargs": {}}]})
    body = layers[1:][::-1] if reverse else layers[1:]
    return {"class_name": "Functional", "config": {"name": "m", "layers": [layers[0], *body],
                                                    "input_layers": [["in", 0, 0]], "output_layers": [["out", 0, 0]]}}


def test_calls_listed_out_of_order_are_resolved_in_linear_work(monkeypatch: pytest.MonkeyPatch) -> None:
    from symnet.io import keras_graph

    calls = []
    original = keras_graph._node_refs
    monkeypatch.setattr(keras_graph, "_node_refs", lambda node, where: calls.append(1) or original(node, where))
    weights = {"out": [np.ones((2, 1)), np.zeros(1)]}
    net, _ = keras_graph.graph_from_config(_chain_config(500, reverse=True), lambda name, here, wanted: weights[name],
                                           "m", lambda name, kind, here, spec: symnet.activations.get("linear"))
    assert net.n_inputs == 2 and len(calls) == 501  # each call's inputs read once, not once per pass


def test_layer_configurations_of_the_wrong_type_are_named() -> None:
    from symnet.io import keras_graph

    config = _chain_config(1, reverse=False)
    config["config"]["layers"][1] = {"class_name": "LeakyReLU", "config": {"name": "d0", "negative_slope": "x"},
                                     "inbound_nodes": config["config"]["layers"][1]["inbound_nodes"]}
    with pytest.raises(symnet.io.FileFormatError, match=r"layer 'd0' \(LeakyReLU\): symnet cannot read this layer's "
                                                        r"configuration"):
        keras_graph.graph_from_config(config, lambda *a: [], "m", lambda *a: symnet.activations.get("linear"))
    config["config"]["layers"][1]["class_name"], config["config"]["layers"][1]["config"] = "ReLU", {
        "name": "d0", "max_value": "6"}
    with pytest.raises(symnet.io.FileFormatError, match=r"relu's max_value is '6', not a number"):
        keras_graph.graph_from_config(config, lambda *a: [], "m", lambda *a: symnet.activations.get("linear"))


def test_lambda_layers_that_keras_cannot_describe_or_that_change_the_batch_are_errors() -> None:
    x = keras.Input((3,))
    batch_sum = keras.Model(x, L.Lambda(lambda t: keras.ops.sum(t, axis=0, keepdims=True), name="bs")(x))
    with pytest.raises(ImportMismatchError, match=r"layer 'bs' gives Keras values of shape|model's outputs have shapes"):
        from_keras(batch_sum, activations={"bs": "x"})
    with pytest.raises(symnet.ActivationError, match=r"SymPy cannot differentiate|cannot be traced"):
        from_keras(keras.Model(x, L.Lambda(lambda t: t % 2.0, name="mod")(x)))

    class Twice:
        def __call__(self, t: Any) -> Any:
            return t * 2

    with pytest.raises(UnsupportedLayerError, match=r"Keras cannot describe the model's layers"):
        from_keras(keras.Model(x, L.Lambda(Twice())(x)))


def test_an_override_for_a_layer_that_is_not_there_is_an_error() -> None:
    x = keras.Input((2,))
    model = keras.Model(x, L.Dense(2, name="d")(L.Lambda(lambda t: t * 2, name="q")(x)))
    with pytest.raises(symnet.ActivationError, match=r"activation for layer 'nosuch': no layer of that name"):
        from_keras(model, activations={"nosuch": "x"})


def normalised_without_layer_norm() -> tuple[Any, None]:
    """``normalised`` less its LayerNormalization, which Keras 3.15's ONNX exporter cannot export
    on the torch backend (torch.onnx: "Failed to export a node ... because it is not constant",
    a shape LayerNormalization reads at run time); ONNX's LayerNormalization op is tested on
    PyTorch's exports (tests/test_io_onnx.py)."""
    x = keras.Input((3,))
    n = L.Normalization(mean=[0.5, -1.0, 2.0], variance=[4.0, 0.25, 1.0], name="norm")(x)
    h = L.Dense(4, activation="silu", name="d1")(n)
    b = L.BatchNormalization(name="bn")(h)
    c = L.Concatenate(name="cat")([b, L.Dropout(0.5, name="drop")(n)])
    model = keras.Model(x, [L.Dense(1, name="head1")(c), L.Dense(2, activation="softplus", name="head2")(c)])
    model.get_layer("bn").moving_mean.assign(np.linspace(-0.3, 0.3, 4))
    model.get_layer("bn").moving_variance.assign(np.linspace(0.5, 2.0, 4))
    return model, None


def softsign_extrema() -> tuple[Any, None]:
    """``piecewise``'s PReLU, Maximum, Minimum and UnitNormalization layers and a softsign (ONNX Relu,
    Neg, Mul, Max, Min, Sqrt, Abs and Div by a tensor)."""
    x = keras.Input((3,))
    a, b, c = L.Dense(4, name="a")(x), L.Dense(4, activation="tanh", name="b")(x), L.Dense(4, name="c")(x)
    p = L.PReLU(alpha_initializer=keras.initializers.RandomUniform(0.1, 0.6), name="pr")(a)
    q = L.PReLU(shared_axes=[1], alpha_initializer=keras.initializers.Constant(0.3), name="pr_shared")(b)
    high, low = L.Maximum(name="high")([p, q, c]), L.Minimum(name="low")([p, c])
    unit = L.UnitNormalization(name="unit")(L.Dense(4, activation="softsign", name="soft")(high))
    return keras.Model(x, [L.Dense(1, name="head1")(low), L.Dense(2, name="head2")(unit)]), None


def reshaped() -> tuple[Any, None]:
    """Flatten and Reshape((4,)) -- exported as Reshapes to a shape computed from the batch size
    (Shape, Gather, Unsqueeze, Concat) -- and Dot of their results (a batched (N, 1, 4) @ (N, 4, 1)
    MatMul between Unsqueezes, then a Squeeze)."""
    x = keras.Input((3,))
    flat = L.Flatten(name="flat")(L.Dense(4, activation="tanh", name="a")(x))
    back = L.Reshape((4,), name="back")(L.Dense(4, activation="sigmoid", name="b")(flat))
    dot = L.Dot(axes=1, name="dot")([flat, back])
    return keras.Model(x, [dot, L.Dense(2, name="out")(L.Reshape((4,), name="again")(back))]), None


ONNX_MODELS = {"residual": residual, "gated": gated, "normalised": normalised_without_layer_norm,
               "deeponet": deeponet, "piecewise": piecewise, "extrema": softsign_extrema, "reshaped": reshaped,
               "classifier": classifier}


@pytest.mark.parametrize("name", sorted(ONNX_MODELS))
def test_keras_onnx_exports_import_as_the_live_model(name: str, tmp_path: Path) -> None:
    """Keras' own ONNX exporter (on the torch backend, torch.onnx underneath) on the functional
    zoo: ``from_onnx`` reads the file into the network ``from_keras`` builds from the live model --
    value, gradient, Hessian and Laplacian agree to round-off -- and onnxruntime runs the file to
    the same values.  Float32 models: Keras multiplies float64 matrices in float32, and its
    exporter writes those products' weights as float32, so a float64 model's file holds rounded
    weights (as its forward pass uses) and would differ from the live import by 1e-7."""
    import onnx
    import onnxruntime
    from symnet.io.onnx import from_onnx

    old = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    try:
        keras.utils.set_random_seed(3)
        model, _ = ONNX_MODELS[name]()
    finally:
        keras.config.set_floatx(old[0])
        keras.config.set_dtype_policy(old[1])
    live = from_keras(model)
    X = np.random.default_rng(1).uniform(-1.5, 1.5, (5, live.n_inputs))
    widths = [int(t.shape[-1]) for t in model.inputs]
    columns = np.split(X, np.cumsum(widths)[:-1], axis=1)
    tensors = [c.astype(np.float32) for c in columns]
    model(tensors if len(tensors) > 1 else tensors[0])  # Keras exports only a model that was called
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.onnx's tracer warnings about Keras' own shape code
        model.export(str(path), format="onnx", verbose=False)
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    if name in ("piecewise", "reshaped"):  # Dot: a batched MatMul of Unsqueezed factors, squeezed back
        assert "Unsqueeze" in ops and "Squeeze" in ops
    if name == "reshaped":  # Flatten, Reshape: to a shape computed from the batch size
        assert {"Shape", "Gather", "Concat", "Reshape"} <= set(ops)
    net = from_onnx(path)
    words = ("value", "jacobian", "hessian", "laplacian")
    got = symnet.compile(net, words, backend="numpy")(X).as_dict()
    want = symnet.compile(live, words, backend="numpy")(X).as_dict()
    # the exporter folds BatchNormalization's gamma / sqrt(variance + eps) and Normalization's
    # sqrt(variance) into float32 constants: rounded once, so 1e-6 there and round-off elsewhere
    rtol = 2e-6 if name == "normalised" else 1e-12
    for word in words:
        np.testing.assert_allclose(got[word], want[word], rtol=rtol, atol=rtol / 10, err_msg=word)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: c.astype(np.float64 if "double" in i.type else np.float32)
             for i, c in zip(session.get_inputs(), columns)}
    outputs = np.concatenate([np.asarray(o).reshape(len(X), -1) for o in session.run(None, feeds)], axis=1)
    np.testing.assert_allclose(outputs, want["value"], rtol=1e-5, atol=1e-6)


def test_reshape_that_keeps_the_features_is_read_from_files_and_others_are_refused(tmp_path: Path) -> None:
    keras.utils.set_random_seed(2)
    model, _ = reshaped()
    net = from_keras(model)
    model.save(tmp_path / "reshaped.keras")
    assert load_keras(tmp_path / "reshaped.keras") == net
    X = np.random.default_rng(0).normal(size=(4, 3))
    want = np.concatenate([keras.ops.convert_to_numpy(o) for o in model(X)], axis=1)
    # Keras multiplies float64 matrices in float32 (see test_keras_onnx_exports_import_as_the_live_model)
    np.testing.assert_allclose(symnet.compile(net, "value", backend="numpy")(X).value, want, rtol=1e-6, atol=1e-7)
    for target in ([2, 2], [3]):
        with pytest.raises(UnsupportedLayerError, match=r"layer 'back' \(Reshape\): target_shape \[\d(, \d)?\] of an "
                                                        r"\(N, 4\) tensor; symnet reads Reshape\(\(4,\)\) and "
                                                        r"Reshape\(\(-1,\)\)"):
            load_keras(_edited(tmp_path, model, "back", target_shape=target))
