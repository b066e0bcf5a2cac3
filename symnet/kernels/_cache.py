"""The on-disk kernel cache: generated modules written atomically, imported from real files.

numba can cache compiled machine code only for functions defined in real files, so every
kernel's source is written to ``<cache dir>/<key>.py`` and imported from there; numba keeps
its compiled code beside it (``__pycache__``) and a second process loads it in
milliseconds.  The key is a hash of everything the source depends on (architecture,
request, options, versions), so a stale entry is never reused; an entry whose text does not
match its key, or that fails to import, is rebuilt.

The directory is ``$SYMNET_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/symnet`` or
``~/.cache/symnet``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

__all__ = ["cache_dir", "drop_numba_cache", "key_of", "load_or_write"]


def cache_dir() -> Path:
    """The per-user directory that holds generated kernels."""
    explicit = os.environ.get("SYMNET_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "symnet"


def key_of(description: str) -> str:
    return "k" + hashlib.sha256(description.encode()).hexdigest()[:32]


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
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
    for stale in (path.parent / "__pycache__").glob(f"{path.stem}.*"):
        stale.unlink(missing_ok=True)


def load_or_write(key: str, source: str | None, make_source: "callable", use_disk: bool) -> tuple[ModuleType, str, bool]:
    """Import the kernel module for ``key``; returns ``(module, source, loaded_from_disk)``.

    ``make_source()`` is called only when the source is needed (cache miss or corrupt entry).
    """
    module_name = f"symnet_kernel_{key}"
    if not use_disk:
        text = source or make_source()
        module = ModuleType(module_name)
        exec(compile(text, f"<symnet kernel {key}>", "exec"), module.__dict__)  # noqa: S102 - our own generated code
        return module, text, False
    path = cache_dir() / f"{key}.py"
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
            if key_of_source(text) == key:
                return _import(path, module_name), text, True
        except Exception:  # a corrupt entry is rebuilt, never trusted
            pass
        _drop_numba_cache(path)
    text = source or make_source()
    _write_atomically(path, _stamp(text, key))
    return _import(path, module_name), path.read_text(encoding="utf-8"), False


_STAMP = "# symnet-kernel-key: "


def _stamp(text: str, key: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"{_STAMP}{key} {digest}\n{text}"


def key_of_source(text: str) -> str | None:
    """The key a cached file claims, if its body is intact; ``None`` otherwise."""
    first, _, body = text.partition("\n")
    if not first.startswith(_STAMP):
        return None
    try:
        key, digest = first[len(_STAMP):].split()
    except ValueError:
        return None
    return key if hashlib.sha256(body.encode()).hexdigest() == digest else None
