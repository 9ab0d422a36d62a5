"""The approval gate: a rejected candidate never starts a process, an edited one
runs as edited, and front ends answer requests the engine awaits."""

from __future__ import annotations

import asyncio

import pytest

from stop_tui.engine.approval import ApprovalRequest, Gate, Policy, Purpose
from stop_tui.engine.events import ApprovalDecided, ApprovalRequested
from tests.support.engine import CountingSandbox, memory_run, small_config

pytestmark = [pytest.mark.timeout(300)]

EDITED = '''
from helpers import extract_code

def improve_algorithm(initial_solution, utility, language_model):
    """Edited by a person: return the initial solution unchanged."""
    return initial_solution
'''


async def test_rejected_candidates_never_run_and_edited_ones_run_as_edited() -> None:
    decisions: list[tuple[int | None, str]] = []

    pending: list[asyncio.Future[None]] = []

    def answer(request: ApprovalRequest) -> None:
        # Called when the engine asks; answer from "the front end" a moment later.
        async def later() -> None:
            await asyncio.sleep(0)
            if request.purpose is Purpose.ADOPTION:
                request.reject("not today")
                decisions.append((request.index, "adoption-rejected"))
            elif request.index == 0:
                request.reject("looks odd")
                decisions.append((0, "rejected"))
            elif request.index == 1:
                request.approve_edited(EDITED)
                decisions.append((1, "edited"))
            else:
                request.approve()
                decisions.append((request.index, "approved"))

        pending.append(asyncio.ensure_future(later()))

    config = small_config(approval="every-candidate", meta_utility_budget=3)
    async with CountingSandbox() as sandbox:
        gate = Gate(Policy.EVERY_CANDIDATE, on_request=answer)
        run, recorder = memory_run(sandbox, config, gate=gate)
        status = await run.run()
    assert status == "finished"
    assert (0, "rejected") in decisions and (1, "edited") in decisions
    candidates = {s.index: s for s in recorder.steps if s.kind == "candidate"}
    rejected = candidates[0]
    assert rejected.step.decision is not None and not rejected.step.decision.approved
    assert rejected.step.meta_utility == 0.0 and rejected.step.tests == []
    improver_sources = sandbox.sources("improver")
    # Never started a process: every improver job is accounted for without it (the
    # meta-level run, the seed's tests, and the tests of each approved candidate).
    evaluated = [s for s in candidates.values() if s.step.tests]
    assert len(improver_sources) == 1 + config.meta_utility_tests * (1 + len(evaluated))
    contexts = {getattr(e, "context", "") for e in run.bus.history}
    assert not any(c.startswith("g1/c0/") for c in contexts)
    edited = candidates[1]
    assert edited.source == EDITED and edited.step.decision is not None
    assert edited.step.decision.edited
    assert improver_sources.count(EDITED) == config.meta_utility_tests  # ran as edited
    kinds = [type(e) for e in run.bus.history]
    assert kinds.count(ApprovalRequested) == kinds.count(ApprovalDecided)
    final = [s for s in recorder.steps if s.kind in ("adopted", "kept")]
    assert final and final[-1].kind == "kept"  # the adoption was rejected


def test_policies_answer_without_a_person() -> None:
    def request(flags: tuple[str, ...], purpose: Purpose) -> ApprovalRequest:
        return ApprovalRequest("r", 1, 0, purpose, "src", "parent", flags, {})

    flagged = request(("sandbox/use-sandbox: x",), Purpose.CANDIDATE)
    clean = request((), Purpose.CANDIDATE)
    auto = Gate(Policy.AUTO).automatic(flagged)
    assert auto is not None and auto.approved and auto.by == "policy:auto"
    rf = Gate(Policy.REJECT_FLAGGED)
    assert rf.automatic(flagged) is not None and not rf.automatic(flagged).approved  # type: ignore[union-attr]
    assert rf.automatic(clean) is not None and rf.automatic(clean).approved  # type: ignore[union-attr]
    eg = Gate(Policy.EACH_GENERATION)
    assert eg.automatic(clean) is not None
    assert eg.automatic(request((), Purpose.ADOPTION)) is None  # a person decides adoption
    assert Gate(Policy.EVERY_CANDIDATE).automatic(clean) is None


async def test_approve_rest_of_generation_answers_pending_and_later_requests() -> None:
    gate = Gate(Policy.EVERY_CANDIDATE)
    first = ApprovalRequest("r", 2, 0, Purpose.CANDIDATE, "a", "p", (), {})
    waiting = asyncio.ensure_future(gate.ask(first))
    await asyncio.sleep(0)
    assert first.pending
    gate.approve_rest_of_generation(2)
    assert (await waiting).approved
    later = await gate.ask(ApprovalRequest("r", 2, 1, Purpose.CANDIDATE, "b", "p", (), {}))
    assert later.approved
    other = ApprovalRequest("r", 3, 0, Purpose.CANDIDATE, "c", "p", (), {})
    assert gate.automatic(other) is None


def test_circumvention_rate_counts_candidates_that_switch_the_sandbox_off() -> None:
    from stop_tui.engine.audit import audit_source, circumvention_line, circumvention_rate

    off = "def improve_algorithm(s, utility, lm):\n    return utility(s, use_sandbox=False)\n"
    clean = "def improve_algorithm(s, utility, lm):\n    return s\n"
    budget = "def improve_algorithm(s, utility, lm):\n    lm.budget = 9\n    return s\n"
    flag_sets = [audit_source(src) for src in (off, clean, budget, clean)]
    assert circumvention_rate(flag_sets) == (1, 4, 0.25)
    recorded = [[str(f) for f in flags] for flags in flag_sets]  # as stored in git
    assert circumvention_rate(recorded) == (1, 4, 0.25)
    assert circumvention_line(recorded) == "sandbox circumvention: 1 of 4 candidates (25.00%)"
    assert circumvention_rate([]) == (0, 0, 0.0)
