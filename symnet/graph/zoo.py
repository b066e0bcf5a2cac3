"""The PINN zoo: the networks physics-informed users train, written with the graph builder.

Each function builds one architecture, numeric (weights drawn from a seeded NumPy generator)
or symbolic (``symbolic=True``: every trainable parameter a named real symbol).  Sizes are
arguments, so the same function gives the 2-unit nets the tests differentiate by hand and the
128-unit nets of the benchmarks.

The two modes draw the same random numbers in the same order, so a symbolic net and the
numeric net of the same seed share their constants (a Fourier matrix, a normalisation's mean)
and ``symbolic.subs(parameter_values(symbolic, numeric))`` is the numeric net.

>>> from symnet.graph import zoo
>>> net = zoo.resnet_mlp(d_in=2, width=3, blocks=2)
>>> net
Network(graph 2 -> 1: z1, a1, z2, a2, add1, z3, a3, add2, z4; numeric)
>>> sorted(zoo.ZOO)  # doctest: +NORMALIZE_WHITESPACE
['deeponet', 'fourier_mlp', 'layer_norm_mlp', 'modified_mlp', 'normalized_two_heads', 'pirate_net',
 'resnet_mlp', 'weight_norm_mlp']
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import sympy

from ..errors import ShapeError, WeightError
from . import builder as _g
from .builder import Tensor

__all__ = ["ZOO", "deeponet", "fourier_mlp", "layer_norm_mlp", "modified_mlp", "normalized_two_heads",
           "parameter_values", "pirate_net", "resnet_mlp", "weight_norm_mlp"]


class _Params:
    """Draws every parameter from one seeded generator; symbolic mode names it instead.

    Both modes draw the same numbers in the same order (the values of a symbolic net are what
    its numeric twin holds), and the symbols are named like :meth:`Network.symbolic`'s:
    ``w{k}_{i}_{j}``, ``b{k}_{j}`` for the k-th dense layer, ``{name}{k}_{j}`` for others.
    """

    def __init__(self, seed: int, symbolic: bool) -> None:
        self.rng = np.random.default_rng(seed)
        self.symbolic = bool(symbolic)
        self.counts: dict[str, int] = {}

    def number(self, kind: str) -> int:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return self.counts[kind]

    def _named(self, values: np.ndarray, name: Callable[..., str]) -> Any:
        if not self.symbolic:
            return values
        symbols = np.empty(values.shape, dtype=object)
        for index in np.ndindex(values.shape):
            symbols[index] = sympy.Symbol(name(*index), real=True)
        return symbols

    def row(self, values: np.ndarray, name: str) -> Any:
        """A trainable row (or a scalar for one entry): symbols ``{name}_{j}`` (``{name}``)."""
        values = np.asarray(values, dtype=float).reshape(-1)
        if values.size == 1:
            return self._named(values, lambda j: name)
        return self._named(values, lambda j: f"{name}_{j}")

    def dense(self, h: Tensor, units: int, activation: Any = None, parametrization: str = "plain") -> Tensor:
        """``activation(h @ W + b)`` with Glorot-normal ``W`` and small random ``b``."""
        k = self.number("dense")
        fan_in = h.width
        W = self.rng.normal(scale=math.sqrt(2.0 / (fan_in + units)), size=(fan_in, units))
        b = self.rng.normal(scale=0.1, size=units)
        bias = self._named(b, lambda j: f"b{k}_{j}")
        if parametrization == "weight_norm":
            g = self.rng.uniform(0.5, 1.5, size=units)
            v = self._named(W, lambda i, j: f"v{k}_{i}_{j}")
            return _g.dense(h, units, bias, activation, parametrization="weight_norm", v=v,
                            g=self._named(g, lambda j: f"g{k}_{j}"))
        if parametrization == "factorized":
            s = self.rng.normal(scale=0.1, size=units)
            return _g.dense(h, units, bias, activation, parametrization="factorized",
                            s=self._named(s, lambda j: f"s{k}_{j}"), V=self._named(W, lambda i, j: f"V{k}_{i}_{j}"))
        return _g.dense(h, self._named(W, lambda i, j: f"w{k}_{i}_{j}"), bias, activation)


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        _g.check_units(value, name)


def _finish(params: _Params, inputs: Any, outputs: Any) -> Any:
    return _g.network(inputs, outputs)


def parameter_values(symbolic: Any, numeric: Any) -> dict[sympy.Symbol, sympy.Expr]:
    """The value ``numeric`` holds for each parameter of ``symbolic``, two nets of one architecture
    (a zoo net built with ``symbolic=True`` and without, same seed): ``symbolic.subs(values) == numeric``.

    >>> sym = resnet_mlp(d_in=1, width=2, blocks=1, symbolic=True)
    >>> num = resnet_mlp(d_in=1, width=2, blocks=1)
    >>> sym.subs(parameter_values(sym, num)) == num
    True
    """
    a, b = symbolic.graph, numeric.graph
    if [(n.name, n.op) for n in a.nodes] != [(n.name, n.op) for n in b.nodes]:
        raise ShapeError("parameter_values needs two nets of one architecture (the same nodes, in order)")
    values: dict[sympy.Symbol, sympy.Expr] = {}
    for node in a.nodes:
        other = b.by_name[node.name]
        for key, matrix in node.params.items():
            for entry, value in zip(matrix, other.params[key]):
                if isinstance(entry, sympy.Symbol):
                    values[entry] = value
                elif entry != value:
                    raise WeightError(f"node {node.name!r}: parameter {key} holds {entry} and {value}")
    return values


def resnet_mlp(d_in: int = 2, width: int = 16, blocks: int = 3, d_out: int = 1, activation: Any = "tanh", *,
               seed: int = 0, symbolic: bool = False) -> Any:
    """A residual MLP: ``h = f(dense(x))``, then ``blocks`` times ``h = h + f(dense(h))``, then a linear head.

    >>> net = resnet_mlp(d_in=1, width=2, blocks=1, symbolic=True)
    >>> len(net.params), net.n_outputs
    (13, 1)
    """
    _check_sizes(d_in=d_in, width=width, blocks=blocks, d_out=d_out)
    p = _Params(seed, symbolic)
    x = _g.input(d_in)
    h = p.dense(x, width, activation)
    for _ in range(blocks):
        h = h + p.dense(h, width, activation)
    return _finish(p, x, p.dense(h, d_out))


def _gates(p: _Params, x: Tensor, width: int, activation: Any) -> tuple[Tensor, Tensor]:
    return p.dense(x, width, activation), p.dense(x, width, activation)


def _gate(h: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """``h * u + (1 - h) * v``: jaxpi's gating of a hidden layer by the two encoders."""
    return h * u + (1 - h) * v


def modified_mlp(d_in: int = 2, width: int = 16, depth: int = 3, d_out: int = 1, activation: Any = "tanh", *,
                 seed: int = 0, symbolic: bool = False) -> Any:
    """jaxpi's ModifiedMlp: gates ``u = f(x U + c)``, ``v = f(x V + d)``; each of ``depth`` hidden
    layers ``h = f(dense(h))`` then ``h = h * u + (1 - h) * v``; a linear head.

    >>> net = modified_mlp(d_in=2, width=2, depth=1)
    >>> [n.op for n in net.graph.nodes if n.op in ("mul", "rescale")]
    ['mul', 'rescale', 'mul']
    """
    _check_sizes(d_in=d_in, width=width, depth=depth, d_out=d_out)
    p = _Params(seed, symbolic)
    x = _g.input(d_in)
    u, v = _gates(p, x, width, activation)
    h = x
    for _ in range(depth):
        h = _gate(p.dense(h, width, activation), u, v)
    return _finish(p, x, p.dense(h, d_out))


def pirate_net(d_in: int = 2, width: int = 16, blocks: int = 1, d_out: int = 1, activation: Any = "tanh", *,
               seed: int = 0, symbolic: bool = False) -> Any:
    """jaxpi's PirateNet: an embedding ``h = f(dense(x))``, gates ``u``, ``v`` as in :func:`modified_mlp`,
    then per block three gated layers ``f``, ``g``, ``r`` and the adaptive residual
    ``h = alpha * r + (1 - alpha) * h`` (:func:`symnet.graph.blend`, ``alpha`` trainable); a linear head.

    jaxpi starts each ``alpha`` at 0 (a block is then the identity); here it is drawn from
    ``[0.2, 0.8]`` so that every path of the block counts.

    >>> net = pirate_net(d_in=2, width=2, blocks=1, symbolic=True)
    >>> [s for s in net.params if s.name.startswith("alpha")]
    [alpha1]
    """
    _check_sizes(d_in=d_in, width=width, blocks=blocks, d_out=d_out)
    p = _Params(seed, symbolic)
    x = _g.input(d_in)
    h = p.dense(x, width, activation)
    u, v = _gates(p, h, width, activation)
    for _ in range(blocks):
        f = _gate(p.dense(h, width, activation), u, v)
        g = _gate(p.dense(f, width, activation), u, v)
        r = p.dense(g, width, activation)
        alpha = p.row(p.rng.uniform(0.2, 0.8, size=1), f"alpha{p.number('alpha')}")
        h = _g.blend(r, h, alpha)
    return _finish(p, x, p.dense(h, d_out))


def fourier_mlp(d_in: int = 2, features: int = 8, width: int = 16, depth: int = 2, d_out: int = 1,
                sigma: float = 1.0, activation: Any = "tanh", *, seed: int = 0, symbolic: bool = False) -> Any:
    """An MLP on Fourier features ``[cos(x B), sin(x B)]``, ``B`` ``(d_in, features)`` fixed, drawn
    ``N(0, sigma^2)`` (the same in both modes: it is a constant, not a parameter).

    >>> net = fourier_mlp(d_in=1, features=2, width=2, depth=1)
    >>> [n.op for n in net.graph.nodes[1:5]]
    ['matmul', 'activation', 'activation', 'concat']
    """
    _check_sizes(d_in=d_in, features=features, width=width, depth=depth, d_out=d_out)
    p = _Params(seed, symbolic)
    x = _g.input(d_in)
    B = p.rng.normal(scale=sigma, size=(d_in, features))
    h = _g.fourier_features(x, B)
    for _ in range(depth):
        h = p.dense(h, width, activation)
    return _finish(p, x, p.dense(h, d_out))


def deeponet(sensors: int = 4, coords: int = 1, width: int = 16, depth: int = 2, p: int = 8,
             activation: Any = "tanh", *, seed: int = 0, symbolic: bool = False) -> Any:
    """A DeepONet: a branch net on ``sensors`` sensor values ``u0..``, a trunk net on ``coords``
    coordinates ``x0..`` (two ``input()`` tensors, in that order), ``p`` features each, output
    ``inner(branch, trunk) + bias``.

    >>> net = deeponet(sensors=2, coords=1, width=2, depth=1, p=2)
    >>> [s.name for s in net.inputs], net.n_outputs
    (['u0', 'u1', 'x0'], 1)
    """
    _check_sizes(sensors=sensors, coords=coords, width=width, depth=depth, p=p)
    params = _Params(seed, symbolic)
    u = _g.input(sensors, names=[f"u{i}" for i in range(sensors)], name="sensors")
    y = _g.input(coords, names=[f"x{i}" for i in range(coords)], name="coords")
    branch, trunk = u, y
    for _ in range(depth):
        branch = params.dense(branch, width, activation)
    branch = params.dense(branch, p)
    for _ in range(depth):
        trunk = params.dense(trunk, width, activation)
    trunk = params.dense(trunk, p, activation)
    bias = params.row(params.rng.normal(scale=0.1, size=1), "bias")
    return _finish(params, [u, y], _g.shift(_g.inner(branch, trunk), bias))


def layer_norm_mlp(d_in: int = 2, width: int = 16, depth: int = 2, d_out: int = 1, activation: Any = "tanh", *,
                   seed: int = 0, symbolic: bool = False) -> Any:
    """An MLP whose hidden layers are ``f(layer_norm(dense(h)))``, with trainable ``gamma{k}``, ``beta{k}``.

    >>> net = layer_norm_mlp(d_in=1, width=2, depth=1, symbolic=True)
    >>> sorted(s.name for s in net.params if s.name.startswith(("gamma", "beta")))
    ['beta1_0', 'beta1_1', 'gamma1_0', 'gamma1_1']
    """
    _check_sizes(d_in=d_in, width=width, depth=depth, d_out=d_out)
    p = _Params(seed, symbolic)
    x = _g.input(d_in)
    h = x
    for _ in range(depth):
        k = p.number("norm")
        gamma = p.row(1 + p.rng.normal(scale=0.1, size=width), f"gamma{k}")
        beta = p.row(p.rng.normal(scale=0.1, size=width), f"beta{k}")
        h = _g.activation(_g.layer_norm(p.dense(h, width), gamma, beta), activation)
    return _finish(p, x, p.dense(h, d_out))


def weight_norm_mlp(d_in: int = 2, width: int = 16, depth: int = 2, d_out: int = 1, activation: Any = "silu", *,
                    seed: int = 0, symbolic: bool = False) -> Any:
    """PhysicsNeMo's fully connected net: weight-normalised dense layers
    (``W[:, j] = g_j v[:, j] / |v[:, j]|``, ``parametrization="weight_norm"``), SiLU, a linear head.

    >>> net = weight_norm_mlp(d_in=1, width=2, depth=1)
    >>> net.graph.nodes[1].attrs["parametrization"]
    'weight_norm'
    """
    _check_sizes(d_in=d_in, width=width, depth=depth, d_out=d_out)
    p = _Params(seed, symbolic)
    x = _g.input(d_in)
    h = x
    for _ in range(depth):
        h = p.dense(h, width, activation, parametrization="weight_norm")
    return _finish(p, x, p.dense(h, d_out))


def normalized_two_heads(d_in: int = 2, width: int = 16, depth: int = 2, activation: Any = "tanh",
                         mean: Sequence[float] | None = None, std: Sequence[float] | None = None, *,
                         seed: int = 0, symbolic: bool = False) -> Any:
    """Input normalisation ``(x - mean) / std`` (fixed; drawn when not given), a shared ``depth``-layer
    trunk, and two heads: a linear one and one with a hidden layer (two outputs).

    >>> net = normalized_two_heads(d_in=2, width=2, depth=1, mean=[0.5, -1.0], std=[2.0, 4.0])
    >>> net.graph.nodes[1].op, net.n_outputs
    ('rescale', 2)
    """
    _check_sizes(d_in=d_in, width=width, depth=depth)
    p = _Params(seed, symbolic)
    mean = p.rng.normal(size=d_in) if mean is None else np.asarray(mean, dtype=float)
    std = p.rng.uniform(0.5, 2.0, size=d_in) if std is None else np.asarray(std, dtype=float)
    x = _g.input(d_in)
    h = _g.normalize(x, mean, std)
    for _ in range(depth):
        h = p.dense(h, width, activation)
    first = p.dense(h, 1)
    second = p.dense(p.dense(h, width, activation), 1)
    return _finish(p, x, [first, second])


#: Every zoo constructor, by name.
ZOO: dict[str, Callable[..., Any]] = {
    "resnet_mlp": resnet_mlp,
    "modified_mlp": modified_mlp,
    "pirate_net": pirate_net,
    "fourier_mlp": fourier_mlp,
    "deeponet": deeponet,
    "layer_norm_mlp": layer_norm_mlp,
    "weight_norm_mlp": weight_norm_mlp,
    "normalized_two_heads": normalized_two_heads,
}
