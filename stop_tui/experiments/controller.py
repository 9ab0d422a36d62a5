"""The sweep controller: runs a sweep's cells in one process, up to a concurrency limit.

Every cell is an ordinary run (``prepare_run`` / ``prepare_resume``) sharing:
one sandbox, one :class:`~stop_tui.engine.events.EventBus` (events carry their
run id), one :class:`ApprovalQueue` (requests labelled with their cell) and one
:class:`~stop_tui.experiments.budget.SweepBudget` (sweep-wide caps). Starting a
sweep writes its git record first (every cell's run id), so ``resume`` after a
SIGKILL finds each cell: finished cells are skipped, interrupted, failed or
cancelled ones resumed from their last commit, cells never started are started.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stop_tui import __version__
from stop_tui.config import Settings
from stop_tui.engine.approval import ApprovalRequest, Gate, Policy, SharedAnswers
from stop_tui.engine.events import EventBus
from stop_tui.engine.executor import Executor
from stop_tui.engine.session import Prepared, cluster_executor, prepare_resume, prepare_run
from stop_tui.errors import UserError
from stop_tui.experiments import record as sweep_record
from stop_tui.experiments.budget import SweepBudget, SweepCellRecorder, recorded_spent, share_budget
from stop_tui.experiments.grid import Cell
from stop_tui.experiments.record import CellEntry, SweepRecord
from stop_tui.sandbox.api import Sandbox
from stop_tui.store.answers import AnswerBoard
from stop_tui.store.store import RunStore

SettingsFor = Callable[[dict[str, Any]], Settings]


@dataclass(frozen=True)
class QueuedApproval:
    """An approval request and the cell it belongs to."""

    cell: Cell
    run_id: str
    request: ApprovalRequest

    @property
    def label(self) -> str:
        return f"{self.cell.key} ({self.run_id})"


class ApprovalQueue:
    """ONE queue of approval requests for all cells, in the order they were asked."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[QueuedApproval] = asyncio.Queue()
        self.listeners: list[Callable[[QueuedApproval], None]] = []
        self.asked: list[QueuedApproval] = []

    def put(self, item: QueuedApproval) -> None:
        self.asked.append(item)
        self._queue.put_nowait(item)
        for listener in list(self.listeners):
            listener(item)

    async def get(self) -> QueuedApproval:
        """The next request still waiting for an answer."""
        while True:
            item = await self._queue.get()
            if item.request.pending:
                return item

    @property
    def pending(self) -> list[QueuedApproval]:
        return [item for item in self.asked if item.request.pending]


@dataclass
class CellOutcome:
    key: str
    run_id: str
    status: str  # finished | failed | cancelled | skipped (finished before) | error
    message: str = ""
    resumed: bool = False


@dataclass(frozen=True)
class CellEvent:
    """Sweep-level news for front ends: a cell started (``started``) or ended."""

    kind: str  # started | ended
    cell: Cell
    run_id: str
    running: int
    outcome: CellOutcome | None = None


@dataclass
class SweepResult:
    sweep_id: str
    outcomes: list[CellOutcome] = field(default_factory=list)
    peak_concurrency: int = 0
    budget: dict[str, Any] = field(default_factory=dict)
    #: cluster address -> where its work ran ("the Ray cluster at ...: 2 of 2 nodes accepted")
    clusters: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(o.status in ("finished", "skipped") for o in self.outcomes)


class SweepController:
    def __init__(
        self,
        record: SweepRecord,
        store: RunStore,
        settings_for: SettingsFor,
        *,
        unsafe: bool = False,
        bus: EventBus | None = None,
        queue: ApprovalQueue | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.record = record
        self.store = store
        self.settings_for = settings_for
        self.unsafe = unsafe
        self.bus = bus or EventBus()
        self.queue = queue or ApprovalQueue()
        self._sandbox = sandbox
        self._executors: dict[str, Executor] = {}  # by cluster address, shared by the cells
        caps = record.spec.caps
        self.budget = SweepBudget(
            max_calls=caps.max_calls, max_tokens=caps.max_tokens, max_cost=caps.max_cost
        )
        self.listeners: list[Callable[[CellEvent], None]] = []
        self._shared: dict[str, SharedAnswers] = {}  # run id -> its requests offered to others
        self.running = 0
        self.peak = 0
        self.prepared: dict[str, Prepared] = {}  # run id -> the live cell
        self.clusters: dict[str, str] = {}  # address -> Executor.describe()

    # ------------------------------------------------------------------ cells

    def plan(self) -> dict[str, str]:
        """run id -> what happens to it: start | resume | skip."""
        plan: dict[str, str] = {}
        for entry in self.record.cells:
            plan[entry.run_id] = self._mode(entry)
        return plan

    def _mode(self, entry: CellEntry) -> str:
        if not self.store.has_run(entry.run_id):
            return "start"
        state = self.store.get_state(entry.run_id)
        if state is not None and state.status == "finished":
            tip = max((s.generation for s in self.store.list_steps(entry.run_id)), default=0)
            if tip >= self.record.spec.generations:
                return "skip"
        return "resume"

    def _emit(self, event: CellEvent) -> None:
        for listener in list(self.listeners):
            listener(event)

    def _gate(self, entry: CellEntry) -> Gate:
        gate = Gate(Policy(entry.cell.overrides.get("approval", "auto")))
        if gate.policy not in (Policy.AUTO, Policy.REJECT_FLAGGED):
            # Offered first (before the queue shows it): `stop-tui pending` lists the
            # cell's requests and `stop-tui answer` decides them, as for a single run.
            shared = SharedAnswers(gate, AnswerBoard(self.store.lock_dir, entry.run_id))
            self.bus.on(shared.on_event)
            self._shared[entry.run_id] = shared
        gate.listeners.append(
            lambda request: self.queue.put(QueuedApproval(entry.cell, entry.run_id, request))
        )
        return gate

    def _prepare(self, entry: CellEntry, mode: str, sandbox: Sandbox) -> Prepared:
        settings = self.settings_for({**entry.cell.overrides, "workspace": self.store.path})
        recorder = functools.partial(SweepCellRecorder, sweep=self.budget)
        executor = self._executors.get(settings.cluster)
        if executor is None and settings.cluster:
            executor = cluster_executor(settings, unsafe=self.unsafe)
            if executor is not None:
                self._executors[settings.cluster] = executor
        if mode == "start":
            prepared = prepare_run(
                settings,
                default_policy=Policy.AUTO,
                gate=self._gate(entry),
                bus=self.bus,
                command="sweep",
                run_id=entry.run_id,
                sandbox=sandbox,
                recorder=recorder,
                executor=executor,
            )
        else:
            prepared = prepare_resume(
                settings,
                entry.run_id,
                gate=self._gate(entry),
                bus=self.bus,
                sandbox=sandbox,
                recorder=recorder,
                executor=executor,
            )
        share_budget(prepared.run, self.budget)
        return prepared

    async def _connect(self, plan: dict[str, str]) -> None:
        """Join the clusters the cells run on, once, before any cell starts: an address
        that is wrong or unreachable stops the sweep with one line (resumable) instead
        of failing every cell in turn."""
        for entry in self.record.cells:
            if plan[entry.run_id] == "skip":
                continue
            try:
                settings = self.settings_for({**entry.cell.overrides, "workspace": self.store.path})
            except Exception:  # the cell reports its own bad settings when it starts
                continue
            if settings.cluster and settings.cluster not in self._executors:
                executor = await asyncio.to_thread(cluster_executor, settings, unsafe=self.unsafe)
                if executor is not None:
                    self._executors[settings.cluster] = executor
                    self.clusters[settings.cluster] = executor.describe()

    async def _cell(
        self, entry: CellEntry, mode: str, limit: asyncio.Semaphore, sandbox: Sandbox
    ) -> CellOutcome:
        async with limit:
            try:
                prepared = self._prepare(entry, mode, sandbox)
            except UserError as exc:
                return CellOutcome(entry.cell.key, entry.run_id, "error", exc.line())
            except Exception as exc:  # one cell must not take the sweep down; it is counted
                message = f"{type(exc).__name__}: {exc}"
                return CellOutcome(entry.cell.key, entry.run_id, "error", message)
            self.prepared[entry.run_id] = prepared
            shared = self._shared.get(entry.run_id)
            watching: asyncio.Future[None] | None = None
            self.running += 1
            self.peak = max(self.peak, self.running)
            outcome = CellOutcome(entry.cell.key, entry.run_id, "failed", resumed=mode == "resume")
            try:
                if shared is not None:
                    watching = asyncio.ensure_future(shared.watch())
                self._emit(CellEvent("started", entry.cell, entry.run_id, self.running))
                outcome.status = await prepared.run.run()
                state = self.store.get_state(entry.run_id)
                outcome.message = state.message if state else ""
            except asyncio.CancelledError:
                outcome.status, outcome.message = "cancelled", "the sweep was stopped"
                raise
            finally:
                self.running -= 1
                if watching is not None:
                    watching.cancel()
                if shared is not None:
                    shared.close()
                await prepared.close()
                self._emit(CellEvent("ended", entry.cell, entry.run_id, self.running, outcome))
            return outcome

    # ------------------------------------------------------------------ the sweep

    async def run(self) -> SweepResult:
        record = self.record
        plan = self.plan()
        # What finished cells spent counts against the sweep's caps before anything runs.
        for entry in record.cells:
            if plan[entry.run_id] == "skip":
                self.budget.charge(recorded_spent(self.store, entry.run_id))
        record.status = "running"
        # The software that runs (or continues) each cell; a resume may be a newer version.
        versions = dict(record.info.get("software_versions") or {})
        for entry in record.cells:
            if plan[entry.run_id] != "skip":
                versions[entry.run_id] = __version__
        record.info["software_versions"] = versions
        sweep_record.save(self.store, record, "running")
        owns = self._sandbox is None
        sandbox = self._sandbox or Sandbox(unsafe=self.unsafe)
        limit = asyncio.Semaphore(record.spec.concurrency)
        result = SweepResult(record.sweep_id)
        status = "interrupted"
        try:
            await sandbox.start()
            await self._connect(plan)
            tasks = []
            for entry in record.cells:
                if plan[entry.run_id] == "skip":
                    result.outcomes.append(
                        CellOutcome(entry.cell.key, entry.run_id, "skipped", "finished before")
                    )
                else:
                    tasks.append(self._cell(entry, plan[entry.run_id], limit, sandbox))
            result.outcomes += await asyncio.gather(*tasks)
            order = {e.run_id: i for i, e in enumerate(record.cells)}
            result.outcomes.sort(key=lambda o: order[o.run_id])
            status = "finished" if result.ok else "finished-with-failures"
        finally:
            if owns:
                await sandbox.close()
            for executor in self._executors.values():
                await executor.close()
            self._executors.clear()
            result.peak_concurrency = self.peak
            result.clusters = dict(self.clusters)
            result.budget = self.budget.snapshot()
            record.status = status
            record.info.update(
                peak_concurrency=max(self.peak, int(record.info.get("peak_concurrency", 0))),
                budget=result.budget,
                outcomes={o.run_id: o.status for o in result.outcomes},
                messages={o.run_id: o.message for o in result.outcomes if o.message},
            )
            sweep_record.save(self.store, record, status)
        return result
