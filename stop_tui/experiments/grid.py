"""Grid expansion: a sweep spec's cells (task x model x variant x seed), in a stable order."""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from stop_tui.experiments.spec import SweepSpec

BASE_VARIANT = "base"


@dataclass(frozen=True)
class Cell:
    """One run of the sweep: its grid coordinates and the run settings it overrides."""

    task: str
    model: str
    variant: str
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> str:
        """Stable, readable, unique within the sweep (``task/model/variant/s<seed>``)."""
        return f"{self.task}/{self.model}/{self.variant}/s{self.seed}"

    @property
    def group(self) -> tuple[str, str, str]:
        """What statistics average over seeds: (task, model, variant)."""
        return self.task, self.model, self.variant

    def label(self) -> str:
        return self.key

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def expand(spec: SweepSpec) -> list[Cell]:
    """All cells; variants are ``base`` alone when the spec has none."""
    variants: dict[str, dict[str, Any]] = spec.variants or {BASE_VARIANT: {}}
    cells = []
    for task, model, (variant, extra), seed in itertools.product(
        spec.tasks, spec.models, variants.items(), spec.seeds
    ):
        overrides = {
            **spec.settings,
            **extra,
            "task": task,
            "model": model,
            "seed": seed,
            "generations": spec.generations,
            "approval": "every-candidate" if spec.approval == "ask" else spec.approval,
        }
        cells.append(Cell(task, model, variant, seed, overrides))
    return cells


def run_id_for(sweep_id: str, index: int, cell: Cell) -> str:
    """The run id a cell gets (valid for the run store: letters, digits, - and _)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{cell.task}-{cell.model}")[:24].strip("-")
    return f"{sweep_id.removeprefix('sweep-')}-c{index:02d}-{slug}"[:64]
