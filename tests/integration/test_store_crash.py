"""SIGKILL a writer at many different moments: the repository stays valid and resumable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from stop_tui.store import RunStore, StepRecord
from stop_tui.store.synthetic import build_run

ROOT = Path(__file__).resolve().parents[2]
KILLS = 24

WRITER = textwrap.dedent(
    """
    import sys
    from stop_tui.store import RunState, RunStore, StepRecord
    store = RunStore(sys.argv[1])
    w = store.open_run(sys.argv[2], command="crash-test writer")
    print("ready", flush=True)
    while True:
        gen = w.generation + 1
        for n in range(2):
            w.commit_step(
                StepRecord(gen, "candidate", f"idea {n}", meta_utility=0.1 * n + gen / 100),
                f"# gen {gen} candidate {n}\\n" * 20,
                solutions={"test-0.py": "def algorithm():\\n    return 1\\n"},
                transcript=[{"role": "user", "content": "x" * 2000}],
            )
        w.commit_step(
            StepRecord(gen, "adopted", "idea 1", candidate=1, meta_utility=0.1 + gen / 100),
            f"# gen {gen} candidate 1\\n" * 20,
            state=RunState(status="running", generation=gen, budget={"cost": gen / 10}),
        )
        w.save_state(RunState(status="running", generation=gen, phase="between"))
    """
)


def fsck(ws: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(
        ["git", "fsck", "--full", "--strict", "--no-dangling"],
        cwd=ws,
        capture_output=True,
        text=True,
        env=env,
    )


def test_sigkill_at_many_moments_leaves_a_valid_resumable_store(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "ws", create=True)
    rid = build_run(store, generations=1, candidates=1, status="running")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    seen_steps = len(store.list_steps(rid))
    progressed = 0
    for i in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.path), rid],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""
        time.sleep(0.007 * i)  # 0 .. 0.16 s: lands at different points of the write sequence
        os.killpg(proc.pid, signal.SIGKILL)  # the writer and any git it is running
        proc.wait()
        check = fsck(store.path)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "error" not in check.stderr.lower() and "missing" not in check.stdout.lower()
        steps = store.list_steps(rid)  # readable after every kill
        assert len(steps) >= seen_steps
        progressed += len(steps) > seen_steps
        seen_steps = len(steps)
        runs = store.list_runs()
        adopted = max(s.generation for s in steps if s.kind != "candidate")
        assert runs[0].run_id == rid and runs[0].generations == adopted
        records = store.get_records(s.commit for s in steps)  # all complete and parseable
        assert [r.generation if r else None for r in records] == [s.generation for s in steps]
    assert progressed > 0  # the writers did write between the kills
    # A fresh writer continues where the last one died, after clearing the dead one's scratch.
    with store.open_run(rid) as w:
        assert not w.tmp_dir.exists() or not any(w.tmp_dir.iterdir())
        gen = w.generation + 1
        w.commit_step(StepRecord(gen, "candidate", "after the crashes"), "y = 2\n")
        w.commit_step(StepRecord(gen, "adopted", "after the crashes"), "y = 2\n")
    build_run(store, generations=1, candidates=2, writer=store.open_run(rid))
    assert store.list_runs()[0].generations == gen + 1
    assert fsck(store.path).returncode == 0
