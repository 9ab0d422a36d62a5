"""Where the loop writes what happened: the git run store, or memory.

The loop talks to a :class:`Recorder`; :class:`StoreRecorder` turns every
step into a commit of the git run store (with the LM transcript lines of that
step, sliced out of the run's work transcript by their context label), and
:class:`MemoryRecorder` keeps steps in memory (replays that are only checked,
tests).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stop_tui.engine.approval import Decision
from stop_tui.engine.audit import Flag
from stop_tui.engine.config import RunConfig
from stop_tui.engine.evidence import Scores, scores_of_record
from stop_tui.lm.budget import RunBudget
from stop_tui.store import records as store_records
from stop_tui.store.integrity import presented_source
from stop_tui.store.records import sha256_hex
from stop_tui.store.store import RunStore, RunWriter
from stop_tui.store.verify import check_resumable


@dataclass
class TestResult:
    """One meta-utility test: a downstream run of an improver."""

    val: float
    test: float
    solution: str | None
    error: str | None
    flags: list[Flag] = field(default_factory=list)
    lm_calls: int = 0
    utility_calls: int = 0
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    cpu_seconds: float | None = None


@dataclass
class StepResult:
    meta_utility: float | None
    test_meta_utility: float | None
    tests: list[TestResult]
    flags: list[Flag]
    decision: Decision | None
    summary: str = ""
    lm_calls: int = 0
    utility_calls: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    behaviour: dict[str, Any] = field(default_factory=dict)  # Behaviour.to_json()


@dataclass(frozen=True)
class Spent:
    """Language-model use (as :class:`~stop_tui.lm.budget.RunBudget` counts it)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cost_unknown_calls: int = 0
    tokens_estimated: bool = False

    def charge(self, budget: RunBudget) -> None:
        """Count this use on ``budget`` (use recorded before a crash, not run again)."""
        budget.calls_used += self.calls
        budget.prompt_tokens += self.prompt_tokens
        budget.completion_tokens += self.completion_tokens
        budget.cost += self.cost
        budget.cost_unknown_calls += self.cost_unknown_calls
        budget.tokens_estimated = budget.tokens_estimated or self.tokens_estimated


@dataclass(frozen=True)
class StartInfo:
    improver: str
    completed_generation: int
    seed_scored: bool
    #: On resume: what the run spent before the crash in steps it does not run again
    #: (run-wide caps count it; what is run again is counted as it is served).
    spent: Spent = Spent()


@dataclass(frozen=True)
class PriorCandidate:
    source_hash: str
    meta_utility: float


class Recorder(Protocol):
    def start(self, config: RunConfig) -> StartInfo: ...

    def seed_scored(self, improver: str, step: StepResult) -> str | None: ...

    def committed_candidates(self, generation: int) -> dict[int, PriorCandidate]: ...

    def candidate_done(
        self, generation: int, index: int, proposed: str, source: str, step: StepResult
    ) -> str | None: ...

    def generation_done(
        self, generation: int, improver: str, step: StepResult, adopted: bool
    ) -> str | None: ...

    def finish(self, status: str, message: str) -> tuple[int, float] | None: ...


@dataclass
class MemoryStep:
    generation: int
    kind: str
    index: int | None
    source: str
    step: StepResult


class MemoryRecorder:
    """Keeps every step in memory."""

    def __init__(self, seed_improver: str) -> None:
        self.seed_improver = seed_improver
        self.steps: list[MemoryStep] = []
        self.status = ""
        self.message = ""

    def start(self, config: RunConfig) -> StartInfo:
        return StartInfo(self.seed_improver, 0, False)

    def seed_scored(self, improver: str, step: StepResult) -> str | None:
        self.steps.append(MemoryStep(0, "seed", None, improver, step))
        return None

    def committed_candidates(self, generation: int) -> dict[int, PriorCandidate]:
        return {}

    def candidate_done(
        self, generation: int, index: int, proposed: str, source: str, step: StepResult
    ) -> str | None:
        self.steps.append(MemoryStep(generation, "candidate", index, source, step))
        return None

    def generation_done(
        self, generation: int, improver: str, step: StepResult, adopted: bool
    ) -> str | None:
        kind = "adopted" if adopted else "kept"
        self.steps.append(MemoryStep(generation, kind, None, improver, step))
        return None

    def finish(self, status: str, message: str) -> tuple[int, float] | None:
        self.status, self.message = status, message
        scored = [
            (s.generation, s.step.meta_utility)
            for s in self.steps
            if s.kind in ("seed", "adopted") and s.step.meta_utility is not None
        ]
        if not scored:
            return None
        gen, best = max(scored, key=lambda item: (item[1], -item[0]))
        assert best is not None
        return gen, best


class WorkTranscript:
    """Reads the run's work transcript incrementally and slices it by context."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.lines: list[dict[str, Any]] = []

    def _pull(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n")
        if end < 0:
            return
        for raw in data[: end + 1].splitlines():
            if raw.strip():
                try:
                    self.lines.append(json.loads(raw))
                except json.JSONDecodeError:
                    continue
        self._offset += end + 1

    def slice(self, *prefixes: str) -> list[dict[str, Any]]:
        self._pull()
        return [
            line
            for line in self.lines
            if any(str(line.get("context", "")).startswith(p) for p in prefixes)
        ]


def work_transcript_path(store: RunStore, run_id: str) -> Path:
    return store.git_dir / "stop-work" / f"{run_id}.jsonl"


class StoreRecorder:
    """Every step a commit in the git run store."""

    def __init__(
        self, store: RunStore, seed_improver: str, *, resume: bool = False, command: str = "run"
    ) -> None:
        self.store = store
        self.seed_improver = seed_improver
        self.resume = resume
        self.command = command
        self.writer: RunWriter | None = None
        self.transcript: WorkTranscript | None = None
        self.run_id = ""
        #: Set by the loop: the run-wide budget use, saved with every state.
        self.budget_snapshot: Callable[[], dict[str, Any]] | None = None

    # -- helpers

    def _w(self) -> RunWriter:
        assert self.writer is not None, "start() first"
        return self.writer

    def _record(
        self, generation: int, kind: str, index: int | None, step: StepResult
    ) -> store_records.StepRecord:
        decision = step.decision
        tests = [
            store_records.MetaTestScore(index=k, val=t.val, test=t.test, error=t.error)
            for k, t in enumerate(step.tests)
        ]
        budget: dict[str, float] = {
            "lm_calls": float(step.lm_calls),
            "utility_calls": float(step.utility_calls),
            "seconds": round(step.seconds, 3),
        }
        extra = dict(step.extra)
        extra["test_flags"] = [[str(f) for f in t.flags] for t in step.tests]
        extra["test_errors"] = [t.error for t in step.tests]
        return store_records.StepRecord(
            generation=generation,
            kind=kind,
            summary=step.summary,
            candidate=index,
            meta_utility=step.meta_utility,
            test_utility=step.test_meta_utility,
            tests=tests,
            budget=budget,
            flags=[str(f) for f in step.flags],
            decision=decision,
            extra=extra,
            behaviour=dict(step.behaviour),
        )

    @staticmethod
    def _solutions(step: StepResult) -> dict[str, str]:
        return {
            f"test-{k}.py": t.solution for k, t in enumerate(step.tests) if t.solution is not None
        }

    def _state(self, status: str, generation: int, phase: str, message: str = "") -> Any:
        budget = self.budget_snapshot() if self.budget_snapshot is not None else {}
        return store_records.RunState(
            status=status, generation=generation, phase=phase, message=message, budget=budget
        )

    # -- Recorder

    def start(self, config: RunConfig) -> StartInfo:
        self.run_id = config.run_id
        if self.resume:
            # Never continue from forged code: every committed source must match its hash.
            check_resumable(self.store, config.run_id)
            self.writer = self.store.open_run(config.run_id, command=self.command)
            self.transcript = WorkTranscript(work_transcript_path(self.store, self.run_id))
            tip = self.writer.tip
            assert tip is not None
            record = self.store.get_record(tip)
            improver = self.store.get_source(tip)
            generation = self.writer.generation
            seed_scored = generation > 0 or record.meta_utility is not None
            self.writer.save_state(self._state("running", generation, "resumed"))
            spent = self._spent_before(generation) if seed_scored else Spent()
            return StartInfo(improver, generation, seed_scored, spent)
        store_config = store_records.RunConfig(
            task=config.task, model=config.model, settings=config.to_dict()
        )
        self.writer = self.store.create_run(
            store_config, self.seed_improver, run_id=config.run_id, command=self.command
        )
        self.transcript = WorkTranscript(work_transcript_path(self.store, self.run_id))
        return StartInfo(self.seed_improver, 0, False)

    def _spent_before(self, generation: int) -> Spent:
        """LM use recorded in the work transcript by the steps a resume after
        ``generation`` (seed scored) does not run again: earlier generations and the
        candidates of the next one that are committed. The rest (the improver's own
        calls, uncommitted candidates, the final evaluation) runs again, its recorded
        responses served and counted then."""
        assert self.transcript is not None
        current = f"g{generation + 1}"
        committed = set(self.committed_candidates(generation + 1))

        def runs_again(context: str) -> bool:
            head, _, rest = context.partition("/")
            if head != current:
                return False
            part = rest.split("/", 1)[0]
            if part[:1] == "c" and part[1:].isdigit():
                return int(part[1:]) not in committed
            return True

        calls = prompt = completion = unknown = 0
        cost = 0.0
        estimated = False
        for line in self.transcript.slice(""):
            if runs_again(str(line.get("context", ""))):
                continue
            calls += 1  # failed requests count too
            if not line.get("ok"):
                continue
            usage = line.get("usage") or {}
            prompt += int(usage.get("prompt_tokens") or 0)
            completion += int(usage.get("completion_tokens") or 0)
            estimated = estimated or bool(usage.get("estimated"))
            if line.get("cost") is None:
                unknown += 1
            else:
                cost += float(line["cost"])
        return Spent(calls, prompt, completion, cost, unknown, estimated)

    def seed_scored(self, improver: str, step: StepResult) -> str | None:
        assert self.transcript is not None
        step.summary = step.summary or "seed improver"
        record = self._record(0, "seed", None, step)
        return self._w().commit_step(
            record,
            improver,
            solutions=self._solutions(step),
            transcript=self.transcript.slice("g0/"),
            state=self._state("running", 0, "seed-scored"),
        )

    def committed_candidates(self, generation: int) -> dict[int, PriorCandidate]:
        found: dict[int, PriorCandidate] = {}
        infos = [
            info
            for info in self.store.list_steps(self.run_id)
            if info.kind == "candidate"
            and info.generation == generation
            and info.candidate is not None
        ]
        records = self.store.get_records(info.commit for info in infos)
        sources = self.store.git.cat_batch(f"{info.commit}:improver.py" for info in infos)
        for info, record, source in zip(infos, records, sources, strict=True):
            if record is None or info.candidate is None or source is None:
                continue
            if "proposed_hash" in record.extra and record.meta_utility is not None:
                # The identity of what was proposed, computed from the committed text (full
                # sha256; runs recorded with 64-bit hashes resume the same way).
                proposed = presented_source(record, source.decode())
                found[info.candidate] = PriorCandidate(sha256_hex(proposed), record.meta_utility)
        return found

    def scores_of(self, digest: str) -> tuple[Scores, str] | None:
        """The recorded meta-utility tests of the latest scored commit whose improver.py
        has sha256 ``digest`` (a resumed run's parent was scored in an earlier process)."""
        infos = self.store.list_steps(self.run_id)
        for info, record in reversed(
            list(zip(infos, self.store.get_records(i.commit for i in infos), strict=True))
        ):
            # A "kept" commit holds the previous improver with the rejected one's tests.
            if (
                record is not None
                and record.kind != "kept"
                and record.source_sha256 == digest
                and record.tests
            ):
                where = f"recorded at {info.kind} commit {info.commit[:10]}"
                return scores_of_record(record), where
        return None

    def candidate_done(
        self, generation: int, index: int, proposed: str, source: str, step: StepResult
    ) -> str | None:
        assert self.transcript is not None
        step.extra["proposed_hash"] = sha256_hex(proposed)
        if proposed != source:
            step.extra["proposed_source"] = proposed
        record = self._record(generation, "candidate", index, step)
        return self._w().commit_step(
            record,
            source,
            solutions=self._solutions(step),
            transcript=self.transcript.slice(f"g{generation}/c{index}/"),
        )

    def generation_done(
        self, generation: int, improver: str, step: StepResult, adopted: bool
    ) -> str | None:
        assert self.transcript is not None
        kind = "adopted" if adopted else "kept"
        record = self._record(generation, kind, None, step)
        return self._w().commit_step(
            record,
            improver,
            solutions=self._solutions(step),
            transcript=self.transcript.slice(f"g{generation}/meta", f"g{generation}/final/"),
            state=self._state("running", generation, "generation-done"),
        )

    def finish(self, status: str, message: str) -> tuple[int, float] | None:
        writer = self.writer
        if writer is None:
            return None
        try:
            writer.save_state(self._state(status, writer.generation, "ended", message))
            best = self.store.best(self.run_id)
        finally:
            writer.close()
            self.writer = None
        if best is None or best.meta_utility is None:
            return None
        return best.generation, best.meta_utility
