"""symnet: neural networks as exact mathematics, and back into fast code.

>>> import symnet
>>> net = symnet.Network.from_weights([-1.3284513, 0.5667597], [-1.328055, 1.0003909], ["square", "linear"])
>>> {k: round(float(v), 7) for k, v in symnet.coefficients(net).items()}
{(2,): 1.0002078, (1,): 1.9998188, (0,): 2.000002}
"""

from . import activations
from .activations import Activation
from .check import VerificationError, VerifyReport, backprop, finite_differences, finite_differences_params, verify
from .coefficients import Coefficients, coefficients, taylor
from .derivatives import biharmonic, diff, grad, hessian, jacobian, laplacian, param_grad
from .errors import (
    ActivationError,
    ExpressionSizeWarning,
    ImportMismatchError,
    InputError,
    LimitError,
    NotAChainError,
    NotPolynomialError,
    ResidualError,
    ShapeError,
    SymnetError,
    WeightError,
)
from .functions import sigmoid, softplus
from .kinks import KinkReport, kinks
from .train import FitResult, fit
from .residuals import Residual
from .kernels import CacheWarning, Kernel, KernelResult, LossKernel, VJPKernel, compile, compile_loss, compile_vjp
from .network import Dense, Network
from .printing import formula, latex, pretty, simplify
from .program import Program
from . import graph, io, limits, losses, requests
from .io import from_keras, from_torch, save
from .io import read_network as load

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "ActivationError",
    "CacheWarning",
    "Coefficients",
    "Dense",
    "Kernel",
    "KernelResult",
    "KinkReport",
    "LossKernel",
    "VJPKernel",
    "ExpressionSizeWarning",
    "FitResult",
    "Residual",
    "ImportMismatchError",
    "ResidualError",
    "InputError",
    "LimitError",
    "Network",
    "NotAChainError",
    "NotPolynomialError",
    "Program",
    "ShapeError",
    "SymnetError",
    "WeightError",
    "VerificationError",
    "VerifyReport",
    "activations",
    "backprop",
    "biharmonic",
    "coefficients",
    "compile",
    "compile_loss",
    "compile_vjp",
    "diff",
    "finite_differences",
    "fit",
    "formula",
    "finite_differences_params",
    "from_keras",
    "from_torch",
    "grad",
    "graph",
    "hessian",
    "io",
    "limits",
    "losses",
    "jacobian",
    "kinks",
    "laplacian",
    "latex",
    "load",
    "param_grad",
    "pretty",
    "requests",
    "save",
    "sigmoid",
    "simplify",
    "softplus",
    "taylor",
    "verify",
]
