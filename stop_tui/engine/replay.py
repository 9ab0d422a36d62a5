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
from stop_tui.engine.recorder import (
    MemoryRecorder,
    PriorCandidate,
    Recorder,
    StartInfo,
    StepResult,
    StoreRecorder,
)
from stop_tui.errors import UserError
from stop_tui.lm.replay import ReplayBackend
from stop_tui.lm.types import Backend
from stop_tui.sandbox.api import Sandbox
from stop_tui.store.records import now_iso, sha256_hex
from stop_tui.store.store import RunStore, new_run_id
from stop_tui.store.verify import check_resumable


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
    #: Steps whose reproduced source was compared with (and matched) the committed one.
    sources_matched: int = 0
    #: The run was recorded before source hashes (decisions matched by position).
    legacy: bool = False

    @property
    def ok(self) -> bool:
        return self.divergence is None and all(s.matches for s in self.steps)


class Diverged(Exception):
    pass


StepKey = tuple[str, int, int | None]  # ("seed"|"candidate"|"generation", generation, index)


@dataclass
class RecordedRun:
    config: RunConfig
    seed_improver: str
    transcript: list[dict[str, Any]]
    scores: dict[tuple[int, int | None], tuple[float | None, list[float]]]
    #: Recorded decisions by (generation, purpose, sha256 of the source decided): a replay
    #: matches a decision to the source it approved, never by position alone.
    decisions: dict[tuple[int, str, str], list[Decision]] = field(default_factory=dict)
    #: The same decisions by position (generation, index, purpose): to report a decision
    #: whose source differs from the one the replay proposes there.
    decisions_at: dict[tuple[int, int | None, str], Decision] = field(default_factory=dict)
    #: sha256 of every committed source (recomputed from improver.py), by step.
    sources: dict[StepKey, str] = field(default_factory=dict)
    #: The run was recorded before source hashes: decisions match by position.
    legacy: bool = False


def _step_key(kind: str, generation: int, index: int | None) -> StepKey:
    if kind == "seed":
        return ("seed", 0, None)
    if kind == "candidate":
        return ("candidate", generation, index)
    return ("generation", generation, None)


def step_label(key: StepKey) -> str:
    kind, generation, index = key
    if kind == "seed":
        return "seed"
    return f"gen {generation}" + (f" candidate {index}" if kind == "candidate" else "")


def load_recorded(store: RunStore, run_id: str) -> RecordedRun:
    """Read a run for replay; refuse (one line) a run whose history does not verify
    (a source that does not match its hash, a decision bound to another source, ...)."""
    store.require_run(run_id)
    check_resumable(store, run_id, doing="replayed")
    steps = store.list_steps(run_id)
    seed_commit = next((s for s in steps if s.kind == "seed"), None)
    if seed_commit is None:
        raise UserError(f"run {run_id} has no seed commit", hint="it cannot be replayed")
    settings = dict(store.get_config(run_id).settings)
    config = RunConfig.from_dict(settings)
    # A run continued with 'resume --generations N' has more generations than it started
    # with: the replay reproduces every committed one.
    committed = max((s.generation for s in steps), default=0)
    if committed > config.generations:
        config = config.replace(generations=committed)
    seed_improver = store.get_source(
        next(s for s in reversed(steps) if s.kind == "seed" and s.parent is None).commit
    )
    recorded = RecordedRun(config, seed_improver, [], {})
    commits = list(dict.fromkeys(step.commit for step in steps))
    # Three bulk reads (one git process each), not processes per commit.
    records = store.get_records(commits)
    sources = store.git.cat_batch(f"{c}:improver.py" for c in commits)
    transcripts = store.get_transcripts(commits)
    recorded.legacy = not any(r is not None and r.source_sha256 for r in records)
    for record, raw, lines in zip(records, sources, transcripts, strict=True):
        if record is None:
            continue
        recorded.transcript.extend(lines)
        source = (raw or b"").decode()
        index = record.candidate if record.kind == "candidate" else None
        recorded.sources[_step_key(record.kind, record.generation, index)] = sha256_hex(source)
        rejected = (
            record.kind == "candidate"
            and record.decision is not None
            and record.decision.action == "rejected"
        )
        if record.meta_utility is not None and not rejected:
            recorded.scores[(record.generation, index)] = (
                record.meta_utility,
                [t.val for t in record.tests if t.val is not None],
            )
        if record.decision is not None and record.kind != "seed":
            purpose = "candidate" if record.kind == "candidate" else "adoption"
            d = record.decision
            edited_source = None
            if d.edited:
                kept = record.extra.get("edited_source")
                edited_source = kept if isinstance(kept, str) else source
            decision = Decision(
                d.action,
                f"recorded:{d.by}",
                now_iso(),
                d.reason,
                d.edited,
                edited_source,
                source_sha256=d.source_sha256,
            )
            recorded.decisions_at[(record.generation, index, purpose)] = decision
            if d.source_sha256:
                key = (record.generation, purpose, d.source_sha256)
                recorded.decisions.setdefault(key, []).append(decision)
    return recorded


class CheckedRecorder:
    """The replay's recorder, wrapped: every step's source must be the committed one."""

    def __init__(self, inner: Recorder, check: Callable[[StepKey, str], bool]) -> None:
        self._inner = inner
        self._check = check

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._inner, name, value)

    def start(self, config: RunConfig) -> StartInfo:
        return self._inner.start(config)

    def seed_scored(self, improver: str, step: StepResult) -> str | None:
        if not self._check(("seed", 0, None), improver):
            return None
        return self._inner.seed_scored(improver, step)

    def committed_candidates(self, generation: int) -> dict[int, PriorCandidate]:
        return self._inner.committed_candidates(generation)

    def candidate_done(
        self, generation: int, index: int, proposed: str, source: str, step: StepResult
    ) -> str | None:
        if not self._check(("candidate", generation, index), source):
            return None
        return self._inner.candidate_done(generation, index, proposed, source, step)

    def generation_done(
        self, generation: int, improver: str, step: StepResult, adopted: bool
    ) -> str | None:
        if not self._check(("generation", generation, None), improver):
            return None
        return self._inner.generation_done(generation, improver, step, adopted)

    def finish(self, status: str, message: str) -> tuple[int, float] | None:
        return self._inner.finish(status, message)


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
    report = ReplayReport(run_id=run_id, legacy=recorded.legacy)
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

    def diverge(message: str) -> None:
        if report.divergence is None:
            report.divergence = message
            run.abort(Diverged(message))

    reproduced: set[StepKey] = set()

    def same_source(key: StepKey, source: str) -> bool:
        reproduced.add(key)
        committed = recorded.sources.get(key)
        replayed = sha256_hex(source)
        if committed is None:
            diverge(f"{step_label(key)}: the replay produced a step the run never committed")
            return False
        if committed != replayed:
            diverge(
                f"{step_label(key)}: the replay reproduced source sha256 {replayed[:16]}…, "
                f"the committed source is {committed[:16]}…"
            )
            return False
        report.sources_matched += 1
        return True

    def decisions(generation: int, index: int | None, purpose: str, digest: str) -> Decision | None:
        queue = recorded.decisions.get((generation, purpose, digest))
        if queue:
            return queue.pop(0) if len(queue) > 1 else queue[0]
        at = recorded.decisions_at.get((generation, index, purpose))
        if at is None:
            return None
        if recorded.legacy or not at.source_sha256:
            return at  # recorded before hashes: by position, unverifiable
        where = step_label(
            ("candidate" if purpose == "candidate" else "generation", generation, index)
        )
        diverge(
            f"{where}: the recorded {purpose} decision ({'approved' if at.approved else 'rejected'}) "
            f"names source sha256 {at.source_sha256[:16]}…, the replay proposed {digest[:16]}…; "
            "refused"
        )
        return Decision.reject("replay:refused", "the recorded decision names another source")

    run = StopRun(
        config.replace(approval="auto"),
        sandbox=sandbox,
        backend=replay_backend,
        recorder=CheckedRecorder(recorder, same_source),
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
        if not step.matches:
            diverge(
                f"{step.label}: recorded meta-utility {step.recorded} "
                f"(tests {step.recorded_tests}), replay gave {step.replayed} "
                f"(tests {step.replayed_tests})"
            )

    bus.on(check)
    task = asyncio.ensure_future(run.run())
    report.status = await task
    if report.divergence is None and report.status == "failed":
        errors = [e for e in bus.history if getattr(e, "kind", "") == "engine_error"]
        report.divergence = errors[-1].message if errors else "the replay failed"  # type: ignore[attr-defined]
    if report.divergence is None:
        missing = sorted(set(recorded.sources) - reproduced, key=lambda k: (k[1], k[0], k[2] or 0))
        if missing:
            report.divergence = (
                f"{step_label(missing[0])}: committed in the run, never reproduced by the replay"
            )
    return report
