"""Isolation layers: what this host supports, and how the child is launched.

Layers (all of them together are the *full stack*):

``limits``    parent-side controls (wall clock, per-request timeouts, capped
              stdout/stderr, size-checked messages) and rlimits in the child
              (CPU, address space, file size, open files). Always on.
``bwrap``     bubblewrap: new user, pid, network, ipc, uts and mount
              namespaces; only the interpreter prefix, numpy, /usr, /lib*, a
              few /etc files and a private copy of the guest runtime
              (:func:`guest_root`) are bound read-only, and every hidden
              directory beneath them (:func:`hidden_paths`: site-packages with
              stop_tui and its data, a checkout, cwd, workspace) is masked by
              an empty read-only tmpfs; ``--die-with-parent``.
``userns``    fresh user, pid, mount and IPC namespaces per job: killing the
              job's pid 1 kills everything it started (also ``setsid()``
              orphans); its scratch is a private tmpfs with size and inode
              limits, its System V IPC and POSIX message queues its own.
``landlock``  file access beneath the read-only paths and the job's scratch
              directory only; TCP bind/connect denied (ABI >= 4); signals and
              abstract unix sockets scoped to the job (ABI >= 6).
``seccomp``   BPF filter: no fork (when one process is allowed), no sockets but
              AF_UNIX, no kill of other processes, no ptrace/mount/namespaces/bpf...

:func:`probe` tests each layer for real (in throw-away child processes) and
caches the answer per set of disabled layers. Layers can be switched off for
tests or debugging with ``STOP_TUI_SANDBOX_DISABLE=bwrap,landlock`` (comma
separated) or ``Sandbox(disable=...)``.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import stop_tui

LAYERS = ("limits", "bwrap", "userns", "landlock", "seccomp")
REQUIRED = ("bwrap", "userns", "landlock", "seccomp")
DISABLE_ENV = "STOP_TUI_SANDBOX_DISABLE"
SCRATCH_IN_SANDBOX = "/scratch"
TMPFS_BYTES = 1 << 30
BWRAP_BLOCKED = "is installed but cannot create namespaces here"

TITLES = {
    "limits": "parent controls + rlimits",
    "bwrap": "bubblewrap namespaces",
    "userns": "per-job pid namespace",
    "landlock": "Landlock",
    "seccomp": "seccomp filter",
}


@dataclass(frozen=True)
class Layer:
    name: str
    active: bool
    detail: str

    @property
    def title(self) -> str:
        return TITLES[self.name]

    @property
    def fix(self) -> str:
        """The exact command or switch for this host (:mod:`stop_tui.sandbox.hostfix`)."""
        from stop_tui.sandbox.hostfix import fix_for

        # bwrap that is there but blocked needs user namespaces; missing or switched
        # off, it needs installing.
        return fix_for(self.name, bwrap_blocked=BWRAP_BLOCKED in self.detail)


@dataclass(frozen=True)
class Attack:
    name: str
    covered_by: tuple[str, ...]  # active layers that stop it

    @property
    def covered(self) -> bool:
        return bool(self.covered_by)


@dataclass(frozen=True)
class IsolationReport:
    """Which layers work on this host and which attacks are left uncovered."""

    system: str
    layers: tuple[Layer, ...]
    landlock_abi: int
    attacks: tuple[Attack, ...] = field(default=())

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)

    def active(self, name: str) -> bool:
        return self.layer(name).active

    @property
    def missing(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.name in REQUIRED and not layer.active]

    @property
    def full(self) -> bool:
        return not self.missing and self.active("limits")

    @property
    def uncovered(self) -> list[str]:
        return [attack.name for attack in self.attacks if not attack.covered]

    def refusal(self) -> str:
        """One line naming the missing layers and the fixes."""
        missing = self.missing or [self.layer("limits")]
        names = ", ".join(layer.title for layer in missing)
        fixes = "; ".join(dict.fromkeys(layer.fix for layer in missing))
        return (
            f"isolation is weaker than the full stack on this host (missing: {names}); "
            f"fix: {fixes}, or pass --unsafe to run with weaker isolation"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "full": self.full,
            "landlock_abi": self.landlock_abi,
            "layers": {
                layer.name: {"active": layer.active, "detail": layer.detail, "fix": layer.fix}
                for layer in self.layers
            },
            "attacks": {attack.name: list(attack.covered_by) for attack in self.attacks},
            "uncovered": self.uncovered,
        }


# ------------------------------------------------------------------- host paths

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


# ------------------------------------------------------------------------ probe

_PROBE_CODE = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from stop_tui.sandbox.guest import confine
checks = json.loads(sys.argv[2])
out = {"landlock_abi": confine.landlock_abi()}

def in_child(fn):
    pid = os.fork()
    if pid == 0:
        try:
            code = 0 if fn() else 1
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0

def seccomp():
    confine.apply_seccomp(allow_fork=False)
    try:
        os.fork()
    except PermissionError:
        pass
    else:
        os._exit(3)
    try:
        import socket
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return True
    return False

def landlock():
    confine.apply_landlock(json.loads(sys.argv[3]), [])
    try:
        open(sys.argv[4], "rb").close()
    except PermissionError:
        return True
    return False

def userns():
    scratch = sys.argv[5]
    confine.enter_job_namespaces(scratch, 1 << 20, 64)
    pid = os.fork()
    if pid == 0:
        with open(os.path.join(scratch, "probe"), "w") as f:
            f.write("x")
        os._exit(0 if os.getpid() == 1 and os.listdir(scratch) == ["probe"] else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0

for name in checks:
    out[name] = in_child(globals()[name])
print(json.dumps(out))
"""


def _run_probe(prefix: list[str], checks: list[str], secret: str) -> dict[str, Any] | None:
    root = import_roots(bool(prefix))[0]
    argv = [*prefix, interpreter(), "-I", "-S", "-B", "-c", _PROBE_CODE, root]
    allowed = read_paths() if prefix else host_read_paths()
    with tempfile.TemporaryDirectory(prefix="stop-tui-probe-") as host_scratch:
        scratch = SCRATCH_IN_SANDBOX if prefix else host_scratch
        argv += [json.dumps(checks), json.dumps(list(allowed)), secret, scratch]
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=30,
                env=child_env(),
                cwd="/",
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
    if result.returncode != 0:
        return None
    try:
        value = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return value if isinstance(value, dict) else None


def disabled_from_env() -> frozenset[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return frozenset(item.strip() for item in raw.split(",") if item.strip())


def probe(disable: Iterable[str] = ()) -> IsolationReport:
    """Test which layers work here (cached); ``disable`` switches layers off."""
    return _probe(frozenset(disable) | disabled_from_env())


@functools.cache
def _probe(disabled: frozenset[str]) -> IsolationReport:
    system = platform.system()
    unknown = disabled - set(LAYERS)
    if unknown:
        from stop_tui.errors import UserError

        raise UserError(
            f"unknown sandbox layer(s) {', '.join(sorted(unknown))} in {DISABLE_ENV}",
            hint=f"use some of {', '.join(LAYERS)}",
        )
    status: dict[str, tuple[bool, str]] = {}
    abi = 0
    if system != "Linux":
        for name in LAYERS:
            status[name] = (False, f"not available on {system}")
        return _report(system, status, abi, disabled)
    status["limits"] = (True, "wall clock, timeouts, output and message caps, rlimits")
    prefix: list[str] = []
    bwrap = shutil.which("bwrap")
    if "bwrap" in disabled:
        status["bwrap"] = (False, "disabled")
    elif bwrap is None:
        status["bwrap"] = (False, "bwrap not found on PATH")
    else:
        prefix = bwrap_argv(scratch_size=1 << 20)
        prefix[0] = bwrap
    checks = [name for name in ("userns", "landlock", "seccomp") if name not in disabled]
    secret = "/proc/self/status"  # exists with and without bwrap; not on the Landlock list
    result = _run_probe(prefix, checks, secret) if prefix else None
    if prefix and result is None:
        status["bwrap"] = (False, f"{bwrap} {BWRAP_BLOCKED}")
        prefix = []
    elif prefix:
        status["bwrap"] = (True, f"{bwrap}: user, pid, net, ipc, uts, mount namespaces")
    if result is None:
        result = _run_probe([], checks, secret) or {}
    abi = int(result.get("landlock_abi", 0))
    for name in ("userns", "landlock", "seccomp"):
        if name in disabled:
            status[name] = (False, "disabled")
        elif result.get(name):
            status[name] = (True, _DETAILS[name](abi))
        else:
            status[name] = (False, _FAILED[name](abi))
    return _report(system, status, abi, disabled)


_DETAILS = {
    "userns": lambda abi: "each job: own pid and IPC namespaces, private size-limited tmpfs",
    "landlock": lambda abi: (
        f"ABI {abi}: files"
        + (", TCP" if abi >= 4 else "")
        + (", signals, abstract sockets" if abi >= 6 else "")
    ),
    "seccomp": lambda abi: f"BPF filter on {platform.machine()}",
}
_FAILED = {
    "userns": lambda abi: "cannot create per-job user, pid, mount, IPC namespaces + tmpfs",
    "landlock": lambda abi: "not supported by this kernel" if abi == 0 else f"ABI {abi} failed",
    "seccomp": lambda abi: f"cannot install a filter on {platform.machine()}",
}


def _report(
    system: str, status: dict[str, tuple[bool, str]], abi: int, disabled: frozenset[str]
) -> IsolationReport:
    layers = tuple(Layer(name, *status[name]) for name in LAYERS)
    on = {layer.name for layer in layers if layer.active}
    landlock_net = "landlock" in on and abi >= 4
    landlock_signal = "landlock" in on and abi >= 6
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0

    def by(*names: str) -> tuple[str, ...]:
        return tuple(name for name in names if name in on)

    attacks = (
        Attack("fork bomb", by("seccomp") + (() if is_root else by("limits"))),
        Attack("memory bomb", by("limits")),
        Attack("busy loop, endless sleep", by("limits")),
        Attack("stdout flood", by("limits")),
        Attack("write outside scratch", by("bwrap", "landlock")),
        Attack("read the user's files", by("bwrap", "landlock")),
        Attack(
            "network (TCP to localhost)",
            by("bwrap", "seccomp") + (("landlock",) if landlock_net else ()),
        ),
        Attack(
            "kill the parent or other processes",
            by("bwrap", "userns", "seccomp") + (("landlock",) if landlock_signal else ()),
        ),
        Attack("setsid orphan outlives the job", by("userns", "seccomp")),
        Attack("outlive the parent", by("bwrap", "limits")),
        Attack("read stop-tui's evaluators, seeds, config", by("bwrap", "landlock")),
        Attack("IPC between jobs (SysV, POSIX mq)", by("userns", "seccomp")),
        Attack("abstract sockets between jobs", ("landlock",) if landlock_signal else ()),
        Attack("fill the scratch of other jobs", by("userns")),
        Attack("stall clean-up to kill other jobs", by("limits")),
        Attack("secrets in the environment", by("limits")),
    )
    return IsolationReport(system=system, layers=layers, landlock_abi=abi, attacks=attacks)
