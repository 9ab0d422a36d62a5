"""Zygote restarts, concurrent children, fresh scratch per job, no reuse."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest

from stop_tui.sandbox import Child, Limits, Sandbox, codec
from stop_tui.sandbox.launch import package_root
from stop_tui.sandbox.layers import probe
from tests.support.sandbox import sandbox_processes

pytestmark = pytest.mark.skipif(
    not probe().full, reason="the full isolation stack is not available"
)

ECHO = """
import os
def algorithm(op, arg=None):
    if op == "cwd":
        return os.getcwd()
    if op == "write":
        with open("note.txt", "w") as f:
            f.write(arg)
        return os.path.abspath("note.txt")
    if op == "read":
        try:
            return open(arg).read()
        except OSError as exc:
            return "refused: " + type(exc).__name__
    if op == "exists":
        return os.path.exists(arg)
    if op == "sleep":
        import time
        time.sleep(arg)
        return arg
"""


async def start(sb: Sandbox) -> Child:
    child = await sb.spawn("solution", {"source": ECHO, "entry_point": "algorithm"}, Limits())
    assert await child.recv(30) == {"ready": True}
    return child


async def ask(child: Child, *args: Any) -> Any:
    reply = await child.request({"call": codec.encode(list(args))}, timeout=30)
    assert reply.message is not None, child.exit_info
    return reply.message.get("ok", reply.message.get("error"))


async def test_jobs_get_fresh_private_scratch_dirs_removed_afterwards() -> None:
    async with Sandbox() as sb:
        first, second = await start(sb), await start(sb)
        note = await ask(first, "write", "private")
        assert await ask(first, "read", note) == "private"
        # The same path names a different (private) scratch in every job.
        assert (await ask(second, "read", note)).startswith("refused")
        await first.kill()
        third = await start(sb)
        assert await ask(third, "exists", note) is False
        await second.kill()
        await third.kill()


async def test_concurrent_children_answer_independently() -> None:
    async with Sandbox() as sb:
        children = await asyncio.gather(*(start(sb) for _ in range(4)))
        replies = await asyncio.gather(
            *(ask(child, "sleep", (i + 1) / 20) for i, child in enumerate(children))
        )
        assert replies == [0.05, 0.1, 0.15, 0.2]
        for child in children:
            await child.kill()


async def test_a_dead_zygote_takes_its_children_and_is_restarted() -> None:
    async with Sandbox() as sb:
        child = await start(sb)
        zygote = sb._zygote
        assert zygote is not None
        os.killpg(zygote.pid, signal.SIGKILL)
        reply = await child.request({"call": ["sleep", 5]}, timeout=10)
        assert reply.message is None and not reply.timed_out
        info = await child.kill()
        assert info.error is not None or info.signal == signal.SIGKILL
        again = await start(sb)  # a new zygote
        assert sb._zygote is not None and sb._zygote.pid != zygote.pid
        assert await ask(again, "sleep", 0) == 0
        await again.kill()
    assert sandbox_processes(str(package_root())) == []


async def test_closing_the_sandbox_kills_running_children() -> None:
    sb = Sandbox()
    await sb.start()
    child = await start(sb)
    await child.send({"id": "x", "call": ["sleep", 600]})
    await sb.close()
    info = child.exit_info
    assert info is not None and info.signal == signal.SIGKILL and info.stopped
    assert info.summary == "stopped by the parent" and info.limit is None
    assert sandbox_processes(str(package_root())) == []
