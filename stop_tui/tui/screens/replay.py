"""Replay: re-execute a saved run offline (recorded LM responses and decisions,
the same seeds) and show, step by step, whether every score comes out the same.

The engine replays as fast as it can; the *display* of its steps is paced
(``s`` cycles the delay between shown steps, ``space`` pauses the display,
``n`` shows one more step while paused)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static

from stop_tui.engine.replay import ReplayStep
from stop_tui.tui.bindings import bindings_for
from stop_tui.tui.charts import Palette
from stop_tui.tui.host import Host, host
from stop_tui.untrusted import rich_text

SPEEDS = [0.0, 0.3, 1.0]  # seconds between displayed steps


class ReplayScreen(Screen[None]):
    """Replay a saved run offline and check that every meta-utility matches."""

    BINDINGS: ClassVar[list[BindingType]] = bindings_for("replay")

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.queue: deque[ReplayStep] = deque()
        self.shown: list[ReplayStep] = []
        self.speed = 0
        self.paused = False
        self.done = False
        self.outcome: Text | None = None
        self._since = 0.0

    @property
    def stop_app(self) -> Host:
        return host(self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="replay-head")
        yield ProgressBar(id="replay-progress", show_eta=False)
        table: DataTable[Any] = DataTable(id="replay-table", cursor_type="row")
        yield table
        yield Static(id="replay-outcome")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#replay-table", DataTable)
        for name in ("step", "recorded", "replayed", "tests (recorded → replayed)", "match"):
            table.add_column(name, key=name)
        self.sub_title = f"replay of {self.run_id}"
        self.set_interval(0.1, self._tick)
        self._head()
        self.replay()

    def _head(self) -> None:
        delay = SPEEDS[self.speed]
        pace = "as fast as it runs" if delay == 0 else f"{delay:g} s between steps"
        state = "display paused (n: one step)" if self.paused else pace
        head = Text("Replaying ")
        head.append_text(rich_text(self.run_id, "bold"))
        head.append(f" offline: recorded LM responses and decisions, same seeds. Display: {state}.")
        self.query_one("#replay-head", Static).update(head)

    @work(group="replay", exclusive=True, exit_on_error=False)
    async def replay(self) -> None:
        from stop_tui.engine.replay import load_recorded, replay
        from stop_tui.sandbox.api import Sandbox

        store = self.stop_app.store()
        try:
            recorded = await asyncio.to_thread(load_recorded, store, self.run_id)
        except Exception as exc:
            self.stop_app.error(exc, "cannot replay")
            return
        self.query_one("#replay-progress", ProgressBar).update(total=len(recorded.scores) or None)
        sandbox: Sandbox | None = None
        try:
            sandbox = await asyncio.to_thread(Sandbox, unsafe=self.stop_app.unsafe)
            # The engine compares each step; the screen only paces their display.
            report = await replay(
                store, self.run_id, sandbox=sandbox, recorded=recorded, on_step=self.queue.append
            )
        except Exception as exc:
            self.stop_app.error(exc, "the replay failed")
            self.outcome = rich_text(f"the replay failed: {exc}", "bold red")
            self.done = True
            return
        finally:
            if sandbox is not None:
                await sandbox.close()
        P = Palette.from_theme(self.app.current_theme)
        if report.ok:
            self.outcome = Text(
                f"✔ every score matches ({len(report.steps)} meta-utility evaluations)",
                style=f"bold {P['success']}",
            )
        else:
            self.outcome = rich_text(f"✘ diverged: {report.divergence}", f"bold {P['error']}")
        self.done = True

    def _tick(self) -> None:
        delay = SPEEDS[self.speed]
        self._since += 0.1
        if not self.paused and self.queue and self._since + 1e-9 >= delay:
            self._show_one()
        if self.done and not self.queue and self.outcome is not None:
            self.query_one("#replay-outcome", Static).update(self.outcome)

    def _show_one(self) -> None:
        self._since = 0.0
        step = self.queue.popleft()
        self.shown.append(step)
        P = Palette.from_theme(self.app.current_theme)
        tests = (
            ", ".join(f"{v:.2f}" for v in sorted(step.recorded_tests))
            + " → "
            + ", ".join(f"{v:.2f}" for v in sorted(step.replayed_tests))
        )
        table = self.query_one("#replay-table", DataTable)
        table.add_row(
            rich_text(step.label),
            "—" if step.recorded is None else f"{step.recorded:.6f}",
            f"{step.replayed:.6f}",
            tests,
            Text("yes", style=P["success"])
            if step.matches
            else Text("NO", style=f"bold {P['error']}"),
        )
        table.move_cursor(row=table.row_count - 1)
        self.query_one("#replay-progress", ProgressBar).advance(1)

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self._head()

    def action_step(self) -> None:
        if self.queue:
            self._show_one()
        elif not self.done:
            self.notify("the next step is still being replayed")

    def action_speed(self) -> None:
        self.speed = (self.speed + 1) % len(SPEEDS)
        self._head()

    def action_back(self) -> None:
        self.app.pop_screen()
