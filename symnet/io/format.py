"""symnet's file format: one ``.npz`` archive that round-trips every network symnet can build.

The archive (written by :func:`numpy.savez_compressed`, read member by member with
:mod:`zipfile` and :mod:`numpy.lib.format`, never unpickling) holds plain arrays only:

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

A chain of dense layers is written in version 1, above (the same bytes as before graphs
existed).  A graph network that is not a chain (:mod:`symnet.graph`) is written in version 2:
``layers`` gives way to its nodes in order and the output's name::

    {"format": "symnet-network", "version": 2, "symnet_version": "0.1.0",
     "inputs": ["x0", "x1"], "symbols": {...},
     "nodes": [{"name": "z1", "op": "dense", "inputs": ["x"],
                "params": {"W": {"shape": [2, 3], "array": "n0_W"},
                           "b": {"shape": [1, 3], "text": [["b1_0", "0", "1/3"]]}},
                "attrs": {"units": 3}},
               {"name": "a1", "op": "activation", "inputs": ["z1"], "params": {},
                "attrs": {"activation": {"name": "tanh", "form": "tanh(t)"}}}, ...],
     "output": "add1"}

``x`` is the input node.  Each matrix (a parameter, or a constant attribute such as a
Fourier matrix, a normalisation's scale and offset) declares its ``shape`` and is an array
``n{index}_{key}`` or text, as a chain's weights; constants hold numbers only.  The other
attributes are integers (``units``, slice bounds), a dense node's ``parametrization`` and
activations, as :data:`ATTRIBUTE_KINDS` lists.  On load every node is checked against the
op table (:data:`symnet.graph.OPS`: the op, its parameters and attributes), its name must be
an ASCII identifier used once, its inputs earlier nodes, every declared shape and count is
bounded (:data:`MAX_NODES` nodes; :data:`MAX_UNITS` units per node; :data:`MAX_WEIGHTS`
parameter and constant entries, and units, in all) before any array is read, and the graph
is built by :class:`symnet.graph.Graph`, whose shape checks run; anything wrong is a
:class:`FileFormatError` naming the file and the node.

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

**Activation names** are checked on load, so that a name can neither lie about the numbers
nor carry text that breaks out of anything it is later written into:

* a *registered* activation is stored under the registry's own spelling of its name,
  parameters as numbers (``"tanh"``, ``"leaky_relu(alpha=0.2)"``: an identifier, optionally
  followed by numeric parameters in parentheses); on load the name is looked up in the
  registry (:func:`symnet.activations.get`) and must give back exactly that name, and the
  stored form must equal the registered form.  ``name: tanh`` with ``form: t**2`` is
  refused, naming the file, the layer and both texts.  A user-registered activation loads
  where it is registered, under the same name with the same form;
* a *traced* activation (a lambda, a SymPy ``Lambda``, a Keras lambda) is stored under the
  name symnet gives it, ``"t -> "`` followed by its form as SymPy prints it
  (``"t -> t**2"``), and nothing else: on load the name must be exactly ``"t -> "`` plus the
  form read back from the file;
* any other name is refused, and :func:`save` refuses to write a network whose activation
  names :func:`load` would refuse.

**Numbers** in text entries and forms must be finite real float64 values: a part without
symbols is evaluated in float64, so ``1e300**1000``, ``exp(1000)``, ``sqrt(-1)`` or ``1e400``
are refused with the file, layer and entry named; float arrays may hold no NaN or infinity.

**Limits** (a file past one is refused before anything is allocated, with the limit named):
:data:`MAX_LAYERS` layers, :data:`MAX_UNITS` units per layer (and inputs),
:data:`MAX_WEIGHTS` weights and biases in all, :data:`MAX_METADATA_BYTES` bytes of metadata,
:data:`MAX_NAME_LENGTH` characters per input, symbol or activation name, and the expression
reader's own limits (:mod:`symnet.io._expr`).  Each ``.npy`` header is checked (version,
dtype, shape) against the metadata before its data is read.  The limits are read when a file
is loaded: a program that trusts its files and needs a bigger network assigns a larger value
(``symnet.io.format.MAX_WEIGHTS = 10**7``).

**Errors**: a file that cannot be opened raises the operating system's
:class:`FileNotFoundError`, :class:`PermissionError` or :class:`IsADirectoryError`; anything
wrong inside the archive (a bad zip, a damaged deflate stream, a truncated member, JSON
nested too deeply, a read error) is a :class:`FileFormatError` naming the file.  Text from
the file is quoted in messages through :func:`symnet.io.safe_text` and shortened.

>>> import os, tempfile, symnet
>>> net = symnet.Network.symbolic([1, 1, 1], ["square", "linear"])
>>> path = os.path.join(tempfile.mkdtemp(), "parabola.npz")
>>> save(net, path).name
'parabola.npz'
>>> load(path) == net
True

A residual graph is written in version 2 and reads back equal:

>>> from symnet.graph import input, dense, network
>>> x = input(1)
>>> residual = network(x, dense(x, 2, "tanh") + x)
>>> load(save(residual, path)) == residual
True
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import sympy

from .. import activations as _activations, float64
from ..activations import Activation, T
from ..errors import InputError, SymnetError
from ..network import Dense, Network
from ..weights import matrix as float_matrix
from ._expr import ExpressionError, parse, safe_text, to_text

__all__ = ["FileFormatError", "UnsupportedLayerError", "UntrustedCodeError", "FORMAT", "VERSION", "CHAIN_VERSION",
           "GRAPH_VERSION", "ATTRIBUTE_KINDS", "save", "load", "detect", "read_network", "MAX_LAYERS", "MAX_NODES",
           "MAX_UNITS", "MAX_WEIGHTS", "MAX_METADATA_BYTES", "MAX_NAME_LENGTH"]

FORMAT = "symnet-network"
#: the version chains are written in (unchanged since symnet 0.1: a chain's file is the same bytes)
CHAIN_VERSION = 1
#: the version graphs that are not chains are written in (``nodes`` instead of ``layers``)
GRAPH_VERSION = 2
#: the newest version this symnet reads
VERSION = GRAPH_VERSION
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
    network symnet builds can be saved -- numeric, symbolic or mixed, a chain (format version
    1) or a graph (version 2), any activation whose form uses the functions the expression
    reader knows; anything else raises :class:`FileFormatError` before a byte is written.
    ``load(save(net, path)) == net``.
    """
    if not isinstance(net, Network):
        raise InputError(f"save needs a symnet Network, not {type(net).__name__}")
    path = Path(path)
    for name in (s.name for s in net.inputs):
        if len(name) > MAX_NAME_LENGTH:
            raise FileFormatError(f"{_shown(path)}: cannot save input {safe_text(repr(name), 80)}: input names have "
                                  f"at most {MAX_NAME_LENGTH} characters")
    symbols = {p.name: p for p in net.params}
    declared = {name: _assumptions_of(symbol, path) for name, symbol in symbols.items()}
    if not net.is_chain:
        arrays, meta = _graph_meta(net, symbols, declared, path)
        return _write(arrays, meta, path)
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
                    raise FileFormatError(f"{_shown(path)}: cannot save layer {number}'s {key}: "
                                          f"{safe_text(exc, 300)}") from None
                entry[key] = {"text": text if key == "W" else text[0]}
        layers.append(entry)
    meta = {
        "format": FORMAT, "version": CHAIN_VERSION, "symnet_version": _symnet_version(),
        "inputs": [s.name for s in net.inputs],
        "symbols": declared,
        "layers": layers,
    }
    return _write(arrays, meta, path)


def _write(arrays: dict[str, np.ndarray], meta: dict[str, Any], path: Path) -> Path:
    """Write the archive whole or not at all (a temporary file renamed over ``path``)."""
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
    if type(symbol) is not sympy.Symbol or not _IDENTIFIER.fullmatch(symbol.name) or len(symbol.name) > MAX_NAME_LENGTH:
        raise FileFormatError(f"{_shown(path)}: cannot save parameter {safe_text(repr(symbol.name), 80)} "
                              f"({type(symbol).__name__}): only plain sympy.Symbol parameters named like ASCII "
                              f"identifiers of at most {MAX_NAME_LENGTH} characters can be saved")
    for short in ({"real": True}, {}):  # the usual cases, written short
        if sympy.Symbol(symbol.name, **short) == symbol:
            return short
    return {k: bool(v) for k, v in sorted(symbol.assumptions0.items()) if v is not None}


def _activation_entry(activation: Activation, number: int, path: Path, node: str | None = None) -> dict[str, Any]:
    if activation.form is None:
        entry = {"name": activation.name, "form": None}
    else:
        try:
            entry = {"name": activation.name, "form": to_text(activation.form, {"t": T})}
        except ExpressionError as exc:
            owner = f"layer {number}'s activation" if node is None else f"node {node!r}: activation"
            raise FileFormatError(f"{_shown(path)}: cannot save {owner} "
                                  f"{safe_text(repr(activation.name), 120)}: {exc}") from None
    try:  # never write what load refuses
        _activation(entry, number, path, build=False, node=node)
    except FileFormatError as exc:
        raise FileFormatError(f"cannot save, load would refuse the file: {exc}") from None
    return entry


# --- reading -----------------------------------------------------------------------------------

#: limits on what a file may declare, checked before anything is allocated or parsed
MAX_LAYERS = 1_000
MAX_NODES = 10_000
MAX_UNITS = 100_000
MAX_WEIGHTS = 1_000_000
MAX_METADATA_BYTES = 64 * 2**20
MAX_NAME_LENGTH = 200

_REGISTERED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\([^()]*\))?")
_TRACED_PREFIX = "t -> "
# corruption surfaces from zipfile, zlib, numpy's header reader and json as any of these
_CORRUPT = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError, KeyError, IndexError,
            NotImplementedError, RuntimeError, struct.error, OverflowError, MemoryError, SyntaxError, TypeError)
def load(path: str | os.PathLike[str]) -> Network:
    """Read a network that :func:`save` wrote; :class:`FileFormatError` for anything else.

    The archive is read member by member with :mod:`zipfile`: each ``.npy`` header is
    checked (dtype, shape, size against what the metadata declares) before its data is
    read, object arrays are refused unread, and expressions go through the safe reader of
    :mod:`symnet.io._expr`.  A file that cannot be opened raises the usual
    :class:`FileNotFoundError`, :class:`PermissionError` or :class:`IsADirectoryError`;
    everything wrong inside it is a :class:`FileFormatError` that names the file.
    """
    path = Path(path)
    head = _head(path)
    if not head.startswith(_ZIP_MAGIC):
        raise FileFormatError(f"{_shown(path)}: not a symnet file ({_describe(head)}); symnet files are .npz "
                              "archives written by symnet.io.save")
    try:
        with open(path, "rb") as stream, zipfile.ZipFile(stream) as archive:
            _refuse_other_formats(archive, path)
            members = _members(archive, path)
            if _META not in members:
                raise FileFormatError(f"{_shown(path)}: a .npz archive without symnet metadata (the {_META!r} "
                                      "array); it was not written by symnet.io.save")
            meta = _metadata(_Arrays(archive, members, path), path)
            return _network(meta, _Arrays(archive, members, path), path)
    except FileFormatError:
        raise
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # opening failed: the OS's own message names the file
    except OSError as exc:
        raise FileFormatError(f"{_shown(path)}: reading the archive failed ({_kind(exc)}: "
                              f"{safe_text(exc, 200)}); the file is damaged or the disk could not read it") from None
    except _CORRUPT as exc:
        raise FileFormatError(f"{_shown(path)}: the archive is corrupt or truncated ({_kind(exc)}: "
                              f"{safe_text(exc, 200)})") from None


def _refuse_other_formats(archive: zipfile.ZipFile, path: Path) -> None:
    """A Keras or PyTorch archive given to :func:`load`: say what it is and what reads it."""
    names = archive.namelist()
    if f"{_META}.npy" in names:
        return
    if "config.json" in names:
        raise FileFormatError(f"{_shown(path)}: a Keras .keras model, not a symnet file; read it with "
                              "symnet.load(path) or symnet.io.load_keras(path), which never run its code")
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        raise FileFormatError(f"{_shown(path)}: a PyTorch file, not a symnet file; read a state dict with "
                              "symnet.load(path, layer_activations=[...]) or symnet.io.load_torch(path, [...])")


def _kind(exc: BaseException) -> str:
    """``zlib.error``, ``zipfile.BadZipFile``, ``ValueError``: an exception's type as a reader knows it."""
    module = type(exc).__module__
    return type(exc).__name__ if module == "builtins" else f"{module}.{type(exc).__name__}"


def _shown(path: Path) -> str:
    return safe_text(path)


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


def _members(archive: zipfile.ZipFile, path: Path) -> dict[str, zipfile.ZipInfo]:
    """The archive's arrays by name; anything that is not one ``NAME.npy`` per array is refused."""
    infos = archive.infolist()
    if len(infos) > max(2 * MAX_LAYERS, 3 * MAX_NODES) + 1:  # a layer has 2 arrays, a graph node at most 3
        most = max(2 * MAX_LAYERS, 3 * MAX_NODES) + 1
        raise FileFormatError(f"{_shown(path)}: the archive holds {len(infos)} members; a symnet file holds at most "
                              f"{most} (symnet.io.format.MAX_LAYERS = {MAX_LAYERS}, MAX_NODES = {MAX_NODES})")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename[:-4] if info.filename.endswith(".npy") else None
        if not name or not _IDENTIFIER.fullmatch(name):
            raise FileFormatError(f"{_shown(path)}: unexpected member {info.filename!r} in the archive; a symnet file "
                                  "holds only NAME.npy arrays")
        if name in members:
            raise FileFormatError(f"{_shown(path)}: the archive holds {info.filename!r} twice")
        members[name] = info
    return members


class _Arrays:
    """Reads one array of the archive at a time, checking its ``.npy`` header before its data."""

    def __init__(self, archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], path: Path) -> None:
        self.archive, self.members, self.path = archive, members, path

    @property
    def names(self) -> set[str]:
        return set(self.members)

    def read(self, name: str, dtype: np.dtype[Any], shape: tuple[int, ...] | None, where: str,
             needs: str = "the layer needs") -> np.ndarray:
        """Array ``name``; ``shape`` None: any 1-D array of up to :data:`MAX_METADATA_BYTES` bytes."""
        with self.archive.open(self.members[name]) as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(stream)
            else:
                raise FileFormatError(f"{_shown(self.path)}: {where} ({name}) is a .npy of version {version}; "
                                      "symnet writes versions 1.0 and 2.0")
            found_shape, fortran, found = header
            if found.hasobject:
                raise UntrustedCodeError(f"{_shown(self.path)}: array {name!r} holds a pickled Python object "
                                         "array; symnet never unpickles (a symnet file holds only numeric arrays)")
            if found != dtype:
                raise FileFormatError(f"{_shown(self.path)}: {where} ({name}) has dtype {found}; symnet stores "
                                      f"{dtype}")
            if shape is None:
                if len(found_shape) != 1 or found_shape[0] > MAX_METADATA_BYTES:
                    raise FileFormatError(f"{_shown(self.path)}: {where} ({name}) must be 1-D {dtype} of at most "
                                          f"{MAX_METADATA_BYTES} bytes (symnet.io.format.MAX_METADATA_BYTES), not "
                                          f"{found_shape}")
            elif found_shape != shape:
                raise FileFormatError(f"{_shown(self.path)}: {where} ({name}) has shape {found_shape} but {needs} "
                                      f"{shape}")
            count = math.prod(found_shape)
            data = stream.read(count * found.itemsize)
            if len(data) != count * found.itemsize:
                raise FileFormatError(f"{_shown(self.path)}: {where} ({name}) is truncated: {len(data)} of "
                                      f"{count * found.itemsize} bytes")
            if stream.read(1):  # reading to the end also checks the member's CRC-32
                raise FileFormatError(f"{_shown(self.path)}: {where} ({name}) has bytes after its "
                                      f"{count * found.itemsize} bytes of data")
        return np.frombuffer(data, dtype=found).reshape(found_shape, order="F" if fortran else "C")


def _metadata(arrays: _Arrays, path: Path) -> dict[str, Any]:
    raw = arrays.read(_META, np.dtype(np.uint8), None, "the metadata")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        problem = "nested too deeply" if isinstance(exc, RecursionError) else safe_text(exc, 200)
        raise FileFormatError(f"{_shown(path)}: the metadata is not valid JSON ({problem})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FileFormatError(f"{_shown(path)}: the metadata does not describe a {FORMAT!r} file")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FileFormatError(f"{_shown(path)}: format version {safe_text(repr(version), 40)} is not a positive "
                              "integer")
    if version > VERSION:
        raise FileFormatError(f"{_shown(path)}: written with format version {version}, newer than this symnet reads "
                              f"({VERSION}); upgrade symnet")
    _known_keys(meta, _META_KEYS if version == CHAIN_VERSION else _GRAPH_META_KEYS, "the metadata", path, version)
    return meta


_META_KEYS = frozenset({"format", "version", "symnet_version", "inputs", "symbols", "layers"})
_GRAPH_META_KEYS = frozenset({"format", "version", "symnet_version", "inputs", "symbols", "nodes", "output"})
_LAYER_KEYS = frozenset({"fan_in", "fan_out", "activation", "W", "b"})
_ACTIVATION_KEYS = frozenset({"name", "form"})


def _known_keys(entry: dict[str, Any], known: frozenset[str], where: str, path: Path,
                version: int = CHAIN_VERSION) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        raise FileFormatError(f"{_shown(path)}: {where} has unknown keys {safe_text(unknown, 120)}; format version "
                              f"{version} knows {', '.join(sorted(known))}")


def _need(container: Any, key: str, kind: type | tuple[type, ...], where: str, path: Path) -> Any:
    if not isinstance(container, dict):
        raise FileFormatError(f"{_shown(path)}: {where.rstrip('.') or 'the metadata'} is "
                              f"{type(container).__name__}, not an object")
    if key not in container:
        raise FileFormatError(f"{_shown(path)}: the metadata lacks {where}{key}")
    value = container[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise FileFormatError(f"{_shown(path)}: {where}{key} is {type(value).__name__}, not "
                              f"{getattr(kind, '__name__', kind)}")
    return value


def _symbols(meta: dict[str, Any], path: Path) -> dict[str, sympy.Symbol]:
    table = _need(meta, "symbols", dict, "", path)
    if len(table) > MAX_WEIGHTS:
        raise FileFormatError(f"{_shown(path)}: the file declares {len(table)} symbols, more than {MAX_WEIGHTS} "
                              "(symnet.io.format.MAX_WEIGHTS)")
    symbols = {}
    for name, assumptions in table.items():
        if len(name) > MAX_NAME_LENGTH or not _IDENTIFIER.fullmatch(name):
            raise FileFormatError(f"{_shown(path)}: symbol name {safe_text(repr(name), 80)} is not an identifier "
                                  f"of at most {MAX_NAME_LENGTH} ASCII characters")
        if not isinstance(assumptions, dict) or not all(
                k in _ASSUMPTIONS and isinstance(v, bool) for k, v in assumptions.items()):
            raise FileFormatError(f"{_shown(path)}: symbol {name!r} has assumptions {safe_text(repr(assumptions), 80)}"
                                  "; expected {assumption name: true/false}")
        try:
            symbols[name] = sympy.Symbol(name, **assumptions)
        except ValueError as exc:  # InconsistentAssumptions
            raise FileFormatError(f"{_shown(path)}: symbol {name!r} has inconsistent assumptions ({exc})") from None
    return symbols


def _inputs(meta: dict[str, Any], path: Path) -> list[str]:
    inputs = _need(meta, "inputs", list, "", path)
    if len(inputs) > MAX_UNITS:
        raise FileFormatError(f"{_shown(path)}: the file declares {len(inputs)} inputs, more than {MAX_UNITS} "
                              "(symnet.io.format.MAX_UNITS)")
    for i, name in enumerate(inputs):
        if not isinstance(name, str) or not name.isidentifier() or len(name) > MAX_NAME_LENGTH:
            raise FileFormatError(f"{_shown(path)}: inputs[{i}] is {safe_text(repr(name), 80)}; input names are "
                                  f"identifiers of at most {MAX_NAME_LENGTH} characters")
    return inputs


def _sizes(entries: list[Any], n_inputs: int, path: Path) -> list[tuple[int, int]]:
    """Every layer's (fan_in, fan_out), checked against each other and the limits before anything is read."""
    if not entries:
        raise FileFormatError(f"{_shown(path)}: the file lists no layers")
    if len(entries) > MAX_LAYERS:
        raise FileFormatError(f"{_shown(path)}: the file lists {len(entries)} layers, more than {MAX_LAYERS} "
                              "(symnet.io.format.MAX_LAYERS)")
    sizes, total, fan_in_expected = [], 0, n_inputs
    for number, entry in enumerate(entries, start=1):
        where = f"layers[{number - 1}]."
        fan_in = _need(entry, "fan_in", int, where, path)
        fan_out = _need(entry, "fan_out", int, where, path)
        for key in ("activation", "W", "b"):
            _need(entry, key, dict, where, path)
        _known_keys(entry, _LAYER_KEYS, f"layers[{number - 1}]", path)
        _known_keys(entry["activation"], _ACTIVATION_KEYS, f"layers[{number - 1}].activation", path)
        if fan_in != fan_in_expected or fan_out < 1:
            before = f"{n_inputs} inputs" if number == 1 else f"layer {number - 1} has {fan_in_expected} units"
            raise FileFormatError(f"{_shown(path)}: layer {number} has fan_in={fan_in}, fan_out={fan_out} but "
                                  f"{before}")
        if fan_out > MAX_UNITS:
            raise FileFormatError(f"{_shown(path)}: layer {number} has {fan_out} units, more than {MAX_UNITS} "
                                  "(symnet.io.format.MAX_UNITS)")
        total += (fan_in + 1) * fan_out
        if total > MAX_WEIGHTS:
            raise FileFormatError(f"{_shown(path)}: the layers up to layer {number} have {total} weights and biases,"
                                  f" more than {MAX_WEIGHTS} (symnet.io.format.MAX_WEIGHTS)")
        sizes.append((fan_in, fan_out))
        fan_in_expected = fan_out
    return sizes


def _network(meta: dict[str, Any], arrays: _Arrays, path: Path) -> Network:
    if meta["version"] == GRAPH_VERSION:
        return _graph_network(meta, arrays, path)
    symbols = _symbols(meta, path)
    inputs = _inputs(meta, path)
    layer_entries = _need(meta, "layers", list, "", path)
    sizes = _sizes(layer_entries, len(inputs), path)
    extra = sorted(arrays.names - {_META} - _referenced(layer_entries))
    if extra:  # before reading any array
        raise FileFormatError(f"{_shown(path)}: unexpected arrays {safe_text(extra, 200)}; a symnet file holds only "
                              "the arrays its layers name")
    used = {_META}
    layers = []
    for number, (entry, (fan_in, fan_out)) in enumerate(zip(layer_entries, sizes), start=1):
        where = f"layers[{number - 1}]."
        activation = _activation(_need(entry, "activation", dict, where, path), number, path)
        weight = _matrix(_need(entry, "W", dict, where, path), (fan_in, fan_out), False, f"layer {number}: W",
                         arrays, used, symbols, path)
        bias = _matrix(_need(entry, "b", dict, where, path), (1, fan_out), True, f"layer {number}: b",
                       arrays, used, symbols, path)
        layers.append(Dense(weight, bias, activation))
    try:
        net = Network(layers, inputs)
    except SymnetError as exc:
        raise FileFormatError(f"{_shown(path)}: {exc}") from None
    unknown = {p.name for p in net.params} - set(symbols)
    if unknown:  # pragma: no cover - the expression reader only knows declared symbols
        raise FileFormatError(f"{_shown(path)}: parameters {sorted(unknown)} are not declared")
    return net


def _referenced(entries: list[Any]) -> set[str]:
    return {spec["array"] for entry in entries for key in ("W", "b")
            if isinstance(spec := entry.get(key), dict) and isinstance(spec.get("array"), str)}


def _matrix(spec: dict[str, Any], shape: tuple[int, int], is_bias: bool, where: str, arrays: _Arrays,
            used: set[str], symbols: dict[str, sympy.Symbol], path: Path,
            needs: str = "the layer needs") -> sympy.ImmutableMatrix:
    wanted = (shape[1],) if is_bias else shape
    if set(spec) == {"array"}:
        name = spec["array"]
        if not isinstance(name, str) or name not in arrays.names or name == _META:
            raise FileFormatError(f"{_shown(path)}: {where} refers to array {safe_text(repr(name), 80)}, which the "
                                  "archive does not hold")
        if name in used:
            raise FileFormatError(f"{_shown(path)}: {where} reuses array {name!r}")
        used.add(name)
        array = arrays.read(name, np.dtype(np.float64), wanted, where, needs)
        bad = np.argwhere(~np.isfinite(array))
        if bad.size:
            index = tuple(int(i) for i in bad[0])
            raise FileFormatError(f"{_shown(path)}: {where}{list(index)} is {array[index]}; weights must be finite "
                                  "numbers")
        return float_matrix(array.reshape(shape), shape, where)
    if set(spec) == {"text"}:
        rows = [spec["text"]] if is_bias else spec["text"]
        if not (isinstance(rows, list) and len(rows) == shape[0]
                and all(isinstance(r, list) and len(r) == shape[1] for r in rows)):
            raise FileFormatError(f"{_shown(path)}: {where} text must be {'a list of' if is_bias else 'nested lists'} "
                                  f"{wanted} expressions")
        entries = []
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                index = f"[{j}]" if is_bias else f"[{i}, {j}]"
                try:
                    value = parse(text, symbols)
                except ExpressionError as exc:
                    raise FileFormatError(f"{_shown(path)}: {where}{index}: {exc}") from None
                problem = _number_problem(value)
                if problem:
                    raise FileFormatError(f"{_shown(path)}: {where}{index} is {safe_text(text, 80)!r}: {problem}; "
                                          "weights must be finite real float64 numbers (or expressions of the "
                                          "declared symbols)")
                entries.append(value)
        return sympy.ImmutableMatrix(shape[0], shape[1], entries)
    raise FileFormatError(f"{_shown(path)}: {where} must be {{'array': name}} or {{'text': [...]}}, not "
                          f"{safe_text(sorted(spec), 80)}")


def _number_problem(expr: sympy.Expr) -> str | None:
    """Why a part of ``expr`` without symbols is not a finite real float64 number, or None.

    Each numeric part is evaluated in float64 (not with SymPy's arbitrary precision, which a
    hostile ``sin(exp(exp(exp(4))))`` keeps busy for ever): a part that overflows, is
    complex or is not finite is named.
    """
    if not expr.free_symbols:
        try:
            float64.value(expr)
        except (OverflowError, ValueError, TypeError, ZeroDivisionError) as exc:
            return f"{safe_text(expr, 80)} is not a finite real float64 number ({exc})"
        return None
    for arg in expr.args:
        problem = _number_problem(arg)
        if problem:
            return problem
    return None


def _activation(entry: dict[str, Any], number: int, path: Path, build: bool = True,
                node: str | None = None) -> Activation | None:
    """The activation a file names, checked as the module docstring says (``build=False``: only checked).

    ``number`` counts layers from 1 in a chain's file; in a graph's, ``node`` names the node and
    ``number`` is its index in ``nodes``.
    """
    where = f"layers[{number - 1}].activation." if node is None else f"nodes[{number}].attrs.activation."
    owner = f"layer {number}" if node is None else f"node {node!r}"
    name = _need(entry, "name", str, where, path)
    form_text = entry.get("form")
    if form_text is not None and not isinstance(form_text, str):
        raise FileFormatError(f"{_shown(path)}: {where}form is {type(form_text).__name__}, not text")
    layer = f"{_shown(path)}: {owner}'s activation" if node is None else f"{_shown(path)}: {owner}: activation"
    shown = safe_text(repr(name), 120)
    if name.startswith(_TRACED_PREFIX):  # a traced or user-built form: its name is the form, as symnet writes it
        if form_text is None:
            raise FileFormatError(f"{layer} {shown} is stored without its form")
        form = _form(form_text, layer)
        expected = f"{_TRACED_PREFIX}{form}"
        if name != expected:
            raise FileFormatError(f"{layer} is named {shown} but its form {safe_text(repr(form_text), 120)} gives "
                                  f"the name {safe_text(repr(expected), 120)}; a traced activation's name must be "
                                  "'t -> ' and its form exactly as symnet writes it")
        if not build:
            return None
        try:
            return _activations.from_form(form, name=name)
        except SymnetError as exc:
            raise FileFormatError(f"{layer}: {safe_text(exc, 300)}") from None
    if len(name) > MAX_NAME_LENGTH or not _REGISTERED_NAME.fullmatch(name):
        raise FileFormatError(f"{layer} is named {shown}: neither a registered activation (a name such as 'tanh' "
                              "or 'leaky_relu(alpha=0.2)') nor a traced form ('t -> t**2')")
    if name.partition("(")[0] not in _activations.names():
        hint = "" if form_text is None else (f" (the file gives its form {safe_text(repr(form_text), 120)}: register "
                                             "the activation under this name, with this form, before loading)")
        raise FileFormatError(f"{layer} is {shown}, an unknown activation{hint}; registered activations: "
                              f"{', '.join(_activations.names())}")
    try:
        registered = _activations.get(name)
    except SymnetError as exc:
        raise FileFormatError(f"{layer}: {safe_text(exc, 300)}") from None
    if registered.name != name:
        raise FileFormatError(f"{layer} is named {shown}, but this activation's name is {registered.name!r}: "
                              "files hold the registry's own spelling")
    if form_text is None:
        if registered.form is not None:
            raise FileFormatError(f"{_shown(path)}: {owner}: activation {name!r} is stored without its form")
        return registered
    if registered.form is None:
        raise FileFormatError(f"{layer} {name!r} acts on a whole layer and has no form, but the file gives the "
                              f"form {safe_text(repr(form_text), 120)}")
    form = _form(form_text, layer)
    if form != registered.form and form not in registered.legacy_forms:
        raise FileFormatError(f"{layer} {name!r} is stored with the form {safe_text(repr(form_text), 120)}, but the "
                              f"registered {name!r} is {safe_text(repr(str(registered.form)), 120)}: the file's name "
                              "and form disagree, so symnet will not guess which one is meant")
    return registered


def _form(text: str, layer: str) -> sympy.Expr:
    try:
        form = parse(text, {"t": T})
    except ExpressionError as exc:
        raise FileFormatError(f"{layer}: {exc}") from None
    problem = _number_problem(form)
    if problem:
        raise FileFormatError(f"{layer}: its form has a number that is not a finite real float64: {problem}")
    return form


# --- graphs: format version 2 -------------------------------------------------------------------

#: How each attribute an op of :data:`symnet.graph.OPS` may have is written: ``count`` a JSON
#: integer from 0 to :data:`MAX_UNITS`, ``parametrization`` the name of a dense node's weight
#: parametrisation, ``constant`` a matrix of numbers (``{"shape", "array" | "text"}``, no
#: symbols), ``activation`` an activation entry as in a chain's layers.  An attribute not in
#: this table is refused by :func:`save` and :func:`load` alike.
ATTRIBUTE_KINDS: dict[str, str] = {
    "units": "count", "start": "count", "stop": "count", "parametrization": "parametrization",
    "matrix": "constant", "scale": "constant", "offset": "constant", "activation": "activation",
}
_NODE_KEYS = frozenset({"name", "op", "inputs", "params", "attrs"})
_MATRIX_KEYS = frozenset({"shape", "array", "text"})


def _graph_meta(net: Network, symbols: dict[str, sympy.Symbol], declared: dict[str, Any],
                path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and metadata of a graph network (format version 2): its nodes in order."""
    graph = net.graph
    for symbol in graph.inputs:
        if type(symbol) is not sympy.Symbol or symbol != sympy.Symbol(symbol.name, real=True) \
                or not _IDENTIFIER.fullmatch(symbol.name):
            raise FileFormatError(f"{_shown(path)}: cannot save input {safe_text(repr(symbol.name), 80)}: a graph's "
                                  "inputs are saved as real symbols named like ASCII identifiers "
                                  "(sympy.Symbol(name, real=True))")
    arrays: dict[str, np.ndarray] = {}
    nodes = []
    for index, node in enumerate(graph.nodes[1:]):
        params = {key: _matrix_entry(matrix, f"n{index}_{key}", symbols, arrays, f"node {node.name!r}: {key}", path)
                  for key, matrix in node.params.items()}
        attrs = {key: _attribute_entry(node, index, key, value, arrays, path) for key, value in node.attrs.items()}
        nodes.append({"name": node.name, "op": node.op, "inputs": list(node.inputs), "params": params,
                      "attrs": attrs})
    if len(nodes) > MAX_NODES:
        raise FileFormatError(f"{_shown(path)}: cannot save a graph of {len(nodes)} nodes: load reads at most "
                              f"{MAX_NODES} (symnet.io.format.MAX_NODES)")
    meta = {
        "format": FORMAT, "version": GRAPH_VERSION, "symnet_version": _symnet_version(),
        "inputs": [s.name for s in graph.inputs],
        "symbols": declared,
        "nodes": nodes,
        "output": graph.output,
    }
    return arrays, meta


def _matrix_entry(matrix: sympy.ImmutableMatrix, name: str, symbols: Mapping[str, sympy.Symbol],
                  arrays: dict[str, np.ndarray], what: str, path: Path) -> dict[str, Any]:
    """``{"shape": [r, c], "array": name}`` when every entry is a float64 number, else one text per entry."""
    shape = [int(matrix.shape[0]), int(matrix.shape[1])]
    if all(v.is_Float and getattr(v, "_prec", 0) == 53 for v in matrix):
        values = np.array([float(v) for v in matrix], dtype=np.float64).reshape(shape)
        if not np.isfinite(values).all():
            raise FileFormatError(f"{_shown(path)}: cannot save {what}: it holds a number that is not finite")
        arrays[name] = values
        return {"shape": shape, "array": name}
    try:
        text = [[to_text(v, symbols) for v in row] for row in matrix.tolist()]
    except ExpressionError as exc:
        raise FileFormatError(f"{_shown(path)}: cannot save {what}: {safe_text(exc, 300)}") from None
    return {"shape": shape, "text": text}


def _attribute_entry(node: Any, index: int, key: str, value: Any, arrays: dict[str, np.ndarray], path: Path) -> Any:
    from ..graph.ops import PARAMETRIZATIONS

    what = f"node {node.name!r}: attribute {key!r}"
    kind = ATTRIBUTE_KINDS.get(key)
    if kind == "count" and isinstance(value, (int, np.integer)) and not isinstance(value, bool) \
            and 0 <= value <= MAX_UNITS:
        return int(value)
    if kind == "parametrization" and value in PARAMETRIZATIONS:
        return str(value)
    if kind == "constant" and isinstance(value, sympy.MatrixBase):
        return _matrix_entry(value, f"n{index}_{key}", {}, arrays, what, path)
    if kind == "activation" and isinstance(value, Activation):
        return _activation_entry(value, index, path, node=node.name)
    wanted = {"count": f"an integer from 0 to {MAX_UNITS}", "parametrization": f"one of {PARAMETRIZATIONS}",
              "constant": "a SymPy matrix of numbers", "activation": "a symnet Activation"}
    need = wanted.get(kind or "", f"one of the attributes files hold ({', '.join(ATTRIBUTE_KINDS)})")
    raise FileFormatError(f"{_shown(path)}: cannot save {what} = {safe_text(repr(value), 80)}: it must be {need}")


def _graph_network(meta: dict[str, Any], arrays: _Arrays, path: Path) -> Network:
    """A graph network from format version 2 metadata: every node checked against the op table,
    every size bounded before an array is read, then built by :class:`symnet.graph.Graph`."""
    from ..graph import Graph, Node

    symbols = _symbols(meta, path)
    inputs = _inputs(meta, path)
    if not inputs:
        raise FileFormatError(f"{_shown(path)}: the file lists no inputs")
    entries = _need(meta, "nodes", list, "", path)
    output = _need(meta, "output", str, "", path)
    if not entries:
        raise FileFormatError(f"{_shown(path)}: the file lists no nodes")
    if len(entries) > MAX_NODES:
        raise FileFormatError(f"{_shown(path)}: the file lists {len(entries)} nodes, more than {MAX_NODES} "
                              "(symnet.io.format.MAX_NODES)")
    # first pass: names, ops, inputs and declared shapes, before any array is read
    names: set[str] = {"x"}
    total = 0
    shapes: list[dict[str, tuple[int, int]]] = []
    for index, entry in enumerate(entries):
        name, op = _node_head(entry, index, names, path)
        where = f"node {name!r} ({op.name})"
        _known_keys(entry, _NODE_KEYS, f"nodes[{index}]", path, GRAPH_VERSION)
        node_inputs = _need(entry, "inputs", list, f"nodes[{index}].", path)
        if len(node_inputs) > MAX_UNITS:
            raise FileFormatError(f"{_shown(path)}: {where} has {len(node_inputs)} inputs, more than {MAX_UNITS} "
                                  "(symnet.io.format.MAX_UNITS)")
        for k, name_in in enumerate(node_inputs):
            if not isinstance(name_in, str) or name_in not in names:
                raise FileFormatError(f"{_shown(path)}: {where}: input {safe_text(repr(name_in), 80)} is not an "
                                      "earlier node (nodes are listed after the nodes they read)")
        params = _need(entry, "params", dict, f"nodes[{index}].", path)
        attrs = _need(entry, "attrs", dict, f"nodes[{index}].", path)
        allowed = _parameter_names(op)
        declared: dict[str, tuple[int, int]] = {}
        for key, spec in params.items():
            if key not in allowed:
                raise FileFormatError(f"{_shown(path)}: {where} has parameter {safe_text(repr(key), 40)}; op "
                                      f"{op.name!r} takes {', '.join(allowed) or 'none'}")
            declared[key] = _declared_shape(spec, f"{where}: {key}", path)
        for key, value in attrs.items():
            if key not in op.attrs or key not in ATTRIBUTE_KINDS:
                raise FileFormatError(f"{_shown(path)}: {where} has attribute {safe_text(repr(key), 40)}; op "
                                      f"{op.name!r} takes {', '.join(op.attrs) or 'none'}")
            if ATTRIBUTE_KINDS[key] == "constant":
                declared[key] = _declared_shape(value, f"{where}: {key}", path)
        for rows, cols in declared.values():
            total += rows * cols
        if total > MAX_WEIGHTS:
            raise FileFormatError(f"{_shown(path)}: the nodes up to {where} have {total} parameters and constants, "
                                  f"more than {MAX_WEIGHTS} (symnet.io.format.MAX_WEIGHTS)")
        shapes.append(declared)
        names.add(name)
    referenced = {spec["array"] for entry in entries for group in ("params", "attrs")
                  for spec in entry[group].values() if isinstance(spec, dict) and isinstance(spec.get("array"), str)}
    extra = sorted(arrays.names - {_META} - referenced)
    if extra:  # before reading any array
        raise FileFormatError(f"{_shown(path)}: unexpected arrays {safe_text(extra, 200)}; a symnet file holds only "
                              "the arrays its nodes name")
    # second pass: read the arrays and expressions, build the nodes
    used = {_META}
    nodes = []
    for index, (entry, declared) in enumerate(zip(entries, shapes)):
        name, op_name = entry["name"], entry["op"]
        where = f"node {name!r}: "
        params = {key: _declared_matrix(spec, declared[key], f"{where}{key}", arrays, used, symbols, path)
                  for key, spec in entry["params"].items()}
        attrs = {key: _attribute(value, key, declared.get(key), index, name, arrays, used, path)
                 for key, value in entry["attrs"].items()}
        nodes.append(Node(name, op_name, tuple(entry["inputs"]), params, attrs, 0))
    try:
        graph = Graph(tuple(sympy.Symbol(n, real=True) for n in inputs), nodes, output)
    except SymnetError as exc:  # the graph's own checks name the node
        raise FileFormatError(f"{_shown(path)}: {safe_text(exc, 400)}") from None
    units = 0
    for node in graph.nodes:
        units += node.width
        if node.width > MAX_UNITS or units > MAX_WEIGHTS:
            raise FileFormatError(f"{_shown(path)}: node {node.name!r} has {node.width} units (the nodes up to it "
                                  f"{units}); a node has at most {MAX_UNITS} (symnet.io.format.MAX_UNITS), all "
                                  f"nodes together at most {MAX_WEIGHTS} (symnet.io.format.MAX_WEIGHTS)")
    try:
        return Network.from_graph(graph)
    except SymnetError as exc:
        raise FileFormatError(f"{_shown(path)}: {safe_text(exc, 400)}") from None


def _node_head(entry: Any, index: int, names: set[str], path: Path) -> tuple[str, Any]:
    """A node entry's name (an ASCII identifier not used before) and its op from the op table."""
    from ..graph import OPS
    from ..graph.ir import check_name

    name = _need(entry, "name", str, f"nodes[{index}].", path)
    try:
        check_name(name)
    except SymnetError:
        raise FileFormatError(f"{_shown(path)}: nodes[{index}].name is {safe_text(repr(name), 80)}; node names are "
                              "ASCII identifiers of at most 64 characters") from None
    if name in names:
        raise FileFormatError(f"{_shown(path)}: nodes[{index}] is named {name!r}, a name used before "
                              f"({'the input node' if name == 'x' else 'an earlier node'}); node names are unique")
    op_name = _need(entry, "op", str, f"nodes[{index}].", path)
    op = OPS.get(op_name)
    if op is None:
        raise FileFormatError(f"{_shown(path)}: node {name!r} has op {safe_text(repr(op_name), 80)}, which this "
                              f"symnet does not know; the ops are {', '.join(sorted(OPS))}")
    return name, op


def _parameter_names(op: Any) -> tuple[str, ...]:
    """Every parameter name a node of ``op`` may have (a dense node's, under each parametrisation)."""
    from ..graph import Node
    from ..graph.ops import PARAMETRIZATIONS

    names = list(op.params)
    if "parametrization" in op.attrs:
        for kind in PARAMETRIZATIONS:
            probe = Node("probe", op.name, ("x",), {}, {"units": 1, "parametrization": kind}, 1, (1,))
            names += [n for n in op.param_shapes((1,), 1, probe) if n not in names]
    return tuple(names)


def _declared_shape(spec: Any, where: str, path: Path) -> tuple[int, int]:
    """The ``shape`` a matrix entry declares, checked against the limits before anything is read."""
    if not isinstance(spec, dict):
        raise FileFormatError(f"{_shown(path)}: {where} is {type(spec).__name__}, not an object")
    _known_keys(spec, _MATRIX_KEYS, where, path, GRAPH_VERSION)
    shape = spec.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_UNITS for n in shape)):
        raise FileFormatError(f"{_shown(path)}: {where}: shape {safe_text(repr(shape), 80)} must be [rows, columns], "
                              f"each from 1 to {MAX_UNITS} (symnet.io.format.MAX_UNITS)")
    return shape[0], shape[1]


def _declared_matrix(spec: dict[str, Any], shape: tuple[int, int], where: str, arrays: _Arrays, used: set[str],
                     symbols: dict[str, sympy.Symbol], path: Path) -> sympy.ImmutableMatrix:
    body = {k: v for k, v in spec.items() if k != "shape"}
    return _matrix(body, shape, False, where, arrays, used, symbols, path, "the metadata declares")


def _attribute(value: Any, key: str, shape: tuple[int, int] | None, index: int, node: str, arrays: _Arrays,
               used: set[str], path: Path) -> Any:
    """One attribute, read by its kind (:data:`ATTRIBUTE_KINDS`)."""
    from ..graph.ops import PARAMETRIZATIONS

    kind = ATTRIBUTE_KINDS[key]
    where = f"node {node!r}: {key}"
    if kind == "constant":
        assert shape is not None
        return _declared_matrix(value, shape, where, arrays, used, {}, path)
    if kind == "activation":
        if not isinstance(value, dict):
            raise FileFormatError(f"{_shown(path)}: {where} is {type(value).__name__}, not an object")
        _known_keys(value, _ACTIVATION_KEYS, f"nodes[{index}].attrs.activation", path, GRAPH_VERSION)
        return _activation(value, index, path, node=node)
    if kind == "parametrization":
        if value not in PARAMETRIZATIONS or not isinstance(value, str):
            raise FileFormatError(f"{_shown(path)}: {where} is {safe_text(repr(value), 80)}, not one of "
                                  f"{', '.join(PARAMETRIZATIONS)}")
        return value
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_UNITS:
        raise FileFormatError(f"{_shown(path)}: {where} is {safe_text(repr(value), 80)}, not an integer from 0 to "
                              f"{MAX_UNITS} (symnet.io.format.MAX_UNITS)")
    return value


# --- any file ----------------------------------------------------------------------------------


def detect(path: str | os.PathLike[str]) -> str:
    """What kind of network file ``path`` is: ``"symnet"``, ``"keras"``, ``"torch"`` or ``"onnx"`` (by its name).

    Raises :class:`FileFormatError` for anything else.
    """
    path = Path(path)
    head = _head(path)
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            raise
        except (OSError, *_CORRUPT) as exc:
            raise FileFormatError(f"{_shown(path)}: a damaged zip archive ({_kind(exc)}: "
                                  f"{safe_text(exc, 200)})") from None
        if f"{_META}.npy" in names:
            return "symnet"
        if "config.json" in names:
            return "keras"
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "torch"
        shown = safe_text(", ".join(repr(n) for n in names[:5]) or "nothing", 200)
        raise FileFormatError(f"{_shown(path)}: a zip archive that is neither a symnet file, a .keras model nor a "
                              f"PyTorch file (it holds {shown})")
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "keras"  # a legacy full-model .h5 (symnet.io.load_keras checks for its model_config)
    if path.suffix == ".onnx":
        return "onnx"  # a protobuf has no magic number: the name says it, symnet.io.onnx checks the contents
    if path.suffix in (".pt", ".pth", ".bin") and head[:1] == b"\x80":
        return "torch"  # the legacy torch.save format; torch.load(weights_only=True) reads it safely
    raise FileFormatError(f"{_shown(path)}: not a network file symnet reads ({_describe(head)}); give a symnet file, "
                          "a .keras model, a PyTorch state dict (.pt) or an ONNX model (.onnx)")


def read_network(
    path: str | os.PathLike[str],
    *,
    activations: Mapping[int | str, Any] | None = None,
    trust: bool = False,
    layer_sizes: Sequence[int] | None = None,
    layer_activations: Sequence[Any] | str | None = None,
) -> Network:
    """A network from any file symnet reads, recognised by its contents (``symnet.load`` is this function).

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
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"a path to a network file is a str or os.PathLike, not {type(path).__name__}")
    kind = detect(path)
    if kind == "symnet":
        if activations or layer_activations or layer_sizes or trust:
            raise FileFormatError(f"{path}: a symnet file stores its architecture and activations; "
                                  "activation, architecture and trust options do not apply")
        return load(path)
    if kind == "onnx":
        if activations or layer_activations or layer_sizes or trust:
            raise FileFormatError(f"{path}: an ONNX file stores its graph; activation, architecture and trust "
                                  "options do not apply")
        from .onnx import from_onnx

        return from_onnx(path)
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
