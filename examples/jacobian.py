"""001's question: the derivative of a sigmoid network with respect to its inputs.

The answer in the 001 story works the all-ones example by hand: for a 2-2-1 net (sigmoid
layer with W = b = 1, then a linear layer with W = 1) at x = (1, 1) the Jacobian is
2a/(1+a)^2 (1, 1) with a = exp(-3), i.e. (0.0903533, 0.0903533).  Its script then chains the
layer Jacobians J = J_out . J_2 . J_1 of a 2-2-2-1 net.  symnet gives the exact Jacobian as a
formula, and we print it next to a plain numpy chain-rule computation of the same numbers.

Run:  python examples/jacobian.py
"""

import numpy as np

import symnet

ones = np.ones((2, 2))


def numpy_chain_rule(weights, biases, sigmoid_layers, x):
    """Value and Jacobian by the layer-wise chain rule J = J_L ... J_1, J_l = diag(s'(z_l)) W_l^T."""
    value, jacobian = np.asarray(x, float), np.eye(len(x))
    for W, b, is_sigmoid in zip(weights, biases, sigmoid_layers):
        z = value @ W + b
        if is_sigmoid:
            value = 1 / (1 + np.exp(-z))
            layer_jacobian = (value * (1 - value))[:, None] * W.T
        else:
            value, layer_jacobian = z, W.T
        jacobian = layer_jacobian @ jacobian
    return value, jacobian


cases = {
    "answer's 2-2-1 (sigmoid, linear)": ([ones, np.ones((2, 1))], [np.ones(2), np.zeros(1)], [True, False]),
    "answer's script 2-2-2-1 (sigmoid, sigmoid, linear)":
        ([ones, ones, np.ones((2, 1))], [np.ones(2), np.ones(2), np.zeros(1)], [True, True, False]),
    "question's 2-2-2-1 (all sigmoid, all biases 1)":
        ([ones, ones, np.ones((2, 1))], [np.ones(2), np.ones(2), np.ones(1)], [True, True, True]),
}

x = [1, 1]
for title, (weights, biases, sigmoid_layers) in cases.items():
    # integer weights keep the closed form exact: sigmoid(3) instead of 0.9525741...
    net = symnet.Network.from_weights([W.astype(int) for W in weights], [b.astype(int) for b in biases],
                                      ["sigmoid" if s else "linear" for s in sigmoid_layers])
    jacobian = symnet.jacobian(net)
    point = dict(zip(net.inputs, x))
    exact = jacobian.xreplace(point)
    value = net.outputs.xreplace(point)
    ref_value, ref_jacobian = numpy_chain_rule(weights, biases, sigmoid_layers, x)
    print(f"{title}, at x = {tuple(x)}")
    print("  exact Jacobian:  ", symnet.simplify(exact[0, 0]), "(both entries)")
    print("  symnet  value, J:", np.array(value.evalf(), float).ravel(), np.array(exact.evalf(), float).ravel())
    print("  numpy   value, J:", ref_value, ref_jacobian.ravel())
    print("  max |difference| :", np.max(np.abs(np.array(exact.evalf(), float) - ref_jacobian)))
