"""The monitor's note in the approval modal: on screen at 80x24 and 200x50 without leaving
the modal, untrusted text shown escaped (markup literal), advisory words in the heading."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
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


def _plain(screen: ApprovalScreen, selector: str) -> str:
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
