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
import getpass
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from stop_tui.config import Policy
from stop_tui.engine.evidence import Evidence
from stop_tui.store.records import Decision
from stop_tui.untrusted import visible

__all__ = ["ApprovalRequest", "Decision", "Gate", "Policy", "Purpose", "human_identity"]

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
    _future: asyncio.Future[Decision] | None = field(default=None, repr=False)

    def _bind(self) -> asyncio.Future[Decision]:
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
        return self._future

    @property
    def pending(self) -> bool:
        return self._future is not None and not self._future.done()

    def resolve(self, decision: Decision) -> None:
        """Answer the request; safe to call from the event loop's thread only."""
        future = self._bind()
        if not future.done():
            future.set_result(decision)

    def approve(self, by: str | None = None, reason: str = "") -> None:
        self.resolve(Decision.approve(by or human_identity(), reason))

    def reject(self, reason: str = "", by: str | None = None) -> None:
        self.resolve(Decision.reject(by or human_identity(), reason))

    def approve_edited(self, source: str, by: str | None = None, reason: str = "") -> None:
        self.resolve(Decision.approve(by or human_identity(), reason, edited_source=source))


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
            if request.generation == generation and request.purpose is Purpose.CANDIDATE:
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
