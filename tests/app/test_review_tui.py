"""The reviewer's workbench in the app: the diff widget (no soft wrap, line numbers,
horizontal scrolling, changed words, unified/side by side, next change) and the
adoption modal's scores, at 80x24 and 200x50."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import Static

from stop_tui.tui.app import StopApp
from stop_tui.tui.charts import Palette
from stop_tui.tui.render import code_diff
from stop_tui.tui.screens.approval import ApprovalScreen
from stop_tui.tui.screens.diffview import DiffView
from tests.support.tui import adoption_request, approval_request, settings_for

pytestmark = [pytest.mark.timeout(120)]

LONG = "x = " + " + ".join(f"value_{k}" for k in range(60))  # ~600 columns
PARENT = "\n".join(
    [
        "def f(a):",
        "    total = a + 1",
        *[f"    step_{k} = {k}" for k in range(40)],
        LONG,
        "    return total",
    ]
)
SOURCE = (
    PARENT.replace("total = a + 1", "total = a + 2")
    .replace("step_30 = 30", "step_30 = 31")
    .replace("value_59", "value_99")
)


def test_changed_words_are_marked_and_lines_are_numbered() -> None:
    rendered = code_diff(PARENT, SOURCE, Palette.default())
    rows = rendered.text.plain.splitlines()
    assert len(rendered.changes) == 3
    removed = next(r for r in rows if r.rstrip().endswith("total = a + 1"))
    added = next(r for r in rows if r.rstrip().endswith("total = a + 2"))
    assert removed.split()[0] == "2" and "-" in removed  # old line number, deletion
    assert added.split()[0] == "2" and "+" in added  # new line number, addition
    # Word level: only the changed token carries the mark, not the whole line.
    marked = [
        rendered.text.plain[span.start : span.end]
        for span in rendered.text.spans
        if "reverse" in str(span.style)
    ]
    assert "1" in marked and "2" in marked and "value_99" in marked
    assert not any("total" in m for m in marked)
    # A 600-column line is one row: nothing soft-wraps.
    assert sum(1 for r in rows if "value_0" in r) == 2


def test_a_change_of_the_final_newline_alone_is_named() -> None:
    P = Palette.default()
    assert "no change" in code_diff("a = 1\n", "a = 1\n", P).text.plain
    assert "newline at the end" in code_diff("a = 1\n", "a = 1", P).text.plain


def test_side_by_side_puts_both_versions_on_one_row() -> None:
    rendered = code_diff(PARENT, SOURCE, Palette.default(), side=True)
    row = next(r for r in rendered.text.plain.splitlines() if "a + 1" in r)
    assert "│" in row and "a + 2" in row.split("│", 1)[1]


class DiffApp(App[None]):
    def compose(self) -> ComposeResult:
        yield DiffView(PARENT, SOURCE, id="d")


async def test_the_widget_scrolls_sideways_toggles_and_jumps_between_changes() -> None:
    app = DiffApp()
    async with app.run_test(size=(80, 12)) as pilot:
        view = app.query_one(DiffView)
        view.focus()
        await pilot.pause()
        assert view.max_scroll_x > 0  # the long line scrolls sideways instead of wrapping
        assert view.virtual_size.width > 600
        await pilot.press("full_stop")
        assert view.current == 0
        await pilot.press("full_stop", "full_stop")
        assert view.current == 2 and view.scroll_y > 0
        assert view.border_subtitle is not None and "change 3/3" in str(view.border_subtitle)
        await pilot.press("comma")
        assert view.current == 1
        await pilot.press("v")
        assert view.side and "│" in view.text
        await pilot.press("v")
        assert not view.side and "│" not in view.text


def _scores_text(screen: ApprovalScreen) -> str:
    rendered = screen.query_one("#approval-scores", Static).render()
    return rendered.plain if isinstance(rendered, Text) else str(rendered)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_adoption_modal_shows_scores_and_difference(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    app = StopApp(settings_for(tmp_path / "ws"), snapshot=True)
    async with app.run_test(size=size) as pilot:
        screen = ApprovalScreen(adoption_request())
        answers: list[Any] = []
        app.push_screen(screen, answers.append)
        await pilot.pause(0.2)
        text = _scores_text(screen)
        assert "returned improver (scored as candidate 1 of generation 2):" in text
        assert "validation 0.633 ± 0.035 SE" in text
        assert "parent improver:" in text and "validation 0.420" in text
        assert "difference: validation +0.213" in text
        behaviour = screen.query_one("#approval-behaviour", Static)
        assert behaviour.region.height > 0 or size == (80, 24)  # 80x24: scrolled to
        screen.query_one("#approval-side").scroll_to_widget(behaviour, animate=False)
        await pilot.pause()
        assert behaviour.region.height > 0
        scores = screen.query_one("#approval-scores")
        assert (
            screen.query_one("#approval-side").region.width > 0 and scores.region.height > 0
        )  # on screen, not hidden
        diff = screen.query_one("#approval-diff", DiffView)
        assert diff.has_focus and diff.region.height > 0
        await pilot.press("full_stop")
        assert diff.current == 0
        await pilot.press("a")
        await pilot.pause()
    assert answers == [("approve", "")]


async def test_candidate_modal_says_what_siblings_scored(tmp_path: Path) -> None:
    from dataclasses import replace

    from stop_tui.engine.evidence import Evidence, Scores, Sibling

    request = replace(
        approval_request(),
        evidence=Evidence(
            purpose="candidate",
            parent=Scores.of([0.5, 0.6], [0.4, 0.5]),
            siblings=(Sibling(0, 0.3), Sibling(1, None, "rejected")),
        ),
    )
    app = StopApp(settings_for(tmp_path / "ws"), snapshot=True)
    answers: list[Any] = []
    async with app.run_test(size=(80, 24)) as pilot:
        screen = ApprovalScreen(request)
        app.push_screen(screen, answers.append)
        await pilot.pause(0.2)
        text = _scores_text(screen)
        assert "siblings so far: c0 0.300, c1 rejected; best so far 0.300" in text
        assert "validation 0.550" in text
        await pilot.press("a")
        await pilot.pause()
    assert answers == [("approve", "")]


@pytest.fixture(scope="module")
def saved_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tui import shared_saved_run

    return shared_saved_run(tmp_path_factory.getbasetemp())


async def test_improver_screen_shows_behaviour_beside_the_parent(saved_workspace: Path) -> None:
    from stop_tui.store.store import RunStore
    from stop_tui.tui.screens.improver import ImproverScreen
    from tests.support.tui import SAVED, wait_for

    store = RunStore(saved_workspace)
    candidate = next(s for s in store.list_steps(SAVED) if s.kind == "candidate")
    record = store.get_record(candidate.commit)
    app = StopApp(settings_for(saved_workspace), snapshot=True)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_improver(SAVED, commit=candidate.commit)
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ImproverScreen) and app.screen.data,
            "the improver",
        )
        screen = app.screen
        assert isinstance(screen, ImproverScreen) and screen.data is not None
        assert screen.data.parent_record is not None
        assert screen.data.parent_record.kind in ("seed", "adopted")
        await pilot.press("3")
        await pilot.pause(0.2)
        from rich.console import Console

        console = Console(width=120, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
        console.print(screen.query_one("#imp-scores", Static).content)
        text = console.export_text()
        assert "behaviour in its tests" in text and "LM requests / test" in text
        assert "validation" in text and "SE" in text  # the same numbers as the modal
        if record.behaviour:
            assert f"{record.behaviour['tests']}" in text
