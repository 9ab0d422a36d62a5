"""Resume edge cases of the engine, with real parts (sandbox, git store, demo model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stop_tui.engine.approval import Gate, Policy
from stop_tui.engine.events import CandidateProposed, EngineError
from stop_tui.engine.loop import StopRun
from stop_tui.engine.recorder import StoreRecorder, work_transcript_path
from stop_tui.engine.session import seed_improver
from stop_tui.lm.demo import DemoBackend
from stop_tui.lm.transcript import RecordingBackend
from stop_tui.sandbox.api import Sandbox
from stop_tui.store import RunStore, StepRecord
from stop_tui.store import records as store_records
from tests.support.engine import small_config

pytestmark = [pytest.mark.timeout(300)]

OTHER = "def improve_algorithm(initial_solution, utility, language_model):\n    return 'x'\n"


async def test_a_resumed_generation_that_proposes_something_else_gets_fresh_indices(
    tmp_path: Path,
) -> None:
    """Before the crash, candidate 1/0 was committed; the resumed improver proposes a
    different first candidate (an improver may depend on time or ordering). The run
    must go on with new candidate numbers, not fail on 'candidate 1/0 already exists'."""
    config = small_config(generations=1, seed=5)
    store = RunStore(tmp_path / "runs", create=True)
    seed = seed_improver()
    writer = store.create_run(
        store_records.RunConfig(task=config.task, model=config.model, settings=config.to_dict()),
        seed,
        run_id=config.run_id,
    )
    writer.commit_step(StepRecord(0, "seed", "seed improver", meta_utility=0.5), seed)
    writer.commit_step(
        StepRecord(
            1,
            "candidate",
            "before the crash",
            candidate=0,
            meta_utility=0.25,
            extra={"proposed_hash": "0" * 16},
        ),
        OTHER,
    )
    writer.close()

    backend = RecordingBackend(
        DemoBackend(seed=config.seed, failure_rate=0.0), work_transcript_path(store, config.run_id)
    )
    async with Sandbox() as sandbox:
        run = StopRun(
            config,
            sandbox=sandbox,
            backend=backend,
            recorder=StoreRecorder(store, seed, resume=True),
            gate=Gate(Policy.AUTO),
        )
        status = await run.run()
    await backend.aclose()
    errors = [e.message for e in run.bus.history if isinstance(e, EngineError)]
    assert status == "finished", errors
    proposed = {e.index: e.summary for e in run.bus.history if isinstance(e, CandidateProposed)}
    committed = {
        s.candidate: store.get_record(s.commit)
        for s in store.list_steps(config.run_id)
        if s.kind == "candidate"
    }
    # The first proposal differs from what was committed as 1/0: it got a new number ...
    assert 0 not in proposed and min(proposed) >= 1
    # ... and every candidate the resumed improver proposed was evaluated and committed.
    for index, summary in proposed.items():
        assert index in committed, f"candidate {index} ({summary}) was never committed"
        assert committed[index].summary == summary
        assert committed[index].meta_utility is not None
    assert committed[0].summary == "before the crash"  # untouched


async def test_resume_counts_what_was_spent_in_steps_it_does_not_run_again(
    tmp_path: Path,
) -> None:
    """Run-wide caps span crashes: on resume the run budget starts with the LM use of
    the earlier generations and of the committed candidates; the improver's own calls,
    uncommitted candidates and the final evaluation run again and are counted then."""
    from stop_tui.lm.transcript import TranscriptWriter
    from stop_tui.lm.types import ChatRequest, ChatResult

    config = small_config(generations=3, seed=5)
    store = RunStore(tmp_path / "runs", create=True)
    seed = seed_improver()
    writer = store.create_run(
        store_records.RunConfig(task=config.task, model=config.model, settings=config.to_dict()),
        seed,
        run_id=config.run_id,
    )
    writer.commit_step(StepRecord(0, "seed", "seed", meta_utility=0.5), seed)
    writer.commit_step(StepRecord(1, "adopted", "gen 1", meta_utility=0.6), seed)
    writer.commit_step(
        StepRecord(
            2, "candidate", "c0", candidate=0, meta_utility=0.7, extra={"proposed_hash": "a"}
        ),
        OTHER,
    )
    writer.close()
    transcript = TranscriptWriter(work_transcript_path(store, config.run_id))
    spent = {  # context -> counted on resume?
        "g0/final/t0": True,
        "g1/meta": True,
        "g1/c0/t1": True,
        "g1/final/t0": True,
        "g2/c0/t0": True,  # committed candidate of the resumed generation
        "g2/meta": False,
        "g2/c1/t0": False,  # not committed: runs again
        "g2/final/t1": False,
    }
    for k, context in enumerate(spent):
        request = ChatRequest("m", "s", f"u{k}", context=context)
        result = ChatResult(["x"], 10 + k, 100, False, 0.1, 0, 0.5)
        await transcript.write(request, 0, "test", result=result)
    await transcript.write(
        ChatRequest("m", "s", "failed", context="g1/c2/t0"), 0, "test", error=RuntimeError("x")
    )
    transcript.close()

    recorder = StoreRecorder(store, seed, resume=True)
    start = recorder.start(config)
    assert recorder.writer is not None
    recorder.writer.close()
    counted = [k for k, (_, yes) in enumerate(spent.items()) if yes]
    assert start.completed_generation == 1 and start.seed_scored
    assert start.spent.calls == len(counted) + 1  # the failed request counts too
    assert start.spent.prompt_tokens == sum(10 + k for k in counted)
    assert start.spent.completion_tokens == 100 * len(counted)
    assert start.spent.cost == pytest.approx(0.5 * len(counted))
