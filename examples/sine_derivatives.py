"""Story 000: a net fits sin(x); what are its first and second derivatives?

Two 1-32-32-1 nets, one with tanh and one with relu, are trained on sin(x) over [-pi, pi]
with L-BFGS on exact gradients.  Their exact f, f', f'' (one compiled kernel each) are
compared with sin, cos and -sin, and plotted in one PNG.

The relu net is piecewise linear: f' is a staircase (a Heaviside sum) and f'' is exactly 0
between its kinks, with all of its curvature in DiracDelta terms at the kinks -- which is
why differentiating a relu net twice (story 000's tf.gradients) looked "erratic".  The kinks
come from symnet.kinks(net).locations; the tanh net's derivatives are smooth.

Run:  python examples/sine_derivatives.py [--out sine_derivatives.png]
"""

import argparse
import os

# scipy's L-BFGS-B does its own vector algebra with BLAS; extra OpenBLAS threads cost more
# than they give at this size (see docs/training.md, "Speed").  Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import symnet  # noqa: E402
from symnet.kinks import kinks  # noqa: E402
from symnet.train import fit  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="sine_derivatives.png",
                    help="where to write the PNG (default: sine_derivatives.png, in the current directory)")
args = parser.parse_args()

x_train = np.linspace(-np.pi, np.pi, 256)
x = np.linspace(-np.pi, np.pi, 2001)  # where the errors are measured and the curves drawn
exact = {"f": np.sin(x), "f'": np.cos(x), "f''": -np.sin(x)}

curves, nets = {}, {}
for activation in ("tanh", "relu"):
    start = symnet.Network.symbolic([1, 32, 32, 1], [activation, activation, "linear"])
    result = fit(start, x_train, np.sin(x_train), seed=0, max_iter=4000)
    nets[activation] = result.net
    kernel = symnet.compile(result.net, ("value", "jacobian", "hessian"))
    out = kernel(x)
    curves[activation] = {"f": out.value[:, 0], "f'": out.jacobian[:, 0, 0], "f''": out.hessian[:, 0, 0, 0]}
    print(f"{activation}: fit loss {result.loss:.2e} after {result.n_iterations} L-BFGS iterations "
          f"({result.seconds:.1f} s; {result.message})")

print("\nmax |error| on 2001 points of [-pi, pi]:")
print("net    f - sin     f' - cos    f'' + sin")
for activation, found in curves.items():
    errors = [np.max(np.abs(found[k] - exact[k])) for k in ("f", "f'", "f''")]
    print(f"{activation:5}  {errors[0]:.3e}   {errors[1]:.3e}   {errors[2]:.3e}")

relu = nets["relu"]
report = kinks(relu)
inside = (report.locations > -np.pi) & (report.locations < np.pi)
locations, jumps = report.locations[inside], report.jumps[inside, 0]
print(f"\nrelu net: {len(report.locations)} kinks on the real line, {inside.sum()} in (-pi, pi) "
      f"({sum(len(s) for s, keep in zip(report.sources, inside) if keep)} neuron crossings)")
all_zero = bool(np.all(curves["relu"]["f''"] == 0))
print(f"relu f'' at all 2001 points is exactly 0: {all_zero} (0 between kinks; the points miss the kinks)")
print(f"relu f' jumps at the kinks by {np.min(jumps):+.3f} .. {np.max(jumps):+.3f}: "
      "f'' = sum_i jump_i * DiracDelta(x - x_i)")

figure, axes = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
labels = {"f": ("f", "sin x"), "f'": ("f'", "cos x"), "f''": ("f''", "-sin x")}
for axis, key in zip(axes, ("f", "f'", "f''")):
    axis.plot(x, exact[key], color="black", linewidth=5, alpha=0.25, label=labels[key][1])
    axis.plot(x, curves["tanh"][key], color="tab:blue", linewidth=1.5, label=f"tanh net {labels[key][0]}")
    axis.plot(x, curves["relu"][key], color="tab:orange", linewidth=1.2, label=f"relu net {labels[key][0]}")
    for location in locations:
        axis.axvline(location, color="tab:orange", linewidth=0.5, alpha=0.35)
    axis.set_ylabel(labels[key][0])
    axis.grid(alpha=0.3)
axes[2].plot(locations, np.zeros_like(locations), linestyle="none", marker="|", markersize=14, color="tab:red",
             label="relu kinks: DiracDelta terms")
for axis in axes:
    axis.legend(loc="lower left" if axis is axes[2] else "upper left", fontsize=8, ncol=2)
axes[0].set_title("1-32-32-1 nets fitted to sin x: exact derivatives (symnet.compile)")
axes[2].set_title("relu: f'' = 0 between kinks (thin lines: symnet.kinks(net).locations)", fontsize=10)
axes[2].set_xlabel("x")
figure.tight_layout()
figure.savefig(args.out, dpi=110)
print(f"\nplot written to {args.out}")
