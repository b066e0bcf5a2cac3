"""The PINN zoo written natively in PyTorch, as authors write their modules (shared by the test modules)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ZOO", "ResNet"]


class ResNet(nn.Module):
    def __init__(self, d: int = 2, width: int = 8, blocks: int = 2) -> None:
        super().__init__()
        self.inp = nn.Linear(d, width)
        self.blocks = nn.ModuleList([nn.Linear(width, width) for _ in range(blocks)])
        self.act = nn.Tanh()  # one module object used at every block
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.inp(x))
        for block in self.blocks:
            h = h + self.act(block(h))
        return self.out(h)


class ModifiedMlp(nn.Module):
    def __init__(self, d: int = 2, width: int = 8, depth: int = 2) -> None:
        super().__init__()
        self.u, self.v = nn.Linear(d, width), nn.Linear(d, width)
        self.layers = nn.ModuleList([nn.Linear(d if k == 0 else width, width) for k in range(depth)])
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = torch.tanh(self.u(x)), torch.tanh(self.v(x))
        h = x
        for layer in self.layers:
            h = torch.tanh(layer(h))
            h = h * u + (1 - h) * v
        return self.out(h)


class FourierMlp(nn.Module):
    def __init__(self, d: int = 2, features: int = 4, width: int = 8) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.25, -0.5]))
        self.register_buffer("std", torch.tensor([2.0, 0.5]))
        self.register_buffer("B", torch.randn(d, features))
        self.hidden = nn.Sequential(nn.Linear(2 * features, width), nn.SiLU(), nn.Linear(width, width))
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        p = 2 * math.pi * x @ self.B
        h = self.hidden(torch.cat([torch.cos(p), torch.sin(p)], dim=-1))
        return self.out(F.softplus(h))


class PirateBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.f, self.g = nn.Linear(width, width), nn.Linear(width, width)
        self.alpha = nn.Parameter(torch.tensor(0.3))

    def forward(self, h: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        f = torch.tanh(self.f(h))
        f = f * u + (1 - f) * v
        g = torch.tanh(self.g(f))
        return self.alpha * g + (1 - self.alpha) * h


class PirateNet(nn.Module):
    def __init__(self, d: int = 2, width: int = 8, blocks: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(d, width)
        self.u, self.v = nn.Linear(width, width), nn.Linear(width, width)
        self.blocks = nn.ModuleList([PirateBlock(width) for _ in range(blocks)])
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.sin(self.embed(x))
        u, v = torch.tanh(self.u(h)), torch.tanh(self.v(h))
        for block in self.blocks:
            h = block(h, u, v)
        return self.out(h)


class DeepONet(nn.Module):
    def __init__(self, sensors: int = 5, coords: int = 2, width: int = 8, p: int = 4) -> None:
        super().__init__()
        self.branch = nn.Sequential(nn.Linear(sensors, width), nn.Tanh(), nn.Linear(width, p))
        self.trunk = nn.Sequential(nn.Linear(coords, width), nn.Tanh(), nn.Linear(width, p), nn.Tanh())
        self.bias = nn.Parameter(torch.tensor([0.1]))

    def forward(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (self.branch(u) * self.trunk(y)).sum(dim=-1, keepdim=True) + self.bias


class Normalised(nn.Module):
    """LayerNorm, BatchNorm (eval), GELU, Dropout, Flatten, F.linear of own parameters, two heads."""

    def __init__(self, d: int = 3, width: int = 6) -> None:
        super().__init__()
        self.fc = nn.Linear(d, width)
        self.norm = nn.LayerNorm(width)
        self.bn = nn.BatchNorm1d(width)
        self.drop = nn.Dropout(0.5)
        self.flat = nn.Flatten()
        self.w = nn.Parameter(torch.randn(2, width) / 3)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.drop(F.gelu(self.norm(self.fc(x))))
        h = self.flat(self.bn(h))
        out = F.linear(h, self.w)
        return out[:, :1], out[:, 1].pow(2)


class Shared(nn.Module):
    """One Linear used twice, split() and an elementwise square."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(self.fc(torch.sigmoid(self.fc(x))), 2, dim=-1)
        return torch.cat([a * b, -b], dim=1) ** 2


class WeightNorm(nn.Module):
    """jaxpi's weight-normalised MLP, written with PyTorch's parametrization."""

    def __init__(self, width: int = 6) -> None:
        super().__init__()
        from torch.nn.utils.parametrizations import weight_norm

        self.hidden = nn.ModuleList([weight_norm(nn.Linear(2, width)), weight_norm(nn.Linear(width, width))])
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = F.silu(layer(x))
        return self.out(x)


class Classifier(nn.Module):
    """nn.LogSoftmax and Tensor.log_softmax (log-probabilities): an import zoo net, not a PINN's
    (compile_vjp's gradients through input derivatives take elementwise activations only)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.head, self.log_probabilities = nn.Linear(2, 6), nn.Linear(6, 4), nn.LogSoftmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc(x))
        logits = self.head(h)
        return torch.cat([self.log_probabilities(logits), logits.log_softmax(-1)[:, :2] * h[:, :2]], dim=1)


ZOO = {"weight_norm": WeightNorm, "resnet": ResNet, "modified_mlp": ModifiedMlp, "fourier": FourierMlp, "pirate": PirateNet,
       "deeponet": DeepONet, "normalised": Normalised, "shared": Shared}

#: The nets the importers' tests read: the PINN zoo and the classifier.
IMPORT_ZOO = {**ZOO, "classifier": Classifier}
