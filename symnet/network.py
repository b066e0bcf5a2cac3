"""`Network`: an immutable stack of dense layers, kept as data.

Each layer computes ``y = act(x @ W + b)`` with ``W`` of shape ``(fan_in, fan_out)`` and ``b``
of shape ``(fan_out,)`` -- the Keras convention.  PyTorch stores ``nn.Linear.weight`` as
``(fan_out, fan_in)``; pass ``layout="torch"`` wherever weights come in that form.

Weights are SymPy numbers (from floats, exactly as given) or SymPy expressions, so a network
may be numeric, symbolic, or mixed layer by layer.  Symbolic parameters are named
``w{layer}_{i}_{j}`` (layer counted from 1, ``i`` the input unit, ``j`` the output unit) and
``b{layer}_{j}``; all symbols are declared real.

>>> net = Network.from_weights([[[2.0]], [[3.0]]], [[1.0], [0.5]], ["square", "linear"])
>>> net
Network(1 -> 1 -> 1, activations=(square, linear), numeric)
>>> print(net)
3.0*(2.0*x0 + 1.0)**2 + 0.5
>>> Network.symbolic([1, 1, 1], ["square", "linear"]).params
(w1_0_0, b1_0, w2_0_0, b2_0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import sympy

from . import activations as _activations
from .activations import Activation
from .errors import ActivationError, InputError, NotAChainError, ShapeError, WeightError
from .weights import (brief as _brief, check_weight as _check_weight, entry as _entry, float_array as _float_array,
                      is_float_matrix as _is_float_matrix, is_numeric as _is_numeric, matrix as _matrix, refuse_masked as _refuse_masked,
                      shape_of as _shape_of, symbols as _symbols)

__all__ = ["Dense", "Network"]

_LAYOUTS = ("keras", "torch")


@dataclass(frozen=True)
class Dense:
    """One dense layer ``act(x @ weight + bias)``.

    Attributes:
        weight: ``ImmutableMatrix`` of shape ``(fan_in, fan_out)``.
        bias: ``ImmutableMatrix`` of shape ``(1, fan_out)``.
        activation: the :class:`~symnet.activations.Activation` applied after the affine map.
    """

    weight: sympy.ImmutableMatrix
    bias: sympy.ImmutableMatrix
    activation: Activation

    @property
    def fan_in(self) -> int:
        return int(self.weight.shape[0])

    @property
    def fan_out(self) -> int:
        return int(self.weight.shape[1])

    @property
    def is_numeric(self) -> bool:
        """Whether every weight and bias is a number (no free symbols)."""
        return _is_numeric(self.weight) and _is_numeric(self.bias)

    def weight_array(self, dtype: Any = np.float64) -> np.ndarray:
        """The weights as a numpy array ``(fan_in, fan_out)``; the layer must be numeric."""
        return _to_array(self.weight, dtype, self, "W")

    def bias_array(self, dtype: Any = np.float64) -> np.ndarray:
        """The biases as a numpy array ``(fan_out,)``; the layer must be numeric."""
        return _to_array(self.bias, dtype, self, "b").reshape(-1)


def _to_array(matrix: sympy.ImmutableMatrix, dtype: Any, layer: Dense, what: str) -> np.ndarray:
    return _float_array(matrix, what).astype(dtype)


def _layer_weight(values: Any, layer: int, fan_in: int | None, layout: str) -> tuple[Any, int, int]:
    """Normalise one weight argument to (values, fan_in, fan_out) in the Keras layout."""
    _refuse_masked(values, f"layer {layer}: W")
    shape = _shape_of(values)
    if len(shape) == 0:
        shape, values = (1, 1), [[values]]
    elif len(shape) == 1:  # a vector is (1, n) after a 1-unit layer, (n, 1) for an n-unit one
        if shape[0] == 1 or fan_in == 1:
            shape = (1, shape[0])
        elif fan_in == shape[0]:
            shape = (shape[0], 1)
        else:
            raise ShapeError(f"layer {layer}: W is 1-D with {shape[0]} entries; give it as 2-D (fan_in, fan_out)")
        values = np.asarray(values, dtype=object).reshape(shape)
    if len(shape) != 2:
        raise ShapeError(f"layer {layer}: W must be 2-D (fan_in, fan_out) but has shape {shape}")
    if layout == "torch":
        values = (sympy.Matrix(values).T if isinstance(values, sympy.MatrixBase)
                  else values.T if isinstance(values, np.ndarray) and values.dtype.kind == "f"  # stays floats
                  else np.asarray(values, dtype=object).T)
        shape = (shape[1], shape[0])
    if fan_in is not None and shape[0] != fan_in:
        hint = ""
        if shape[1] == fan_in:
            other = "torch" if layout == "keras" else "keras"
            hint = f"; it looks like the (fan_out, fan_in) layout: pass layout={other!r}"
        before = f"input_names names {fan_in} inputs" if layer == 1 else f"the layer before outputs {fan_in} values"
        raise ShapeError(
            f"layer {layer}: W has shape {tuple(shape) if layout == 'keras' else (shape[1], shape[0])} "
            f"({layout} layout) but {before}{hint}"
        )
    return values, int(shape[0]), int(shape[1])

def _check_layer(layer: Any, number: int) -> None:
    """Every entry of a layer's ``W`` and ``b`` (:func:`_check_weight`), however the layer was built."""
    for what, matrix in (("W", layer.weight), ("b", layer.bias)):
        if not isinstance(matrix, sympy.MatrixBase):
            raise WeightError(f"layer {number}: {what} is a {type(matrix).__name__}, not a SymPy matrix; "
                              "build networks with Network.from_weights or give Dense ImmutableMatrix entries")
        if _is_float_matrix(matrix):  # checked when it was made
            continue
        for (i, j), value in np.ndenumerate(np.array(matrix.tolist(), dtype=object).reshape(matrix.shape)):
            where = f"layer {number}: {what}[{i}, {j}]" if what == "W" else f"layer {number}: b[{j}]"
            if not isinstance(value, sympy.Expr):
                raise WeightError(f"{where} is {_brief(value)} of type {type(value).__name__}, not a SymPy expression")
            if not (value.is_Symbol or (type(value) is sympy.Float and math.isfinite(float(value)))):
                _check_weight(value, where)



class Network:
    """An immutable stack of :class:`Dense` layers with named real input symbols.

    Build one with :meth:`from_weights` or :meth:`symbolic`; derive new ones with
    :meth:`with_weights` and :meth:`subs`.  ``net.outputs`` is the closed form, one SymPy
    expression per output; derivatives live in :mod:`symnet.derivatives`.
    """

    __slots__ = ("_layers", "_inputs", "_graph", "__dict__")

    def __init__(self, layers: Sequence[Dense], inputs: Sequence[sympy.Symbol | str] | None = None) -> None:
        object.__setattr__(self, "_graph", None)
        layers = tuple(layers)
        if not layers:
            raise ShapeError("a network needs at least one layer")
        for number, layer in enumerate(layers, start=1):
            if not isinstance(layer, Dense):
                raise ShapeError(f"layer {number} is a {type(layer).__name__}, not a symnet Dense layer")
            if layer.fan_out < 1 or layer.fan_in < 1:
                raise ShapeError(f"layer {number}: W has shape {layer.weight.shape}; every layer needs at least one unit")
            if layer.bias.shape != (1, layer.fan_out):
                raise ShapeError(f"layer {number}: b has shape {layer.bias.shape} but W has {layer.fan_out} columns")
            if number > 1 and layer.fan_in != layers[number - 2].fan_out:
                raise ShapeError(
                    f"layer {number}: W has shape {layer.weight.shape} but layer {number - 1} "
                    f"outputs {layers[number - 2].fan_out} values"
                )
            _check_layer(layer, number)
        object.__setattr__(self, "_layers", layers)
        object.__setattr__(self, "_inputs", _input_symbols(inputs, layers[0].fan_in))
        clash = {s.name for s in self._inputs} & {s.name for s in self.params}
        if clash:
            raise InputError(f"input names {sorted(clash)} are also parameter names; rename the inputs")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Network is immutable; use with_weights(...) or subs(...) for a new one")

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def from_graph(cls, graph: Any) -> Network:
        """The network computing a :class:`symnet.graph.Graph` (built by :func:`symnet.graph.network`).

        A graph that is a chain of plain dense layers (each followed by at most one activation)
        gives the same network as :meth:`from_weights`: every chain function reads it.
        """
        from .graph import Graph

        if not isinstance(graph, Graph):
            raise ShapeError(f"from_graph needs a symnet.graph.Graph, not {type(graph).__name__}")
        chain = graph.chain_layers()
        if chain is not None:
            linear = _activations.get("linear")
            return cls([Dense(W, b, linear if act is None else act) for W, b, act in chain], graph.inputs)
        net = object.__new__(cls)
        object.__setattr__(net, "_layers", None)
        object.__setattr__(net, "_graph", graph)
        object.__setattr__(net, "_inputs", graph.inputs)
        clash = {s.name for s in graph.inputs} & {s.name for s in graph.params}
        if clash:
            raise InputError(f"input names {sorted(clash)} are also parameter names; rename the inputs")
        return net

    @property
    def is_chain(self) -> bool:
        """Whether the network is a chain of dense layers (``net.layers``); otherwise it is a graph."""
        return self._layers is not None

    @cached_property
    def graph(self) -> Any:
        """The network as a :class:`symnet.graph.Graph` (a chain gives nodes ``z1, a1, z2, a2, ...``)."""
        if self._graph is not None:
            return self._graph
        from .graph import Graph

        return Graph.from_chain(self._layers, self._inputs)

    def _chain(self, what: str) -> tuple[Dense, ...]:
        if self._layers is None:
            raise NotAChainError(
                f"{what} reads a chain of dense layers, and this network is a graph "
                f"({len(self._graph.nodes) - 1} nodes); use net.graph (net.graph.describe() lists its nodes)")
        return self._layers

    @classmethod
    def from_weights(
        cls,
        weights: Sequence[Any],
        biases: Sequence[Any] | None,
        activations: Sequence[Any] | Any,
        input_names: Sequence[str | sympy.Symbol] | None = None,
        layout: str = "keras",
    ) -> Network:
        """A network from one weight matrix and bias vector per layer.

        Args:
            weights: per layer, an array-like ``(fan_in, fan_out)`` (``layout="torch"``:
                ``(fan_out, fan_in)``); numbers or SymPy expressions; a scalar for 1-1 layers.
            biases: per layer, an array-like ``(fan_out,)`` or ``None`` for zero bias;
                ``None`` for no biases at all.
            activations: one per layer (names, :class:`Activation`, SymPy ``Lambda`` or callables),
                or a single one used by every layer.
            input_names: names of the inputs, default ``x0 .. x{d-1}``.
            layout: ``"keras"`` (default) or ``"torch"``.

        >>> Network.from_weights([[[1.0, 1.0], [1.0, 1.0]], [[1.0], [1.0]]], [[0, 0], [0]], "sigmoid").layer_sizes
        (2, 2, 1)
        """
        if layout not in _LAYOUTS:
            raise InputError(f"layout must be one of {_LAYOUTS}, not {layout!r}")
        weights = list(weights)
        biases = [None] * len(weights) if biases is None else list(biases)
        if len(biases) != len(weights):
            raise ShapeError(f"{len(weights)} weight matrices but {len(biases)} bias vectors; give one per layer")
        acts = _activation_list(activations, len(weights))
        layers: list[Dense] = []
        fan_in: int | None = None if input_names is None else len(input_names)
        for number, (w, b, act) in enumerate(zip(weights, biases, acts), start=1):
            w, fan_in_here, fan_out = _layer_weight(w, number, fan_in, layout)
            weight = _matrix(w, (fan_in_here, fan_out), f"layer {number}: W")
            bias = (sympy.ImmutableMatrix.zeros(1, fan_out) if b is None
                    else _matrix(b, (1, fan_out), f"layer {number}: b"))
            layers.append(Dense(weight, bias, act))
            fan_in = fan_out
        return cls(layers, input_names)

    @classmethod
    def symbolic(
        cls,
        layer_sizes: Sequence[int],
        activations: Sequence[Any] | Any,
        input_names: Sequence[str | sympy.Symbol] | None = None,
        bias: bool = True,
    ) -> Network:
        """A network whose weights are named real SymPy symbols ``w{l}_{i}_{j}``, ``b{l}_{j}``.

        ``layer_sizes`` lists the input size then each layer's size (``[1, 1, 1]`` for 003's
        net).  ``bias=False`` fixes every bias at 0.

        >>> net = Network.symbolic([1, 1, 1], ["square", "linear"])
        >>> net.expr
        b2_0 + w2_0_0*(b1_0 + w1_0_0*x0)**2
        """
        sizes = [int(s) for s in layer_sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ShapeError(f"layer_sizes {list(layer_sizes)} must list the input size and at least one layer, all >= 1")
        acts = _activation_list(activations, len(sizes) - 1)
        layers = []
        for number, (fan_in, fan_out, act) in enumerate(zip(sizes, sizes[1:], acts), start=1):
            weight = sympy.ImmutableMatrix(fan_in, fan_out, lambda i, j: sympy.Symbol(f"w{number}_{i}_{j}", real=True))
            bias_row = (sympy.ImmutableMatrix(1, fan_out, lambda _, j: sympy.Symbol(f"b{number}_{j}", real=True))
                        if bias else sympy.ImmutableMatrix.zeros(1, fan_out))
            layers.append(Dense(weight, bias_row, act))
        return cls(layers, input_names)

    def with_weights(self, weights: Sequence[Any | None], biases: Sequence[Any | None] | None = None,
                     layout: str = "keras") -> Network:
        """A copy with new weights; a ``None`` entry keeps that layer's current W (or b).

        >>> sym = Network.symbolic([1, 1, 1], ["square", "linear"])
        >>> print(sym.with_weights([2.0, None], [1.0, None]))
        b2_0 + w2_0_0*(2.0*x0 + 1.0)**2
        """
        self._chain("with_weights")
        if len(weights) != len(self._layers) or (biases is not None and len(biases) != len(self._layers)):
            raise ShapeError(f"give one entry per layer ({len(self._layers)}), None to keep a layer's current values")
        new_w = [layer.weight if w is None else w for layer, w in zip(self._layers, weights)]
        new_b = [layer.bias if b is None else b
                 for layer, b in zip(self._layers, biases or [None] * len(self._layers))]
        layouts = ["keras" if w is None else layout for w in weights]
        if layout == "torch":  # kept matrices are already in the Keras layout
            new_w = [np.asarray(w.tolist(), dtype=object).T if lay == "keras" and isinstance(w, sympy.MatrixBase) else w
                     for w, lay in zip(new_w, layouts)]
        return Network.from_weights(new_w, new_b, [lay.activation for lay in self._layers],
                                    self._inputs, layout)

    def with_params(self, params: Mapping[str, Mapping[str, Any]]) -> Network:
        """A copy with every parameter given by node: ``{node: {parameter: array}}``, as training gives them.

        Nodes and shapes are those of ``net.graph`` (a chain's dense nodes are ``z1``, ``z2``, ...
        with ``W`` ``(fan_in, fan_out)`` and ``b`` ``(1, fan_out)``); a row or column parameter may
        be given flat.  Every node with parameters needs all of them; each entry is checked as
        weights are.  A chain comes back as a chain, a graph as the same graph.

        >>> net = Network.from_weights([[[1.0]]], [[0.0]], ["tanh"])
        >>> print(net.with_params({"z1": {"W": [[2.0]], "b": [0.5]}}))
        tanh(2.0*x0 + 0.5)
        """
        from .graph import Graph, Node

        graph = self.graph
        owners = {node.name: node for node in graph.nodes[1:] if node.params}
        if not isinstance(params, Mapping) or set(params) != set(owners):
            given = sorted(params) if isinstance(params, Mapping) else type(params).__name__
            raise ShapeError(f"params must give the nodes {sorted(owners)} ({{node: {{parameter: array}}}}), not {given}")
        nodes = []
        for node in graph.nodes[1:]:
            values = {}
            for name, current in node.params.items():
                where = f"node {node.name!r}: {name}"
                if not isinstance(params[node.name], Mapping) or name not in params[node.name]:
                    raise ShapeError(f"{where} is not given; node {node.name!r} has {sorted(node.params)}")
                values[name] = _matrix(params[node.name][name], tuple(current.shape), where)
            nodes.append(Node(node.name, node.op, node.inputs, values, node.attrs, node.width))
        return Network.from_graph(Graph(graph.inputs, nodes, graph.output))

    def subs(self, mapping: Mapping[sympy.Symbol | str, Any] | None = None, **named: Any) -> Network:
        """A copy with parameters replaced (by symbol or by name): ``net.subs(w1_0_0=2.0)``.

        Replacing only some parameters gives a mixed numeric/symbolic network.
        """
        by_name = {p.name: p for p in self.params}
        replace: dict[sympy.Symbol, sympy.Expr] = {}
        for key, value in {**dict(mapping or {}), **named}.items():
            name = key.name if isinstance(key, sympy.Symbol) else str(key)
            if name not in by_name:
                raise InputError(f"{name!r} is not a parameter of this network; parameters: {_short(by_name)}")
            replace[by_name[name]] = _entry(value, f"value for {name}")
        if self._layers is None:
            return Network.from_graph(self._graph.replace(replace))
        layers = [Dense(layer.weight.xreplace(replace), layer.bias.xreplace(replace), layer.activation)
                  for layer in self._layers]
        return Network(layers, self._inputs)

    # --- what it is ------------------------------------------------------------------------

    @property
    def layers(self) -> tuple[Dense, ...]:
        """The dense layers of a chain (a graph has none: :class:`~symnet.NotAChainError`)."""
        return self._chain("net.layers")

    @property
    def inputs(self) -> tuple[sympy.Symbol, ...]:
        """The input symbols (real), in order."""
        return self._inputs

    @property
    def n_inputs(self) -> int:
        return len(self._inputs)

    @property
    def n_outputs(self) -> int:
        return self._graph.n_outputs if self._layers is None else self._layers[-1].fan_out

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """The input size followed by each layer's size (chains)."""
        self._chain("layer_sizes")
        return (self.n_inputs, *(layer.fan_out for layer in self._layers))

    @property
    def activations(self) -> tuple[Activation, ...]:
        """Each layer's activation (chains)."""
        self._chain("activations")
        return tuple(layer.activation for layer in self._layers)

    @property
    def is_numeric(self) -> bool:
        """Whether every weight is a number (the network has no free parameters)."""
        if self._layers is None:
            return self._graph.is_numeric
        return all(layer.is_numeric for layer in self._layers)

    @cached_property
    def params(self) -> tuple[sympy.Symbol, ...]:
        """The free parameter symbols: layer by layer, each layer's W row-major, then its b (a graph:
        node by node, each parameter row-major)."""
        if self._layers is None:
            return self._graph.params
        seen: dict[sympy.Symbol, None] = {}
        for layer in self._layers:
            for symbol in (*_symbols(layer.weight), *_symbols(layer.bias)):
                seen.setdefault(symbol, None)
        return tuple(seen)

    def input_index(self, wrt: int | str | sympy.Symbol) -> int:
        """The position of an input given as index, name or symbol."""
        if isinstance(wrt, (int, np.integer)) and not isinstance(wrt, bool):
            if 0 <= wrt < self.n_inputs:
                return int(wrt)
        else:
            name = wrt.name if isinstance(wrt, sympy.Symbol) else wrt
            for i, symbol in enumerate(self._inputs):
                if symbol.name == name:
                    return i
            if isinstance(wrt, sympy.Symbol) and wrt in self.params:
                raise InputError(f"{wrt} is a parameter, not an input; use symnet.param_grad for parameter gradients")
        raise InputError(f"{wrt!r} is not an input of this network; inputs: {', '.join(map(str, self._inputs))}")

    def output_index(self, output: int | None) -> int:
        """Check an output index; ``None`` is allowed only for single-output networks."""
        if output is None:
            if self.n_outputs != 1:
                raise InputError(
                    f"this network has {self.n_outputs} outputs; pick one with output=0..{self.n_outputs - 1}"
                )
            return 0
        if isinstance(output, (int, np.integer)) and not isinstance(output, bool) and 0 <= output < self.n_outputs:
            return int(output)
        raise InputError(f"output={output!r} is out of range; this network has {self.n_outputs} output(s)")

    # --- the closed form -------------------------------------------------------------------

    def forward(self, values: Sequence[sympy.Expr]) -> list[sympy.Expr]:
        """The outputs at inputs ``values`` (SymPy expressions or numbers), layer by layer."""
        if len(values) != self.n_inputs:
            raise ShapeError(f"the network takes {self.n_inputs} inputs, got {len(values)}")
        current = [sympy.sympify(v, strict=True) for v in values]
        if self._layers is None:
            return self._graph.forward(current)
        for layer in self._layers:
            z = [sympy.Add(*(current[i] * layer.weight[i, j] for i in range(layer.fan_in)), layer.bias[0, j])
                 for j in range(layer.fan_out)]
            current = layer.activation.apply_layer(z)
        return current

    @cached_property
    def outputs(self) -> sympy.ImmutableMatrix:
        """The closed form: a column ``Matrix`` with one expression per output."""
        return sympy.ImmutableMatrix(self.forward(self._inputs))

    @property
    def expr(self) -> sympy.Expr:
        """The closed form of a single-output network."""
        if self.n_outputs != 1:
            raise InputError(f"expr needs a single-output network; this one has {self.n_outputs} outputs: use net.outputs")
        return self.outputs[0]

    # --- display ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        if self._layers is None:
            kind = "numeric" if self.is_numeric else f"{len(self.params)} symbolic parameters"
            names = [n.name for n in self._graph.nodes[1:]]
            shown = ", ".join(names) if len(names) <= 12 else ", ".join(names[:10]) + f", ... ({len(names)} nodes)"
            return f"Network(graph {self.n_inputs} -> {self.n_outputs}: {shown}; {kind})"
        sizes = " -> ".join(map(str, self.layer_sizes))
        acts = ", ".join(a.name for a in self.activations)
        kind = "numeric" if self.is_numeric else f"{len(self.params)} symbolic parameters"
        names = "" if [s.name for s in self._inputs] == [f"x{i}" for i in range(self.n_inputs)] else \
            f", inputs=({', '.join(s.name for s in self._inputs)})"
        return f"Network({sizes}, activations=({acts}){names}, {kind})"

    def __str__(self) -> str:
        from .printing import summary

        short = summary(self)  # a closed form of millions of nodes would print for minutes
        if short is not None:
            return short
        shown = self.outputs[0] if self.n_outputs == 1 else self.outputs
        return sympy.sstr(shown, full_prec=False)

    def latex(self, full: bool = False) -> str:
        """The closed form as LaTeX (one output) or a LaTeX column vector.

        A closed form too big to print quickly (:data:`symnet.limits.MAX_PRINT_SIZE`) gives a
        one-line summary unless ``full=True``.
        """
        from .printing import latex_text, summary

        short = None if full else summary(self)
        if short is not None:
            return latex_text(short)
        shown = self.outputs[0] if self.n_outputs == 1 else self.outputs
        return sympy.latex(shown, full_prec=False)

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.latex()}$"

    def __getattr__(self, name: str) -> Any:
        # Saving and loading are io's (symnet.save, symnet.load): io sits above the network, and
        # a method here would import it upward (issue 16). An old call is told where they went.
        if name == "save":
            raise AttributeError("Network.save(path) is now symnet.save(net, path) (and symnet.load(path) reads "
                                 "it back): the file format lives in symnet.io, above the network")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Network) and (self._layers is None or other._layers is None):
            return self._graph is not None and other._graph is not None and self._graph == other._graph
        return (isinstance(other, Network) and self._inputs == other._inputs
                and len(self._layers) == len(other._layers)
                and all(a.weight == b.weight and a.bias == b.bias and a.activation.name == b.activation.name
                        and a.activation.form == b.activation.form
                        for a, b in zip(self._layers, other._layers)))

    def __hash__(self) -> int:
        if self._layers is None:
            return hash(self._graph)
        return hash((self._inputs, tuple((la.weight, la.bias, la.activation.name) for la in self._layers)))

    def __reduce__(self) -> tuple[Any, ...]:
        if self._layers is None:
            return (Network.from_graph, (self._graph,))
        return (Network, (self._layers, self._inputs))


def _short(items: Iterable[Any], limit: int = 8) -> str:
    items = list(items)
    return ", ".join(map(str, items[:limit])) + (", ..." if len(items) > limit else "")


def _activation_list(activations: Sequence[Any] | Any, n_layers: int) -> list[Activation]:
    if isinstance(activations, (str, bytes, Activation, sympy.Lambda)) or callable(activations) \
            or activations is None or not isinstance(activations, Iterable):
        specs = [activations] * n_layers  # one for every layer; get() refuses what is no activation
    else:
        specs = list(activations)
        if len(specs) != n_layers:
            raise ActivationError(f"{len(specs)} activations for {n_layers} layers; give one per layer or a single one")
    result = []
    for number, spec in enumerate(specs, start=1):
        try:
            result.append(_activations.get(spec))
        except ActivationError as exc:
            raise ActivationError(f"layer {number}: {exc}") from exc.__cause__
    return result


def _input_symbols(names: Sequence[str | sympy.Symbol] | None, n_inputs: int) -> tuple[sympy.Symbol, ...]:
    if names is None:
        return tuple(sympy.Symbol(f"x{i}", real=True) for i in range(n_inputs))
    names = [n.name if isinstance(n, sympy.Symbol) else n for n in names]
    if len(names) != n_inputs:
        raise ShapeError(f"{len(names)} input names for a first layer with {n_inputs} inputs")
    for name in names:
        if not isinstance(name, str) or not name or not name.isidentifier():
            raise InputError(f"input name {name!r} must be a non-empty identifier such as 'x' or 'x0'")
    if len(set(names)) != len(names):
        raise InputError(f"input names {names} must be distinct")
    return tuple(sympy.Symbol(n, real=True) for n in names)
