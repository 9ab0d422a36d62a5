"""One run as both front ends show it, as plain data: per-generation rows, candidates
with their decisions and scores, whole-run totals against the budget caps, what is
running now (LM requests in flight and how far each streamed one has got), waiting
decisions, the circumvention rate and the event log.

Built incrementally from engine events (:meth:`RunModel.apply`, a live run) or from
the store (:meth:`RunModel.load`, a saved run); the same run gives the same model
either way. Events name their generation and candidate in typed fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stop_tui.engine.audit import circumvention_line
from stop_tui.engine.config import RunConfig
from stop_tui.engine.events import (
    ApprovalDecided,
    ApprovalRequested,
    BudgetExceededEvent,
    CandidateProposed,
    EngineError,
    EvaluationProgress,
    Event,
    GenerationFinished,
    GenerationStarted,
    LMProgress,
    LMRequested,
    LMResponded,
    MetaUtilityEvaluated,
    Notice,
    RunFinished,
    RunPaused,
    RunStarted,
    SafetyFlagged,
    StepCommitted,
    SubscriberFailed,
)
from stop_tui.store.records import StepInfo, StepRecord
from stop_tui.store.store import RunStore
from stop_tui.view.text import fmt, model_label


@dataclass
class CandidateRow:
    generation: int
    index: int
    summary: str = ""
    flags: tuple[str, ...] = ()
    decision: str = "proposed"  # proposed | waiting | approved | rejected | edited | ...
    by: str = ""
    reason: str = ""
    meta_utility: float | None = None
    per_test: tuple[float, ...] = ()
    test_meta_utility: float | None = None
    done: int = 0
    total: int = 0
    commit: str | None = None


@dataclass(kw_only=True)
class LMCounts:
    """Language-model calls answered, and their tokens and cost (a run's, or a generation's)."""

    lm_calls: int = 0
    lm_failures: int = 0  # requests that failed (after retries)
    last_lm_error: str = ""
    tokens: int = 0
    cost: float = 0.0
    cost_known: bool = True


@dataclass
class GenerationRow(LMCounts):
    generation: int
    status: str = "running"  # seed | running | adopted | kept | unfinished
    meta_utility: float | None = None
    test_meta_utility: float | None = None
    per_test: tuple[float, ...] = ()
    test_per_test: tuple[float, ...] = ()
    parent_meta: float | None = None  # the meta-utility of the improver that produced it
    proposed: int = 0
    approved: int = 0
    rejected: int = 0
    flags: int = 0
    reason: str = ""
    commit: str | None = None

    @property
    def change(self) -> float | None:
        if self.meta_utility is None or self.parent_meta is None:
            return None
        return self.meta_utility - self.parent_meta


@dataclass
class Streaming:
    """One LM request streaming now: its context, tokens so far (approximate) and the
    seconds since it was sent, as of its latest progress event."""

    context: str
    tokens: int
    elapsed: float


@dataclass
class LogLine:
    at: float
    text: str
    style: str = ""


@dataclass
class RunModel(LMCounts):
    run_id: str = ""
    task: str = ""
    model: str = ""
    generations: int = 0
    status: str = "starting"
    message: str = ""
    paused: bool = False
    current: int = 0  # the generation being worked on
    rows: dict[int, GenerationRow] = field(default_factory=dict)
    candidates: dict[tuple[int, int], CandidateRow] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)  # LM context -> requests
    streams: dict[int, Streaming] = field(default_factory=dict)  # stream number -> progress
    evaluations: dict[tuple[int, int | None], tuple[int, int]] = field(default_factory=dict)
    max_calls: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    pending_approvals: int = 0
    best_generation: int | None = None
    best_meta_utility: float | None = None
    log: list[LogLine] = field(default_factory=list)

    @classmethod
    def of_config(cls, config: RunConfig) -> RunModel:
        """A run about to start: what its configuration says, before any event."""
        return cls(
            run_id=config.run_id,
            task=config.task,
            model=config.model,
            generations=config.generations,
            max_calls=config.max_calls,
            max_tokens=config.max_tokens_total,
            max_cost=config.max_cost,
        )

    # ------------------------------------------------------------------ helpers

    def row(self, generation: int) -> GenerationRow:
        row = self.rows.get(generation)
        if row is None:
            row = GenerationRow(generation, status="seed" if generation == 0 else "running")
            row.parent_meta = self.improver_meta_before(generation)
            self.rows[generation] = row
        return row

    def candidate(self, generation: int, index: int) -> CandidateRow:
        key = (generation, index)
        cand = self.candidates.get(key)
        if cand is None:
            cand = self.candidates[key] = CandidateRow(generation, index)
        return cand

    def improver_meta_before(self, generation: int) -> float | None:
        """The meta-utility of the improver in charge at the start of ``generation``."""
        for g in range(generation - 1, -1, -1):
            row = self.rows.get(g)
            if row is None:
                continue
            if row.status in ("seed", "adopted") and row.meta_utility is not None:
                return row.meta_utility
        return None

    def candidates_of(self, generation: int) -> list[CandidateRow]:
        return [c for (g, _), c in sorted(self.candidates.items()) if g == generation]

    def add_log(self, at: float, text: str, style: str = "") -> None:
        self.log.append(LogLine(at, text, style))

    def count_lm(self, generation: int | None, tokens: int, cost: float | None) -> None:
        """One answered language-model call, in the totals and its generation's row."""
        for counts in (self, self.row(generation)) if generation is not None else (self,):
            counts.lm_calls += 1
            counts.tokens += tokens
            if cost is None:
                counts.cost_known = False
            else:
                counts.cost += cost

    @property
    def in_flight_total(self) -> int:
        return sum(self.in_flight.values())

    def streaming(self) -> list[Streaming]:
        """The requests streaming now, by context then stream."""
        return [s for _, s in sorted(self.streams.items(), key=lambda kv: (kv[1].context, kv[0]))]

    @property
    def circumvention(self) -> str:
        """The paper's sandbox-circumvention rate over this run's candidates."""
        return circumvention_line(c.flags for c in self.candidates.values())

    @property
    def finished(self) -> bool:
        return self.status not in ("starting", "running", "paused")

    # ------------------------------------------------------------------ events

    def apply(self, event: Event) -> LogLine | None:
        """Update from one engine event; return the log line it produced, if any."""
        before = len(self.log)
        at = event.at
        if isinstance(event, RunStarted):
            self.run_id = event.run_id
            self.task, self.model, self.generations = event.task, event.model, event.generations
            self.status = "running"
            self.current = event.resumed_from_generation
            resumed = (
                f", resuming after generation {event.resumed_from_generation}"
                if event.resumed_from_generation
                else ""
            )
            self.add_log(
                at,
                f"run {event.run_id} started: {event.task}, {model_label(event.model)}, "
                f"{event.generations} generations{resumed}",
                "bold",
            )
        elif isinstance(event, GenerationStarted):
            self.current = event.generation
            row = self.row(event.generation)
            row.status = "running"
            row.parent_meta = self.improver_meta_before(event.generation)
            self.add_log(at, f"generation {event.generation} started", "bold")
        elif isinstance(event, CandidateProposed):
            cand = self.candidate(event.generation, event.index)
            cand.summary, cand.flags = event.summary, event.flags
            row = self.row(event.generation)
            row.proposed += 1
            row.flags += 1 if event.flags else 0
            self.add_log(at, f"g{event.generation} candidate {event.index}: {event.summary}")
        elif isinstance(event, SafetyFlagged):
            where = f"candidate {event.index}" if event.index is not None else "returned improver"
            self.add_log(
                at, f"g{event.generation} {where} flagged: {'; '.join(event.flags)}", "warning"
            )
        elif isinstance(event, ApprovalRequested):
            self.pending_approvals += 1
            if event.index is not None:
                self.candidate(event.generation, event.index).decision = "waiting"
            what = (
                f"candidate {event.index}" if event.index is not None else "adoption of its result"
            )
            self.add_log(at, f"g{event.generation} {what}: waiting for your decision", "accent")
        elif isinstance(event, ApprovalDecided):
            if event.request_id != "recorded" and not event.by.startswith("policy:"):
                self.pending_approvals = max(0, self.pending_approvals - 1)
            if event.index is not None:
                cand = self.candidate(event.generation, event.index)
                cand.decision = (
                    ("edited" if event.edited else "approved") if event.approved else "rejected"
                )
                cand.by, cand.reason = event.by, event.reason
                row = self.row(event.generation)
                if event.approved:
                    row.approved += 1
                else:
                    row.rejected += 1
            if not event.by.startswith("policy:") or not event.approved:
                verdict = "approved" if event.approved else "rejected"
                what = (
                    f"candidate {event.index}" if event.index is not None else "returned improver"
                )
                why = f": {event.reason}" if event.reason else ""
                self.add_log(
                    at,
                    f"g{event.generation} {what} {verdict} by {event.by}{why}",
                    "success" if event.approved else "error",
                )
        elif isinstance(event, EvaluationProgress):
            key = (event.generation, event.index)
            if event.done >= event.total:
                self.evaluations.pop(key, None)
            else:
                self.evaluations[key] = (event.done, event.total)
            if event.index is not None:
                cand = self.candidate(event.generation, event.index)
                cand.done, cand.total = event.done, event.total
        elif isinstance(event, MetaUtilityEvaluated):
            self.evaluations.pop((event.generation, event.index), None)
            if event.index is None:
                row = self.row(event.generation)
                row.meta_utility = event.meta_utility
                row.test_meta_utility = event.test_meta_utility
                row.per_test, row.test_per_test = event.per_test, event.test_per_test
                who = "seed improver" if event.generation == 0 else "returned improver"
                self.add_log(
                    at,
                    f"g{event.generation} {who}: meta-utility {fmt(event.meta_utility)} "
                    f"(test {fmt(event.test_meta_utility)})",
                )
            else:
                cand = self.candidate(event.generation, event.index)
                cand.meta_utility, cand.per_test = event.meta_utility, event.per_test
                cand.test_meta_utility = event.test_meta_utility
                cand.done = cand.total = len(event.per_test)
                self.add_log(
                    at,
                    f"g{event.generation} candidate {event.index}: meta-utility "
                    f"{fmt(event.meta_utility)} (tests {', '.join(f'{v:.2f}' for v in event.per_test)})",
                )
        elif isinstance(event, GenerationFinished):
            row = self.row(event.generation)
            row.status = "adopted" if event.adopted else "kept"
            row.reason = event.reason
            row.commit = event.commit
            row.flags += 1 if event.flags else 0
            if event.meta_utility is not None:
                row.meta_utility = event.meta_utility
                row.test_meta_utility = event.test_meta_utility
            if event.adopted:
                self.add_log(
                    at,
                    f"generation {event.generation}: adopted, meta-utility "
                    f"{fmt(event.meta_utility)} (test {fmt(event.test_meta_utility)})",
                    "success",
                )
            else:
                self.add_log(
                    at,
                    f"generation {event.generation}: kept the previous improver ({event.reason})",
                    "warning",
                )
        elif isinstance(event, LMRequested):
            self.in_flight[event.context] = self.in_flight.get(event.context, 0) + 1
        elif isinstance(event, LMProgress):
            if event.done:
                self.streams.pop(event.stream, None)
            else:
                self.streams[event.stream] = Streaming(event.context, event.tokens, event.elapsed)
        elif isinstance(event, LMResponded):
            left = self.in_flight.get(event.context, 0) - 1
            if left > 0:
                self.in_flight[event.context] = left
            else:
                self.in_flight.pop(event.context, None)
                for stream in [k for k, s in self.streams.items() if s.context == event.context]:
                    del self.streams[stream]  # a stream's end that never came
            self.count_lm(
                event.generation, event.prompt_tokens + event.completion_tokens, event.cost
            )
            if event.error:
                self.lm_failures += 1
                self.last_lm_error = event.error
                self.add_log(at, f"LM error ({event.context}): {event.error}", "error")
        elif isinstance(event, Notice):
            self.add_log(at, f"notice: {event.message}", "warning")
        elif isinstance(event, StepCommitted):
            if event.index is None:
                row = self.row(event.generation)
                row.commit = event.commit
                row.flags += 1 if event.flags else 0
            else:
                cand = self.candidate(event.generation, event.index)
                if event.flags and not cand.flags:
                    self.row(event.generation).flags += 1  # flagged while it ran
                cand.flags, cand.commit = event.flags, event.commit
        elif isinstance(event, BudgetExceededEvent):
            if event.budget.startswith("run:"):
                self.add_log(at, f"run budget reached: {event.message}", "error")
        elif isinstance(event, EngineError):
            self.add_log(at, f"error: {event.message}", "error")
        elif isinstance(event, SubscriberFailed):
            self.add_log(
                at,
                f"display error in {event.subscriber} on {event.event_kind}: {event.error} "
                "(the run goes on; nothing was lost)",
                "warning",
            )
        elif isinstance(event, RunPaused):
            self.paused = event.paused
            self.status = "paused" if event.paused else "running"
            self.add_log(at, "paused" if event.paused else "resumed", "accent")
        elif isinstance(event, RunFinished):
            self.status = event.status
            self.message = event.message
            self.paused = False
            self.in_flight.clear()
            self.streams.clear()
            self.evaluations.clear()
            self.best_generation = event.best_generation
            self.best_meta_utility = event.best_meta_utility
            for row in self.rows.values():
                if row.status == "running":
                    row.status = "unfinished"
            for cand in self.candidates.values():
                if cand.decision in ("waiting", "proposed"):
                    cand.decision = "undecided"
                if cand.meta_utility is None:
                    cand.done = cand.total = 0  # its evaluation never finished
            self.pending_approvals = 0
            best = (
                f"; best meta-utility {fmt(event.best_meta_utility)} "
                f"(generation {event.best_generation})"
                if event.best_generation is not None
                else ""
            )
            why = f" ({event.message})" if event.message else ""
            self.add_log(
                at,
                f"run {event.status}{why}{best}",
                "success" if event.status == "finished" else "error",
            )
        return self.log[-1] if len(self.log) > before else None


# ---------------------------------------------------------------------- from the store


def from_store(store: RunStore, run_id: str) -> RunModel:
    """A saved run's model, read from the store (blocking: call it in a thread)."""
    steps = store.list_steps(run_id)
    records = store.get_records(s.commit for s in steps)
    config = store.get_config(run_id)
    state = store.get_state(run_id)
    transcripts = {s.commit: store.get_transcript(s.commit) for s in steps}
    best = store.best(run_id)
    status = state.status if state else "unknown"
    if status == "running":
        status = "interrupted"  # nobody is driving it now
    model = from_records(
        steps,
        records,
        dict(config.settings),
        status=status,
        message=state.message if state else "",
        transcripts=transcripts,
        best_commit=best.commit if best else None,
    )
    model.run_id = run_id
    return model


def from_records(
    steps: list[StepInfo],
    records: list[StepRecord | None],
    settings: dict[str, Any],
    *,
    status: str,
    message: str = "",
    transcripts: dict[str, list[dict[str, Any]]] | None = None,
    best_commit: str | None = None,
) -> RunModel:
    """A saved run from its steps and their records (no events needed). The LM calls
    in a step's transcript count for that step's generation."""
    model = RunModel(
        run_id=steps[0].run_id if steps else "",
        task=str(settings.get("task", "")),
        model=str(settings.get("model", "")),
        generations=int(settings.get("generations", 0) or 0),
        status=status,
        message=message,
        max_calls=settings.get("max_calls"),
        max_tokens=settings.get("max_tokens"),
        max_cost=settings.get("max_cost"),
    )
    for step, record in zip(steps, records, strict=True):
        if record is None:
            continue
        if step.kind == "seed":
            if record.meta_utility is None:
                continue  # the unscored seed commit
            row = model.row(0)
            row.status = "seed"
            _fill_row(row, record, step.commit)
        elif step.kind in ("adopted", "kept"):
            row = model.row(step.generation)
            row.parent_meta = model.improver_meta_before(step.generation)
            row.status = step.kind
            row.reason = str(record.extra.get("reason", ""))
            _fill_row(row, record, step.commit)
        elif step.kind == "candidate" and step.candidate is not None:
            _fill_candidate(model, step, record)
        if step.commit == best_commit:
            model.best_generation = step.generation
            model.best_meta_utility = record.meta_utility
    for g, row in model.rows.items():
        if g > 0 and row.parent_meta is None:
            row.parent_meta = model.improver_meta_before(g)
    generation_of = {s.commit: s.generation for s in steps}
    for commit, lines in (transcripts or {}).items():
        _count_transcript(model, generation_of.get(commit), lines)
    if status not in ("running", "paused"):
        for row in model.rows.values():
            if row.status == "running":
                row.status = "unfinished"
    model.current = max(model.rows, default=0)
    return model


def _fill_candidate(model: RunModel, step: StepInfo, record: StepRecord) -> None:
    assert step.candidate is not None
    cand = model.candidate(step.generation, step.candidate)
    cand.summary = record.summary or step.summary
    cand.flags = tuple(record.flags)
    cand.commit = step.commit
    action = record.decision.action if record.decision else "none"
    cand.decision = "edited" if record.decision and record.decision.edited else action
    if record.decision:
        cand.by, cand.reason = record.decision.by, record.decision.reason
    rejected = action == "rejected"
    if not rejected:
        cand.meta_utility = record.meta_utility
        cand.test_meta_utility = record.test_utility
        cand.per_test = tuple(t.val for t in record.tests if t.val is not None)
        cand.done = cand.total = len(cand.per_test)
    row = model.row(step.generation)
    row.proposed += 1
    if rejected:
        row.rejected += 1
    elif record.decision is not None:
        row.approved += 1
    row.flags += 1 if record.flags else 0


def _fill_row(row: GenerationRow, record: StepRecord, commit: str) -> None:
    row.meta_utility = record.meta_utility
    row.test_meta_utility = record.test_utility
    row.per_test = tuple(t.val for t in record.tests if t.val is not None)
    row.test_per_test = tuple(t.test for t in record.tests if t.test is not None)
    row.commit = commit
    row.flags += len(record.flags) and 1


def _count_transcript(
    model: RunModel, generation: int | None, lines: Iterable[dict[str, Any]]
) -> None:
    for line in lines:
        usage = line.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
        cost = line.get("cost")
        model.count_lm(generation, tokens, None if cost is None else float(cost))
