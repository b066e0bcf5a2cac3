"""symnet.weights: the float-array path gives the numbers the entry-by-entry path gives, and
remembers its float64 array for the numeric consumers."""

import pickle

import numpy as np
import pytest
import sympy
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import symnet
from symnet import Network, weights

EDGES = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 2.225073858507201e-308, 1.7976931348623157e308,
         -1.7976931348623157e308, 1.0, -1.0, 0.5, 0.1, 1 / 3, 2.0 ** 52 - 1, 2.0 ** 53 - 1, 1 - 2 ** -53,
         2.0 ** -1022, 123456789.0]


def same_numbers(fast: sympy.MatrixBase, slow: sympy.MatrixBase) -> bool:
    """Entry by entry the same SymPy number: type, stored tuple and precision, value, printed form, hash."""
    return fast.shape == slow.shape and all(
        type(a) is type(b) and a == b and sympy.srepr(a) == sympy.srepr(b) and hash(a) == hash(b)
        and (a._mpf_, a._prec, a.is_zero, a.is_positive) == (b._mpf_, b._prec, b.is_zero, b.is_positive)
        and type(a._mpf_[1]) is type(b._mpf_[1]) for a, b in zip(fast, slow))


def test_float_arrays_give_the_numbers_sympy_float_gives():
    rng = np.random.default_rng(3)
    values = np.concatenate([EDGES, rng.normal(size=3000) * 10.0 ** rng.integers(-320, 308, 3000),
                             rng.integers(-2 ** 53, 2 ** 53, 300).astype(float),
                             np.nextafter(2.0 ** rng.integers(-1070, 1020, 300), 0)])
    fast = weights.matrix(values.reshape(1, -1), (1, values.size), "b")
    slow = weights.matrix(values.reshape(1, -1).tolist(), (1, values.size), "b")  # entry by entry
    assert weights.is_float_matrix(fast) and not weights.is_float_matrix(slow)
    assert same_numbers(fast, slow)
    assert all(sympy.Float(v) == e for v, e in zip(values.tolist(), fast))
    assert fast == slow and hash(fast) == hash(slow)


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=5),
                  elements=st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True)))
def test_any_finite_float_array_property(array):
    fast = weights.matrix(array, array.shape, "W")
    assert same_numbers(fast, weights.matrix(array.tolist(), array.shape, "W"))
    assert np.array_equal(weights.float_array(fast, "W"), array)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.longdouble])
def test_other_float_dtypes_are_read_as_float_reads_them(dtype):
    array = (np.arange(6).reshape(2, 3) / 7 - 0.3).astype(dtype)
    fast = weights.matrix(array, (2, 3), "W")
    assert same_numbers(fast, weights.matrix([[float(v) for v in row] for row in array], (2, 3), "W"))
    assert weights.float_array(fast, "W").dtype == np.float64


def test_the_array_is_a_copy_and_the_remembered_one_goes_with_its_matrix():
    W = weights.matrix(np.array([[0.25, -4.0]]), (1, 2), "W")
    array = weights.float_array(W, "W")
    array[0, 0] = 1.0  # the caller's own copy
    array = weights.float_array(W, "W")
    assert array[0, 0] == 0.25 and W[0, 0] == sympy.Float(0.25)
    copy = pickle.loads(pickle.dumps(W))  # another object: read from its entries, the same numbers
    assert not weights.is_float_matrix(copy) and np.array_equal(weights.float_array(copy, "W"), array)
    assert weights.is_numeric(copy) and weights.symbols(copy) == ()


def test_a_changed_input_array_does_not_change_the_matrix():
    values = np.array([[1.5, 2.5]])
    W = weights.matrix(values, (1, 2), "W")
    values[0, 0] = 99.0
    assert W[0, 0] == sympy.Float(1.5) and weights.float_array(W, "W")[0, 0] == 1.5


@pytest.mark.parametrize("bad, where", [(np.inf, r"W\[0, 1\] is inf"), (np.nan, r"W\[0, 1\] is nan")])
def test_non_finite_floats_are_refused_naming_the_entry(bad, where):
    with pytest.raises(symnet.WeightError, match=where + ".*finite"):
        weights.matrix(np.array([[1.0, bad]]), (1, 2), "layer 1: W")
    with pytest.raises(symnet.WeightError, match=where):
        Network.from_weights([np.array([[1.0, bad]])], None, "tanh")


def test_shapes_are_checked_as_on_the_entry_path():
    with pytest.raises(symnet.ShapeError, match=r"has shape \(3, 2\) but \(2, 3\) is needed"):
        weights.matrix(np.ones((3, 2)), (2, 3), "W")
    row = weights.matrix(np.array([1.0, 2.0]), (1, 2), "b")  # a row may come flat, as on the entry path
    assert row.shape == (1, 2) and weights.is_float_matrix(row)


def test_symbolic_matrices_are_named_and_never_converted():
    a, b = sympy.symbols("a b", real=True)
    M = sympy.ImmutableMatrix([[b * a, 2.0, a]])
    assert weights.symbols(M) == (a, b) and not weights.is_numeric(M)
    with pytest.raises(symnet.WeightError, match=r"node 'z1': W is symbolic \(a, b"):
        weights.float_array(M, "node 'z1': W")


def test_networks_from_float_arrays_equal_those_from_lists_and_compile_the_same():
    rng = np.random.default_rng(0)
    Ws = [rng.normal(size=(2, 5)), rng.normal(size=(5, 1))]
    bs = [rng.normal(size=5), rng.normal(size=1)]
    fast = Network.from_weights(Ws, bs, ["tanh", "linear"])
    slow = Network.from_weights([W.tolist() for W in Ws], [b.tolist() for b in bs], ["tanh", "linear"])
    torch = Network.from_weights([W.T for W in Ws], bs, ["tanh", "linear"], layout="torch")
    assert fast == slow == torch and fast.expr == slow.expr and fast.is_numeric and fast.params == ()
    assert all(weights.is_float_matrix(layer.weight) for layer in (*fast.layers, *torch.layers))
    X = rng.uniform(-1, 1, (7, 2))
    assert np.array_equal(symnet.compile(fast, ("value", "hessian"))(X).hessian,
                          symnet.compile(slow, ("value", "hessian"))(X).hessian)
    graph = symnet.graph
    x = graph.input(2)
    net = graph.network(x, graph.dense(graph.dense(x, Ws[0], bs[0], "tanh"), Ws[1], bs[1]) + x[0])
    assert all(weights.is_float_matrix(m) for node in net.graph.nodes for m in node.params.values())
    twin = graph.network(x, graph.dense(graph.dense(x, Ws[0].tolist(), bs[0].tolist(), "tanh"), Ws[1].tolist(),
                                        bs[1].tolist()) + x[0])
    assert np.array_equal(symnet.compile(net, ("value", "laplacian"))(X).laplacian,
                          symnet.compile(twin, ("value", "laplacian"))(X).laplacian)
