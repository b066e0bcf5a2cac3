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
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["roundoff_bounds", "UNIT_ROUNDOFF"]

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
            errors = _elementwise(layer.activation, *pre) if layer.activation.elementwise else _softmax(layer.activation, *pre)
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


def _softmax(activation: Any, pre: Triple, e_pre: Triple) -> Triple:
    """Softmax's rules ``p * center(t)`` with every difference turned into a sum.

    ``rho`` bounds the relative error of ``p``: ``|dp_k| <= 2 p_k max|dz|`` from the error in
    ``z``, plus the exponentials, the sum over the layer and the division.
    """
    z, dz, d2z = pre
    e_z, e_dz, e_d2z = e_pre
    p = activation.numpy(z)
    n = z.shape[-1]
    rho = 2 * e_z.max(axis=-1, keepdims=True) + n + _FORMULA_ROUNDINGS

    def spread(t: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return t + (t * weights).sum(axis=-1, keepdims=True)

    p1 = p[:, None, :]
    size_c = spread(np.abs(dz), p1)  # bounds |dz - dz.p|
    e_c = spread(e_dz, p1) + rho[:, None, :] * size_c
    e_a = rho * p
    e_da = p1 * (e_c + rho[:, None, :] * size_c)
    if d2z is None:
        return e_a, e_da, None
    p2 = p[:, None, None, :]
    size_inner = size_c[:, :, None, :] * size_c[:, None, :, :] + np.abs(d2z)
    e_inner = e_c[:, :, None, :] * size_c[:, None, :, :] + size_c[:, :, None, :] * e_c[:, None, :, :] + e_d2z
    e_d2a = p2 * (spread(e_inner, p2) + 2 * rho[:, None, None, :] * spread(size_inner, p2))
    return e_a, e_da, e_d2a
