"""SIGKILL in the middle of a sweep, then ``stop-tui resume SWEEP``: finished cells are
skipped, interrupted ones continue from their last commit, nothing is lost or run twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stop_tui.store.store import RunStore
from tests.support.crash import descendants, fsck_problems, identities, wait_gone
from tests.support.sweep import SMALL_SETTINGS, clean_env, cli, sweep_text

pytestmark = pytest.mark.slow


def steps(store: RunStore, run_id: str) -> list[tuple[str, int, str, int | None]]:
    return [(s.commit, s.generation, s.kind, s.candidate) for s in store.list_steps(run_id)]


def test_sigkill_mid_sweep_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    text = sweep_text(
        ["parity_noise"], [0, 1, 2], generations=2, concurrency=2,
        settings=SMALL_SETTINGS + "demo_latency = 0.15\n",
    )  # fmt: skip
    (tmp_path / "grid.toml").write_text(text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "stop_tui", "sweep", "grid.toml", "--headless"],
        cwd=tmp_path, env=clean_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    ws = tmp_path / "stop-runs"
    store = RunStore(ws)
    deadline = time.monotonic() + 400
    before: dict[str, list[tuple[str, int, str, int | None]]] = {}
    finished_before: set[str] = set()
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            if not store.exists:
                continue
            runs = {r.run_id: r.status for r in store.list_runs()}
            done = {r for r, s in runs.items() if s == "finished"}
            started = {
                r for r, s in runs.items() if s != "finished" and len(store.list_steps(r)) >= 2
            }
            if done and started:
                tree = identities(descendants(proc.pid))
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                assert not wait_gone(tree, 10.0)
                finished_before = done
                before = {r: steps(store, r) for r in runs}
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert finished_before, "the sweep ended before the kill: " + (
        proc.stderr.read() if proc.stderr else ""
    )
    assert fsck_problems(ws) == ""
    (sweep,) = json.loads(cli("sweeps", "--json", cwd=tmp_path).stdout)
    assert sweep["status"] == "running"  # killed: the record says so until resumed
    resumed = cli("resume", sweep["sweep_id"], "--headless", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    (sweep,) = json.loads(cli("sweeps", "--json", cwd=tmp_path).stdout)
    assert sweep["status"] == "finished"
    outcomes = sweep["info"]["outcomes"]
    assert {r for r, s in outcomes.items() if s == "skipped"} == finished_before
    for cell in sweep["cells"]:
        run_id = cell["run_id"]
        after = steps(store, run_id)
        assert store.get_state(run_id).status == "finished"
        if run_id in finished_before:
            assert after == before[run_id]  # skipped: not a commit more
        # Nothing lost: every commit made before the kill is still in the run's history.
        assert set(before.get(run_id, [])) <= set(after)
        # Nothing run twice: one scored seed, one end of generation per generation,
        # candidate numbers unique within their generation.
        ends = [(g, k) for _, g, k, _ in after if k in ("adopted", "kept")]
        assert sorted(g for g, _ in ends) == [1, 2], after
        cands = [(g, c) for _, g, k, c in after if k == "candidate"]
        assert len(cands) == len(set(cands))
        scored = [
            r for r in json.loads(cli("export", run_id, cwd=tmp_path).stdout)
            if r["kind"] == "seed" and r["meta_utility_val"] is not None
        ]  # fmt: skip
        assert len(scored) == 1
        for commit, *_ in after:  # transcripts intact: every step's commit is readable
            store.get_transcript(commit)
    assert fsck_problems(ws) == ""
