"""The app's sweep screen (Pilot): requests of two runs answered from ONE queue, the
curve and the statistics table; the new-sweep form checks like a sweep file."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Label

from stop_tui.config import load_settings
from stop_tui.experiments.controller import SweepController
from stop_tui.experiments.record import SweepRecord, list_sweeps, save
from stop_tui.experiments.spec import parse_sweep
from stop_tui.store.store import RunStore
from stop_tui.tui.screens.approval import ApprovalScreen
from stop_tui.tui.sweep_app import NewSweepScreen, SweepApp, SweepScreen
from tests.support.sweep import sweep_text
from tests.support.tui import wait_for

pytestmark = pytest.mark.slow


def settings_for(overrides: dict) -> object:
    return load_settings(overrides, None, environ={})


async def test_sweep_screen_answers_two_runs_from_one_queue(tmp_path: Path) -> None:
    text = sweep_text(["parity_noise"], [0, 1], generations=1, concurrency=2)
    text = text.replace('models = ["demo"]', 'models = ["demo"]\napproval = "every-candidate"')
    store = RunStore(tmp_path / "ws", create=True)
    record = SweepRecord.new(parse_sweep(text), text)
    save(store, record, "created")
    controller = SweepController(record, store, settings_for)  # type: ignore[arg-type]
    app = SweepApp(store, settings_for, controller)  # type: ignore[arg-type]
    answered: set[str] = set()
    async with app.run_test(size=(160, 50)) as pilot:
        screen = app.screen
        assert isinstance(screen, SweepScreen)

        def two_runs_waiting() -> bool:
            return len({i.run_id for i in controller.queue.pending}) == 2

        await wait_for(pilot, two_runs_waiting, "requests from both runs in the queue", 120)
        table = screen.query_one("#sweep-approvals", DataTable)
        await wait_for(pilot, lambda: table.row_count >= 2, "the queue shown", 10)
        shown = {str(table.get_row_at(i)[0]) for i in range(table.row_count)}
        assert shown == {e.cell.key for e in record.cells}
        while not screen.finished:
            pending = controller.queue.pending
            if pending and not isinstance(app.screen, ApprovalScreen):
                answered.add(pending[0].run_id)
                await pilot.press("a")  # open the next request of the one queue
                await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "modal", 10)
                await pilot.press("a")  # approve it
            await pilot.pause(0.05)
            if len(answered) > 100:
                break
        assert answered == {e.run_id for e in record.cells}
        assert all(not i.request.pending for i in controller.queue.asked)
        assert all(i.request._future.result().approved for i in controller.queue.asked)  # type: ignore[union-attr]
        stats = screen.query_one("#sweep-stats", DataTable)
        await wait_for(
            pilot, lambda: stats.row_count == 2, "statistics for generations 0 and 1", 120
        )
        rendered = screen.chart_plain
        assert "parity_noise · demo" in rendered and " g1 ▕" in rendered
        cells = screen.query_one("#sweep-cells", DataTable)
        assert {str(cells.get_row_at(i)[2]) for i in range(cells.row_count)} == {"finished"}


async def test_new_sweep_form_shows_a_bad_value_and_starts_a_good_one(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "ws", create=True)
    app = SweepApp(store, settings_for)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 50)) as pilot:
        assert isinstance(app.screen, NewSweepScreen)
        app.screen.query_one("#sweep-seeds", Input).value = "0, -2"
        await pilot.press("ctrl+s")
        error = str(app.screen.query_one("#sweep-error", Label).render())
        assert "seeds[1]: negative seed -2" in error
        app.screen.query_one("#sweep-seeds", Input).value = "0"
        app.screen.query_one("#sweep-generations", Input).value = "1"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen), "the sweep screen", 10)
        (record,) = list_sweeps(store)
        assert record.spec.seeds == [0] and record.spec.tasks == ["parity_noise"]
        assert "seeds = [0]" in record.text
        screen = app.screen
        assert isinstance(screen, SweepScreen)
        await wait_for(pilot, lambda: screen.finished, "the one-cell sweep", 180)
