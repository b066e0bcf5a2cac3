"""Substitution that does not ask SymPy's assumption system about huge arguments.

``expr.xreplace`` rebuilds every node through its constructor, and the constructors of
``tanh``, ``exp``, ``Max`` ... query assumptions of their argument (``is_positive`` of a sum of
32 products), which dominates building a network's closed form.  Functions whose arguments
are not all numbers are rebuilt unevaluated here: they could not simplify anyway, except by
sign extraction, which only reorders the printout.  Numbers and small arguments
(``-x0``, ``2*x + 1``) still evaluate, so ``DiracDelta(-x)`` becomes ``DiracDelta(x)``.
"""

from __future__ import annotations

from typing import Mapping

import sympy

_UNEVALUATED = (sympy.Function, sympy.Max, sympy.Min)


def substitute(expr: sympy.Basic, mapping: Mapping[sympy.Basic, sympy.Basic]) -> sympy.Basic:
    """``expr`` with every key of ``mapping`` replaced, like ``xreplace``."""
    memo: dict[sympy.Basic, sympy.Basic] = {}

    def walk(node: sympy.Basic) -> sympy.Basic:
        if node in mapping:
            return mapping[node]
        if not node.args:
            return node
        if node in memo:
            return memo[node]
        args = tuple(walk(a) for a in node.args)
        if args == node.args:
            result = node
        elif isinstance(node, _UNEVALUATED) and not all(_small(a) for a in args):
            result = node.func(*args, evaluate=False)
        else:
            result = node.func(*args)
        memo[node] = result
        return result

    return walk(expr)


def _small(expr: sympy.Basic, limit: int = 8) -> bool:
    """Whether ``expr`` has at most ``limit`` nodes (stops counting early)."""
    count = 0
    for _ in sympy.preorder_traversal(expr):
        count += 1
        if count > limit:
            return False
    return True
