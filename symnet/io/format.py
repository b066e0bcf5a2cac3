"""symnet's file format: one ``.npz`` archive that round-trips every network symnet can build.

The archive (written by :func:`numpy.savez_compressed`, read with ``allow_pickle=False``)
holds plain arrays only:

* ``symnet``: the metadata, UTF-8 JSON bytes as a 1-D ``uint8`` array;
* ``W{l}``, ``b{l}`` (``l`` counted from 1): float64 arrays ``(fan_in, fan_out)`` and
  ``(fan_out,)`` for each weight matrix and bias vector whose entries are all float64
  numbers.

The metadata::

    {"format": "symnet-network", "version": 1, "symnet_version": "0.1.0",
     "inputs": ["x0"],
     "symbols": {"w1_0_0": {"real": true, ...}},        # parameter symbols and their assumptions
     "layers": [{"fan_in": 1, "fan_out": 1,
                 "activation": {"name": "tanh", "form": "tanh(t)"},
                 "W": {"array": "W1"},                   # or {"text": [["w1_0_0"]]}
                 "b": {"text": ["0"]}}]}

A weight matrix or bias vector with any entry that is not a float64 number (an exact
integer, a rational, a symbol, an expression) is stored as ``text``: one expression per
entry, written and read by the safe expression reader of :mod:`symnet.io._expr` (numbers,
the declared symbols, ``+ - * / **``, and a short list of functions).  An activation is
stored by its registered name *and* its SymPy form in ``t`` (``null`` for ``softmax``); the
form makes traced and user-registered activations loadable anywhere.

Nothing in a file is ever executed, unpickled or passed to ``eval``/``sympify``.  A file
that is not what it claims (a pickle, an expression naming ``__import__``, a weight of the
wrong shape, a truncated archive, a NaN weight) raises :class:`FileFormatError`, naming the
file and what is wrong.

>>> import os, tempfile, symnet
>>> net = symnet.Network.symbolic([1, 1, 1], ["square", "linear"])
>>> path = os.path.join(tempfile.mkdtemp(), "parabola.npz")
>>> save(net, path).name
'parabola.npz'
>>> load(path) == net
True
"""

from __future__ import annotations

import json
import os
import re
import uuid
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import sympy

from .. import activations as _activations
from ..activations import Activation, T
from ..errors import InputError, SymnetError
from ..network import Dense, Network
from ._expr import ExpressionError, parse, to_text

__all__ = ["FileFormatError", "UnsupportedLayerError", "UntrustedCodeError", "FORMAT", "VERSION", "save", "load", "detect", "read_network"]

FORMAT = "symnet-network"
VERSION = 1
_META = "symnet"
_ZIP_MAGIC = b"PK\x03\x04"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSUMPTIONS = frozenset({
    "algebraic", "antihermitian", "commutative", "complex", "composite", "even", "extended_negative",
    "extended_nonnegative", "extended_nonpositive", "extended_nonzero", "extended_positive", "extended_real",
    "finite", "hermitian", "imaginary", "infinite", "integer", "irrational", "negative", "noninteger",
    "nonnegative", "nonpositive", "nonzero", "odd", "positive", "prime", "rational", "real", "transcendental",
    "zero",
})


class FileFormatError(SymnetError, ValueError):
    """A file is not one symnet can read: wrong kind, corrupt, truncated, or unsafe.  The message names the file."""


class UnsupportedLayerError(SymnetError, ValueError):
    """A model has a layer (or an activation) that symnet cannot write as a dense network; the message names it."""


class UntrustedCodeError(FileFormatError):
    """A file holds Python code (a pickled object, a Keras lambda) that symnet will not run unasked."""


# --- writing -----------------------------------------------------------------------------------


def save(net: Network, path: str | os.PathLike[str]) -> Path:
    """Write ``net`` to ``path`` in symnet's format (see the module docstring) and return the path.

    The file is written whole or not at all (a temporary file is renamed over ``path``).  Any
    network symnet builds can be saved -- numeric, symbolic or mixed, any activation whose
    form uses the functions the expression reader knows; anything else raises
    :class:`FileFormatError` before a byte is written.  ``load(save(net, path)) == net``.
    """
    if not isinstance(net, Network):
        raise InputError(f"save needs a symnet Network, not {type(net).__name__}")
    path = Path(path)
    symbols = {p.name: p for p in net.params}
    declared = {name: _assumptions_of(symbol, path) for name, symbol in symbols.items()}
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for number, layer in enumerate(net.layers, start=1):
        entry: dict[str, Any] = {"fan_in": layer.fan_in, "fan_out": layer.fan_out,
                                 "activation": _activation_entry(layer.activation, number, path)}
        for key, matrix in (("W", layer.weight), ("b", layer.bias)):
            name = f"{key}{number}"
            if all(v.is_Float and getattr(v, "_prec", 0) == 53 for v in matrix):
                values = np.array([float(v) for v in matrix], dtype=np.float64)
                arrays[name] = values.reshape(matrix.shape) if key == "W" else values
                entry[key] = {"array": name}
            else:
                try:
                    text = [[to_text(v, symbols) for v in row] for row in matrix.tolist()]
                except ExpressionError as exc:
                    raise FileFormatError(f"{path}: cannot save layer {number}'s {key}: {exc}") from None
                entry[key] = {"text": text if key == "W" else text[0]}
        layers.append(entry)
    meta = {
        "format": FORMAT, "version": VERSION, "symnet_version": _symnet_version(),
        "inputs": [s.name for s in net.inputs],
        "symbols": declared,
        "layers": layers,
    }
    arrays[_META] = np.frombuffer(json.dumps(meta, indent=1).encode("utf-8"), dtype=np.uint8)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # the user's umask, unlike mkstemp
    try:
        with open(temporary, "xb") as stream:
            np.savez_compressed(stream, **arrays)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _symnet_version() -> str:
    from .. import __version__

    return __version__


def _assumptions_of(symbol: sympy.Symbol, path: Path) -> dict[str, bool]:
    if type(symbol) is not sympy.Symbol or not _IDENTIFIER.fullmatch(symbol.name):
        raise FileFormatError(f"{path}: cannot save parameter {symbol!r} ({type(symbol).__name__}): only "
                              "plain sympy.Symbol parameters named like identifiers can be saved")
    for short in ({"real": True}, {}):  # the usual cases, written short
        if sympy.Symbol(symbol.name, **short) == symbol:
            return short
    return {k: bool(v) for k, v in sorted(symbol.assumptions0.items()) if v is not None}


def _activation_entry(activation: Activation, number: int, path: Path) -> dict[str, Any]:
    if activation.form is None:
        try:
            registered = _activations.get(activation.name)
        except SymnetError:
            registered = None
        if registered is None or registered.form is not None:
            raise FileFormatError(f"{path}: cannot save layer {number}'s activation {activation.name!r}: it has no "
                                  "SymPy form and is not a registered layer-wise activation")
        return {"name": activation.name, "form": None}
    try:
        return {"name": activation.name, "form": to_text(activation.form, {"t": T})}
    except ExpressionError as exc:
        raise FileFormatError(f"{path}: cannot save layer {number}'s activation {activation.name!r}: {exc}") from None


# --- reading -----------------------------------------------------------------------------------


def load(path: str | os.PathLike[str]) -> Network:
    """Read a network that :func:`save` wrote; :class:`FileFormatError` for anything else.

    Reads with ``numpy.load(path, allow_pickle=False)``; expressions go through the safe
    reader of :mod:`symnet.io._expr`.  Every array's dtype, shape and finiteness is checked.
    """
    path = Path(path)
    head = _head(path)
    if not head.startswith(_ZIP_MAGIC):
        raise FileFormatError(f"{path}: not a symnet file ({_describe(head)}); symnet files are .npz archives "
                              "written by symnet.io.save")
    try:
        with open(path, "rb") as stream, np.load(stream, allow_pickle=False) as archive:
            names = set(archive.files)
            if _META not in names:
                raise FileFormatError(f"{path}: a .npz archive without symnet metadata (the {_META!r} array); "
                                      "it was not written by symnet.io.save")
            meta = _metadata(archive, path)
            return _network(meta, archive, names, path)
    except FileFormatError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        if "allow_pickle" in str(exc):
            raise UntrustedCodeError(f"{path}: holds a pickled Python object array; symnet never unpickles (a symnet "
                                     "file holds only numeric arrays)") from None
        raise FileFormatError(f"{path}: the archive is corrupt or truncated ({type(exc).__name__}: {exc})") from None


def _head(path: Path) -> bytes:
    with open(path, "rb") as stream:
        return stream.read(8)


def _describe(head: bytes) -> str:
    if not head:
        return "the file is empty"
    if head[:1] == b"\x80" or head[:1] in (b"(", b"}", b"]", b"c"):
        return "it looks like a Python pickle, which symnet never loads"
    if head.startswith(b"\x93NUMPY"):
        return "it is a single .npy array"
    if head.startswith(b"\x89HDF"):
        return "it is an HDF5 file"
    if head.lstrip().startswith((b"{", b"[")):
        return "it looks like JSON"
    return f"it starts with bytes {head!r}"


def _metadata(archive: Any, path: Path) -> dict[str, Any]:
    raw = archive[_META]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise FileFormatError(f"{path}: the {_META!r} array must be 1-D uint8 JSON bytes, not {raw.dtype} {raw.shape}")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileFormatError(f"{path}: the metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FileFormatError(f"{path}: the metadata does not describe a {FORMAT!r} file")
    version = meta.get("version")
    if not isinstance(version, int) or version < 1:
        raise FileFormatError(f"{path}: format version {version!r} is not a positive integer")
    if version > VERSION:
        raise FileFormatError(f"{path}: written with format version {version}, newer than this symnet reads "
                              f"({VERSION}); upgrade symnet")
    return meta


def _need(container: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, path: Path) -> Any:
    if not isinstance(container, dict) or key not in container:
        raise FileFormatError(f"{path}: the metadata lacks {where}{key}")
    value = container[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise FileFormatError(f"{path}: {where}{key} is {type(value).__name__}, not {getattr(kind, '__name__', kind)}")
    return value


def _symbols(meta: dict[str, Any], path: Path) -> dict[str, sympy.Symbol]:
    table = _need(meta, "symbols", dict, "", path)
    symbols = {}
    for name, assumptions in table.items():
        if not _IDENTIFIER.fullmatch(name):
            raise FileFormatError(f"{path}: symbol name {name!r} is not an identifier")
        if not isinstance(assumptions, dict) or not all(
                k in _ASSUMPTIONS and isinstance(v, bool) for k, v in assumptions.items()):
            raise FileFormatError(f"{path}: symbol {name!r} has assumptions {assumptions!r}; expected "
                                  "{assumption name: true/false}")
        try:
            symbols[name] = sympy.Symbol(name, **assumptions)
        except ValueError as exc:  # InconsistentAssumptions
            raise FileFormatError(f"{path}: symbol {name!r} has inconsistent assumptions ({exc})") from None
    return symbols


def _network(meta: dict[str, Any], archive: Any, names: set[str], path: Path) -> Network:
    symbols = _symbols(meta, path)
    inputs = _need(meta, "inputs", list, "", path)
    layer_entries = _need(meta, "layers", list, "", path)
    if not layer_entries:
        raise FileFormatError(f"{path}: the file lists no layers")
    used = {_META}
    layers = []
    fan_in_expected = len(inputs)
    for number, entry in enumerate(layer_entries, start=1):
        where = f"layers[{number - 1}]."
        fan_in = _need(entry, "fan_in", int, where, path)
        fan_out = _need(entry, "fan_out", int, where, path)
        if fan_in != fan_in_expected or fan_out < 1:
            before = f"{len(inputs)} inputs" if number == 1 else f"layer {number - 1} has {fan_in_expected} units"
            raise FileFormatError(f"{path}: layer {number} has fan_in={fan_in}, fan_out={fan_out} but {before}")
        fan_in_expected = fan_out
        weight = _matrix(_need(entry, "W", dict, where, path), (fan_in, fan_out), False, f"layer {number}: W",
                         archive, names, used, symbols, path)
        bias = _matrix(_need(entry, "b", dict, where, path), (1, fan_out), True, f"layer {number}: b",
                       archive, names, used, symbols, path)
        activation = _activation(_need(entry, "activation", dict, where, path), number, path)
        layers.append(Dense(weight, bias, activation))
    extra = sorted(names - used)
    if extra:
        raise FileFormatError(f"{path}: unexpected arrays {extra}; a symnet file holds only {sorted(used)}")
    try:
        net = Network(layers, inputs)
    except SymnetError as exc:
        raise FileFormatError(f"{path}: {exc}") from None
    unknown = {p.name for p in net.params} - set(symbols)
    if unknown:  # pragma: no cover - the expression reader only knows declared symbols
        raise FileFormatError(f"{path}: parameters {sorted(unknown)} are not declared")
    return net


def _matrix(spec: dict[str, Any], shape: tuple[int, int], is_bias: bool, where: str, archive: Any,
            names: set[str], used: set[str], symbols: dict[str, sympy.Symbol], path: Path) -> sympy.ImmutableMatrix:
    wanted = (shape[1],) if is_bias else shape
    if set(spec) == {"array"}:
        name = spec["array"]
        if not isinstance(name, str) or name not in names or name == _META:
            raise FileFormatError(f"{path}: {where} refers to array {name!r}, which the archive does not hold")
        if name in used:
            raise FileFormatError(f"{path}: {where} reuses array {name!r}")
        used.add(name)
        array = archive[name]
        if array.dtype != np.float64:
            raise FileFormatError(f"{path}: {where} ({name}) has dtype {array.dtype}; symnet stores float64")
        if array.shape != wanted:
            raise FileFormatError(f"{path}: {where} ({name}) has shape {array.shape} but the layer needs {wanted}")
        bad = np.argwhere(~np.isfinite(array))
        if bad.size:
            index = tuple(int(i) for i in bad[0])
            raise FileFormatError(f"{path}: {where}{list(index)} is {array[index]}; weights must be finite numbers")
        return sympy.ImmutableMatrix(shape[0], shape[1], [sympy.Float(float(v)) for v in array.reshape(-1)])
    if set(spec) == {"text"}:
        rows = [spec["text"]] if is_bias else spec["text"]
        if not (isinstance(rows, list) and len(rows) == shape[0]
                and all(isinstance(r, list) and len(r) == shape[1] for r in rows)):
            raise FileFormatError(f"{path}: {where} text must be {'a list of' if is_bias else 'nested lists'} "
                                  f"{wanted} expressions")
        entries = []
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                index = f"[{j}]" if is_bias else f"[{i}, {j}]"
                try:
                    value = parse(text, symbols)
                except ExpressionError as exc:
                    raise FileFormatError(f"{path}: {where}{index}: {exc}") from None
                if value.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
                    raise FileFormatError(f"{path}: {where}{index} is {value}; weights must be finite")
                entries.append(value)
        return sympy.ImmutableMatrix(shape[0], shape[1], entries)
    raise FileFormatError(f"{path}: {where} must be {{'array': name}} or {{'text': [...]}}, not {sorted(spec)}")


def _activation(entry: dict[str, Any], number: int, path: Path) -> Activation:
    where = f"layers[{number - 1}].activation."
    name = _need(entry, "name", str, where, path)
    form_text = entry.get("form")
    if form_text is None:
        try:
            registered = _activations.get(name)
        except SymnetError as exc:
            raise FileFormatError(f"{path}: layer {number}: {exc}") from None
        if registered.form is not None:
            raise FileFormatError(f"{path}: layer {number}: activation {name!r} is stored without its form")
        return registered
    if not isinstance(form_text, str):
        raise FileFormatError(f"{path}: {where}form is {type(form_text).__name__}, not text")
    try:
        form = parse(form_text, {"t": T})
    except ExpressionError as exc:
        raise FileFormatError(f"{path}: layer {number}'s activation: {exc}") from None
    try:
        registered = _activations.get(name)
        if registered.form == form:
            return registered
    except SymnetError:
        pass
    try:
        return _activations.from_form(form, name=name)
    except SymnetError as exc:  # pragma: no cover - from_form accepts any expression in t
        raise FileFormatError(f"{path}: layer {number}: {exc}") from None


# --- any file ----------------------------------------------------------------------------------


def detect(path: str | os.PathLike[str]) -> str:
    """What kind of network file ``path`` is: ``"symnet"``, ``"keras"`` or ``"torch"``, by its contents.

    Raises :class:`FileFormatError` for anything else.
    """
    path = Path(path)
    head = _head(path)
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile as exc:
            raise FileFormatError(f"{path}: a damaged zip archive ({exc})") from None
        if f"{_META}.npy" in names:
            return "symnet"
        if "config.json" in names:
            return "keras"
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "torch"
        raise FileFormatError(f"{path}: a zip archive that is neither a symnet file, a .keras model nor a "
                              f"PyTorch file (it holds {', '.join(names[:5]) or 'nothing'})")
    if path.suffix in (".pt", ".pth", ".bin") and head[:1] == b"\x80":
        return "torch"  # the legacy torch.save format; torch.load(weights_only=True) reads it safely
    raise FileFormatError(f"{path}: not a network file symnet reads ({_describe(head)}); give a symnet file, "
                          "a .keras model or a PyTorch state dict (.pt)")


def read_network(
    path: str | os.PathLike[str],
    *,
    activations: Mapping[int | str, Any] | None = None,
    trust: bool = False,
    layer_sizes: Sequence[int] | None = None,
    layer_activations: Sequence[Any] | str | None = None,
) -> Network:
    """A network from any file symnet reads, recognised by its contents.

    Args:
        path: a symnet file (:func:`save`), a ``.keras`` model (:func:`symnet.io.load_keras`)
            or a PyTorch state dict (:func:`symnet.io.load_torch`).
        activations: per-layer activation overrides ``{layer: expression}``, the layer by
            name or by 0-based index among the Dense (Linear) layers; for ``.keras`` files and
            state dicts.
        trust: let Keras load a ``.keras`` file's Python code (lambdas); see :func:`~symnet.io.load_keras`.
        layer_sizes: for a state dict, the expected ``[d, h1, ..., m]`` (checked against the weights).
        layer_activations: for a state dict, one activation per Linear layer (or one for all).
    """
    kind = detect(path)
    if kind == "symnet":
        if activations or layer_activations or layer_sizes or trust:
            raise FileFormatError(f"{path}: a symnet file stores its architecture and activations; "
                                  "activation, architecture and trust options do not apply")
        return load(path)
    if kind == "keras":
        from .keras import load_keras

        if layer_activations is not None or layer_sizes is not None:
            raise FileFormatError(f"{path}: a .keras file stores its architecture; to replace an activation "
                                  "give activations={LAYER: EXPR} (on the command line --activation LAYER=EXPR)")
        return load_keras(path, activations=activations, trust=trust)
    from .torch import load_torch

    if trust:
        raise FileFormatError(f"{path}: trust applies to .keras files; PyTorch files are always read "
                              "weights-only")
    return load_torch(path, layer_activations, layer_sizes=layer_sizes, overrides=activations)
