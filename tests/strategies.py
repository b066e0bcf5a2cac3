"""Hypothesis strategies shared by the test modules: random graph networks over the op set."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from symnet.graph import concat, dense, input, matmul, mul, network, rescale, scale, shift
from symnet.graph import activation as act
from symnet.graph import mean as graph_mean
from symnet.graph import sum as graph_sum

__all__ = ["SMALL_ZOO", "random_dags"]

_ACTIVATIONS = ("tanh", "sigmoid", "sin", "square", "softplus")


@st.composite
def random_dags(draw):
    """A random graph: each node an op of the table on earlier nodes (width 1 broadcasts)."""
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = input(2)
    nodes = [x]
    for _ in range(draw(st.integers(2, 7))):
        kind = draw(st.sampled_from(("dense", "act", "add", "sub", "mul", "scale", "shift", "rescale", "concat",
                                     "slice", "sum", "mean", "matmul")))
        a = nodes[draw(st.integers(0, len(nodes) - 1))]
        b = nodes[draw(st.integers(0, len(nodes) - 1))]
        if kind == "dense":
            new = dense(a, rng.normal(scale=0.8, size=(a.width, 3)), rng.normal(size=3),
                        draw(st.sampled_from(_ACTIVATIONS + (None,))))
        elif kind == "act":
            new = act(a, draw(st.sampled_from(_ACTIVATIONS)))
        elif kind in ("add", "sub", "mul"):
            if a.width != b.width and 1 not in (a.width, b.width):
                b = dense(b, rng.normal(size=(b.width, a.width)), None)
            new = a + b if kind == "add" else a - b if kind == "sub" else mul(a, b)
        elif kind == "scale":
            new = scale(a, rng.normal(size=a.width))
        elif kind == "shift":
            new = shift(a, rng.normal(size=a.width))
        elif kind == "rescale":
            new = rescale(a, rng.normal(size=a.width), rng.normal(size=a.width))
        elif kind == "concat":
            new = concat([a, b])
        elif kind == "slice":
            new = a[0:max(1, a.width - 1)]
        elif kind == "matmul":
            new = matmul(a, rng.normal(size=(a.width, 2)))
        else:
            new = graph_sum(a) if kind == "sum" else graph_mean(a)
        nodes.append(new)
    last = nodes[-1]
    out = dense(last, rng.normal(size=(last.width, 1)), [0.1])
    return network(x, out if draw(st.booleans()) else out + dense(nodes[len(nodes) // 2], np.ones((nodes[len(nodes) // 2].width, 1))))


#: Small instances (width 3) of every zoo net.
SMALL_ZOO = {
    "resnet_mlp": dict(width=3, blocks=2),
    "modified_mlp": dict(width=3, depth=2),
    "pirate_net": dict(width=3),
    "fourier_mlp": dict(features=2, width=3, depth=2),
    "deeponet": dict(sensors=3, coords=2, width=3, depth=1, p=3),
    "layer_norm_mlp": dict(width=3, depth=2),
    "weight_norm_mlp": dict(width=3, depth=2),
    "normalized_two_heads": dict(width=3, depth=1),
}
