"""One writer per run: the second process is told who holds the run; dead holders are released."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stop_tui.errors import UserError
from stop_tui.store import RunStore, StepRecord
from stop_tui.store.lock import process_start
from stop_tui.store.synthetic import build_run

ROOT = Path(__file__).resolve().parents[2]

HOLDER = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from stop_tui.store import RunStore
    store = RunStore(sys.argv[1])
    w = store.open_run(sys.argv[2], command="stop-tui run --demo (holder)")
    if sys.argv[3] == "orphan":
        # A descendant inherits the locked descriptor, then the holder itself dies.
        child = subprocess.Popen(["sleep", "60"], pass_fds=[w.lock.fd])
        print(child.pid, flush=True)
        os._exit(0)
    print("locked", flush=True)
    time.sleep(60)
    """
)


def start_holder(ws: Path, rid: str, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ws), rid, mode],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


@pytest.fixture
def ws(tmp_path: Path) -> tuple[RunStore, str]:
    store = RunStore(tmp_path / "ws", create=True)
    return store, build_run(store, generations=1, candidates=1)


def test_second_writer_is_told_who_holds_the_run(ws: tuple[RunStore, str]) -> None:
    store, rid = ws
    holder = start_holder(store.path, rid, "hold")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError) as err:
            store.open_run(rid)
        line = err.value.line()
        assert f"run {rid} is in use by pid {holder.pid} on {socket.gethostname()}" in line
        assert "stop-tui run --demo (holder)" in line and "\n" not in line
        # Readers are never blocked by a writer.
        assert len(store.list_steps(rid)) == 3
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    # The kernel dropped the killed holder's lock: a fresh writer gets in and can write.
    with store.open_run(rid) as w:
        w.commit_step(StepRecord(2, "candidate"), "x = 1\n")


def test_a_dead_holders_lock_is_released_even_if_a_descendant_keeps_it(
    ws: tuple[RunStore, str],
) -> None:
    store, rid = ws
    holder = start_holder(store.path, rid, "orphan")
    assert holder.stdout is not None
    orphan = int(holder.stdout.readline())
    holder.wait()
    try:
        lock_file = store.lock_dir / f"{rid}.lock"
        # The flock is really still held (by the orphan), and names the dead holder.
        fd = os.open(lock_file, os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
        assert f'"pid": {holder.pid}' in lock_file.read_text()
        with store.open_run(rid) as w:
            assert f'"pid": {os.getpid()}' in lock_file.read_text()
            w.commit_step(StepRecord(2, "candidate"), "x = 1\n")
    finally:
        os.kill(orphan, signal.SIGKILL)


def test_stale_ref_locks_are_cleaned_only_by_the_lock_holder(ws: tuple[RunStore, str]) -> None:
    store, rid = ws
    stale = store.git_dir / "refs/heads/stop" / f"{rid}.lock"
    stale_cand = store.git_dir / "refs/stop" / rid / "candidates/2/0.lock"
    stale_cand.parent.mkdir(parents=True)
    for p in (stale, stale_cand):
        p.write_text("0" * 40 + "\n")
    store.list_runs()
    store.list_steps(rid)
    assert stale.exists() and stale_cand.exists()  # readers leave them alone
    with store.open_run(rid) as w:
        assert not stale.exists() and not stale_cand.exists()
        w.commit_step(StepRecord(2, "candidate"), "x = 1\n")
        w.commit_step(StepRecord(2, "adopted"), "x = 1\n")
    assert store.list_runs()[0].generations == 2


def test_lock_is_released_on_close(ws: tuple[RunStore, str]) -> None:
    store, rid = ws
    w = store.open_run(rid)
    with pytest.raises(UserError, match=f"pid {os.getpid()}"):
        store.open_run(rid)
    w.close()
    store.open_run(rid).close()


def test_a_reused_pid_does_not_keep_a_lock(ws: tuple[RunStore, str]) -> None:
    store, rid = ws
    lock_file = store.lock_dir / f"{rid}.lock"
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    keeper = subprocess.Popen(["sleep", "60"], pass_fds=[fd])  # keeps the flock alive
    os.close(fd)
    try:
        start = process_start(keeper.pid)
        host = socket.gethostname()
        # The lock names a live pid that is really the process that took it: refused.
        lock_file.write_text(json.dumps({"pid": keeper.pid, "host": host, "pid_start": start}))
        with pytest.raises(UserError, match=f"in use by pid {keeper.pid}"):
            store.open_run(rid)
        # Same pid, different start time: the holder died and its pid was reused. Broken.
        lock_file.write_text(json.dumps({"pid": keeper.pid, "host": host, "pid_start": 1}))
        store.open_run(rid).close()
    finally:
        keeper.kill()
        keeper.wait()


def test_a_running_run_whose_writer_is_gone_is_listed_as_interrupted(tmp_path: Path) -> None:
    from stop_tui.store import RunConfig, RunStore

    store = RunStore(tmp_path / "ws", create=True)
    writer = store.create_run(RunConfig(task="parity_noise", model="demo"), "x = 1\n", run_id="r1")
    assert [r.status for r in store.list_runs()] == ["running"]  # its writer holds the lock
    writer.close()  # as after a crash: the state still says running
    assert [r.status for r in store.list_runs()] == ["interrupted"]
