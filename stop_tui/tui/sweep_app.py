"""The sweep app: a new-sweep form, and a sweep screen with its cells, ONE approval
queue for all of them (each request labelled with its cell), the Fig. 4-style curve
as a text chart and the statistics table.

The controller runs as a worker on the app's loop; its callbacks only post
messages; statistics are recomputed from the store in a thread worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static

from stop_tui.engine.approval import Purpose
from stop_tui.engine.events import Event, GenerationFinished, RunFinished
from stop_tui.errors import UserError
from stop_tui.experiments.controller import (
    CellEvent,
    QueuedApproval,
    SettingsFor,
    SweepController,
)
from stop_tui.experiments.report import ci_text as ci
from stop_tui.experiments.stats import CurvePoint, SweepStats
from stop_tui.keymap import label
from stop_tui.store.store import RunStore
from stop_tui.tui.bindings import bindings_for
from stop_tui.tui.screens.approval import Answer, ApprovalScreen, apply_answer
from stop_tui.untrusted import rich_text, visible


class SweepChanged(Message):
    """Something a cell did that the screen shows (post-only from engine callbacks)."""


class ApprovalQueued(Message):
    def __init__(self, item: QueuedApproval) -> None:
        super().__init__()
        self.item = item


BAND, MEAN_MARK = "▒", "┃"


def curve_chart(points: list[CurvePoint], width: int = 40) -> Group:
    """Per task and model: one row per generation, the 95% band (▒) and the mean (┃)
    on a 0..1 axis, then the numbers."""
    rows: list[Text] = []
    groups: dict[tuple[str, str, str], list[CurvePoint]] = {}
    for p in points:
        groups.setdefault((p.task, p.model, p.variant), []).append(p)
    for (task, model, variant), pts in groups.items():
        title = f"{task} · {model}" + ("" if variant == "base" else f" ({variant})")
        rows.append(rich_text(title, "bold"))
        for p in pts:
            iv = p.val
            mean = iv.mean or 0.0
            low = max(0.0, iv.low if iv.low is not None else mean)
            high = min(1.0, iv.high if iv.high is not None else mean)
            cells = [" "] * width
            for i in range(round(low * (width - 1)), round(high * (width - 1)) + 1):
                cells[i] = BAND
            cells[min(width - 1, round(max(0.0, min(1.0, mean)) * (width - 1)))] = MEAN_MARK
            ci = "" if iv.low is None else f" [{iv.low:.3f}, {iv.high:.3f}]"
            line = Text(f" g{p.generation} ▕")
            line.append("".join(cells), style="cyan")
            line.append(f"▏ {mean:.3f}{ci} n={iv.n}")
            rows.append(line)
    if not rows:
        rows.append(Text("no generation finished yet", style="dim"))
    return Group(*rows)


class SweepScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = bindings_for("sweep")

    def __init__(self, controller: SweepController) -> None:
        super().__init__()
        self.controller = controller
        self.keys = {e.run_id: e.cell.key for e in controller.record.cells}
        self.status = {e.run_id: "waiting" for e in controller.record.cells}
        self.finished = False
        self.answering = False
        self.chart_plain = ""

    def compose(self) -> ComposeResult:
        record = self.controller.record
        yield Header()
        yield Label(
            rich_text(
                f"sweep {record.sweep_id} {record.spec.name!r}: {len(record.cells)} cells, "
                f"{record.spec.concurrency} at once"
            ),
            id="sweep-title",
        )
        with Horizontal():
            with Vertical():
                yield DataTable(id="sweep-cells", cursor_type="row")
                yield Label("approvals waiting (all cells, one queue):")
                yield DataTable(id="sweep-approvals", cursor_type="row")
            with VerticalScroll():
                yield Static(curve_chart([]), id="sweep-chart")
                yield DataTable(id="sweep-stats")
        yield Footer()

    def on_mount(self) -> None:
        cells = self.query_one("#sweep-cells", DataTable)
        cells.add_columns("cell", "run", "status")
        for e in self.controller.record.cells:
            cells.add_row(rich_text(e.cell.key), rich_text(e.run_id), "waiting", key=e.run_id)
        self.query_one("#sweep-approvals", DataTable).add_columns("cell", "what", "request")
        self.query_one("#sweep-stats", DataTable).add_columns(
            "task", "model", "gen", "n", "val [95% CI]", "change vs g0", "val-test gap"
        )
        c = self.controller
        c.listeners.append(self._cell_event)
        c.bus.on(self._engine_event)
        c.queue.listeners.append(self._approval_queued)
        self.run_sweep()

    def _cell_event(self, event: CellEvent) -> None:
        if event.kind == "started":
            self.status[event.run_id] = "running"
        elif event.outcome is not None:
            self.status[event.run_id] = event.outcome.status
        self.post_message(SweepChanged())

    def _approval_queued(self, item: QueuedApproval) -> None:
        self.post_message(ApprovalQueued(item))

    def _engine_event(self, event: Event) -> None:
        if isinstance(event, GenerationFinished | RunFinished):
            self.post_message(SweepChanged())

    @work(exclusive=True, group="sweep")
    async def run_sweep(self) -> None:
        await self.controller.run()
        self.finished = True
        self.post_message(SweepChanged())

    @on(SweepChanged)
    def _changed(self) -> None:
        table = self.query_one("#sweep-cells", DataTable)
        for run_id, status in self.status.items():
            table.update_cell(run_id, table.ordered_columns[2].key, rich_text(status))
        self.action_refresh_stats()

    @on(ApprovalQueued)
    def _queued(self, message: ApprovalQueued) -> None:
        self._show_queue()

    def _show_queue(self) -> None:
        table = self.query_one("#sweep-approvals", DataTable)
        table.clear()
        for item in self.controller.queue.pending:
            r = item.request
            what = f"g{r.generation} " + (
                f"candidate {r.index}" if r.purpose is Purpose.CANDIDATE else "adoption"
            )
            table.add_row(rich_text(item.cell.key), what, r.request_id)

    def action_answer(self) -> None:
        pending = self.controller.queue.pending
        if not pending or self.answering:
            return
        item = pending[0]
        self.answering = True
        self.app.push_screen(
            ApprovalScreen(item.request), lambda answer: self._answered(item, answer)
        )

    def _answered(self, item: QueuedApproval, answer: Answer | None) -> None:
        self.answering = False
        request = item.request
        if answer is not None and request.pending:
            prepared = self.controller.prepared.get(item.run_id)
            if not apply_answer(request, answer, prepared.run.gate if prepared else None):
                self.notify(visible(f"already {request.lost_to}"), markup=False)
        self._show_queue()

    def action_refresh_stats(self) -> None:
        self._stats()

    @work(thread=True, exclusive=True, group="stats")
    def _stats(self) -> None:
        from stop_tui.experiments.results import collect
        from stop_tui.experiments.stats import compute

        c = self.controller
        store = RunStore(c.store.path)
        cells = collect(store, c.record)
        stats = compute(cells, c.record.spec.generations, c.record.spec.improvement_threshold)
        self.app.call_from_thread(self._show_stats, stats)

    def _show_stats(self, stats: SweepStats) -> None:
        chart = curve_chart(stats.curve)
        self.chart_plain = "\n".join(
            t.plain for t in chart.renderables if isinstance(t, Text)
        )  # what the chart says, as text (tests, screen readers)
        self.query_one("#sweep-chart", Static).update(chart)
        table = self.query_one("#sweep-stats", DataTable)
        table.clear()

        for p in stats.curve:
            table.add_row(
                rich_text(p.task), rich_text(p.model), str(p.generation), str(p.val.n),
                ci(p.val.mean, p.val.low, p.val.high),
                ci(p.change.mean, p.change.low, p.change.high),
                ci(p.gap.mean, p.gap.low, p.gap.high),
            )  # fmt: skip


FORM_FIELDS = [
    ("name", "name", "my sweep"),
    ("tasks", "tasks (comma-separated)", "parity_noise"),
    ("models", "models (comma-separated)", "demo"),
    ("seeds", "seeds (comma-separated)", "0, 1, 2"),
    ("generations", "generations", "2"),
    ("concurrency", "cells at once", "2"),
]


def form_toml(values: dict[str, str]) -> str:
    """The sweep file the form describes (checked by the same parser as files)."""

    def items(text: str) -> list[str]:
        return [v.strip() for v in text.split(",") if v.strip()]

    def quoted(text: str) -> str:
        return "[" + ", ".join(_toml_str(v) for v in items(text)) + "]"

    def number(text: str) -> str:
        return text.strip() or "0"

    return (
        f"name = {_toml_str(values.get('name', ''))}\n"
        f"tasks = {quoted(values.get('tasks', ''))}\n"
        f"models = {quoted(values.get('models', ''))}\n"
        f"seeds = [{', '.join(number(v) for v in items(values.get('seeds', '')))}]\n"
        f"generations = {number(values.get('generations', ''))}\n"
        f"concurrency = {number(values.get('concurrency', ''))}\n"
    )


def _toml_str(text: str) -> str:
    import json

    return json.dumps(text)  # a JSON string is a valid TOML basic string


class NewSweepScreen(Screen[None]):
    """The new-sweep form: the grid's keys; the sweep file it makes is kept in git."""

    BINDINGS: ClassVar[list[BindingType]] = bindings_for("new_sweep")

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="new-sweep"):
            for key, label, placeholder in FORM_FIELDS:
                yield Label(label)
                yield Input(placeholder=placeholder, id=f"sweep-{key}")
            yield Label("", id="sweep-error")
            yield Button("Start [ctrl+s]", id="start", variant="primary")
        yield Footer()

    def values(self) -> dict[str, str]:
        out = {}
        for key, _, placeholder in FORM_FIELDS:
            value = self.query_one(f"#sweep-{key}", Input).value
            out[key] = value if value.strip() else placeholder
        return out

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        app = self.app
        assert isinstance(app, SweepApp)
        text = form_toml(self.values())
        try:
            controller = app.new_controller(text)
        except UserError as exc:
            self.query_one("#sweep-error", Label).update(Text(exc.line(), style="bold red"))
            return
        app.switch_screen(SweepScreen(controller))


class SweepApp(App[int]):
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))
    TITLE = "stop-tui sweep"

    def __init__(
        self,
        store: RunStore,
        settings_for: SettingsFor,
        controller: SweepController | None = None,
        *,
        unsafe: bool = False,
    ) -> None:
        super().__init__()
        self.store = store
        self.settings_for = settings_for
        self.controller = controller
        self.unsafe = unsafe
        # The user's stop.toml (and [keymap]) without a sweep's cell settings.
        self.settings = settings_for({"model": "demo"})
        self.set_keymap(self.settings.keymap)

    def key(self, binding_id: str) -> str:
        """How to name a binding's key (what the approval screen asks of its app)."""
        return label(binding_id, self.settings.keymap)

    def new_controller(self, text: str) -> SweepController:
        from stop_tui.experiments.record import SweepRecord, save
        from stop_tui.experiments.spec import parse_sweep

        spec = parse_sweep(text, "the form")
        record = SweepRecord.new(spec, text)
        save(self.store, record, f"created in the app ({len(record.cells)} cells)")
        self.controller = SweepController(record, self.store, self.settings_for, unsafe=self.unsafe)
        return self.controller

    def on_mount(self) -> None:
        if self.controller is None:
            self.push_screen(NewSweepScreen())
        else:
            self.push_screen(SweepScreen(self.controller))
