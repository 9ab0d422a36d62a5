"""Home: the runs of the workspace, and what to do with them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from stop_tui.store.records import RunInfo
from stop_tui.tui.bindings import bindings_for
from stop_tui.tui.host import Host, host
from stop_tui.untrusted import rich_text, visible
from stop_tui.view.text import fmt, fmt_cost


class HomeScreen(Screen[None]):
    """The runs in this workspace: open, resume, replay or export one, or start a new run."""

    BINDINGS: ClassVar[list[BindingType]] = bindings_for("home")

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunInfo] = []

    @property
    def stop_app(self) -> Host:
        return host(self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="home-intro")
        table: DataTable[Any] = DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(id="home-hint", classes="dim")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._columns(self.query_one("#runs", DataTable), [])
        workspace = self.stop_app.workspace
        shown = workspace.name if self.stop_app.snapshot else str(workspace)
        self.query_one("#home-intro", Static).update(
            f"Workspace [b]{shown}[/b] — every improver is a git commit, every run a branch."
        )

    COLUMNS = ("run", "task", "model", "status", "gens", "best", "cost", "created")

    def _columns(self, table: DataTable[Any], rows: Sequence[tuple[str, ...]]) -> None:
        """(Re)build the columns, sized to their content up front (no waiting for the
        table to measure itself)."""
        table.clear(columns=True)
        for i, name in enumerate(self.COLUMNS):
            width = max([len(name), *(len(row[i]) for row in rows)])
            table.add_column(name, key=name, width=width)

    def on_screen_resume(self) -> None:
        # Also fires when the screen is first shown: the one place the list is (re)read.
        self.refresh_runs()

    @work(group="home-load", exclusive=True, exit_on_error=False)
    async def refresh_runs(self) -> None:
        store = self.stop_app.store()
        try:
            runs = await asyncio.to_thread(store.list_runs)
        except Exception as exc:
            self.stop_app.error(exc, "could not read the workspace")
            runs = []
        self.runs = runs
        table = self.query_one("#runs", DataTable)
        selected = self.selected_run()
        hide = self.stop_app.hide
        rows = [
            (
                run.run_id,
                run.task,
                "demo" if run.model == "demo" else run.model,
                run.status,
                str(run.generations),
                fmt(run.best_meta_utility),
                fmt_cost(run.cost) if run.cost is not None else "—",
                hide(run.created.replace("T", " ").rstrip("Z"), 16),
            )
            for run in runs
        ]
        self._columns(table, rows)
        for run, row in zip(runs, rows, strict=True):
            table.add_row(*(rich_text(cell) for cell in row), key=run.run_id)
        if selected is not None and selected in {r.run_id for r in runs}:
            table.move_cursor(row=table.get_row_index(selected))
        hint = self.query_one("#home-hint", Static)
        waiting = [
            (session.run_id, len(session.pending()))
            for session in self.stop_app.sessions
            if session.active and session.pending()
        ]
        if waiting:
            hint.update(
                rich_text(
                    " · ".join(f"⚑ run {rid}: {n} decision(s) waiting" for rid, n in waiting)
                    + " — select it and press o, then a"
                )
            )
        elif runs:
            hint.update(
                f"{len(runs)} run(s). enter/o open · r resume · p replay offline · "
                "h history · e/c export scores · n new run"
            )
        else:
            hint.update(
                "No runs here yet. Press [b]n[/b] to start one (the demo model works offline)."
            )

    def selected_run(self) -> str | None:
        table = self.query_one("#runs", DataTable)
        if not self.runs or table.row_count == 0:
            return None
        try:
            key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        except Exception:
            return None
        return str(key.value) if key.value is not None else None

    def _need_run(self) -> str | None:
        run_id = self.selected_run()
        if run_id is None:
            self.notify("no run selected — press n to start one", severity="warning")
        return run_id

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_new_run(self) -> None:
        self.stop_app.new_run()

    def action_open(self) -> None:
        if run_id := self._need_run():
            self.stop_app.open_saved(run_id)

    def action_resume(self) -> None:
        if run_id := self._need_run():
            self.stop_app.resume_run(run_id)

    def action_replay(self) -> None:
        if run_id := self._need_run():
            self.stop_app.open_replay(run_id)

    def action_history(self) -> None:
        if run_id := self._need_run():
            self.stop_app.open_history(run_id)

    def action_refresh(self) -> None:
        self.refresh_runs()

    @work(group="export", exit_on_error=False)
    async def action_export(self, format: str) -> None:
        run_id = self._need_run()
        if run_id is None:
            return
        store = self.stop_app.store()
        target = export_path(self.stop_app.workspace, run_id, format)
        try:
            text = await asyncio.to_thread(store.export_scores, run_id, format)
            await asyncio.to_thread(target.write_text, text, encoding="utf-8")
        except Exception as exc:
            self.stop_app.error(exc, "export failed")
            return
        self.notify(
            visible(f"exported the scores of {run_id} to {target}"), title="export", markup=False
        )


def export_path(workspace: Path, run_id: str, format: str) -> Path:
    """``<workspace's parent>/<run id>-scores.<format>``: next to the workspace."""
    return Path(workspace).absolute().parent / f"{run_id}-scores.{format}"
