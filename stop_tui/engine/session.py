"""Building a run from settings: the one place front ends go through.

``prepare_run`` turns validated :class:`~stop_tui.config.Settings` into a
:class:`StopRun` wired to the sandbox, the run's recording backend and the git
run store; ``prepare_resume`` does the same for a saved run. Both front ends
(the TUI and the headless CLI) call these, then consume ``run.bus``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stop_tui.config import Settings, make_run_backend
from stop_tui.engine.approval import Gate, Policy
from stop_tui.engine.config import RunConfig
from stop_tui.engine.events import EventBus, Notice
from stop_tui.engine.executor import Executor
from stop_tui.engine.loop import StopRun
from stop_tui.engine.recorder import StoreRecorder, work_transcript_path
from stop_tui.errors import UserError
from stop_tui.lm.types import Backend, ChatRequest, ChatResult, StreamProgress
from stop_tui.paths import improvers_dir
from stop_tui.sandbox.api import Sandbox
from stop_tui.store.store import RunStore
from stop_tui.tasks.registry import get_task

#: The run-wide caps a resume may change (settings and RunConfig share the names).
RESUME_CAPS = ("max_calls", "max_tokens_total", "max_cost")


def seed_improver() -> str:
    return (improvers_dir() / "seed.py").read_text(encoding="utf-8")


def run_config(
    settings: Settings, *, default_policy: Policy, run_id: str | None = None
) -> RunConfig:
    """A new run's configuration (the policy: the settings', else the front end's default)."""
    get_task(settings.task)  # a clear error for an unknown task, before anything starts
    return RunConfig.of_settings(
        settings, policy=settings.approval or default_policy, run_id=run_id
    )


def resume_policy(settings: Settings, saved: RunConfig) -> Policy:
    """The approval policy of a resumed run, for both front ends: ``--approve`` >
    ``STOP_TUI_APPROVAL`` > ``stop.toml`` (merged into ``settings.approval`` by
    :func:`~stop_tui.config.load_settings`) > the saved run's policy."""
    return settings.approval or saved.policy


def saved_run(settings: Settings, run_id: str) -> tuple[RunStore, RunConfig]:
    """The workspace and the saved configuration of run ``run_id`` (one line if missing)."""
    store = RunStore(settings.workspace)
    if not store.exists:
        raise UserError(
            f"no workspace at {settings.workspace}", hint="pass --workspace or start a run first"
        )
    store.require_run(run_id)
    return store, RunConfig.from_dict(dict(store.get_config(run_id).settings))


class SerialBackend:
    """Sends one request at a time (benchmarks compare it with the engine's concurrency)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self._lock = asyncio.Lock()

    async def complete(self, request: ChatRequest) -> ChatResult:
        async with self._lock:
            return await self.inner.complete(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Prepared:
    run: StopRun
    backend: Backend
    sandbox: Sandbox
    store: RunStore
    owns_sandbox: bool = True  # False: shared with other runs (a sweep), closed by its owner
    executor: Executor | None = None  # a cluster's; None: this machine's sandbox
    owns_executor: bool = False

    async def close(self) -> None:
        try:
            await self.backend.aclose()
        finally:
            try:
                if self.owns_sandbox:
                    await self.sandbox.close()
            finally:
                if self.owns_executor and self.executor is not None:
                    await self.executor.close()


def cluster_executor(settings: Settings, *, unsafe: bool = False) -> Executor | None:
    """The executor of ``settings.cluster``, connected and its nodes probed (blocking);
    None for this machine."""
    if not settings.cluster:
        return None
    from stop_tui.engine.ray_executor import RayExecutor

    executor = RayExecutor(settings.cluster, unsafe=unsafe)
    executor.connect()
    return executor


def open_store(settings: Settings) -> RunStore:
    return RunStore(settings.workspace, create=True)


class NoticeRelay:
    """Passes the backend's notices to the run's bus once the run exists (the backend
    is made first); notices before that are kept and published when it is attached.
    Its :meth:`progress` passes streaming progress (ephemeral: none is kept before)."""

    def __init__(self) -> None:
        self.run: StopRun | None = None
        self.pending: list[str] = []

    def __call__(self, message: str) -> None:
        if self.run is None:
            self.pending.append(message)
        else:
            self.run.bus.publish(Notice(run_id=self.run.run_id, message=message))

    def progress(self, progress: StreamProgress) -> None:
        if self.run is not None:
            self.run.stream_progress(progress)

    def attach(self, run: StopRun) -> StopRun:
        self.run = run
        for message in self.pending:
            self(message)
        self.pending.clear()
        return run


def _backend(
    settings: Settings,
    store: RunStore,
    run_id: str,
    *,
    resume: bool,
    serial: bool,
    relay: NoticeRelay | None = None,
) -> Backend:
    backend = make_run_backend(
        settings,
        work_transcript_path(store, run_id),
        resume=resume,
        on_notice=relay,
        on_progress=relay.progress if relay is not None else None,
    )
    return SerialBackend(backend) if serial else backend


def prepare_run(
    settings: Settings,
    *,
    default_policy: Policy,
    unsafe: bool = False,
    gate: Gate | None = None,
    bus: EventBus | None = None,
    serial: bool = False,
    command: str = "run",
    run_id: str | None = None,
    sandbox: Sandbox | None = None,
    recorder: Callable[..., StoreRecorder] = StoreRecorder,
    executor: Executor | None = None,
) -> Prepared:
    """A new run. ``sandbox``, ``executor``: share one (a sweep's cells do; the caller
    closes it; without one, ``settings.cluster`` picks the executor);
    ``recorder``: the StoreRecorder class or a factory with its signature."""
    config = run_config(settings, default_policy=default_policy, run_id=run_id).replace(
        serial=serial
    )
    store = open_store(settings)
    relay = NoticeRelay()
    backend = _backend(settings, store, config.run_id, resume=False, serial=serial, relay=relay)
    writer = recorder(store, seed_improver(), command=command)
    return _assemble(
        config, settings, store, backend, writer, relay, sandbox, executor, bus, gate, unsafe
    )


def _assemble(
    config: RunConfig,
    settings: Settings,
    store: RunStore,
    backend: Backend,
    writer: StoreRecorder,
    relay: NoticeRelay,
    sandbox: Sandbox | None,
    executor: Executor | None,
    bus: EventBus | None,
    gate: Gate | None,
    unsafe: bool,
) -> Prepared:
    """The run of a new or resumed run: its sandbox and executor (made here unless the
    caller shares its own), wired to the backend, recorder, bus and gate."""
    owns = sandbox is None
    sandbox = sandbox or Sandbox(unsafe=unsafe)
    owns_executor = executor is None
    executor = executor or cluster_executor(settings, unsafe=unsafe)
    run = relay.attach(
        StopRun(
            config,
            sandbox=sandbox,
            backend=backend,
            recorder=writer,
            bus=bus,
            gate=gate,
            executor=executor,
        )
    )
    return Prepared(
        run,
        backend,
        sandbox,
        store,
        owns_sandbox=owns,
        executor=executor,
        owns_executor=owns_executor,
    )


def prepare_resume(
    settings: Settings,
    run_id: str,
    *,
    unsafe: bool = False,
    gate: Gate | None = None,
    bus: EventBus | None = None,
    generations: int | None = None,
    sandbox: Sandbox | None = None,
    recorder: Callable[..., StoreRecorder] = StoreRecorder,
    caps: Mapping[str, Any] | None = None,
    executor: Executor | None = None,
) -> Prepared:
    """Continue a saved run from its last committed step. LM responses already paid
    for (in the run's work transcript) are served again instead of being re-bought.
    The approval policy: :func:`resume_policy` (``gate``, when given, answers with it).

    ``caps`` (settings names ``max_calls``, ``max_tokens_total``, ``max_cost``; None =
    no cap) replace the saved run's caps: a run its cap ended continues once raised.
    """
    store, config = saved_run(settings, run_id)
    config = config.replace(approval=resume_policy(settings, config))
    if generations is not None:
        config = config.replace(generations=generations)
    config = config.replace(**{key: value for key, value in (caps or {}).items()})
    state = store.get_state(run_id)
    if state is not None and state.status == "finished" and generations is None:
        tip_generation = max((s.generation for s in store.list_steps(run_id)), default=0)
        if tip_generation >= config.generations:
            raise UserError(
                f"run {run_id} already finished its {config.generations} generations",
                hint="pass --generations N to continue it further",
            )
    # The saved run's model and demo knobs win; the user's endpoint settings still apply.
    run_settings = settings.model_copy(
        update={
            "model": config.model,
            "seed": config.seed,
            "demo_failure_rate": config.demo_failure_rate,
            "demo_no_code_rate": config.demo_no_code_rate,
            "demo_latency": config.demo_latency,
        }
    )
    relay = NoticeRelay()
    backend = _backend(run_settings, store, run_id, resume=True, serial=config.serial, relay=relay)
    writer = recorder(store, seed_improver(), resume=True, command="resume")
    return _assemble(
        config, settings, store, backend, writer, relay, sandbox, executor, bus, gate, unsafe
    )
