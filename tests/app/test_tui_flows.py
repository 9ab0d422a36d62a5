"""The app driven by a pilot, with the real engine, sandbox and git store."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from stop_tui.engine.approval import Policy
from stop_tui.engine.events import ApprovalDecided, MetaUtilityEvaluated
from stop_tui.engine.session import prepare_run
from stop_tui.store.store import RunStore
from stop_tui.tui.app import StopApp
from stop_tui.tui.screens.approval import ApprovalScreen
from stop_tui.tui.screens.diffview import DiffView
from stop_tui.tui.screens.history import HistoryScreen
from stop_tui.tui.screens.home import HomeScreen, export_path
from stop_tui.tui.screens.improver import ImproverScreen
from stop_tui.tui.screens.new_run import NewRunScreen, validate_form
from stop_tui.tui.screens.run import RunScreen
from stop_tui.view.run_model import RunModel, from_store
from tests.support.engine import CountingSandbox
from tests.support.tui import SAVED, settings_for, shared_saved_run, wait_for


def plain(widget: Static) -> str:
    content = widget.render()
    return str(getattr(content, "plain", content))


async def test_live_run_approve_one_reject_another(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "ws", approval="every-candidate")
    prepared = prepare_run(
        settings, default_policy=Policy.EVERY_CANDIDATE, run_id="20260102-000000-live"
    )
    sandbox = CountingSandbox()
    prepared.run.sandbox = sandbox
    prepared.sandbox = sandbox
    app = StopApp(settings, start="new", prepared=prepared, snapshot=True)
    decisions: list[str] = []
    rejected: tuple[int, int] | None = None
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: app.sessions, "the run screen")
        session = app.sessions[0]
        await wait_for(
            pilot, lambda: isinstance(app.screen, ApprovalScreen) or not session.active, "a request"
        )
        while session.active:
            screen = app.screen
            if not isinstance(screen, ApprovalScreen):
                await pilot.pause(0.05)
                continue
            request = screen.request
            await pilot.pause(0.2)  # let the modal lay out before pressing or clicking
            if request.index is not None and "approve" in decisions and rejected is None:
                await pilot.press("r")
                await pilot.press(*"too risky")
                await pilot.press("enter")
                rejected = (request.generation, request.index)
                decisions.append("reject")
            else:
                if "approve" in decisions:
                    await pilot.press("a")
                else:
                    assert await pilot.click("#approve")  # the mouse works too
                decisions.append("approve")
            await wait_for(
                pilot, lambda r=request: not r.pending, "the decision to reach the engine"
            )
        run_screen = next(s for s in app.screen_stack if isinstance(s, RunScreen))
        assert run_screen.model.status == "finished"
    assert rejected is not None, "the demo run offered no second candidate"
    history = session.bus.history
    decided = [e for e in history if isinstance(e, ApprovalDecided) and e.index is not None]
    assert any(e.approved and not e.by.startswith("policy:") for e in decided)
    refusal = [e for e in decided if (e.generation, e.index) == rejected]
    assert len(refusal) == 1 and not refusal[0].approved and refusal[0].reason == "too risky"
    scored = {(e.generation, e.index) for e in history if isinstance(e, MetaUtilityEvaluated)}
    assert rejected not in scored
    # The store agrees, and the rejected source never reached a sandboxed improver job.
    store = RunStore(tmp_path / "ws")
    steps = store.list_steps("20260102-000000-live")
    commit = next(
        s.commit for s in steps if s.kind == "candidate" and (s.generation, s.candidate) == rejected
    )
    record = store.get_record(commit)
    assert record.decision is not None and record.decision.action == "rejected"
    assert record.decision.reason == "too risky" and record.tests == []
    approved = [
        store.get_record(s.commit) for s in steps if s.kind == "candidate" and s.commit != commit
    ]
    assert any(r.decision and r.decision.action == "approved" and r.tests for r in approved)
    source = store.get_source(commit)
    ran = sandbox.sources("improver")
    assert ran and source not in ran
    # What the run screen showed live is what it shows when the run is opened from the store.
    live = RunModel()
    for event in history:
        live.apply(event)
    saved = from_store(store, "20260102-000000-live")
    assert sorted(live.rows) == sorted(saved.rows) == [0, 1]
    for g, row in live.rows.items():
        other = saved.rows[g]
        fields = ("status", "meta_utility", "test_meta_utility", "proposed", "approved",
                  "rejected", "lm_calls", "tokens")  # fmt: skip
        assert [getattr(row, f) for f in fields] == [getattr(other, f) for f in fields]
        assert sorted(row.per_test) == sorted(other.per_test)
    assert (live.lm_calls, live.tokens) == (saved.lm_calls, saved.tokens)


async def test_open_saved_run_and_move_through_generations(saved_workspace: Path) -> None:
    store = RunStore(saved_workspace)
    app = StopApp(settings_for(saved_workspace), start="open", run_id=SAVED, snapshot=True)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RunScreen) and app.screen.model.rows,
            "the saved run",
        )
        screen = app.screen
        assert isinstance(screen, RunScreen)
        assert sorted(screen.model.rows) == [0, 1, 2]
        table = screen.query_one("#generations", DataTable)
        assert table.row_count == 3
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("down")
        await pilot.pause()
        assert screen.selected_generation == 1
        await pilot.press("i")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ImproverScreen) and app.screen.data,
            "the improver",
        )
        improver = app.screen
        assert isinstance(improver, ImproverScreen)
        data = improver.data
        assert data is not None and data.step.generation == 1 and data.step.kind != "candidate"
        assert data.diff == store.diff(data.step.parent, data.step.commit)
        await pilot.press("2")
        view = improver.query_one("#imp-diff", DiffView)
        assert (view.parent_source, view.source) == (data.parent_source, data.source)
        added = [
            line[1:] for line in data.diff.splitlines() if line[:1] == "+" and line[:3] != "+++"
        ]
        if data.parent_source.rstrip("\n") == data.source.rstrip("\n"):
            assert "the only change: the newline at the end" in view.text
        else:
            missing = [line for line in added if line.expandtabs(4) not in view.text]
            assert not missing, (missing, view.text[:3000])
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: improver.data is not data, "the next step")
        assert improver.data is not None and improver.data.step.kind == "candidate"
        assert improver.data.step.generation == 1
        # The transcript can be filtered.
        await pilot.press("slash")
        await pilot.press(*"zzzz")
        await pilot.press("enter")
        assert "no request matches" in plain(improver.query_one("#imp-transcript", Static))


async def test_history_compares_two_improvers(saved_workspace: Path) -> None:
    store = RunStore(saved_workspace)
    steps = store.list_steps(SAVED)
    app = StopApp(settings_for(saved_workspace), snapshot=True)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_history(SAVED)
        await wait_for(
            pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.steps, "history"
        )
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        await pilot.press("b")
        await pilot.pause()
        best = store.best(SAVED)
        assert best is not None and screen.current is not None
        assert screen.current.commit == best.commit
        await pilot.press("m")
        await pilot.press("right_square_bracket")
        await pilot.press("right_square_bracket")
        await pilot.pause(0.3)
        target = screen.current
        assert target is not None and target.generation == 2
        expected = (store.get_source(best.commit), store.get_source(target.commit))
        view = screen.query_one("#hist-diff", DiffView)
        await wait_for(
            pilot,
            lambda: (view.parent_source, view.source) == expected and view.text.strip(),
            "the A → B diff",
        )
        tree = screen.query_one("#hist-tree")
        assert len(list(tree.root.children)) >= 1  # type: ignore[attr-defined]
    assert any(s.kind == "candidate" for s in steps)


async def test_home_lists_runs_and_exports(saved_workspace: Path) -> None:
    app = StopApp(settings_for(saved_workspace), snapshot=True)
    target = export_path(saved_workspace, SAVED, "csv")
    target.unlink(missing_ok=True)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(
            pilot, lambda: isinstance(app.screen, HomeScreen) and app.screen.runs, "the runs"
        )
        await pilot.press("c")
        await wait_for(pilot, target.exists, "the export file")
    assert target.read_text().splitlines()[0].startswith("run_id,generation,kind")


def test_form_validation_uses_the_engine_rules(tmp_path: Path) -> None:
    base = settings_for(tmp_path / "ws")
    values = {n: str(getattr(base, n)) for n in ("generations", "max_responses_per_call", "lm_budget",
              "utility_budget", "meta_utility_budget", "meta_utility_tests", "seed")}  # fmt: skip
    ok, errors = validate_form(base, values, "demo", "parity_noise", "auto")
    assert ok is not None and not errors
    bad, errors = validate_form(
        base, {**values, "generations": "abc"}, "demo", "parity_noise", "auto"
    )
    assert bad is None and "whole number" in errors["generations"]
    bad, errors = validate_form(
        base, {**values, "generations": "0"}, "demo", "parity_noise", "auto"
    )
    assert bad is None and "generations" in errors and "at least 1" in errors["generations"]
    bad, errors = validate_form(base, {**values, "lm_budget": "-3"}, "demo", "parity_noise", "auto")
    assert bad is None and "lm_budget" in errors


async def test_new_run_form_shows_the_error_next_to_the_field(tmp_path: Path) -> None:
    app = StopApp(settings_for(tmp_path / "ws"), snapshot=True)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen), "the form")
        form = app.screen
        field = form.query_one("#generations", Input)
        field.value = "abc"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, NewRunScreen)  # not started
        error = form.query_one("#err-generations", Static)
        assert "whole number" in plain(error) and error.has_class("shown")
        field.value = "0"
        await pilot.pause()
        assert "at least 1" in plain(error)
        field.value = "1"
        await pilot.pause()
        assert not error.has_class("shown")
        # Where the work runs (issue 14): checked like --cluster, in the form's words.
        cluster = form.query_one("#cluster", Input)
        cluster.value = "ray://no port"
        await pilot.pause()
        cluster_error = form.query_one("#err-cluster", Static)
        assert "not understood" in plain(cluster_error) and cluster_error.has_class("shown")
        cluster.value = "ray://127.0.0.2:10001"
        await pilot.pause()
        assert not cluster_error.has_class("shown")
        assert form.check() is not None and form.check().cluster == "ray://127.0.0.2:10001"


@pytest.fixture
def saved_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_saved_run(tmp_path_factory.getbasetemp())


async def test_edit_then_approve_and_approve_the_rest(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "ws", approval="every-candidate")
    run_id = "20260103-000000-edit"
    prepared = prepare_run(settings, default_policy=Policy.EVERY_CANDIDATE, run_id=run_id)
    app = StopApp(settings, start="new", prepared=prepared, snapshot=True)
    marker = "# edited in the approval modal\n"
    edited: tuple[int, int] | None = None
    went_home = False
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: app.sessions, "the run screen")
        session = app.sessions[0]
        while session.active:
            screen = app.screen
            if not isinstance(screen, ApprovalScreen):
                await pilot.pause(0.05)
                continue
            request = screen.request
            await pilot.pause(0.2)
            if edited is None and request.index is not None:
                await pilot.press("e")
                editor = screen.query_one("#approval-editor")
                assert editor.has_focus
                editor.text = marker + request.source  # type: ignore[attr-defined]
                await pilot.press("ctrl+s")
                edited = (request.generation, request.index)
            elif request.index is not None:
                await pilot.press("g")  # the rest of this generation
            elif not went_home:
                # Later: leave the run screen; the run stays alive behind "open" at home.
                await pilot.press("escape")
                await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), "run screen")
                await pilot.press("escape")
                await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
                went_home = True
                home = app.screen
                await wait_for(pilot, lambda h=home: h.selected_run() == run_id, "the run listed")
                await pilot.press("o")
                await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), "the run again")
                assert app.screen.session is session and request.pending
                await pilot.press("a")  # the decision still waiting
                continue
            else:
                await pilot.press("a")
            await wait_for(pilot, lambda r=request: not r.pending, "the decision")
        assert went_home
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
        assert app.screen.model.status == "finished"
    assert edited is not None
    store = RunStore(tmp_path / "ws")
    steps = store.list_steps(run_id)
    commit = next(
        s.commit for s in steps if s.kind == "candidate" and (s.generation, s.candidate) == edited
    )
    record = store.get_record(commit)
    assert record.decision is not None and record.decision.edited and record.tests
    assert store.get_source(commit).startswith(marker)  # the edited source is what ran
    others = [
        store.get_record(s.commit) for s in steps if s.kind == "candidate" and s.commit != commit
    ]
    assert all(r.decision is not None and r.decision.action != "rejected" for r in others)


async def test_replay_screen_checks_every_score(saved_workspace: Path) -> None:
    from stop_tui.tui.screens.replay import ReplayScreen

    app = StopApp(settings_for(saved_workspace), snapshot=True)
    async with app.run_test(size=(100, 32)) as pilot:
        app.open_replay(SAVED)
        await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen), "the replay screen")
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await wait_for(pilot, lambda: screen.done and not screen.queue, "the replay", limit=120)
        await pilot.pause(0.2)
        assert screen.shown and all(step.matches for step in screen.shown)
        assert "every score matches" in plain(screen.query_one("#replay-outcome", Static))


async def test_pause_resume_and_stop_are_one_key_away(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "ws", approval="auto", demo_latency=0.3, generations=3)
    run_id = "20260104-000000-stop"
    prepared = prepare_run(settings, default_policy=Policy.AUTO, run_id=run_id)
    app = StopApp(settings, start="new", prepared=prepared, snapshot=True)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        session = app.sessions[0]
        await wait_for(pilot, lambda: screen.model.status == "running", "the run to start")
        await pilot.press("space")
        await wait_for(pilot, lambda: screen.model.status == "paused", "paused")
        assert session.run.paused
        await pilot.press("space")
        await wait_for(pilot, lambda: screen.model.status == "running", "running again")
        assert not session.run.paused
        await pilot.press("x")
        await pilot.pause(0.2)
        await pilot.press("y")  # the confirmation
        await wait_for(pilot, lambda: not session.active, "the run to stop")
        await wait_for(pilot, lambda: screen.model.status == "cancelled", "cancelled")
    state = RunStore(tmp_path / "ws").get_state(run_id)
    assert state is not None and state.status == "cancelled"


async def test_new_run_form_shows_the_worst_case_live(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "ws").model_copy(
        update={"model": "gpt-4o-mini", "base_url": "http://127.0.0.1:9/v1"}
    )
    app = StopApp(settings, snapshot=True)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen), "the form")
        form = app.screen
        shown = form.query_one("#forecast", Static)
        await pilot.pause()
        assert "worst case for model gpt-4o-mini" in plain(shown)
        before = plain(shown)
        form.query_one("#generations", Input).value = "3"
        await pilot.pause()
        assert "whole run (3 generations" in plain(shown) and plain(shown) != before
