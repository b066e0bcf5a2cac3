import warnings

import numpy as np
import pytest
import sympy

import symnet
from symnet import program
from symnet.faa_di_bruno import set_partitions
from symnet.program import Node, build, closure, multi_indices

from conftest import random_network


def test_set_partitions_are_bell_numbers():
    assert [len(set_partitions(k)) for k in range(7)] == [1, 1, 2, 5, 15, 52, 203]


def test_closure_and_multi_indices():
    assert closure([(1, 0, 0)]) == [(), (0,), (1,), (0, 0), (0, 1), (0, 0, 1)]
    assert multi_indices(2, 2) == [(), (0,), (1,), (0, 0), (0, 1), (1, 1)]


def test_nodes_never_equal_user_symbols():
    assert Node("z1_0") != sympy.Symbol("z1_0", real=True)


def test_program_is_deterministic_and_small():
    net = random_network(np.random.default_rng(0), [3, 16, 16, 1], ["tanh", "tanh", "linear"])
    first = build(net, multi_indices(3, 2))
    second = build(net, multi_indices(3, 2))
    assert str(first) == str(second)
    assert len(first) < 600  # one node per neuron quantity, not an expression tree


def test_flat_size_warning(monkeypatch):
    net = random_network(np.random.default_rng(0), [2, 4, 4, 1], ["tanh", "tanh", "linear"])
    p = symnet.hessian(net, form="program")
    size = p.flat_size(list(p.result))
    assert size > 100
    monkeypatch.setattr(program, "FLAT_SIZE_WARNING", size - 1)
    with pytest.warns(symnet.ExpressionSizeWarning, match="form='program'"):
        p.flat()
    monkeypatch.setattr(program, "FLAT_SIZE_WARNING", size + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p.flat()


def test_a_shifted_softmax_program_is_the_plain_one_with_exact_ties():
    """shift_softmax=True computes softmax(z) as softmax(z - z_m) with z_m the first largest unit's
    jet: the same function and partials, exactly (SymPy, rational points), ties included; the plain
    program (formulas) has no Max or Piecewise in it."""
    net = symnet.Network.from_weights([[[1, -2, 3], [2, 1, 0]]], [[0, 1, 0]], ["softmax"])  # z = (x0+2x1, 1-2x0+x1, 3x0)
    wanted = [(), (0,), (1,), (0, 1), (1, 1, 1)]
    plain, shifted = build(net, wanted), build(net, wanted, shift_softmax=True)
    assert not any(e.has(sympy.Max, sympy.Piecewise) for _, e in plain.assignments)
    assert any(e.has(sympy.Piecewise) for _, e in shifted.assignments)
    x0, x1 = net.inputs
    quarter = sympy.Rational(1, 4)
    points = [(sympy.Rational(1, 3), sympy.Rational(-1, 2)), (0, 0), (1, 1), (quarter, quarter)]
    for point in points:  # (1, 1): units 0 and 2 tie at 3; (1/4, 1/4): all three at 3/4
        values = {x0: point[0], x1: point[1]}
        for k in range(3):
            for alpha in wanted:
                want = plain.flat(plain.jets[k][alpha]).subs(values)
                got = shifted.flat(shifted.jets[k][alpha]).subs(values)
                assert sympy.simplify(got - want) == 0, (point, k, alpha)


def test_log_softmax_program_is_sympy_diff_of_its_formula_shifted_or_not():
    """log_softmax's rule (exp, sum, log by Faa di Bruno, difference) against ``sympy.diff`` of
    ``z_j - log(sum exp z)``, plain and shifted by the largest unit, ties included."""
    weights = [[1, -2, 3], [2, 1, 0]]
    net = symnet.Network.from_weights([weights], [[0, 1, 0]], ["log_softmax"])
    x0, x1 = net.inputs
    z = [weights[0][j] * x0 + weights[1][j] * x1 + [0, 1, 0][j] for j in range(3)]
    formula = [zj - sympy.log(sum(sympy.exp(zk) for zk in z)) for zj in z]
    wanted = [(), (0,), (1,), (0, 1), (1, 1, 1), (0, 0, 1, 1)]
    plain, shifted = build(net, wanted), build(net, wanted, shift_softmax=True)
    assert not any(e.has(sympy.Max, sympy.Piecewise) for _, e in plain.assignments)
    half = sympy.Rational(1, 2)
    for point in [(sympy.Rational(1, 3), -half), (1, 1), (sympy.Rational(1, 4), sympy.Rational(1, 4))]:
        values = {x0: point[0], x1: point[1]}
        for k in range(3):
            for alpha in wanted:
                want = (sympy.diff(formula[k], *(net.inputs[i] for i in alpha)) if alpha else formula[k]).subs(values)
                for built in (plain, shifted):
                    got = built.flat(built.jets[k][alpha]).subs(values)
                    assert abs(sympy.N(got - want, 50)) < 1e-45 * (1 + abs(sympy.N(want, 50))), (point, k, alpha)
