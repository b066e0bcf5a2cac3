"""Cross-checks: numeric back-propagation, finite differences, and ``verify``, which compares
them with the exact kernel.

* :func:`backprop` -- value, input Jacobian and Hessian, and loss gradients of a numeric network,
  in plain numpy from the layer list (a chain) or the graph's nodes with its own rule per op
  (a graph: :class:`GraphBackprop`), never SymPy's rules;
* :func:`finite_differences` / :func:`finite_differences_params` -- central differences with a
  step chosen from machine epsilon, and an error estimate per entry;
* :func:`verify` -- the three derivations compared, with tolerances derived from their error
  bounds; a :class:`VerifyReport` or a :class:`VerificationError`.

>>> import symnet
>>> from symnet.check import verify
>>> net = symnet.Network.from_weights([[[1.0]], [[2.0]]], [[0.5], [0.0]], ["sin", "linear"])
>>> verify(net, n_points=3).ok
True
"""

from .backprop import Backprop, Derivatives, GraphBackprop, backprop
from .finite_differences import FiniteDifferences, finite_differences, finite_differences_params
from .verify import Comparison, VerificationError, VerifyReport, verify

__all__ = [
    "Backprop",
    "Comparison",
    "Derivatives",
    "FiniteDifferences",
    "GraphBackprop",
    "VerificationError",
    "VerifyReport",
    "backprop",
    "finite_differences",
    "finite_differences_params",
    "verify",
]
