"""Snapshot tests of the main screens at a fixed terminal size. Volatile text
(dates, commit ids, clocks, the workspace path) is hidden in snapshot mode; the
saved run uses a fixed run id, the demo model's fixed seed and serial execution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from stop_tui.tui.app import StopApp
from stop_tui.tui.screens.approval import ApprovalScreen
from stop_tui.tui.screens.home import HomeScreen
from stop_tui.tui.screens.improver import ImproverScreen
from stop_tui.tui.screens.run import RunScreen
from tests.support.tui import (
    SAVED,
    adoption_request,
    approval_request,
    settings_for,
    shared_saved_run,
    wait_for,
)

SIZE = (100, 32)


@pytest.fixture
def saved_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_saved_run(tmp_path_factory.getbasetemp())


def test_home_screen(snap_compare: Any, saved_workspace: Path) -> None:
    app = StopApp(settings_for(saved_workspace), snapshot=True)

    async def ready(pilot: Any) -> None:
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, HomeScreen)
                and app.screen.query_one("#runs", DataTable).row_count
            ),
            "the runs table",
        )
        await pilot.pause(0.3)  # the table sizes its columns when idle

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_run_screen(snap_compare: Any, saved_workspace: Path) -> None:
    app = StopApp(settings_for(saved_workspace), start="open", run_id=SAVED, snapshot=True)

    async def ready(pilot: Any) -> None:
        await wait_for(
            pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.model.rows, "the run"
        )
        await pilot.pause(0.4)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_improver_screen(snap_compare: Any, saved_workspace: Path) -> None:
    app = StopApp(settings_for(saved_workspace), snapshot=True)

    async def ready(pilot: Any) -> None:
        app.open_improver(SAVED, spec="1")
        await wait_for(
            pilot, lambda: isinstance(app.screen, ImproverScreen) and app.screen.data, "improver"
        )
        await pilot.press("2")  # the diff against its parent
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_approval_screen(
    snap_compare: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("EDITOR", "VISUAL"):  # the $EDITOR key shows only when one is set
        monkeypatch.delenv(name, raising=False)
    app = StopApp(settings_for(tmp_path / "ws"), snapshot=True)

    async def ready(pilot: Any) -> None:
        await _settled_home(app, pilot)
        app.push_screen(ApprovalScreen(approval_request()))
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the modal")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_adoption_screen_with_scores(
    snap_compare: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An adoption decision: the returned improver's scores, its parent's, the difference."""
    for name in ("EDITOR", "VISUAL"):
        monkeypatch.delenv(name, raising=False)
    app = StopApp(settings_for(tmp_path / "ws"), snapshot=True)

    async def ready(pilot: Any) -> None:
        await _settled_home(app, pilot)
        app.push_screen(ApprovalScreen(adoption_request()))
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the modal")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=(120, 40), run_before=ready)


async def _settled_home(app: StopApp, pilot: Any) -> None:
    """The home screen drawn in full (its footer, its empty runs table) before a modal
    goes over it: what shows behind the modal must not depend on timing."""
    await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the home screen")
    await pilot.pause(0.3)
