"""The run store: a workspace of runs, read, written and exchanged through one object.

:class:`RunStore` is the façade the rest of the program uses: reading comes from
:mod:`~stop_tui.store.reader`, a run's writes go through a
:class:`~stop_tui.store.writer.RunWriter` (which holds the run's lock), exports and
bundles are :mod:`~stop_tui.store.bundles`. Where runs live is
:mod:`~stop_tui.store.layout`; the commit format is :mod:`~stop_tui.store.messages`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from stop_tui.errors import UserError
from stop_tui.store import bundles
from stop_tui.store.layout import (
    DEFAULT_WORKSPACE,
    SHOW_RUNS_HINT,
    WORKSPACE_ENV,
    branch_ref,
    candidate_ref,
    check_run_id,
    new_run_id,
    run_ref,
)
from stop_tui.store.lock import RunLock
from stop_tui.store.reader import RunReader
from stop_tui.store.records import RunConfig, RunState, StepRecord, now_iso
from stop_tui.store.writer import RunWriter

__all__ = [
    "DEFAULT_WORKSPACE",
    "WORKSPACE_ENV",
    "RunStore",
    "RunWriter",
    "branch_ref",
    "candidate_ref",
    "new_run_id",
    "run_ref",
]


class RunStore(RunReader):
    """A workspace of runs. Reads need no lock; writes go through :class:`RunWriter`.

    ``path`` defaults to ``$STOP_TUI_WORKSPACE`` or ``./stop-runs``. With
    ``create=True`` a missing or empty directory becomes a new workspace;
    otherwise a missing workspace reads as empty. A non-empty directory that is
    not a stop-tui workspace is refused (:class:`UserError`).
    """

    # -- writing

    def create_run(
        self,
        config: RunConfig,
        seed_source: str,
        *,
        record: StepRecord | None = None,
        solutions: Mapping[str, str] | None = None,
        transcript: str | bytes | Iterable[Mapping[str, Any]] | None = None,
        run_id: str | None = None,
        command: str | None = None,
    ) -> RunWriter:
        """Start a run: its first commit holds run.json and the seed improver.

        Returns a :class:`RunWriter` that holds the run's lock (close it when done).
        """
        self.ensure_created()
        run_id = check_run_id(run_id or new_run_id())
        if self.git.rev(branch_ref(run_id)):
            raise UserError(f"run {run_id} already exists", hint=SHOW_RUNS_HINT)
        config = RunConfig.from_json(config.to_json())
        config.run_id = run_id
        config.created = config.created or now_iso()
        lock = RunLock(self.lock_dir, run_id, command).acquire()
        try:
            if self.git.rev(branch_ref(run_id)):  # created while we waited for the lock
                raise UserError(f"run {run_id} already exists", hint=SHOW_RUNS_HINT)
            writer = RunWriter(self, run_id, lock, config=config)
            rec = record or StepRecord(generation=0, kind="seed", summary="seed improver")
            rec.kind, rec.generation = "seed", 0
            writer._write(
                rec,
                seed_source,
                solutions=solutions,
                transcript=transcript,
                parent=None,
                state=RunState(status="running", generation=0, phase="created"),
            )
        except BaseException:
            lock.release()
            raise
        return writer

    def open_run(self, run_id: str, *, command: str | None = None) -> RunWriter:
        """Lock an existing run for writing (to resume it or change its status)."""
        self.require_run(run_id)
        lock = RunLock(self.lock_dir, run_id, command).acquire()
        try:
            return RunWriter(self, run_id, lock)
        except BaseException:
            lock.release()
            raise

    # -- export / import

    def export_scores(self, run_id: str, format: str = "json") -> str:
        """Scores of every improver of a run as JSON (a list of rows) or CSV."""
        return bundles.export_scores(self, run_id, format)

    def export_bundle(self, run_id: str, path: str | Path) -> Path:
        """Write a git bundle holding the run's branch and all its refs."""
        return bundles.export_bundle(self, run_id, path)

    def import_bundle(self, path: str | Path, *, command: str | None = None) -> list[str]:
        """Fetch the runs in a bundle into this workspace (see :func:`bundles.import_bundle`)."""
        return bundles.import_bundle(self, path, command=command)
