"""The kernel cache folder as a code-execution boundary (symnet.kernels._cache).

Whoever can write the cache folder can run code in every process that compiles a kernel
(symnet imports its ``k<key>.py`` files, numba unpickles its ``.nbi``/``.nbc`` files), so the
folder is used only when it is the user's and nobody else can write it; otherwise a
CacheWarning and kernels compiled in memory.  The mode bits are set with chmod; another
user's folder is simulated by making symnet believe it runs as another user id (so the tests
run the same as root and as anyone else).
"""

import hashlib
import os
import pathlib
import pickle
import re
import stat
import warnings

import numpy as np
import pytest

import symnet
from symnet import kernels
from symnet.kernels import CacheWarning, _cache

@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """An empty in-process kernel memo (so every compile goes to the cache folder) and fresh warnings."""
    monkeypatch.setattr(kernels, "_MEMO", {})
    _cache._reset_warnings()
    yield
    _cache._reset_warnings()


def small_net():
    return symnet.Network.from_weights([[[0.5, -1.0], [2.0, 0.25]], [[1.0], [-0.5]]], [[0.1, 0.2], [0.3]],
                                       ["tanh", "linear"])


def wide_net():
    rng = np.random.default_rng(5)
    return symnet.Network.from_weights([rng.normal(size=(2, 24)), rng.normal(size=(24, 1))],
                                       [rng.normal(size=24), rng.normal(size=1)], ["sigmoid", "linear"])


POINT = np.array([[0.3, -0.7]])


def private(path: pathlib.Path) -> pathlib.Path:
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    return path


# --- the rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, problem", [
    (0o700, None), (0o755, None), (0o750, None), (0o500, None),
    (0o770, "writable by group (mode 0o770)"), (0o702, "writable by others (mode 0o702)"),
    (0o777, "writable by group and others (mode 0o777)"), (0o1777, "writable by group and others"),
])
def test_the_cache_folder_must_not_be_writable_by_group_or_others(tmp_path, mode, problem):
    folder = tmp_path / "cache"
    folder.mkdir()
    folder.chmod(mode)
    found = _cache.folder_problem(folder)
    assert found == problem if problem is None else problem in found
    # above the cache folder a sticky world-writable folder (/tmp) is fine, a plain one is not
    above = _cache.folder_problem(folder, top=False)
    assert above is None if mode & stat.S_ISVTX or not mode & 0o022 else "writable by" in above


def someone_else(monkeypatch) -> int:
    """Make symnet see the tests' files as another user's: run as a user id that owns none of them.
    (Changing a file's owner needs root; changing who symnet thinks we are does not.)"""
    other = os.geteuid() + 4242
    monkeypatch.setattr(_cache, "_euid", lambda: other)
    return other


def test_the_cache_folder_must_be_owned_by_the_user(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    owner = folder.stat().st_uid
    assert _cache.folder_problem(folder) is None
    other = someone_else(monkeypatch)
    assert _cache.folder_problem(folder) == f"it is owned by user id {owner}, not by you (user id {other})"
    # above the cache folder, root's folders are fine (/, /home), anyone else's are not
    assert _cache.folder_problem(pathlib.Path("/"), top=False) is None
    assert (_cache.folder_problem(folder, top=False) is None) == (owner == 0)
    if owner != 0:
        assert "neither you" in _cache.folder_problem(folder, top=False)
    plain = tmp_path / "file"
    plain.write_text("")
    assert _cache.folder_problem(plain) == "it is not a folder"


def test_missing_levels_are_created_private(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMNET_CACHE_DIR", str(tmp_path / "a" / "b" / "symnet"))
    folder = _cache.usable_cache_dir()
    assert folder == tmp_path / "a" / "b" / "symnet"
    for level in (tmp_path / "a", tmp_path / "a" / "b", folder, folder / "__pycache__"):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700, level


def test_the_default_folder_follows_xdg_and_home(tmp_path, monkeypatch):
    monkeypatch.delenv("SYMNET_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.usable_cache_dir() == tmp_path / "xdg" / "symnet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(private(tmp_path / "home")))
    assert _cache.usable_cache_dir() == tmp_path / "home" / ".cache" / "symnet"
    assert stat.S_IMODE((tmp_path / "home" / ".cache").stat().st_mode) == 0o700


@pytest.mark.parametrize("spoil, reason", [
    (lambda f: f.chmod(0o777), "writable by group and others"),
    (lambda f: f.chmod(0o770), "writable by group"),
    ("someone else's", "not by you"),
    (lambda f: (f / "__pycache__").chmod(0o757), "its folder .*__pycache__'.*writable by others"),
    (lambda f: f.parent.chmod(0o777), "the folder .*parent' above it.*writable by group and others"),
])
def test_an_unsafe_folder_is_not_used_warns_once_and_kernels_still_work(tmp_path, monkeypatch, spoil, reason):
    folder = private(private(tmp_path / "parent") / "cache")
    private(folder / "__pycache__")
    monkeypatch.setenv("SYMNET_CACHE_DIR", str(folder))
    someone_else(monkeypatch) if spoil == "someone else's" else spoil(folder)
    with pytest.warns(CacheWarning, match=f"does not use the kernel cache folder '{re.escape(str(folder))}'.*{reason}"
                                          ".*chmod 700"):
        kernel = symnet.compile(small_net(), backend="numba", strategy="expression")
    assert not kernel.loaded_from_disk and "cache=False" in kernel.source
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per folder and reason: the second compile is silent
        layered = symnet.compile(wide_net(), backend="numba", strategy="layered")
    assert layered(POINT).value.shape == (1, 1)
    np.testing.assert_allclose(kernel(POINT).value, symnet.compile(small_net(), backend="numpy")(POINT).value,
                               rtol=1e-14)
    assert not list(folder.glob("k*.py")) and not list(folder.glob("__pycache__/*.nb*"))


# --- planted payloads -----------------------------------------------------------------------


class _Payload:
    """Unpickling this creates ``marker``: what a planted numba index could do."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker, 0o700, True))  # exist_ok: numba may read the index twice


def _forge(folder: pathlib.Path, marker: pathlib.Path, what: str) -> None:
    """Replace every kernel module in ``folder`` with code that creates ``marker``, stamped as
    symnet stamps (``what="source"``), or every numba index and data file with a pickle that
    creates it (``what="numba"``)."""
    if what == "source":
        for path in folder.glob("k*.py"):
            body = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
            digest = hashlib.sha256(body.encode()).hexdigest()  # anyone can compute the stamp
            path.write_text(f"# symnet-kernel-key: {path.stem} {digest}\n{body}")
    else:
        for path in (folder / "__pycache__").glob("*.nb*"):
            path.write_bytes(pickle.dumps(_Payload(marker)))


BUILDERS = {
    "expression": lambda: symnet.compile(small_net(), backend="numba", strategy="expression")(POINT).hessian,
    "layered": lambda: symnet.compile(wide_net(), backend="numba", strategy="layered",
                                      schedule="forward")(POINT).hessian,
    "forward-adjoint": lambda: symnet.compile(wide_net(), backend="numba", strategy="layered",
                                              schedule="forward-adjoint")(POINT).hessian,
}
SPOILS = {"group-writable": lambda folder, monkeypatch: folder.chmod(0o770),
          "other-writable": lambda folder, monkeypatch: folder.chmod(0o703),
          "someone else's": lambda folder, monkeypatch: someone_else(monkeypatch)}


def _planted(tmp_path, monkeypatch, kind, what):
    """A cache folder filled by ``kind``'s kernels, then forged; returns (folder, marker, numbers)."""
    folder = private(tmp_path / "cache")
    monkeypatch.setenv("SYMNET_CACHE_DIR", str(folder))
    want = BUILDERS[kind]()  # fills the folder: the file names an attacker would plant
    assert list(folder.glob("k*.py")) and list(folder.glob("__pycache__/*.nbi"))
    marker = tmp_path / "MARKER"
    _forge(folder, marker, what)
    monkeypatch.setattr(kernels, "_MEMO", {})
    return folder, marker, want


@pytest.mark.parametrize("kind, spoil, what", [
    ("expression", "group-writable", "source"), ("expression", "someone else's", "numba"),
    ("layered", "other-writable", "numba"), ("forward-adjoint", "someone else's", "source"),
])
def test_planted_kernels_and_numba_files_in_an_unsafe_folder_write_no_marker(tmp_path, monkeypatch, kind, spoil, what):
    folder, marker, want = _planted(tmp_path, monkeypatch, kind, what)
    SPOILS[spoil](folder, monkeypatch)
    with pytest.warns(CacheWarning, match="does not use the kernel cache folder"):
        got = BUILDERS[kind]()
    assert not marker.exists()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("what", ["source", "numba"])
def test_the_stamp_is_no_defence_the_folder_is(tmp_path, monkeypatch, what):
    """The control of the test above: in a folder that passes the checks the planted files ARE
    run (the payloads work), and only the folder's owner can plant them there: which is why
    the folder is checked, not the stamp."""
    folder, marker, want = _planted(tmp_path, monkeypatch, "expression", what)
    if what == "source":
        with pytest.raises(AttributeError):  # the forged module has no kernel
            BUILDERS["expression"]()
    else:  # numba unpickles the planted index, finds it stale and compiles again
        np.testing.assert_array_equal(BUILDERS["expression"](), want)
    assert marker.exists()


# --- an unusable folder ---------------------------------------------------------------------


def _package_files() -> set[str]:
    """Kernel modules and numba cache files under symnet's package directory."""
    root = pathlib.Path(symnet.__file__).parent
    return {str(p) for pattern in ("**/*.nbi", "**/*.nbc", "**/k*.py") for p in root.glob(pattern)}


@pytest.mark.parametrize("where", ["SYMNET_CACHE_DIR", "HOME"])
def test_an_uncreatable_folder_compiles_everything_in_memory(tmp_path, monkeypatch, where):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # nothing can be created below a file: what root cannot write either
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    if where == "HOME":
        monkeypatch.delenv("SYMNET_CACHE_DIR")
        monkeypatch.setenv("HOME", str(blocker / "home"))
    else:
        monkeypatch.setenv("SYMNET_CACHE_DIR", str(blocker / "cache"))
    before = _package_files()
    with pytest.warns(CacheWarning, match="it cannot be created") as caught:
        results = [BUILDERS[kind]() for kind in BUILDERS]
        loss, _ = symnet.compile_loss(wide_net(), "mse")(POINT, np.array([[1.0]]))
    assert len([w for w in caught if w.category is CacheWarning]) == 1
    assert all(np.all(np.isfinite(r)) for r in results) and np.isfinite(loss)
    assert _package_files() == before
    assert not list(tmp_path.rglob("k*.py"))


def test_a_folder_you_cannot_write_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMNET_CACHE_DIR", str(private(tmp_path / "cache")))
    monkeypatch.setattr(_cache.os, "access", lambda path, mode: False)  # root may write anywhere: pretend
    with pytest.warns(CacheWarning, match="you cannot write to it"):
        assert _cache.usable_cache_dir() is None


def test_a_failed_write_is_a_warning_not_an_oserror(tmp_path, monkeypatch):
    folder = private(tmp_path / "cache")
    monkeypatch.setenv("SYMNET_CACHE_DIR", str(folder))

    def full(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_cache, "_write_atomically", full)
    with pytest.warns(CacheWarning, match="writing k[0-9a-f]+.py failed .No space left on device."):
        kernel = symnet.compile(small_net(), backend="numba", strategy="expression")
    assert not kernel.loaded_from_disk and kernel(POINT).value.shape == (1, 1)


def test_an_unsafe_numba_cache_dir_is_refused(tmp_path, monkeypatch):
    import numba

    shared = tmp_path / "numba-cache"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("SYMNET_CACHE_DIR", str(private(tmp_path / "cache")))
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(shared))
    with pytest.warns(CacheWarning, match=f"numba's cache folder '{re.escape(str(shared))}'.*writable by group"):
        assert _cache.usable_cache_dir() is None


# --- damaged numba files --------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["forward", "forward-adjoint"])
def test_a_damaged_layered_nbc_is_rebuilt(tmp_path, monkeypatch, schedule):
    folder = private(tmp_path / "cache")
    monkeypatch.setenv("SYMNET_CACHE_DIR", str(folder))
    net = wide_net()
    want = symnet.compile(net, strategy="layered", schedule=schedule)(POINT).hessian
    data = list(folder.glob("__pycache__/*.nbc"))
    assert data
    for path in data:
        with open(path, "r+b") as handle:
            handle.truncate(path.stat().st_size // 2)
    monkeypatch.setattr(kernels, "_MEMO", {})
    with pytest.warns(RuntimeWarning, match="numba's cache of kernel k[0-9a-f]+ was unreadable .*rebuilding it"):
        again = symnet.compile(net, strategy="layered", schedule=schedule)
    np.testing.assert_array_equal(again(POINT).hessian, want)
    monkeypatch.setattr(kernels, "_MEMO", {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilt: the next compile loads it without complaint
        third = symnet.compile(net, strategy="layered", schedule=schedule)
    assert third.loaded_from_disk
    np.testing.assert_array_equal(third(POINT).hessian, want)


READ_ONLY = """
import warnings
import numba.core.caching as caching

def refuse(self):
    raise PermissionError(13, "Read-only file system")

caching._CacheLocator.ensure_cache_path = refuse  # numba can write nowhere: not the package, not ~/.cache
import numpy as np
import symnet
from symnet.kernels import CacheWarning

rng = np.random.default_rng(5)
net = symnet.Network.from_weights([rng.normal(size=(2, 24)), rng.normal(size=(24, 1))],
                                  [rng.normal(size=24), rng.normal(size=1)], ["tanh", "linear"])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for schedule in ("forward", "forward-adjoint"):
        kernel = symnet.compile(net, strategy="layered", schedule=schedule)
        assert np.isfinite(kernel(np.array([[0.1, 0.2]])).hessian).all()
assert [w.category for w in caught] == [CacheWarning], [str(w.message) for w in caught]
print("ok")
"""


def test_a_read_only_install_with_an_unwritable_home_still_compiles(tmp_path):
    """numba may write nowhere (a read-only package, an unwritable HOME): layered kernels, whose
    passes call symnet.kernels._vecmath, still compile, in memory, with one CacheWarning."""
    import subprocess
    import sys

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**os.environ, "HOME": str(blocker / "home"), "SYMNET_CACHE_DIR": str(blocker / "cache")}
    env.pop("XDG_CACHE_HOME", None)
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", READ_ONLY], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_a_kernel_written_by_other_code_generation_is_not_loaded(tmp_path, monkeypatch):
    """The key covers the source of the code that writes expression kernels (program, printers,
    _vecmath): a cached kernel from before an edit there is regenerated, not loaded."""
    monkeypatch.setenv("SYMNET_CACHE_DIR", str(private(tmp_path / "cache")))
    first = symnet.compile(small_net(), backend="numba", strategy="expression")
    monkeypatch.setattr(kernels, "_MEMO", {})
    again = symnet.compile(small_net(), backend="numba", strategy="expression")
    assert again.loaded_from_disk and again.source == first.source
    monkeypatch.setattr(kernels, "_MEMO", {})
    monkeypatch.setattr(kernels, "generator_digest", lambda: "0123456789abcdef")
    other = symnet.compile(small_net(), backend="numba", strategy="expression")
    assert not other.loaded_from_disk and "0123456789abcdef" in other.source
    np.testing.assert_array_equal(other(POINT).value, first(POINT).value)
