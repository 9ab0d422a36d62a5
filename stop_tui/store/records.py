"""Plain data the store reads and writes.

Everything here is a dataclass of plain values (str, int, float, bool, lists,
dicts) so that the engine, the front ends and tests can build and compare them
without knowing anything about git. ``to_json``/``from_json`` give the exact
JSON that lands in ``run.json``, ``record.json`` and ``state.json``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

#: seed: generation 0; candidate: a generated improver; adopted: a generation whose returned
#: improver became the next one; kept: a generation that kept the previous improver.
Kind = Literal["seed", "candidate", "adopted", "kept"]
KINDS: tuple[str, ...] = ("seed", "candidate", "adopted", "kept")
Status = Literal["running", "paused", "finished", "failed", "cancelled"]
STATUSES: tuple[str, ...] = ("running", "paused", "finished", "failed", "cancelled")


def now_iso() -> str:
    """The current UTC time, ISO 8601 with seconds (``2026-11-26T08:15:00Z``)."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_hex(data: str | bytes) -> str:
    """The full SHA-256 of a text (UTF-8) or bytes, 64 hex digits: the identity of a source
    everywhere (records, decisions, approval dedup, the evaluation cache, replay)."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass
class RunConfig:
    """What a run was started with; stored as ``run.json`` in every commit."""

    task: str
    model: str
    #: Free-form settings of the run (budgets, iterations, improver name, ...).
    settings: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""  # filled by the store
    created: str = ""  # filled by the store (ISO 8601 UTC)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        return cls(
            task=str(data.get("task", "")),
            model=str(data.get("model", "")),
            settings=dict(data.get("settings") or {}),
            run_id=str(data.get("run_id", "")),
            created=str(data.get("created", "")),
        )


@dataclass
class Decision:
    """The approval decision about an improver: who decided what, when and why. The
    engine's approval gate answers with one; the store records it with the step."""

    action: str  # approved | edited | rejected (what the engine writes)
    by: str = ""  # a person's name, or "policy:<name>"
    at: str = ""  # ISO 8601 UTC
    reason: str = ""
    edited: bool = False  # the person edited the source before approving
    #: The edited source itself, in memory only: the step's commit holds what ran.
    edited_source: str | None = field(default=None, repr=False, compare=False)
    #: sha256 of the source the decision was about (what the reviewer was shown). Filled by
    #: the store when empty: the step's ``extra["proposed_source"]`` if any, else its source.
    source_sha256: str = ""
    #: sha256 of the source the decision let run: the edited source when edited, else the same.
    approved_sha256: str = ""
    #: The monitor model's note shown with the request (verdict, text, model, context), if
    #: any: kept with the decision for the audit trail; untrusted text, never acted on.
    monitor: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def approve(cls, by: str, reason: str = "", edited_source: str | None = None) -> Decision:
        edited = edited_source is not None
        action = "edited" if edited else "approved"
        return cls(action, by, now_iso(), reason, edited, edited_source)

    @classmethod
    def reject(cls, by: str, reason: str = "") -> Decision:
        return cls("rejected", by, now_iso(), reason)

    @property
    def approved(self) -> bool:
        """Anything but a rejection lets the improver run."""
        return self.action != "rejected"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["edited_source"]
        if not data["monitor"]:
            del data["monitor"]  # no monitor: the record reads as it did before monitors
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Decision:
        return cls(
            action=str(data.get("action", "")),
            by=str(data.get("by", "")),
            at=str(data.get("at", "")),
            reason=str(data.get("reason", "")),
            edited=bool(data.get("edited", False)),
            source_sha256=str(data.get("source_sha256", "")),
            approved_sha256=str(data.get("approved_sha256", "")),
            monitor=dict(data["monitor"]) if isinstance(data.get("monitor"), dict) else {},
        )

    def trailer(self) -> str:
        text = self.action or "none"
        if self.by:
            text += f" by {self.by}"
        if self.edited:
            text += " (edited)"
        return text


@dataclass
class MetaTestScore:
    """The score of one meta-utility test (one downstream run of the improver)."""

    index: int
    val: float | None = None  # utility of the produced solution on the validation split
    test: float | None = None  # ... and on the held-out test split
    error: str | None = None  # why the run produced nothing usable, if it did not

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MetaTestScore:
        return cls(
            index=int(data.get("index", 0)),
            val=_opt_float(data.get("val")),
            test=_opt_float(data.get("test")),
            error=data.get("error"),
        )


@dataclass
class StepRecord:
    """One improver's record: ``record.json`` in its commit.

    ``generation`` is the generation the improver belongs to (a candidate
    generated while producing generation 3 has ``generation=3``); ``candidate``
    is its index among that generation's candidates (for an adopted commit: the
    index of the candidate it came from, if any).
    """

    generation: int
    kind: str  # seed | candidate | adopted
    summary: str = ""  # one line: what this improver does differently
    candidate: int | None = None
    meta_utility: float | None = None  # mean validation utility over the tests
    test_utility: float | None = None  # mean test-split utility over the tests
    tests: list[MetaTestScore] = field(default_factory=list)
    #: Budget used by this step: calls, prompt_tokens, completion_tokens, cost, utility_calls, seconds...
    budget: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)  # audit flags
    decision: Decision | None = None
    adopted_from: str | None = None  # commit of the candidate an adopted improver came from
    model: str = ""  # filled from the run config when empty
    run_id: str = ""  # filled by the store
    created: str = ""  # filled by the store
    extra: dict[str, Any] = field(default_factory=dict)  # anything else the engine wants kept
    #: How its meta-utility tests behaved (stop_tui.engine.behaviour.Behaviour.to_json):
    #: LM requests, samples, tokens, cost, utility calls, wall/CPU time, refusals, prompts.
    behaviour: dict[str, Any] = field(default_factory=dict)
    #: Filled by the store from what it commits (a record that says otherwise is forged):
    #: sha256 of improver.py; sha256 of transcript.jsonl and of every solutions/ file; the
    #: transcript's line count and token usage. Empty in runs recorded before hashes.
    source_sha256: str = ""
    files: dict[str, str] = field(default_factory=dict)
    transcript_usage: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tests"] = [t.to_json() for t in self.tests]
        data["decision"] = self.decision.to_json() if self.decision else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepRecord:
        decision = data.get("decision")
        candidate = data.get("candidate")
        return cls(
            generation=int(data.get("generation", 0)),
            kind=str(data.get("kind", "")),
            summary=str(data.get("summary", "")),
            candidate=None if candidate is None else int(candidate),
            meta_utility=_opt_float(data.get("meta_utility")),
            test_utility=_opt_float(data.get("test_utility")),
            tests=[MetaTestScore.from_json(t) for t in data.get("tests") or []],
            budget={str(k): v for k, v in (data.get("budget") or {}).items()},
            flags=[str(f) for f in data.get("flags") or []],
            decision=Decision.from_json(decision) if decision else None,
            adopted_from=data.get("adopted_from"),
            model=str(data.get("model", "")),
            run_id=str(data.get("run_id", "")),
            created=str(data.get("created", "")),
            extra=dict(data.get("extra") or {}),
            behaviour=dict(data.get("behaviour") or {}),
            source_sha256=str(data.get("source_sha256", "")),
            files={str(k): str(v) for k, v in (data.get("files") or {}).items()},
            transcript_usage={
                str(k): int(v) for k, v in (data.get("transcript_usage") or {}).items()
            },
        )


@dataclass
class RunState:
    """A run's status and what the engine needs to resume it (``state.json``)."""

    status: str = "running"  # running | paused | finished | failed | cancelled
    generation: int = 0  # last completed (adopted) generation
    phase: str = ""  # e.g. "improving", "evaluating", "awaiting-approval"
    message: str = ""  # one line for people ("failed: budget exhausted")
    #: Run-wide budget use so far: calls, tokens, cost, utility_calls...
    budget: dict[str, float] = field(default_factory=dict)
    #: Anything the engine needs to resume (pending candidates, rng state...). JSON values only.
    resume: dict[str, Any] = field(default_factory=dict)
    updated: str = ""  # filled by the store

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        return cls(
            status=str(data.get("status", "running")),
            generation=int(data.get("generation", 0)),
            phase=str(data.get("phase", "")),
            message=str(data.get("message", "")),
            budget=dict(data.get("budget") or {}),
            resume=dict(data.get("resume") or {}),
            updated=str(data.get("updated", "")),
        )


@dataclass
class StepInfo:
    """One commit of a run as listed by :meth:`RunStore.list_steps` (read from trailers)."""

    commit: str
    parent: str | None
    run_id: str
    generation: int
    kind: str
    candidate: int | None
    summary: str  # the commit subject
    meta_utility: float | None
    test_utility: float | None
    decision: str  # the Stop-Decision trailer ("approved by alice", "pending", ...)
    flags: list[str]
    model: str
    date: str  # committer date, ISO 8601
    refs: list[str] = field(default_factory=list)  # refs pointing at this commit
    adopted_from: str | None = None
    adopted: bool = False  # a candidate that a later generation adopted

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunInfo:
    """One run as listed by :meth:`RunStore.list_runs`."""

    run_id: str
    task: str
    model: str
    status: str
    generations: int  # adopted generations after the seed
    best_meta_utility: float | None
    best_commit: str | None
    cost: float | None
    created: str
    head: str  # the branch tip

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
