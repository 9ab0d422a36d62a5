"""Where a workspace may live, and that it never touches anyone else's repository."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from stop_tui.errors import UserError
from stop_tui.store import RunStore
from stop_tui.store.synthetic import build_run


def git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="u", GIT_AUTHOR_EMAIL="u@x", GIT_COMMITTER_NAME="u",
               GIT_COMMITTER_EMAIL="u@x")  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=env
    ).stdout


def snapshot(repo: Path) -> dict[str, str]:
    """Everything about a repository that a stray write would change."""
    return {
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "head": git(repo, "rev-parse", "HEAD"),
        "objects": git(repo, "count-objects", "-v"),
        "config": (repo / ".git/config").read_text(),
        "index": hashlib.sha256((repo / ".git/index").read_bytes()).hexdigest(),
        "log_all": git(repo, "log", "--all", "--format=%H %s"),
    }


def test_refuses_a_non_empty_directory_that_is_not_a_workspace(tmp_path: Path) -> None:
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    with pytest.raises(UserError) as err:
        RunStore(d, create=True)
    assert "not empty and is not a stop-tui workspace" in err.value.line()
    assert "\n" not in err.value.line()
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]


def test_refuses_someone_elses_git_repository(tmp_path: Path) -> None:
    d = tmp_path / "repo"
    d.mkdir()
    git(d, "init", "-q")
    before = (d / ".git/config").read_text()
    with pytest.raises(UserError, match="not a stop-tui workspace"):
        RunStore(d, create=True)
    assert (d / ".git/config").read_text() == before


def test_empty_and_missing_directories(tmp_path: Path) -> None:
    missing = tmp_path / "later"
    store = RunStore(missing)
    assert store.list_runs() == [] and not missing.exists()  # reading never creates
    empty = tmp_path / "empty"
    empty.mkdir()
    store = RunStore(empty, create=True)
    assert git(empty, "config", "--get", "stop-tui.workspace").strip() == "1"
    rid = build_run(store, generations=1, candidates=1)
    # Reopening finds the workspace, even with a checkout of a run in its work tree.
    git(empty, "checkout", "-q", f"stop/{rid}")
    assert [r.run_id for r in RunStore(empty).list_runs()] == [rid]


def test_workspace_inside_a_users_repository_leaves_it_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "project"
    user.mkdir()
    git(user, "init", "-q")
    (user / "app.py").write_text("print('hi')\n")
    git(user, "add", "app.py")
    git(user, "commit", "-q", "-m", "user's work")
    before = snapshot(user)
    # Even a GIT_DIR pointing at the user's repository must not redirect our writes.
    monkeypatch.setenv("GIT_DIR", str(user / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(user / ".git/index"))
    store = RunStore(user / "stop-runs", create=True)
    rid = build_run(store, generations=2, candidates=2)
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert snapshot(user) == before
    assert (user / "stop-runs/.git").is_dir()
    assert len(git(user / "stop-runs", "log", "--format=%H", f"stop/{rid}").split()) == 3
    assert git(user / "stop-runs", "rev-parse", "--show-toplevel").strip() == str(
        user / "stop-runs"
    )


def test_default_workspace_is_stop_runs_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STOP_TUI_WORKSPACE", raising=False)
    store = RunStore(create=True)
    assert store.path == tmp_path / "stop-runs" and (tmp_path / "stop-runs/.git").is_dir()
    monkeypatch.setenv("STOP_TUI_WORKSPACE", str(tmp_path / "elsewhere"))
    assert RunStore().path == tmp_path / "elsewhere"


def test_bad_run_ids_are_refused(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "ws", create=True)
    for bad in ("../x", "a b", "x.lock", "-x", ""):
        with pytest.raises(UserError, match="bad run id"):
            store.list_steps(bad)
