"""What a run has measured, and what a reviewer is shown at each decision.

:class:`Ledger` keeps, for one session, the meta-utility scores and behaviour profiles
of every source scored (by sha256, with where each was measured), each generation's
candidates so far, and counts the language-model events of the meta-utility tests under
way into their improver's profile; it builds the :class:`Evidence` shown with an
approval request. :func:`allowances` says what an approved improver may do and spend.
Built here, so every front end shows the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from stop_tui.engine.approval import Purpose
from stop_tui.engine.behaviour import Behaviour, alarms
from stop_tui.engine.config import RunConfig
from stop_tui.engine.evidence import Evidence, Scores, Sibling
from stop_tui.engine.meta_utility import MetaResult, source_hash
from stop_tui.lm.budget import LMEvent, RunBudget


def scores_of(result: MetaResult) -> Scores:
    return Scores.of([t.val for t in result.tests], [t.test for t in result.tests])


class Ledger:
    """One session's measurements. ``recorder`` (read at each lookup) may know the scores
    a resumed run measured before (its ``scores_of(sha256)``)."""

    def __init__(self, recorder: object) -> None:
        self.recorder = recorder
        #: What this session scored, by source sha256 (the evidence at each decision) and
        #: where (``candidate 2 of generation 1``); each generation's candidates so far.
        self._scores: dict[str, tuple[Scores, str]] = {}
        self._siblings: dict[int, list[Sibling]] = {}
        #: Behaviour being counted, by meta-utility prefix (``g1/c2``), and what was counted
        #: by source sha256 (the parent's profile at the next decision).
        self._counting: dict[str, Behaviour] = {}
        self._behaviours: dict[str, Behaviour] = {}

    # ------------------------------------------------------------------ behaviour

    @contextlib.contextmanager
    def counting(self, prefix: str, profile: Behaviour) -> Iterator[Behaviour]:
        """Count the LM events of the meta-utility tests under ``prefix`` into ``profile``."""
        self._counting[prefix] = profile
        try:
            yield profile
        finally:
            self._counting.pop(prefix, None)

    def count(self, event: LMEvent) -> None:
        """Add an LM event of a meta-utility test (``g1/c2/t0``) to its improver's profile."""
        prefix, sep, test = event.label.rpartition("/t")
        if not sep or not test.isdigit() or prefix not in self._counting:
            return
        profile = self._counting[prefix]
        if event.kind == "request" and event.request is not None:
            profile.lm_request(event.request.system, event.request.user, event.request.n)
        elif event.kind == "response" and event.result is not None:
            r = event.result
            profile.lm_response(r.prompt_tokens, r.completion_tokens, r.cost)
        elif event.kind == "error":
            profile.lm_errors += 1
        elif event.kind == "budget_exceeded":
            profile.budget_refusals += 1

    def behaviour(self, source: str) -> Behaviour | None:
        return self._behaviours.get(source_hash(source))

    # ------------------------------------------------------------------ scores

    def scored(
        self,
        improver: str,
        result: MetaResult,
        profile: Behaviour,
        generation: int,
        index: int | None,
    ) -> None:
        """Record ``improver``'s meta-utility ``result`` and its behaviour ``profile``."""
        for test in result.tests:
            profile.test_done(
                utility_calls=test.utility_calls,
                seconds=test.seconds,
                cpu_seconds=test.cpu_seconds,
                flags=[str(f) for f in test.flags],
            )
        result.behaviour = profile
        self._behaviours[source_hash(improver)] = profile
        where = (
            f"scored as candidate {index} of generation {generation}"
            if index is not None
            else f"scored as generation {generation}'s improver"
        )
        self._scores[source_hash(improver)] = (scores_of(result), where)

    def sibling(self, generation: int, sibling: Sibling) -> None:
        """A candidate of ``generation`` was decided (and scored, unless rejected)."""
        self._siblings.setdefault(generation, []).append(sibling)

    def scores(self, source: str) -> tuple[Scores | None, str]:
        """What this session knows of ``source``'s meta-utility, and where it was measured."""
        known = self._scores.get(source_hash(source))
        if known is not None:
            return known
        lookup = getattr(self.recorder, "scores_of", None)  # a resumed run: the store's record
        if lookup is not None:
            stored: tuple[Scores, str] | None = lookup(source_hash(source))
            if stored is not None:
                self._scores[source_hash(source)] = stored
                return stored
        return None, ""

    def evidence(
        self, purpose: Purpose, generation: int, source: str, parent_source: str
    ) -> Evidence:
        """The scores shown with a request."""
        parent, _ = self.scores(parent_source)
        if purpose is Purpose.CANDIDATE:
            return Evidence(
                purpose=purpose.value,
                parent=parent,
                siblings=tuple(self._siblings.get(generation, [])),
            )
        subject, where = self.scores(source)
        behaviour = self.behaviour(source)
        before = self.behaviour(parent_source)
        if subject is None:
            where = "not one of the candidates scored: it runs only if you adopt it"
        if source == parent_source:
            where = "identical to its parent"
        return Evidence(
            purpose=purpose.value,
            subject=subject,
            subject_note=where,
            parent=parent,
            behaviour=behaviour,
            parent_behaviour=before,
            alarms=tuple(alarms(behaviour, before)) if behaviour is not None else (),
        )


def allowances(c: RunConfig, budget: RunBudget) -> dict[str, Any]:
    """What an approved improver will be allowed to do (shown at the approval)."""
    return {
        "meta-utility tests": c.meta_utility_tests,
        "language-model calls per run": c.lm_budget,
        "responses per call": c.max_responses_per_call,
        "utility calls per run": c.utility_budget,
        "CPU seconds per run": c.improver_cpu_seconds,
        "memory (MiB)": c.improver_memory_mb,
        "network": "none",
        "files": "a private scratch directory only",
        **spending(c, budget),
    }


def spending(c: RunConfig, b: RunBudget) -> dict[str, str]:
    """The most an approved improver's meta-utility tests can spend (every test using
    every call and sample it is allowed), beside what the run's caps have left."""
    calls = c.meta_utility_tests * c.lm_budget
    out = {
        "at most, if approved": (
            f"{calls} LM calls, {calls * c.max_responses_per_call} samples, "
            f"{c.meta_utility_tests * c.utility_budget} utility calls"
        )
    }
    left = []
    if b.max_calls is not None:
        left.append(f"{max(0, b.max_calls - b.calls_used)} calls")
    if b.max_tokens is not None:
        left.append(f"{max(0, b.max_tokens - b.prompt_tokens - b.completion_tokens)} tokens")
    if b.max_cost is not None:
        left.append(f"${max(0.0, b.max_cost - b.cost):.4f}")
    out["run caps left"] = ", ".join(left) if left else "no run-wide cap set"
    return out
