"""Story 004's simpleNet: the gradient of a softmax cross-entropy loss with respect to W (2x3).

The story estimates dL/dW by numerical differentiation.  symnet gives it exactly
(symnet.param_grad), next to symnet's central differences with their error estimate
(symnet.finite_differences_params), and as a formula of a symbolic W:
dL/dW = x (softmax(x W) - t)^T.

Run:  python examples/softmax_gradient.py
"""

import numpy as np
import sympy

import symnet

W = np.array([[0.47355232, 0.9977393, 0.84668094], [0.85557411, 0.03563661, 0.69422093]])
x = np.array([0.6, 0.9])
t = np.array([0.0, 0.0, 1.0])

simple_net = symnet.Network.from_weights([W], None, "softmax")  # y = softmax(x @ W), no bias
print("network:", repr(simple_net))
(dW, _), = symnet.param_grad(simple_net, "cross_entropy", (x, t))
exact = np.array(dW.tolist(), dtype=np.float64)
np.set_printoptions(precision=8, suppress=True)
print("\nexact dL/dW (symnet.param_grad):")
print(exact)


def loss(weights: np.ndarray) -> float:
    """004's loss: cross entropy of softmax(x @ W) against the one-hot t."""
    z = x @ weights
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    return float(-np.sum(t * np.log(p)))


numeric = symnet.finite_differences_params(loss, W)
print("\nnumerical dL/dW (central differences, symnet.finite_differences_params):")
print(numeric.derivative)
print(f"estimated error of the differences: max {numeric.error.max():.1e}; "
      f"max |exact - numerical| = {np.max(np.abs(exact - numeric.derivative)):.1e}")
print("expected (story 004): [[0.21924763, 0.14356247, -0.36281009], [0.32887144, 0.2153437, -0.54421514]]")

# the formula: a symbolic W (w1_i_j), symbolic inputs x0, x1 and targets t0, t1, t2
symbolic = symnet.Network.symbolic([2, 3], "softmax", bias=False)
xs = sympy.Matrix(symbolic.inputs)  # column (2, 1)
ts = sympy.Matrix(sympy.symbols("t0:3", real=True))  # column (3, 1)
(dW_formula, _), = symnet.param_grad(symbolic, "cross_entropy", (list(xs), list(ts)))
p = symbolic.outputs  # softmax(x W), column (3, 1)
print("\nexact formula, symbolic W (param_grad of Network.symbolic([2, 3], 'softmax', bias=False)):")
print("  dL/dW[0, 0] =", dW_formula[0, 0])
print("  (the factor t0 + t1 + t2 is 1 for a one-hot or probability target t)")
one_hot = {ts[2]: 1 - ts[0] - ts[1]}
difference = (dW_formula - xs * (p - ts).T).xreplace(one_hot)
print("  dL/dW = x (softmax(x W) - t)^T when sum(t) = 1:", sympy.simplify(difference) == sympy.zeros(2, 3))
values = {**dict(zip(symbolic.params, W.ravel())), **dict(zip(symbolic.inputs, x)), **dict(zip(ts, t))}
at_004 = np.array(dW_formula.xreplace(values).evalf().tolist(), dtype=np.float64)
print("  the formula at 004's W, x, t gives the exact numbers again:", np.allclose(at_004, exact, rtol=0, atol=1e-15))
