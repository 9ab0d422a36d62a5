"""The headless sweep front end: one log line per cell event, approvals from ONE queue.

Under ``--approve ask`` the requests of all cells are answered at the terminal one
at a time, each labelled with its cell (task/model/variant/seed) and run id; the
other cells keep running meanwhile. Every cell's requests are also published for
``stop-tui pending`` / ``stop-tui answer`` (the first answer decides). Cells'
messages (a run's or a child's error) and stored text are printed through
:mod:`stop_tui.untrusted`, never read as markup.
"""

from __future__ import annotations

import asyncio

from rich.console import Console
from rich.table import Table

from stop_tui.cli.headless import LineReader, TerminalPrompt, resolve, show_request
from stop_tui.engine.events import EngineError, Event, GenerationFinished, RunStarted
from stop_tui.experiments.controller import CellEvent, SweepController, SweepResult
from stop_tui.untrusted import rich_text
from stop_tui.view.text import model_label


class SweepView:
    def __init__(self, controller: SweepController, console: Console) -> None:
        self.controller = controller
        self.console = console
        self.keys = {e.run_id: e.cell.key for e in controller.record.cells}
        controller.bus.on(self.on_event)
        controller.listeners.append(self.on_cell)

    def on_cell(self, event: CellEvent) -> None:
        if event.kind == "started":
            line = rich_text(event.cell.key, "bold")
            line.append_text(rich_text(f" started (run {event.run_id}; {event.running} running)"))
            self.console.print(line)
        elif event.outcome is not None:
            o = event.outcome
            why = f": {o.message}" if o.message and o.status != "finished" else ""
            line = rich_text(event.cell.key, "bold")
            line.append_text(rich_text(f" {o.status}{why}"))  # may quote a child's error
            self.console.print(line)

    def on_event(self, event: Event) -> None:
        key = self.keys.get(event.run_id, event.run_id)
        if isinstance(event, RunStarted):
            self.console.print(rich_text(f"  {key}: model {model_label(event.model)}"))
        elif isinstance(event, GenerationFinished):
            score = "-" if event.meta_utility is None else f"{event.meta_utility:.3f}"
            verdict = "adopted" if event.adopted else "kept the previous improver"
            self.console.print(
                rich_text(f"  {key}: generation {event.generation} {verdict} ({score})")
            )
        elif isinstance(event, EngineError):
            self.console.print(rich_text(f"  {key}: error: {event.message}"))

    async def approvals(self, read: LineReader | None = None) -> None:
        prompt = TerminalPrompt(self.console, read)
        queue = self.controller.queue
        try:
            while True:
                item = await queue.get()
                request = item.request
                await prompt.ready()
                if not request.pending:
                    continue
                show_request(self.console, request, label=item.label)
                text = await prompt.ask(request, item.label)  # None: answered elsewhere
                if text is None:
                    continue
                prepared = self.controller.prepared.get(item.run_id)
                if not resolve(request, text, prepared.run.gate if prepared else None):
                    prompt.lost(request, item.label)
        finally:
            prompt.stop()

    def table(self, result: SweepResult) -> Table:
        table = Table(title=rich_text(f"sweep {result.sweep_id}"))
        for col in ("cell", "run", "status", "message"):
            table.add_column(col)
        for o in result.outcomes:
            table.add_row(
                *(rich_text(cell) for cell in (o.key, o.run_id, o.status, o.message[:80]))
            )
        return table


async def drive(
    controller: SweepController, console: Console, *, ask: bool, read: LineReader | None = None
) -> tuple[SweepResult, SweepView]:
    """Run the sweep with this view; under ``ask`` approvals are read at the terminal
    (``read``: how a line is read; the terminal by default)."""
    view = SweepView(controller, console)
    task = asyncio.ensure_future(view.approvals(read)) if ask else None
    try:
        result = await controller.run()
    finally:
        if task is not None:
            task.cancel()
    return result, view
