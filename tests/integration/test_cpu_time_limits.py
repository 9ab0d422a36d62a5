"""Per-instance time limits are CPU time, measured outside the job (read by the parent
from /proc with the pid the supervisor's credentials gave, or asked of the supervisor),
so scores, and therefore replays, do not depend on how busy the machine is; the wall
clock stays a backstop that no sleeping or blocking solution gets past."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stop_tui.engine.replay import replay
from stop_tui.sandbox import Sandbox, codec, usage
from stop_tui.sandbox.api import Limits, Reply
from stop_tui.sandbox.layers import probe
from stop_tui.tasks import get_task
from stop_tui.tasks.evaluate import evaluate, instance_wall
from tests.support.engine import small_config, store_run

pytestmark = [
    pytest.mark.skipif(not probe().full, reason="the full isolation stack is not available"),
    pytest.mark.timeout(900),
]

SOURCE = textwrap.dedent(
    """
    import threading, time

    def algorithm(mode, seconds):
        if mode == "sleep":
            time.sleep(seconds)
        elif mode == "spin":
            end = time.process_time() + seconds
            while time.process_time() < end:
                pass
        elif mode == "thread":  # the work happens in another thread
            def spin():
                end = time.thread_time() + seconds
                while time.thread_time() < end:
                    pass
            worker = threading.Thread(target=spin)
            worker.start()
            worker.join()
        elif mode == "forever":
            while True:
                pass
        elif mode == "forked":  # a child process spins (and goes on); the job only waits
            import os
            ready, told = os.pipe()
            if os.fork() == 0:
                end = time.process_time() + seconds
                while time.process_time() < end:
                    pass
                os.write(told, b"x")  # it has used `seconds` of CPU, however busy the machine
                while True:
                    pass
            os.read(ready, 1)
        return mode
    """
)


async def _job(sandbox: Sandbox, mode: str, seconds: float, limit: float, wall: float) -> Reply:
    child = await sandbox.spawn("solution", {"source": SOURCE, "entry_point": "algorithm"})
    async with child:
        assert await child.recv(timeout=20) == {"ready": True}
        message = {"call": codec.encode([mode, seconds])}
        return await child.request(message, timeout=wall, cpu_limit=limit)


@pytest.fixture(params=["read", "asked"])
def measured(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways the parent learns a job's CPU time: read from /proc itself, or (no
    credentials came with the supervisor's HELLO) asked of the supervisor."""
    if request.param == "asked":
        monkeypatch.setattr(usage, "enable_credentials", lambda sock: False)
    return str(request.param)


async def test_cpu_spent_is_measured_outside_the_child_and_bounds_each_request(
    measured: str,
) -> None:
    async with Sandbox() as sandbox:
        slept = await _job(sandbox, "sleep", 0.6, limit=0.3, wall=30)
        spun = await _job(sandbox, "spin", 0.6, limit=0.3, wall=30)
        threaded = await _job(sandbox, "thread", 0.6, limit=0.3, wall=30)
        endless = await _job(sandbox, "forever", 0, limit=0.3, wall=60)
    # Sleeping twice the limit uses almost no CPU: it replies, under the limit.
    assert slept.message is not None and not slept.timed_out
    assert slept.cpu is not None and slept.cpu < 0.3
    # Spinning past the limit, in the main thread or another one, is a timeout:
    # the supervisor's count covers every thread and it cannot be forged inside.
    for reply in (spun, threaded, endless):
        assert reply.timed_out and reply.message is None
        assert reply.cpu is not None and reply.cpu > 0.3


async def test_the_parent_reads_the_cpu_of_the_job_below_the_supervisor() -> None:
    """The pid the kernel attached to the supervisor's HELLO is the supervisor's in the
    parent's namespace; its one child is the job, whose /proc reading matches what the
    supervisor answers; a job that may fork is measured as a whole tree."""
    async with Sandbox() as sandbox:
        child = await sandbox.spawn("solution", {"source": SOURCE, "entry_point": "algorithm"})
        async with child:
            assert await child.recv(timeout=20) == {"ready": True}
            await asyncio.wait_for(child._greeted, 20)  # the HELLO is handled
            reader = child._job_usage
            assert reader is not None and reader.single
            stat = Path(f"/proc/{reader.job}/stat").read_text()
            assert int(stat[stat.rfind(")") + 2 :].split()[1]) == reader.supervisor  # ppid
            reply = await child.request(
                {"call": codec.encode(["spin", 0.2])}, timeout=30, cpu_limit=0.35
            )
            assert reply.message is not None and reply.cpu is not None
            read = reader.seconds()
            child._job_usage = None  # now ask the supervisor
            asked = await child.cpu_used()
            assert read is not None and asked is not None
            # the scheduler's nanoseconds vs the supervisor's clock ticks (10 ms each)
            assert read >= 0.2 and abs(read - asked) <= 0.03
        assert reader.seconds() is None  # gone: never a process that reused the pid
        forking = await sandbox.spawn(
            "solution",
            {"source": SOURCE, "entry_point": "algorithm"},
            limits=Limits(max_processes=4),
        )
        async with forking:
            assert await forking.recv(timeout=20) == {"ready": True}
            await asyncio.wait_for(forking._greeted, 20)
            tree = forking._job_usage
            assert tree is not None and not tree.single
            before = tree.seconds()
            reply = await forking.request({"call": codec.encode(["forked", 0.3])}, timeout=60)
            after = tree.seconds()
            assert reply.message is not None and before is not None and after is not None
            assert after - before >= 0.28  # the live child's CPU counts for the job (1 tick)


def test_a_reading_after_the_job_ended_is_dropped() -> None:
    """Once the job has exited (even before it is reaped and its pid can be reused), its
    clock is no longer read: the pidfd held from the start says it ended."""
    job = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                           stdin=subprocess.PIPE)  # fmt: skip
    reader = usage.JobUsage(os.getpid(), job.pid, single=True)
    try:
        assert reader.seconds() is not None
        assert job.stdin is not None
        job.stdin.close()  # it exits; not reaped yet
        deadline = time.monotonic() + 30
        while reader.seconds() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reader.seconds() is None
    finally:
        reader.close()
        job.wait()
    with pytest.raises(ProcessLookupError):  # not the child of that "supervisor"
        usage.JobUsage(os.getpid(), os.getppid(), single=True)


SLEEPER = textwrap.dedent(
    """
    import time
    def algorithm(t, dist):
        time.sleep({seconds})
        return t
    """
)
SPINNER = textwrap.dedent(
    """
    import time
    def algorithm(t, dist):
        end = time.process_time() + {seconds}
        while time.process_time() < end:
            pass
        return t
    """
)


async def test_the_verdict_is_cpu_time_and_the_wall_clock_is_only_a_backstop() -> None:
    task = get_task("str_grid_dist")  # time_limit 0.1 s
    limit = task.time_limit
    async with Sandbox() as sandbox:
        seed = await evaluate(task, task.seed_solution, "val", sandbox)
        # Twice the limit in wall time, no CPU: the same score as the seed.
        asleep = await evaluate(task, SLEEPER.format(seconds=2 * limit), "val", sandbox)
        # Three times the limit in CPU: every instance run is a timeout.
        busy = await evaluate(task, SPINNER.format(seconds=3 * limit), "val", sandbox)
        # Sleeping past the wall backstop is a timeout too (never a stall).
        stalled = await evaluate(
            task, SLEEPER.format(seconds=instance_wall(task) + 5), "val", sandbox
        )
    assert "timeout" not in asleep.flags
    assert [r.score for r in asleep.instances] == [r.score for r in seed.instances]
    assert [r.flag for r in busy.instances[:3]] == ["timeout"] * 3
    assert busy.score == 0.0
    assert [r.flag for r in stalled.instances[:3]] == ["timeout"] * 3


@pytest.fixture
def busy_cores() -> Iterator[None]:
    """Three processes spinning on the 2 cores (killed after; bounded by RLIMIT_CPU in
    case the test process dies first). No ``timeout`` wrapper: killing the wrapper left
    its spinning child behind for the rest of the test session."""
    spin = "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (300, 300))\nwhile True: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(3)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


async def test_a_run_replays_exactly_while_the_cores_are_busy(
    busy_cores: None, tmp_path: Path
) -> None:
    config = small_config(generations=2, seed=7)
    async with Sandbox() as sandbox:
        run, store, backend = store_run(sandbox, config, tmp_path / "runs")
        status = await run.run()
        await backend.aclose()
        assert status == "finished"
        report = await replay(store, config.run_id, sandbox=sandbox)
    assert report.ok, report.divergence
    assert report.steps and all(step.recorded == step.replayed for step in report.steps)
