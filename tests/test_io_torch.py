"""Import from PyTorch: values, Jacobians and Hessians agree with torch.autograd in float64; errors name the module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import symnet
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
])
def test_each_activation_agrees_with_autograd(activation: nn.Module, name: str) -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), activation, nn.Linear(4, 2)).double()
    if name == "softmax":  # softmax where it belongs: the last layer
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


def test_softplus_threshold_only_changes_numerics_far_out() -> None:
    module = nn.Sequential(nn.Linear(1, 1), nn.Softplus(threshold=5.0)).double()
    with torch.no_grad():
        module[0].weight.fill_(1.0)
        module[0].bias.fill_(0.0)
    net = from_torch(module)
    X = np.array([[-3.0], [0.5], [4.0]])  # below the threshold: torch computes log1p(exp(x)) too
    assert_agrees(net, module, X)


@pytest.mark.parametrize("module, message", [
    (nn.Sequential(nn.Linear(2, 2), nn.Softplus(beta=2.0)), r"module '1' \(Softplus\): Softplus\(beta=2.0\) is "
     r"log\(1 \+ exp\(beta\*x\)\)/beta, not symnet's softplus"),
    (nn.Sequential(nn.Linear(2, 2), nn.GELU(approximate="tanh")), r"GELU\(approximate='tanh'\) is the tanh approx"),
    (nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), r"module '1' \(BatchNorm1d\) is not supported"),
    (nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Conv1d(1, 1, 1))), r"module '1.0' \(Conv1d\) is not supported"),
    (nn.Sequential(nn.Tanh(), nn.Linear(2, 2)), r"module '0' \(Tanh\) comes before any Linear module"),
    (nn.Sequential(nn.Linear(2, 2), nn.Softmax(dim=0)), r"Softmax\(dim=0\) is not over the features"),
    (nn.Sequential(nn.Linear(2, 2), nn.Softmax(dim=1), nn.Tanh()), r"tanh after softmax cannot be written"),
    (nn.Sequential(), r"the module has no Linear layer"),
    (nn.ReLU(), r"ReLU is a custom module whose forward\(\) symnet cannot read"),
    ("not a module", r"from_torch needs a torch.nn.Module, not str"),
])
def test_unsupported_modules_are_named(module: object, message: str) -> None:
    with pytest.raises(UnsupportedLayerError, match=message):
        from_torch(module)


def test_a_custom_module_is_refused() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) ** 3

    with pytest.raises(UnsupportedLayerError, match="Net is a custom module .* rebuild it as an nn.Sequential"):
        from_torch(Net())


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
    swapped = load_torch(path, "tanh", overrides={2: "linear", "2": "x**2"})
    assert [a.name for a in swapped.activations] == ["tanh", "t -> t**2", "linear"]


def test_state_dict_wrapped_in_a_checkpoint_dict(mlp: nn.Sequential, tmp_path: Path) -> None:
    torch.save({"state_dict": mlp.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    assert load_torch(tmp_path / "ckpt.pt", ["tanh", "tanh", "linear"]) == from_torch(mlp)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"activations": None}, symnet.ActivationError, r"a state dict holds no activations; give one per Linear layer"),
    ({"activations": ["tanh"] * 2}, symnet.ActivationError, r"2 activations for 3 Linear layers \(0, 2, 4\)"),
    ({"activations": ["tanh", "tanh", "relu6"]}, symnet.ActivationError, r"Linear layer 2 \(4\): .*'relu6'"),
    ({"activations": "tanh", "layer_sizes": [3, 5, 4, 1]}, symnet.ShapeError,
     r"the weights give layer sizes 3-4-4-1, not the 3-5-4-1 given"),
    ({"activations": "tanh", "overrides": {7: "tanh"}}, symnet.ActivationError, r"activation for layer 7: there are 3 Linear layers"),
    ({"activations": "tanh", "overrides": {"fc": "tanh"}}, symnet.ActivationError, r"activation for layer 'fc': no such layer"),
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
        load_torch(path, "tanh")


def test_a_corrupt_torch_file(mlp: nn.Sequential, tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    torch.save(mlp.state_dict(), path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(FileFormatError, match=r"cut\.pt: "):
        read_network(path, layer_activations="tanh")
