"""Story 003, trained here: Dense(1, activation x**2) -> Dense(1) learns y = x**2 + 2x + 2.

The net computes c*(a*x + b)**2 + d.  symnet trains it with L-BFGS on exact gradients,
reads the learned parabola's coefficients off the closed form, and prints them next to
their formulas in the weights (a^2 c, 2abc, b^2 c + d).  The last table shows why a
start matters for this net: from c < 0 the fit slides into the valley of the best straight
line (a -> 0, b -> infinity, a^2 c -> 0) instead of reaching the parabola.

Run:  python examples/train_parabola.py
"""

import os

# scipy's L-BFGS-B does its own vector algebra with BLAS; extra OpenBLAS threads cost more
# than they give at this size (see docs/training.md, "Speed").  Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import sympy  # noqa: E402

import symnet  # noqa: E402
from symnet.train import fit  # noqa: E402

rng = np.random.default_rng(42)
x = rng.random(999)  # 999 points on [0, 1), as in the story
y = x**2 + 2 * x + 2

architecture = symnet.Network.symbolic([1, 1, 1], ["square", "linear"])  # c*(a*x + b)**2 + d
result = fit(architecture, x, y, seed=1)  # weights drawn Glorot-uniform from seed 1, biases 0
print("fit:", result)
print(f"final loss (mse): {result.loss:.3e} after {result.n_iterations} L-BFGS iterations, "
      f"{result.seconds:.2f} s")

a, b, c, d = sympy.symbols("a b c d", real=True)
short = dict(zip(architecture.params, (a, b, c, d)))
formulas = symnet.coefficients(architecture)
learned = symnet.coefficients(result.net)
weights = [float(v) for layer in result.net.layers for v in (*layer.weight, *layer.bias)]  # net.params order
print("\nlearned weights: a = {:.9f}, b = {:.9f}, c = {:.9f}, d = {:.9f}".format(*weights))
print("(the weights are not unique -- any a, with b = a, c = 1/a^2, d = 1, is exact; 003's Keras run found "
      "a = b = -1.33 -- but the coefficients are)")
print("coefficient  formula       learned        target")
for power, target in ((2, 1), (1, 2), (0, 2)):
    print(f"x^{power}          {str(formulas[power].xreplace(short)):12}  {float(learned[power]):.9f}    {target}")
error = max(abs(float(learned[p]) - t) for p, t in ((2, 1), (1, 2), (0, 2)))
print(f"max |learned - target| = {error:.2e}")
print("learned parabola: y = {:.7f} x^2 + {:.7f} x + {:.7f}".format(*(float(learned[p]) for p in (2, 1, 0))))

print("\nthe start matters: a, c drawn uniformly on (-sqrt 3, sqrt 3), biases 0 (Keras's default start)")
print("a at start  c at start  loss after L-BFGS  x^2 coefficient")
for seed in range(4):
    a0, c0 = np.random.default_rng(seed).uniform(-np.sqrt(3), np.sqrt(3), size=2)
    start = symnet.Network.from_weights([[[a0]], [[c0]]], [[0.0], [0.0]], ["square", "linear"])
    trained = fit(start, x, y)
    print(f"{a0:+.6f}   {c0:+.6f}   {trained.loss:.3e}         {float(symnet.coefficients(trained.net)[2]):+.6f}")
