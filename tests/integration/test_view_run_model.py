"""The one run model: a live run's events and the saved run give the same model, the
headless summary is drawn from it, and events name their generation in fields."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from stop_tui.cli.headless import HeadlessView
from stop_tui.engine.events import (
    BudgetExceededEvent,
    CandidateProposed,
    LMRequested,
    LMResponded,
    StepCommitted,
    UtilityEvaluated,
)
from stop_tui.sandbox.api import Sandbox
from stop_tui.view.run_model import RunModel, from_store
from stop_tui.view.text import fmt, model_label
from tests.support.engine import small_config, store_run

pytestmark = [pytest.mark.timeout(600)]


async def test_live_model_equals_saved_model_and_headless_shows_it(tmp_path: Path) -> None:
    config = small_config(generations=2, seed=11, demo_failure_rate=0.3)
    async with Sandbox() as sandbox:
        run, store, backend = store_run(sandbox, config, tmp_path / "runs")
        out = io.StringIO()
        view = HeadlessView(run, Console(file=out, width=200, highlight=False))
        status = await run.run()
        await backend.aclose()
    assert status == "finished"
    live = RunModel.of_config(config)
    for event in run.bus.history:
        live.apply(event)
    saved = from_store(store, config.run_id)
    assert live.log and not saved.log  # the log is what happened live; the rest is the run
    assert dataclasses.replace(live, log=[]) == dataclasses.replace(saved, log=[])
    assert dataclasses.replace(view.model, log=[]) == dataclasses.replace(live, log=[])
    # Something to compare: scored generations, candidates, LM use, commits everywhere.
    assert sorted(live.rows) == [0, 1, 2] and live.candidates and live.lm_calls > 0
    assert all(row.commit for row in live.rows.values())
    assert all(c.commit for c in live.candidates.values())
    assert sum(row.lm_calls for row in live.rows.values()) == live.lm_calls
    # The headless summary is the model's rows.
    rendered = Console(file=io.StringIO(), width=200, record=True)
    rendered.print(view.summary_table())
    text = rendered.export_text()
    for g, row in live.rows.items():
        line = next(x for x in text.splitlines() if re.match(rf"│\s+{g} │", x))
        assert fmt(row.meta_utility) in line
        assert ("seed" if g == 0 else row.status if row.status == "adopted" else "kept") in line
    assert model_label("demo") in out.getvalue()


async def test_events_name_their_generation_and_candidate_in_fields(tmp_path: Path) -> None:
    config = small_config(generations=1, seed=5)
    async with Sandbox() as sandbox:
        run, _store, backend = store_run(sandbox, config, tmp_path / "runs")
        assert await run.run() == "finished"
        await backend.aclose()
    labelled = [
        e
        for e in run.bus.history
        if isinstance(e, LMRequested | LMResponded | UtilityEvaluated | BudgetExceededEvent)
    ]
    assert any(e.index is not None for e in labelled) and any(e.index is None for e in labelled)
    for event in labelled:
        # The label is for people; the fields say the same thing, typed.
        m = re.match(r"g(\d+)/(?:c(\d+)/)?", event.context)
        assert m is not None, event.context
        assert event.generation == int(m.group(1))
        assert event.index == (int(m.group(2)) if m.group(2) is not None else None)
    committed = [e for e in run.bus.history if isinstance(e, StepCommitted)]
    assert (committed[0].generation, committed[0].index) == (0, None)
    assert all(e.commit for e in committed)


def test_a_flag_raised_while_a_candidate_ran_counts_like_the_saved_run() -> None:
    model = RunModel()
    model.apply(CandidateProposed(generation=1, index=0, summary="s"))
    assert model.rows[1].flags == 0 and "0 of 1" in model.circumvention
    flags = ("sandbox/use-sandbox: ran a solution with use_sandbox=False",)
    model.apply(StepCommitted(generation=1, index=0, commit="abc", flags=flags))
    assert model.rows[1].flags == 1 and "1 of 1" in model.circumvention
    assert model.candidates[(1, 0)].commit == "abc"
