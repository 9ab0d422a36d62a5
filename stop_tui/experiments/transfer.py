"""Table 1-style transfer of a sweep's best improvers (``engine.transfer`` with repeats).

Per model, the best improver of the sweep (the cell whose last improver in force
has the highest validation meta-utility; its run's best commit) is evaluated on
the transfer tasks next to the seed improver and the original solution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stop_tui.config import Settings, make_backend
from stop_tui.engine.config import RunConfig
from stop_tui.engine.session import seed_improver
from stop_tui.engine.transfer import TransferRow, transfer_table
from stop_tui.experiments.record import SweepRecord
from stop_tui.experiments.results import CellResult
from stop_tui.sandbox.api import Sandbox
from stop_tui.store.store import RunStore


def best_cells(cells: list[CellResult]) -> dict[str, CellResult]:
    best: dict[str, CellResult] = {}
    for cell in cells:
        if cell.completed < 1 or cell.best_commit is None:
            continue
        score = cell.val[cell.completed]
        current = best.get(cell.model)
        if current is None or score > current.val[current.completed]:
            best[cell.model] = cell
    return best


async def transfer_best(
    store: RunStore,
    record: SweepRecord,
    cells: list[CellResult],
    settings_for: Callable[[dict[str, Any]], Settings],
    *,
    unsafe: bool = False,
    on_row: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    tasks = record.spec.transfer.tasks or record.spec.tasks
    repeats = record.spec.transfer.repeats
    rows: list[dict[str, Any]] = []
    async with Sandbox(unsafe=unsafe) as sandbox:
        for model, cell in sorted(best_cells(cells).items()):
            assert cell.best_commit is not None
            improver = store.get_source(cell.best_commit)
            config = RunConfig.from_dict(dict(store.get_config(cell.run_id).settings)).replace(
                approval="auto"
            )
            backend = make_backend(settings_for({**cell.settings_overrides(), "model": model}))
            try:
                table = await transfer_table(
                    improver,
                    seed_improver(),
                    tasks,
                    config=config,
                    sandbox=sandbox,
                    backend=backend,
                    repeats=repeats,
                    on_row=_progress(on_row, model),
                )
            finally:
                await backend.aclose()
            for row in table:
                rows.append(
                    {
                        "model": model,
                        "improver_from": cell.key,
                        "improver_commit": cell.best_commit,
                        "repeats": repeats,
                        **row.to_dict(),
                    }
                )
    return rows


def _progress(
    on_row: Callable[[str], None] | None, model: str
) -> Callable[[TransferRow], None] | None:
    if on_row is None:
        return None
    return lambda row: on_row(f"{model}: {row.task}")
