"""The on-disk kernel cache: generated modules written atomically, imported from real files.

numba can cache compiled machine code only for functions defined in real files, so every
kernel's source is written to ``<cache dir>/<key>.py`` and imported from there; numba keeps
its compiled code beside it (``__pycache__``) and a second process loads it in
milliseconds.  The key is a hash of everything the source depends on (architecture,
request, options, versions), so a stale entry is never reused; an entry whose text does not
match its key, or that fails to import, is rebuilt.

The directory is ``$SYMNET_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/symnet`` or
``~/.cache/symnet``.

**The cache is a code-execution boundary.**  Importing a ``.py`` file runs it, and numba
unpickles its ``.nbi``/``.nbc`` files, so whoever can write into the cache folder can run code
in every process that compiles a kernel.  The first line of every entry is a stamp
(``# symnet-kernel-key: <key> <sha256 of the body>``); it detects a damaged or truncated
entry, but anyone can compute it for a file of their own: it is no defence.  The defence is
the folder, checked as ssh and pip check theirs (:func:`usable_cache_dir`): the cache folder
and its ``__pycache__`` must be owned by the current user and not writable by group or
others, and every folder above them owned by the user or root and not writable by group or
others unless sticky (``/tmp``).  Missing levels are created with mode ``0o700``.  A folder
that fails a check, or that cannot be created or written, is not used: a
:class:`CacheWarning` says which and why (once per folder and reason in a process) and
kernels are compiled in memory.  ``$NUMBA_CACHE_DIR``, where numba then keeps compiled code,
is checked the same way.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import stat
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Callable

__all__ = ["CacheWarning", "cache_dir", "drop_numba_cache", "key_of", "load_or_write", "usable_cache_dir"]


class CacheWarning(UserWarning):
    """The kernel cache folder is unsafe or unusable; kernels are compiled in memory instead.

    The message names the folder, the reason and the fix (``chmod 700 <folder>``, or
    ``SYMNET_CACHE_DIR`` pointing at a private folder).
    """


def cache_dir() -> Path:
    """The per-user directory that holds generated kernels (not checked: see :func:`usable_cache_dir`)."""
    explicit = os.environ.get("SYMNET_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "symnet"


def key_of(description: str) -> str:
    return "k" + hashlib.sha256(description.encode()).hexdigest()[:32]


# --- is the folder safe? -------------------------------------------------------------------

_WARNED: set[tuple[str, str]] = set()
_WARNED_LOCK = threading.Lock()
_POSIX = hasattr(os, "geteuid")


def folder_problem(path: Path, top: bool = True) -> str | None:
    """Why ``path`` (an existing folder) may not hold code symnet imports, or ``None`` if it may.

    With ``top`` (the cache folder itself and its ``__pycache__``) the folder must be owned by
    the current user and not writable by group or others; otherwise (a folder above it) owned
    by the user or root and not writable by group or others unless its sticky bit is set.
    On systems without POSIX owners (Windows) only "is a folder" is checked.

    >>> import tempfile
    >>> private = Path(tempfile.mkdtemp())      # mkdtemp creates mode 0o700
    >>> folder_problem(private) is None
    True
    >>> _ = private.chmod(0o777)
    >>> folder_problem(private)
    'it is writable by group and others (mode 0o777)'
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        return f"cannot read it ({exc.strerror or type(exc).__name__})"
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a folder"
    if not _POSIX:
        return None
    me = _euid()
    mode = stat.S_IMODE(info.st_mode)
    if top and info.st_uid != me:
        return f"it is owned by user id {info.st_uid}, not by you (user id {me})"
    if not top and info.st_uid not in (me, 0):
        return f"it is owned by user id {info.st_uid}, neither you (user id {me}) nor root"
    writers = [who for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if mode & bit]
    if writers and (top or not mode & stat.S_ISVTX):
        return f"it is writable by {' and '.join(writers)} (mode {oct(mode)})"
    return None


def _euid() -> int:
    """The effective user id the folders must belong to (a function, so tests can be someone else)."""
    return os.geteuid()


def _create(path: Path) -> None:
    """Create ``path`` and every missing folder above it with mode ``0o700``."""
    missing = []
    level = path
    while not level.exists():
        missing.append(level)
        if level.parent == level:
            break
        level = level.parent
    for level in reversed(missing):
        try:
            os.mkdir(level, 0o700)
        except FileExistsError:
            pass


def _problem(folder: Path, top: bool) -> tuple[Path, str] | None:
    """The first folder on the way to ``folder`` (itself, ``top``) that fails :func:`folder_problem`."""
    real = Path(os.path.realpath(folder))
    checks = [(real, top)] + [(parent, False) for parent in real.parents]
    for level, strict in checks:
        reason = folder_problem(level, strict)
        if reason is not None:
            return level, reason
    return None


def usable_cache_dir(warn: bool = True) -> Path | None:
    """The cache folder if symnet may import code from it, else ``None`` (and a :class:`CacheWarning`).

    Creates the folder and its ``__pycache__`` (mode ``0o700``) when missing, then checks
    them and every folder above them (:func:`folder_problem`), that they can be written, and
    ``$NUMBA_CACHE_DIR`` if set.  Never raises ``OSError``: an unusable folder is reported
    by a :class:`CacheWarning`, once per folder and reason in a process.

    >>> import os, tempfile
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, SYMNET_CACHE_DIR=os.path.join(tempfile.mkdtemp(), "kernels")):
    ...     folder = usable_cache_dir()
    ...     folder == cache_dir(), oct(folder.stat().st_mode & 0o777)
    (True, '0o700')
    """
    folder = cache_dir().absolute()
    found: tuple[Path, str] | None = None
    for level in (folder, folder / "__pycache__"):  # numba's compiled code goes into __pycache__
        try:
            _create(level)
        except OSError as exc:
            found = (level, f"it cannot be created ({exc.strerror or type(exc).__name__})")
        found = found or _problem(level, True)
        if found is None and not os.access(level, os.W_OK | os.X_OK):
            found = (level, "you cannot write to it")
        if found is not None:
            break
    numba_dir = _numba_cache_dir()
    if found is None and numba_dir:  # numba keeps compiled code there instead of __pycache__
        found = _problem(Path(numba_dir), True)
    if found is None:
        return folder
    if warn:
        _warn(*found, folder)
    return None


def _numba_cache_dir() -> str:
    numba = sys.modules.get("numba")
    config = getattr(numba, "config", None)
    return str(getattr(config, "CACHE_DIR", "") or "") if config is not None else os.environ.get("NUMBA_CACHE_DIR", "")


def _warn(level: Path, reason: str, folder: Path) -> None:
    """One :class:`CacheWarning` per folder and reason in a process."""
    with _WARNED_LOCK:
        if (str(level), reason) in _WARNED:
            return
        _WARNED.add((str(level), reason))
    real = Path(os.path.realpath(folder))
    where = "" if level in (folder, real) else \
        f" (its folder {str(level)!r})" if real in level.parents else \
        f" (the folder {str(level)!r} above it)" if level in real.parents else f" (numba's cache folder {str(level)!r})"
    warnings.warn(
        f"symnet does not use the kernel cache folder {str(folder)!r}{where}: {reason}. Kernels are compiled in "
        "memory, so every process compiles them again. To use the cache, make the folder yours and writable by you "
        f"alone (chown, then chmod 700 {str(level)!r}), or set SYMNET_CACHE_DIR to such a folder",
        CacheWarning, stacklevel=4)


def _reset_warnings() -> None:
    """Forget which folders were warned about (for tests)."""
    with _WARNED_LOCK:
        _WARNED.clear()


# --- reading and writing entries -----------------------------------------------------------


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _import(path: Path, module_name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module  # numba's cache locator looks modules up by name
    return module


def drop_numba_cache(key: str) -> None:
    """Delete numba's compiled-code files of one kernel (they are rebuilt on the next call)."""
    _drop_numba_cache(cache_dir() / f"{key}.py")


def _drop_numba_cache(path: Path) -> None:
    try:
        for stale in (path.parent / "__pycache__").glob(f"{path.stem}.*"):
            stale.unlink(missing_ok=True)
    except OSError:  # nothing to drop where nothing can be read
        pass


_CACHED = re.compile(r"\bcache=True\b")


def _in_memory(key: str, text: str) -> ModuleType:
    """The module of ``text`` built in memory (numba caches only functions of real files:
    callers turn a decorator's ``cache=True`` off first, with :data:`_CACHED`)."""
    module = ModuleType(f"symnet_kernel_{key}")
    exec(compile(text, f"<symnet kernel {key}>", "exec"), module.__dict__)  # noqa: S102 - our own generated code
    return module


def load_or_write(key: str, source: str | None, make_source: Callable[[], str],
                  use_disk: bool) -> tuple[ModuleType, str, bool]:
    """Import the kernel module for ``key``; returns ``(module, source, loaded_from_disk)``.

    ``make_source()`` is called only when the source is needed (cache miss or corrupt entry).
    With ``use_disk`` the entry is read from (or written to) the cache folder if
    :func:`usable_cache_dir` allows it; otherwise, or if writing fails, the module is built in
    memory (numba's ``cache=True`` turned off in its text).
    """
    folder = usable_cache_dir() if use_disk else None
    if folder is None:
        text = _CACHED.sub("cache=False", source or make_source())
        return _in_memory(key, text), text, False
    module_name = f"symnet_kernel_{key}"
    path = folder / f"{key}.py"
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
            if key_of_source(text) == key:
                return _import(path, module_name), text, True
        except Exception:  # a corrupt entry is rebuilt, never trusted
            pass
        _drop_numba_cache(path)
    text = _stamp(source or make_source(), key)
    try:
        _write_atomically(path, text)
    except OSError as exc:
        _warn(folder, f"writing {path.name} failed ({exc.strerror or type(exc).__name__})", folder)
        body = _CACHED.sub("cache=False", text.partition("\n")[2])
        return _in_memory(key, body), body, False
    return _import(path, module_name), text, False


_STAMP = "# symnet-kernel-key: "


def _stamp(text: str, key: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"{_STAMP}{key} {digest}\n{text}"


def key_of_source(text: str) -> str | None:
    """The key a cached file claims, if its body is intact; ``None`` otherwise.

    An integrity check against damaged or truncated files, not a security boundary: anyone
    who can write the folder can stamp a file (:func:`usable_cache_dir` keeps others out).
    """
    first, _, body = text.partition("\n")
    if not first.startswith(_STAMP):
        return None
    try:
        key, digest = first[len(_STAMP):].split()
    except ValueError:
        return None
    return key if hashlib.sha256(body.encode()).hexdigest() == digest else None
