"""Make tests/data/flax_mlp.onnx: a Flax (nnx) MLP exported with jax2onnx.

Run in an environment with jax, flax and jax2onnx (not symnet's test environment):
    python tests/data/make_flax_mlp.py tests/data/flax_mlp.onnx

(jax 0.10.2, flax 0.12.8, jax2onnx from PyPI on 2026-12-07.)
"""
import jax
import jax.numpy as jnp
from flax import nnx
from jax2onnx import to_onnx


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.l1 = nnx.Linear(2, 16, rngs=rngs)
        self.l2 = nnx.Linear(16, 16, rngs=rngs)
        self.l3 = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = jnp.tanh(self.l1(x))
        h = h + jnp.tanh(self.l2(h))
        return self.l3(h)


if __name__ == "__main__":
    import sys
    model = MLP(nnx.Rngs(0))
    out = sys.argv[1] if len(sys.argv) > 1 else "flax_mlp.onnx"
    to_onnx(model, [("B", 2)], return_mode="file", output_path=out)
    print("wrote", out)
