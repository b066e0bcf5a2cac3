"""Networks in and out: import from Keras and PyTorch, symnet's file format, code export.

| function | what it does |
|---|---|
| :func:`from_keras`, :func:`load_keras` | a live Keras 3 model, or a ``.keras`` file read without running its code |
| :func:`from_torch`, :func:`load_torch` | any ``nn.Module`` (traced), or a weights-only state dict file |
| :func:`from_onnx` | an ``.onnx`` file, parsed, never run |
| :func:`save`, :func:`load` | symnet's own format: one ``.npz`` that round-trips every network |
| :func:`read_network` | any of these files, recognised by its contents |
| :func:`export` | the closed form and its derivatives as C, Python or LaTeX source |
| :func:`safe_text` | text from a file, fit to print: control characters shown escaped |

Keras, PyTorch, onnx and h5py are imported only when a function needs them.

>>> import os, tempfile, symnet
>>> net = symnet.Network.from_weights([[[2.0]], [[3.0]]], [[1.0], [0.5]], ["square", "linear"])
>>> path = save(net, os.path.join(tempfile.mkdtemp(), "net.npz"))
>>> load(path) == net
True
"""

from ._expr import ExpressionError, safe_text
from .export import export
from .format import FileFormatError, UnsupportedLayerError, UntrustedCodeError, detect, load, read_network, save
from .keras import activation_from_text, from_keras, load_keras
from .onnx import from_onnx
from .torch import from_torch, load_torch

__all__ = [
    "ExpressionError",
    "FileFormatError",
    "UnsupportedLayerError",
    "UntrustedCodeError",
    "activation_from_text",
    "detect",
    "export",
    "from_keras",
    "from_onnx",
    "from_torch",
    "load",
    "load_keras",
    "load_torch",
    "read_network",
    "safe_text",
    "save",
]
