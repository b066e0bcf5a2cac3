"""Runs of pointwise nodes fused into one loop (symnet/kernels/_pointwise.py): which nodes form a
run, which of its values are stored, the slots a run takes, and the fused loops against
node-by-node evaluation and the expression strategy on every rule a run holds."""

from __future__ import annotations

import numpy as np
import pytest

import symnet
from symnet.graph import dense, input, mul, network, rescale, scale, shift, zoo
from symnet.kernels._graph_layered import Slots
from symnet.kernels._pointwise import MAX_RUN, pointwise_runs


def _compare(got, want, rtol=1e-12):
    for name, reference in want.items():
        scale_ = max(1.0, float(np.max(np.abs(reference))))
        np.testing.assert_allclose(got[name], reference, rtol=rtol, atol=rtol * scale_, err_msg=str(name))


def _every_rule():
    """A run with every op, broadcast width-1 factors and terms, vector and scalar parameters,
    a value that does not vary along x1 (it reads x[0:1] only), a member read in the middle of
    the run by a later node, and the graph's output inside a run."""
    rng = np.random.default_rng(7)
    x = input(2)
    h = dense(x, rng.normal(size=(2, 4)), rng.normal(size=4), "tanh")
    g = dense(x[0:1], rng.normal(size=(1, 4)), rng.normal(size=4), "sigmoid")  # no derivatives along x1
    one = dense(x, rng.normal(size=(2, 1)), rng.normal(size=1), "tanh")  # width 1
    a = mul(h, g)
    b = scale(a, rng.normal(size=4)) - g  # a value-only input subtracted
    c = shift(mul(b, one), rng.normal(size=4)) + one  # width-1 factor and term
    d = rescale(g - c, rng.normal(size=4), 0.5)  # a value-only value minus a varying one
    e = scale(d, 1.5)
    mid = dense(b, rng.normal(size=(4, 4)), None, "tanh")  # reads b, a member of the run
    out = dense(mul(e, mid) + c, rng.normal(size=(4, 1)))
    tail = mul(out, out) + out  # the graph's output is the last member of a run of width 1
    return network(x, tail)


def test_a_gate_is_one_run_and_stores_only_what_is_read_after_it():
    net = zoo.modified_mlp(d_in=2, width=3, depth=2)
    runs = Slots(net.graph, fuse=True).runs
    assert [[m.op for m in run.members] for run in runs] == [["mul", "rescale", "mul", "add"]] * 2
    assert [run.inputs for run in runs] == [("a3", "a1", "a2"), ("a4", "a1", "a2")]
    assert [run.outputs for run in runs] == [("add1",), ("add2",)]
    kernel = symnet.compile(net, ("value", "jacobian", "hessian"), strategy="layered", backend="numba", cache=False)
    fused = [s for s in kernel._plan.sources if "def pointwise" in s]
    assert len(fused) == 2 and all("O0[5, p, j]" in s and "O1" not in s for s in fused)
    assert "rescale1" not in kernel._plan.layout.of  # never stored
    assert kernel._plan.layout.count == Slots(net.graph).count - 1  # mul1, rescale1 and mul2 take no slot
    # the forward-adjoint sweep reads the factors of every product: the run stores them too
    adjoint = symnet.compile(net, ("value", "jacobian", "hessian"), strategy="layered", backend="numba",
                             schedule="forward-adjoint", cache=False)
    assert [run.outputs for run in adjoint._plan.layout.runs] == [("rescale1", "add1"), ("rescale2", "add2")]


def test_runs_split_at_other_ops_and_widths():
    x = input(2)
    h = dense(x, np.ones((2, 3)), None, "tanh")
    wide = h + h * h  # width 3
    narrow = dense(wide, np.ones((3, 1)))
    net = network(x, (narrow + narrow) * narrow)  # width 1: a run of its own after the dense node
    runs = pointwise_runs(net.graph.nodes[1:], net.graph.output)
    assert [[m.op for m in run.members] for run in runs] == [["mul", "add"], ["add", "mul"]]
    assert [run.members[0].width for run in runs] == [3, 1]
    assert runs[1].outputs == (net.graph.output,)


@pytest.mark.parametrize("request_", [("value", "jacobian", "hessian", "laplacian", (0, 0, 1)),
                                      ("value", (1,), (1, 1), (1, 1, 1)), ("value", "laplacian")])
def test_fused_runs_match_node_by_node_and_the_expression_strategy(request_):
    net = _every_rule()
    kernel = symnet.compile(net, request_, strategy="layered", backend="numba", cache=False)
    assert len(kernel._plan.layout.runs) >= 3
    X = np.random.default_rng(1).uniform(-1.5, 1.5, (37, 2))
    got = kernel(X).as_dict()
    _compare(got, symnet.compile(net, request_, strategy="layered", backend="numpy")(X).as_dict())
    _compare(got, symnet.compile(net, request_, strategy="expression", backend="numpy")(X).as_dict(), rtol=1e-11)
    if "hessian" in request_:
        words = ("value", "jacobian", "hessian")
        adjoint = symnet.compile(net, words, strategy="layered", backend="numba", schedule="forward-adjoint",
                                 cache=False)
        assert adjoint._plan.layout.runs
        _compare(adjoint(X).as_dict(), symnet.compile(net, words, strategy="expression", backend="numpy")(X).as_dict(),
                 rtol=1e-11)


def test_a_run_keeps_its_inputs_to_its_end_and_then_frees_them():
    rng = np.random.default_rng(0)
    x = input(2)
    hs = [dense(x, rng.normal(size=(2, 3)), None, "tanh") for _ in range(5)]
    total = hs[0]
    for h in hs[1:]:
        total = total + h  # four adds in a row: one run reading five values
    net = network(x, dense(dense(total, rng.normal(size=(3, 3)), None, "tanh"), rng.normal(size=(3, 1))))
    fused, plain = Slots(net.graph, fuse=True), Slots(net.graph)
    (run,) = fused.runs
    activations = [node.name for node in net.graph.nodes if node.op == "activation"][:5]
    assert run.inputs == tuple(activations) and run.outputs == (run.members[-1].name,)
    # node by node each add writes over a dying input; the run reads all five before writing its
    # output (the output sharing an input's memory would stop LLVM vectorising the loop): one slot more
    assert fused.count == plain.count + 1
    # the run's output takes a slot none of its inputs holds; after the run their slots are free again
    held = {fused.of[name] for name in activations}
    assert fused.of[run.outputs[0]] not in held
    after = [node.name for node in fused.live if node.op == "dense"][-2]
    assert fused.of[after] in held


def test_a_long_string_of_pointwise_nodes_is_cut_into_bounded_runs():
    x = input(2)
    h = dense(x, np.full((2, 2), 0.1), None, "tanh")
    total = h
    for k in range(2 * MAX_RUN + 3):
        total = total + h if k % 2 else mul(total, h)
    net = network(x, dense(total, np.ones((2, 1))))
    runs = Slots(net.graph, fuse=True).runs
    assert [len(run.members) for run in runs] == [MAX_RUN, MAX_RUN, 3]
    assert runs[0].outputs == (runs[0].members[-1].name,) and runs[1].inputs[0] == runs[0].outputs[0]
    X = np.random.default_rng(0).uniform(-1, 1, (9, 2))
    words = ("value", "jacobian", "hessian")
    got = symnet.compile(net, words, strategy="layered", backend="numba", cache=False)(X).as_dict()
    _compare(got, symnet.compile(net, words, strategy="layered", backend="numpy")(X).as_dict())
