"""Isolation layers: which of them work on this host, and which attacks they cover.

Layers (all of them together are the *full stack*):

``limits``    parent-side controls (wall clock, per-request timeouts, capped
              stdout/stderr, size-checked messages) and rlimits in the child
              (CPU, address space, file size, open files). Always on.
``bwrap``     bubblewrap: new user, pid, network, ipc, uts and mount
              namespaces; only the interpreter prefix, numpy, /usr, /lib*, a
              few /etc files and a private copy of the guest runtime
              (:func:`~stop_tui.sandbox.launch.guest_root`) are bound read-only, and every hidden
              directory beneath them (:func:`~stop_tui.sandbox.launch.hidden_paths`: site-packages with
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
separated) or ``Sandbox(disable=...)``. How the child is launched (its paths, bubblewrap
and interpreter command lines) is :mod:`stop_tui.sandbox.launch`.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stop_tui.sandbox.launch import (
    SCRATCH_IN_SANDBOX,
    bwrap_argv,
    child_env,
    host_read_paths,
    import_roots,
    interpreter,
    read_paths,
)

LAYERS = ("limits", "bwrap", "userns", "landlock", "seccomp")
REQUIRED = ("bwrap", "userns", "landlock", "seccomp")
DISABLE_ENV = "STOP_TUI_SANDBOX_DISABLE"
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
