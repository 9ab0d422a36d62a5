"""Moving runs between workspaces as git bundles."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from stop_tui.errors import UserError
from stop_tui.store import RunStore, StepRecord
from stop_tui.store.synthetic import build_run


def refs(store: RunStore) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(
        ["git", "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/stop/",
         "refs/stop/"],
        cwd=store.path, capture_output=True, text=True, check=True, env=env,
    ).stdout  # fmt: skip


def test_round_trip_into_a_second_workspace(tmp_path: Path) -> None:
    a = RunStore(tmp_path / "a", create=True)
    rid = build_run(a, generations=3, candidates=2)
    build_run(a, generations=1, candidates=1, seed=5)  # another run: not exported
    bundle = a.export_bundle(rid, tmp_path / "out" / "run.bundle")
    assert bundle.is_file()
    b = RunStore(tmp_path / "b")  # does not exist yet: import creates it
    assert b.import_bundle(bundle) == [rid]
    assert b.list_steps(rid) == a.list_steps(rid)
    assert refs(b) == "".join(line + "\n" for line in refs(a).splitlines() if f"/{rid}" in line)
    assert b.get_state(rid) == a.get_state(rid)
    assert b.export_scores(rid, "csv") == a.export_scores(rid, "csv")
    assert [r.run_id for r in b.list_runs()] == [rid]
    # Importing the same bundle again changes nothing.
    assert b.import_bundle(bundle) == [rid]
    assert b.list_steps(rid) == a.list_steps(rid)


def test_a_continued_run_fast_forwards(tmp_path: Path) -> None:
    a = RunStore(tmp_path / "a", create=True)
    rid = build_run(a, generations=1, candidates=1)
    b = RunStore(tmp_path / "b", create=True)
    b.import_bundle(a.export_bundle(rid, tmp_path / "1.bundle"))
    with a.open_run(rid) as w:
        build_run(a, generations=2, candidates=1, writer=w)
    b.import_bundle(a.export_bundle(rid, tmp_path / "2.bundle"))
    assert b.list_steps(rid) == a.list_steps(rid)
    assert b.list_runs()[0].generations == 3


def test_different_history_is_refused(tmp_path: Path) -> None:
    a = RunStore(tmp_path / "a", create=True)
    rid = build_run(a, generations=1, candidates=1)
    b = RunStore(tmp_path / "b", create=True)
    b.import_bundle(a.export_bundle(rid, tmp_path / "1.bundle"))
    # Both sides continue the run differently.
    with a.open_run(rid) as w:
        w.commit_step(StepRecord(2, "candidate", "a's idea"), "a = 1\n")
        w.commit_step(StepRecord(2, "adopted", "a's idea"), "a = 1\n")
    with b.open_run(rid) as w:
        w.commit_step(StepRecord(2, "adopted", "b's idea"), "b = 1\n")
    before = refs(b)
    with pytest.raises(UserError) as err:
        b.import_bundle(a.export_bundle(rid, tmp_path / "2.bundle"))
    assert f"run {rid} already exists" in err.value.line()
    assert "different history" in err.value.line()
    assert refs(b) == before


def test_conflicting_candidate_is_refused(tmp_path: Path) -> None:
    a = RunStore(tmp_path / "a", create=True)
    rid = build_run(a, generations=1, candidates=1)
    b = RunStore(tmp_path / "b", create=True)
    b.import_bundle(a.export_bundle(rid, tmp_path / "1.bundle"))
    with a.open_run(rid) as w:
        w.commit_step(StepRecord(2, "candidate", "a"), "a = 1\n")
    with b.open_run(rid) as w:
        w.commit_step(StepRecord(2, "candidate", "b"), "b = 1\n")
    with pytest.raises(UserError, match="different history"):
        b.import_bundle(a.export_bundle(rid, tmp_path / "2.bundle"))


def test_not_a_bundle(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bundle"
    junk.write_text("hello\n")
    store = RunStore(tmp_path / "ws", create=True)
    with pytest.raises(UserError, match="not a git bundle"):
        store.import_bundle(junk)
    with pytest.raises(UserError, match="no bundle file"):
        store.import_bundle(tmp_path / "missing.bundle")
