"""Typed events: everything a front end shows comes through here.

The engine publishes events on an :class:`EventBus`; the TUI and the headless
CLI each subscribe and render the same stream. Events are frozen dataclasses
with plain-data fields so they can also be logged as JSON (``to_dict``).
Events about one generation or candidate name them in typed fields
(``generation``, ``index``); a ``context`` string is a label for people, never parsed.

*Ephemeral* events (``ephemeral = True``: :class:`LMProgress`) say how far something
has got right now. They are shown and dropped: the bus keeps none in ``history``, no
recorder, transcript or log stores them, and a newer one :meth:`~Event.supersedes`
an older one of the same thing (a front end that falls behind shows the newest only).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from stop_tui.untrusted import visible


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base class. ``kind`` names the event in logs; ``at`` is a wall-clock stamp."""

    kind: ClassVar[str] = "event"
    #: Shown, never kept (see the module's docs).
    ephemeral: ClassVar[bool] = False
    run_id: str = ""
    at: float = field(default_factory=time.time)

    def supersedes(self, older: Event) -> bool:
        """True when this event makes ``older`` (not yet shown) pointless to show."""
        return False

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["kind"] = self.kind
        return data


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    task: str
    model: str
    generations: int
    resumed_from_generation: int = 0


@dataclass(frozen=True, kw_only=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"
    status: str  # finished | cancelled | failed | stopped-by-budget
    message: str = ""
    best_generation: int | None = None
    best_meta_utility: float | None = None


@dataclass(frozen=True, kw_only=True)
class RunPaused(Event):
    kind: ClassVar[str] = "run_paused"
    paused: bool


@dataclass(frozen=True, kw_only=True)
class GenerationStarted(Event):
    kind: ClassVar[str] = "generation_started"
    generation: int


@dataclass(frozen=True, kw_only=True)
class GenerationFinished(Event):
    kind: ClassVar[str] = "generation_finished"
    generation: int
    adopted: bool
    meta_utility: float | None
    test_meta_utility: float | None
    reason: str = ""
    commit: str | None = None
    flags: tuple[str, ...] = ()  # what the audit and the re-score flagged, as recorded


@dataclass(frozen=True, kw_only=True)
class WorkEvent(Event):
    """Base class of an event about work done for a generation and candidate."""

    context: str  # a label for people (``g1/c2/t0``), never parsed
    generation: int | None  # the generation whose work it was (None: outside a run)
    index: int | None  # ... and the candidate, when it was a candidate's evaluation


@dataclass(frozen=True, kw_only=True)
class LMRequested(WorkEvent):
    kind: ClassVar[str] = "lm_requested"
    n: int
    temperature: float


@dataclass(frozen=True, kw_only=True)
class LMResponded(WorkEvent):
    kind: ClassVar[str] = "lm_responded"
    n: int
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool
    cost: float | None
    latency: float
    retries: int = 0
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class LMProgress(WorkEvent):
    """How far one streamed request has got (ephemeral): ``tokens`` received so far
    (approximate), ``elapsed`` seconds since it was sent; ``done`` when its stream ended.
    ``stream`` tells concurrent requests of one context apart (a retry is a new one)."""

    kind: ClassVar[str] = "lm_progress"
    ephemeral: ClassVar[bool] = True
    stream: int
    tokens: int
    elapsed: float
    done: bool = False

    def supersedes(self, older: Event) -> bool:
        return (
            isinstance(older, LMProgress)
            and older.stream == self.stream
            and older.run_id == self.run_id
        )


@dataclass(frozen=True, kw_only=True)
class CandidateProposed(Event):
    kind: ClassVar[str] = "candidate_proposed"
    generation: int
    index: int
    summary: str
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ApprovalRequested(Event):
    kind: ClassVar[str] = "approval_requested"
    request_id: str
    generation: int
    index: int | None
    purpose: str  # "candidate" | "adoption"


@dataclass(frozen=True, kw_only=True)
class ApprovalDecided(Event):
    kind: ClassVar[str] = "approval_decided"
    request_id: str
    generation: int
    index: int | None
    approved: bool
    by: str
    reason: str = ""
    edited: bool = False


@dataclass(frozen=True, kw_only=True)
class UtilityEvaluated(WorkEvent):
    kind: ClassVar[str] = "utility_evaluated"
    task: str
    split: str
    score: float
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class MetaUtilityEvaluated(Event):
    kind: ClassVar[str] = "meta_utility_evaluated"
    generation: int
    index: int | None  # None: the returned improver's re-score
    meta_utility: float
    per_test: tuple[float, ...]
    test_meta_utility: float | None = None
    test_per_test: tuple[float, ...] = ()


@dataclass(frozen=True, kw_only=True)
class EvaluationProgress(Event):
    """A meta-utility evaluation's progress: ``done`` of ``total`` downstream runs."""

    kind: ClassVar[str] = "evaluation_progress"
    generation: int
    index: int | None
    done: int
    total: int


@dataclass(frozen=True, kw_only=True)
class BudgetExceededEvent(WorkEvent):
    kind: ClassVar[str] = "budget_exceeded"
    budget: str
    message: str


@dataclass(frozen=True, kw_only=True)
class SafetyFlagged(Event):
    kind: ClassVar[str] = "safety_flagged"
    generation: int
    index: int | None
    flags: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class EngineError(Event):
    kind: ClassVar[str] = "engine_error"
    message: str
    fatal: bool = False


@dataclass(frozen=True, kw_only=True)
class Notice(Event):
    """Something the user should know once, e.g. how a request was adapted to what the
    endpoint accepts ("max_tokens sent as max_completion_tokens")."""

    kind: ClassVar[str] = "notice"
    message: str


@dataclass(frozen=True, kw_only=True)
class StepCommitted(Event):
    """A scored step written by the recorder: the seed's score or a candidate (a
    generation's own commit comes with :class:`GenerationFinished`). ``flags`` are
    the audit's and the evaluation's together, as recorded."""

    kind: ClassVar[str] = "step_committed"
    generation: int
    index: int | None
    commit: str | None  # None: a recorder that keeps no commits (in memory)
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SubscriberFailed(Event):
    """A subscriber raised while handling an event (e.g. a display error). The event
    still reached every other subscriber and the engine went on."""

    kind: ClassVar[str] = "subscriber_failed"
    subscriber: str
    event_kind: str
    error: str


log = logging.getLogger(__name__)


def _name(callback: Callable[..., object]) -> str:
    return getattr(callback, "__qualname__", None) or type(callback).__name__


class EventBus:
    """Fan-out of events to any number of subscribers.

    ``publish`` never blocks the engine: each subscriber has its own unbounded
    queue. Plain callbacks (``on``) run synchronously, in order, each isolated:
    one that raises is logged and reported to the others as a
    :class:`SubscriberFailed` event (and kept in ``failures``); the event still
    reaches every other subscriber and ``publish`` never raises into the engine.
    """

    _CLOSED: ClassVar[object] = object()

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[object]] = []
        self._callbacks: list[Callable[[Event], None]] = []
        self.history: list[Event] = []
        self.failures: list[SubscriberFailed] = []
        self._logged: set[str] = set()

    def on(self, callback: Callable[[Event], None]) -> None:
        self._callbacks.append(callback)

    def publish(self, event: Event) -> None:
        if not event.ephemeral:
            self.history.append(event)
        failed: list[SubscriberFailed] = []
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception as exc:
                report = SubscriberFailed(
                    run_id=event.run_id,
                    subscriber=_name(callback),
                    event_kind=event.kind,
                    error=f"{type(exc).__name__}: {exc}",
                )
                # once per subscriber as a warning (the error made visible: it may quote
                # untrusted text), every time with the traceback at debug level
                first = report.subscriber not in self._logged
                self._logged.add(report.subscriber)
                log.log(
                    logging.WARNING if first else logging.DEBUG,
                    "event subscriber %s failed on %s: %s",
                    report.subscriber,
                    event.kind,
                    visible(report.error),
                )
                log.debug("traceback of the failure above", exc_info=True)
                failed.append(report)
        for queue in self._queues:
            queue.put_nowait(event)
        # A failure is reported once, never about a report (a subscriber that raises on
        # everything cannot make the bus loop).
        if not isinstance(event, SubscriberFailed):
            for report in failed:
                self.failures.append(report)
                self.publish(report)

    def close(self) -> None:
        for queue in self._queues:
            queue.put_nowait(self._CLOSED)

    async def subscribe(self) -> AsyncIterator[Event]:
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._queues.append(queue)
        try:
            while True:
                item = await queue.get()
                if item is self._CLOSED:
                    return
                assert isinstance(item, Event)
                yield item
        finally:
            self._queues.remove(queue)
