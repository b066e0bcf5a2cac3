"""The reference networks of the benchmark, as plain weight lists shared by every comparator.

Each net computes ``y = act(x @ W + b)`` layer by layer (``W`` of shape ``(fan_in, fan_out)``,
float64), the last layer linear.  Weights come from a fixed seed, so every run and every
comparator sees the same numbers.  Two suites:

- ``hessian`` (issue 3): value + gradient + Hessian at N points, nets T1-T6;
- ``laplacian`` (issue 5): value + Laplacian at N points, nets L1-L3.

Activations are written once, as functions of an array namespace ``m`` (numpy, ``jax.numpy``,
``torch`` or ``casadi``: all four have ``tanh``, ``exp`` and ``log``), so that every framework
evaluates the same formula.  The numpy baseline also needs the first and second derivatives;
they sit next to the forward form in :data:`ACTIVATIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

Array = Any  # an array of whichever framework evaluates the net
Namespace = Any  # a module with tanh, exp and log: numpy, jax.numpy, torch, casadi

HESSIAN, LAPLACIAN = "hessian", "laplacian"
SUITES = (HESSIAN, LAPLACIAN)


@dataclass(frozen=True)
class ActivationForms:
    """One activation: its forward form for any namespace, and numpy derivatives for the baseline.

    Attributes:
        form: ``form(z, m)`` -> ``act(z)`` elementwise, ``m`` an array namespace.
        derivatives: ``derivatives(z)`` -> ``(act(z), act'(z), act''(z))`` for a numpy array ``z``.
    """

    form: Callable[[Array, Namespace], Array]
    derivatives: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def _tanh(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.tanh(z)
    d1 = 1.0 - t * t
    return t, d1, -2.0 * t * d1


def _sigmoid(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = 1.0 / (1.0 + np.exp(-z))
    d1 = s * (1.0 - s)
    return s, d1, d1 * (1.0 - 2.0 * s)


def _softplus(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = 1.0 / (1.0 + np.exp(-z))
    return np.logaddexp(0.0, z), s, s * (1.0 - s)


def _square(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return z * z, 2.0 * z, np.full_like(z, 2.0)


def _linear(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return z, np.ones_like(z), np.zeros_like(z)


#: The activations the reference nets use; names as in symnet's registry.
ACTIVATIONS: dict[str, ActivationForms] = {
    "tanh": ActivationForms(lambda z, m: m.tanh(z), _tanh),
    "sigmoid": ActivationForms(lambda z, m: 1.0 / (1.0 + m.exp(-z)), _sigmoid),
    # log(1 + exp(z)): exact enough for the pre-activations of these nets (|z| < 30)
    "softplus": ActivationForms(lambda z, m: m.log(1.0 + m.exp(z)), _softplus),
    "square": ActivationForms(lambda z, m: z * z, _square),
    "linear": ActivationForms(lambda z, m: z, _linear),
}


@dataclass(frozen=True)
class RefNet:
    """A reference net and its benchmark task.

    Attributes:
        name: short id (``"T3"``).
        title: what it is, for the table (``"1-32-32-1 tanh"``).
        weights: per layer, float64 ``(fan_in, fan_out)``.
        biases: per layer, float64 ``(fan_out,)``.
        activations: per layer, a key of :data:`ACTIVATIONS` (and a symnet activation name).
        n_points: N of the full benchmark (``--quick`` divides it by 100).
        task: :data:`HESSIAN` (value, gradient, Hessian) or :data:`LAPLACIAN` (value, Laplacian).
    """

    name: str
    title: str
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activations: tuple[str, ...]
    n_points: int
    task: str

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer widths, input first: ``(1, 32, 32, 1)``."""
        return (self.weights[0].shape[0],) + tuple(w.shape[1] for w in self.weights)

    @property
    def n_inputs(self) -> int:
        return self.sizes[0]

    def layers(self, convert: Callable[[np.ndarray], Array] = lambda a: a) -> list[tuple[Array, Array, str]]:
        """``[(W, b, activation), ...]`` with ``W`` and ``b`` passed through ``convert``."""
        return [(convert(w), convert(b), act) for w, b, act in zip(self.weights, self.biases, self.activations)]

    def symnet_network(self) -> Any:
        """The same net as a :class:`symnet.Network`."""
        import symnet

        return symnet.Network.from_weights(list(self.weights), list(self.biases), list(self.activations))

    def points(self, n: int, seed: int = 1) -> np.ndarray:
        """``n`` evaluation points, float64 ``(n, n_inputs)``, standard normal from a fixed seed."""
        return np.random.default_rng(seed).standard_normal((n, self.n_inputs))

    def flops_per_point(self) -> int:
        """FLOPs per point of value + derivatives, the cheaper of two schedules (used for the floor).

        :meth:`forward_flops` and, for Hessians, :meth:`adjoint_flops`.
        """
        if self.task == HESSIAN and len(self.weights) > 1:
            return min(self.forward_flops(), self.adjoint_flops())
        return self.forward_flops()

    def adjoint_flops(self) -> int:
        """FLOPs per point of value, gradient and Hessian by forward tangents and one adjoint sweep.

        Forward: value and ``d`` tangents through every layer (layer 1: the value only), the
        chain rule ``3 + d`` per unit.  Back (one output): one stream through every layer but
        the first, and per unit of a nonlinear layer ``2`` (``g f''``, ``g f'``) plus ``3s``
        for its Hessian term; layer 1's term is a product ``2 b s``.
        """
        d = self.n_inputs
        second = d * (d + 1) // 2
        total = 0
        for layer, (w, act) in enumerate(zip(self.weights, self.activations)):
            a, b = w.shape
            total += 2 * a * b * (1 if layer == 0 else 1 + d)  # forward
            total += 2 * a * b if layer else 0  # the adjoint back through W
            if act != "linear":
                total += b * (3 + d) + b * (2 + 3 * second if layer else 1 + 2 * second)
        return total

    def forward_flops(self) -> int:
        """FLOPs per point of forward-mode value + derivatives.

        Forward mode carries, per unit, the value, ``d`` first-order tangents and either the
        ``s = d(d+1)/2`` distinct second-order terms (Hessian task) or one Laplacian term.
        Per layer ``a -> b``: the matmuls cost ``2ab`` per carried quantity (layer 1 carries only
        the value: its tangents are the rows of ``W``, its second-order terms are
        ``act''(z) W_i W_j``); the chain rule per unit costs ``d`` (tangents) and ``3s``
        (``act'' g_i g_j + act' h_ij``) or ``3d + 2`` (``act'' |g|^2 + act' lap``).  An
        activation counts as 3 FLOPs (value and two derivatives); linear layers have no chain
        rule cost.
        """
        d = self.n_inputs
        second = d * (d + 1) // 2 if self.task == HESSIAN else 1
        chain = 3 * second if self.task == HESSIAN else 3 * d + 2
        total = 0
        for layer, (w, act) in enumerate(zip(self.weights, self.activations)):
            a, b = w.shape
            total += 2 * a * b * (1 if layer == 0 else 1 + d + second)
            if act != "linear":
                total += b * (3 + d + chain)
        return total

    def bytes_per_point(self) -> int:
        """Bytes each point must move at least: its inputs read, its results written (float64)."""
        d = self.n_inputs
        outputs = 1 + d + d * d if self.task == HESSIAN else 2
        return 8 * (d + outputs)


def forward_with(layers: Sequence[tuple[Array, Array, str]], x: Array, m: Namespace) -> Array:
    """The output of ``layers`` (from :meth:`RefNet.layers`) for ``x`` of shape ``(..., n_inputs)``.

    ``m`` is the array namespace of ``x`` and of the converted weights; the result has shape
    ``(..., 1)``.
    """
    for w, b, act in layers:
        x = ACTIVATIONS[act].form(x @ w + b, m)
    return x


def _random_net(name: str, sizes: Sequence[int], activation: str, n_points: int, task: str,
                seed: int = 0) -> RefNet:
    """A net with ``W ~ N(0, 1/fan_in)``, ``b ~ N(0, 0.01)`` from ``seed``; last layer linear."""
    rng = np.random.default_rng(seed)
    weights = tuple(rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(sizes, sizes[1:]))
    biases = tuple(0.1 * rng.standard_normal(b) for b in sizes[1:])
    acts = (activation,) * (len(sizes) - 2) + ("linear",)
    title = "-".join(map(str, sizes)) + f" {activation}"
    return RefNet(name, title, weights, biases, acts, n_points, task)


def _given_net(name: str, title: str, weights: Sequence[Sequence[Sequence[float]]],
               biases: Sequence[Sequence[float]], activations: Sequence[str], n_points: int) -> RefNet:
    return RefNet(name, title, tuple(np.array(w, dtype=np.float64) for w in weights),
                  tuple(np.array(b, dtype=np.float64) for b in biases), tuple(activations), n_points, HESSIAN)


#: Every reference net, in table order.
NETS: dict[str, RefNet] = {net.name: net for net in (
    _given_net("T1", "1-1-1 square (003's parabola)", [[[-1.3284513]], [[0.5667597]]],
               [[-1.328055], [1.0003909]], ["square", "linear"], 10**6),
    _given_net("T2", "2-2-2-1 sigmoid, all ones (001)", [np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 1))],
               [np.ones(2), np.ones(2), np.zeros(1)], ["sigmoid", "sigmoid", "linear"], 10**6),
    _random_net("T3", [1, 32, 32, 1], "tanh", 10**6, HESSIAN),
    _random_net("T4", [2, 64, 64, 64, 1], "tanh", 10**5, HESSIAN),
    _random_net("T5", [3, 128, 128, 128, 128, 1], "softplus", 10**5, HESSIAN),
    _random_net("T6", [2, 4, 4, 1], "tanh", 10**6, HESSIAN),  # a net of a few units (issue 17)
    _random_net("L1", [2, 64, 64, 64, 1], "tanh", 10**5, LAPLACIAN),
    _random_net("L2", [8, 128, 128, 128, 1], "tanh", 2 * 10**4, LAPLACIAN),
    _random_net("L3", [32, 256, 256, 256, 1], "tanh", 4 * 10**3, LAPLACIAN),
)}


#: The higher-order requests (benchmarks/higher_order.py, and old-against-new in
#: benchmarks/ab.py): name -> (net, partials asked for besides the value, label).
HIGHER_ORDER: dict[str, tuple[RefNet, tuple[tuple[int, ...], ...], str]] = {
    "K1": (_random_net("K1", [1, 64, 64, 1], "tanh", 10**5, HESSIAN), ((0,), (0, 0, 0)), "u, u_x, u_xxx"),
    "K2": (_random_net("K2", [2, 64, 64, 64, 1], "tanh", 10**5, HESSIAN), ((0, 0, 0), (0, 1, 1)), "u, u_xxx, u_xyy"),
    "B1": (_random_net("B1", [2, 64, 64, 64, 1], "tanh", 10**5, HESSIAN), ((0, 0, 0, 0), (0, 0, 1, 1), (1, 1, 1, 1)),
           "u, u_xxxx, u_xxyy, u_yyyy"),
}
