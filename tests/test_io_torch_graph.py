"""symnet.io.torch_graph: PyTorch modules written as their authors write them, imported in one call.

Each module of the PINN zoo is a custom ``nn.Module`` here; its import is checked against the
module by ``from_torch`` itself, and here value, gradient, Hessian and Laplacian of the
compiled kernel against PyTorch's autograd in float64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import symnet
from symnet import ImportMismatchError
from symnet.io import UnsupportedLayerError, from_torch
from symnet.io.torch_graph import OPS, supported_ops

from torch_zoo import IMPORT_ZOO as ZOO, ResNet


def _reference(module: nn.Module, widths: list[int], X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Value, Jacobian and Hessian by PyTorch's autograd in float64, the inputs laid side by side."""
    bounds = np.cumsum([0, *widths])

    def f(row: torch.Tensor) -> torch.Tensor:
        parts = [row[None, a:b] for a, b in zip(bounds, bounds[1:])]
        out = module(*parts)
        outs = out if isinstance(out, tuple) else (out,)
        return torch.cat([o.reshape(1, -1) for o in outs], dim=1)[0]

    module.eval()  # what symnet imports: the module at inference
    points = torch.as_tensor(X)
    value = torch.stack([f(row) for row in points]).detach().numpy()
    jac = torch.func.vmap(torch.func.jacrev(f))(points).detach().numpy()
    hes = torch.func.vmap(torch.func.jacrev(torch.func.jacrev(f)))(points).detach().numpy()
    return value, jac, hes


def _assert_like_autograd(module: nn.Module, net: symnet.Network, widths: list[int], X: np.ndarray,
                          strategies: tuple[str, ...] = ("auto",)) -> None:
    """Value, Jacobian and Hessian of the import (numpy backend) against PyTorch's autograd."""
    value, jac, hes = _reference(module, widths, X)
    for strategy in strategies:
        result = symnet.compile(net, ("value", "jacobian", "hessian"), strategy=strategy, backend="numpy")(X)
        np.testing.assert_allclose(result.value, value, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(result.jacobian, jac, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(result.hessian, hes, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("strategy", ["expression", "layered"])
def test_the_zoo_imports_in_one_call_and_its_derivatives_match_autograd(name: str, strategy: str) -> None:
    torch.manual_seed(7)
    module = ZOO[name]().double()
    net = from_torch(module)
    widths = [5, 2] if name == "deeponet" else [net.n_inputs]
    X = np.random.default_rng(3).uniform(-1.5, 1.5, (6, net.n_inputs))
    value, jac, hes = _reference(module, widths, X)
    result = symnet.compile(net, ("value", "jacobian", "hessian", "laplacian"), strategy=strategy,
                            backend="numpy")(X)
    scale = 1.0 + np.abs(hes).max()
    np.testing.assert_allclose(result.value, value, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(result.jacobian, jac, rtol=1e-11, atol=1e-12 * scale)
    np.testing.assert_allclose(result.hessian, hes, rtol=1e-10, atol=1e-11 * scale)
    np.testing.assert_allclose(result.laplacian, np.trace(hes, axis1=2, axis2=3), rtol=1e-10, atol=1e-11 * scale)


@pytest.mark.filterwarnings("ignore:`torch.jit.script.*` is deprecated:DeprecationWarning")  # torch.compile's import
def test_torch_compile_wrappers_and_float32_modules() -> None:
    torch.manual_seed(0)
    module = ResNet()
    net = from_torch(torch.compile(module))  # float32 weights arrive exactly: the check runs in float64
    X = np.random.default_rng(0).normal(size=(4, 2))
    want = module.double()(torch.as_tensor(X)).detach().numpy()
    np.testing.assert_allclose(symnet.compile(net, "value", backend="numpy")(X).value, want, rtol=1e-13)


def test_names_and_module_left_as_it_was() -> None:
    module = ResNet().double().train()
    net = from_torch(module)
    assert module.training and all(m.training for m in module.modules())
    names = [node.name for node in net.graph.nodes]
    assert names[:4] == ["x", "inp", "act", "blocks_0"] and "add" in names


class Piecewise(nn.Module):
    """nn.PReLU (one weight per feature and one shared), F.prelu by a parameter, torch.maximum,
    torch.minimum by a buffer and by zero, torch.max of two tensors: relu composites."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.head = nn.Linear(2, 4), nn.Linear(2, 4), nn.Linear(4, 2)
        self.per_feature, self.shared = nn.PReLU(4), nn.PReLU(init=0.3)
        self.slope = nn.Parameter(torch.tensor([0.05, -0.2, 0.4, 1.5]))
        self.register_buffer("floor", torch.tensor([0.1, -0.2, 0.3, 0.0]))
        with torch.no_grad():
            self.per_feature.weight.copy_(torch.tensor([0.1, 0.25, -0.5, 2.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.a(x), torch.tanh(self.b(x))
        high = torch.maximum(self.per_feature(a), self.shared(b))
        low = torch.minimum(a, self.floor) + torch.minimum(b, torch.zeros(())) * 2
        return self.head(high + low - torch.max(a, b) + nn.functional.prelu(b, self.slope))


def test_prelu_and_elementwise_max_min_match_autograd() -> None:
    torch.manual_seed(5)
    module = Piecewise().double()
    net = from_torch(module)  # checked node by node against the module
    X = np.random.default_rng(3).uniform(-1.5, 1.5, (8, 2))
    module.eval()
    points = list(torch.as_tensor(X))  # point by point: torch.func.vmap cannot take prelu's second derivative
    value = np.stack([module(p[None, :])[0].detach().numpy() for p in points])
    jac = np.stack([torch.autograd.functional.jacobian(lambda p: module(p[None, :])[0], p).numpy() for p in points])
    hes = np.stack([torch.autograd.functional.jacobian(lambda q: torch.autograd.functional.jacobian(
        lambda p: module(p[None, :])[0], q, create_graph=True), p).numpy() for p in points])
    result = symnet.compile(net, ("value", "jacobian", "hessian"), backend="numpy")(X)
    np.testing.assert_allclose(result.value, value, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(result.jacobian, jac, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(result.hessian, hes, rtol=0, atol=1e-12)  # piecewise linear: 0 between kinks
    scales = [np.asarray(node.params["s"], dtype=np.float64).ravel().tolist() for node in net.graph.nodes
              if node.op == "scale" and node.params["s"].shape[1] == 4]
    for weight in (module.per_feature.weight, module.slope):  # PReLU's weights are parameters of the graph
        assert weight.detach().numpy().tolist() in scales
    names = [node.activation.name for node in net.graph.nodes if node.op == "activation"]
    assert names.count("relu") == 6 and "t -> Min(0.0, t)" in names  # min(b, 0): one bound, its own activation


class _Atan(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.atan(self.fc(x))  # the line the error names


class _Branching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) if x.sum() > 0 else -self.fc(x)


class _Divides(_Atan):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return h / (1 + h * h)


class _Dict(_Atan):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"u": self.fc(x)}


class _Rows(_Atan):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)[0:1]


class _BatchStats(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.bn = nn.Linear(2, 2), nn.BatchNorm1d(2, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(x))


class _Reduces(_Atan):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.max(self.fc(x), 1).values


class _WidePrelu(_Atan):
    def __init__(self) -> None:
        super().__init__()
        self.act = nn.PReLU(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))


class _Conv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.conv = nn.Linear(2, 2), nn.Conv1d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.fc(x))


@pytest.mark.parametrize("module, message", [
    (_Atan(), r"node 'atan' \(function atan\) at test_io_torch_graph\.py:\d+ in forward: return torch\.atan\(self\.fc"
              r"\(x\)\) .* is not an op symnet reads; it reads .*add"),
    (_Branching(), r"could not trace _Branching\.forward with torch\.fx \(TraceError: .*\); symnet reads a forward "
                   r"whose operations do not depend on the values of its input"),
    (_Dict(), r"_Dict\.forward returns a dict; symnet reads a tensor or a tuple of tensors"),
    (_Rows(), r"node 'getitem' .*: indexing \(slice\(0, 1, None\),\); symnet reads x\[:, a:b\]"),
    (_BatchStats(), r"node 'bn' \(module 'bn'\) .*track_running_stats=False\) normalises by each batch's own"),
    (_Conv(), r"node 'conv' \(module 'conv'\) .*Conv1d is not a module symnet reads; it reads .*Linear"),
    (_Reduces(), r"node 'max\w*' \(function max\) .*: symnet reads the elementwise maximum of two tensors "
                 r"\(torch\.maximum\(a, b\)\), not a reduction over a dim"),
    (_WidePrelu(), r"node 'act' \(module 'act'\) .*: a PReLU weight of shape \(3,\) on 2 features; symnet reads one "
                   r"weight, or one per feature"),
])
def test_refusals_name_the_node_the_op_and_the_line(module: nn.Module, message: str) -> None:
    with pytest.raises(UnsupportedLayerError, match=message):
        from_torch(module)


def test_a_forward_that_tracing_cannot_see_is_caught_by_the_check() -> None:
    class Counter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 1)
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1  # tracing records the first call's constant
            return self.fc(x) * self.calls

    with pytest.raises(ImportMismatchError, match=r"module\(x\) differs from the traced graph .* although every node "
                                                  r"agreed"):
        from_torch(Counter().double())
    assert from_torch(Counter().double(), check=False).n_outputs == 1


def test_input_widths_are_read_or_asked_for() -> None:
    class OnlyActivations(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(x) * 2

    with pytest.raises(UnsupportedLayerError, match=r"give from_torch\(module, input_sizes=\[\.\.\.\]\)"):
        from_torch(OnlyActivations())
    net = from_torch(OnlyActivations(), input_sizes=[3])
    assert (net.n_inputs, net.n_outputs) == (3, 3)
    with pytest.raises(UnsupportedLayerError, match=r"input_sizes=\[3, 4\]: forward takes 1 input"):
        from_torch(OnlyActivations(), input_sizes=[3, 4])


def test_the_op_table_is_one_table() -> None:
    ops = dict(supported_ops())
    assert set(OPS) <= set(ops) and ops["Linear"] == "dense" and ops["BatchNorm1d"].startswith("batch_norm")


def test_the_docs_list_the_op_table_as_generated() -> None:
    from pathlib import Path

    from symnet.io.torch_graph import op_table

    text = (Path(__file__).parents[1] / "docs" / "io.md").read_text()
    block = text.split("<!-- op_table: start -->\n", 1)[1].split("\n<!-- op_table: end -->", 1)[0]
    assert block == op_table(), "docs/io.md's PyTorch op table is stale: paste symnet.io.torch_graph.op_table() there"


def test_an_activation_module_used_at_every_layer_counts_at_each_use() -> None:
    """Issue 15's first silent mis-import (a repeated activation module counted once), through the graph importer."""
    class Pinn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 4), nn.Linear(4, 4), nn.Linear(4, 4)])
            self.act = nn.Tanh()
            self.out = nn.Linear(4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self.layers:
                x = self.act(layer(x))
            return self.out(x)

    net = from_torch(Pinn().double())
    assert [layer.activation.name for layer in net.layers] == ["tanh", "tanh", "tanh", "linear"]


class _InPlace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.relu_()  # tracing records relu_ with no reader; fc reads x
        return self.fc(x)


class _BadArguments(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).chunk(0, dim=1)[0]


def test_in_place_ops_and_unreadable_arguments_are_refused() -> None:
    with pytest.raises(UnsupportedLayerError, match=r"node 'relu_' \(method \.relu_\(\)\) .* changes a tensor in place"):
        from_torch(_InPlace())
    with pytest.raises(UnsupportedLayerError, match=r"node 'chunk' .*symnet cannot read this call's arguments "
                                                    r"\(ZeroDivisionError"):
        from_torch(_BadArguments())
    with pytest.raises(symnet.InputError, match=r"input_sizes=\['a'\]: give a list of whole numbers"):
        from_torch(_BadArguments(), input_sizes=["a"])


def test_the_check_runs_on_copies_of_its_points() -> None:
    """A forward that changes its input in place (x += 1) must not change the points symnet is checked on."""
    class Shifts(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.fc(x)
            x += 1.0  # after its last use: the traced graph and symnet agree on fc(x)
            return y

    net = from_torch(Shifts().double())
    assert net.n_outputs == 1


def test_a_column_pytorch_holds_as_n_is_not_broadcast_against_wide_tensors() -> None:
    class Mixes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)[:, 0] * self.fc(x)

    with pytest.raises(UnsupportedLayerError, match=r"node 'mul' .* holds as \(N,\) .* broadcasts to \(N, N\)"):
        from_torch(Mixes())


@pytest.mark.parametrize("seed", range(4))
def test_float32_weight_norm_modules_import(seed: int) -> None:
    """The parametrization is evaluated in float64, as the check evaluates it (float32 differed by 1.7e-8)."""
    from torch.nn.utils.parametrizations import weight_norm

    torch.manual_seed(seed)
    module = nn.Sequential(weight_norm(nn.Linear(3, 4)), nn.Tanh(), nn.Linear(4, 1))
    assert from_torch(module).n_inputs == 3


def test_unsqueeze_gives_an_n_column_back_and_squeeze_makes_one() -> None:
    class Columns(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.tanh(self.fc(x))
            u = (h[:, 0] * h[:, 1]).unsqueeze(1)  # (N,) ops, then a column again
            s = h.sum(-1).unsqueeze(-1)
            return torch.cat([u, s, torch.sin(h[:, 2:3].squeeze(1)).unsqueeze(1)], dim=1) * h

    module = Columns().double()
    net = from_torch(module)  # checked against the module
    X = np.random.default_rng(0).normal(size=(4, 2))
    np.testing.assert_allclose(symnet.compile(net, "value", backend="numpy")(X).value,
                               module(torch.as_tensor(X)).detach().numpy(), rtol=1e-14)
    class Wide(Columns):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x).unsqueeze(1)

    with pytest.raises(UnsupportedLayerError, match=r"Wide\.forward's output 0 is held as \(N, 1, 3\); symnet's "
                                                    r"outputs are \(N, w\) or \(N,\): squeeze or view it back"):
        from_torch(Wide())


class Constants(torch.nn.Module):
    """Buffers and numbers in arithmetic (fixed) beside bare parameters in arithmetic (trained)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.5, -1.0]))
        self.register_buffer("std", torch.tensor([2.0, 0.5]))
        self.fc, self.out = torch.nn.Linear(2, 4), torch.nn.Linear(4, 1)
        self.alpha = torch.nn.Parameter(torch.tensor([1.0, 0.5, 2.0, 1.5]))  # an adaptive activation's slopes
        self.offset = torch.nn.Parameter(torch.tensor(0.25))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.alpha * self.fc((x - self.mean) / self.std))
        return self.out(h) - self.offset + 2.0 * h[:, :1]


def test_buffers_and_numbers_are_fixed_and_bare_parameters_are_trained() -> None:
    """A buffer or a number in ``forward``'s arithmetic is a fixed rescale (fit must not train an
    input normalisation); an ``nn.Parameter`` there is a scale/shift parameter whose loss gradient
    is PyTorch's."""
    torch.manual_seed(0)
    module = Constants().double()
    net = from_torch(module)
    extra = {node.op: np.asarray(node.params[name], dtype=np.float64).ravel().tolist()
             for node in net.graph.nodes[1:] if node.op in ("scale", "shift") for name in node.params}
    assert extra == {"scale": [1.0, 0.5, 2.0, 1.5], "shift": [-0.25]}
    assert sum(node.op == "rescale" for node in net.graph.nodes) == 3  # (x - mean) / std as two, and 2.0 * h
    X = np.random.default_rng(0).uniform(-1, 1, (9, 2))
    Y = np.random.default_rng(1).normal(size=(9, 1))
    _, grads = symnet.compile_loss(net, "mse")(X, Y)
    loss = ((module(torch.as_tensor(X)) - torch.as_tensor(Y)) ** 2).mean()
    loss.backward()
    (scale,) = [node.name for node in net.graph.nodes if node.op == "scale"]
    (shift,) = [node.name for node in net.graph.nodes if node.op == "shift"]
    np.testing.assert_allclose(grads[scale]["s"].ravel(), module.alpha.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(grads[shift]["t"].ravel(), -module.offset.grad.numpy().reshape(1), rtol=1e-12)


class _Quotients(torch.nn.Module):
    """Division by tensors and the elementwise functions symnet writes by their forms."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        soft = h / (1 + torch.abs(h))  # softsign written out
        unit = h * torch.rsqrt((h * h).sum(-1, keepdim=True) + 1e-3)
        return torch.cat([soft, unit / torch.sqrt(1 + h * h), torch.log(1 + h * h), torch.reciprocal(2 + h.tanh()),
                          torch.erf(h)], dim=1)


def test_division_by_tensors_and_form_functions_match_autograd() -> None:
    torch.manual_seed(3)
    module = _Quotients().double()
    net = from_torch(module)
    X = np.random.default_rng(2).uniform(-1.5, 1.5, (5, 2))
    _assert_like_autograd(module, net, [2], X)
    names = {node.activation.name for node in net.graph.nodes if node.op == "activation"}
    assert {"t -> Abs(t)", "t -> 1/sqrt(t)", "t -> sqrt(t)", "t -> 1/t", "t -> log(t)", "t -> erf(t)"} <= names


class _ImplicitDim(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.log_softmax(self.fc(x)) * torch.softmax(self.fc(x), -1)


@pytest.mark.filterwarnings("ignore:Implicit dimension choice:UserWarning")
def test_softmax_without_dim_is_over_the_features() -> None:
    """PyTorch's implicit dim for an (N, features) input is 1 (deprecated, and checked on import)."""
    module = _ImplicitDim().double()
    net = from_torch(module)
    X = np.random.default_rng(0).uniform(-1, 1, (4, 2))
    value, jac, _ = _reference(module, [2], X)
    result = symnet.compile(net, ("value", "jacobian"), backend="numpy")(X)
    np.testing.assert_allclose(result.value, value, rtol=1e-13)
    np.testing.assert_allclose(result.jacobian, jac, rtol=1e-12, atol=1e-14)


class _Untrained(torch.nn.Module):
    """What PyTorch does not train: a frozen Parameter, a buffer as F.prelu's slope, LayerNorm without
    its affine parameters; and clamps of values that reach infinity."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
        self.frozen = torch.nn.Parameter(torch.tensor(0.5), requires_grad=False)
        self.register_buffer("slope", torch.tensor([0.1, 0.2, 0.3]))
        self.norm = torch.nn.LayerNorm(3, elementwise_affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.prelu(self.norm(self.fc(x)), self.slope) + self.frozen
        r = x[:, :1] ** -1  # infinite at x0 = 0, clamped to finite values below
        clamped = torch.minimum(r, torch.tensor(5.0)) + torch.maximum(-r, torch.tensor(-5.0))
        return self.out(h) + clamped + torch.minimum(torch.rsqrt(x[:, 1:] ** 2), torch.tensor(1e12)) * x[:, 1:]


def test_what_pytorch_does_not_train_is_fixed_and_clamps_of_infinity_are_finite(tmp_path: Path) -> None:
    torch.manual_seed(2)
    module = _Untrained().double()
    net = from_torch(module)
    assert not [node for node in net.graph.nodes if node.op in ("scale", "shift")]  # no parameter but the Linears'
    X = np.array([[0.0, 0.0], [0.5, -0.25], [-1.0, 2.0]])
    want = module(torch.as_tensor(X)).detach().numpy()
    for backend in ("numpy", "numba"):
        np.testing.assert_allclose(symnet.compile(net, "value", backend=backend)(X).value, want, rtol=1e-13)
    assert np.isfinite(want).all()
    symnet.save(net, tmp_path / "untrained.json")  # form activations (t -> 1/t, Min(t, 5.0)) are saved by form
    assert symnet.load(tmp_path / "untrained.json") == net


class _Aliases(torch.nn.Module):
    """``torch.special`` and the other names PyTorch gives ops symnet reads: ``special.expit``,
    ``special.erf``, ``special.softmax``, ``special.log_softmax``, ``absolute``, ``negative``,
    ``multiply``, ``subtract``, ``divide``, ``concatenate``; ``absolute`` of a column held as ``(N,)``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        gate = torch.special.expit(h) + torch.special.erf(h).multiply(h)
        log_p = torch.special.log_softmax(torch.subtract(gate, h), 1)
        p = torch.special.softmax(torch.divide(log_p, 3.0), dim=-1)
        column = torch.absolute(p[:, 0]).unsqueeze(1)
        return torch.concatenate([self.out(p * gate), column, torch.negative(h[:, 1:2])], dim=1)


def test_torch_special_and_alias_names_are_read_and_match_autograd() -> None:
    torch.manual_seed(4)
    module = _Aliases().double()
    net = from_torch(module)
    X = np.random.default_rng(5).uniform(-1.5, 1.5, (5, 3))
    _assert_like_autograd(module, net, [3], X)
    names = {node.activation.name for node in net.graph.nodes if node.op == "activation"}
    assert {"sigmoid", "t -> erf(t)", "log_softmax", "softmax", "t -> Abs(t)"} <= names
    assert {"special_expit", "special_erf", "special_softmax", "special_log_softmax"} <= set(OPS)
    assert OPS["special_expit"].summary == OPS["sigmoid"].summary


class _FloorDivide(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.divide(x, 2.0, rounding_mode="floor")


def test_an_alias_is_read_as_strictly_as_its_op() -> None:
    with pytest.raises(UnsupportedLayerError, match=r"function divide.*takes two operands, got 2 and "
                                                    r"\['rounding_mode'\]"):
        from_torch(_FloorDivide(), input_sizes=[2])


class _Reshapes(torch.nn.Module):
    """The reshapes PyTorch code is written with, each keeping ``(N, w)`` (or an ``(N, 1)`` column as
    ``(N,)`` and back): the batch size read by ``size(0)``, ``shape[0]``, ``size()`` and unpacking,
    ``-1`` inferred, shape arithmetic, flatten, unsqueeze then squeeze or view, buffers reshaped."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.mid, self.out = torch.nn.Linear(3, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
        self.register_buffer("mean", torch.tensor([[0.5, -1.0, 0.25]]))
        self.gain = torch.nn.Parameter(torch.tensor([1.0, 0.5, 2.0, 1.5]))
        self.flat = torch.nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(x.size(0), -1) - self.mean.view(-1)  # the first op: the input's width is read through it
        h = torch.tanh(self.fc(x)).reshape(x.shape[0], -1) * self.gain.unsqueeze(0)
        n, w = h.shape
        h = self.mid(h.view(n, w).flatten(1) + torch.flatten(h, 1)).view(-1, h.size(1) // 2 * 2)
        size = h.size()
        wide = h.unsqueeze(-1).view(size[0], -1) + self.flat(h.unsqueeze(1)) + h.unsqueeze(1).squeeze(1)
        u = self.out(torch.sin(wide).reshape(h.size(0) * 1, size[1] + 0)).view(-1)  # (N,) from here
        v = (u * u).reshape(-1, 1).view_as(u).flatten()  # (N, 1) and back to (N,)
        return torch.cat([v.view(-1, 1), u.unsqueeze(-1), wide.reshape_as(h)], dim=1)


@pytest.mark.filterwarnings("ignore:`torch.jit.script.*` is deprecated:DeprecationWarning")  # torch.compile's import
@pytest.mark.parametrize("compiled", [False, True])
def test_reshapes_that_keep_n_w_are_the_identity_and_match_autograd(compiled: bool) -> None:
    torch.manual_seed(6)
    module = _Reshapes().double()
    net = from_torch(torch.compile(module) if compiled else module)  # checked against the module itself
    assert (net.n_inputs, net.n_outputs) == (3, 6)
    assert not {"view", "reshape", "flatten", "size"} & {node.name for node in net.graph.nodes}
    X = np.random.default_rng(4).uniform(-1.5, 1.5, (6, 3))
    _assert_like_autograd(module, net, [3], X, ("expression", "layered"))
    (scale,) = [node for node in net.graph.nodes if node.op == "scale"]  # gain.unsqueeze(0): still trained
    np.testing.assert_array_equal(np.ravel(scale.params["s"]), [1.0, 0.5, 2.0, 1.5])


class _Shaped(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(2, 4)


class _IntoTwoRows(_Shaped):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).view(2, -1)


class _IntoAMatrix(_Shaped):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).view(x.size(0), 2, 2)


class _TwiceThePoints(_Shaped):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).reshape(x.shape[0] * 2, -1)


class _TimesTheBatchSize(_Shaped):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * x.size(0)


class _AllInOneRow(_Shaped):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).view(-1)


class _FlattenAll(_Shaped):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.fc(x))


class _SqueezeAny(_Shaped):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)[:, :1].squeeze()


class _SqueezeThePoints(_Shaped):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).squeeze(0)


class _ActivationOfUnsqueezed(_Shaped):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(x).unsqueeze(-1)).squeeze(-1)


class _UnpackAColumn(_Shaped):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, w = self.fc(x)[:, 0].shape
        return self.fc(x).view(n, w)


class _FloorOfTensor(_Shaped):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) // 2


class _FloatEntry(_Shaped):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).view(x.size(0) / 1, -1)


_AT = r" at test_io_torch_graph\.py:\d+ in forward: "  # the line of forward each refusal names


@pytest.mark.parametrize("module, message", [
    (_IntoTwoRows(), r"node 'view' \(method \.view\(\)\)" + _AT + r"return self\.fc\(x\)\.view\(2, -1\): view of an "
                     r"\(N, 4\) value to \(2, -1\) would merge or split the points; symnet reads reshapes that keep "
                     r"the points on the first axis"),
    (_IntoAMatrix(), r"node 'view' \(method \.view\(\)\)" + _AT + r".*: gives an \(N, 2, 2\) value from an \(N, 4\) "
                     r"one; symnet's tensors are \(N, features\): it reads reshapes that keep \(N, 4\)"),
    (_TwiceThePoints(), r"node 'mul' \(function mul\)" + _AT + r".*x\.shape\[0\] \* 2.*: N \* 2 on the batch size N; "
                        r"symnet's shape arithmetic keeps N only where it stays N"),
    (_TimesTheBatchSize(), r"node 'mul' \(function mul\)" + _AT + r".* computes with the batch size N "
                           r"\(x\.size\(0\), x\.shape\[0\]\); symnet keeps N a symbol of shapes"),
    (_AllInOneRow(), r"node 'view' \(method \.view\(\)\)" + _AT + r".*: view of an \(N, 4\) value to \(-1,\) would "
                     r"merge or split the points"),
    (_FlattenAll(), r"node 'flatten' \(function flatten\)" + _AT + r".*: flatten\(start_dim=0, end_dim=-1\) of an "
                    r"\(N, 4\) value would merge the points with the features; symnet reads flatten\(1\)"),
    (_SqueezeAny(), r"node 'squeeze' \(method \.squeeze\(\)\)" + _AT + r".*: squeeze\(\) without a dim also drops "
                    r"the batch axis when N == 1; name the axes"),
    (_SqueezeThePoints(), r"node 'squeeze' \(method \.squeeze\(\)\)" + _AT + r".*: squeeze of the batch axis of an "
                          r"\(N, 4\) value"),
    (_ActivationOfUnsqueezed(), r"node 'tanh' \(function tanh\)" + _AT + r".* reads an \(N, 4, 1\) value \(an "
                                r"\(N, 4\) tensor with axes of length 1 added\); symnet reads it only back to "
                                r"\(N, w\)"),
    (_UnpackAColumn(), r"node 'getitem_\d' \(function getitem\)" + _AT + r"n, w = self\.fc\(x\)\[:, 0\]\.shape: "
                       r"index 1 of the shape \(N,\) of 1 entries"),
    (_FloorOfTensor(), r"node 'floordiv' \(function floordiv\)" + _AT + r".*: floor division of a tensor"),
    (_FloatEntry(), r"node 'truediv' \(function truediv\)" + _AT + r".* computes with the batch size N"),
])
def test_reshapes_that_do_not_keep_n_w_are_refused_with_the_line(module: nn.Module, message: str) -> None:
    with pytest.raises(UnsupportedLayerError, match=message):
        from_torch(module)
