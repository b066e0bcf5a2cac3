"""symnet.torch: the derivatives op against finite differences (gradcheck) and against PyTorch's own
nested autograd (a Laplacian loss, a third-order residual), a training loop, and its errors."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest
import torch  # the test extra installs it: without it these tests fail, never skip

import symnet
import symnet.torch as st
from symnet.graph.zoo import ZOO

ALL = ("value", "laplacian", (0, 0, 0), "hessian", "biharmonic")
F64 = torch.float64


def chain_231() -> symnet.Network:
    """A 2-3-3-1 tanh chain with seeded weights."""
    rng = np.random.default_rng(7)
    sizes = [2, 3, 3, 1]
    weights = [rng.normal(scale=0.8, size=(a, b)) for a, b in zip(sizes, sizes[1:])]
    biases = [rng.normal(scale=0.2, size=b) for b in sizes[1:]]
    return symnet.Network.from_weights(weights, biases, ["tanh", "tanh", "linear"])


def points(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.tensor(np.random.default_rng(seed).uniform(-1, 1, size=(n, d)), dtype=F64)


def close(mine: torch.Tensor, theirs: torch.Tensor, rtol: float = 1e-12) -> None:
    """Agreement relative to the size of ``theirs`` (the max norm): CSE and jets reorder the sums."""
    scale = float(theirs.abs().max())
    gap = float((mine - theirs).abs().max())
    assert gap <= rtol * max(scale, 1e-300), (gap, scale)


# --- 1. gradcheck: the op's backward against finite differences --------------------------------------------


@pytest.mark.parametrize("make", [chain_231, lambda: ZOO["modified_mlp"](d_in=2, width=2, depth=1)],
                         ids=["chain_2-3-3-1_tanh", "zoo_modified_mlp"])
def test_gradcheck_every_request(make) -> None:
    net = make()
    kernel = symnet.compile_vjp(net, ALL, parallel=False)
    params = [t.detach().clone().requires_grad_() for t in st.Derivatives(net, ALL).tensors()]
    X = points(3, 2).requires_grad_()

    def op(X, *params):
        result = st.derivatives(kernel, X, params)
        return tuple(result[name] for name in kernel.outputs)

    assert torch.autograd.gradcheck(op, (X, *params), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_fails_on_a_planted_error(monkeypatch) -> None:
    """The check above can fail: a backward 1% off in the points' gradient is caught."""
    kernel = symnet.compile_vjp(chain_231(), ("laplacian",), parallel=False)
    exact = kernel.forward

    def forward(X, w):
        result, pullback = exact(X, w)
        return result, lambda c: (lambda g, dX: (g, 1.01 * dX))(*pullback(c))
    monkeypatch.setattr(kernel, "forward", forward)
    params = [t.detach() for t in st.Derivatives(chain_231()).tensors()]
    X = points(2, 2).requires_grad_()
    assert not torch.autograd.gradcheck(lambda X: st.derivatives(kernel, X, params).laplacian, (X,),
                                        raise_exception=False)


def test_gradcheck_one_result_unused() -> None:
    """A result the loss does not read gets no cotangent (its gradient is None, not zeros)."""
    kernel = symnet.compile_vjp(chain_231(), ("value", "laplacian"), parallel=False)
    params = [t.detach().clone().requires_grad_() for t in st.Derivatives(chain_231()).tensors()]
    X = points(4, 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda X, *p: st.derivatives(kernel, X, p).laplacian, (X, *params))


def test_results_are_the_kernels() -> None:
    net = chain_231()
    model = st.Derivatives(net, ALL)
    X = points(5, 2)
    mine = model(X)
    kernel = symnet.compile_vjp(net, ALL)
    theirs = kernel(X.numpy())
    assert model.outputs == kernel.outputs
    for name in model.outputs:
        assert mine[name].dtype == F64 and tuple(mine[name].shape) == theirs[name].shape
        np.testing.assert_array_equal(mine[name].detach().numpy(), theirs[name])
    assert mine[(0, 0, 0)] is mine["partial_0_0_0"]
    assert repr(mine) == ("Result(value=(5, 1), hessian=(5, 1, 2, 2), laplacian=(5, 1), biharmonic=(5, 1), "
                          "partial_0_0_0=(5, 1))")
    with pytest.raises(AttributeError, match="'jacobian' was not requested"):
        mine.jacobian


# --- 2. PyTorch's own nested autograd -------------------------------------------------------------------------


class MLP(torch.nn.Module):
    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.tanh(layer(x))
        return self.layers[-1](x)


class Residual(torch.nn.Module):
    """A lifted residual net with one Linear used twice (tied) and a bias-less head."""

    def __init__(self, d: int = 2, width: int = 5) -> None:
        super().__init__()
        self.lift, self.inner = torch.nn.Linear(d, width), torch.nn.Linear(d, width)
        self.block = torch.nn.Linear(width, width)
        self.head = torch.nn.Linear(width, 1, bias=False)

    def forward(self, x):
        h = self.lift(x) + torch.tanh(self.inner(x))
        h = h + torch.sin(self.block(h))
        return self.head(torch.tanh(self.block(h)))


class Functional(torch.nn.Module):
    """``F.linear`` on bare parameters, and a buffer in the arithmetic (a constant scale node)."""

    def __init__(self) -> None:
        super().__init__()
        self.W, self.b = torch.nn.Parameter(torch.randn(4, 2)), torch.nn.Parameter(torch.randn(4))
        self.head = torch.nn.Linear(4, 1)
        self.register_buffer("scale", torch.tensor(0.5))

    def forward(self, x):
        return self.head(torch.tanh(torch.nn.functional.linear(x * self.scale, self.W, self.b)))


def grads_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Each parameter's gradient (zeros where PyTorch left none: a Laplacian does not read the last bias)."""
    grads = {name: torch.zeros_like(p) if p.grad is None else p.grad.clone() for name, p in module.named_parameters()}
    module.zero_grad(set_to_none=True)
    return grads


def forcing(X: torch.Tensor) -> torch.Tensor:
    return 2 * torch.pi ** 2 * torch.sin(torch.pi * X[:, :1]) * torch.sin(torch.pi * X[:, 1:2])


def test_poisson_loss_agrees_with_pytorch_double_backward() -> None:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Tanh(),
                                 torch.nn.Linear(8, 1)).double()
    model = st.Derivatives(module, ("value", "laplacian"))
    X = points(32, 2, seed=1)

    loss = ((model(X).laplacian + forcing(X)) ** 2).mean()
    loss.backward()
    mine = grads_of(module)            # the module's own parameters got the gradients

    Xr = X.clone().requires_grad_()
    u = module(Xr)
    (g,) = torch.autograd.grad(u.sum(), Xr, create_graph=True)
    laplacian = sum(torch.autograd.grad(g[:, i].sum(), Xr, create_graph=True)[0][:, i:i + 1] for i in range(2))
    reference = ((laplacian + forcing(X)) ** 2).mean()
    reference.backward()
    theirs = grads_of(module)

    close(loss.detach(), reference.detach())
    assert sorted(mine) == sorted(theirs) == ["0.bias", "0.weight", "2.bias", "2.weight", "4.bias", "4.weight"]
    for name in theirs:
        close(mine[name], theirs[name])


@pytest.mark.parametrize("make", [lambda: MLP([2, 6, 6, 1]), Residual, Functional],
                         ids=["mlp", "residual_tied", "functional_linear"])
def test_third_order_residual_agrees_with_pytorch(make) -> None:
    """``u_t + u u_x + u_xxx`` (KdV) at (t, x): PyTorch needs four nested backward passes."""
    torch.manual_seed(1)
    module = make().double()
    model = st.Derivatives(module, ("value", (0,), (1,), (1, 1, 1)))
    X = points(24, 2, seed=2).requires_grad_()
    r = model(X)
    loss = ((r[(0,)] + r.value * r[(1,)] + r[(1, 1, 1)]) ** 2).mean()
    loss.backward()
    mine, mine_X = grads_of(module), X.grad.clone()

    Xr = X.detach().clone().requires_grad_()
    u = module(Xr)
    (g,) = torch.autograd.grad(u.sum(), Xr, create_graph=True)
    u_t, u_x = g[:, :1], g[:, 1:]
    u_xx = torch.autograd.grad(u_x.sum(), Xr, create_graph=True)[0][:, 1:]
    u_xxx = torch.autograd.grad(u_xx.sum(), Xr, create_graph=True)[0][:, 1:]
    reference = ((u_t + u * u_x + u_xxx) ** 2).mean()
    reference.backward()
    theirs = grads_of(module)

    close(loss.detach(), reference.detach())
    close(mine_X, Xr.grad)
    for name in theirs:
        close(mine[name], theirs[name])


def test_shared_parameters_map_linear_weights() -> None:
    module = Residual().double()
    model = st.Derivatives(module, ("value",))
    assert model.module is module
    assert {id(p) for p in model.parameters()} == {id(p) for p in module.parameters()}
    assert len(model.weights) == 0 and [name for name, _ in model.constants.named_buffers()] == ["head__b"]
    assert repr(model) == "Derivatives(value; 9 of 10 parameters shared with Residual)"
    X = points(6, 2)
    with torch.no_grad():
        close(model(X).value, module(X))
        module.head.weight.mul_(2.0)  # the op reads the module's parameters at every call
        close(model(X).value, module(X))
    close(torch.from_numpy(symnet.compile_vjp(model.network())(X.numpy()).value), module(X).detach())


def test_shared_float32_module_trains_in_float64() -> None:
    torch.manual_seed(2)
    module = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))  # float32
    model = st.Derivatives(module, ("laplacian",))
    X = points(8, 2).float().requires_grad_()
    result = model(X)
    assert result.laplacian.dtype == F64
    result.laplacian.square().mean().backward()
    assert module[0].weight.grad.dtype == torch.float32 and module[0].weight.grad.abs().sum() > 0
    assert X.grad.dtype == torch.float32
    copied = st.Derivatives(module, ("laplacian",), share=False)
    assert copied.module is None and sorted(copied.weights) == ["z1__W", "z1__b", "z2__W", "z2__b"]
    assert copied.weights["z1__W"].dtype == F64
    np.testing.assert_array_equal(copied.weights["z1__W"].detach().numpy(), module[0].weight.detach().double().T)
    torch.testing.assert_close(copied(X).laplacian, model(X).laplacian, rtol=0, atol=0)


# --- 3. a training loop ------------------------------------------------------------------------------------------


def test_adam_on_a_poisson_loss_decreases_it() -> None:
    net = symnet.Network.from_weights(*_glorot([2, 8, 1], seed=3), ["tanh", "linear"])
    model = st.Derivatives(net, ("value", "laplacian"))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    X = points(64, 2, seed=4)
    boundary = torch.cat([points(16, 1, seed=5), torch.ones(16, 1, dtype=F64)], dim=1)
    losses = []
    for _ in range(30):
        optimiser.zero_grad()
        loss = ((model(X).laplacian + forcing(X)) ** 2).mean() + (model(boundary).value ** 2).mean()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
    trained = model.network()      # the trained weights as a symnet network
    assert trained.is_chain and trained.n_inputs == 2
    close(torch.from_numpy(symnet.compile_vjp(trained, ("laplacian",))(X.numpy()).laplacian),
          model(X).laplacian.detach())


def _glorot(sizes: list[int], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(scale=np.sqrt(2 / (a + b)), size=(a, b)) for a, b in zip(sizes, sizes[1:])]
    return weights, [np.zeros(b) for b in sizes[1:]]


# --- 4. errors --------------------------------------------------------------------------------------------------


def test_points_of_any_float_dtype_are_converted_exactly() -> None:
    model = st.Derivatives(chain_231(), ("value", "laplacian"))
    X32 = points(5, 2).float()
    torch.testing.assert_close(model(X32).value, model(X32.double()).value, rtol=0, atol=0)
    with pytest.raises(symnet.InputError, match="X is a torch.int64 tensor; give floating-point"):
        model(torch.zeros(3, 2, dtype=torch.int64))
    with pytest.raises(symnet.InputError, match="X must be a torch.Tensor, not ndarray"):
        model(np.zeros((3, 2)))


def test_wrong_shapes_are_refused() -> None:
    model = st.Derivatives(chain_231(), ("value",))
    with pytest.raises(symnet.ShapeError, match=r"X must have shape \(N, 2\).*not \(3, 3\)"):
        model(torch.zeros(3, 3, dtype=F64))
    with pytest.raises(symnet.ShapeError, match=r"not \(2,\)"):
        model(torch.zeros(2, dtype=F64))
    params = model.tensors()
    with pytest.raises(symnet.ShapeError, match="5 parameter tensors for a kernel of 6 parameters"):
        st.derivatives(model.kernel, torch.zeros(1, 2, dtype=F64), params[:5])
    with pytest.raises(symnet.ShapeError, match=r"parameter z1.W has shape \(3, 2\); the network's is \(2, 3\)"):
        st.derivatives(model.kernel, torch.zeros(1, 2, dtype=F64), [params[0].T, *params[1:]])
    with pytest.raises(symnet.InputError, match="needs a symnet.VJPKernel"):
        st.derivatives(symnet.compile(chain_231(), ("value",), backend="numpy"), torch.zeros(1, 2, dtype=F64), params)


@pytest.mark.parametrize("linear", [True, False], ids=["linear_loss", "squared_loss"])
def test_double_backward_is_refused(linear: bool) -> None:
    """Refused whether or not the incoming gradient requires grad (PyTorch's once_differentiable
    would let a loss linear in the results through, with a wrong, constant, gradient)."""
    model = st.Derivatives(chain_231(), ("laplacian",))
    X = points(4, 2)
    laplacian = model(X).laplacian
    loss = laplacian.sum() if linear else laplacian.square().sum()
    grads = torch.autograd.grad(loss, list(model.parameters()), create_graph=True)  # first order: fine
    assert all(g.requires_grad for g in grads)
    with pytest.raises(st.DoubleBackwardError, match="differentiable once.*Request the higher derivatives"):
        sum(g.square().sum() for g in grads).backward()


def test_sharing_refuses_what_it_cannot_map() -> None:
    class Normed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.norm, self.head = torch.nn.Linear(2, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 1)

        def forward(self, x):
            return self.head(torch.tanh(self.norm(self.fc(x))))

    module = Normed().double()
    with pytest.raises(symnet.InputError, match=r"parameters norm.weight, norm.bias: .*pass share=False"):
        st.Derivatives(module, ("value",))
    copied = st.Derivatives(module, ("value",), share=False)
    X = points(3, 2)
    close(copied(X).value.detach(), module(X).detach())
    with pytest.raises(symnet.InputError, match="a symnet network's are copied"):
        st.Derivatives(chain_231(), share=True)
    with pytest.raises(symnet.InputError, match="needs a symnet.Network or a torch.nn.Module, not str"):
        st.Derivatives("net")
    with pytest.raises(symnet.WeightError, match="symbolic"):
        st.Derivatives(symnet.Network.symbolic([1, 2, 1], ["tanh", "linear"]))


def test_import_symnet_does_not_import_symnet_torch() -> None:
    code = "import sys, symnet; print('symnet.torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


def test_without_torch_the_import_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails, as without PyTorch
    monkeypatch.delitem(sys.modules, "symnet.torch")
    monkeypatch.delattr(symnet, "torch")
    with pytest.raises(symnet.InputError, match=r"needs PyTorch.*pip install 'symnet\[torch\]'") as info:
        importlib.import_module("symnet.torch")
    assert isinstance(info.value, ImportError)


def test_an_input_gradient_penalty_is_refused_on_every_route_not_dropped() -> None:
    """A loss on the op's own gradient needs its second derivative: refused whether the backward asks for
    the parameters (autograd.grad, backward(inputs=...)) or for everything (found by a new user)."""
    from torch import nn

    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    model = st.Derivatives(module, ("value",))
    X = points(5, 2).requires_grad_()

    def penalised():
        r = model(X)
        (gu,) = torch.autograd.grad(r.value.sum(), X, create_graph=True)
        return ((r.value[:, 0] - 1) ** 2).mean() + (gu ** 2).sum()
    with pytest.raises(st.DoubleBackwardError):
        torch.autograd.grad(penalised(), list(module.parameters()))
    with pytest.raises(st.DoubleBackwardError):
        penalised().backward(inputs=list(module.parameters()))
    with pytest.raises(st.DoubleBackwardError):
        penalised().backward()
