"""The workspace: the git repository runs live in (opening, creating, its refs).

A workspace is marked by ``stop-tui.workspace = 1`` in its ``.git/config``; a
non-empty directory without that mark is refused, never written to.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from stop_tui.errors import UserError
from stop_tui.store.gitcmd import Git, base_env, git_executable, user_signing_config
from stop_tui.store.integrity import one_line
from stop_tui.store.layout import (
    MARKER_KEY,
    RUN_ID_RE,
    SHOW_RUNS_HINT,
    branch_ref,
    default_workspace,
)


class Workspace:
    """A directory holding a workspace of runs (its own git repository).

    ``path`` defaults to ``$STOP_TUI_WORKSPACE`` or ``./stop-runs``. With
    ``create=True`` a missing or empty directory becomes a new workspace;
    otherwise a missing workspace reads as empty. A non-empty directory that is
    not a stop-tui workspace is refused (:class:`UserError`).
    """

    def __init__(self, path: str | Path | None = None, *, create: bool = False) -> None:
        self.path = Path(path) if path is not None else default_workspace()
        self.path = self.path.expanduser().absolute()
        self.git_dir = self.path / ".git"
        self.lock_dir = self.git_dir / "stop-locks"
        self._git: Git | None = None
        self._signing: list[str] | None = None
        if self._is_workspace():
            return
        if self.path.exists():
            if not self.path.is_dir():
                raise UserError(
                    f"{self.path} is a file, not a stop-tui workspace",
                    hint="pass --workspace with a directory",
                )
            if any(self.path.iterdir()):
                raise UserError(
                    f"{self.path} is not empty and is not a stop-tui workspace",
                    hint="choose an empty or new directory with --workspace",
                )
        if create:
            self._init()

    def _is_workspace(self) -> bool:
        if not (self.git_dir / "config").is_file() or not self.git_dir.is_dir():
            return False
        proc = Git(self.git_dir).run(["config", "--get", MARKER_KEY], check=False)
        return proc.returncode == 0 and proc.stdout.strip() == b"1"

    def _init(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [git_executable(), "init", "-q", "-b", "main", str(self.path)],
            capture_output=True,
            env=base_env(None),
            check=False,
        )
        if proc.returncode != 0:
            raise UserError(
                f"could not create a git repository in {self.path}: "
                + one_line(proc.stderr.decode(errors="replace")),
                hint="check the directory's permissions",
            )
        git = Git(self.git_dir)
        git.run(["config", MARKER_KEY, "1"])
        git.run(["config", "gc.auto", "0"])  # never repack behind a writer's back
        self.lock_dir.mkdir(exist_ok=True)

    def signing_args(self) -> list[str]:
        """``-c`` arguments with the user's commit-signing settings ([] when not signing)."""
        if self._signing is None:
            self._signing = user_signing_config()
        return self._signing

    @property
    def exists(self) -> bool:
        return self.git_dir.is_dir()

    @property
    def git(self) -> Git:
        if self._git is None:
            if not self.exists:
                raise UserError(f"no stop-tui workspace at {self.path}", hint=SHOW_RUNS_HINT)
            self._git = Git(self.git_dir)
        return self._git

    def ensure_created(self) -> None:
        if not self.exists:
            self._init()

    def has_run(self, run_id: str) -> bool:
        return (
            self.exists
            and bool(RUN_ID_RE.match(run_id))
            and self.git.rev(branch_ref(run_id)) is not None
        )

    def require_run(self, run_id: str) -> None:
        if not self.has_run(run_id):
            raise UserError(f"unknown run {run_id!r} in {self.path}", hint=SHOW_RUNS_HINT)

    def run_refs(self, run_id: str) -> dict[str, str]:
        """Every ref of a run (its branch, best, state and candidates) and the commit it names."""
        out = self.git.out(
            ["for-each-ref", "--format=%(refname) %(objectname)", branch_ref(run_id),
             f"refs/stop/{run_id}/"]
        )  # fmt: skip
        refs = {}
        for line in out.splitlines():
            name, sha = line.split(" ")
            if name == branch_ref(run_id) or name.startswith(f"refs/stop/{run_id}/"):
                refs[name] = sha
        return refs

    def update_refs(self, updates: Iterable[tuple[str, str, str]]) -> None:
        """ONE ``update-ref --stdin`` transaction of ``(ref, new, old)`` (compare-and-swap)."""
        lines = ["start"] + [f"update {ref} {new} {old}" for ref, new, old in updates]
        lines += ["prepare", "commit"]
        self.git.run(["update-ref", "--stdin"], input=("\n".join(lines) + "\n").encode())
