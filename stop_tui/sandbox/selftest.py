"""Harmless attack programs that check the sandbox really stops what it claims.

Used by ``stop-tui doctor --attacks``. Each probe is a mild version of an
attack (one fork, not a bomb; a write into a temporary directory made for the
purpose; a connection to our own listener; a signal to our own ``sleep``), so
running them with weak isolation does no harm; it shows what would get through.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stop_tui.sandbox import codec
from stop_tui.sandbox.api import Limits, Sandbox


@dataclass(frozen=True)
class AttackResult:
    name: str
    blocked: bool
    detail: str


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


async def _memory(sandbox: Sandbox, scratch: Path) -> AttackResult:
    reply, limit = await _run(
        sandbox,
        "def attack():\n    return len(bytearray(2 * 1024 ** 3))\n",
        [],
        Limits(memory_mb=256, wall_time=20),
    )
    return AttackResult("2 GiB allocation", limit == "memory", _short(reply))


async def _flood(sandbox: Sandbox, scratch: Path) -> AttackResult:
    reply, limit = await _run(
        sandbox,
        "import sys\ndef attack():\n    sys.stdout.write('x' * (50 << 20))\n    return 'done'\n",
        [],
        Limits(max_output_bytes=100_000, wall_time=20),
    )
    return AttackResult("50 MiB stdout flood", limit == "output", _short(reply))


ATTACKS = (_fork, _write, _read, _tcp, _kill, _memory, _flood)


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
