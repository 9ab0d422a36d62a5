"""Helpers for the engine tests: small, fast runs with real parts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from stop_tui.engine.approval import Gate, Policy
from stop_tui.engine.config import RunConfig
from stop_tui.engine.events import EventBus
from stop_tui.engine.loop import StopRun
from stop_tui.engine.recorder import MemoryRecorder, StoreRecorder, work_transcript_path
from stop_tui.engine.session import seed_improver
from stop_tui.lm.demo import DemoBackend
from stop_tui.lm.transcript import RecordingBackend
from stop_tui.lm.types import Backend
from stop_tui.sandbox.api import Sandbox
from stop_tui.sandbox.child import Child
from stop_tui.sandbox.limits import Limits
from stop_tui.store.store import RunStore

SMALL = {
    "generations": 1,
    "meta_utility_tests": 2,
    "meta_utility_budget": 3,
    "utility_budget": 3,
    "lm_budget": 2,
    "max_responses_per_call": 3,
}


class CountingSandbox(Sandbox):
    """A real sandbox that remembers every job it started (to prove what never ran)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.spawned: list[tuple[str, dict[str, Any]]] = []

    async def spawn(self, job: str, payload: dict[str, Any], limits: Limits | None = None) -> Child:
        self.spawned.append((job, payload))
        return await super().spawn(job, payload, limits)

    def sources(self, job: str = "improver") -> list[str]:
        return [str(p.get("source")) for j, p in self.spawned if j == job]


def small_config(**changes: Any) -> RunConfig:
    values: dict[str, Any] = {**SMALL, "model": "demo", "demo_failure_rate": 0.0}
    values.update(changes)
    return RunConfig(**values)


def memory_run(
    sandbox: Sandbox,
    config: RunConfig,
    *,
    backend: Backend | None = None,
    gate: Gate | None = None,
    seed: str | None = None,
    bus: EventBus | None = None,
) -> tuple[StopRun, MemoryRecorder]:
    recorder = MemoryRecorder(seed or seed_improver())
    run = StopRun(
        config,
        sandbox=sandbox,
        backend=backend or DemoBackend(seed=config.seed, failure_rate=config.demo_failure_rate),
        recorder=recorder,
        bus=bus,
        gate=gate or Gate(Policy(config.approval)),
    )
    return run, recorder


def store_run(
    sandbox: Sandbox,
    config: RunConfig,
    workspace: Path,
    *,
    gate: Gate | None = None,
    make_inner: Callable[[], Backend] | None = None,
    bus: EventBus | None = None,
) -> tuple[StopRun, RunStore, RecordingBackend]:
    store = RunStore(workspace, create=True)
    inner = (
        make_inner()
        if make_inner
        else DemoBackend(seed=config.seed, failure_rate=config.demo_failure_rate)
    )
    backend = RecordingBackend(inner, work_transcript_path(store, config.run_id))
    run = StopRun(
        config,
        sandbox=sandbox,
        backend=backend,
        recorder=StoreRecorder(store, seed_improver()),
        gate=gate or Gate(Policy(config.approval)),
        bus=bus,
    )
    return run, store, backend
