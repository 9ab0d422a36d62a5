"""How a sandboxed child is launched: what of the host it sees, and its command lines.

The private guest runtime (:func:`guest_root`: the guest's files and links to numpy,
nothing else of stop_tui), the paths the child may read (:func:`read_paths`, and
:func:`host_read_paths` without bubblewrap), the directories masked beneath them
(:func:`hidden_paths`), and the bubblewrap and interpreter command lines and
environment that start the zygote (:func:`bwrap_argv`, :func:`boot_argv`,
:func:`child_env`). Which of the isolation layers work here is
:mod:`stop_tui.sandbox.layers`.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Iterable
from pathlib import Path

import stop_tui

SCRATCH_IN_SANDBOX = "/scratch"
TMPFS_BYTES = 1 << 30

GUEST_PREFIX = "stop-tui-guest-"  # the private guest runtime directory's name starts so
# The files the guest imports (checked by tests/integration/test_sandbox_sealed.py): copied into
# a private directory, so that nothing else of stop_tui is on the child's path.
GUEST_FILES = (
    "sandbox/codec.py",
    "sandbox/guest/__init__.py",
    "sandbox/guest/confine.py",
    "sandbox/guest/helpers.py",
    "sandbox/guest/runner.py",
    "sandbox/guest/zygote.py",
)
_STUB = '"""stop-tui guest runtime (a private copy; the rest of stop_tui is not here)."""\n'


def package_root() -> Path:
    """The directory that contains the ``stop_tui`` package."""
    return Path(stop_tui.__file__).resolve().parent.parent


def _numpy_dirs() -> list[str]:
    import numpy

    numpy_dir = Path(numpy.__file__).resolve().parent
    dirs = [str(numpy_dir)]
    libs = numpy_dir.parent / "numpy.libs"
    if libs.is_dir():
        dirs.append(str(libs))
    return dirs


def interpreter() -> str:
    """The interpreter the child runs: the real binary behind ``sys.executable``.

    A virtual environment adds nothing to a child that starts with ``-I -S`` (no
    site-packages), and binding the venv would show the sandbox where it lives (often
    inside a checkout). A venv made with ``--copies`` keeps its own binary; then that
    binary and its ``pyvenv.cfg`` are bound (:func:`_interpreter_files`)."""
    return os.path.realpath(sys.executable)


def _interpreter_files() -> list[str]:
    exe = interpreter()
    files = [exe]
    for folder in (os.path.dirname(exe), os.path.dirname(os.path.dirname(exe))):
        cfg = os.path.join(folder, "pyvenv.cfg")
        if os.path.isfile(cfg):
            files.append(cfg)
    return files


@functools.cache
def guest_root() -> str:
    """A private directory (one per process, removed at exit) holding the guest
    runtime and nothing else of stop_tui: stub ``__init__`` files, the codec and
    ``sandbox/guest/``, plus symlinks to numpy (and ``numpy.libs``). It is the
    only entry the child adds to the standard library's ``sys.path``, bound
    read-only by bubblewrap (and only readable under Landlock)."""
    root = tempfile.mkdtemp(prefix=GUEST_PREFIX)
    atexit.register(_remove_guest_root, root, os.getpid())
    package = Path(stop_tui.__file__).resolve().parent
    target = Path(root, "stop_tui")
    for stub in ("__init__.py", "sandbox/__init__.py"):
        (target / stub).parent.mkdir(parents=True, exist_ok=True)
        (target / stub).write_text(_STUB)
    for name in GUEST_FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package / name, target / name)
    for numpy_dir in _numpy_dirs():
        os.symlink(numpy_dir, os.path.join(root, os.path.basename(numpy_dir)))
    return root


def _remove_guest_root(root: str, owner: int) -> None:
    if os.getpid() == owner:  # not from a forked child that happens to run atexit
        shutil.rmtree(root, ignore_errors=True)


GUEST_IN_SANDBOX = "/stop-tui-guest"  # where bubblewrap mounts the guest runtime and numpy


def import_roots(bwrap: bool) -> list[str]:
    """Directories the guest puts on ``sys.path`` (besides the standard library): the
    private guest root, at :data:`GUEST_IN_SANDBOX` inside bubblewrap (so that no host
    path of numpy or of the guest root shows)."""
    return [GUEST_IN_SANDBOX if bwrap else guest_root()]


def _system_paths() -> list[str]:
    paths = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
    paths += ["/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime"]
    paths += [os.path.realpath(sys.base_prefix), *_interpreter_files()]
    return paths


def _standard_library() -> list[str]:
    names = ("stdlib", "platstdlib")
    dirs = {os.path.realpath(sysconfig.get_paths()[name]) for name in names}
    for scheme_vars in ({"base": sys.base_prefix, "platbase": sys.base_prefix},):
        dirs |= {os.path.realpath(sysconfig.get_paths(vars=scheme_vars)[n]) for n in names}
    return sorted(dirs)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@functools.cache
def hidden_paths() -> tuple[str, ...]:
    """Directories the child must never see, even where they lie beneath a bound
    directory: every site-packages and ``sys.path`` entry outside the standard
    library (a wheel's ``stop_tui/_data`` with the hidden evaluators, an editable
    install's ``.pth`` and finder, a checkout on ``PYTHONPATH``), stop_tui itself,
    the working directory and the run workspace."""
    import site

    stdlib = _standard_library()
    candidates = [*sys.path, site.getusersitepackages()]
    candidates += getattr(site, "getsitepackages", list)()  # (old virtualenv's site.py lacks it)
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        base = {"base": prefix, "platbase": prefix}
        candidates += [sysconfig.get_paths(vars=base)[n] for n in ("purelib", "platlib")]
    candidates += [str(package_root()), str(package_root() / "stop_tui")]
    candidates += _other_installs()
    with contextlib.suppress(OSError):  # a deleted working directory hides nothing
        candidates.append(os.getcwd())
    workspace = os.environ.get("STOP_TUI_WORKSPACE")
    if workspace:
        candidates.append(workspace)
    hidden: list[str] = []
    for raw in candidates:
        if not raw:
            continue
        path = os.path.realpath(raw)
        if not os.path.isdir(path) or path in stdlib or os.path.basename(path) == "lib-dynload":
            continue
        hidden.append(path)
    return tuple(sorted(set(hidden)))


def _other_installs() -> list[str]:
    """Every site-packages and dist-packages beneath the system directories and the
    base interpreter's prefix: another install of stop-tui (``sudo pip install``, a
    distribution package) may lie there, off this process's ``sys.path``."""
    import glob

    found: list[str] = []
    for prefix in dict.fromkeys(["/usr", "/usr/local", os.path.realpath(sys.base_prefix)]):
        for pattern in ("lib*/python3*/site-packages", "lib*/python3*/dist-packages"):
            found += glob.glob(os.path.join(prefix, pattern))
    return found


def _masks(roots: Iterable[str], keep: Iterable[str]) -> list[str]:
    """Hidden directories beneath a bound root that are not needed themselves
    (never an ancestor of a path the child must reach, e.g. ``/usr``)."""
    keep = list(keep)
    masks = [
        path
        for path in hidden_paths()
        if any(_within(path, root) and path != root for root in roots)
        and not any(_within(needed, path) for needed in keep)
    ]
    return [path for path in masks if not any(_within(path, m) and path != m for m in masks)]


@functools.cache
def read_paths() -> tuple[str, ...]:
    """Paths the child may read (and execute) inside bubblewrap, as the child names
    them: the system directories and the interpreter, bound read-only (the hidden
    directories beneath them masked by empty tmpfs mounts), and the guest runtime
    with numpy at :data:`GUEST_IN_SANDBOX`; the same list is allowed by Landlock."""
    paths = [path for path in _system_paths() if os.path.lexists(path)]
    paths += [GUEST_IN_SANDBOX, "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"]
    return tuple(dict.fromkeys(paths))


@functools.cache
def host_read_paths() -> tuple[str, ...]:
    """The Landlock read list without bubblewrap (``--unsafe``): the system paths,
    numpy and the guest root, with every directory that holds a hidden one replaced
    by its entries (recursively), since Landlock can only allow, never carve out."""
    needed = [*_interpreter_files(), *_standard_library(), guest_root()]
    hidden = [path for path in hidden_paths() if not any(_within(n, path) for n in needed)]
    out: list[str] = [*_numpy_dirs(), guest_root(), "/dev/null", "/dev/zero"]
    out += ["/dev/urandom", "/dev/random"]
    todo = [path for path in _system_paths() if os.path.lexists(path)]
    while todo:
        path = todo.pop()
        if any(_within(path, h) for h in hidden):
            continue
        if not any(_within(h, path) for h in hidden) or not os.path.isdir(path):
            out.append(path)
            continue
        try:
            todo += [entry.path for entry in os.scandir(path)]
        except OSError:
            continue
    return tuple(sorted(set(out)))


def bwrap_argv(scratch_size: int = TMPFS_BYTES) -> list[str]:
    """The bubblewrap command line (without the command to run inside)."""
    argv = ["bwrap", "--die-with-parent", "--unshare-all", "--new-session"]
    argv += ["--hostname", "stop-tui-sandbox"]
    # Hide what lies beneath the bound directories (site-packages with stop_tui and
    # its data, other installs, a checkout, the workspace) under empty read-only tmpfs
    # mounts; the guest runtime and numpy are mounted at GUEST_IN_SANDBOX, not where
    # they lie on the host.
    roots = [path for path in read_paths() if path.startswith("/") and path != GUEST_IN_SANDBOX]
    roots = [path for path in roots if not path.startswith("/dev/")]
    needed = [*_standard_library(), *_interpreter_files()]
    masks = _masks(roots, needed)
    bound: list[str] = []
    for path in roots:
        if path in bound or any(_within(path, mask) for mask in masks):
            continue
        if any(_within(path, root) and path != root for root in roots):
            continue  # bound with its directory
        if os.path.islink(path) and os.path.dirname(path) == "/":
            argv += ["--symlink", os.readlink(path), path]
        else:
            argv += ["--ro-bind", path, path]
        bound.append(path)
    for path in masks:
        argv += ["--perms", "0555", "--tmpfs", path]
    for path in masks:
        argv += ["--remount-ro", path]
    guest = os.path.join(guest_root(), "stop_tui")
    argv += ["--ro-bind", guest, f"{GUEST_IN_SANDBOX}/stop_tui"]
    for path in _numpy_dirs():
        argv += ["--ro-bind", path, f"{GUEST_IN_SANDBOX}/{os.path.basename(path)}"]
    argv += ["--dev", "/dev", "--proc", "/proc"]
    argv += ["--size", str(scratch_size), "--tmpfs", SCRATCH_IN_SANDBOX]
    argv += ["--chdir", SCRATCH_IN_SANDBOX]
    return argv


def boot_argv(*args: str, bwrap: bool) -> list[str]:
    """The interpreter command line that runs the guest's zygote module: isolated
    (``-I``), without ``site`` (``-S``: no site-packages, no ``.pth`` files), with
    only the standard library and the private guest root on ``sys.path``."""
    code = (
        "import os, sys; sys.path[:0] = sys.argv[1].split(os.pathsep); "
        "from stop_tui.sandbox.guest.zygote import main; main(sys.argv[3:])"
    )
    # owner=PID names the stop-tui process a sandbox belongs to (for ps and tests).
    roots = os.pathsep.join(import_roots(bwrap))
    return [interpreter(), "-I", "-S", "-B", "-c", code, roots, f"owner={os.getpid()}", *args]


def child_env() -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
