"""A net learns a Korteweg-de Vries soliton; its exact third derivative gives the PDE residual.

u(x, t) = (c/2) sech^2(sqrt(c)/2 (x - c t)) solves u_t + 6 u u_x + u_xxx = 0.  A 2-24-24-1
tanh net is fitted (L-BFGS, exact gradients) to the soliton's values and first derivatives
at 400 points; then one compiled kernel evaluates the net's value, gradient and exact
``d^3 u / dx^3`` -- the layered strategy carries the third-order stream through the layers --
at 20,000 held-out points, and the KdV residual of the net is measured against the size of
its terms.  The truth (u, u_x, u_xxx of the soliton) comes from SymPy's derivatives of the
closed form, independently of symnet.

Run:  python examples/kdv_soliton.py
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small L-BFGS problem: see examples/sobolev.py

import numpy as np  # noqa: E402
import sympy  # noqa: E402

import symnet  # noqa: E402
from symnet.train import fit  # noqa: E402

C = 1.0  # the soliton's speed (and twice its height)
x, t = sympy.symbols("x t", real=True)
soliton = C / 2 * sympy.sech(sympy.sqrt(C) / 2 * (x - C * t)) ** 2
truth = {name: sympy.lambdify((x, t), expr, "numpy") for name, expr in
         [("u", soliton), ("u_x", soliton.diff(x)), ("u_t", soliton.diff(t)), ("u_xxx", soliton.diff(x, 3))]}


def sample(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(-8, 8, n), rng.uniform(0, 2, n)])


X = sample(400, seed=0)
y = truth["u"](X[:, 0], X[:, 1])
dy = np.column_stack([truth["u_x"](X[:, 0], X[:, 1]), truth["u_t"](X[:, 0], X[:, 1])])
start = symnet.Network.symbolic([2, 24, 24, 1], ["tanh", "tanh", "linear"])
result = fit(start, X, y, dy=dy, seed=0, max_iter=3000)
print(f"fit: loss {result.loss:.2e} after {result.n_iterations} L-BFGS iterations")

kernel = symnet.compile(result.net, ("value", "jacobian", (0, 0, 0)))
print(f"kernel: strategy={kernel.strategy}, schedule={kernel.schedule}")
held_out = sample(20_000, seed=1)
out = kernel(held_out)
u, u_x, u_t, u_xxx = out.value[:, 0], out.jacobian[:, 0, 0], out.jacobian[:, 0, 1], out[(0, 0, 0)][:, 0]


def rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(a ** 2)))


print("held-out RMS error against the soliton (RMS of the truth in brackets):")
for name, learned in [("u", u), ("u_x", u_x), ("u_t", u_t), ("u_xxx", u_xxx)]:
    exact = truth[name](held_out[:, 0], held_out[:, 1])
    print(f"  {name:6s} {rms(learned - exact):.2e}  ({rms(exact):.2e})")
residual = u_t + 6 * u * u_x + u_xxx
print(f"KdV residual u_t + 6 u u_x + u_xxx of the net: RMS {rms(residual):.2e}, "
      f"against RMS u_t {rms(u_t):.2e} and RMS u_xxx {rms(u_xxx):.2e}")
