"""The approval gate: no generated improver runs before someone says yes.

The engine builds an :class:`ApprovalRequest` and awaits :meth:`Gate.ask`.
A policy may answer at once (``auto``, ``reject-flagged``, or an
``each-generation`` run asking about a candidate); otherwise the request is
published as an event and waits until a front end calls
:meth:`ApprovalRequest.resolve`. Whoever answers, the engine sees a
:class:`Decision` (the one the store records: :mod:`stop_tui.store.records`)
carrying who decided, when, why, and any edited source.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import itertools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from stop_tui.config import Policy
from stop_tui.engine.events import Event, RunStarted
from stop_tui.engine.evidence import Evidence
from stop_tui.store.answers import AnswerBoard, check_answer, decider, describe_answer
from stop_tui.store.records import Decision, now_iso, sha256_hex
from stop_tui.untrusted import visible

__all__ = [
    "ApprovalRequest",
    "Decision",
    "Gate",
    "Policy",
    "Purpose",
    "SharedAnswers",
    "human_identity",
]

log = logging.getLogger(__name__)


class Purpose(StrEnum):
    CANDIDATE = "candidate"  # a generated improver about to be scored by the meta-utility
    ADOPTION = "adoption"  # a returned improver about to become the next generation's improver


_ids = itertools.count(1)


@dataclass
class ApprovalRequest:
    """One question to a person (or a policy). Resolve it exactly once."""

    run_id: str
    generation: int
    index: int | None
    purpose: Purpose
    source: str
    parent_source: str
    flags: tuple[str, ...]
    allowances: dict[str, Any]
    #: Scores the engine knows at this moment (the subject's, the parent's, the siblings').
    evidence: Evidence | None = None
    request_id: str = field(default_factory=lambda: f"req-{next(_ids)}")
    #: Set when the request is offered to other processes (:class:`SharedAnswers`): every
    #: answer given here must win the shared claim first. Returns None when it won, else
    #: who had already answered.
    claim: Callable[[Decision], str | None] | None = field(default=None, repr=False)
    #: Who had answered first when an answer given here lost the claim.
    lost_to: str = ""
    _future: asyncio.Future[Decision] | None = field(default=None, repr=False)

    def _bind(self) -> asyncio.Future[Decision]:
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
        return self._future

    @property
    def pending(self) -> bool:
        return self._future is not None and not self._future.done()

    def resolve(self, decision: Decision) -> bool:
        """Answer the request; safe to call from the event loop's thread only. False when
        it was answered already (here, or elsewhere first: see :attr:`lost_to`)."""
        future = self._bind()
        if self.claim is not None:
            winner = self.claim(decision)  # after a decision too: it loses, and says who won
            if winner is not None:
                self.lost_to = winner
                return False
        if future.done():
            self.lost_to = self.lost_to or "answered"
            return False
        future.set_result(decision)
        return True

    def settle(self, decision: Decision) -> bool:
        """Answer with a decision that already won the shared claim (another process's)."""
        future = self._bind()
        if future.done():
            return False
        future.set_result(decision)
        return True

    @property
    def decided(self) -> asyncio.Future[Decision]:
        """Done when the request is answered, by whoever."""
        return self._bind()

    def approve(self, by: str | None = None, reason: str = "") -> bool:
        return self.resolve(Decision.approve(by or human_identity(), reason))

    def reject(self, reason: str = "", by: str | None = None) -> bool:
        return self.resolve(Decision.reject(by or human_identity(), reason))

    def approve_edited(self, source: str, by: str | None = None, reason: str = "") -> bool:
        return self.resolve(Decision.approve(by or human_identity(), reason, edited_source=source))


def human_identity() -> str:
    try:
        return getpass.getuser()
    except Exception:  # pragma: no cover - no passwd entry
        return "unknown-user"


class Gate:
    """Applies the run's policy and, where a person must decide, waits for one.

    Every listener is called with each request that needs a person (the engine
    publishes it as an event; a front end may queue it for display);
    ``approve_rest_of_generation`` lets a front end approve the remaining
    candidates of one generation.
    """

    def __init__(
        self, policy: Policy, on_request: Callable[[ApprovalRequest], None] | None = None
    ) -> None:
        self.policy = policy
        self.listeners: list[Callable[[ApprovalRequest], None]] = []
        if on_request is not None:
            self.listeners.append(on_request)
        self.pending: dict[str, ApprovalRequest] = {}
        self._approve_rest: set[int] = set()

    def approve_rest_of_generation(self, generation: int, by: str | None = None) -> None:
        self._approve_rest.add(generation)
        for request in list(self.pending.values()):
            if (
                request.pending  # one just answered is not answered again
                and request.generation == generation
                and request.purpose is Purpose.CANDIDATE
            ):
                request.approve(by, reason="approved the rest of this generation")

    def automatic(self, request: ApprovalRequest) -> Decision | None:
        """The policy's own answer, or None when a person must decide."""
        if self.policy is Policy.AUTO:
            return Decision.approve("policy:auto")
        if self.policy is Policy.REJECT_FLAGGED:
            if request.flags:
                return Decision.reject("policy:reject-flagged", "; ".join(request.flags))
            return Decision.approve("policy:reject-flagged")
        if self.policy is Policy.EACH_GENERATION and request.purpose is Purpose.CANDIDATE:
            return Decision.approve("policy:each-generation")
        if request.purpose is Purpose.CANDIDATE and request.generation in self._approve_rest:
            return Decision.approve(human_identity(), "approved the rest of this generation")
        return None

    async def ask(self, request: ApprovalRequest) -> Decision:
        decision = self.automatic(request)
        if decision is not None:
            return decision
        future = request._bind()
        self.pending[request.request_id] = request
        try:
            for listener in list(self.listeners):
                try:
                    listener(request)
                except Exception as exc:
                    # A front end that cannot show the request must not leave the engine
                    # waiting, nor let unseen code run: the request is rejected (fail closed).
                    log.warning(
                        "approval listener failed: %s", visible(f"{type(exc).__name__}: {exc}")
                    )
                    log.debug("traceback of the failure above", exc_info=True)
                    if request.pending:
                        request.resolve(
                            Decision.reject(
                                "gate", f"could not be shown for review ({type(exc).__name__})"
                            )
                        )
            return await future
        finally:
            self.pending.pop(request.request_id, None)


#: The longest reason an answer from another process may carry.
MAX_REASON = 2000


class SharedAnswers:
    """Offers a gate's requests to other processes and takes their answers.

    Each request that needs a person is published on an
    :class:`~stop_tui.store.answers.AnswerBoard` (``stop-tui pending`` lists it,
    ``stop-tui answer`` answers it); from then on every answer given in this process
    must win the board's claim first (:attr:`ApprovalRequest.claim`), and
    :meth:`watch` settles a request whose claim another process won. So a request is
    decided exactly once, and the decision names who made it.
    """

    def __init__(self, gate: Gate, board: AnswerBoard, *, poll: float = 0.2) -> None:
        self.gate = gate
        self.board = board
        self.poll = poll
        self.offered: dict[str, tuple[ApprovalRequest, dict[str, Any]]] = {}
        gate.listeners.append(self.offer)

    def on_event(self, event: Event) -> None:
        # The run holds its lock from RunStarted on: what a killed session left goes. (A
        # sweep's bus carries every cell's events: only this run's own start counts.)
        if isinstance(event, RunStarted) and event.run_id in ("", self.board.run_id):
            self.board.reset()

    def offer(self, request: ApprovalRequest) -> None:
        evidence = request.evidence
        review: list[str] = []
        if evidence is not None:
            review += evidence.lines()
            review += [f"⚑ {alarm}" for alarm in evidence.alarms]
            mine = dict(evidence.behaviour.rows()) if evidence.behaviour else {}
            theirs = dict(evidence.parent_behaviour.rows()) if evidence.parent_behaviour else {}
            review += [f"{k}: {mine.get(k, '-')} | {theirs.get(k, '-')}" for k in mine or theirs]
            if evidence.monitor is not None:  # untrusted: shown through the sanitiser
                review += [evidence.monitor.heading(), *evidence.monitor.text.split("\n")]
        data = self.board.publish(
            {
                "request_id": request.request_id,
                "generation": request.generation,
                "index": request.index,
                "purpose": request.purpose.value,
                "source_sha256": sha256_hex(request.source),
                "source": request.source,
                "parent_source": request.parent_source,
                "flags": list(request.flags),
                "allowances": {str(k): str(v) for k, v in request.allowances.items()},
                "review": review,
                "published": now_iso(),
            }
        )
        rid = request.request_id
        self.offered[rid] = (request, data)
        request.claim = lambda decision: self._claim(rid, data, decision)
        request.decided.add_done_callback(lambda _future: self.board.withdraw(rid))

    def _claim(self, rid: str, data: dict[str, Any], decision: Decision) -> str | None:
        answer = {
            "run_id": data["run_id"],
            "request_id": rid,
            "session": data["session"],
            "source_sha256": data["source_sha256"],
            "action": decision.action,
            "reason": decision.reason,
            "by": decision.by,
            "via": "run",
            "pid": os.getpid(),
            "at": decision.at,
        }
        try:
            winner = self.board.claim(rid, self.board.session, answer)
        except OSError as exc:
            log.warning("could not record the answer's claim: %s", visible(str(exc)))
            existing = self.board.answer(rid, self.board.session)  # none: nobody else can have won
            return None if existing is None else describe_answer(existing)
        return None if winner is None else describe_answer(winner)

    def check(self) -> None:
        """Settle every offered request another process has answered; forget the rest."""
        for rid, (request, data) in list(self.offered.items()):
            if not request.pending:
                if request.decided.done() or rid not in self.gate.pending:
                    del self.offered[rid]
                    self.board.withdraw(rid)  # abandoned (the run stopped waiting)
                continue
            answer = self.board.answer(rid, self.board.session)
            if answer is None:
                continue
            problem = check_answer(answer, data)
            if problem is None and answer.get("action") not in ("approved", "rejected"):
                problem = "another process can only approve or reject"
            if problem is not None:
                # The claim is taken and unusable: nobody else can answer, so fail closed.
                request.settle(Decision.reject("gate", f"unusable answer file ({problem})"))
                continue
            by, reason = decider(answer), str(answer.get("reason", ""))[:MAX_REASON]
            if answer["action"] == "approved":
                request.settle(Decision.approve(by, reason))
            else:
                request.settle(Decision.reject(by, reason))

    async def watch(self) -> None:
        """Check for answers until cancelled."""
        while True:
            await asyncio.sleep(self.poll)
            try:
                self.check()
            except OSError as exc:  # the workspace went away for a moment: try again
                log.warning("could not read answers: %s", visible(str(exc)))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.board.close()
