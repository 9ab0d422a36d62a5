"""The meta-utility: how good an improver is (the paper's û).

``û(I)`` runs the improver ``I`` on the task's seed solution ``meta_utility_tests``
times, each run with fresh budgets, scores what each run returns with the task's
utility ``u`` (on the validation split, and on the held-out test split for the
record), and averages. Utility scores are cached per (solution, split): evaluation
is deterministic. The STOP loop (:mod:`stop_tui.engine.loop`) calls it for the seed
improver, every candidate and every returned improver; it publishes
``EvaluationProgress``, ``UtilityEvaluated`` and ``MetaUtilityEvaluated`` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from stop_tui.engine.audit import Flag
from stop_tui.engine.behaviour import Behaviour
from stop_tui.engine.config import RunConfig
from stop_tui.engine.events import (
    EvaluationProgress,
    EventBus,
    MetaUtilityEvaluated,
    UtilityEvaluated,
)
from stop_tui.engine.executor import Executor
from stop_tui.engine.recorder import TestResult
from stop_tui.engine.runner import ImproverCall, RunAborted
from stop_tui.lm.budget import LanguageModel
from stop_tui.sandbox.limits import Limits
from stop_tui.store.records import sha256_hex
from stop_tui.tasks.evaluate import EvalResult, rng_seed_for
from stop_tui.tasks.registry import Task


def source_hash(source: str) -> str:
    """A source's identity: its full sha256 (approval dedup, the evaluation cache, resume)."""
    return sha256_hex(source)


def mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


@dataclass
class MetaResult:
    meta_utility: float
    test_meta_utility: float
    tests: list[TestResult]
    flags: list[Flag] = field(default_factory=list)
    lm_calls: int = 0
    utility_calls: int = 0
    seconds: float = 0.0
    behaviour: Behaviour | None = None  # filled by the run that asked (it sees the LM events)


class Host(Protocol):
    """What the meta-utility needs from the run it serves (read at each call: a test
    may swap the run's sandbox or executor)."""

    config: RunConfig
    task: Task
    bus: EventBus

    @property
    def executor(self) -> Executor: ...

    @property
    def run_id(self) -> str: ...

    @property
    def aborted(self) -> BaseException | None: ...

    async def checkpoint(self) -> None: ...

    def abort(self, exc: BaseException) -> None: ...

    def language_model(self, context: str, generation: int, index: int | None) -> LanguageModel: ...

    def improver_limits(self, wall: float) -> Limits: ...


class MetaUtility:
    """The meta-utility and the cached utility of one run."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._serial = asyncio.Lock() if host.config.serial else None
        self._cache: dict[tuple[str, str], EvalResult] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def utility(
        self, source: str, split: str, context: str, generation: int, index: int | None
    ) -> EvalResult:
        """Score a solution on the task (cached: evaluation is deterministic)."""
        host = self.host
        key = (source_hash(source), split)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._cache.get(key)
            if cached is None:
                await host.checkpoint()
                async with self._serial or contextlib.nullcontext():
                    cached = await host.executor.evaluate(
                        host.task, source, split, salt=host.config.seed
                    )
                self._cache[key] = cached
        if split == "val":
            host.bus.publish(
                UtilityEvaluated(
                    run_id=host.run_id,
                    context=context,
                    generation=generation,
                    index=index,
                    task=host.task.name,
                    split=split,
                    score=cached.score,
                    flags=tuple(cached.flags),
                )
            )
        return cached

    async def downstream_run(
        self, improver: str, context: str, generation: int, index: int | None
    ) -> TestResult:
        """One meta-utility test: run ``improver`` on the task's seed solution with
        fresh budgets, then score what it returns on both splits."""
        host = self.host
        await host.checkpoint()

        async def utility(solution: Any, use_sandbox: bool) -> float:
            if not isinstance(solution, str):
                return 0.0
            return (await self.utility(solution, "val", context, generation, index)).score

        call = ImproverCall(
            source=improver,
            initial_solution=host.task.seed_solution,
            utility_text=host.task.public_utility,
            utility_budget=host.config.utility_budget,
            utility=utility,
            language_model=host.language_model(context, generation, index),
            limits=host.improver_limits(wall=900.0),
            rng_seed=rng_seed_for(improver, context, host.config.seed),
            on_abort=host.abort,
        )
        outcome = await host.executor.run_improver(call)
        if host.aborted is not None:
            raise RunAborted(str(host.aborted))
        solution = outcome.result
        flags = list(outcome.flags)
        val = test = 0.0
        if solution is not None:
            scored = await asyncio.gather(
                self.utility(solution, "val", context, generation, index),
                self.utility(solution, "test", context, generation, index),
            )
            val, test = scored[0].score, scored[1].score
            if any("malformed" in s.flags for s in scored):
                flags.append(Flag("reward", "malformed", "its solution returned malformed outputs"))
        return TestResult(
            val=val,
            test=test,
            solution=solution,
            error=outcome.error if solution is None else None,
            flags=flags,
            lm_calls=outcome.lm_calls,
            utility_calls=outcome.utility_calls,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
            seconds=outcome.seconds,
            cpu_seconds=outcome.cpu_seconds,
        )

    async def __call__(
        self, improver: str, generation: int, index: int | None, prefix: str
    ) -> MetaResult:
        """û(improver): the mean over ``meta_utility_tests`` downstream runs (run
        concurrently unless serial), labelled ``{prefix}/t{k}``."""
        host = self.host
        started = time.perf_counter()
        n = host.config.meta_utility_tests
        done = 0

        async def one(k: int) -> TestResult:
            nonlocal done
            result = await self.downstream_run(improver, f"{prefix}/t{k}", generation, index)
            done += 1
            host.bus.publish(
                EvaluationProgress(
                    run_id=host.run_id, generation=generation, index=index, done=done, total=n
                )
            )
            return result

        if self._serial is not None:
            tests = [await one(k) for k in range(n)]
        else:
            tests = list(await asyncio.gather(*(one(k) for k in range(n))))
        flags: list[Flag] = []
        for test in tests:
            for flag in test.flags:
                if flag not in flags:
                    flags.append(flag)
        result = MetaResult(
            meta_utility=mean([t.val for t in tests]),
            test_meta_utility=mean([t.test for t in tests]),
            tests=tests,
            flags=flags,
            lm_calls=sum(t.lm_calls for t in tests),
            utility_calls=sum(t.utility_calls for t in tests),
            seconds=time.perf_counter() - started,
        )
        host.bus.publish(
            MetaUtilityEvaluated(
                run_id=host.run_id,
                generation=generation,
                index=index,
                meta_utility=result.meta_utility,
                per_test=tuple(t.val for t in tests),
                test_meta_utility=result.test_meta_utility,
                test_per_test=tuple(t.test for t in tests),
            )
        )
        return result
