"""Offline replay of a saved run: the same seeds, the recorded LM responses and
the recorded decisions, and a check that every score comes out the same.

Meta-utility tests run concurrently, so which of two identical LM requests is
answered first can differ between the recording and the replay; the per-test
values are therefore compared as multisets (sorted), and the meta-utility, a
``math.fsum`` mean, does not depend on their order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stop_tui.engine.approval import Decision, Gate
from stop_tui.engine.config import RunConfig
from stop_tui.engine.events import EventBus, MetaUtilityEvaluated
from stop_tui.engine.loop import StopRun
from stop_tui.engine.recorder import MemoryRecorder, Recorder, StoreRecorder
from stop_tui.errors import UserError
from stop_tui.lm.replay import ReplayBackend
from stop_tui.lm.types import Backend
from stop_tui.sandbox.api import Sandbox
from stop_tui.store.records import now_iso
from stop_tui.store.store import RunStore, new_run_id


@dataclass
class ReplayStep:
    generation: int
    index: int | None
    recorded: float | None
    replayed: float
    recorded_tests: list[float]
    replayed_tests: list[float]

    @property
    def matches(self) -> bool:
        return self.recorded == self.replayed and sorted(self.recorded_tests) == sorted(
            self.replayed_tests
        )

    @property
    def label(self) -> str:
        where = "seed" if self.generation == 0 else f"gen {self.generation}"
        return where + (f" candidate {self.index}" if self.index is not None else "")


@dataclass
class ReplayReport:
    run_id: str
    steps: list[ReplayStep] = field(default_factory=list)
    divergence: str | None = None
    status: str = ""
    new_run: str | None = None

    @property
    def ok(self) -> bool:
        return self.divergence is None and all(s.matches for s in self.steps)


class Diverged(Exception):
    pass


@dataclass
class RecordedRun:
    config: RunConfig
    seed_improver: str
    transcript: list[dict[str, Any]]
    scores: dict[tuple[int, int | None], tuple[float | None, list[float]]]
    decisions: dict[tuple[int, int | None, str], Decision]


def load_recorded(store: RunStore, run_id: str) -> RecordedRun:
    store.require_run(run_id)
    steps = store.list_steps(run_id)
    seed_commit = next((s for s in steps if s.kind == "seed"), None)
    if seed_commit is None:
        raise UserError(f"run {run_id} has no seed commit", hint="it cannot be replayed")
    settings = dict(store.get_config(run_id).settings)
    config = RunConfig.from_dict(settings)
    seed_improver = store.get_source(
        next(s for s in reversed(steps) if s.kind == "seed" and s.parent is None).commit
    )
    transcript: list[dict[str, Any]] = []
    scores: dict[tuple[int, int | None], tuple[float | None, list[float]]] = {}
    decisions: dict[tuple[int, int | None, str], Decision] = {}
    commits = list(dict.fromkeys(step.commit for step in steps))
    # Two bulk reads (one git process each), not two processes per commit.
    records = store.get_records(commits)
    for commit, record, lines in zip(commits, records, store.get_transcripts(commits), strict=True):
        if record is None:
            continue
        transcript.extend(lines)
        index = record.candidate if record.kind == "candidate" else None
        rejected = (
            record.kind == "candidate"
            and record.decision is not None
            and record.decision.action == "rejected"
        )
        if record.meta_utility is not None and not rejected:
            scores[(record.generation, index)] = (
                record.meta_utility,
                [t.val for t in record.tests if t.val is not None],
            )
        if record.decision is not None and record.kind != "seed":
            purpose = "candidate" if record.kind == "candidate" else "adoption"
            d = record.decision
            edited_source = store.get_source(commit) if d.edited else None
            decisions[(record.generation, index, purpose)] = Decision(
                d.action, f"recorded:{d.by}", now_iso(), d.reason, d.edited, edited_source
            )
    return RecordedRun(config, seed_improver, transcript, scores, decisions)


async def replay(
    store: RunStore,
    run_id: str,
    *,
    sandbox: Sandbox,
    to_branch: bool = False,
    bus: EventBus | None = None,
    backend: Backend | None = None,
    recorded: RecordedRun | None = None,
    on_step: Callable[[ReplayStep], None] | None = None,
) -> ReplayReport:
    """Replay ``run_id``; ``recorded`` may be passed when the caller loaded it already
    (reading every commit's transcript is the slow part), and ``on_step`` is told of
    each meta-utility evaluation as it is compared."""
    if recorded is None:
        recorded = load_recorded(store, run_id)
    report = ReplayReport(run_id=run_id)
    bus = bus or EventBus()
    replay_backend = backend or ReplayBackend(recorded.transcript)
    config = recorded.config
    recorder: Recorder
    if to_branch:
        config = config.replace(run_id=f"{new_run_id()}-replay")
        report.new_run = config.run_id
        recorder = StoreRecorder(store, recorded.seed_improver, command="replay")
    else:
        recorder = MemoryRecorder(recorded.seed_improver)

    def decisions(generation: int, index: int | None, purpose: str) -> Decision | None:
        return recorded.decisions.get((generation, index, purpose))

    run = StopRun(
        config.replace(approval="auto"),
        sandbox=sandbox,
        backend=replay_backend,
        recorder=recorder,
        bus=bus,
        gate=Gate(config.policy),
        decisions=decisions,
    )

    def check(event: Any) -> None:
        if not isinstance(event, MetaUtilityEvaluated):
            return
        key = (event.generation, event.index)
        expected = recorded.scores.get(key)
        step = ReplayStep(
            generation=event.generation,
            index=event.index,
            recorded=expected[0] if expected else None,
            replayed=event.meta_utility,
            recorded_tests=expected[1] if expected else [],
            replayed_tests=list(event.per_test),
        )
        report.steps.append(step)
        if on_step is not None:
            on_step(step)
        if not step.matches and report.divergence is None:
            report.divergence = (
                f"{step.label}: recorded meta-utility {step.recorded} "
                f"(tests {step.recorded_tests}), replay gave {step.replayed} "
                f"(tests {step.replayed_tests})"
            )
            run.abort(Diverged(report.divergence))

    bus.on(check)
    task = asyncio.ensure_future(run.run())
    report.status = await task
    if report.divergence is None and report.status == "failed":
        errors = [e for e in bus.history if getattr(e, "kind", "") == "engine_error"]
        report.divergence = errors[-1].message if errors else "the replay failed"  # type: ignore[attr-defined]
    return report
