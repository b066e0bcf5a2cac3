"""A net solves the viscous Burgers equation from its residual, checked against the exact solution.

    u_t + u u_x - nu u_xx = 0   on x in [-1, 1], t in [0, 1],   nu = 0.1 / pi,
    u(x, 0) = -sin(pi x),       u(-1, t) = u(1, t) = 0

-- the classic PINN benchmark, with ten times the viscosity of its hardest form (0.01 / pi),
so that it trains in a few minutes on two cores.  The residual reads the net's exact
partials by their input positions (inputs ordered (x, t)): ``r[(1,)]`` is u_t, ``r[(0,)]``
u_x, ``r[(0, 0)]`` u_xx; the initial and boundary conditions are two more
``symnet.Residual`` terms.  A 2-32-32-32-1 tanh net is trained with Adam, then L-BFGS.

The truth is exact, not another solver's: the Cole-Hopf transform u = -2 nu phi_x / phi
turns Burgers into the heat equation phi_t = nu phi_xx, so

    u(x, t) = -int sin(pi (x - s)) F(x - s) G(s) ds / int F(x - s) G(s) ds,
    F(y) = exp(-cos(pi y) / (2 pi nu)),   G(s) = exp(-s^2 / (4 nu t)),

evaluated by 200-node Gauss-Hermite quadrature (converged to about 1e-9).  The relative L2
error is measured on a 201 x 101 grid of (x, t); the PNG shows the net's u(x, t), its error,
and slices at five times.

Run:  python examples/burgers.py [--quick] [--out burgers.png]
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
parser.add_argument("--out", default="burgers.png",
                    help="where to write the PNG (default: burgers.png, in the current directory)")
args = parser.parse_args()

NU = 0.1 / np.pi
# collocation points, initial points, boundary points, Adam epochs, L-BFGS iterations
N_PDE, N_INITIAL, N_BOUNDARY, ADAM, LBFGS = (300, 40, 40, 200, 300) if args.quick else (2000, 200, 200, 1000, 4000)
LR, CONDITION_WEIGHT = 3e-3, 10.0


def exact(x: np.ndarray, t: np.ndarray, nodes: int = 200) -> np.ndarray:
    """Cole-Hopf: u(x, t) for t > 0, by Gauss-Hermite quadrature over s = sqrt(4 nu t) z."""
    z, w = np.polynomial.hermite.hermgauss(nodes)
    y = np.asarray(x)[..., None] - np.sqrt(4 * NU * np.asarray(t))[..., None] * z
    weight = w * np.exp(-np.cos(np.pi * y) / (2 * np.pi * NU))
    return -(np.sin(np.pi * y) * weight).sum(axis=-1) / weight.sum(axis=-1)


rng = np.random.default_rng(0)
inside = np.column_stack([rng.uniform(-1, 1, N_PDE), rng.uniform(0, 1, N_PDE)])
initial = np.column_stack([np.linspace(-1, 1, N_INITIAL), np.zeros(N_INITIAL)])
times = np.linspace(0, 1, N_BOUNDARY // 2)
boundary = np.concatenate([np.column_stack([np.full_like(times, side), times]) for side in (-1.0, 1.0)])


def burgers(P, r):  # u_t + u u_x - nu u_xx, from the net's exact partials: inputs (x, t)
    u, u_t, u_x, u_xx = r.value[:, 0], r[(1,)][:, 0], r[(0,)][:, 0], r[(0, 0)][:, 0]
    return u_t + u * u_x - NU * u_xx


conditions = [
    symnet.Residual(initial, lambda P, r: r.value[:, 0] + np.sin(np.pi * P[:, 0]), weight=CONDITION_WEIGHT,
                    name="initial"),
    symnet.Residual(boundary, lambda P, r: r.value[:, 0], weight=CONDITION_WEIGHT, name="boundary"),
]
start = symnet.Network.symbolic([2, 32, 32, 32, 1], ["tanh", "tanh", "tanh", "linear"])

print("u_t + u u_x - nu u_xx = 0, nu = 0.1/pi, on [-1, 1] x [0, 1]; u(x, 0) = -sin(pi x), u(+-1, t) = 0")
print(f"net 2-32-32-32-1 tanh, {len(start.params)} weights; {N_PDE} collocation + {N_INITIAL} initial + "
      f"{len(boundary)} boundary points (condition weight {CONDITION_WEIGHT:g})")
print(f"derivatives the residual reads: {symnet.Residual(inside, burgers).derivatives_read(start)}")
started = time.perf_counter()
adam = symnet.fit(start, inside, residual=burgers, terms=conditions, optimizer="adam", lr=LR, max_iter=ADAM, seed=0)
print(f"adam:   {adam.n_iterations:5d} epochs (lr {LR:g}), loss {adam.loss:.3e}, {adam.seconds:6.1f} s")
lbfgs = symnet.fit(adam.net, inside, residual=burgers, terms=conditions, optimizer="lbfgs", max_iter=LBFGS)
print(f"lbfgs:  {lbfgs.n_iterations:5d} iterations,   loss {lbfgs.loss:.3e}, {lbfgs.seconds:6.1f} s  ({lbfgs.message})")
seconds = time.perf_counter() - started

xs, ts = np.linspace(-1, 1, 201), np.linspace(0, 1, 101)
X, T = np.meshgrid(xs, ts, indexing="ij")
truth = np.where(T == 0, -np.sin(np.pi * X), exact(X, np.maximum(T, 1e-300)))  # t = 0: the initial condition
u = symnet.compile(lbfgs.net, derivatives=("value",))(np.column_stack([X.ravel(), T.ravel()])).value[:, 0]
u = u.reshape(X.shape)
error = u - truth
print(f"relative L2 error = {np.linalg.norm(error) / np.linalg.norm(truth):.3e}  (201 x 101 grid of (x, t))")
print(f"max abs error = {np.max(np.abs(error)):.3e}")
print(f"time = {seconds:.1f} s  (both fits)")

figure, axes = plt.subplots(1, 3, figsize=(15, 4.3))
extent = (0, 1, -1, 1)
largest = np.max(np.abs(error))
for ax, values, title, style in ((axes[0], u, "net u(x, t)", {"cmap": "RdBu_r"}),
                                 (axes[1], error, "net - exact (Cole-Hopf)",
                                  {"cmap": "RdBu_r", "vmin": -largest, "vmax": largest})):
    image = ax.imshow(values, origin="lower", extent=extent, aspect="auto", **style)
    ax.set(title=title, xlabel="t", ylabel="x")
    figure.colorbar(image, ax=ax)
for k, color in zip((0, 25, 50, 75, 100), plt.cm.viridis(np.linspace(0, 0.9, 5))):
    axes[2].plot(xs, truth[:, k], color=color, linewidth=3, alpha=0.35)
    axes[2].plot(xs, u[:, k], "--", color=color, label=f"t = {ts[k]:.2f}")
axes[2].set(title="net (dashed) and exact (wide) at five times", xlabel="x", ylabel="u")
axes[2].legend(fontsize=8)
figure.tight_layout()
figure.savefig(args.out, dpi=110)
print(f"wrote {args.out}")
