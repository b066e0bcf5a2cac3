"""What a kernel returns: :class:`KernelResult`, arrays by request name, and their shapes."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..requests import ALIASES, QUANTITIES, partial_name

_WORDS = tuple(QUANTITIES)


def result_shape(name: str, n: int, m: int, d: int) -> tuple[int, ...]:
    """The shape of result ``name`` (a word of :data:`symnet.requests.QUANTITIES` or a partial) for ``n`` points."""
    quantity = QUANTITIES.get(name)
    return quantity.shape(n, m, d) if quantity is not None else (n, m)



class KernelResult:
    """What a kernel returns: ``.value`` ``(N, m)``, ``.jacobian`` ``(N, m, d)``, ``.hessian``
    ``(N, m, d, d)``, ``.laplacian`` ``(N, m)`` -- only those requested -- and each explicit
    partial by its tuple: ``result[(0, 0, 1)]`` ``(N, m)``.  For a single point (``X`` of shape
    ``(d,)``) the leading ``N`` axis is dropped.
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self._arrays = arrays

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("_arrays", {})
        name = ALIASES.get(name, name)  # r.gradient is r.jacobian, as in requests
        if name in arrays:
            return arrays[name]
        if name in _WORDS:
            raise AttributeError(f"{name!r} was not requested; compile with derivatives=(..., {name!r})")
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"no result {name!r}: the results are {', '.join(arrays) or 'none'} (partials by "
                             "their tuple: result[(0, 1)])")

    def __getitem__(self, key: str | Sequence[int]) -> np.ndarray:
        name = key if isinstance(key, str) else partial_name(tuple(sorted(int(k) for k in key)))
        if name not in self._arrays:
            raise KeyError(f"{key!r} was not requested; requested: {', '.join(self._arrays)}")
        return self._arrays[name]

    def as_dict(self) -> dict[str, np.ndarray]:
        return dict(self._arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={v.shape}" for k, v in self._arrays.items())
        return f"KernelResult({shapes})"
