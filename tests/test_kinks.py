"""Non-smooth activations: exact zeros between kinks, the Heaviside(0) = 1/2 convention, and
``symnet.kinks`` checked against brute-force scans."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import symnet
from symnet.check.backprop import backprop
from symnet.errors import InputError, ShapeError
from symnet.kinks import Crossing, KinkHit, KinkReport, kinks

HARD_SIGMOID = lambda t: sympy.Min(1, sympy.Max(0, t))  # noqa: E731 - a traced activation with kinks at 0 and 1


def random_net(seed: int, sizes: list[int], activations: list, scale: float = 1.0) -> symnet.Network:
    rng = np.random.default_rng(seed)
    return symnet.Network.from_weights([rng.normal(scale=scale, size=(a, b)) for a, b in zip(sizes, sizes[1:])],
                                       [rng.normal(scale=0.5, size=b) for b in sizes[1:]], activations)


def scan(net: symnet.Network, lo: float, hi: float, n: int = 200_001) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Brute force: the grid, and every grid cell (index, layer, neuron) where some z - kink changes sign."""
    grid = np.linspace(lo, hi, n)
    cells = []
    for number, (layer, z) in enumerate(zip(net.layers, backprop(net, grid[:, None]).preactivations), start=1):
        for kink in layer.activation.kinks:
            sign = np.sign(z - kink)
            rows, neurons = np.nonzero(sign[:-1] * sign[1:] < 0)
            cells += [(int(r), number, int(q)) for r, q in zip(rows, neurons)]
            zero_rows, zero_neurons = np.nonzero(sign[1:-1] == 0)  # exactly on the kink at a grid point
            cells += [(int(r), number, int(q)) for r, q in zip(zero_rows, zero_neurons)]
    return grid, cells


def assert_matches_scan(net: symnet.Network, report: KinkReport, lo: float, hi: float) -> None:
    """Every sign change on the grid is one reported crossing of that neuron in that cell, and back."""
    grid, cells = scan(net, lo, hi)
    inside = [c for c in report.crossings if lo < c.x < hi]
    for row, layer, neuron in cells:
        assert any(c.layer == layer and c.neuron == neuron and grid[row] - 1e-12 <= c.x <= grid[row + 1] + 1e-12
                   for c in inside), (row, layer, neuron)
    assert len(inside) == len(cells)


def assert_slopes_match_scan(net: symnet.Network, report: KinkReport, lo: float, hi: float,
                             n: int = 200_001) -> None:
    """A piecewise-linear net: its slope on a grid changes only at reported locations, by the reported jumps."""
    grid = np.linspace(lo, hi, n)
    mid = (grid[:-1] + grid[1:]) / 2
    slopes = backprop(net, mid[:, None]).jacobian[:, 0, 0]
    scale = max(1.0, float(np.abs(slopes).max()))
    steps = np.diff(slopes)
    for row in np.nonzero(np.abs(steps) > 1e-9 * scale)[0]:
        assert np.any((report.locations >= mid[row]) & (report.locations <= mid[row + 1])), mid[row]
    spacing = grid[1] - grid[0]
    for location, jump in zip(report.locations, report.jumps[:, 0]):
        if not lo + spacing < location < hi - spacing:
            continue
        row = int(np.searchsorted(mid, location)) - 1  # location lies in [mid[row], mid[row + 1]]
        if np.sum(np.abs(report.locations - location) < 2 * spacing) == 1:  # no other kink in these cells
            assert abs(steps[row] - jump) <= 1e-9 * scale, (location, steps[row], jump)


# --- the symbolic and numeric conventions ------------------------------------------------------


def test_relu_hessian_is_exactly_zero_away_from_kinks():
    net = random_net(3, [1, 6, 5, 1], ["relu", "relu", "linear"])
    second = symnet.diff(net, "x0", "x0")
    assert second.has(sympy.DiracDelta)  # the curvature lives in the Dirac terms
    points = np.array([-2.3, -0.7, 0.1, 0.9, 1.7, 3.1])
    assert not kinks(net, points, tol=1e-3).near.any()
    for value in points:
        assert second.subs(net.inputs[0], sympy.Float(value)) == 0  # exactly, not approximately
    hessian = symnet.compile(net, ("value", "hessian"), backend="numpy")(points).hessian  # numba: the test below
    assert np.all(hessian == 0.0)
    two_inputs = random_net(4, [2, 8, 8, 1], ["relu", "leaky_relu(0.1)", "linear"])
    X = np.random.default_rng(0).normal(size=(50, 2))
    assert np.all(symnet.compile(two_inputs, "hessian", backend="numpy")(X).hessian == 0.0)


def test_heaviside_at_zero_is_one_half_everywhere():
    # y = relu(x - 1) + 2 relu(1 - x): at x = 1 both neurons sit on their kink
    net = symnet.Network.from_weights([[[1, -1]], [[1], [2]]], [[-1, 1], [0]], ["relu", "linear"])  # exact
    first = symnet.diff(net, "x0")
    assert first.has(sympy.Heaviside)
    at_kink = first.subs(net.inputs[0], 1)
    assert at_kink == sympy.Rational(-1, 2)  # Heaviside(0) = 1/2: 1/2 * 1 + 2 * 1/2 * (-1), the mean slope
    for backend in ("numpy", "numba"):
        kernel = symnet.compile(net, ("jacobian", "hessian"), backend=backend)
        assert kernel(np.array([1.0])).jacobian[0, 0] == -0.5
        assert np.all(kernel(np.array([1.0, 0.5, 2.0])).hessian == 0.0)  # DiracDelta printed as 0
    assert backprop(net, [1.0]).jacobian[0, 0] == -0.5  # verify's numeric oracle: the same convention
    report = symnet.verify(net, np.array([[1.0], [0.3], [2.0]]))
    assert report.ok and report.near_kink.tolist() == [True, False, False]
    assert kinks(net, [[1.0], [0.3], [2.0]]).near.tolist() == [True, False, False]


def test_dirac_delta_weights_are_the_slope_jumps():
    net = random_net(5, [1, 7, 1], ["relu", "linear"])
    second = symnet.diff(net, "x0", "x0")
    x = net.inputs[0]
    weights = {}
    for term in sympy.Add.make_args(sympy.expand(second)):
        (delta,) = term.atoms(sympy.DiracDelta)
        argument = delta.args[0]
        slope = float(argument.diff(x))
        where = float(sympy.solve(argument, x)[0])
        weights[round(where, 9)] = float(term / delta) / abs(slope)  # delta(a x + b) = delta(x - x*) / |a|
    report = kinks(net)
    assert sorted(weights) == pytest.approx(report.locations.tolist(), abs=1e-9)
    assert [weights[round(w, 9)] for w in report.locations] == pytest.approx(report.jumps[:, 0].tolist(), rel=1e-9)


# --- locations of one-input nets ----------------------------------------------------------------


@pytest.mark.parametrize("seed, sizes, activations", [
    (0, [1, 8, 8, 8, 1], ["relu", "relu", "relu", "linear"]),
    (1, [1, 6, 6, 2], ["leaky_relu(0.1)", "relu", "linear"]),
    (3, [1, 5, 5, 1], [HARD_SIGMOID, "relu", "relu"]),
    (4, [1, 10, 1], ["relu", "linear"]),
])
def test_piecewise_linear_locations_match_a_brute_force_scan(seed, sizes, activations):
    net = random_net(seed, sizes, activations)
    report = kinks(net)
    assert report.method.startswith("exact")
    assert np.all(np.diff(report.locations) > 0)
    assert len(report.sources) == len(report.locations) == len(report.jumps)
    assert report.jumps.shape == (len(report.locations), net.n_outputs)
    span = max(1.0, float(np.abs(report.locations).max())) + 1.0
    assert_matches_scan(net, report, -span, span)
    assert_slopes_match_scan(net, report, -span, span)
    if len(sizes) > 3:  # deeper layers' kinks are found too
        assert max(c.layer for c in report.crossings) >= 2


def test_exact_locations_are_accurate_to_rounding():
    net = random_net(7, [1, 8, 8, 1], ["relu", "relu", "linear"])
    report = kinks(net)
    zs = backprop(net, np.array([c.x for c in report.crossings])[:, None]).preactivations
    for i, c in enumerate(report.crossings):
        assert abs(zs[c.layer - 1][i, c.neuron] - c.kink) < 1e-12


def test_elu_and_smooth_layers_are_bracketed_on_a_domain():
    net = random_net(8, [1, 6, 6, 1], ["elu", "elu(0.5)", "linear"])
    with pytest.raises(InputError, match=r"layer 2 .*pass domain=\(lo, hi\)"):
        kinks(net)
    report = kinks(net, domain=(-4.0, 4.0))
    assert "brentq" in report.method and "can be missed" in report.method
    assert_matches_scan(net, report, -4.0, 4.0)
    first_layer_only = np.array([all(layer == 1 for layer, _ in src) for src in report.sources])
    assert np.all(np.abs(report.jumps[first_layer_only, 0]) < 1e-8)  # elu(alpha=1) is C1: no jump in y'
    assert np.any(np.abs(report.jumps[~first_layer_only, 0]) > 1e-3)  # elu(0.5)'s slope goes from 0.5 to 1
    smooth_first = random_net(9, [1, 8, 8, 1], ["tanh", "relu", "linear"])
    report = kinks(smooth_first, domain=(-3.0, 3.0))
    assert report.crossings and all(c.layer == 2 for c in report.crossings)
    assert_matches_scan(smooth_first, report, -3.0, 3.0)


def test_first_kinked_layer_needs_no_domain_even_after_smooth_layers_only_if_affine():
    net = random_net(10, [1, 5, 1], ["elu", "linear"])
    report = kinks(net)  # layer 1 is affine in x: solved exactly on the whole line
    assert report.method.startswith("exact")
    w, b = net.layers[0].weight_array()[0], net.layers[0].bias_array()
    assert report.locations == pytest.approx(np.sort(-b / w), rel=1e-14)


def test_domain_restricts_locations():
    net = random_net(11, [1, 12, 1], ["relu", "linear"])
    everything = kinks(net).locations
    some = kinks(net, domain=(-0.5, 0.5)).locations
    assert some.tolist() == [v for v in everything.tolist() if -0.5 < v < 0.5]


def test_smooth_nets_have_no_kinks():
    report = kinks(random_net(12, [1, 4, 1], ["tanh", "linear"]), X=[[0.0], [1.0]])
    assert report.locations.size == 0 and report.jumps.shape == (0, 1)
    assert report.method.startswith("every activation is smooth")
    assert not report.near.any() and report.hits == ()


# --- points near kinks ----------------------------------------------------------------------


def test_points_on_kinks_name_their_layer_and_neuron():
    net = random_net(13, [1, 4, 4, 1], ["relu", "relu", "linear"])
    report = kinks(net)
    on = report.crossings[:3]
    X = np.array([c.x for c in on] + [c.x + 0.5 * min(np.diff(report.locations)) for c in on[:1]])
    near = kinks(net, X, tol=1e-9)
    assert near.near[:3].all()
    for i, c in enumerate(on):
        assert any(h.point == i and h.layer == c.layer and h.neuron == c.neuron for h in near.hits)
    assert all(isinstance(h, KinkHit) and abs(h.z - h.kink) <= 1e-9 for h in near.hits)
    assert isinstance(on[0], Crossing)
    assert "points within tol=1e-09 of a kink" in repr(near) and "jump of dy/dx" in repr(near)


def test_several_inputs_report_points_but_not_locations():
    net = symnet.Network.from_weights([[[1.0, 0.0], [-1.0, 1.0]], [[1.0], [1.0]]], [[0.0, -2.0], [0.0]],
                                      ["relu", "linear"])
    report = kinks(net, X=[[1.0, 1.0], [0.0, 2.0], [3.0, -1.0]])
    assert report.near.tolist() == [True, True, False]
    assert [(h.point, h.layer, h.neuron) for h in report.hits] == [(0, 1, 0), (1, 1, 1)]
    assert report.crossings is None
    with pytest.raises(InputError, match="one-input networks only; this one has 2 inputs"):
        report.locations
    with pytest.raises(InputError, match="one-input"):
        report.jumps
    assert "kinks are surfaces" in repr(report)


def test_bad_arguments_are_named():
    net = random_net(14, [1, 3, 1], ["relu", "linear"])
    with pytest.raises(InputError, match="tol must be a finite number >= 0"):
        kinks(net, tol=-1.0)
    with pytest.raises(InputError, match="domain must satisfy lo < hi"):
        kinks(net, domain=(1.0, 0.0))
    with pytest.raises(InputError, match="resolution must be an integer >= 3"):
        kinks(net, resolution=2)
    with pytest.raises(InputError, match="kinks needs numeric weights.*net.subs"):
        kinks(symnet.Network.symbolic([1, 2, 1], ["relu", "linear"]))
    with pytest.raises(ShapeError, match="takes 1 inputs"):
        kinks(net, X=np.zeros((3, 2)))


def test_the_brute_force_check_catches_a_missed_or_moved_kink():
    import dataclasses

    net = random_net(0, [1, 8, 8, 1], ["relu", "relu", "linear"])
    report = kinks(net)
    span = float(np.abs(report.locations).max()) + 1.0
    missing = dataclasses.replace(report, crossings=report.crossings[:-1])
    with pytest.raises(AssertionError):
        assert_matches_scan(net, missing, -span, span)
    deeper = next(i for i, c in enumerate(report.crossings) if c.layer == 2)
    moved = list(report.crossings)
    moved[deeper] = moved[deeper]._replace(x=moved[deeper].x + 1e-3)
    with pytest.raises(AssertionError):
        assert_matches_scan(net, dataclasses.replace(report, crossings=tuple(moved)), -span, span)
    with pytest.raises(AssertionError):
        assert_slopes_match_scan(net, dataclasses.replace(report, _locations=report.locations[1:],
                                                          _jumps=report.jumps[1:]), -span, span)


# --- graphs ------------------------------------------------------------------------------------


def _slope_breaks(net, lo, hi, n=400_001):
    """Independent of kinks(): where the slope of the lambdified closed form changes on a grid of
    [lo, hi] (finite differences of float64 values), as (left, right) brackets."""
    f = sympy.lambdify(net.inputs, net.outputs[0], "numpy")
    x = np.linspace(lo, hi, n)
    y = np.asarray(f(x), dtype=float) * np.ones_like(x)
    slope = np.diff(y) / np.diff(x)
    change = np.abs(np.diff(slope))  # a kink: one isolated jump; curvature: a small change at every step
    changed = change > max(1e-6 * max(1.0, float(np.max(np.abs(slope)))), 100 * float(np.median(change)))
    steps = np.nonzero(changed)[0]
    return [(x[i], x[i + 2]) for i in steps]


def _residual_relu_graph():
    from symnet.graph import dense, input, network

    rng = np.random.default_rng(21)
    x = input(1)
    h = dense(x, rng.normal(size=(1, 4)), rng.normal(size=4), "relu")
    h = h + dense(h, rng.normal(size=(4, 4)), rng.normal(size=4), "relu")   # a residual block
    return network(x, dense(h, rng.normal(size=(4, 1)), rng.normal(size=1)))


def test_a_piecewise_linear_graph_has_its_kinks_located_exactly():
    net = _residual_relu_graph()
    assert not net.is_chain
    report = kinks(net)
    assert report.method.startswith("exact")
    lo, hi = report.locations.min() - 1, report.locations.max() + 1
    brackets = _slope_breaks(net, lo, hi)
    # every slope change of the function lies at a location, and every location whose jump is not 0 is one
    for a, b in brackets:
        assert np.any((report.locations >= a - 1e-9) & (report.locations <= b + 1e-9)), (a, b)
    for location, jump in zip(report.locations, report.jumps[:, 0]):
        if abs(jump) > 1e-9:
            assert any(a - 1e-9 <= location <= b + 1e-9 for a, b in brackets), location
    # the jumps are the slope differences of the closed form either side (affine between locations)
    f = sympy.lambdify(net.inputs, net.outputs[0], "numpy")
    for location, jump in zip(report.locations, report.jumps[:, 0]):
        h = 1e-7 * max(1.0, abs(location))
        right = (f(location + 2 * h) - f(location + h)) / h
        left = (f(location - h) - f(location - 2 * h)) / h
        assert abs((right - left) - jump) <= 1e-6 * max(1.0, abs(jump))
    # crossings name the activation nodes of the graph
    names = {node.name for node in net.graph.nodes if node.op == "activation"}
    assert {c.node for c in report.crossings} <= names and "crossed by node[unit]" in repr(report)


def test_points_on_a_graph_kink_are_hits_naming_the_node():
    net = _residual_relu_graph()
    report = kinks(net)
    on, off = report.locations[0], report.locations[0] + 0.5 * np.diff(report.locations[:2])[0]
    hits = kinks(net, np.array([[on], [off]]), tol=1e-9)
    assert hits.near.tolist() == [True, False]
    first = report.crossings[0]
    assert any(h.point == 0 and h.node == first.node and h.neuron == first.neuron for h in hits.hits)
    assert "node" in repr(hits)


def test_a_product_of_relu_branches_is_bracketed_on_a_domain():
    from symnet.graph import dense, input, network

    rng = np.random.default_rng(22)
    x = input(1)
    u = dense(x, rng.normal(size=(1, 3)), rng.normal(size=3), "relu")
    v = dense(x, rng.normal(size=(1, 3)), rng.normal(size=3), "relu")
    gated = dense(u * v, rng.normal(size=(3, 3)), rng.normal(size=3), "relu")   # after a product: not affine
    net = network(x, dense(gated, rng.normal(size=(3, 1)), rng.normal(size=1)))
    with pytest.raises(InputError, match=r"node '.*' \(relu\) follows node 'mul\d*', a product of two branches .*domain=\(lo, hi\)"):
        kinks(net)
    report = kinks(net, domain=(-4.0, 4.0))
    assert report.method.startswith("bracketing")
    for a, b in _slope_breaks(net, -4.0, 4.0):
        assert np.any((report.locations >= a - 1e-9) & (report.locations <= b + 1e-9)), (a, b)


def test_a_two_input_graph_reports_hits_but_no_locations():
    from symnet.graph import dense, input, network

    x = input(2)
    h = dense(x, [[1.0, 0.0], [0.0, 1.0]], [0.0, -1.0], "relu")
    net = network(x, dense(h + x, [[1.0], [1.0]], [0.0]))
    report = kinks(net, np.array([[0.0, 0.3], [0.2, 1.0], [0.5, 0.5]]))
    assert report.near.tolist() == [True, True, False]
    assert [(h.point, h.node, h.neuron) for h in report.hits] == [(0, net.graph.nodes[2].name, 0),
                                                                  (1, net.graph.nodes[2].name, 1)]
    with pytest.raises(InputError, match="one-input networks only"):
        report.locations
