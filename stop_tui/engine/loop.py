"""The STOP loop: an improver improves itself, generation after generation.

Generation 0 scores the seed improver with the meta-utility (the paper's
T = 0). Generation t runs the current improver ``I`` on itself:
``I_t = I(meta_utility, I, LM)``. Every call ``I`` makes to its utility is a
*candidate*: it is audited, put to the approval gate, scored by the
meta-utility (``meta_utility_tests`` downstream runs of the candidate on the
task's seed solution, each with fresh budgets, run concurrently) and committed.
What ``I`` returns is audited, approved for adoption, and re-scored by the
parent with a fresh meta-utility evaluation; it becomes the next improver when
it runs and scores above zero, otherwise the run keeps the previous improver
and records why (as the reference implementation does).

Everything a front end shows is published on the :class:`EventBus`. Beside the loop:
the meta-utility (:mod:`~stop_tui.engine.meta_utility`), what the run measured and shows
a reviewer (:mod:`~stop_tui.engine.ledger`), what a step records
(:mod:`~stop_tui.engine.steps`), the language model's events on the bus
(:mod:`~stop_tui.engine.lm_events`) and the stop on systematic rejections
(:mod:`~stop_tui.engine.rejections`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from stop_tui.engine.approval import ApprovalRequest, Decision, Gate, Purpose
from stop_tui.engine.audit import Flag, audit_source
from stop_tui.engine.behaviour import Behaviour, alarms
from stop_tui.engine.config import RunConfig
from stop_tui.engine.events import (
    ApprovalDecided,
    ApprovalRequested,
    CandidateProposed,
    EngineError,
    EventBus,
    GenerationFinished,
    GenerationStarted,
    RunFinished,
    RunPaused,
    RunStarted,
    SafetyFlagged,
    StepCommitted,
)
from stop_tui.engine.evidence import Evidence, Sibling
from stop_tui.engine.executor import Executor, LocalExecutor
from stop_tui.engine.ledger import Ledger, allowances
from stop_tui.engine.lm_events import bus_event, progress_event
from stop_tui.engine.meta_text import meta_utility_text
from stop_tui.engine.meta_utility import MetaResult, MetaUtility, source_hash
from stop_tui.engine.monitor import consult
from stop_tui.engine.recorder import Recorder, StepResult
from stop_tui.engine.rejections import Rejections
from stop_tui.engine.runner import ImproverCall, RunAborted
from stop_tui.engine.steps import behaviour_flag, result_to_step, summarize
from stop_tui.lm.budget import LanguageModel, LMEvent, RunBudget
from stop_tui.lm.types import Backend, StreamProgress
from stop_tui.sandbox.api import Sandbox
from stop_tui.sandbox.limits import Limits
from stop_tui.store.records import sha256_hex
from stop_tui.tasks.evaluate import rng_seed_for
from stop_tui.tasks.registry import Task, get_task


class StopRun:
    """One run of STOP. Create, then ``await run()``; ``pause``/``resume``/``cancel``
    may be called from the front end while it runs (on the same event loop)."""

    def __init__(
        self,
        config: RunConfig,
        *,
        sandbox: Sandbox,
        backend: Backend,
        executor: Executor | None = None,
        recorder: Recorder,
        bus: EventBus | None = None,
        gate: Gate | None = None,
        task: Task | None = None,
        decisions: Callable[[int, int | None, str, str], Decision | None] | None = None,
    ) -> None:
        self.config = config
        self.sandbox = sandbox
        self.cluster: Executor | None = executor  # None: this machine's sandbox
        self.backend = backend
        self.recorder = recorder
        self.bus = bus or EventBus()
        self.gate = gate or Gate(config.policy)
        self.gate.listeners.insert(0, self._publish_request)
        self.task = task or get_task(config.task)
        self.recorded_decisions = decisions
        self.run_budget = RunBudget.from_settings(config)
        if hasattr(recorder, "budget_snapshot"):
            recorder.budget_snapshot = self.run_budget.snapshot
        self._running = asyncio.Event()
        self._running.set()
        self._abort: BaseException | None = None
        self._approved_sources: dict[tuple[int, str], Decision] = {}
        self.lm_calls_in_flight = 0
        self._lm_contexts: dict[str, tuple[int, int | None]] = {}  # label -> generation, index
        self._rejections = Rejections()
        self.scorer = MetaUtility(self)
        self.ledger = Ledger(recorder)  # scores, behaviour, siblings: the evidence shown
        self.meta_text = meta_utility_text(
            task=self.task.name,
            task_utility=self.task.public_utility,
            meta_utility_budget=config.meta_utility_budget,
            meta_utility_tests=config.meta_utility_tests,
            lm_budget=config.lm_budget,
            max_responses_per_call=config.max_responses_per_call,
            utility_budget=config.utility_budget,
        )

    # ------------------------------------------------------------------ control

    @property
    def run_id(self) -> str:
        return self.config.run_id

    @property
    def executor(self) -> Executor:
        """Where sandboxed work runs: the cluster's executor if any, else ``self.sandbox``."""
        return self.cluster if self.cluster is not None else LocalExecutor(self.sandbox)

    @property
    def aborted(self) -> BaseException | None:
        return self._abort

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        if self._running.is_set():
            self._running.clear()
            self.bus.publish(RunPaused(run_id=self.run_id, paused=True))

    def resume(self) -> None:
        if not self._running.is_set():
            self._running.set()
            self.bus.publish(RunPaused(run_id=self.run_id, paused=False))

    async def checkpoint(self) -> None:
        """Where a paused run waits, and where an aborted run stops."""
        if self._abort is not None:
            raise RunAborted(str(self._abort))
        await self._running.wait()

    def abort(self, exc: BaseException) -> None:
        if self._abort is None:
            self._abort = exc
            self.bus.publish(EngineError(run_id=self.run_id, message=str(exc), fatal=True))

    # ------------------------------------------------------------------ events

    def _publish_request(self, request: ApprovalRequest) -> None:
        self.bus.publish(
            ApprovalRequested(
                run_id=self.run_id,
                request_id=request.request_id,
                generation=request.generation,
                index=request.index,
                purpose=request.purpose.value,
            )
        )

    def _lm_event(self, event: LMEvent, generation: int, index: int | None) -> None:
        self.ledger.count(event)
        if event.kind == "request" and event.request is not None:
            self.lm_calls_in_flight += 1
        elif event.kind in ("response", "error") and event.request is not None:
            self.lm_calls_in_flight = max(0, self.lm_calls_in_flight - 1)
            rejection = self._rejections.observe(event)
            if rejection is not None:
                self.abort(rejection)
        published = bus_event(event, self.run_id, generation, index)
        if published is not None:
            self.bus.publish(published)

    def stream_progress(self, progress: StreamProgress) -> None:
        """A streamed request's progress (the backend's ``on_progress``), published as an
        ephemeral :class:`LMProgress` naming the generation and candidate it works for."""
        generation, index = self._lm_contexts.get(progress.context, (None, None))
        self.bus.publish(progress_event(progress, self.run_id, generation, index))

    # ------------------------------------------------------------------ pieces

    def language_model(self, context: str, generation: int, index: int | None) -> LanguageModel:
        """A fresh language model (its own call budget) for one improver run, whose
        events name the generation and candidate the run works for."""
        self._lm_contexts[context] = (generation, index)
        return LanguageModel(
            self.backend,
            model=self.config.model,
            budget=self.config.lm_budget,
            max_responses_per_call=self.config.max_responses_per_call,
            run_budget=self.run_budget,
            on_event=lambda event: self._lm_event(event, generation, index),
            label=context,
            max_prompt_chars=self.config.max_prompt_chars,
        )

    def improver_limits(self, wall: float) -> Limits:
        return Limits(
            wall_time=wall,
            cpu_time=self.config.improver_cpu_seconds,
            memory_mb=self.config.improver_memory_mb,
        )

    async def meta_utility(
        self, improver: str, generation: int, index: int | None, prefix: str
    ) -> MetaResult:
        """The meta-utility of ``improver`` (:mod:`stop_tui.engine.meta_utility`)."""
        c = self.config
        profile = Behaviour(lm_budget=c.lm_budget, utility_budget=c.utility_budget)
        with self.ledger.counting(prefix, profile):
            result = await self.scorer(improver, generation, index, prefix)
        self.ledger.scored(improver, result, profile, generation, index)
        return result

    async def decide(
        self,
        *,
        generation: int,
        index: int | None,
        purpose: Purpose,
        source: str,
        parent_source: str,
        flags: list[Flag],
        evidence: Evidence | None = None,
    ) -> Decision:
        """Ask the gate (or the recorded decision, when replaying). Whatever the audit
        flagged is published first, for candidates and adoptions alike."""
        await self.checkpoint()
        if flags:
            self.bus.publish(
                SafetyFlagged(
                    run_id=self.run_id,
                    generation=generation,
                    index=index,
                    flags=tuple(str(f) for f in flags),
                )
            )
        decision: Decision | None = None
        digest = source_hash(source)
        if self.recorded_decisions is not None:
            # Matched by the sha256 of the source, never by position alone; a replay whose
            # recorded decision names another source aborts the run (checkpoint below).
            decision = self.recorded_decisions(generation, index, purpose.value, digest)
            await self.checkpoint()
        if decision is None and purpose is Purpose.CANDIDATE:
            decision = self._approved_sources.get((generation, digest))
        if decision is None:
            request = ApprovalRequest(
                run_id=self.run_id,
                generation=generation,
                index=index,
                purpose=purpose,
                source=source,
                parent_source=parent_source,
                flags=tuple(str(f) for f in flags),
                allowances=allowances(self.config, self.run_budget),
                evidence=evidence
                or self.ledger.evidence(purpose, generation, source, parent_source),
            )
            decision = await consult(self, request)  # the monitor's note, then the gate
            request_id = request.request_id
        else:
            request_id = "recorded"
        # Bound to the full sha256 of the source decided and of the source it lets run.
        approved = ""
        if decision.approved:
            edited = decision.edited_source
            approved = sha256_hex(edited) if edited is not None else digest
        decision = dataclasses.replace(decision, source_sha256=digest, approved_sha256=approved)
        self.bus.publish(
            ApprovalDecided(
                run_id=self.run_id,
                request_id=request_id,
                generation=generation,
                index=index,
                approved=decision.approved,
                by=decision.by,
                reason=decision.reason,
                edited=decision.edited,
            )
        )
        if decision.approved and purpose is Purpose.CANDIDATE and not decision.edited:
            self._approved_sources[(generation, digest)] = decision
        return decision

    # ------------------------------------------------------------------ generations

    async def score_seed(self, improver: str) -> MetaResult:
        result = await self.meta_utility(improver, 0, None, "g0/final")
        step = result_to_step(result, improver, None)
        self._committed(0, None, self.recorder.seed_scored(improver, step), step)
        return result

    def _committed(
        self, generation: int, index: int | None, commit: str | None, step: StepResult
    ) -> None:
        self.bus.publish(
            StepCommitted(
                run_id=self.run_id,
                generation=generation,
                index=index,
                commit=commit,
                flags=tuple(str(f) for f in step.flags),
            )
        )

    async def generation(
        self, generation: int, improver: str
    ) -> tuple[str, bool, MetaResult | None]:
        """Run one generation; return (next improver, adopted?, its meta-utility result)."""
        self.bus.publish(GenerationStarted(run_id=self.run_id, generation=generation))
        meta_uses = 0
        budget = self.config.meta_utility_budget
        resumed = self.recorder.committed_candidates(generation)
        taken = set(resumed)  # candidate numbers with a commit

        async def meta_utility_call(solution: Any, use_sandbox: bool) -> float:
            nonlocal meta_uses
            index = meta_uses
            meta_uses += 1
            if not isinstance(solution, str):
                return 0.0
            prior = resumed.get(index)
            if prior is not None and prior.source_hash == source_hash(solution):
                self.ledger.sibling(generation, Sibling(index, prior.meta_utility))
                return prior.meta_utility  # committed before a crash: nothing runs again
            if index in taken:
                # The resumed improver proposed something else here than before the crash
                # (it may depend on time or ordering): a new number, or the commit would
                # fail on the existing one and the evaluated candidate would be lost.
                index = max(taken) + 1
            taken.add(index)
            return await self.candidate(generation, index, solution, improver)

        lm = self.language_model(f"g{generation}/meta", generation, None)
        call = ImproverCall(
            source=improver,
            initial_solution=improver,
            utility_text=self.meta_text,
            utility_budget=budget,
            utility=meta_utility_call,
            language_model=lm,
            limits=self.improver_limits(wall=7 * 24 * 3600.0),
            rng_seed=rng_seed_for(improver, f"g{generation}/meta", self.config.seed),
            on_abort=self.abort,
        )
        outcome = await self.executor.run_improver(call)
        if self._abort is not None:
            raise RunAborted(str(self._abort))
        returned = outcome.result
        proposed = returned
        reason = ""
        adopted = False
        result: MetaResult | None = None
        decision: Decision | None = None
        flags = list(outcome.flags)
        if returned is None:
            reason = f"the improver failed: {outcome.error}"
        else:
            static = audit_source(returned)
            evidence = self.ledger.evidence(Purpose.ADOPTION, generation, returned, improver)
            flags_all = static + flags + [behaviour_flag(a) for a in evidence.alarms]
            decision = await self.decide(
                generation=generation,
                index=None,
                purpose=Purpose.ADOPTION,
                source=returned,
                parent_source=improver,
                flags=flags_all,
                evidence=evidence,
            )
            if not decision.approved:
                reason = f"adoption rejected by {decision.by}" + (
                    f": {decision.reason}" if decision.reason else ""
                )
            else:
                if decision.edited_source is not None:
                    returned = decision.edited_source
                    static = audit_source(returned)
                result = await self.meta_utility(returned, generation, None, f"g{generation}/final")
                flags = static + flags + result.flags
                if result.meta_utility > 0:
                    adopted = True
                else:
                    reason = "the returned improver scored 0 (kept the previous improver)"
        step = result_to_step(result, returned or improver, decision)
        next_improver = returned if adopted and returned is not None else improver
        if proposed is not None and proposed != next_improver:
            step.extra["proposed_source"] = proposed  # what the decision was about
        if decision is not None and decision.edited_source is not None and not adopted:
            step.extra["edited_source"] = decision.edited_source  # approved, then not kept
        step.flags = flags
        step.summary = summarize(returned) if returned and adopted else ""
        step.extra["improver_stdout"] = outcome.stdout[-4000:]
        step.extra["improver_stderr"] = outcome.stderr[-4000:]
        step.extra["meta_utility_calls"] = meta_uses
        step.extra["reason"] = reason
        commit = self.recorder.generation_done(generation, next_improver, step, adopted)
        self.bus.publish(
            GenerationFinished(
                run_id=self.run_id,
                generation=generation,
                adopted=adopted,
                meta_utility=result.meta_utility if result else None,
                test_meta_utility=result.test_meta_utility if result else None,
                reason=reason,
                commit=commit,
                flags=tuple(str(f) for f in flags),
            )
        )
        return next_improver, adopted, result

    async def candidate(self, generation: int, index: int, source: str, parent: str) -> float:
        """A candidate improver proposed in ``generation``: audit, approve, score, commit."""
        flags = audit_source(source)
        self.bus.publish(
            CandidateProposed(
                run_id=self.run_id,
                generation=generation,
                index=index,
                summary=summarize(source),
                flags=tuple(str(f) for f in flags),
            )
        )
        decision = await self.decide(
            generation=generation,
            index=index,
            purpose=Purpose.CANDIDATE,
            source=source,
            parent_source=parent,
            flags=flags,
        )
        if not decision.approved:
            step = StepResult(
                meta_utility=0.0,
                test_meta_utility=None,
                tests=[],
                flags=flags,
                decision=decision,
                summary=summarize(source),
            )
            commit = self.recorder.candidate_done(generation, index, source, source, step)
            self._committed(generation, index, commit, step)
            self.ledger.sibling(generation, Sibling(index, None, "rejected"))
            return 0.0
        run_source = decision.edited_source if decision.edited_source is not None else source
        result = await self.meta_utility(run_source, generation, index, f"g{generation}/c{index}")
        step = result_to_step(result, run_source, decision)
        before = self.ledger.behaviour(parent)
        found = alarms(result.behaviour, before) if result.behaviour is not None else []
        step.flags = audit_source(run_source) + result.flags + [behaviour_flag(a) for a in found]
        commit = self.recorder.candidate_done(generation, index, source, run_source, step)
        self._committed(generation, index, commit, step)
        self.ledger.sibling(generation, Sibling(index, result.meta_utility))
        return result.meta_utility

    # ------------------------------------------------------------------ the run

    async def run(self) -> str:
        """Run (or continue) the loop; returns the final status."""
        config = self.config
        start = self.recorder.start(config)
        improver = start.improver
        # A resumed run's caps count what was spent before the crash (else every crash
        # would reset --max-calls / --max-tokens-total / --max-cost).
        start.spent.charge(self.run_budget)
        self.bus.publish(
            RunStarted(
                run_id=self.run_id,
                task=config.task,
                model=config.model,
                generations=config.generations,
                resumed_from_generation=start.completed_generation,
            )
        )
        status = "finished"
        message = ""
        try:
            await self.executor.start(self.task)
            if not start.seed_scored:
                await self.score_seed(improver)
            for generation in range(start.completed_generation + 1, config.generations + 1):
                await self.checkpoint()
                improver, _, _ = await self.generation(generation, improver)
        except RunAborted as exc:
            status, message = "failed", str(exc)
        except asyncio.CancelledError:
            status, message = "cancelled", "stopped by the user"
            self.recorder.finish(status, message)
            self.bus.publish(RunFinished(run_id=self.run_id, status=status, message=message))
            raise
        except Exception as exc:  # the engine must not take the front end down
            status, message = "failed", f"{type(exc).__name__}: {exc}"
            self.bus.publish(EngineError(run_id=self.run_id, message=message, fatal=True))
        best = self.recorder.finish(status, message)
        self.bus.publish(
            RunFinished(
                run_id=self.run_id,
                status=status,
                message=message,
                best_generation=best[0] if best else None,
                best_meta_utility=best[1] if best else None,
            )
        )
        return status
