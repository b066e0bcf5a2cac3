"""Shapes that hold the batch size N as a symbol, shared by the importers that read a framework's shape arithmetic.

``x.view(x.size(0), -1)`` in a PyTorch ``forward``, and its ONNX export with a dynamic batch
(``Shape -> Gather -> Concat -> Reshape``), compute a reshape's target from the number of points
N, which no graph knows as a number.  The importers evaluate such shapes with N kept as one
marker, :data:`BATCH`, beside whole numbers: :func:`combine` folds the arithmetic (N kept only
where it stays N: ``N * 1``, ``N + 0``), :func:`resolve` reads a reshape's target (``-1``
inferred, ``0`` copying an axis where the framework says so) against the shape a value is held
in, ``[N, w]`` for symnet's ``(N, w)`` tensors.  Whether the result keeps ``(N, w)`` -- and so
the reshape is the identity -- is the importer's decision; what would merge or split the points
is refused here with the place named.  Shapes are data: Python integers and the one marker,
never code.

>>> resolve([BATCH, -1], [BATCH, 4], "node view")
[N, 4]
>>> combine("mul", BATCH, 1, "node mul"), combine("floordiv", 7, 2, "node floordiv"), combine("add", 4, 0, "node add")
(N, 3, 4)
>>> shown([BATCH])
'(N,)'
"""

from __future__ import annotations

import math
from typing import Any, Union

from .format import UnsupportedLayerError

__all__ = ["BATCH", "Batch", "Entry", "MAX_SHAPE_ENTRIES", "combine", "holds_batch", "resolve", "shown"]


class Batch:
    """The batch size N, an entry of a shape (one object, :data:`BATCH`: compared by identity)."""

    def __repr__(self) -> str:
        return "N"


#: The symbol N stands for in shapes.
BATCH = Batch()
#: The most entries a shape computed from N may have.
MAX_SHAPE_ENTRIES = 64
#: One entry of a shape: a whole number or :data:`BATCH`.
Entry = Union[int, Batch]

_SIGNS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//"}
_NEUTRAL = {"add": 0, "sub": 0, "mul": 1, "div": 1, "floordiv": 1}


def shown(shape: Any) -> str:
    """A shape as PyTorch prints a tuple: ``(N, 4)``, ``(N,)``."""
    shape = list(shape)
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def holds_batch(value: Any) -> bool:
    """Whether ``value`` (an entry, or lists, tuples and dicts' values of them, nested) holds :data:`BATCH`."""
    if value is BATCH:
        return True
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return any(holds_batch(v) for v in value)
    return False


def combine(kind: str, x: Entry, y: Entry, where: str) -> Entry:
    """``x <kind> y`` for two entries (``kind`` add, sub, mul, div, floordiv): whole numbers fold --
    ``div`` truncates toward zero as ONNX's integer ``Div`` does, ``floordiv`` floors as Python's
    ``//`` -- and N is kept only where it stays N (``N * 1``, ``1 * N``, ``N + 0``, ``0 + N``,
    ``N - 0``, ``N / 1``, ``N // 1``); anything else with N is refused, naming ``where``."""
    if kind not in _SIGNS:
        raise ValueError(f"combine: kind {kind!r}")
    if x is not BATCH and y is not BATCH:
        a, b = int(x), int(y)  # type: ignore[arg-type]
        if kind in ("div", "floordiv") and b == 0:
            raise UnsupportedLayerError(f"{where}: integer division by zero")
        if kind == "div":
            return abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
        if kind == "floordiv":
            return a // b
        return a + b if kind == "add" else a - b if kind == "sub" else a * b
    neutral = _NEUTRAL[kind]
    if (x is BATCH and y is not BATCH and y == neutral) or \
            (y is BATCH and x is not BATCH and x == neutral and kind in ("add", "mul")):
        return BATCH
    raise UnsupportedLayerError(f"{where}: {x} {_SIGNS[kind]} {y} on the batch size N; symnet's shape arithmetic "
                                "keeps N only where it stays N (N * 1, N + 0)")


def resolve(target: list[Entry], held: list[Entry], where: str, *, zero_copies: bool = True,
            op: str = "Reshape") -> list[Entry]:
    """The shape a reshape to ``target`` gives a value held as ``held`` (``[N, w]``, ``[N]``...: N once).

    Args:
        target: whole numbers and N; ``-1`` (once) inferred from the rest.
        held: the value's shape, holding :data:`BATCH` once.
        where: the node, for errors.
        zero_copies: ``0`` copies ``held``'s entry at its place (ONNX without ``allowzero``);
            otherwise (PyTorch, ``allowzero``) a ``0`` is refused, as it empties the value.
        op: the op's name in errors.

    A ``-1`` is N where the rest already accounts for every feature, and a target without N
    must have one ``-1`` to stand for it; a target that would merge or split the points is
    refused.  The result keeps the points on one axis, but not necessarily ``held``'s
    (``(2, N)`` for a target ``(2, -1)`` of an ``(N, 2)`` value): the caller compares.
    """
    if len(target) > MAX_SHAPE_ENTRIES:
        raise UnsupportedLayerError(f"{where}: a {op} target of {len(target)} entries; symnet evaluates shapes of up "
                                    f"to {MAX_SHAPE_ENTRIES} entries")
    out: list[Entry] = []
    for k, v in enumerate(target):
        if v is BATCH or v == -1 or v >= 1:  # type: ignore[operator]
            out.append(v)
        elif v == 0 and zero_copies and k < len(held):
            out.append(held[k])  # 0: the same as the input's axis
        else:
            raise UnsupportedLayerError(f"{where}: {op} of an {shown(held)} value to {shown(target)}: entry "
                                        f"{k} is {v}{' (allowzero)' if v == 0 and op == 'Reshape' else ''}")
    size = math.prod(v for v in held if v is not BATCH)  # type: ignore[misc]
    known = math.prod(v for v in out if v is not BATCH and v != -1)  # type: ignore[misc]
    batches, unknown = sum(v is BATCH for v in out), out.count(-1)
    if unknown == 1 and batches == 1 and size % known == 0:
        return [size // known if v == -1 else v for v in out]
    if unknown == 1 and batches == 0 and known == size:
        return [BATCH if v == -1 else v for v in out]
    if unknown == 0 and batches == 1 and known == size:
        return out
    raise UnsupportedLayerError(f"{where}: {op} of an {shown(held)} value to {shown(target)} would merge or "
                                "split the points; symnet reads reshapes that keep the points on the first axis")
