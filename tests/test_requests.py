"""The one vocabulary of derivative requests (symnet.requests) and the biharmonic."""

from __future__ import annotations

import pytest
import sympy

import symnet
from symnet import InputError
from symnet.graph import dense, input, network
from symnet.requests import ALIASES, QUANTITIES, parse, partial_name


def test_aliases_name_one_quantity():
    assert parse(["gradient", "grad", "jacobian"], 2).names == ("jacobian",)
    assert parse("bilaplacian", 2).names == ("biharmonic",)
    assert all(target in QUANTITIES for target in ALIASES.values())


def test_request_order_partials_and_shapes():
    request = parse([(1, 0, 0), "hessian", "value", (0, 0, 1)], 3)
    assert request.names == ("value", "hessian") and request.partials == ((0, 0, 1),)
    assert request.outputs == ("value", "hessian", "partial_0_0_1")
    assert request.shape("hessian", 4, 2, 3) == (4, 2, 3, 3) and request.shape("partial_0_0_1", 4, 2, 3) == (4, 2)
    assert request.multi_indices(3)[0] == () and len(set(request.multi_indices(3))) == len(request.multi_indices(3))
    assert partial_name(()) == "partial" and request.order == 3


@pytest.mark.parametrize("bad, message", [
    ("hessain", "unknown derivative 'hessain'"), ([], "empty"), (3.5, "cannot read"), ([(0, 5)], "not an input"),
    ([{"a": 1}], "cannot read derivative"),
])
def test_bad_requests_say_what_to_do(bad, message):
    with pytest.raises(InputError, match=message):
        parse(bad, 2)


def test_allowed_names():
    with pytest.raises(InputError, match="not available here"):
        parse(["value", "biharmonic"], 2, allowed=("value", "jacobian"))


def test_biharmonic_counts_each_fourth_partial_once():
    assert QUANTITIES["biharmonic"].multi_indices(3) == [(0, 0, 0, 0), (0, 0, 1, 1), (0, 0, 2, 2), (1, 1, 1, 1),
                                                         (1, 1, 2, 2), (2, 2, 2, 2)]


@pytest.mark.parametrize("make", ["chain", "graph"])
def test_biharmonic_against_sympy_diff(make):
    R = sympy.Rational  # exact weights: the comparison is at 30 digits
    W1, b1 = [[R(3, 2), R(3, 10)], [R(1, 5), -1]], [R(1, 10), R(1, 5)]
    if make == "chain":
        net = symnet.Network.from_weights([W1, [[1], [2]]], [b1, [0]], ["tanh", "linear"])
    else:
        x = input(2)
        h = dense(x, W1, b1, "sigmoid")
        net = network(x, dense(h * h + h, [[1], [R(-1, 2)]], [R(3, 10)]))
    expr = net.expr
    truth = sum(sympy.diff(expr, a, a, b, b) for a in net.inputs for b in net.inputs)
    point = dict(zip(net.inputs, (sympy.Float("0.3", 40), sympy.Float("-0.7", 40))))
    ours = sympy.N(symnet.biharmonic(net).subs(point), 30)
    ref = sympy.N(truth.subs(point), 30)
    assert abs(ours - ref) <= 1e-25 * max(1, abs(ref))
    program = symnet.biharmonic(net, form="program")
    assert abs(sympy.N(program.substitute_inputs(list(point.values())), 30) - ref) <= 1e-25 * max(1, abs(ref))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_kernels_and_export_speak_the_same_vocabulary(backend):
    import numpy as np

    from symnet.io.export import export

    x = input(2)
    h = dense(x, [[1.5, 0.3], [0.2, -1.0]], [0.1, 0.2], "tanh")
    net = network(x, dense(h * h + h, [[1.0], [-0.5]], [0.3]))
    point = [0.3, -0.7]
    truth = float(symnet.biharmonic(net).subs(dict(zip(net.inputs, point))))
    kernel = symnet.compile(net, ("value", "gradient", "biharmonic"), backend=backend, parallel=False)
    result = kernel(np.array([point]))
    assert result.jacobian.shape == (1, 1, 2) and abs(result.biharmonic[0, 0] - truth) <= 1e-12 * abs(truth)
    assert "biharmonic" in kernel.strategy_reason or kernel.strategy == "expression"
    namespace: dict = {}
    exec(export(net, "python", ("value", "grad", "biharmonic")), namespace)  # noqa: S102 - our own generated code
    value, gradient, biharmonic = namespace["network"](*point)
    assert abs(biharmonic - truth) <= 1e-12 * abs(truth)
    assert np.allclose(gradient, result.jacobian[0, 0], rtol=1e-13)
    layered = symnet.compile(net, ("value", "biharmonic"), backend=backend, strategy="layered")
    assert abs(layered(np.array([point])).biharmonic[0, 0] - truth) <= 1e-12 * abs(truth)
