"""Sweep-wide caps: one budget in the parent that every cell's requests also pass.

A cell's run budget (:class:`CellBudget`) reserves each request on the sweep's
:class:`SweepBudget` first, then on its own caps, and settles both; so the
sweep's calls, tokens and dollars are counted exactly as a run counts its own
(before sending, under a lock), and a request past a sweep cap is refused like
one past a run cap: the cell stops cleanly (status ``failed``, the message names
the sweep cap). On resume, what cells spent before the crash is charged again
(:class:`SweepCellRecorder`, :func:`charge_finished`), so caps span crashes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from stop_tui.engine.config import RunConfig
from stop_tui.engine.loop import StopRun
from stop_tui.engine.recorder import (
    Spent,
    StartInfo,
    StoreRecorder,
    WorkTranscript,
    work_transcript_path,
)
from stop_tui.lm.budget import Reservation, RunBudget
from stop_tui.lm.types import BudgetExceeded, ChatRequest, ChatResult
from stop_tui.store.store import RunStore


@dataclass
class SweepBudget(RunBudget):
    """The sweep's caps and counters (a RunBudget shared by all cells)."""

    def charge(self, spent: Spent) -> None:
        """Count use recorded before a crash (not run again)."""
        spent.charge(self)

    async def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose requests were never sent."""
        async with self._lock:
            self.unreserve(reservation)


def _sweep_exceeded(exc: BudgetExceeded) -> BudgetExceeded:
    message = (
        re.sub(r" \(resume --[a-z-]+\)", "", str(exc))  # a run's hint; sweeps use [caps]
        .replace("the run's cap", "the sweep's cap")
        .replace("; raise it", " in the sweep file's [caps]; raise it")
    )
    return BudgetExceeded(exc.kind, message, limit=exc.limit, used=exc.used, scope="run")


@dataclass
class CellBudget(RunBudget):
    """A cell's own caps, plus the sweep's."""

    sweep: SweepBudget | None = None
    _outer: dict[int, Reservation] = field(default_factory=dict, repr=False)

    async def reserve(self, requests: list[ChatRequest]) -> Reservation:
        outer: Reservation | None = None
        if self.sweep is not None:
            try:
                outer = await self.sweep.reserve(requests)
            except BudgetExceeded as exc:
                refused = _sweep_exceeded(exc)
                if self.sweep.exhausted is not None:  # the sweep's cap is used up: the cell ends
                    self.exhausted = self.exhausted or refused
                raise refused from None
        try:
            inner = await super().reserve(requests)
        except BaseException:
            if outer is not None and self.sweep is not None:
                await self.sweep.release(outer)
            raise
        if outer is not None:
            self._outer[id(inner)] = outer
        return inner

    async def settle(self, reservation: Reservation, results: list[ChatResult | None]) -> None:
        await super().settle(reservation, results)
        outer = self._outer.pop(id(reservation), None)
        if outer is not None and self.sweep is not None:
            await self.sweep.settle(outer, results)


def share_budget(run: StopRun, sweep: SweepBudget) -> None:
    """Give a prepared (not yet started) run a budget that also counts in ``sweep``."""
    own = run.run_budget
    # the sweep's cost cap prices a request as the cell does ([prices] of the cell's settings)
    sweep.prices = {**sweep.prices, **own.prices}
    cell = CellBudget(
        max_calls=own.max_calls,
        max_tokens=own.max_tokens,
        max_cost=own.max_cost,
        prices=own.prices,
        reserve_completion_tokens=own.reserve_completion_tokens,
        sweep=sweep,
    )
    run.run_budget = cell
    if isinstance(run.recorder, StoreRecorder):
        run.recorder.budget_snapshot = cell.snapshot


class SweepCellRecorder(StoreRecorder):
    """A StoreRecorder that charges a resumed cell's earlier use to the sweep."""

    def __init__(self, *args: Any, sweep: SweepBudget | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.sweep = sweep

    def start(self, config: RunConfig) -> StartInfo:
        info = super().start(config)
        if self.sweep is not None:
            self.sweep.charge(info.spent)
        return info


def recorded_spent(store: RunStore, run_id: str) -> Spent:
    """Everything a (finished) run's work transcript records as spent."""
    recorder = StoreRecorder(store, "")
    recorder.run_id = run_id
    recorder.transcript = WorkTranscript(work_transcript_path(store, run_id))
    generation = max((s.generation for s in store.list_steps(run_id)), default=0)
    return recorder._spent_before(generation)  # nothing after the last generation runs again
