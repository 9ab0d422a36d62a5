"""What a sweep's cells recorded, read back from the run store as plain rows.

Scores come from the same rows ``stop-tui export`` prints
(:meth:`RunStore.export_scores`), so a report's numbers match ``export``. Per
generation a cell's score is that of the improver *in force* after the
generation (the paper's Fig. 4): generation 0 is the seed improver; a generation
that kept the previous improver carries its score forward. A cell that failed or
was stopped keeps the generations it completed, and its status is reported.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from stop_tui.engine.audit import circumvention_rate
from stop_tui.engine.recorder import WorkTranscript, work_transcript_path
from stop_tui.experiments.record import SweepRecord
from stop_tui.store.store import RunStore


@dataclass
class CellResult:
    key: str
    run_id: str
    task: str
    model: str
    variant: str
    seed: int
    status: str  # finished | failed | cancelled | running (interrupted) | not-started | error
    message: str = ""
    #: generation -> meta-utility of the improver in force (validation / test split)
    val: dict[int, float] = field(default_factory=dict)
    test: dict[int, float] = field(default_factory=dict)
    candidates: int = 0
    sandbox_flagged: int = 0
    budget_flagged: int = 0
    #: The run's full saved configuration (exact settings of the cell).
    settings: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    #: Backends and model names as the run's transcript records them per request.
    endpoints: list[str] = field(default_factory=list)
    software_version: str = ""
    best_commit: str | None = None

    @property
    def group(self) -> tuple[str, str, str]:
        return self.task, self.model, self.variant

    @property
    def completed(self) -> int:
        return max(self.val, default=-1)

    def settings_overrides(self) -> dict[str, Any]:
        """The cell's grid overrides (what the sweep file set for it)."""
        return dict(self.overrides)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["val"] = {str(k): v for k, v in self.val.items()}
        data["test"] = {str(k): v for k, v in self.test.items()}
        return data


def in_force(rows: list[dict[str, Any]]) -> tuple[dict[int, float], dict[int, float]]:
    """Per generation, the (val, test) meta-utility of the improver in force."""
    val: dict[int, float] = {}
    test: dict[int, float] = {}
    for row in rows:
        if row["kind"] == "seed" and row["meta_utility_val"] is not None:
            val[0] = float(row["meta_utility_val"])
            test[0] = float(row["meta_utility_test"] or 0.0)
    if 0 not in val:
        return val, test
    ends = {int(r["generation"]): r for r in rows if r["kind"] in ("adopted", "kept")}
    for g in range(1, max(ends, default=0) + 1):
        end = ends.get(g)
        if end is None:
            break
        if end["kind"] == "adopted" and end["meta_utility_val"] is not None:
            val[g] = float(end["meta_utility_val"])
            test[g] = float(end["meta_utility_test"] or 0.0)
        else:
            val[g], test[g] = val[g - 1], test[g - 1]
    return val, test


def _endpoints(store: RunStore, run_id: str) -> list[str]:
    seen: dict[str, None] = {}
    for line in WorkTranscript(work_transcript_path(store, run_id)).slice(""):
        seen[f"{line.get('backend', '?')} model={line.get('model', '?')}"] = None
    return list(seen)


def collect(store: RunStore, record: SweepRecord) -> list[CellResult]:
    versions = record.info.get("software_versions") or {}
    results = []
    for entry in record.cells:
        cell = entry.cell
        result = CellResult(
            key=cell.key,
            run_id=entry.run_id,
            task=cell.task,
            model=cell.model,
            variant=cell.variant,
            seed=cell.seed,
            status="not-started",
            overrides=dict(cell.overrides),
            software_version=str(versions.get(entry.run_id, record.software_version)),
        )
        results.append(result)
        if not store.has_run(entry.run_id):
            # A cell that could not even be prepared (bad endpoint, locked run...) says why.
            if record.info.get("outcomes", {}).get(entry.run_id) == "error":
                result.status = "error"
                result.message = str(record.info.get("messages", {}).get(entry.run_id, ""))
            continue
        state = store.get_state(entry.run_id)
        result.status = state.status if state else "running"
        result.message = state.message if state else ""
        result.settings = dict(store.get_config(entry.run_id).settings)
        rows = json.loads(store.export_scores(entry.run_id, "json"))
        result.val, result.test = in_force(rows)
        flags = [r["flags"] for r in rows if r["kind"] == "candidate"]
        result.sandbox_flagged, result.candidates, _ = circumvention_rate(flags)
        result.budget_flagged = sum(
            1 for fs in flags if any(str(f).startswith("budget/") for f in fs)
        )
        result.endpoints = _endpoints(store, entry.run_id)
        best = store.best(entry.run_id)
        result.best_commit = best.commit if best else None
    return results
