"""Story 001's setting: training on values *and* derivatives (Sobolev training).

A 2-16-16-1 tanh net learns f(x1, x2) = sin(x1) cos(x2) on [-pi, pi]^2.  The same start,
optimizer (L-BFGS, exact gradients) and budget (2000 iterations) are given different data:

* values at 60 points;
* values at 180 points (as many numbers as the next row);
* values and both partial derivatives at the same 60 points;
* 001's mix: each of the 60 points carries one of f, df/dx1, df/dx2 (NaN for the others).

The learned value and gradient are measured against the truth on 2000 held-out points.

Run:  python examples/sobolev.py
"""

import os

# scipy's L-BFGS-B does its own vector algebra with BLAS; extra OpenBLAS threads cost more
# than they give at this size (see docs/training.md, "Speed").  Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import symnet  # noqa: E402
from symnet.train import fit  # noqa: E402


def f(X: np.ndarray) -> np.ndarray:
    return np.sin(X[:, 0]) * np.cos(X[:, 1])


def gradient(X: np.ndarray) -> np.ndarray:  # (N, 2): df/dx1, df/dx2
    return np.stack([np.cos(X[:, 0]) * np.cos(X[:, 1]), -np.sin(X[:, 0]) * np.sin(X[:, 1])], axis=1)


rng = np.random.default_rng(0)
X = rng.uniform(-np.pi, np.pi, size=(180, 2))
held_out = rng.uniform(-np.pi, np.pi, size=(2000, 2))
few = X[:60]

# 001's mix: every point knows one number -- its value, df/dx1 or df/dx2
kind = rng.integers(0, 3, size=len(few))
mixed_y = np.where(kind == 0, f(few), np.nan)
mixed_dy = np.where(kind[:, None] == np.array([1, 2]), gradient(few), np.nan)

runs = [
    ("values at 60 points", few, {"y": f(few)}),
    ("values at 180 points", X, {"y": f(X)}),
    ("values + gradients at 60 points", few, {"y": f(few), "dy": gradient(few)}),
    ("001's mix at 60 points", few, {"y": mixed_y, "dy": mixed_dy}),
]

start = symnet.Network.symbolic([2, 16, 16, 1], ["tanh", "tanh", "linear"])  # one start for every run: seed=0
kernel = None
errors = {}
print("training data                     numbers  held-out RMSE: value   gradient   (fit loss, seconds)")
for name, points, targets in runs:
    result = fit(start, points, seed=0, max_iter=2000, **targets)
    kernel = symnet.compile(result.net, ("value", "jacobian")) if kernel is None else kernel.with_weights(result.net)
    out = kernel(held_out)
    value_rmse = np.sqrt(np.mean((out.value[:, 0] - f(held_out)) ** 2))
    gradient_rmse = np.sqrt(np.mean((out.jacobian[:, 0, :] - gradient(held_out)) ** 2))
    errors[name] = gradient_rmse
    given = sum(int(np.count_nonzero(~np.isnan(np.asarray(t)))) for t in targets.values())
    print(f"{name:33} {given:7d}  {value_rmse:19.3e}  {gradient_rmse:9.3e}   ({result.loss:.1e}, {result.seconds:.2f})")

ratio = errors["values at 60 points"] / errors["values + gradients at 60 points"]
print(f"\ngradient RMSE, values only / values + gradients at the same 60 points: {ratio:.1f}x")
print("derivative data pins down the slope where values alone leave it free; here it also beats three times")
print("as many value points" if errors["values at 180 points"] > errors["values + gradients at 60 points"]
      else "three times as many value points do better here")
