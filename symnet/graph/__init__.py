"""Networks as graphs of tensor ops: the IR (:mod:`.ir`), the op table by rule family (:mod:`.ops`)
and the few-line builder (:mod:`.builder`, whose functions are re-exported here).

>>> from symnet.graph import input, dense, network
>>> x = input(2)
>>> h = dense(x, 4, "tanh")
>>> net = network(x, dense(h + dense(h, 4, "tanh"), 1))
>>> len(net.params)
37
"""

from .builder import (Tensor, activation, add, batch_norm, blend, concat, dense, fourier_features, inner, input,
                      layer_norm, log_softmax, matmul, mean, mul, network, normalize, rescale, rms_norm, scale, shift,
                      slice, softmax, sub, sum)
from .ir import Graph, Node
from .ops import COMPOSITES, FAMILIES, OPS, Op

__all__ = ["COMPOSITES", "FAMILIES", "Graph", "Node", "OPS", "Op", "Tensor", "activation", "add", "batch_norm",
           "blend", "concat", "dense", "fourier_features", "inner", "input", "layer_norm", "log_softmax", "matmul",
           "mean", "mul", "network", "normalize", "rescale", "rms_norm", "scale", "shift", "slice", "softmax", "sub",
           "sum"]
