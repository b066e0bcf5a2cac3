"""Faa di Bruno's formula, once: the set partitions that give ``d^alpha f(z)`` from ``f^(k)(z)`` and ``d^B z``.

``d^alpha f(z) = sum over set partitions P of alpha's positions of f^(|P|)(z) prod_{B in P} d^B z``,
where a multi-index ``alpha`` is a sorted tuple of input positions (``(0, 0, 1)`` is
``d^3 / dx0^2 dx1``).  The chain-rule program (:mod:`symnet.program`) writes one term per
partition; the layered kernels (:mod:`symnet.kernels._layered`) group equal terms
(:func:`grouped_terms`).

>>> set_partitions(3)
(((0, 1, 2),), ((0, 1), (2,)), ((0, 2), (1,)), ((0,), (1, 2)), ((0,), (1,), (2,)))
>>> grouped_terms((0, 0, 1))  # f'' (2 dz0 d2z01 + dz1 d2z00) + f''' dz0^2 dz1
{((0,), (0, 1)): 2, ((1,), (0, 0)): 1, ((0,), (0,), (1,)): 1}
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

__all__ = ["block_index", "grouped_terms", "set_partitions"]

MultiIndex = tuple[int, ...]


@lru_cache(maxsize=None)
def set_partitions(k: int) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """Every set partition of the positions ``0 .. k-1``, each a tuple of blocks (Bell(k) of them)."""
    if k == 0:
        return ((),)
    result = []
    for partition in set_partitions(k - 1):
        for i in range(len(partition)):  # put k-1 into an existing block
            result.append(partition[:i] + (partition[i] + (k - 1,),) + partition[i + 1:])
        result.append(partition + ((k - 1,),))
    return tuple(result)


def block_index(alpha: MultiIndex, positions: Iterable[int]) -> MultiIndex:
    """The multi-index of the positions ``positions`` of ``alpha``, sorted."""
    return tuple(sorted(alpha[p] for p in positions))


def grouped_terms(alpha: MultiIndex) -> dict[tuple[MultiIndex, ...], int]:
    """Faa di Bruno's terms of ``d^alpha f(z)`` beyond ``f'(z) d^alpha z``, equal ones grouped.

    For each partition of ``alpha``'s positions into two or more blocks: the blocks (as sorted
    multi-indices, the partition sorted by order then lexically) and how many partitions give
    the same blocks.  A partition into ``k`` blocks contributes ``f^(k)(z) prod(d^block z)``.
    """
    counts: dict[tuple[MultiIndex, ...], int] = {}
    for partition in set_partitions(len(alpha)):
        if len(partition) > 1:
            blocks = tuple(sorted((block_index(alpha, block) for block in partition),
                                  key=lambda block: (len(block), block)))
            counts[blocks] = counts.get(blocks, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (len(item[0]), item[0])))
