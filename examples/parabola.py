"""Which parabola did 003's two-neuron Keras net learn?

Dense(1, activation=lambda x: x**2) -> Dense(1), trained with Adam(0.001) on x**2 + 2x + 2,
ended with the weights below.  symnet writes the net as a formula, extracts the parabola's
coefficients, and shows them as formulas of the weights (a^2 c, 2abc, b^2 c + d).

Run:  python examples/parabola.py
"""

import sympy

import symnet

# weights learned in the 003 story (Keras layout: W is (fan_in, fan_out))
learned = symnet.Network.from_weights(
    weights=[[[-1.3284513]], [[0.5667597]]],
    biases=[[-1.328055], [1.0003909]],
    activations=[lambda x: x**2, "linear"],  # the Keras lambda activation, traced by SymPy
)

print("network:       ", repr(learned))
print("closed form:    y =", learned)

coefficients = symnet.coefficients(learned)
print("learned parabola: y = {:.7f} x^2 + {:.7f} x + {:.7f}".format(
    float(coefficients[2]), float(coefficients[1]), float(coefficients[0])))
print("target:           y = x^2 + 2 x + 2")

symbolic = symnet.Network.symbolic([1, 1, 1], ["square", "linear"])
formulas = symnet.coefficients(symbolic)
print("\nthe same coefficients as formulas of the weights", symbolic.params, ":")
a, b, c, d = sympy.symbols("a b c d", real=True)
short = dict(zip(symbolic.params, (a, b, c, d)))
for power in (2, 1, 0):
    print(f"  x^{power}: {formulas[power]}   =  {formulas[power].xreplace(short)}")

print("\nexact derivatives of the learned net:")
print("  dy/dx   =", symnet.pretty(symnet.diff(learned, "x0")))
print("  d2y/dx2 =", symnet.pretty(symnet.diff(learned, "x0", "x0")))
