"""Training with exact gradients: values, input derivatives, or both.

:func:`fit` minimises a loss over a network's weights with L-BFGS
(:func:`scipy.optimize.minimize`, ``method="L-BFGS-B"``, ``jac=True``) or Adam, using exact
compiled gradients:

* value targets only: :func:`symnet.compile_loss` (reverse mode, one BLAS product per layer);
* derivative targets (``dy``), or value targets with gaps (NaN): the exact gradient of the
  loss on values and input Jacobians, :mod:`symnet.kernels._sobolev` (forward tangents then reverse
  accumulation, or reverse over reverse when the net has fewer outputs than inputs).

The loss, for ``loss="mse"``::

    L = value_weight      * mean over given (n, k)    of (y_k(x_n) - y[n, k])**2
      + derivative_weight * mean over given (n, k, i) of (dy_k/dx_i(x_n) - dy[n, k, i])**2

where *given* means not NaN.  Networks are immutable: :func:`fit` returns a new one in a
:class:`FitResult`.  Graph networks (:mod:`symnet.graph`) train the same way: their loss
kernels go back over the graph node by node (:class:`~symnet.kernels.LossKernel`), and with
``dy`` every node carries its input tangents forward first (:class:`symnet.kernels.GraphSobolevLoss`);
the result is a network of the same graph with the trained parameters.  docs/training.md has the details, and the speed against PyTorch.
During L-BFGS, scipy's own BLAS runs on one thread (:func:`_scipy_blas_on_one_thread` says
why).  The weights travel as one float64 vector, layer by layer, each ``W`` row-major then
``b`` -- the order of ``net.params`` of the symbolic twin.

>>> import numpy as np, symnet
>>> X = np.linspace(-1, 1, 21)
>>> start = symnet.Network.symbolic([1, 1], "linear")          # y = w x + b, weights to be drawn
>>> result = fit(start, X, 3 * X - 1, seed=0)
>>> print(result.net.expr.evalf(6))
3.0*x0 - 1.0
>>> result.converged, result.history.shape == (result.n_iterations + 1,), result.loss < 1e-15
(True, True, True)
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import sympy

from .kernels import GraphSobolevLoss, SobolevLoss
from .errors import InputError, ShapeError
from .kernels import compile_loss
from .losses import check_loss, output_activation, parse_targets
from .network import Network
from .residuals import Residual, ResidualLoss, data_terms, why_not_finite
from .weights import float_array, is_float_matrix

__all__ = ["fit", "FitResult"]

OPTIMIZERS = ("lbfgs", "adam")

#: Adam's step size and moment decay rates when not given (Kingma & Ba's).
_ADAM_DEFAULTS = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
_DEFAULT_MAX_ITER = {"lbfgs": 1000, "adam": 10000}
_DEFAULT_PATIENCE = {"lbfgs": 1, "adam": 100}
_DEFAULT_PRINT_EVERY = 100

Weights = list[tuple[np.ndarray, np.ndarray]]
Callback = Callable[[int, float, Weights], Any]


@dataclass(frozen=True, eq=False)
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        net: the trained network (a new :class:`~symnet.Network`, numeric).
        history: ``(n_iterations + 1,)``: the loss on all the data at the start and after
            each iteration (an Adam epoch, or an L-BFGS iteration).
        n_iterations: iterations done.
        n_evaluations: loss-and-gradient evaluations (L-BFGS's line searches take several
            per iteration; Adam with minibatches one per batch plus one per epoch).
        converged: whether a convergence test stopped the run (``tol`` and ``patience``, or
            L-BFGS-B's own tests), rather than ``max_iter``, a callback, or divergence.
        message: why the run stopped, in words.
        optimizer: ``"lbfgs"`` or ``"adam"``.
        seconds: wall time of the run.
        terms: for residual fits, each term's share of the loss (its weight times its mean
            square) at the same iterations as ``history``, ``(n_iterations + 1,)`` each, by name:
            ``"residual"``, a :class:`~symnet.Residual`'s ``name`` (else ``"terms[k]"``),
            ``"values y"``, ``"derivatives dy"``; the shares add up to ``history``.  Empty otherwise.
    """

    net: Network
    history: np.ndarray
    n_iterations: int
    n_evaluations: int
    converged: bool
    message: str
    optimizer: str
    seconds: float = field(repr=False, default=0.0)
    terms: Mapping[str, np.ndarray] = field(repr=False, default_factory=dict)

    @property
    def loss(self) -> float:
        """The final loss, ``history[-1]``."""
        return float(self.history[-1])

    def __repr__(self) -> str:
        state = "converged" if self.converged else "not converged"
        return (f"FitResult(loss={self.loss:.6g} after {self.n_iterations} iterations of {self.optimizer}, "
                f"{state}: {self.message}; net={self.net!r})")


# --- weights as one vector ------------------------------------------------------------------


def _shapes(net: Network) -> list[tuple[int, int]]:
    return [(layer.fan_in, layer.fan_out) for layer in net.layers]


def _pack(weights: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Layer by layer, ``W`` row-major then ``b``: one float64 vector."""
    return np.concatenate([part for W, b in weights for part in (np.ravel(W), np.ravel(b))]).astype(np.float64)


def _unpack(theta: np.ndarray, shapes: Sequence[tuple[int, int]]) -> Weights:
    """The inverse of :func:`_pack`: views ``(W (fan_in, fan_out), b (fan_out,))`` into ``theta``."""
    weights, start = [], 0
    for fan_in, fan_out in shapes:
        W = theta[start:start + fan_in * fan_out].reshape(fan_in, fan_out)
        start += fan_in * fan_out
        weights.append((W, theta[start:start + fan_out]))
        start += fan_out
    return weights


def _network(theta: np.ndarray, template: Network) -> Network:
    Ws, bs = zip(*_unpack(theta, _shapes(template)))
    return Network.from_weights(list(Ws), list(bs), template.activations,
                                input_names=[s.name for s in template.inputs])


def _start(net: Network, rng: np.random.Generator) -> np.ndarray:
    """Numeric entries as they are; symbolic ones drawn Glorot-uniform (weights) or 0 (biases)."""
    weights = []
    for number, layer in enumerate(net.layers, start=1):
        limit = math.sqrt(6.0 / (layer.fan_in + layer.fan_out))
        parts = []
        for matrix, draw in ((layer.weight, True), (layer.bias, False)):
            if is_float_matrix(matrix):  # numbers only, as a float64 array already
                parts.append(float_array(matrix, f"layer {number}"))
                continue
            values = np.empty(matrix.shape)
            for (i, j), entry in np.ndenumerate(np.array(matrix.tolist(), dtype=object)):
                if not entry.free_symbols:
                    values[i, j] = float(entry)
                elif isinstance(entry, sympy.Symbol):
                    values[i, j] = rng.uniform(-limit, limit) if draw else 0.0
                else:
                    raise InputError(
                        f"layer {number}: entry {entry} is an expression, not a single parameter; fit trains "
                        "numeric networks or ones whose free entries are plain symbols (Network.symbolic)"
                    )
            parts.append(values)
        weights.append((parts[0], parts[1].reshape(-1)))
    return _pack(weights)


class _GraphLayout:
    """A graph network's parameters as one float64 vector: node by node, each parameter
    (in the node's order) row-major -- the order of ``net.params`` of its symbolic twin."""

    def __init__(self, net: Network) -> None:
        self.net, self.graph = net, net.graph
        self.entries = [(node, name, tuple(matrix.shape)) for node in self.graph.nodes[1:]
                        for name, matrix in node.params.items()]

    def unpack(self, theta: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """Views ``{node: {parameter: array of its shape}}`` into ``theta``."""
        weights: dict[str, dict[str, np.ndarray]] = {}
        start = 0
        for node, name, shape in self.entries:
            size = shape[0] * shape[1]
            weights.setdefault(node.name, {})[name] = theta[start:start + size].reshape(shape)
            start += size
        return weights

    def pack(self, grads: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
        return np.concatenate([np.ravel(grads[node.name][name]) for node, name, _ in self.entries]).astype(np.float64)

    def start(self, rng: np.random.Generator) -> np.ndarray:
        """Numeric entries as they are; plain symbols drawn by role, node by node, row-major:
        dense weights (``W``, a weight-normalised ``v``, a factorised ``V``) Glorot-uniform,
        biases and shifts 0, a factorised ``s`` 0, a scale's ``s`` 1, a weight-normalised ``g``
        the norm of its column of ``v`` (so that ``W = v`` at the start)."""
        seen: dict[sympy.Symbol, str] = {}
        values: dict[tuple[str, str], np.ndarray] = {}
        for node in self.graph.nodes[1:]:
            names = sorted(node.params, key=lambda name: name == "g")  # g after v: it reads v
            for name in names:
                matrix = node.params[name]
                if is_float_matrix(matrix):  # numbers only, as a float64 array already
                    values[(node.name, name)] = float_array(matrix, f"node {node.name!r}: {name}")
                    continue
                array = np.empty(matrix.shape)
                for i in range(matrix.shape[0]):
                    for j in range(matrix.shape[1]):
                        entry = matrix[i, j]
                        where = f"node {node.name!r}: {name}[{i}, {j}]"
                        if not entry.free_symbols:
                            array[i, j] = float(entry)
                            continue
                        if not isinstance(entry, sympy.Symbol):
                            raise InputError(f"{where} is the expression {entry}, not a single parameter; fit trains "
                                             "numeric networks or ones whose free entries are plain symbols")
                        if entry in seen:
                            raise InputError(f"{where} is {entry}, which is also {seen[entry]}: fit trains every "
                                             "entry on its own, and cannot keep tied parameters equal; give each "
                                             "entry its own symbol")
                        seen[entry] = where
                        array[i, j] = self._draw(node, name, i, j, rng, values)
                values[(node.name, name)] = array
        return np.concatenate([values[(node.name, name)].ravel() for node, name, _ in self.entries])

    @staticmethod
    def _draw(node: Any, name: str, i: int, j: int, rng: np.random.Generator,
              values: dict[tuple[str, str], np.ndarray]) -> float:
        if node.op == "dense" and name in ("W", "v", "V"):
            fan_in, units = node.input_widths[0], node.width
            limit = math.sqrt(6.0 / (fan_in + units))
            return float(rng.uniform(-limit, limit))
        if node.op == "dense" and name == "g":
            v = values[(node.name, "v")]
            return float(np.sqrt(np.sum(v[:, j] ** 2)))
        if node.op == "scale":
            return 1.0
        return 0.0  # biases, shifts, a factorised s

    def network(self, theta: np.ndarray) -> Network:
        """The network of the same graph with the parameters ``theta`` (numbers)."""
        return self.net.with_params(self.unpack(theta))


# --- the data ---------------------------------------------------------------------------------


def _number(value: Any, name: str, *, positive: bool = False, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise InputError(f"{name} must be a finite number, not {value!r}")
    value = float(value)
    if (positive and value <= 0) or (not allow_zero and value == 0) or value < 0:
        raise InputError(f"{name} must be {'> 0' if positive else '>= 0'}, not {value!r}")
    return value


def _count(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


def _array(values: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"{name} must be an array of numbers") from exc
    if np.isinf(array).any():
        raise InputError(f"{name} holds inf; give finite numbers (NaN marks a missing target)")
    return array


def _points(X: Any, d: int) -> np.ndarray:
    points = _array(X, "X")
    if points.ndim == 1 and d == 1:
        points = points.reshape(-1, 1)
    if points.ndim != 2 or points.shape[1] != d:
        raise ShapeError(f"X has shape {points.shape} but the network takes {d} inputs: give (N, {d})")
    if np.isnan(points).any():
        raise InputError("X holds NaN; every point must be finite (NaN marks missing targets in y and dy only)")
    if not len(points):
        raise ShapeError("X has no points")
    return points


def _slopes(dy: Any, n: int, m: int, d: int) -> np.ndarray:
    slopes = _array(dy, "dy")
    if slopes.ndim == 1 and m == 1 and d == 1:
        slopes = slopes.reshape(-1, 1, 1)
    elif slopes.ndim == 2 and m == 1:
        slopes = slopes.reshape(slopes.shape[0], 1, -1)
    if slopes.shape != (n, m, d):
        single = f"({n}, {d}) or " if m == 1 else ""
        raise ShapeError(f"dy has shape {np.shape(dy)} but {single}({n}, {m}, {d}) is needed: dy[n, k, i] is the "
                         "target of dy_k/dx_i at point n, NaN where none is known")
    return slopes


class _Objective:
    """``theta -> (loss, gradient)`` over all points or some rows; counts its evaluations."""

    def __init__(self, net: Network, X: np.ndarray, Y: np.ndarray | None, DY: np.ndarray | None, loss: str,
                 value_weight: float, derivative_weight: float) -> None:
        self.net, self.n_evaluations = net, 0
        self.X, self.Y = X, Y
        gaps = Y is not None and Y.dtype.kind == "f" and bool(np.isnan(Y).any())
        self.value_weight = value_weight
        if not net.is_chain:
            self.layout = _GraphLayout(net)
            self.unpack, self.pack = self.layout.unpack, self.layout.pack
            if DY is None and not gaps:
                self.kind = "compile_loss"
                self._kernel = compile_loss(net, loss)
                return
            if loss != "mse":
                why = "derivative targets (dy)" if DY is not None else "missing (NaN) value targets"
                raise InputError(f"{why} need loss='mse'; the {loss} loss takes complete value targets only")
            self.kind = "sobolev"
            self._sobolev = GraphSobolevLoss(net.graph, X, Y, DY, value_weight, derivative_weight)
            return
        self.shapes = _shapes(net)
        self.unpack, self.pack = (lambda theta: _unpack(theta, self.shapes)), _pack
        if DY is None and not gaps:
            self.kind = "compile_loss"
            self._kernel = compile_loss(net, loss)
        else:
            if loss != "mse":
                why = "derivative targets (dy)" if DY is not None else "missing (NaN) value targets"
                raise InputError(f"{why} need loss='mse'; the {loss} loss takes complete value targets only")
            for number, activation in enumerate(net.activations, start=1):
                if not activation.elementwise:
                    raise InputError(f"layer {number}: a {activation.name} layer is supported with complete value "
                                     "targets only (no dy, no NaN in y)")
            self.kind = "sobolev"
            self._sobolev = SobolevLoss(net.activations, X, Y, DY, value_weight, derivative_weight)

    def __call__(self, theta: np.ndarray, rows: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        self.n_evaluations += 1
        weights = self.unpack(theta)
        with np.errstate(all="ignore"):  # overflow gives an inf/nan loss, which ends the run with a message
            if self.kind == "sobolev":
                value, grads = self._sobolev(weights, rows)
            else:
                X, Y = (self.X, self.Y) if rows is None else (self.X[rows], self.Y[rows])  # type: ignore[index]
                value, grads = self._kernel(X, Y, weights=weights)
                if isinstance(grads, dict):  # a graph network
                    value, grads = self.value_weight * value, {
                        node: {name: self.value_weight * g for name, g in group.items()}
                        for node, group in grads.items()}
                else:
                    value, grads = self.value_weight * value, [(self.value_weight * dW, self.value_weight * db)
                                                               for dW, db in grads]
            return float(value), self.pack(grads)


# --- fit ----------------------------------------------------------------------------------------


def fit(
    net: Network,
    X: Any = None,
    y: Any = None,
    *,
    dy: Any = None,
    residual: Callable[[np.ndarray, Any], Any] | None = None,
    terms: Sequence[Residual] = (),
    loss: str = "mse",
    value_weight: float = 1.0,
    derivative_weight: float = 1.0,
    optimizer: str = "lbfgs",
    max_iter: int | None = None,
    tol: float = 1e-12,
    patience: int | None = None,
    lr: float | Callable[[int], float] | None = None,
    beta1: float | None = None,
    beta2: float | None = None,
    eps: float | None = None,
    batch_size: int | None = None,
    options: Mapping[str, Any] | None = None,
    seed: int | None = 0,
    verbose: bool | int = False,
    callback: Callback | None = None,
) -> FitResult:
    """Train ``net`` on values, input derivatives or PDE residuals at points, with exact gradients.

    Args:
        net: the starting network, a chain or a graph.  Numeric weights are the starting
            point; symbolic entries (:meth:`Network.symbolic`, or ``dense(x, 16, "tanh")``) are
            drawn from ``seed``: weights Glorot-uniform ``U(-sqrt(6 / (fan_in + fan_out)), +...)``,
            biases 0; in a graph also a weight-normalised ``v`` and a factorised ``V`` as
            weights, ``g`` the norm of its column of ``v``, a factorised ``s`` and a shift 0, a
            scale (a blend's ``alpha``) 1.  Every parameter entry is trained; a symbol used in
            two entries of a graph (tied parameters) is refused.
        X: points ``(N, d)``; ``(N,)`` for one-input nets.
        y: value targets ``(N, m)``, ``(N,)`` for one output, NaN where a point has none
            (``loss="mse"``); integer class labels ``(N,)`` for the cross entropies of two or more
            outputs (the rule of :func:`symnet.losses.parse_targets`); or ``None``.
        dy: derivative targets ``(N, m, d)``, ``dy[n, k, i]`` the target of ``dy_k/dx_i`` at
            ``X[n]`` (``(N, d)`` for one output), NaN where a point has none; or ``None``.
            A point may carry a value, some partial derivatives, or both.
        residual: a PDE residual at the points ``X``: ``residual(P, r)`` from points ``P``
            ``(n, d)`` and the network's exact derivatives there (``r.value``, ``r.jacobian``,
            ``r.hessian``, ``r.laplacian``, ``r.biharmonic``, ``r[(0, 0, 1)]``, each
            ``(n, m, ...)``), in numpy terms, ``(n,)`` or ``(n, k)``: e.g.
            ``lambda P, r: r.laplacian[:, 0] + f(P)`` for ``-laplacian u = f``.  Its loss is the
            mean of its square (:mod:`symnet.residuals` says what it may do).
        terms: more :class:`symnet.Residual` terms, each with its own points and weight:
            boundary and initial conditions (``Residual(P_boundary, lambda P, r: r.value[:, 0]
            - g(P), weight=10)``).  With ``residual`` or ``terms`` the loss is ``mse``, and
            value and derivative targets, if given, are two more terms of it.
        loss: ``"mse"`` (the loss in the module docstring), or -- value targets only --
            ``"cross_entropy"`` / ``"softmax_cross_entropy"`` as in :func:`symnet.param_grad`.
        value_weight, derivative_weight: the weights of the two mean squared errors, ``>= 0``.
        optimizer: ``"lbfgs"`` (:func:`scipy.optimize.minimize` with ``method="L-BFGS-B"``,
            ``jac=True``; full batch) or ``"adam"``.
        max_iter: at most this many iterations (L-BFGS iterations, or Adam epochs); default
            1000 for L-BFGS, 10000 for Adam.
        tol: an iteration *improves* when it lowers the best loss so far by more than
            ``tol * |best|`` (relative, so tiny losses keep improving).
        patience: early stop: the run ends, converged, after ``patience`` iterations in a row
            without improvement; default ``None``: 1 for L-BFGS (whose iterations each lower
            the loss), 100 for Adam (whose steps may overshoot).
        lr, beta1, beta2, eps: Adam only: its step size and moment decay rates (``None``: Kingma
            & Ba's 1e-3, 0.9, 0.999, 1e-8; given with L-BFGS, an :class:`InputError`).  ``lr``
            may be a schedule, a function of the epoch (1, 2, ...) giving the step size of
            that epoch's steps: ``lambda k: 1e-3 * 0.9 ** (k / 100)`` decays it tenfold every
            2,185 epochs (jaxpi's PINNs decay by 0.9 every 2,000 steps or so).
        batch_size: Adam only: minibatches of this many points, reshuffled every epoch from
            ``seed``; ``None`` for full batches.
        options: options for L-BFGS-B (``maxcor``, ``maxls``, ``maxfun``, ``ftol``, ``gtol``),
            overriding symnet's ``ftol=0, gtol=0`` (scipy's tests off: ``tol`` decides) and
            ``maxfun = 10 * max_iter``.
        seed: seeds the random start of symbolic entries and the minibatch order (a
            :func:`numpy.random.default_rng` seed); the default 0 makes runs repeatable.
        verbose: ``True`` prints the loss every 100 iterations and a last line; an integer
            ``k`` every ``k`` iterations.
        callback: called after every iteration as ``callback(iteration, loss, weights)``
            (``weights`` a list of ``(W, b)`` arrays, for a graph ``{node: {parameter: array}}``,
            valid during the call); returning ``True`` stops the run.

    Returns:
        A :class:`FitResult`: ``.net`` (for a graph, a network of the same graph),
        ``.history`` ``(n_iterations + 1,)``, ``.loss``, ``.n_iterations``, ``.converged``,
        ``.message``.

    >>> import numpy as np, symnet
    >>> X = np.linspace(-2, 2, 9)
    >>> start = symnet.Network.from_weights([[[0.5]], [[1.0]]], [[0.0], [0.0]], ["square", "linear"])
    >>> result = fit(start, X, y=np.full(9, np.nan), dy=2 * X + 1)      # slopes only: y' = 2x + 1
    >>> coefficients = symnet.coefficients(result.net)
    >>> round(float(coefficients[2]), 6), round(float(coefficients[1]), 6)
    (1.0, 1.0)
    """
    started = time.perf_counter()
    if not isinstance(net, Network):
        raise InputError(f"fit trains a symnet.Network, not {type(net).__name__}")
    if optimizer not in OPTIMIZERS:
        raise InputError(f"optimizer must be one of {OPTIMIZERS}, not {optimizer!r}")
    check_loss(loss)
    d, m = net.n_inputs, net.n_outputs
    residuals = _residual_terms(X, residual, terms)
    if residuals and loss != "mse":
        raise InputError(f"residual terms make the loss a mean squared error: loss='mse', not {loss!r}")
    if X is None and (y is not None or dy is not None):
        raise InputError("fit needs the points X of the targets y and dy")
    if y is None and dy is None and not residuals:
        raise InputError("fit needs targets: values y, derivatives dy, a residual, or terms")
    points = None if X is None else _points(X, d)
    n = 0 if points is None else len(points)
    if y is None:
        values = None
    else:  # the rule of symnet.losses, as in param_grad, backprop and compile_loss; NaN: no target (mse)
        values = parse_targets(loss, y, n, m, missing=loss == "mse", name="y",
                               last_activation=output_activation(net))
    slopes = None if dy is None else _slopes(dy, n, m, d)
    value_weight = _number(value_weight, "value_weight")
    derivative_weight = _number(derivative_weight, "derivative_weight")
    given_values = 0 if values is None else int((~np.isnan(values)).sum())
    given_slopes = 0 if slopes is None else int((~np.isnan(slopes)).sum())
    if given_values * value_weight + given_slopes * derivative_weight == 0 and not residuals:
        raise InputError("every target is missing (NaN) or weighted 0: give some values y or derivatives dy")
    max_iter = _DEFAULT_MAX_ITER[optimizer] if max_iter is None else _count(max_iter, "max_iter")
    tol = _number(tol, "tol")
    patience = _DEFAULT_PATIENCE[optimizer] if patience is None else _count(patience, "patience")
    every = _print_every(verbose)
    if batch_size is not None:
        if optimizer != "adam":
            raise InputError("batch_size is for optimizer='adam'; L-BFGS uses every point in each iteration")
        batch_size = min(_count(batch_size, "batch_size"), n or len(np.asarray(residuals[0].points)))
    if options is not None and optimizer != "lbfgs":
        raise InputError("options are L-BFGS-B options; for Adam use lr, beta1, beta2, eps")
    adam = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps}
    if optimizer != "adam" and any(value is not None for value in adam.values()):
        given = ", ".join(name for name, value in adam.items() if value is not None)
        raise InputError(f"{given}: Adam's settings, which L-BFGS does not use; give optimizer='adam' "
                         "(or options={...} for L-BFGS-B)")
    lr, beta1, beta2, eps = (_ADAM_DEFAULTS[name] if value is None else value for name, value in adam.items())
    rng = np.random.default_rng(seed)
    theta = _start(net, rng) if net.is_chain else _GraphLayout(net).start(rng)
    if residuals:
        data = data_terms(net, points, values, slopes, value_weight, derivative_weight) if points is not None else []
        names = _term_names(data, residual is not None, residuals)
        objective: Any = _ResidualObjective(net, data + residuals, names)
        monitor = _Monitor(objective.unpack, tol, patience, every, callback, optimizer, objective.shares, names)
    else:
        objective = _Objective(net, points, values, slopes, loss, value_weight, derivative_weight)
        monitor = _Monitor(objective.unpack, tol, patience, every, callback, optimizer)
    if optimizer == "lbfgs":
        theta, converged, message, iterations = _lbfgs(objective, theta, max_iter, options, monitor)
    else:
        theta, converged, message, iterations = _adam(objective, theta, max_iter, lr, beta1, beta2, eps,
                                                      batch_size, rng, monitor)
    history = np.array(monitor.history[:iterations + 1])
    if every:
        print(f"fit[{optimizer}]: {iterations} iterations, loss {history[-1]:.6e}; {message}", flush=True)
    trained = _network(theta, net) if net.is_chain else _GraphLayout(net).network(theta)
    shares = {name: np.array(kept[:iterations + 1]) for name, kept in zip(monitor.names, monitor.term_history)}
    return FitResult(trained, history, iterations, objective.n_evaluations, converged, message,
                     optimizer, time.perf_counter() - started, shares)


def _term_names(data: Sequence[Any], has_residual: bool, residuals: Sequence[Residual]) -> list[str]:
    """The names of the residual fit's terms in :attr:`FitResult.terms`, in the objective's order."""
    names = [term.label for term in data]  # "values y", "derivatives dy"
    for k, term in enumerate(residuals):
        given = k - 1 if has_residual else k  # the position in the caller's ``terms``
        name = "residual" if has_residual and k == 0 else (term.name or f"terms[{given}]")
        while name in names:
            name += "'"
        names.append(name)
    return names


def _residual_terms(X: Any, residual: Any, terms: Any) -> list[Residual]:
    """``residual`` at ``X`` and ``terms``, as a list of :class:`~symnet.Residual` (checked)."""
    found = []
    if residual is not None:
        if not callable(residual):
            raise InputError(f"residual must be a function residual(P, r), not {type(residual).__name__}")
        if X is None:
            raise InputError("a residual needs its points: fit(net, X, residual=...)")
        found.append(Residual(X, residual, name="residual"))
    if isinstance(terms, Residual):
        terms = [terms]
    for position, term in enumerate(terms):
        if not isinstance(term, Residual):
            raise InputError(f"terms[{position}] is a {type(term).__name__}; terms are symnet.Residual(points, fn, "
                             "weight=...)")
        found.append(term)
    return found


class _ResidualObjective:
    """``theta -> (loss, gradient)`` of residual terms (:class:`symnet.residuals.ResidualLoss`)."""

    def __init__(self, net: Network, terms: Sequence[Any], names: Sequence[str]) -> None:
        self.net, self.n_evaluations, self.names = net, 0, list(names)
        self.layout = _GraphLayout(net)  # a chain's graph packs its weights in the chain's order
        self._loss = ResidualLoss(net, terms)
        self._last: tuple[bytes, list[float]] | None = None  # the terms' shares at the last point seen whole
        self.X = self._loss.terms[0].points  # Adam's minibatches take rows of the first term
        if net.is_chain:
            shapes = _shapes(net)
            self.unpack: Callable[[np.ndarray], Any] = lambda theta: _unpack(theta, shapes)
        else:
            self.unpack = self.layout.unpack

    def __call__(self, theta: np.ndarray, rows: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        self.n_evaluations += 1
        params = self.layout.unpack(theta)
        with np.errstate(all="ignore"):  # overflow gives an inf/nan loss, which ends the run with a message
            value, grads = self._loss(params, rows)
        if self.n_evaluations == 1 and not math.isfinite(value):  # at the start: say which term, and why
            raise InputError(why_not_finite(self._loss, params))
        if rows is None:
            self._last = (theta.tobytes(), list(self._loss.last_terms))
        return float(value), self.layout.pack(grads)

    def shares(self, theta: np.ndarray) -> list[float]:
        """Each term's share of the loss at ``theta`` (the optimizers' accepted points were the last
        ones evaluated whole, so this evaluates again only if they were not)."""
        if self._last is None or self._last[0] != theta.tobytes():
            self(theta)
        return self._last[1]  # type: ignore[index]


def _scheduled(schedule: Callable[[int], float], epoch: int) -> float:
    """``schedule(epoch)``, checked: a finite number > 0."""
    try:
        rate = schedule(epoch)
    except Exception as exc:  # noqa: BLE001 - the user's function can raise anything
        raise InputError(f"lr({epoch}) raised {type(exc).__name__}: {str(exc)[:200]}") from exc
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real) or not math.isfinite(rate) or rate <= 0:
        raise InputError(f"lr({epoch}) gave {rate!r}; a learning rate schedule must give finite numbers > 0")
    return float(rate)


def _print_every(verbose: bool | int) -> int:
    if isinstance(verbose, bool):
        return _DEFAULT_PRINT_EVERY if verbose else 0
    return _count(verbose, "verbose", minimum=0)


class _Stop(Exception):
    """Raised inside the L-BFGS callback to end the run."""


class _Monitor:
    """History, progress printing, the callback and the early-stopping rule, shared by both optimizers."""

    def __init__(self, unpack: Callable[[np.ndarray], Any], tol: float, patience: int, every: int,
                 callback: Callback | None, optimizer: str,
                 shares: Callable[[np.ndarray], list[float]] | None = None, names: Sequence[str] = ()) -> None:
        self.unpack, self.tol, self.patience, self.every = unpack, tol, patience, every
        self.callback, self.optimizer = callback, optimizer
        self.shares, self.names = shares, list(names)
        self.term_history: list[list[float]] = [[] for _ in self.names]
        self.history: list[float] = []
        self.best, self.stale = math.inf, 0
        self.reason: tuple[bool, str] | None = None  # (converged, message) when a stop was asked for

    def start(self, loss: float, theta: np.ndarray) -> None:
        self.history = [loss]
        self.best = loss
        self._record_terms(theta)

    def _record_terms(self, theta: np.ndarray) -> str:
        """Append each term's share at ``theta``; the shares for a progress line."""
        if self.shares is None:
            return ""
        values = self.shares(theta)
        for kept, value in zip(self.term_history, values):
            kept.append(value)
        return " (" + ", ".join(f"{name} {value:.3e}" for name, value in zip(self.names, values)) + ")"

    def drop_last(self) -> None:
        """Forget the last iteration (a diverged step, whose weights are not kept)."""
        self.history.pop()
        for kept in self.term_history:
            kept.pop()

    def step(self, theta: np.ndarray, loss: float) -> bool:
        """Record iteration ``len(history)``; ``True`` means stop."""
        self.history.append(loss)
        shares = self._record_terms(theta)
        iteration = len(self.history) - 1
        if self.every and iteration % self.every == 0:
            print(f"fit[{self.optimizer}] iteration {iteration:6d}  loss {loss:.6e}{shares}", flush=True)
        if not math.isfinite(loss):
            self.reason = (False, f"the loss became {loss} at iteration {iteration} (diverged: lower lr); "
                                  "the net holds the weights of the iteration before")
            return True
        if loss < self.best - self.tol * abs(self.best):
            self.best, self.stale = loss, 0
        else:
            self.best, self.stale = min(self.best, loss), self.stale + 1
        if self.callback is not None and self.callback(iteration, loss, self.unpack(theta)) is True:
            self.reason = (False, f"the callback asked to stop at iteration {iteration}")
            return True
        if self.stale >= self.patience:
            times = "the last iteration" if self.patience == 1 else f"{self.patience} iterations in a row"
            self.reason = (True, f"{times} lowered the loss by less than tol={self.tol:g} (relative)")
            return True
        return False


def _lbfgs(objective: _Objective, theta: np.ndarray, max_iter: int, options: Mapping[str, Any] | None,
           monitor: _Monitor) -> tuple[np.ndarray, bool, str, int]:
    first = objective(theta)
    if not math.isfinite(first[0]):
        raise InputError(f"the loss is {first[0]} at the starting weights; start from other weights")
    monitor.start(first[0], theta)
    cache = {theta.tobytes(): first}

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        key = x.tobytes()
        if key not in cache:  # scipy asks for the same point again at the start
            cache.clear()
            cache[key] = objective(x)
        return cache[key]

    stopped_at = {}

    def step(intermediate_result: Any) -> None:  # a scipy.optimize.OptimizeResult
        # accepted iterates passed the line search's sufficient-decrease test: their loss is finite
        if monitor.step(intermediate_result.x, float(intermediate_result.fun)):
            stopped_at["theta"] = np.array(intermediate_result.x, dtype=np.float64)
            raise StopIteration

    import scipy.optimize  # here, not at import time: it is a noticeable share of `import symnet`

    settings = {"maxiter": max_iter, "maxfun": 10 * max_iter, "ftol": 0.0, "gtol": 0.0, **dict(options or {})}
    with _scipy_blas_on_one_thread():
        result = scipy.optimize.minimize(fun, theta, method="L-BFGS-B", jac=True, callback=step, options=settings)
    iterations = len(monitor.history) - 1
    if monitor.reason is not None:
        converged, message = monitor.reason
        return stopped_at["theta"], converged, message, iterations
    message, converged = str(result.message), bool(result.success)
    if not converged and iterations >= max_iter:
        message = f"max_iter={max_iter} iterations reached"
    elif message.startswith("ABNORMAL"):  # no step along the search direction lowered the loss
        message, converged = ("the line search found no lower loss: the loss is at its rounding level "
                              f"(L-BFGS-B: {message.strip()})"), True
    return np.asarray(result.x, dtype=np.float64), converged, message, iterations


def _scipy_blas_on_one_thread() -> contextlib.AbstractContextManager[Any]:
    """A context in which scipy's own BLAS, if scipy bundles one, runs on one thread.

    L-BFGS-B does its vector algebra (a few products of ``10 x n_weights``) with it.  On the
    2-core machine of docs/training.md (2-64-64-1 tanh net), with two threads that algebra
    took many times longer than on one, and the threads, spinning after each call, slowed
    the next gradient evaluation (for PyTorch's gradients as for symnet's); with one thread
    there was no slowdown and each iteration took markedly less time (the figures are in
    benchmarks/RESULTS.md, "Measurements behind design choices in the code").
    numpy's BLAS, which the gradients use, keeps its threads.  A scipy sharing numpy's BLAS
    is left alone.
    """
    import scipy
    from threadpoolctl import ThreadpoolController  # a dependency of symnet

    package = os.path.dirname(scipy.__file__)  # wheels keep it in scipy.libs, beside the package
    with warnings.catch_warnings():  # threadpoolctl warns about OpenMP runtimes it finds loaded
        warnings.simplefilter("ignore")
        controller = ThreadpoolController()
    own = [lib.filepath for lib in controller.lib_controllers
           if lib.user_api == "blas" and lib.filepath.startswith(package)]
    return controller.select(filepath=own).limit(limits=1) if own else contextlib.nullcontext()


def _adam(objective: _Objective, theta: np.ndarray, max_iter: int, lr: float | Callable[[int], float],
          beta1: float, beta2: float, eps: float, batch_size: int | None, rng: np.random.Generator,
          monitor: _Monitor) -> tuple[np.ndarray, bool, str, int]:
    schedule = lr if callable(lr) else None
    rate = 0.0 if schedule is not None else _number(lr, "lr", positive=True)
    eps = _number(eps, "eps", positive=True)
    for name, beta in (("beta1", beta1), ("beta2", beta2)):
        if _number(beta, name) >= 1:
            raise InputError(f"{name} must lie in [0, 1), not {beta!r}")
    n = len(objective.X)
    first_moment, second_moment = np.zeros_like(theta), np.zeros_like(theta)
    steps = 0
    loss, gradient = objective(theta)
    monitor.start(loss, theta)
    if not math.isfinite(loss):
        raise InputError(f"the loss is {loss} at the starting weights; start from other weights")

    def update(theta: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        nonlocal first_moment, second_moment, steps
        steps += 1
        first_moment = beta1 * first_moment + (1 - beta1) * gradient
        second_moment = beta2 * second_moment + (1 - beta2) * gradient * gradient
        corrected1 = first_moment / (1 - beta1 ** steps)
        corrected2 = second_moment / (1 - beta2 ** steps)
        return theta - rate * corrected1 / (np.sqrt(corrected2) + eps)

    for epoch in range(1, max_iter + 1):
        if schedule is not None:
            rate = _scheduled(schedule, epoch)
        previous = theta
        if batch_size is None:
            theta = update(theta, gradient)
        else:
            order = rng.permutation(n)
            for begin in range(0, n, batch_size):
                _, batch_gradient = objective(theta, order[begin:begin + batch_size])
                theta = update(theta, batch_gradient)
        loss, gradient = objective(theta)
        if monitor.step(theta, loss):
            converged, message = monitor.reason  # type: ignore[misc]
            if not math.isfinite(loss):
                monitor.drop_last()
                return previous, converged, message, epoch - 1
            return theta, converged, message, epoch
    return theta, False, f"max_iter={max_iter} epochs reached", max_iter
