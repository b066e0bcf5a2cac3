"""One ``LOSSES`` and one targets rule (:mod:`symnet.losses`): the same targets give the same loss and
gradients, or the same error, through ``param_grad``, ``backprop``, ``compile_loss`` and ``fit``."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import sympy

import symnet
from symnet.check import backprop
from symnet.losses import LOSSES, parse_targets

from conftest import random_network

X4 = np.array([[0.3, -0.2], [1.1, 0.4], [-0.7, 0.9], [0.2, 0.2]])


def _four_ways(net, loss, targets):
    """(loss, grads) from backprop, compile_loss and fit's first evaluation; param_grad's grads."""
    oracle = backprop(net, X4, loss=loss, targets=targets)
    kernel_loss, kernel_grads = symnet.compile_loss(net, loss)(X4, targets)
    fitted = symnet.fit(net, X4, targets, loss=loss, max_iter=1)
    exact = [(np.array(dW, dtype=float), np.array(db, dtype=float).ravel())
             for dW, db in symnet.param_grad(net, loss, (X4, targets))]
    return oracle, (kernel_loss, kernel_grads), fitted.history[0], exact


def _agree(net, loss, targets, expected_targets):
    oracle, (kernel_loss, kernel_grads), fit_loss, exact = _four_ways(net, loss, targets)
    reference = backprop(net, X4, loss=loss, targets=expected_targets)
    assert oracle.loss == pytest.approx(reference.loss, rel=1e-14)
    assert kernel_loss == pytest.approx(reference.loss, rel=1e-12)
    assert fit_loss == pytest.approx(reference.loss, rel=1e-12)
    for (dW, db), (kW, kb), (eW, eb) in zip(oracle.param_grads, kernel_grads, exact):
        np.testing.assert_allclose(kW, dW, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(eW, dW, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(kb, db, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(eb, db, rtol=1e-10, atol=1e-14)


def test_every_loss_taker_uses_the_one_list():
    modules = [importlib.import_module(f"symnet.{name}") for name in ("derivatives", "kernels._loss", "check.backprop")]
    assert all(module.LOSSES is LOSSES for module in modules)


def test_class_labels_mean_one_hot_rows_everywhere():
    net = random_network(np.random.default_rng(1), [2, 3, 3], ["tanh", "softmax"])
    labels = np.array([0, 2, 1, 2])
    _agree(net, "cross_entropy", labels, np.eye(3)[labels])
    logits = random_network(np.random.default_rng(2), [2, 3, 3], ["tanh", "linear"])
    _agree(logits, "softmax_cross_entropy", labels, np.eye(3)[labels])


def test_one_output_float_targets_mean_minus_t_log_y_everywhere():
    net = random_network(np.random.default_rng(4), [2, 3, 1], ["tanh", "sigmoid"])
    targets = np.array([0.0, 1.0, 1.0, 0.0])
    _agree(net, "cross_entropy", targets, targets.reshape(-1, 1))
    _agree(net, "mse", targets, targets.reshape(-1, 1))
    _agree(net, "mse", [0, 1, 1, 0], targets.reshape(-1, 1))  # integers are numbers for mse


@pytest.mark.parametrize("loss", ["cross_entropy", "softmax_cross_entropy"])
def test_one_output_integer_labels_are_refused_everywhere(loss):
    net = random_network(np.random.default_rng(4), [2, 3, 1], ["tanh", "sigmoid"])
    labels = [0, 1, 1, 0]  # compile_loss used to give 0.294 here where backprop and param_grad refused
    message = rf"{loss} with one output: integer labels \[0, 1, 1, 0\] are ambiguous.*two outputs"
    with pytest.raises(symnet.ShapeError, match=message):
        backprop(net, X4, loss=loss, targets=labels)
    with pytest.raises(symnet.ShapeError, match=message):
        symnet.compile_loss(net, loss)(X4, labels)
    with pytest.raises(symnet.ShapeError, match=message):
        symnet.param_grad(net, loss, (X4, labels))
    with pytest.raises(symnet.ShapeError, match=message):
        symnet.fit(net, X4, labels, loss=loss, max_iter=1)
    with pytest.raises(symnet.ShapeError, match=r"integer labels \[1\] are ambiguous"):  # one point: still labels
        backprop(net, X4[:1], loss=loss, targets=[1])


@pytest.mark.parametrize("targets, error, match", [
    ([0, 3, 1, 1], symnet.ShapeError, r"class labels must lie in 0..2, got 0..3"),
    (np.zeros(12), symnet.ShapeError, r"shape \(12,\) but \(4, 3\) is needed \(or integer class labels \(4,\)\)"),
    (np.full((4, 3), np.nan), symnet.InputError, r"holds? nan; every target must be a finite number"),
    ([["a", "b", "c"]] * 4, symnet.InputError, r"holds strings \(<U1\); targets must be real numbers"),
])
def test_bad_targets_give_the_same_error_everywhere(targets, error, match):
    net = random_network(np.random.default_rng(1), [2, 3, 3], ["tanh", "softmax"])
    with pytest.raises(error, match=match):
        backprop(net, X4, loss="cross_entropy", targets=targets)
    with pytest.raises(error, match=match):
        symnet.compile_loss(net, "cross_entropy")(X4, targets)
    with pytest.raises(error, match=match):
        symnet.param_grad(net, "cross_entropy", (X4, targets))
    with pytest.raises(error, match=match):
        symnet.fit(net, X4, targets, loss="cross_entropy", max_iter=1)


def test_unknown_losses_are_refused_everywhere():
    net = random_network(np.random.default_rng(1), [2, 1], ["linear"])
    for call in (lambda: backprop(net, X4, loss="hinge", targets=np.zeros(4)),
                 lambda: symnet.compile_loss(net, "hinge"),
                 lambda: symnet.param_grad(net, "hinge", (X4, np.zeros(4))),
                 lambda: symnet.fit(net, X4, np.zeros(4), loss="hinge")):
        with pytest.raises(symnet.InputError, match="unknown loss 'hinge'; choose one of mse, cross_entropy"):
            call()


def test_the_rule_for_one_point_and_exact_targets():
    assert parse_targets("cross_entropy", [0.2, 0.8], n_points=1, n_outputs=2).tolist() == [[0.2, 0.8]]
    assert parse_targets("cross_entropy", [1], n_points=1, n_outputs=2).tolist() == [[0.0, 1.0]]  # a label
    exact = parse_targets("mse", [[1, 2]], n_points=1, n_outputs=2, exact=True)
    assert [type(v).__name__ for v in exact[0]] == ["One", "Integer"]  # integers stay exact
    assert [type(v).__name__ for v in parse_targets("mse", [[1, 0.5]], 1, 2, exact=True)[0]] == ["Float", "Float"]
    with pytest.raises(symnet.InputError, match="y holds NaN; the cross_entropy loss needs a complete target"):
        parse_targets("cross_entropy", [[np.nan, 1.0]], 1, 2, missing=True, name="y")
    assert np.isnan(parse_targets("mse", [np.nan, 1.0], 2, 1, missing=True)[0, 0])


_NET1 = symnet.Network.from_weights([[[1.0]]], [[0.0]], ["sigmoid"])
_X2 = np.array([[0.2], [0.4]])


@pytest.mark.parametrize(("loss", "targets", "message"), [
    ("mse", np.array([[0.1 + 5j], [0.2]]), r"Y is complex \(complex128\); targets must be real"),
    ("mse", np.array([[3], [4]], dtype="datetime64[s]"), r"Y holds dates or durations \(datetime64\[s\]\)"),
    ("mse", np.array([[3], [4]], dtype="timedelta64[s]"), "Y holds dates or durations"),
    ("mse", np.array([["0.1"], ["0.2"]]), "Y holds strings .*convert them with float"),
    ("mse", np.array([[b"0.1"], [b"0.2"]]), "Y holds bytes"),
    ("mse", np.array([[object()], [0.2]], dtype=object), "Y holds object .*targets must be real numbers"),
    ("mse", np.array([["0.1"], [0.2]], dtype=object), "Y holds the string '0.1'"),
    ("mse", np.ma.masked_array([[1e6], [0.2]], mask=[[1], [0]]), "Y is a masked array.*give NaN for a missing"),
    ("cross_entropy", np.array([[1.5], [-0.2]]), r"Y holds 1.5; cross_entropy targets are probabilities in \[0, 1\]"),
    ("softmax_cross_entropy", np.array([[0.3], [0.9]]), "softmax_cross_entropy with one output is identically 0"),
])
def test_odd_targets_are_refused_everywhere(loss: str, targets: object, message: str) -> None:
    """Complex, dates, strings, objects, masks, probabilities outside [0, 1], a constant loss: never a number."""
    with pytest.raises(symnet.InputError, match=message):
        symnet.compile_loss(_NET1, loss)(_X2, targets)
    with pytest.raises(symnet.InputError, match=message):
        symnet.param_grad(_NET1, loss, (_X2, targets))
    with pytest.raises(symnet.InputError, match=message.replace("Y ", "targets ", 1)):
        backprop(_NET1, _X2, loss=loss, targets=targets)
    with pytest.raises(symnet.InputError, match=message.replace("Y ", "y ", 1)):
        symnet.fit(_NET1, _X2, targets, loss=loss)


def test_cross_entropy_on_one_softmax_output_is_refused() -> None:
    net = symnet.Network.from_weights([[[1.0]]], [[0.0]], ["softmax"])
    with pytest.raises(symnet.InputError, match="cross_entropy on a softmax layer with one output is identically 0"):
        symnet.compile_loss(net, "cross_entropy")(_X2, np.array([[0.3], [0.2]]))
    with pytest.raises(symnet.InputError, match="cross_entropy on a softmax layer with one output"):
        symnet.param_grad(net, "cross_entropy", (_X2, [[0.3], [0.2]]))
    # on a sigmoid output -t*log(y) is not constant: still allowed, and exact probabilities too
    assert symnet.compile_loss(_NET1, "cross_entropy")(_X2, np.array([[0.3], [1.0]]))[0] > 0
    with pytest.raises(symnet.InputError, match=r"Y holds 1.5; cross_entropy targets are probabilities"):
        symnet.param_grad(_NET1, "cross_entropy", (_X2, [[sympy.Rational(3, 2)], [0]]))
    with pytest.raises(symnet.InputError, match="Y holds I; targets must be real"):
        symnet.param_grad(_NET1, "mse", (_X2, [[sympy.I], [0]]))
