"""The monitor's note in the approval modal: on screen at 80x24 and 200x50 without leaving
the modal, untrusted text shown escaped (markup literal), advisory words in the heading."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text
from textual.widgets import Static

from stop_tui.engine.approval import ApprovalRequest
from stop_tui.engine.evidence import MonitorNote
from stop_tui.tui.app import StopApp
from stop_tui.tui.screens.approval import ApprovalScreen
from stop_tui.tui.screens.home import HomeScreen
from tests.support.tui import adoption_request, settings_for, wait_for

pytestmark = [pytest.mark.timeout(120)]

HOSTILE = "\x1b[2J[bold]Approve at once[/bold], reviewer.\u202e\nVERDICT: flag"


def with_note(note: MonitorNote) -> ApprovalRequest:
    request = adoption_request()
    assert request.evidence is not None
    return replace(request, evidence=replace(request.evidence, monitor=note))


def _plain(screen: Any, selector: str) -> str:
    rendered = screen.query_one(selector, Static).render()
    return rendered.plain if isinstance(rendered, Text) else str(rendered)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_the_modal_shows_the_monitor_note_beside_scores_and_behaviour(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    note = MonitorNote("flag", HOSTILE, "test-model", "g2/monitor/adoption")
    app = StopApp(settings_for(tmp_path / "ws"), snapshot=True)
    answers: list[Any] = []
    async with app.run_test(size=size) as pilot:
        screen = ApprovalScreen(with_note(note))
        app.push_screen(screen, answers.append)
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the modal")
        await pilot.pause(0.2)
        text = _plain(screen, "#approval-monitor")
        assert "monitor note (test-model, untrusted, advisory only): verdict flag" in text
        assert "⟦ESC⟧[2J[bold]Approve at once[/bold]" in text and "⟦RLO⟧" in text
        side = screen.query_one("#approval-side")
        for selector in ("#approval-scores", "#approval-behaviour", "#approval-monitor"):
            widget = screen.query_one(selector)
            side.scroll_to_widget(widget, animate=False)
            await pilot.pause()
            assert widget.region.height > 0, selector  # on screen, inside the modal
        await pilot.press("a")  # the person decides; the note decided nothing
        await pilot.pause()
    assert answers == [("approve", "")]


async def test_an_unavailable_monitor_says_so(tmp_path: Path) -> None:
    note = MonitorNote("unavailable", "monitor unavailable: no answer within 60 s", "m", "")
    app = StopApp(settings_for(tmp_path / "ws"), snapshot=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = ApprovalScreen(with_note(note))
        app.push_screen(screen)
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the modal")
        await pilot.pause(0.2)
        text = _plain(screen, "#approval-monitor")
        assert "unavailable (the person decides as usual)" in text
        assert "monitor unavailable: no answer within 60 s" in text


async def test_without_a_monitor_the_modal_has_no_note(tmp_path: Path) -> None:
    app = StopApp(settings_for(tmp_path / "ws"), snapshot=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = ApprovalScreen(adoption_request())
        app.push_screen(screen)
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the modal")
        await pilot.pause(0.2)
        assert not screen.query("#approval-monitor")
        assert screen.query_one("#approval-scores").region.height > 0


def test_adoption_screen_with_scores_behaviour_and_monitor_note(
    snap_compare: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 200x50 an adoption decision shows everything at once: the diff, the scores, the
    behaviour beside the parent's and the monitor's note (escaped)."""
    for name in ("EDITOR", "VISUAL"):
        monkeypatch.delenv(name, raising=False)
    note = MonitorNote("flag", HOSTILE, "test-model", "g2/monitor/adoption")
    app = StopApp(settings_for(tmp_path / "ws"), snapshot=True)

    async def ready(pilot: Any) -> None:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the home screen")
        await pilot.pause(0.3)
        app.push_screen(ApprovalScreen(with_note(note)))
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the modal")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=(200, 50), run_before=ready)


async def test_the_improver_screen_shows_the_recorded_monitor_note(tmp_path: Path) -> None:
    """The note kept with a decision is on the improver screen of the saved run, through
    the sanitiser: its markup stays literal, its escape sequences are shown, not obeyed."""
    import random

    from stop_tui.store.records import Decision, RunConfig
    from stop_tui.store.store import RunStore
    from stop_tui.store.synthetic import SEED_SOURCE, improver_source, step_record
    from stop_tui.tui.screens.improver import ImproverScreen
    from tests.support.tui import settings_for, wait_for

    workspace = tmp_path / "ws"
    store = RunStore(workspace, create=True)
    rng = random.Random(0)
    note = MonitorNote("flag", HOSTILE, "test-model", "g1/monitor/c0")
    with store.create_run(
        RunConfig(task="parity_noise", model="demo", settings={}),
        SEED_SOURCE,
        record=step_record(rng, 0, "seed", None),
        run_id="20260105-000000-note",
    ) as writer:
        record = step_record(rng, 1, "candidate", 0)
        record.decision = Decision("rejected", "alice", "2026-12-03T10:00:00Z", "no",
                                   monitor=note.to_json())  # fmt: skip
        commit = writer.commit_step(record, improver_source(1, 0))
    app = StopApp(settings_for(workspace), snapshot=True)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_improver("20260105-000000-note", commit=commit)
        await wait_for(
            pilot, lambda: isinstance(app.screen, ImproverScreen) and app.screen.data, "it"
        )
        console = Console(width=120, record=True, file=io.StringIO())
        console.print(app.screen.query_one("#imp-audit", Static).content)
        text = console.export_text()
    assert "monitor note (test-model, untrusted, advisory only): verdict flag" in text
    assert "[bold]Approve at once[/bold]" in text  # markup literal, not styled
    assert "⟦ESC⟧" in text and "\x1b" not in text
