"""A first-order running error analysis of the forward propagation in :mod:`.backprop`.

Beside every quantity ``q`` of the propagation (``a``, ``da``, ``d2a``, ``z``, ...) it carries
``E_q``, a bound on ``|computed q - exact q|`` in units of the unit round-off
``u = eps / 2``: errors already present are propagated by the same linear rules as the
tangents (with absolute values), and each operation adds its own rounding (Higham,
*Accuracy and Stability of Numerical Algorithms*, ch. 3):

* ``z = a @ W + b`` adds ``(fan_in + 1) * (|a| @ |W| + |b|)`` (a sum of ``fan_in + 1`` terms);
* an activation ``f^(k)(z)`` inherits ``|f^(k+1)(z)| E_z`` and adds
  ``c * max(1, |f|, |f'|, |f''|)``, ``c = _FORMULA_ROUNDINGS``: the derivatives are formulas
  that combine ``f`` and constants of size 1 (``1 - tanh(z)**2``, ``(1 + erf(z/sqrt(2)))/2``),
  so their absolute error scales with the largest of those, not with ``|f^(k)|``, which can be
  tiny after cancellation;
* ``|f'''|``, which the registry does not hold, is taken as ``max(|f'|, |f''|)`` (true of the
  built-in activations up to a factor 2).

Only first-order terms are kept (products of two errors are ``O(u**2)``), so the bound does
not compound with depth the way a bound on magnitudes would.

Graph networks (:func:`graph_roundoff_bounds`) get a bound per node by family:

* a linear op propagates errors through its coefficients' absolute values (``|W|``, ``|s|``,
  ``1`` for add, sub, concat, slice, sum, ``1/n`` for mean) and adds ``r * (sum_k |c_k||x_k| +
  |offset|)``, ``r`` the roundings of one unit: ``fan_in + 2`` plus those of computing ``W`` for a
  dense node (a weight-normalised or factorised ``W`` is itself rounded), ``n + 1`` for a sum or
  mean of ``n``, 1 for add and sub, 2 or 3 for scale, shift and rescale (the constant's own
  conversion to float64 included), 0 where nothing is computed (concat, slice, a shift's tangents);
* an activation (elementwise or softmax) as in a chain;
* ``mul``: ``E_{ab} = E_a |b| + |a| E_b + |a||b|``, and the product rule's terms likewise, each
  term adding the roundings of its product and of the sum it enters.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["REARRANGE", "graph_roundoff_bounds", "rearrange", "roundoff_bounds", "UNIT_ROUNDOFF"]

#: ``u = eps / 2``: the largest relative error of one correctly rounded float64 operation.
UNIT_ROUNDOFF = float(np.finfo(np.float64).eps) / 2

# roundings in one activation formula such as sig*(1 - sig)*(1 - 2*sig), counted generously
_FORMULA_ROUNDINGS = 8

Triple = tuple[np.ndarray, np.ndarray, "np.ndarray | None"]


def roundoff_bounds(layers: Sequence[Any], weights: Sequence[tuple[np.ndarray, np.ndarray]],
                    trace: Sequence[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Absolute error bounds of the network's value ``(N, m)``, tangents ``(N, d, m)`` and
    second-order tangents ``(N, d, d, m)`` (``None`` without them).

    ``trace`` holds, per layer, the input triple ``(a, da, d2a)`` and the pre-activation
    triple ``(z, dz, d2z)`` of the forward propagation.
    """
    a, da, d2a = trace[0][:3]
    errors: Triple = (np.zeros_like(a), np.zeros_like(da), None if d2a is None else np.zeros_like(d2a))
    with np.errstate(over="ignore", invalid="ignore"):  # an infinite bound is an honest "no information"
        for layer, (W, b), (a, da, d2a, z, dz, d2z) in zip(layers, weights, trace):
            W = np.abs(W)
            rounding = W.shape[0] + 1
            e_a, e_da, e_d2a = errors
            e_z = e_a @ W + rounding * (np.abs(a) @ W + np.abs(b))
            e_dz = e_da @ W + rounding * (np.abs(da) @ W)
            e_d2z = None if d2z is None else e_d2a @ W + rounding * (np.abs(d2a) @ W)
            pre = ((z, dz, d2z), (e_z, e_dz, e_d2z))
            errors = _rule(layer.activation)(layer.activation, *pre)
    return tuple(UNIT_ROUNDOFF * e if e is not None else None for e in errors)  # type: ignore[return-value]


def _elementwise(activation: Any, pre: Triple, e_pre: Triple) -> Triple:
    z, dz, d2z = pre
    e_z, e_dz, e_d2z = e_pre
    f0, f1, f2 = (np.zeros_like(z) if fn is None else np.abs(fn(z)) for fn in
                  (activation.numpy, activation.numpy_derivative, activation.numpy_second_derivative))
    formula = _FORMULA_ROUNDINGS * np.maximum(np.maximum(1.0, f0), np.maximum(f1, f2))
    f3 = np.maximum(f1, f2)
    e_f1 = (f2 * e_z + formula)[:, None, :]  # error of the computed f'(z), broadcast over tangents
    adz = np.abs(dz)
    e_a = f1 * e_z + formula
    e_da = e_f1 * adz + f1[:, None, :] * (e_dz + adz)
    if d2z is None:
        return e_a, e_da, None
    outer = adz[:, :, None, :] * adz[:, None, :, :]
    e_outer = e_dz[:, :, None, :] * adz[:, None, :, :] + adz[:, :, None, :] * e_dz[:, None, :, :]
    e_f2 = (f3 * e_z + formula)[:, None, None, :]
    g1, g2 = f1[:, None, None, :], f2[:, None, None, :]
    e_d2a = (e_f2 * outer + g2 * (e_outer + 3 * outer)
             + e_f1[:, :, None, :] * np.abs(d2z) + g1 * (e_d2z + 3 * np.abs(d2z)))
    return e_a, e_da, e_d2a


def _spread(t: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``t + sum_i w_i t_i`` along the last axis: a bound on ``t - sum_i w_i t_i`` for ``w >= 0``."""
    return t + (t * weights).sum(axis=-1, keepdims=True)


def _centred(p: np.ndarray, pre: Triple, e_pre: Triple) -> tuple[np.ndarray, ...]:
    """The layer-wise rules' shared bounds, with ``p`` the layer's softmax: ``rho`` bounds the
    relative error of ``p`` (``|dp_k| <= 2 p_k max|dz|`` from the error in ``z``, plus the
    exponentials, the sum over the layer and the division); ``size_c`` and ``e_c`` bound the
    centred tangents ``c = dz - dz.p`` and their error; ``size_inner`` and ``e_inner`` (``None``
    without second derivatives) the second-order terms ``c c' + d2z`` and theirs."""
    z, dz, d2z = pre
    e_z, e_dz, e_d2z = e_pre
    rho = 2 * e_z.max(axis=-1, keepdims=True) + z.shape[-1] + _FORMULA_ROUNDINGS
    p1 = p[:, None, :]
    size_c = _spread(np.abs(dz), p1)
    e_c = _spread(e_dz, p1) + rho[:, None, :] * size_c
    if d2z is None:
        return rho, size_c, e_c, None, None
    size_inner = size_c[:, :, None, :] * size_c[:, None, :, :] + np.abs(d2z)
    e_inner = e_c[:, :, None, :] * size_c[:, None, :, :] + size_c[:, :, None, :] * e_c[:, None, :, :] + e_d2z
    return rho, size_c, e_c, size_inner, e_inner


def _softmax(activation: Any, pre: Triple, e_pre: Triple) -> Triple:
    """Softmax's rules ``p * center(t)`` with every difference turned into a sum."""
    p = activation.numpy(pre[0])
    rho, size_c, e_c, size_inner, e_inner = _centred(p, pre, e_pre)
    p1 = p[:, None, :]
    e_a, e_da = rho * p, p1 * (e_c + rho[:, None, :] * size_c)
    if size_inner is None:
        return e_a, e_da, None
    p2 = p[:, None, None, :]
    return e_a, e_da, p2 * (_spread(e_inner, p2) + 2 * rho[:, None, None, :] * _spread(size_inner, p2))


def _log_softmax(activation: Any, pre: Triple, e_pre: Triple) -> Triple:
    """Log-softmax's rules ``z - log(sum(exp(z)))``, ``center(dz)`` and ``d2z - sum_i p_i (c_i c_i' + d2z_i)``
    (``c`` the centred tangents) with every difference turned into a sum."""
    z, e_z = pre[0], e_pre[0]
    a = activation.numpy(z)
    p = np.exp(a)
    rho, _, e_c, size_inner, e_inner = _centred(p, pre, e_pre)
    e_a = e_z + e_z.max(axis=-1, keepdims=True) + rho * (np.abs(a) + 1)
    if size_inner is None:
        return e_a, e_c, None
    p2 = p[:, None, None, :]
    return e_a, e_c, _spread(e_inner, p2) + 2 * rho[:, None, None, :] * _spread(size_inner, p2)


def _rule(activation: Any) -> Callable[[Any, Triple, Triple], Triple]:
    """The round-off rule of an activation: unit by unit, or a layer-wise one's own."""
    if activation.elementwise:
        return _elementwise
    return _log_softmax if activation.name == "log_softmax" else _softmax


# --- graph networks ---------------------------------------------------------------------------

# roundings of one output unit of a linear op, for (the value, the tangents); dense, matmul, sum
# and mean depend on the node (see _linear_roundings)
_LINEAR_ROUNDINGS = {"add": (1, 1), "sub": (1, 1), "scale": (2, 2), "shift": (2, 0), "rescale": (3, 2),
                     "concat": (0, 0), "slice": (0, 0)}


def _linear_roundings(node: Any, numbers: dict[str, Any]) -> tuple[int, int]:
    if node.op == "dense":
        r = node.input_widths[0] + 1 + numbers["W_rounding"]
        return r, r
    if node.op == "matmul":
        return node.input_widths[0] + 2, node.input_widths[0] + 2
    if node.op in ("sum", "mean"):
        return node.input_widths[0] + 1, node.input_widths[0] + 1
    return _LINEAR_ROUNDINGS[node.op]


def _abs_linear(node: Any, numbers: dict[str, Any], xs: list[np.ndarray]) -> np.ndarray:
    """The linear op with every coefficient replaced by its absolute value, no offset, on ``xs >= 0``."""
    op = node.op
    if op == "dense":
        return xs[0] @ np.abs(numbers["W"])
    if op == "matmul":
        return xs[0] @ np.abs(numbers["C"])
    if op in ("add", "sub"):
        return xs[0] + xs[1]
    if op == "scale":
        return xs[0] * np.abs(numbers["s"])
    if op == "shift":
        return xs[0]
    if op == "rescale":
        return xs[0] * np.abs(numbers["scale"])
    if op in REARRANGE:
        return rearrange(node, xs)
    raise ValueError(f"node {node.name!r}: no round-off rule for op {op!r}")  # pragma: no cover


def _abs_offset(node: Any, numbers: dict[str, Any]) -> Any:
    if node.op == "dense":
        return np.abs(numbers["b"])
    if node.op == "shift":
        return np.abs(numbers["t"])
    if node.op == "rescale":
        return np.abs(numbers["offset"])
    return 0.0


def _linear_errors(node: Any, numbers: dict[str, Any], args: list[Triple], errors: list[Triple]) -> Triple:
    r_value, r_tangent = _linear_roundings(node, numbers)
    out = []
    for part in range(3):
        if args[0][part] is None:
            out.append(None)
            continue
        propagated = _abs_linear(node, numbers, [e[part] for e in errors])
        size = _abs_linear(node, numbers, [np.abs(a[part]) for a in args])
        if part == 0:
            out.append(propagated + r_value * (size + _abs_offset(node, numbers)))
        else:
            out.append(propagated + r_tangent * size if r_tangent else propagated)
    return out[0], out[1], out[2]


def _product_errors(a: Triple, b: Triple, e_a: Triple, e_b: Triple) -> Triple:
    """Errors of the product rule's value, tangents and second-order tangents (``_multiply``)."""
    (va, ta, sa), (vb, tb, sb) = a, b
    (ea, eta, esa), (eb, etb, esb) = e_a, e_b
    va, vb = np.abs(va), np.abs(vb)
    e_value = ea * vb + va * eb + va * vb
    if ta is None or tb is None:
        return e_value, None, None
    ta, tb = np.abs(ta), np.abs(tb)
    a1, b1, ea1, eb1 = va[:, None, :], vb[:, None, :], ea[:, None, :], eb[:, None, :]
    e_tangent = eta * b1 + ta * eb1 + ea1 * tb + a1 * etb + 2 * (ta * b1 + a1 * tb)
    if sa is None or sb is None:
        return e_value, e_tangent, None
    sa, sb = np.abs(sa), np.abs(sb)
    a2, b2, ea2, eb2 = va[:, None, None, :], vb[:, None, None, :], ea[:, None, None, :], eb[:, None, None, :]

    def outer(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return u[:, :, None, :] * v[:, None, :, :]

    size = sa * b2 + a2 * sb + outer(ta, tb) + outer(tb, ta)
    e_second = (esa * b2 + sa * eb2 + ea2 * sb + a2 * esb + outer(eta, tb) + outer(ta, etb) + outer(etb, ta)
                + outer(tb, eta) + 5 * size)
    return e_value, e_tangent, e_second


def graph_roundoff_bounds(graph: Any, numbers: dict[str, dict[str, Any]],
                          trace: dict[str, Triple]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Absolute error bounds of a graph network's output value ``(N, m)``, tangents
    ``(N, d, m)`` and second-order tangents ``(N, d, d, m)`` (``None`` without them).

    ``numbers``: every node's numeric parameters (``symnet.check.backprop.graph_numbers``);
    ``trace``: every node's triple ``(value, tangents, second-order tangents)`` of the forward
    propagation, the input node ``"x"`` included.
    """
    x = trace["x"]
    errors: dict[str, Triple] = {"x": tuple(None if p is None else np.zeros_like(p) for p in x)}  # type: ignore[dict-item]
    with np.errstate(over="ignore", invalid="ignore"):
        for node in graph.nodes[1:]:
            args = [trace[name] for name in node.inputs]
            e_args = [errors[name] for name in node.inputs]
            family = node.family
            if family == "linear":
                errors[node.name] = _linear_errors(node, numbers[node.name], args, e_args)
            elif family == "elementwise":
                activation = node.activation
                errors[node.name] = _rule(activation)(activation, args[0], e_args[0])
            elif family == "bilinear":
                errors[node.name] = _product_errors(args[0], args[1], e_args[0], e_args[1])
            else:  # pragma: no cover
                raise ValueError(f"node {node.name!r}: no round-off rule for family {family!r}")
    return tuple(UNIT_ROUNDOFF * e if e is not None else None for e in errors[graph.output])  # type: ignore[return-value]


#: The linear ops with coefficients 1 (or 1/n): they move, pick or add units.
REARRANGE = ("concat", "slice", "sum", "mean")


def rearrange(node: Any, xs: list[np.ndarray]) -> np.ndarray:
    """``concat``, ``slice``, ``sum`` or ``mean`` of ``xs``, units on the last axis (their
    coefficients are all non-negative: the numpy rules of the oracle and the round-off bounds
    apply them alike)."""
    op = node.op
    if op == "concat":
        return np.concatenate(xs, axis=-1)
    if op == "slice":
        return xs[0][..., node.attrs["start"]:node.attrs["stop"]]
    if op == "sum":
        return xs[0].sum(axis=-1, keepdims=True)
    return xs[0].sum(axis=-1, keepdims=True) / xs[0].shape[-1]  # mean
