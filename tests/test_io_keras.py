"""Import from Keras 3 (torch backend): live models and .keras files, which are read without running their code.

Keras 3 computes ``matmul`` of two float64 tensors in float32 (its dtype rules follow JAX's
default, ``BIT64_TO_BIT32_DTYPE``), so ``model.predict`` is float32-accurate even for a
float64 model.  The 1e-12 comparisons therefore use :func:`keras_forward`: the same layers
with Keras's own activation functions, the affine maps done in float64 by torch; and
``model.predict`` is checked against it to float32 accuracy.
"""

from __future__ import annotations

import inspect
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import symnet  # noqa: E402
from symnet.io import (FileFormatError, UnsupportedLayerError, UntrustedCodeError, detect, from_keras,  # noqa: E402
                       load_keras, read_network)
from symnet.io.keras import KERAS_DEFAULTS  # noqa: E402

# Keras 3.15's variables warn under numpy 2 whenever Keras itself turns them into arrays (predict, save)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

POINTS = np.random.default_rng(11).normal(size=(4, 3))
STORY_003 = ([np.array([[-1.3284513]]), np.array([-1.328055]), np.array([[0.5667597]]), np.array([1.0003909])])


@pytest.fixture(autouse=True, scope="module")
def float64() -> Iterator[None]:
    """Float64 Keras layers for this module only (the global dtype policy sticks unless reset too)."""
    old = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_floatx(old[0])
    keras.config.set_dtype_policy(old[1])


def keras_forward(model: Any, x: torch.Tensor) -> torch.Tensor:
    """The model on points ``x`` (N, d) in float64: Keras's layers and activations, float64 affine maps."""
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("InputLayer", "Dropout"):
            continue
        if kind == "Dense":
            kernel, *bias = (w.value.detach().double() for w in layer.weights)
            x = layer.activation(x @ kernel + (bias[0] if bias else 0.0))
        else:
            x = layer(x)
    return x


def assert_agrees(net: symnet.Network, model: Any, X: np.ndarray = POINTS) -> None:
    result = symnet.compile(net, ("value", "jacobian", "hessian"), backend="numpy")(X)
    np.testing.assert_allclose(result.value, model.predict(X, verbose=0), rtol=1e-5, atol=1e-6)  # float32 matmul
    for p, x in enumerate(torch.tensor(X)):
        def f(y: torch.Tensor) -> torch.Tensor:
            return keras_forward(model, y[None, :])[0]

        np.testing.assert_allclose(result.value[p], f(x).detach().numpy(), rtol=1e-12, atol=1e-12)
        jacobian = torch.autograd.functional.jacobian(f, x).numpy()
        np.testing.assert_allclose(result.jacobian[p], jacobian, rtol=1e-12, atol=1e-12)
        hessian = torch.autograd.functional.jacobian(
            lambda y: torch.autograd.functional.jacobian(f, y, create_graph=True), x).numpy()
        np.testing.assert_allclose(result.hessian[p], hessian, rtol=1e-11, atol=1e-12)


def save_quietly(model: Any, path: Path) -> Path:
    """model.save, with Keras's warning about lambdas (it serialises their bytecode) expected."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*lambda", category=UserWarning)
        model.save(path)
    return path


def story_003(activation: Any = lambda x: x**2) -> Any:
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, activation=activation), keras.layers.Dense(1)])
    model.set_weights(STORY_003)
    return model


def test_keras_defaults_are_those_of_the_installed_keras() -> None:
    for name, defaults in KERAS_DEFAULTS.items():
        signature = inspect.signature(getattr(keras.activations, name)).parameters
        assert {k: signature[k].default for k in defaults} == defaults
    assert keras.layers.LeakyReLU().negative_slope == 0.3  # the layer's default differs: read from the config


@pytest.mark.parametrize("activation, name", [
    ("linear", "linear"), ("relu", "relu"), ("sigmoid", "sigmoid"), ("tanh", "tanh"), ("softplus", "softplus"),
    ("silu", "silu"), ("swish", "silu"), ("gelu", "gelu"), ("elu", "elu(alpha=1.0)"),
    ("leaky_relu", "leaky_relu(alpha=0.2)"), ("exponential", "exp"), (keras.activations.elu, "elu(alpha=1.0)"),
    ("celu", "elu(alpha=1.0)"),  # celu(x, 1) is elu(x, 1); Keras' own forward pass is the check
    (None, "linear"),
])
def test_dense_activations_agree(activation: Any, name: str) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation=activation), keras.layers.Dense(2)])
    net = from_keras(model)
    assert net.activations[0].name == name
    assert_agrees(net, model)


def test_activation_layers_and_a_softmax_output(tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((3,)), layers.Dense(4), layers.LeakyReLU(negative_slope=0.1), layers.Dense(4),
        layers.ReLU(negative_slope=0.05), layers.Dense(3, activation="tanh"), layers.Dropout(0.3), layers.Dense(3),
        layers.ELU(alpha=0.7), layers.Dense(2), layers.Activation("softmax"),
    ])
    net = from_keras(model)
    assert [a.name for a in net.activations] == ["leaky_relu(alpha=0.1)", "leaky_relu(alpha=0.05)", "tanh",
                                                 "elu(alpha=0.7)", "softmax"]
    assert_agrees(net, model)
    assert load_keras(save_quietly(model, tmp_path / "layers.keras")) == net


def test_a_functional_chain_equals_its_sequential_twin(tmp_path: Path) -> None:
    keras.utils.set_random_seed(2)
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, activation="gelu", name="hidden")(inputs)
    hidden = keras.layers.Activation("tanh")(hidden)  # folded into the layer before: tanh(gelu(z))
    outputs = keras.layers.Dense(1, name="out")(hidden)
    model = keras.Model(inputs, outputs)
    net = from_keras(model)
    assert str(net.activations[0].form) == "tanh(t*(erf(sqrt(2)*t/2) + 1)/2)"
    assert_agrees(net, model)
    assert load_keras(save_quietly(model, tmp_path / "functional.keras")) == net


def test_story_003_lambda_activation_from_a_live_model() -> None:
    net = from_keras(story_003())
    assert {k: round(float(v), 7) for k, v in symnet.coefficients(net).items()} == \
        {(2,): 1.0002078, (1,): 1.9998188, (0,): 2.000002}


def test_story_003_from_a_keras_file(tmp_path: Path) -> None:
    path = save_quietly(story_003(), tmp_path / "parabola.keras")
    assert detect(path) == "keras"
    with pytest.raises(UntrustedCodeError) as caught:
        load_keras(path)
    message = str(caught.value)
    for part in ("parabola.keras: layer 'dense", "(Dense, Dense index 0) has a Python lambda activation",
                 "symnet never runs code from a file", 'activations={0: "x**2"}', "--activation 0=x**2",
                 "trust=True (--trust)"):
        assert part in message
    net = load_keras(path, activations={0: "x**2"})
    assert net == from_keras(story_003())
    assert read_network(path, activations={"0": "x**2"}) == net
    assert {k: round(float(v), 7) for k, v in symnet.coefficients(net).items()} == \
        {(2,): 1.0002078, (1,): 1.9998188, (0,): 2.000002}


def test_a_lambda_in_a_file_never_runs_unless_trusted(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    def trap(x: Any, marker: str = str(marker)) -> Any:  # a lambda's bytecode and defaults travel in the file
        open(marker, "w").close()
        return x**2

    path = save_quietly(story_003(lambda x, m=str(marker): (open(m, "w").close(), x**2)[1]),
                        tmp_path / "trap.keras")
    marker.unlink(missing_ok=True)
    with pytest.raises(UntrustedCodeError, match="lambda"):
        load_keras(path)
    assert read_network(path, activations={0: "x**2"}) == from_keras(story_003())
    assert not marker.exists()
    trusted = load_keras(path, trust=True)  # rebuilds the lambda from bytecode and traces it: runs it
    assert marker.exists()
    assert trusted == from_keras(story_003())
    assert trap  # (the named twin above documents what the lambda does)


def test_a_custom_function_is_traced_live_and_overridden_from_a_file(tmp_path: Path) -> None:
    def cube(x: Any) -> Any:
        return x**3

    model = story_003(cube)
    assert str(from_keras(model).activations[0].form) == "t**3"
    path = save_quietly(model, tmp_path / "cube.keras")
    with pytest.raises(UntrustedCodeError, match=r"custom activation 'cube', whose Python code is not in the file"):
        load_keras(path)
    with pytest.raises(UntrustedCodeError) as caught:
        load_keras(path, trust=True)  # trust cannot help: the code is not there
    assert "trust" not in str(caught.value)
    assert load_keras(path, activations={model.layers[0].name: "x**3"}) == from_keras(model)


def test_an_untraceable_callable_needs_an_expression() -> None:
    model = story_003(lambda x: keras.ops.square(x))
    with pytest.raises(symnet.ActivationError, match=r"layer 'dense.*cannot be traced by SymPy.*"
                                                     r"from_keras\(model, activations=\{0: \"x\*\*2\"\}\)"):
        from_keras(model)
    net = from_keras(model, activations={0: "x**2"})
    assert_agrees(net, model, POINTS[:, :1])


def test_an_unknown_keras_activation_is_named_and_can_be_replaced(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, activation="squareplus"), keras.layers.Dense(1)])
    with pytest.raises(UnsupportedLayerError, match=r"layer 'dense.*Keras activation 'squareplus' has no symnet equiv"):
        from_keras(model)
    path = save_quietly(model, tmp_path / "squareplus.keras")
    with pytest.raises(UnsupportedLayerError, match=r"squareplus\.keras: layer 'dense.*'squareplus'"):
        load_keras(path)
    net = load_keras(path, activations={0: "(x + sqrt(x**2 + 4))/2"})
    assert_agrees(net, model, POINTS[:, :1] * 5)


@pytest.mark.parametrize("activation, name", [
    ("selu", "selu"), ("mish", "mish"), ("softsign", "softsign"), ("relu6", "relu6"), ("hard_sigmoid", "hard_sigmoid"),
    ("hard_tanh", "hardtanh"), (lambda: keras.layers.ReLU(max_value=2.5), "hardtanh(min_val=0.0, max_val=2.5)"),
])
def test_keras_activations_with_a_symnet_form(activation: Any, name: str, tmp_path: Path) -> None:
    layers = [keras.layers.Dense(3, activation=activation)] if isinstance(activation, str) else \
        [keras.layers.Dense(3), activation()]
    model = keras.Sequential([keras.Input((3,)), *layers, keras.layers.Dense(1)])
    net = from_keras(model)
    assert net.layers[0].activation.name == name
    path = save_quietly(model, tmp_path / "model.keras")
    assert load_keras(path) == net
    if name == "hard_sigmoid":  # Keras' slope is 1/6 rounded to float32: compare values only
        values = symnet.compile(net, "value", backend="numpy")(POINTS * 3).value
        np.testing.assert_allclose(values, model.predict(POINTS * 3, verbose=0), rtol=1e-5, atol=1e-6)
    else:
        assert_agrees(net, model, POINTS * 3)


@pytest.mark.parametrize("make, message", [
    (lambda L: [L.Dense(2), L.GroupNormalization(groups=1)], r"layer 'group_normalization.*' \(GroupNormalization\) "
                                                             r"is not supported"),
    (lambda L: [L.Dense(2), L.ReLU(threshold=0.5)], r"relu with max_value=None, threshold=0.5 and negative_slope=0.0 "
                                                    r"is not supported"),
    (lambda L: [L.Activation("tanh"), L.Dense(2)], r"layer 'activation.*' \(Activation\) comes before any Dense"),
    (lambda L: [L.Dense(2, activation="softmax"), L.Activation("tanh")], r"tanh after softmax cannot be written"),
    (lambda L: [L.Dense(2), L.Softmax(axis=0)], r"Softmax over axis 0 is not supported"),
])
def test_unsupported_layers_are_named(make: Any, message: str, tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((2,)), *make(keras.layers)])
    with pytest.raises(UnsupportedLayerError, match=message):
        from_keras(model)
    with pytest.raises(UnsupportedLayerError, match=message):
        load_keras(save_quietly(model, tmp_path / "m.keras"))


def test_models_that_are_not_chains_are_read_as_graphs(tmp_path: Path) -> None:
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(2)(inputs)
    model = keras.Model(inputs, keras.layers.Add()([hidden, keras.layers.Dense(2)(hidden)]))
    net = from_keras(model)  # checked against the model
    assert not net.is_chain and load_keras(save_quietly(model, tmp_path / "skip.keras")) == net
    first, second = keras.Input((1,)), keras.Input((1,))
    two = keras.Model([first, second], keras.layers.Concatenate()([first, second]))
    assert from_keras(two, check=False).n_inputs == 2  # Keras' float32 of a float64 input: see the graph tests

    class Custom(keras.Model):
        def call(self, x: Any) -> Any:
            return x

    with pytest.raises(UnsupportedLayerError, match=r"is a subclassed Custom, whose call\(\) symnet cannot read"):
        from_keras(Custom())
    with pytest.raises(UnsupportedLayerError, match=r"is not built: give it a keras.Input"):
        from_keras(keras.Sequential([keras.layers.Dense(1)]))
    with pytest.raises(UnsupportedLayerError, match=r"from_keras needs a keras.Model .*, not Dense"):
        from_keras(keras.layers.Dense(1))


def test_override_errors_name_the_layer() -> None:
    model = story_003()
    with pytest.raises(symnet.ActivationError, match=r"activation for layer 'nope': no such layer; give a layer "
                                                     r"name \(dense.*\) or a 0-based index"):
        from_keras(model, activations={"nope": "x"})
    with pytest.raises(symnet.ActivationError, match=r"activation for layer 5: there are 2 Dense layers"):
        from_keras(model, activations={5: "x"})
    with pytest.raises(symnet.ActivationError, match=r"Dense index 0\): expression \"x\^2\": unexpected character"):
        from_keras(model, activations={0: "x^2"})


# --- damaged .keras files ------------------------------------------------------------------------------


def rewrite(path: Path, target: Path, change_config: Any = None, weights: bytes | None = None) -> Path:
    """A copy of a .keras archive with its config or weights changed."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as out:
        for name in source.namelist():
            data = source.read(name)
            if name == "config.json" and change_config is not None:
                config = json.loads(data)
                change_config(config)
                data = json.dumps(config).encode()
            if name == "model.weights.h5" and weights is not None:
                data = weights
            out.writestr(name, data)
    return target


@pytest.fixture(scope="module")
def small_keras(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(1)])
    return save_quietly(model, tmp_path_factory.mktemp("keras") / "small.keras")


def test_nan_weights_are_refused(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.set_weights([np.array([[np.nan]]), np.zeros(1)])
    with pytest.raises(FileFormatError, match=r"nan\.keras: layer 'dense.*kernel\[0, 0\] is nan; weights must be"):
        load_keras(save_quietly(model, tmp_path / "nan.keras"))


def test_weights_that_do_not_fit_the_config(small_keras: Path, tmp_path: Path) -> None:
    def more_units(config: dict) -> None:
        config["config"]["layers"][1]["config"]["units"] = 5

    with pytest.raises(FileFormatError, match=r"units\.keras: layer 'dense.*kernel has shape \(2, 3\) but the layer "
                                              r"has 5 units"):
        load_keras(rewrite(small_keras, tmp_path / "units.keras", more_units))

    def no_bias(config: dict) -> None:
        config["config"]["layers"][1]["config"]["use_bias"] = False

    with pytest.raises(FileFormatError, match=r"has 2 weight arrays in model.weights.h5; expected a kernel"):
        load_keras(rewrite(small_keras, tmp_path / "bias.keras", no_bias))


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:300]), r"not a \.keras archive, or a damaged or truncated one"),
    (lambda p: p.write_text("hello"), r"not a \.keras archive"),
])
def test_damaged_archives(small_keras: Path, tmp_path: Path, damage: Any, message: str) -> None:
    path = tmp_path / "damaged.keras"
    path.write_bytes(small_keras.read_bytes())
    damage(path)
    with pytest.raises(FileFormatError, match=r"damaged\.keras: " + message):
        load_keras(path)


def test_archive_parts_missing_or_garbled(small_keras: Path, tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match=r"weights\.keras: model.weights.h5 is not a readable HDF5 file"):
        load_keras(rewrite(small_keras, tmp_path / "weights.keras", weights=b"not hdf5"))
    target = tmp_path / "noconfig.keras"
    with zipfile.ZipFile(target, "w") as out:
        out.writestr("model.weights.h5", b"")
    with pytest.raises(FileFormatError, match=r"noconfig\.keras: not a \.keras archive \(no config.json\)"):
        load_keras(target)

    def garble(config: dict) -> None:
        config["class_name"] = "MyModel"

    with pytest.raises(UnsupportedLayerError, match=r"the model is a 'MyModel'; symnet reads Sequential"):
        load_keras(rewrite(small_keras, tmp_path / "custom.keras", garble))


def test_options_that_do_not_apply(small_keras: Path) -> None:
    with pytest.raises(FileFormatError, match="a .keras file stores its architecture"):
        read_network(small_keras, layer_activations=["tanh", "linear"])


# --- issue 15: checked against the live model; damaged and hostile files -------------------------------------


def test_an_override_that_is_not_the_models_activation_fails_the_check() -> None:
    model = story_003()
    with pytest.raises(symnet.ImportMismatchError, match=r"Keras model '.*': symnet's layer 0 \(layers 'dense.*' "
                                                         r"\(Dense\)\) computes other values than Keras's at the check "
                                                         r"points: largest difference .* pass check=False"):
        from_keras(model, activations={0: "x**3"})
    assert str(from_keras(model, activations={0: "x**3"}, check=False).activations[0].form) == "t**3"


def test_a_sequential_whose_call_is_not_its_layers_raises() -> None:
    class Doubled(keras.Sequential):
        def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
            return 2 * super().call(inputs, training=training, mask=mask)

    keras.utils.set_random_seed(4)
    model = Doubled([keras.Input((2,)), keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(1)])
    with pytest.raises(symnet.ImportMismatchError, match=r"every layer agrees with Keras, but the whole model's own "
                                                         r"call computes something else: .*Keras computes float64 "
                                                         r"matrix products in float32"):
        from_keras(model)
    assert from_keras(model, check=False).layer_sizes == (2, 3, 1)


def replace_weights(path: Path, target: Path, edit: Any) -> Path:
    """A copy of a .keras archive whose model.weights.h5 is rebuilt with ``edit(h5_file)`` applied."""
    import io

    import h5py

    with zipfile.ZipFile(path) as source:
        data = source.read("model.weights.h5")
    buffer = io.BytesIO(data)
    with h5py.File(buffer, "r+") as h5:
        edit(h5)
    return rewrite(path, target, weights=buffer.getvalue())


def test_a_dataset_declaring_huge_shapes_is_refused_before_reading(small_keras: Path, tmp_path: Path) -> None:
    def huge(shape: tuple[int, ...]) -> Any:
        def edit(h5: Any) -> None:
            del h5["layers/dense/vars/0"]
            h5["layers/dense/vars"].create_dataset("0", shape=shape, dtype="f8", chunks=(1, 1))  # nothing stored

        return edit

    with pytest.raises(FileFormatError, match=r"wide\.keras: layer 'dense.*kernel has shape \(2, 1000000000000\) but "
                                              r"the layer has 3 units: \(fan_in, 3\) is needed"):
        load_keras(replace_weights(small_keras, tmp_path / "wide.keras", huge((2, 10**12))))

    def many_units(config: dict) -> None:
        config["config"]["layers"][1]["config"]["units"] = 10**12

    consistent = rewrite(replace_weights(small_keras, tmp_path / "w.keras", huge((2, 10**12))),
                         tmp_path / "units.keras", many_units)
    with pytest.raises(FileFormatError, match=r"units\.keras: layer 'dense.*the kernel declares shape "
                                              r"\(2, 1000000000000\), more than the 100,000,000 numbers"):
        load_keras(consistent)


def test_a_kernel_that_does_not_chain_is_refused_before_reading(small_keras: Path, tmp_path: Path) -> None:
    def edit(h5: Any) -> None:
        del h5["layers/dense_1/vars/0"]
        h5["layers/dense_1/vars"].create_dataset("0", data=np.ones((7, 1)))

    with pytest.raises(FileFormatError, match=r"chain\.keras: layer 'dense.*' \(Dense, Dense index 1\): kernel has "
                                              r"shape \(7, 1\) but the Dense layer before has 3 units: \(3, 1\) is "
                                              r"needed"):
        load_keras(replace_weights(small_keras, tmp_path / "chain.keras", edit))


def test_a_bit_flip_in_a_compressed_member_is_a_file_format_error(small_keras: Path, tmp_path: Path) -> None:
    target = tmp_path / "flipped.keras"
    with zipfile.ZipFile(small_keras) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for name in source.namelist():
            out.writestr(name, source.read(name))
    data = bytearray(target.read_bytes())
    with zipfile.ZipFile(target) as archive:
        info = archive.getinfo("config.json")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start:start + 8] = b"\xff" * 8  # an invalid deflate block: zlib.error, not a BadZipFile
    target.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=r"flipped\.keras: not a \.keras archive, or a damaged or truncated one "
                                              r"\(error: .*"):
        load_keras(target)


def test_deeply_nested_config_json_is_a_file_format_error(small_keras: Path, tmp_path: Path) -> None:
    target = tmp_path / "deep.keras"
    with zipfile.ZipFile(small_keras) as source, zipfile.ZipFile(target, "w") as out:
        out.writestr("config.json", '{"a": ' * 100_000 + "1" + "}" * 100_000)
        out.writestr("model.weights.h5", source.read("model.weights.h5"))
    with pytest.raises(FileFormatError, match=r"deep\.keras: config.json is nested too deeply"):
        load_keras(target)


def test_a_config_declaring_a_huge_member_is_refused(small_keras: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import symnet.io.keras as reader

    monkeypatch.setattr(reader, "MAX_CONFIG_BYTES", 100)
    with pytest.raises(FileFormatError, match=r"small\.keras: config.json declares [\d,]+ bytes, more than the 100"):
        load_keras(small_keras)


def test_os_errors_are_not_relabelled_as_damaged_archives(small_keras: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_keras(tmp_path / "missing.keras")
    with pytest.raises(IsADirectoryError):
        load_keras(tmp_path)
    with pytest.raises(FileFormatError, match=r"hdf\.keras: model.weights.h5 is not a readable HDF5 file"):
        load_keras(rewrite(small_keras, tmp_path / "hdf.keras", weights=b"\x89HDF\r\n\x1a\n" + b"\0" * 200))


def test_planted_payloads_in_a_keras_file_run_nothing(small_keras: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    def foreign_layer(config: dict) -> None:  # a layer class from an arbitrary module
        config["config"]["layers"][1].update(module="os", class_name="system", registered_name="system")
        config["config"]["layers"][1]["config"]["command"] = f"touch {marker}"

    def lookalike_module(config: dict) -> None:
        config["config"]["layers"][1]["module"] = "keras_evil.layers"

    def foreign_activation(config: dict) -> None:
        config["config"]["layers"][1]["config"]["activation"] = {
            "module": "builtins", "class_name": "function", "config": "exec", "registered_name": "exec"}

    for change, error, message in [
        (foreign_layer, UnsupportedLayerError, r"layer 'dense.*' \(system\) from module 'os' is not supported; .* "
                                               r"never imports a module a file names"),
        (lookalike_module, UnsupportedLayerError, r"\(Dense\) from module 'keras_evil.layers' is not supported"),
        (foreign_activation, UntrustedCodeError, r"custom activation 'exec', whose Python code is not in the file"),
    ]:
        path = rewrite(small_keras, tmp_path / f"{change.__name__}.keras", change)
        for trust in (False, True):
            with pytest.raises(error, match=message):
                load_keras(path, trust=trust)

    # a Lambda layer: Keras stores its bytecode, which runs only with trust=True
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1),
                              keras.layers.Lambda(lambda x, m=str(marker): (open(m, "w").close(), x)[1],
                                                  name="lam")])
    marker.unlink(missing_ok=True)
    path = save_quietly(model, tmp_path / "lambda_layer.keras")
    with pytest.raises(UntrustedCodeError, match=r"layer 'lam' \(Lambda\) has a Python lambda .* symnet never "
                                                 r"runs code from a file"):
        load_keras(path)
    assert load_keras(path, activations={"lam": "x"}).n_outputs == 1
    assert not marker.exists()


def test_a_layer_called_twice_is_read_at_each_call(tmp_path: Path) -> None:
    act = keras.layers.Activation("tanh")  # model.layers lists a shared layer once
    inputs = keras.Input((2,))
    hidden = act(keras.layers.Dense(3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(act(keras.layers.Dense(3)(hidden))))
    net = from_keras(model)  # checked against model(x): a dropped call would differ
    assert [layer.activation.name for layer in net.layers] == ["tanh", "tanh", "linear"]
    assert load_keras(save_quietly(model, tmp_path / "shared.keras")) == net




def test_a_softmax_layer_over_axis_1_and_a_log_softmax_output(tmp_path: Path) -> None:
    """Softmax(axis=1) on (N, features) is over the features, as axis=-1; log_softmax as an activation."""
    keras.utils.set_random_seed(4)
    layers = keras.layers
    model = keras.Sequential([keras.Input((3,)), layers.Dense(3), layers.Softmax(axis=1), layers.Dense(3),
                              layers.Activation("log_softmax")])
    net = from_keras(model)
    assert [a.name for a in net.activations] == ["softmax", "log_softmax"]
    assert_agrees(net, model)
    assert load_keras(save_quietly(model, tmp_path / "soft.keras")) == net
