"""Transfer evaluation: the paper's Table 1 for any improver.

For each task: the original solution's utility u(s), the seed improver's
meta-utility and the given improver's meta-utility, all on the held-out test
split, as mean and standard error over repeats. Each repeat is an
independent meta-utility evaluation (``meta_utility_tests`` downstream runs,
fresh budgets) with its own LM context, so the demo model and real models
sample afresh.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from stop_tui.engine.approval import Gate
from stop_tui.engine.config import RunConfig
from stop_tui.engine.events import EventBus
from stop_tui.engine.loop import StopRun
from stop_tui.engine.recorder import MemoryRecorder
from stop_tui.lm.types import Backend
from stop_tui.sandbox.api import Sandbox
from stop_tui.tasks.evaluate import evaluate
from stop_tui.tasks.registry import get_task


@dataclass(frozen=True)
class Estimate:
    mean: float
    stderr: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Estimate:
        n = len(values)
        if n == 0:
            return cls(0.0, 0.0, 0)
        m = math.fsum(values) / n
        if n == 1:
            return cls(m, 0.0, 1)
        var = math.fsum((v - m) ** 2 for v in values) / (n - 1)
        return cls(m, math.sqrt(var / n), n)

    def percent(self) -> str:
        if self.n > 1:
            return f"{100 * self.mean:.1f} ± {100 * self.stderr:.1f}%"
        return f"{100 * self.mean:.1f}%"


@dataclass
class TransferRow:
    task: str
    original: float
    seed_improver: Estimate
    improver: Estimate
    seed_values: list[float] = field(default_factory=list)
    improver_values: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "task": self.task,
            "original_solution": self.original,
            "seed_improver": {"mean": self.seed_improver.mean, "stderr": self.seed_improver.stderr},
            "improver": {"mean": self.improver.mean, "stderr": self.improver.stderr},
            "seed_improver_values": self.seed_values,
            "improver_values": self.improver_values,
        }


async def transfer_table(
    improver: str,
    seed_improver: str,
    tasks: list[str],
    *,
    config: RunConfig,
    sandbox: Sandbox,
    backend: Backend,
    repeats: int = 1,
    bus: EventBus | None = None,
    on_row: Callable[[TransferRow], None] | None = None,
) -> list[TransferRow]:
    rows: list[TransferRow] = []
    for name in tasks:
        task = get_task(name)
        run = StopRun(
            config.replace(task=name),
            sandbox=sandbox,
            backend=backend,
            recorder=MemoryRecorder(seed_improver),
            bus=bus,
            gate=Gate(config.policy),
            task=task,
        )
        original = (
            await evaluate(task, task.seed_solution, "test", sandbox, salt=config.seed)
        ).score
        seed_values: list[float] = []
        improver_values: list[float] = []
        for rep in range(repeats):
            seed = await run.meta_utility(seed_improver, 0, None, f"transfer/{name}/seed/r{rep}")
            seed_values.append(seed.test_meta_utility)
            mine = await run.meta_utility(improver, 0, None, f"transfer/{name}/improver/r{rep}")
            improver_values.append(mine.test_meta_utility)
        row = TransferRow(
            task=name,
            original=original,
            seed_improver=Estimate.of(seed_values),
            improver=Estimate.of(improver_values),
            seed_values=seed_values,
            improver_values=improver_values,
        )
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows
