"""A net solves Poisson's equation from its residual: -laplacian u = f on the unit square.

f = 2 pi^2 sin(pi x) sin(pi y) with u = 0 on the boundary, whose solution is
u = sin(pi x) sin(pi y).  A 2-64-64-64-1 tanh net (linear output) is trained on the PDE's
residual alone -- no values of u inside the square -- with ``symnet.fit``: the residual
``-r.laplacian - f`` at random interior points, written in numpy terms of the net's exact
Laplacian, plus a boundary term ``u = 0`` (a ``symnet.Residual`` with its own points and
weight).  Adam first, then L-BFGS from Adam's net.  The trained net is compared with the
analytic solution on a 200 x 200 grid; the solution and its error are plotted in one PNG.

Run:  python examples/poisson.py [--quick] [--out poisson.png]
"""

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import symnet  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true",
                    help="few points and iterations (seconds, for the tests; a larger error)")
parser.add_argument("--out", default="poisson.png",
                    help="where to write the PNG (default: poisson.png, in the current directory)")
args = parser.parse_args()

# interior points, boundary points per side, Adam epochs, L-BFGS iterations
N_INTERIOR, N_SIDE, ADAM, LBFGS = (200, 10, 200, 200) if args.quick else (1000, 50, 1000, 1500)
LR, BOUNDARY_WEIGHT = 3e-3, 10.0


def f(P: np.ndarray) -> np.ndarray:
    return 2 * np.pi**2 * np.sin(np.pi * P[:, 0]) * np.sin(np.pi * P[:, 1])


def solution(P: np.ndarray) -> np.ndarray:
    return np.sin(np.pi * P[:, 0]) * np.sin(np.pi * P[:, 1])


rng = np.random.default_rng(0)
interior = rng.uniform(0, 1, size=(N_INTERIOR, 2))
s = np.linspace(0, 1, N_SIDE, endpoint=False)  # each side from one corner, up to the next one
zero, one = np.zeros(N_SIDE), np.ones(N_SIDE)
boundary = np.concatenate([np.column_stack(side) for side in ((s, zero), (one, s), (1 - s, one), (zero, 1 - s))])


def pde(P, r):  # -laplacian u - f at the interior points: r.laplacian is (n, 1)
    return -r.laplacian[:, 0] - f(P)


wall = symnet.Residual(boundary, lambda P, r: r.value[:, 0], weight=BOUNDARY_WEIGHT, name="boundary")
start = symnet.Network.symbolic([2, 64, 64, 64, 1], ["tanh", "tanh", "tanh", "linear"])

print("-laplacian u = 2 pi^2 sin(pi x) sin(pi y) on [0, 1]^2, u = 0 on the boundary")
print(f"net 2-64-64-64-1 tanh, {len(start.params)} weights; {N_INTERIOR} interior + {len(boundary)} boundary "
      f"points (boundary weight {BOUNDARY_WEIGHT:g})")
started = time.perf_counter()
adam = symnet.fit(start, interior, residual=pde, terms=[wall], optimizer="adam", lr=LR, max_iter=ADAM, seed=0)
print(f"adam:   {adam.n_iterations:5d} epochs (lr {LR:g}), loss {adam.loss:.3e}, {adam.seconds:6.1f} s")
lbfgs = symnet.fit(adam.net, interior, residual=pde, terms=[wall], optimizer="lbfgs", max_iter=LBFGS)
print(f"lbfgs:  {lbfgs.n_iterations:5d} iterations,   loss {lbfgs.loss:.3e}, {lbfgs.seconds:6.1f} s  ({lbfgs.message})")
seconds = time.perf_counter() - started

g = np.linspace(0, 1, 200)
grid = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
u = symnet.compile(lbfgs.net, derivatives=("value",))(grid).value[:, 0]
exact = solution(grid)
error = u - exact
print(f"relative L2 error = {np.linalg.norm(error) / np.linalg.norm(exact):.3e}  (200 x 200 grid)")
print(f"max abs error = {np.max(np.abs(error)):.3e}")
print(f"time = {seconds:.1f} s  (both fits)")

figure, axes = plt.subplots(1, 3, figsize=(15, 4.3))
extent = (0, 1, 0, 1)
largest = np.max(np.abs(error))
for ax, values, title, style in ((axes[0], u, "net u(x, y) (dots: interior points)", {"cmap": "viridis"}),
                                 (axes[1], error, "net - sin(pi x) sin(pi y)",
                                  {"cmap": "RdBu_r", "vmin": -largest, "vmax": largest})):
    image = ax.imshow(values.reshape(200, 200).T, origin="lower", extent=extent, **style)
    ax.set(title=title, xlabel="x", ylabel="y")
    figure.colorbar(image, ax=ax)
axes[0].plot(*interior.T, ",", color="white", alpha=0.4)
history = np.concatenate([adam.history, lbfgs.history[1:]])
axes[2].semilogy(history)
axes[2].axvline(adam.n_iterations, color="gray", linestyle=":")
axes[2].set(title="loss: Adam, then L-BFGS", xlabel="iteration")
figure.tight_layout()
figure.savefig(args.out, dpi=110)
print(f"wrote {args.out}")
