"""The exceptions symnet raises.

Every error is a :class:`SymnetError`; each subclass also derives from the built-in
exception a Python user would expect (``ValueError``, ``TypeError``), so existing
``except ValueError`` code keeps working.  Messages name the layer, shape, activation or
file at fault and say what to do.
"""

from __future__ import annotations

__all__ = [
    "SymnetError",
    "ShapeError",
    "WeightError",
    "ActivationError",
    "InputError",
    "NotPolynomialError",
    "ImportMismatchError",
    "LimitError",
    "NotAChainError",
    "ResidualError",
    "ExpressionSizeWarning",
]


class SymnetError(Exception):
    """Base class of every error raised by symnet."""


class ShapeError(SymnetError, ValueError):
    """Layer shapes do not fit together, or an array has the wrong shape."""


class WeightError(SymnetError, ValueError):
    """A weight or bias is not a finite number or a SymPy expression."""


class ActivationError(SymnetError, ValueError):
    """An activation is unknown, cannot be traced by SymPy, or is misused."""


class InputError(SymnetError, ValueError):
    """An argument names an input, output or option that the network does not have."""


class NotPolynomialError(SymnetError, ValueError):
    """Polynomial coefficients were asked of a network that is not a polynomial."""


class LimitError(SymnetError, ValueError):
    """A request exceeds one of the work limits in :mod:`symnet.limits` (it would not finish in reasonable time)."""


class NotAChainError(SymnetError, ValueError):
    """A function that reads a chain of dense layers was given a network that is a graph."""


class ImportMismatchError(SymnetError, ValueError):
    """An imported network does not compute what the framework object it came from computes."""


class ResidualError(SymnetError, ValueError):
    """A training residual does something symnet cannot differentiate exactly (see :mod:`symnet.tape`)."""


class ExpressionSizeWarning(UserWarning):
    """A flat closed form is about to be very large; the structured (program) form is cheaper."""
