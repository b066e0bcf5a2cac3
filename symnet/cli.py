"""The ``symnet`` command: thin -- it parses arguments and calls the API.

::

    symnet demo                                   story 003: the parabola a Keras net learned
    symnet inspect FILE                           layers, sizes, activations, closed form when small
    symnet coeffs FILE [--about A --order N]      polynomial (or Taylor) coefficients
    symnet derive FILE --at 1,1 [--order 2]       value, gradient, Hessian at points
    symnet verify FILE                            exact kernel vs backprop vs finite differences
    symnet export FILE --lang c|python|latex      source of a function computing the derivatives

``FILE`` is a symnet file (:func:`symnet.io.save`), a ``.keras`` model (read without
running its code; ``--activation LAYER=EXPR`` for lambda activations, or ``--trust``) or a
PyTorch state dict (``--act tanh,tanh,linear``, optionally ``--arch 1-32-32-1``).  Errors go
to stderr with exit status 2 (``verify``: 1 when the checks disagree); ``--debug`` shows
the traceback.

Everything printed passes through :func:`symnet.io.safe_text`: text from a file (names,
forms, messages quoting them) never reaches the terminal with raw control characters
(ANSI escapes, carriage returns, bidirectional overrides), and error messages are shortened.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from typing import Any, Sequence

import numpy as np
import sympy

__all__ = ["main"]

#: story 003: Dense(1, activation=lambda x: x**2) -> Dense(1), trained on x**2 + 2x + 2
_DEMO_WEIGHTS = ([[[-1.3284513]], [[0.5667597]]], [[-1.328055], [1.0003909]])


class _UsageError(Exception):
    """A command-line value that cannot be read (reported like any other error)."""


#: the longest error message printed (the rest is cut, with "...")
_MAX_MESSAGE = 2000


def _say(text: object = "", file: Any = None) -> None:
    """Print ``text`` with every control character escaped (newlines kept): file text is never printed raw."""
    print(_safe(text, newlines=True), file=file)


def _safe(text: object, limit: int | None = None, newlines: bool = False) -> str:
    from .io import safe_text

    return safe_text(text, limit, newlines=newlines)


def _int_between(low: int, high: int | None = None) -> Any:
    """An argparse type: an integer in ``[low, high]``, else a usage error naming the range."""

    def read(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            wanted = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: give an integer {wanted}")
        return value

    read.__name__ = "integer"
    return read


def _split(text: str) -> list[str]:
    """Split at commas outside parentheses: ``"Max(0, x),tanh"`` -> ``["Max(0, x)", "tanh"]``."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def _number(text: str) -> int | float:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise _UsageError(f"{text!r} is not a number") from None


def _point(text: str) -> list[float]:
    return [float(_number(v)) for v in text.split(",")]


def _overrides(items: Sequence[str] | None) -> dict[int | str, str] | None:
    if not items:
        return None
    result: dict[int | str, str] = {}
    for item in items:
        layer, sep, expr = item.partition("=")
        if not sep or not layer.strip() or not expr.strip():
            raise _UsageError(f"--activation {item!r}: write LAYER=EXPR, e.g. --activation 0=x**2")
        layer = layer.strip()
        result[int(layer) if layer.isdigit() else layer] = expr.strip()
    return result


def _load(args: argparse.Namespace) -> Any:
    from .io import read_network

    sizes = None
    if args.arch:
        try:
            sizes = [int(v) for v in args.arch.replace(",", "-").split("-")]
        except ValueError:
            raise _UsageError(f"--arch {args.arch!r}: write the layer sizes as 1-32-32-1") from None
    acts = _split(args.act) if args.act else None
    if acts is not None and len(acts) == 1:
        acts = acts[0]
    return read_network(args.file, activations=_overrides(args.activation), trust=args.trust,
                        layer_sizes=sizes, layer_activations=acts)


def _show(value: Any, digits: int | None) -> str:
    value = sympy.sympify(value)
    if digits is not None and not value.free_symbols:
        value = value.evalf(digits)
    return sympy.sstr(value, full_prec=False)


# --- subcommands ------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    import symnet

    weights, biases = _DEMO_WEIGHTS
    net = symnet.Network.from_weights(weights, biases, [lambda x: x**2, "linear"])
    c = symnet.coefficients(net)
    _say("story 003: Keras Dense(1, activation=lambda x: x**2) -> Dense(1), trained on y = x^2 + 2x + 2")
    _say(f"network:          {net!r}")
    _say(f"closed form:      y = {net}")
    _say("learned parabola: y = {:.7f} x^2 + {:.7f} x + {:.7f}".format(*(float(c[k]) for k in (2, 1, 0))))
    formulas = symnet.coefficients(symnet.Network.symbolic([1, 1, 1], ["square", "linear"]))
    _say("as formulas of the weights: " + ", ".join(f"x^{k}: {formulas[k]}" for k in (2, 1, 0)))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from .io import detect

    kind = detect(args.file)
    net = _load(args)
    _say(f"file:     {_safe(args.file)} ({kind})")
    _say(f"network:  {_safe(repr(net), _MAX_MESSAGE)}")
    _say(f"inputs:   {_safe(', '.join(map(str, net.inputs)), _MAX_MESSAGE)}")
    if not net.is_chain:
        return _inspect_graph(net, args)
    rows = [("layer", "shape", "activation", "weights")]
    for number, layer in enumerate(net.layers, start=1):
        free = len(layer.weight.free_symbols | layer.bias.free_symbols)
        rows.append((str(number), f"{layer.fan_in} -> {layer.fan_out}", _safe(layer.activation.name, 80),
                     "numeric" if layer.is_numeric else f"{free} symbols"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        _say("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    size = sum(layer.fan_in * layer.fan_out for layer in net.layers)
    return _say_closed_form(net, size, size <= args.max_weights, 40 * args.max_weights)


def _inspect_graph(net: Any, args: argparse.Namespace) -> int:
    """``inspect`` of a graph network: its node list (``net.graph.describe()``), then the closed form when small.

    A graph shares values that its closed form writes out at every use, so a file of a few
    nodes can have a closed form too big to print: its size is estimated first.
    """
    from .limits import closed_form_size

    graph = net.graph
    _say(f"weights:  {'numeric' if net.is_numeric else f'{len(net.params)} symbols'}")
    _say(f"nodes:    {len(graph.nodes) - 1} after the input, output {graph.output}")
    for line in graph.describe().splitlines():
        _say("  " + _safe(line, 400))
    size = sum(m.shape[0] * m.shape[1] for node in graph.nodes for m in node.params.values())
    budget = 40 * args.max_weights
    small = size <= args.max_weights and closed_form_size(net) <= budget  # estimated: nothing is built
    return _say_closed_form(net, size, small, budget)


def _say_closed_form(net: Any, size: int, small: bool, budget: int) -> int:
    """Print the closed form, one line per output, when ``small`` and at most ``budget`` characters."""
    text = [sympy.sstr(expr, full_prec=False) for expr in net.outputs] if small else []
    if not small or sum(map(len, text)) > budget:
        _say(f"closed form: not shown ({size} weights, {sum(map(len, text)) or 'many'} characters; raise "
             "--max-weights, or see symnet export FILE --lang latex)")
        return 0
    _say("closed form:")
    for k, line in enumerate(text):
        _say(f"  {'y' if net.n_outputs == 1 else f'y{k}'} = {line}")
    return 0


def _monomial(inputs: Sequence[sympy.Symbol], exponents: Sequence[int], about: Sequence[Any] | None) -> str:
    shifts = about or [0] * len(inputs)
    factors = [(x - a) ** e for x, a, e in zip(inputs, shifts, exponents)]
    return sympy.sstr(sympy.Mul(*factors), full_prec=False)


def _coeffs(args: argparse.Namespace) -> int:
    import symnet

    net = _load(args)
    if args.order is not None or args.about is not None:
        about = [_number(v) for v in (args.about or "0").split(",")]
        _finite(about, "--about: ")
        if len(about) == 1 and net.n_inputs > 1:
            about = about * net.n_inputs
        order = 2 if args.order is None else args.order
        coefficients = symnet.taylor(net, about if net.n_inputs > 1 else about[0], order, output=args.output)
        kind, shown_about = "taylor", list(coefficients.about or [])
    else:
        try:
            coefficients = symnet.coefficients(net, output=args.output)
        except symnet.NotPolynomialError as exc:
            raise symnet.NotPolynomialError(f"{exc}; on the command line: --order N (and --about POINT)") from None
        kind, shown_about, order = "polynomial", None, None
    items = sorted(coefficients.items(), key=lambda kv: (-sum(kv[0]), [-e for e in kv[0]]))
    if args.format == "json":
        _say(_json({
            "kind": kind, "inputs": [s.name for s in net.inputs], "output": args.output or 0,
            "about": None if shown_about is None else [str(a) for a in shown_about], "order": order,
            "coefficients": [{"exponents": list(e), "monomial": _monomial(net.inputs, e, shown_about),
                              "value": float(c) if not c.free_symbols else None, "expr": sympy.sstr(c)}
                             for e, c in items],
        }))
    elif args.format == "latex":
        _say(f"y = {symnet.latex(coefficients.as_expr())}")
    else:
        where = "" if shown_about is None else " about (" + ", ".join(map(str, shown_about)) + f"), order {order}"
        _say(f"{kind} coefficients of {_safe(repr(net), _MAX_MESSAGE)}{where}:")
        width = max([len(_monomial(net.inputs, e, shown_about)) for e, _ in items] + [1])
        for e, c in items:
            _say(f"  {_monomial(net.inputs, e, shown_about).ljust(width)}  {_show(c, args.digits)}")
    return 0


def _finite(point: Sequence[float], where: str) -> None:
    """Refuse a point with a NaN or infinite coordinate (its derivatives would be NaN, and JSON has no NaN)."""
    if not all(np.isfinite(point)):
        raise _UsageError(f"{where}the point {_safe(list(point), 200)} is not finite: give finite numbers")


def _json(data: Any) -> str:
    """Strict JSON (no ``NaN`` or ``Infinity`` tokens, which JSON does not have), or a clear error."""
    try:
        return json.dumps(data, indent=1, allow_nan=False)
    except ValueError:
        raise _UsageError("the result holds NaN or infinite numbers (the network overflows there), which JSON "
                          "cannot hold: see them with --format text") from None


def _csv_text(path: str) -> str:
    """The text of a UTF-8 CSV file (a byte-order mark is skipped); a clear error naming the line if it is not."""
    with open(path, "rb") as stream:
        raw = stream.read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _UsageError(f"{_safe(path, 200)}, line {line}: not UTF-8 text (byte {exc.object[exc.start]:#04x}); "
                          "save the points as UTF-8 CSV") from None


def _points(args: argparse.Namespace, d: int) -> np.ndarray:
    points = []
    for text in args.at or []:
        points.append(_point(text))
        _finite(points[-1], f"--at {_safe(text, 100)}: ")
    if args.csv:
        reader = csv.reader(io.StringIO(_csv_text(args.csv), newline=""))
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # a field over csv's size limit, a NUL byte
                raise _UsageError(f"{_safe(args.csv, 200)}, line {reader.line_num}: not CSV: {_safe(exc, 200)}") \
                    from None
            number = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            try:
                points.append([float(cell) for cell in row])
            except ValueError:
                if number == 1:  # a header
                    continue
                raise _UsageError(f"{_safe(args.csv, 200)}, line {number}: {_safe(row, 200)} is not a row of numbers") \
                    from None
            _finite(points[-1], f"{_safe(args.csv, 200)}, line {number}: ")
    if not points:
        raise _UsageError("give points with --at 1,1 (repeatable) or --csv FILE")
    for p in points:
        if len(p) != d:
            raise _UsageError(f"the point {p} has {len(p)} coordinates but the network takes {d} inputs")
    return np.array(points, dtype=np.float64)


def _derive(args: argparse.Namespace) -> int:
    import symnet

    net = _load(args)
    X = _points(args, net.n_inputs)
    words = ["value", "jacobian", "hessian"][: args.order + 1]
    result = symnet.compile(net, words, backend="numpy")(X)
    names = {"value": "value", "jacobian": "gradient", "hessian": "hessian"}
    if args.format == "json":
        _say(_json({"inputs": [s.name for s in net.inputs], "points": [
            {"x": list(X[p]), **{names[w]: getattr(result, w)[p].tolist() for w in words}} for p in range(len(X))
        ]}))
        return 0
    with np.printoptions(precision=17 if args.digits is None else args.digits, suppress=False):  # not global
        for p in range(len(X)):
            _say(f"x = {np.array2string(X[p], separator=', ')}")
            for w in words:
                text = np.array2string(getattr(result, w)[p], separator=", ", prefix="  " + " " * 10)
                _say(f"  {names[w]:<9} {text}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    import symnet

    net = _load(args)
    report = symnet.verify(net, n_points=args.points, seed=args.seed)
    _say(repr(report))
    if not report.ok:
        _say(_safe(report.message(), _MAX_MESSAGE, newlines=True), file=sys.stderr)
        return 1
    return 0


def _export(args: argparse.Namespace) -> int:
    from .io import export

    net = _load(args)
    text = export(net, args.lang, _split(args.derivatives), name=args.name)
    if args.output:
        with open(args.output, "w") as stream:
            stream.write(text if text.endswith("\n") else text + "\n")
    else:
        _say(text.rstrip("\n"))
    return 0


# --- the parser -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="symnet", description="Neural networks as exact mathematics.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error")
    source = argparse.ArgumentParser(add_help=False, parents=[debug])
    source.add_argument("file", metavar="FILE", help="a symnet file, a .keras model or a PyTorch state dict")
    source.add_argument("--activation", action="append", metavar="LAYER=EXPR",
                        help="activation of a layer (its name or 0-based index among the Dense/Linear layers) as "
                             "an expression in x, e.g. 0=x**2, or a registered name; repeatable")
    source.add_argument("--trust", action="store_true",
                        help="let Keras rebuild lambda activations from a .keras file's bytecode (runs its code)")
    source.add_argument("--arch", metavar="SIZES", help="state dict: layer sizes, e.g. 1-32-32-1 (checked)")
    source.add_argument("--act", metavar="ACTS", help="state dict: one activation per Linear layer, the output layer "
                        "included, e.g. tanh,tanh,linear (one name only for a one-layer net)")

    sub.add_parser("demo", parents=[debug], help="story 003: the parabola a Keras net learned").set_defaults(run=_demo)

    inspect = sub.add_parser("inspect", parents=[source], help="layers, sizes, activations, closed form")
    inspect.add_argument("--max-weights", type=_int_between(0), default=64,
                         help="show the closed form up to this many weights")
    inspect.set_defaults(run=_inspect)

    coeffs = sub.add_parser("coeffs", parents=[source], help="polynomial or Taylor coefficients")
    coeffs.add_argument("--about", metavar="POINT", help="Taylor expansion point, e.g. 0 or 1,2 (use --about=-1)")
    coeffs.add_argument("--order", type=_int_between(0), help="Taylor order (asks for Taylor coefficients)")
    coeffs.add_argument("--output", type=_int_between(0), help="which output of a multi-output network")
    coeffs.add_argument("--format", choices=("text", "latex", "json"), default="text")
    coeffs.add_argument("--digits", type=_int_between(1, 1000), help="significant digits of numeric coefficients "
                        "(1 to 1000)")
    coeffs.set_defaults(run=_coeffs)

    derive = sub.add_parser("derive", parents=[source], help="value, gradient, Hessian at points")
    derive.add_argument("--at", action="append", metavar="POINT", help="a point, e.g. 1,1 (repeatable; --at=-1,2)")
    derive.add_argument("--csv", metavar="CSVFILE", help="points, one per row (a header row is skipped)")
    derive.add_argument("--order", type=int, choices=(0, 1, 2), default=2, help="0 value, 1 + gradient, 2 + Hessian")
    derive.add_argument("--format", choices=("text", "json"), default="text")
    derive.add_argument("--digits", type=_int_between(1, 1000), help="digits printed (default 17; 1 to 1000)")
    derive.set_defaults(run=_derive)

    verify = sub.add_parser("verify", parents=[source], help="check the exact derivatives three ways")
    verify.add_argument("--points", type=_int_between(1, 100_000), default=8,
                        help="random points to check (1 to 100000)")
    verify.add_argument("--seed", type=_int_between(0), default=0, help="seed of the random points (0 or more)")
    verify.set_defaults(run=_verify)

    export = sub.add_parser("export", parents=[source], help="C, Python or LaTeX source of the derivatives")
    export.add_argument("--lang", choices=("c", "python", "latex"), default="python")
    export.add_argument("--derivatives", default="value", help="comma-separated: value,gradient,hessian,laplacian")
    export.add_argument("--name", default="network", help="the function's name")
    export.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    export.set_defaults(run=_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``symnet`` command with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    from .errors import SymnetError

    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except BrokenPipeError:  # the reader went away (symnet ... | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (SymnetError, OSError, _UsageError) as exc:
        if args.debug:
            raise
        print(f"symnet {args.command}: error: {_safe(exc, _MAX_MESSAGE)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: say so, briefly
        if args.debug:
            raise
        print(f"symnet {args.command}: internal error: {type(exc).__name__}: {_safe(exc, _MAX_MESSAGE)} (run with "
              "--debug for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
