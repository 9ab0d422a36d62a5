"""Spare children: forked and confined ahead of time, used for exactly one job.

Real processes: the spare's confinement is read from /proc before it has been
sent anything, its first job runs real attacks, and /proc is scanned for
leftovers after close.
"""

from __future__ import annotations

import asyncio
import os
import socket
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from stop_tui.sandbox import Child, Limits, Sandbox, codec
from stop_tui.sandbox.launch import package_root
from stop_tui.sandbox.layers import probe
from tests.support.sandbox import sandbox_processes

pytestmark = pytest.mark.skipif(
    not probe().full, reason="the full isolation stack is not available"
)

ROOT = str(package_root())
LIMITS = Limits(wall_time=30, cpu_time=30)

PROBE = """
import os, socket, sys
sys.stop_tui_jobs = getattr(sys, "stop_tui_jobs", 0) + 1  # would be 2 in a reused process
def algorithm(op, arg=None):
    if op == "jobs":
        return sys.stop_tui_jobs
    if op == "fork":
        try:
            pid = os.fork()
        except OSError as exc:
            return "refused: " + type(exc).__name__
        if pid == 0:
            os._exit(0)
        return "forked"
    if op == "connect":
        try:
            socket.create_connection(("127.0.0.1", arg), timeout=2).close()
        except OSError as exc:
            return "refused: " + type(exc).__name__
        return "connected"
    if op == "read":
        try:
            return open(arg).read()
        except OSError as exc:
            return "refused: " + type(exc).__name__
    if op == "print":
        print(arg, flush=True)
        return "printed"
"""


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                children = Path(f"/proc/{current}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            found += [int(c) for c in children]
            todo += [int(c) for c in children]
    return found


def status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def confined_jobs(sb: Sandbox) -> list[int]:
    """Host pids of job processes (seccomp filter on) under this sandbox's zygote."""
    assert sb._zygote is not None
    return [pid for pid in descendants(sb._zygote.pid) if status(pid).get("Seccomp") == "2"]


async def wait_for(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.02)


async def ask(child: Child, *args: Any) -> Any:
    reply = await child.request({"call": codec.encode(list(args))}, timeout=30)
    assert reply.message is not None, child.exit_info
    return reply.message.get("ok", reply.message.get("error"))


async def spawn_from_spare(sb: Sandbox, limits: Limits = LIMITS) -> Child:
    """Spawn after a spare for ``limits`` exists; check that spawn handed out that spare."""
    sb.prepare(limits)
    assert await wait_for(lambda: sb._spares.get(limits)), "no spare was prepared"
    spare = sb._spares[limits][0]
    child = await sb.spawn("solution", {"source": PROBE, "entry_point": "algorithm"}, limits)
    assert child is spare
    assert spare not in sb._spares.get(limits, [])
    assert await child.recv(30) == {"ready": True}
    return child


async def test_a_waiting_spare_is_already_confined() -> None:
    async with Sandbox() as sb:
        sb.prepare(LIMITS)
        jobs = await wait_for(lambda: len(confined_jobs(sb)) >= sb.spares and confined_jobs(sb))
        assert len(jobs) == sb.spares == 2, "the spares, nothing else running"
        info = status(jobs[0])
        # Nothing has been sent to it yet: it is waiting for its payload, confined.
        assert info["NoNewPrivs"] == "1"
        assert int(info["CapEff"], 16) == 0 and int(info["CapBnd"], 16) == 0
        limits = Path(f"/proc/{jobs[0]}/limits").read_text()
        assert "Max address space" in limits
        address_space = next(line for line in limits.splitlines() if "address space" in line)
        assert str(LIMITS.memory_mb * 1024 * 1024) in address_space
        assert not any(spare._armed for spare in sb._spares[LIMITS])


async def test_a_spares_first_job_cannot_fork_connect_or_read_hidden_files(
    tmp_path: Path,
) -> None:
    hidden = tmp_path / "hidden.txt"
    hidden.write_text("the hidden answer")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        async with Sandbox() as sb:
            child = await spawn_from_spare(sb)
            async with child:
                assert (await ask(child, "fork")).startswith("refused")
                assert (await ask(child, "connect", port)).startswith("refused")
                assert (await ask(child, "read", str(hidden))).startswith("refused")
                assert await ask(child, "jobs") == 1
        with pytest.raises(BlockingIOError):
            listener.accept()  # no connection ever reached the listener
    finally:
        listener.close()


async def test_spares_are_never_reused() -> None:
    async with Sandbox() as sb:
        seen: list[Child] = []
        for _ in range(3):
            child = await spawn_from_spare(sb)
            assert all(child is not other for other in seen)
            assert await ask(child, "jobs") == 1  # a fresh process every time
            seen.append(child)
            await child.kill()
        # A used child never comes back as a spare, and it is dead.
        for child in seen:
            assert child.exit_info is not None and child.exit_info.stopped
            assert all(child not in pool for pool in sb._spares.values())


async def test_closing_the_sandbox_leaves_no_process_behind() -> None:
    async with Sandbox() as sb:
        running = await spawn_from_spare(sb)
        other = Limits(wall_time=20, cpu_time=20)
        sb.prepare(other)
        sb.prepare(LIMITS)
        expected = 1 + 2 * sb.spares  # the running job and the spares of two profiles
        await wait_for(lambda: len(confined_jobs(sb)) >= expected)
        assert sb._zygote is not None
        tree = [*descendants(sb._zygote.pid), sb._zygote.pid]
        assert len(confined_jobs(sb)) == expected
        assert running.alive
    assert running.exit_info is not None
    assert sandbox_processes(ROOT) == []
    left = await wait_for(lambda: not [p for p in tree if Path(f"/proc/{p}").exists()], 5)
    assert left, [status(p).get("Name") for p in tree if Path(f"/proc/{p}").exists()]


async def test_kill_soon_returns_the_output_written_before_the_last_reply() -> None:
    async with Sandbox() as sb:
        child = await spawn_from_spare(sb)
        for i in range(3):
            assert await ask(child, "print", f"line {i}") == "printed"
        stdout, _stderr = child.kill_soon()
        assert stdout == "line 0\nline 1\nline 2\n"
        info = await child.kill()  # the background kill completes
        assert info.stopped and not child.alive


async def test_the_wall_limit_starts_when_a_spare_gets_its_job() -> None:
    limits = Limits(wall_time=1.5, cpu_time=10)
    async with Sandbox() as sb:
        sb.prepare(limits)
        await wait_for(lambda: confined_jobs(sb))
        await asyncio.sleep(2.0)  # longer than the wall limit: waiting is not working
        sleeper = textwrap.dedent(
            """
            import time
            def algorithm(seconds):
                time.sleep(seconds)
                return seconds
            """
        )
        child = await sb.spawn("solution", {"source": sleeper, "entry_point": "algorithm"}, limits)
        assert await child.recv(10) == {"ready": True}
        reply = await child.request({"call": [0.2]}, timeout=5)
        assert reply.message is not None and reply.message.get("ok") == 0.2
        reply = await child.request({"call": [30]}, timeout=20)
        assert reply.message is None
        info = await child.kill()
        assert info.limit == "wall"
