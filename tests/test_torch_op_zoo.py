"""symnet.torch on the PINN zoo written in PyTorch: PDE losses and their gradients against PyTorch's own
nested autograd (torch.func), for a Laplacian, a biharmonic and a third-order nonlinear residual."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import symnet.torch as st

from torch_zoo import ZOO

F64 = torch.float64


def _losses(lap, bih, u, u_x0, u_x000):
    """Three residual losses from each output's derivatives, summed over outputs."""
    return {"laplacian": ((lap + 1.0) ** 2).mean(),
            "biharmonic": (bih ** 2).mean(),
            "third order": ((u_x000 + u * u_x0) ** 2).mean()}


class _ComposedLayerNorm(torch.nn.Module):
    """``nn.LayerNorm`` from elementary ops: PyTorch's fused layer_norm gives wrong derivatives from the third
    order on (its saved mean and 1/std carry no autograd history: pytorch/pytorch#175754; measured in torch 2.13:
    jacrev^3 of nn.LayerNorm(3) is off by about 21 at [0.3, -0.2, 0.5]), and these losses need third and fifth."""

    def __init__(self, norm):
        super().__init__()
        self.norm = norm

    def forward(self, x):
        centred = x - x.mean(-1, keepdim=True)
        variance = (centred * centred).mean(-1, keepdim=True)
        return centred / torch.sqrt(variance + self.norm.eps) * self.norm.weight + self.norm.bias


def _reference(module, X, which):
    """The loss by torch.func: nested derivatives of the module, autograd through them."""
    for name, child in list(module.named_children()):
        if isinstance(child, torch.nn.LayerNorm):
            setattr(module, name, _ComposedLayerNorm(child))
    d = X.shape[1]
    widths = [5, 2] if isinstance(module, ZOO["deeponet"]) else [d]
    bounds = np.cumsum([0, *widths])

    def u(row):
        parts = [row[None, a:b] for a, b in zip(bounds, bounds[1:])]
        out = module(*parts)
        outs = out if isinstance(out, tuple) else (out,)
        return torch.cat([o.reshape(1, -1) for o in outs], dim=1)[0]

    def lap(row):
        return torch.func.jacrev(torch.func.jacrev(u))(row).diagonal(dim1=1, dim2=2).sum(-1)
    vm = torch.func.vmap
    value = vm(u)(X)
    u_x0 = vm(torch.func.jacrev(u))(X)[..., 0]
    u_x000 = vm(torch.func.jacrev(torch.func.jacrev(torch.func.jacrev(u))))(X)[..., 0, 0, 0]
    laplacian = vm(lap)(X)
    biharmonic = vm(lambda r: torch.func.jacrev(torch.func.jacrev(lap))(r).diagonal(dim1=1, dim2=2).sum(-1))(X) if which == \
        "biharmonic" else laplacian
    return _losses(laplacian, biharmonic, value, u_x0, u_x000)[which]


@pytest.mark.parametrize("which", ["laplacian", "biharmonic", "third order"])
@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_losses_and_gradients_match_nested_autograd(name, which):
    torch.manual_seed(7)
    module = ZOO[name]().double().eval()
    shared = name in ("resnet", "modified_mlp", "fourier", "shared")  # nn.Linear parameters only
    model = st.Derivatives(module, ("value", "laplacian", "biharmonic", (0,), (0, 0, 0)), share=shared)
    n = 5
    X = torch.tensor(np.random.default_rng(3).uniform(-1, 1, (n, model.kernel.d)), dtype=F64, requires_grad=True)
    r = model(X)
    mine = _losses(r.laplacian, r.biharmonic, r.value, r[(0,)], r[(0, 0, 0)])[which]
    X2 = X.detach().clone().requires_grad_()
    theirs = _reference(module, X2, which)
    assert mine.item() == pytest.approx(theirs.item(), rel=1e-11)
    params = [p for p in module.parameters() if p.requires_grad] if shared else []
    got = torch.autograd.grad(mine, [X, *params], allow_unused=True)
    want = torch.autograd.grad(theirs, [X2, *params], allow_unused=True)
    for g, w in zip(got, want):
        g = torch.zeros_like(w) if g is None else g
        w = torch.zeros_like(g) if w is None else w
        scale = 1.0 + float(w.abs().max())
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-11 * scale)
