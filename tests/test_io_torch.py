"""Import from PyTorch: values, Jacobians and Hessians agree with torch.autograd in float64; errors name the module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import symnet
from symnet.check.backprop import forward
from symnet import ImportMismatchError
from symnet.io import (FileFormatError, UnsupportedLayerError, UntrustedCodeError, from_torch, load_torch,
                       read_network)

POINTS = np.random.default_rng(7).normal(size=(5, 3))


def reference(module: nn.Module, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Value (N, m), Jacobian (N, m, d) and Hessian (N, m, d, d) by torch.autograd."""
    module = module.double()
    values, jacobians, hessians = [], [], []
    for x in torch.tensor(X):
        values.append(module(x).detach().numpy())
        jacobians.append(torch.autograd.functional.jacobian(module, x).numpy())
        hessians.append(torch.autograd.functional.jacobian(
            lambda y: torch.autograd.functional.jacobian(module, y, create_graph=True), x).numpy())
    return np.array(values), np.array(jacobians), np.array(hessians)


def assert_agrees(net: symnet.Network, module: nn.Module, X: np.ndarray = POINTS) -> None:
    result = symnet.compile(net, ("value", "jacobian", "hessian"), backend="numpy")(X)
    value, jacobian, hessian = reference(module, X)
    np.testing.assert_allclose(result.value, value, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.jacobian, jacobian, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.hessian, hessian, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("activation, name", [
    (nn.Tanh(), "tanh"), (nn.Sigmoid(), "sigmoid"), (nn.ReLU(), "relu"),
    (nn.LeakyReLU(0.15), "leaky_relu(alpha=0.15)"), (nn.LeakyReLU(), "leaky_relu(alpha=0.01)"),
    (nn.Softplus(), "softplus"), (nn.Softplus(threshold=30.0), "softplus"), (nn.ELU(alpha=0.7), "elu(alpha=0.7)"),
    (nn.SiLU(), "silu"), (nn.GELU(), "gelu"), (nn.Identity(), "linear"), (nn.Softmax(dim=-1), "softmax"),
    (nn.LogSoftmax(dim=-1), "log_softmax"),
])
def test_each_activation_agrees_with_autograd(activation: nn.Module, name: str) -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), activation, nn.Linear(4, 2)).double()
    if name in ("softmax", "log_softmax"):  # where they belong: the last layer
        module = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3), activation).double()
    net = from_torch(module)
    assert name in [a.name for a in net.activations]
    assert_agrees(net, module)


def test_a_deep_mixed_stack() -> None:
    torch.manual_seed(1)
    module = nn.Sequential(
        nn.Linear(3, 5), nn.Tanh(),
        nn.Sequential(nn.Linear(5, 4, bias=False), nn.LeakyReLU(0.2), nn.Dropout(0.5)),
        nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 3), nn.SiLU(), nn.Identity(),
        nn.Linear(3, 2), nn.ELU(), nn.Linear(2, 1), nn.Sigmoid(),
    ).double().eval()
    net = from_torch(module)
    assert net.layer_sizes == (3, 5, 4, 4, 3, 2, 1)
    assert [a.name for a in net.activations] == ["tanh", "leaky_relu(alpha=0.2)", "gelu", "silu", "elu(alpha=1.0)",
                                                 "sigmoid"]
    assert net.layers[1].bias.is_zero_matrix
    assert_agrees(net, module)


def test_float32_weights_arrive_exactly_and_two_activations_compose() -> None:
    torch.manual_seed(2)
    module = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Tanh(), nn.Linear(3, 1))  # float32
    net = from_torch(module)
    assert np.array_equal(net.layers[0].weight_array(), module[0].weight.detach().double().numpy().T)
    assert str(net.activations[0].form) == "tanh(Max(0, t))"
    assert_agrees(net, module)  # reference() turns the module to float64: the same weights, exactly
    assert symnet.verify(net).ok  # the composed activation's numeric derivatives follow the chain rule


def test_a_single_linear_module() -> None:
    module = nn.Linear(3, 2).double()
    assert_agrees(from_torch(module), module)


def test_softplus_with_a_low_threshold_is_refused_not_imported_as_plain_softplus() -> None:
    module = nn.Sequential(nn.Linear(1, 1), nn.Softplus(threshold=5.0)).double()
    with pytest.raises(UnsupportedLayerError, match=r"module '1' \(Softplus\): Softplus\(threshold=5.0\) returns x "
                                                    r"itself where beta\*x > 5.0, which differs .* by up to 0.00672/beta; .* use "
                                                    r"threshold >= 20"):
        from_torch(module)
    assert from_torch(nn.Sequential(nn.Linear(1, 1), nn.Softplus(threshold=20.0))).activations[0].name == "softplus"


@pytest.mark.parametrize("module, message", [
    (nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Conv1d(1, 1, 1))),
     r"node '\w+' \(module '1.0'\): Conv1d is not a module symnet reads"),
    (nn.Sequential(nn.Tanh(), nn.Linear(2, 2)), r"module '0' \(Tanh\) comes before any Linear module"),
    (nn.Sequential(nn.Linear(2, 2), nn.Softmax(dim=0)), r"Softmax\(dim=0\) is not over the features"),
    (nn.Sequential(nn.Linear(2, 2), nn.LogSoftmax(dim=0)),
     r"LogSoftmax\(dim=0\) is not over the features; symnet's log_softmax acts on the last dimension"),
    (nn.Sequential(nn.Linear(2, 2), nn.Softmax(dim=1), nn.Tanh()), r"tanh after softmax cannot be written"),
    (nn.Sequential(), r"the module has no Linear layer"),
    (nn.ReLU(), r"cannot tell the width of forward's input 'input' .* input_sizes="),
    ("not a module", r"from_torch needs a torch.nn.Module, not str"),
])
def test_unsupported_modules_are_named(module: object, message: str) -> None:
    with pytest.raises(UnsupportedLayerError, match=message):
        from_torch(module)


@pytest.mark.parametrize("activation, name", [
    (nn.Softplus(beta=2.0), "softplus(beta=2.0)"), (nn.GELU(approximate="tanh"), "gelu_tanh"), (nn.Mish(), "mish"),
    (nn.SELU(), "selu"), (nn.Softsign(), "softsign"), (nn.ReLU6(), "relu6"), (nn.Hardsigmoid(), "hard_sigmoid"),
    (nn.Hardtanh(-0.5, 2.0), "hardtanh(min_val=-0.5, max_val=2.0)"),
])
def test_every_activation_module_imports_with_its_parameters(activation: nn.Module, name: str) -> None:
    torch.manual_seed(1)
    module = nn.Sequential(nn.Linear(2, 4), activation, nn.Linear(4, 1)).double()
    net = from_torch(module)  # checked layer by layer against the module
    assert net.layers[0].activation.name == name
    X = np.random.default_rng(2).uniform(-4, 4, size=(64, 2))
    jac = torch.func.vmap(torch.func.jacrev(lambda row: module(row[None])[0]))(torch.as_tensor(X)).detach().numpy()
    # PyTorch's hardsigmoid backward multiplies by 1/6 rounded to float32 (3e-8 relative); symnet's slope is 1/6
    rtol = 4e-8 if name == "hard_sigmoid" else 1e-12
    np.testing.assert_allclose(symnet.compile(net, "jacobian", backend="numpy")(X).jacobian, jac, rtol=rtol, atol=1e-14)


def test_a_custom_module_is_traced_as_a_graph() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) ** 3

    module = Net().double()
    net = from_torch(module)  # checked against module(x) before it returns
    assert repr(net) == "Network(2 -> 1, activations=(t -> t**3), numeric)"  # named by its form: files keep it
    X = np.random.default_rng(0).normal(size=(5, 2))
    np.testing.assert_allclose(forward(net, X), module(torch.as_tensor(X)).detach().numpy(), rtol=1e-13)


# --- state dicts ---------------------------------------------------------------------------------


@pytest.fixture()
def mlp() -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1)).double()


def test_state_dict_round_trip(mlp: nn.Sequential, tmp_path: Path) -> None:
    path = tmp_path / "mlp.pt"
    torch.save(mlp.state_dict(), path)
    net = load_torch(path, ["tanh", "tanh", "linear"], layer_sizes=[3, 4, 4, 1])
    assert net == from_torch(mlp)
    assert read_network(path, layer_activations=["tanh", "tanh", "linear"]) == net
    assert_agrees(net, mlp)
    # one entry replaced by index or by the state dict's prefix; expressions in x work too
    swapped = load_torch(path, ["tanh", "tanh", "tanh"], overrides={2: "linear", "2": "x**2"})
    assert [a.name for a in swapped.activations] == ["tanh", "t -> t**2", "linear"]


def test_state_dict_wrapped_in_a_checkpoint_dict(mlp: nn.Sequential, tmp_path: Path) -> None:
    torch.save({"state_dict": mlp.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    assert load_torch(tmp_path / "ckpt.pt", ["tanh", "tanh", "linear"]) == from_torch(mlp)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"activations": None}, symnet.ActivationError, r"a state dict holds no activations; give one per Linear layer"),
    ({"activations": ["tanh"] * 2}, symnet.ActivationError, r"2 activations for 3 Linear layers \(0, 2, 4\)"),
    ({"activations": ["tanh", "tanh", "relu7"]}, symnet.ActivationError, r"Linear layer 2 \(4\): .*'relu7'"),
    ({"activations": ["tanh"] * 3, "layer_sizes": [3, 5, 4, 1]}, symnet.ShapeError,
     r"the weights give layer sizes 3-4-4-1, not the 3-5-4-1 given"),
    ({"activations": ["tanh"] * 3, "overrides": {7: "tanh"}}, symnet.ActivationError,
     r"activation for layer 7: there are 3 Linear layers"),
    ({"activations": ["tanh"] * 3, "overrides": {"fc": "tanh"}}, symnet.ActivationError,
     r"activation for layer 'fc': no such layer"),
    # one name for several layers: does the output layer have it too? Never guessed
    ({"activations": "tanh"}, symnet.ActivationError,
     r"one activation for 3 Linear layers \(0, 2, 4\) does not say whether the output layer has it too; give one "
     r"per layer, output layer included, e.g. \['tanh', 'tanh', 'linear'\] \(on the command line --act "
     r"tanh,tanh,linear\)"),
    ({"activations": "tanh", "overrides": {2: "linear"}}, symnet.ActivationError, r"one activation for 3 Linear"),
    ({"activations": ["tanh"], "order": ["0", "2", "4"]}, symnet.ActivationError, r"1 activations for 3 Linear"),
    ({"activations": ["tanh"] * 3, "order": ["0", "4"]}, symnet.InputError,
     r"order=\['0', '4'\] must list each layer prefix once; the file has '0', '2', '4'"),
])
def test_state_dict_argument_errors(mlp: nn.Sequential, tmp_path: Path, kwargs: dict, error: type,
                                    message: str) -> None:
    path = tmp_path / "mlp.pt"
    torch.save(mlp.state_dict(), path)
    with pytest.raises(error, match=r"mlp\.pt: " + message):
        load_torch(path, **kwargs)


def test_a_pickled_module_is_never_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(nn.Sequential(nn.Linear(2, 1)), path)
    with pytest.raises(UntrustedCodeError, match=r"whole\.pt: holds Python objects .* symnet never unpickles"):
        load_torch(path, "linear")


@pytest.mark.parametrize("state, error, message", [
    ({"0.weight": torch.ones(2, 2), "1.running_mean": torch.zeros(2)}, UnsupportedLayerError,
     r"entry '1.running_mean' of shape \(2,\) is not a Linear layer's weight"),
    ({"0.weight": torch.ones(2)}, UnsupportedLayerError, r"entry '0.weight' of shape \(2,\)"),
    ({"0.weight": torch.ones(2, 2), "0.bias": torch.ones(3)}, symnet.ShapeError, r"0.bias has shape \(3,\)"),
    ({"0.bias": torch.ones(2)}, FileFormatError, r"0.bias has no 0.weight"),
    ({"0.weight": torch.full((1, 1), float("nan"))}, FileFormatError, r"entry '0.weight' holds non-finite values"),
    ({"n": torch.ones(1, dtype=torch.long)}, FileFormatError, r"entry 'n' is a Tensor, not a float tensor"),
    ({}, FileFormatError, r"holds a dict, not a state dict of tensors"),
    ([torch.ones(1)], FileFormatError, r"holds a list, not a state dict"),
    ({"0.weight": torch.ones(2, 3), "1.weight": torch.ones(2, 3)}, symnet.ShapeError, r"layer 2: W has shape"),
])
def test_bad_state_dicts_are_named(state: object, error: type, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(error, match=r"bad\.pt: " + message):
        layers = {key.rpartition(".")[0] for key in state} if isinstance(state, dict) else {""}
        load_torch(path, ["tanh"] * max(len(layers), 1))


def test_a_corrupt_torch_file(mlp: nn.Sequential, tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    torch.save(mlp.state_dict(), path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(FileFormatError, match=r"cut\.pt: "):
        read_network(path, layer_activations="tanh")


# --- issue 15: no silently wrong network ---------------------------------------------------------


def test_an_activation_module_reused_at_several_positions_counts_at_each() -> None:
    torch.manual_seed(4)
    act = nn.Tanh()  # the PINN pattern: one activation object between every pair of layers
    module = nn.Sequential(nn.Linear(3, 4), act, nn.Linear(4, 4), act, nn.Linear(4, 1)).double()
    net = from_torch(module)
    assert [a.name for a in net.activations] == ["tanh", "tanh", "linear"]
    assert_agrees(net, module)
    inner = nn.Sequential(nn.Linear(4, 4), act)  # reused inside and across nested Sequentials too
    nested = nn.Sequential(nn.Linear(3, 4), act, inner, inner, nn.Linear(4, 1)).double()
    assert [a.name for a in from_torch(nested).activations] == ["tanh", "tanh", "tanh", "linear"]
    assert_agrees(from_torch(nested), nested)


def test_a_shared_linear_used_twice_is_two_layers_with_the_same_weights() -> None:
    torch.manual_seed(5)
    shared = nn.Linear(4, 4)
    module = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), shared, nn.Tanh(), shared, nn.Tanh(), nn.Linear(4, 1)).double()
    net = from_torch(module)
    assert net.layer_sizes == (3, 4, 4, 4, 1)
    assert net.layers[1].weight == net.layers[2].weight and net.layers[1].bias == net.layers[2].bias
    assert_agrees(net, module)


class SkipsALayer(nn.Sequential):
    """Its children read as a chain of three layers, but forward() leaves out the middle one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self[4](self[1](self[0](x)))


class Residual(nn.Sequential):
    """forward() adds a skip connection the children do not show."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self[1](self[0](x))
        return self[4](h + self[3](self[2](h)))


@pytest.mark.parametrize("kind", [SkipsALayer, Residual])
def test_a_forward_that_differs_from_its_children_raises_unless_check_is_off(kind: type) -> None:
    torch.manual_seed(6)
    module = kind(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1))
    with pytest.raises(ImportMismatchError, match=rf"from_torch\({kind.__name__} module\): every layer agrees with "
                                                  r"PyTorch, but the whole model's own call computes something else: "
                                                  r"largest difference .* pass check=False"):
        from_torch(module)
    assert from_torch(module, check=False).layer_sizes == (3, 4, 4, 1)  # the children as a chain, as asked
    assert isinstance(ImportMismatchError("x"), symnet.SymnetError) and isinstance(ImportMismatchError("x"), ValueError)


def test_the_first_layer_that_differs_is_named() -> None:
    torch.manual_seed(7)
    module = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1))
    module[2].register_forward_hook(lambda _, __, out: 2 * out)  # a hook changes what module '2' computes
    with pytest.raises(ImportMismatchError, match=r"from_torch\(nn.Sequential\): symnet's layer 1 \(modules '2' "
                                                  r"\(Linear\), '3' \(Tanh\)\) computes other values than PyTorch's at "
                                                  r"the check points: largest difference .* \(tolerance .*, 8 seeded "
                                                  r"points in \[-2, 2\]\^3\)"):
        from_torch(module)
    assert from_torch(module, check=False).layer_sizes == (3, 4, 4, 1)


def test_the_check_leaves_the_module_as_it_was() -> None:
    module = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Softmax())  # float32, training mode, Softmax(dim=None)
    from_torch(module)  # the check runs in eval mode (Dropout off) in float64, without Softmax's dim warning
    assert module.training and module[1].training
    assert module[0].weight.dtype == torch.float32


def test_a_state_dict_saved_with_sorted_keys_loads_in_layer_order(tmp_path: Path) -> None:
    torch.manual_seed(8)
    parts: list[nn.Module] = []
    for _ in range(11):
        parts += [nn.Linear(3, 3), nn.Tanh()]
    module = nn.Sequential(*parts[:-1]).double()  # Linear layers at indices 0, 2, ..., 20: equal shapes
    state = module.state_dict()
    torch.save(dict(sorted(state.items())), tmp_path / "sorted.pt")  # "10.weight" before "2.weight"
    assert list(dict(sorted(state.items())))[2] == "10.bias"
    net = load_torch(tmp_path / "sorted.pt", ["tanh"] * 10 + ["linear"])
    assert net == from_torch(module)
    nested = nn.Sequential(nn.Sequential(*parts[:4]), *parts[4:-1]).double()  # "0.0", "0.2", "1", ..., "10", ...
    torch.save(dict(sorted(nested.state_dict().items())), tmp_path / "nested.pt")
    assert load_torch(tmp_path / "nested.pt", ["tanh"] * 10 + ["linear"]) == net


class Named(nn.Module):
    """Registers its equal-size layers in another order than forward() runs them."""

    def __init__(self) -> None:
        super().__init__()
        self.fc_out = nn.Linear(4, 4)
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))


def test_named_layers_whose_order_the_file_cannot_say_are_refused(tmp_path: Path) -> None:
    torch.manual_seed(9)
    module = Named().double()
    path = tmp_path / "named.pt"
    torch.save(module.state_dict(), path)
    with pytest.raises(FileFormatError, match=r"named\.pt: the layers 'fc_out', 'fc1', 'fc2' have names, not "
                                              r"nn.Sequential indices, so the file does not say the order forward\(\) "
                                              r"runs them in, and their shapes chain in more than one order "
                                              r"\(\[fc_out, fc1, fc2\] and \[fc_out, fc2, fc1\], ...\); symnet will "
                                              r"not guess: give the prefixes in the order forward\(\) runs them, "
                                              r"load_torch\(path, activations, order=\[...\]\), or .*"
                                              r"from_torch\(module\)"):
        load_torch(path, ["tanh", "tanh", "linear"])
    net = load_torch(path, ["tanh", "tanh", "linear"], order=["fc1", "fc2", "fc_out"])
    twin = nn.Sequential(module.fc1, nn.Tanh(), module.fc2, nn.Tanh(), module.fc_out)
    assert net == from_torch(twin)
    x = torch.tensor(POINTS[:, :1].repeat(4, axis=1))
    np.testing.assert_allclose(symnet.compile(net, "value", backend="numpy")(x.numpy()).value,
                               module(x).detach().numpy(), rtol=1e-12)


def test_named_layers_whose_shapes_chain_one_way_only_load_in_that_order(tmp_path: Path) -> None:
    class Sized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(5, 1)
            self.body = nn.Linear(4, 5)
            self.stem = nn.Linear(3, 4)

    torch.manual_seed(10)
    module = Sized().double()
    torch.save(module.state_dict(), tmp_path / "sized.pt")
    net = load_torch(tmp_path / "sized.pt", ["tanh", "tanh", "linear"])
    assert net == from_torch(nn.Sequential(module.stem, nn.Tanh(), module.body, nn.Tanh(), module.head))
    torch.save({"a.weight": torch.ones(2, 3), "b.weight": torch.ones(2, 3)}, tmp_path / "apart.pt")
    with pytest.raises(symnet.ShapeError, match=r"apart\.pt: the layers 'a', 'b' .* \(2, 3\), \(2, 3\) chain in no "
                                                r"order"):
        load_torch(tmp_path / "apart.pt", ["tanh", "linear"])


def test_a_pickled_payload_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple:
            return (open, (str(marker), "w"))

    path = tmp_path / "payload.pt"
    torch.save({"0.weight": torch.ones(1, 1), "extra": Payload()}, path)
    assert not marker.exists()
    with pytest.raises(UntrustedCodeError, match=r"payload\.pt: holds Python objects .* symnet never unpickles"):
        load_torch(path, ["linear"])
    with pytest.raises(UntrustedCodeError):
        read_network(path, layer_activations="linear")
    assert not marker.exists()


def test_a_tensor_declaring_more_values_than_the_file_holds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.pt"
    torch.save({"0.weight": torch.zeros(1).expand(10**6, 10**6)}, path)  # one number, stride 0: 10^12 declared
    assert path.stat().st_size < 10**4
    with pytest.raises(FileFormatError, match=r"huge\.pt: entry '0.weight' of shape \(1000000, 1000000\) takes the "
                                              r"state dict past 100,000,000 numbers"):
        load_torch(path, ["linear"])


def test_a_bit_flip_in_a_torch_file_is_a_file_format_error(mlp: nn.Sequential, tmp_path: Path) -> None:
    path = tmp_path / "flip.pt"
    torch.save(mlp.state_dict(), path)
    data = bytearray(path.read_bytes())
    for offset in range(0, len(data), 97):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=r"flip\.pt: "):
        load_torch(path, ["tanh", "tanh", "linear"])
    with pytest.raises(FileNotFoundError):
        load_torch(tmp_path / "missing.pt", ["tanh"])


@pytest.mark.parametrize("activation", [nn.LeakyReLU(0.3), nn.ELU(alpha=0.5)])
def test_an_activation_imported_without_its_parameter_would_be_caught(activation: nn.Module,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import symnet.io.torch as reader

    module = nn.Sequential(nn.Linear(2, 3), activation, nn.Linear(3, 1))
    assert from_torch(module).activations[0].name in ("leaky_relu(alpha=0.3)", "elu(alpha=0.5)")
    default = {"LeakyReLU": "leaky_relu", "ELU": "elu"}[type(activation).__name__]
    monkeypatch.setattr(reader, "_module_activation", lambda module, where: symnet.activations.activation(default))
    with pytest.raises(ImportMismatchError, match=rf"symnet's layer 0 \(modules '0' \(Linear\), '1' "
                                                  rf"\({type(activation).__name__}\)\) computes other values"):
        from_torch(module)


def test_the_command_line_needs_one_activation_per_layer(mlp: nn.Sequential, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from symnet.cli import main

    path = tmp_path / "mlp.pt"
    torch.save(mlp.state_dict(), path)
    assert main(["inspect", str(path), "--act", "tanh"]) == 2
    assert "one activation for 3 Linear layers (0, 2, 4) does not say whether the output layer has it too; give " \
           "one per layer, output layer included, e.g. ['tanh', 'tanh', 'linear'] (on the command line --act " \
           "tanh,tanh,linear)" in capsys.readouterr().err
    assert main(["inspect", str(path), "--act", "tanh,tanh,linear"]) == 0
    assert "activations=(tanh, tanh, linear)" in capsys.readouterr().out


def test_look_alike_modules_are_read_through_their_own_forward() -> None:
    class Tanh(nn.Module):  # named like torch's, computes something else
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    class Linear(nn.Linear):  # a subclass is not nn.Linear: its forward may differ
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * super().forward(x)

    X = np.random.default_rng(1).normal(size=(4, 2))
    for module in (nn.Sequential(nn.Linear(2, 2), Tanh(), nn.Linear(2, 1)), nn.Sequential(Linear(2, 2))):
        module = module.double()
        net = from_torch(module)
        assert "tanh" not in repr(net)
        np.testing.assert_allclose(forward(net, X), module(torch.as_tensor(X)).detach().numpy(), rtol=1e-14)


def test_weights_without_values_on_the_meta_device_are_refused(tmp_path: Path) -> None:
    module = nn.Sequential(nn.Linear(2, 3, device="meta"), nn.Tanh())
    with pytest.raises(UnsupportedLayerError, match=r"module '0' \(Linear\): its weight is on the meta device, a shape "
                                                    r"without values; materialise the weights first "
                                                    r"\(module\.to_empty\(device='cpu'\), then load_state_dict"):
        from_torch(module)
    torch.save(module.state_dict(), tmp_path / "meta.pt")
    with pytest.raises(FileFormatError, match=r"meta\.pt: entry '0\.weight' is a meta tensor, a shape without values"):
        load_torch(tmp_path / "meta.pt", "tanh")
    module = nn.Linear(2, 1)
    module.bias = nn.Parameter(torch.empty(1, device="meta"))
    with pytest.raises(UnsupportedLayerError, match=r"module \(Linear\): its bias is on the meta device"):
        from_torch(module)
    materialised = nn.Sequential(nn.Linear(2, 3, device="meta"), nn.Tanh()).to_empty(device="cpu")
    materialised.load_state_dict(nn.Sequential(nn.Linear(2, 3), nn.Tanh()).state_dict())
    assert from_torch(materialised).layer_sizes == (2, 3)
