"""Harmless attack programs that check the sandbox really stops what it claims.

Used by ``stop-tui doctor --attacks``. Each probe is a mild version of an
attack (one fork, not a bomb; a write into a temporary directory made for the
purpose; a connection to our own listener; a signal to our own ``sleep``;
reading stop-tui's own task data; shared memory, a full scratch and a tangled
scratch between two concurrent jobs; a canary in the environment), so running
them with weak isolation does no harm; it shows what would get through.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import tempfile
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stop_tui.sandbox import codec
from stop_tui.sandbox.api import Sandbox
from stop_tui.sandbox.limits import Limits


@dataclass(frozen=True)
class AttackResult:
    name: str
    blocked: bool
    detail: str


Attack = Callable[[Sandbox, Path], Awaitable[AttackResult]]


async def _run(
    sandbox: Sandbox, source: str, args: list[Any], limits: Limits | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    payload = {"source": textwrap.dedent(source), "entry_point": "attack"}
    async with await sandbox.spawn("solution", payload, limits or Limits(wall_time=20)) as child:
        ready = await child.recv(20)
        reply = None
        if ready == {"ready": True}:
            reply = (await child.request({"call": codec.encode(args)}, 15)).message
    info = child.exit_info
    return reply, info.limit if info else None


async def _fork(sandbox: Sandbox, scratch: Path) -> AttackResult:
    reply, _ = await _run(
        sandbox,
        """
        import os
        def attack():
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            return "forked"
        """,
        [],
    )
    blocked = reply is not None and "PermissionError" in str(reply.get("error"))
    return AttackResult("fork", blocked, _short(reply))


async def _write(sandbox: Sandbox, scratch: Path) -> AttackResult:
    target = scratch / "written-by-the-sandbox"
    reply, _ = await _run(
        sandbox,
        """
        def attack(path):
            with open(path, "w") as f:
                f.write("x")
            return "written"
        """,
        [str(target)],
    )
    return AttackResult("write outside scratch", not target.exists(), _short(reply))


async def _read(sandbox: Sandbox, scratch: Path) -> AttackResult:
    secret = secrets.token_hex(8)
    target = scratch / "hidden.txt"
    target.write_text(secret)
    reply, _ = await _run(
        sandbox, "def attack(path):\n    return open(path).read()\n", [str(target)]
    )
    return AttackResult("read a hidden file", secret not in str(reply), _short(reply))


async def _tcp(sandbox: Sandbox, scratch: Path) -> AttackResult:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.setblocking(False)
        reply, _ = await _run(
            sandbox,
            """
            import socket
            def attack(port):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                return "connected"
            """,
            [listener.getsockname()[1]],
        )
        try:
            listener.accept()[0].close()
            connected = True
        except BlockingIOError:
            connected = False
    return AttackResult("TCP to 127.0.0.1", not connected, _short(reply))


async def _kill(sandbox: Sandbox, scratch: Path) -> AttackResult:
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        reply, _ = await _run(
            sandbox,
            "import os\ndef attack(pid):\n    os.kill(pid, 9)\n    return 'sent'\n",
            [bystander.pid],
        )
        await asyncio.sleep(0.05)
        alive = bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    return AttackResult("kill another process", alive, _short(reply))


def _limit_hit(key: str, name: str, source: str, limits: Limits, limit: str) -> Attack:
    """An attack (called ``key`` in a failed probe's report) that the sandbox must end at
    ``limit``."""

    async def attack(sandbox: Sandbox, scratch: Path) -> AttackResult:
        reply, hit = await _run(sandbox, source, [], limits)
        return AttackResult(name, hit == limit, _short(reply))

    attack.__name__ = f"_{key}"
    return attack


_memory = _limit_hit(
    "memory",
    "2 GiB allocation",
    "def attack():\n    return len(bytearray(2 * 1024 ** 3))\n",
    Limits(memory_mb=256, wall_time=20),
    "memory",
)
_flood = _limit_hit(
    "flood",
    "50 MiB stdout flood",
    "import sys\ndef attack():\n    sys.stdout.write('x' * (50 << 20))\n    return 'done'\n",
    Limits(max_output_bytes=100_000, wall_time=20),
    "output",
)


async def _package_data(sandbox: Sandbox, scratch: Path) -> AttackResult:
    """Read the hidden evaluators and split seeds where this install keeps them, or
    import the task registry (a wheel keeps them inside the interpreter prefix)."""
    from stop_tui import paths

    tasks = paths.tasks_dir()
    targets = [
        str(tasks),
        *map(str, tasks.glob("*/evaluator.py")),
        *map(str, tasks.glob("*/task.toml")),
    ]
    reply, _ = await _run(
        sandbox,
        """
        import os, sys
        def attack(targets, roots):
            got = []
            for path in targets:
                try:
                    got.append(os.listdir(path) if os.path.isdir(path) else open(path).read(1))
                except OSError:
                    pass
            sys.path[:0] = roots
            try:
                from stop_tui.tasks import registry
                got.append(registry.__file__)
            except Exception:
                pass
            return got
        """,
        [targets, [str(tasks.parent), str(Path(paths.PACKAGE_DIR).parent)]],
    )
    blocked = reply is not None and reply.get("ok") == []
    return AttackResult("read the tasks' evaluators and seeds", blocked, _short(reply))


_IPC = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def attack(flags):
    return libc.shmget(0x5709, 4096, flags)  # -1: refused or not found
"""


async def _ipc(sandbox: Sandbox, scratch: Path) -> AttackResult:
    """One job makes System V shared memory, a concurrent job looks for it."""
    payload = {"source": textwrap.dedent(_IPC), "entry_point": "attack"}
    maker = await sandbox.spawn("solution", payload, Limits(wall_time=20))
    finder = await sandbox.spawn("solution", payload, Limits(wall_time=20))
    async with maker, finder:
        for child in (maker, finder):
            await child.recv(20)
        made = (await maker.call([0o1000 | 0o666], 15)).message
        found = (await finder.call([0], 15)).message
    blocked = found is not None and found.get("ok") == -1
    return AttackResult("shared memory between two jobs", blocked, f"made {_short(made)}")


_FILL = """
import os
def attack(op):
    if op == "work":
        with open("data", "wb") as f:
            f.write(bytes(1 << 20))
        for i in range(50):
            open(f"n{i}", "w").close()
        return "worked"
    made = 0
    try:
        while made < 256:
            with open(f"big{made}", "wb") as f:  # 1 MiB files: under the file size limit
                f.write(bytes(1 << 20))
            made += 1
    except OSError:
        pass
    try:
        for i in range(100000):
            open(f"f{i}", "w").close()
    except OSError:
        pass
    return made
"""


async def _scratch(sandbox: Sandbox, scratch: Path) -> AttackResult:
    """A job fills its scratch (bytes, then inodes); a concurrent job must still work."""
    payload = {"source": textwrap.dedent(_FILL), "entry_point": "attack"}
    small = Limits(wall_time=60, scratch_mb=16, scratch_files=256)
    hog = await sandbox.spawn("solution", payload, small)
    other = await sandbox.spawn("solution", payload, Limits(wall_time=60))
    async with hog, other:
        for child in (hog, other):
            await child.recv(20)
        filled = (await hog.call(["fill"], 50)).message
        reply = (await other.call(["work"], 20)).message
    # Held to its own 16 MiB (without per-job scratch it writes all 256 MiB it tries).
    contained = filled is not None and isinstance(filled.get("ok"), int) and filled["ok"] < 256
    blocked = contained and reply is not None and reply.get("ok") == "worked"
    return AttackResult("fill the scratch other jobs use", blocked, f"{_short(filled)} MiB")


_TANGLE = """
import os
def attack(op):
    if op == "sleep":
        import time
        time.sleep(1.0)
        return "awake"
    os.mkdir("wide")
    for i in range(2000):
        open(f"wide/{i}", "w").close()
    os.mkdir("deep"); os.chdir("deep")
    for i in range(1000):
        os.mkdir("d"); os.chdir("d")
    os.chmod(".", 0)
    os.chdir(os.environ["HOME"])
    os.chmod("wide", 0); os.chmod("deep", 0)
    return "tangled"
"""


async def _cleanup(sandbox: Sandbox, scratch: Path) -> AttackResult:
    """A job leaves a tree built to stall its clean-up; a concurrent job must live on."""
    payload = {"source": textwrap.dedent(_TANGLE), "entry_point": "attack"}
    limits = Limits(wall_time=60)
    async with await sandbox.spawn("solution", payload, limits) as innocent:
        bomb = await sandbox.spawn("solution", payload, limits)
        for child in (innocent, bomb):
            await child.recv(20)
        tangled = (await bomb.call(["tangle"], 50)).message
        sleeping = asyncio.ensure_future(innocent.call(["sleep"], 20))
        info = await bomb.kill()
        reply = (await sleeping).message
    blocked = reply is not None and reply.get("ok") == "awake" and info.error is None
    return AttackResult("stall clean-up to kill other jobs", blocked, _short(tangled))


async def _env(sandbox: Sandbox, scratch: Path) -> AttackResult:
    """Secrets in the parent's environment (API keys, stop-tui settings)."""
    canary = "stop-tui-selftest-" + secrets.token_hex(6)
    names = ("OPENAI_API_KEY", "STOP_TUI_SELFTEST_SECRET")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(dict.fromkeys(names, canary))
    try:
        reply, _ = await _run(
            sandbox, "import os\ndef attack():\n    return sorted(os.environ.items())\n", []
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    leaked = reply is None or canary in str(reply)
    return AttackResult("read secrets from the environment", not leaked, "environment scrubbed")


ATTACKS = (
    _fork,
    _write,
    _read,
    _tcp,
    _kill,
    _memory,
    _flood,
    _package_data,
    _ipc,
    _scratch,
    _cleanup,
    _env,
)


def _short(reply: dict[str, Any] | None) -> str:
    if reply is None:
        return "no reply (child ended)"
    reply = {key: value for key, value in reply.items() if key != "id"}
    text = str(reply.get("error", reply.get("ok", reply)))
    return text if len(text) <= 60 else text[:57] + "..."


async def run_attacks(sandbox: Sandbox) -> list[AttackResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="stop-tui-selftest-") as scratch:
        for attack in ATTACKS:
            try:
                results.append(await attack(sandbox, Path(scratch)))
            except Exception as exc:  # a broken probe is a failed check, not a crash
                name = attack.__name__.lstrip("_")
                results.append(AttackResult(name, False, f"probe failed: {exc!r}"))
    with contextlib.suppress(OSError):
        os.rmdir(scratch)
    return results


async def self_test() -> list[AttackResult]:
    """Run every attack against a sandbox with whatever layers work here."""
    async with Sandbox(unsafe=True) as sandbox:
        return await run_attacks(sandbox)
