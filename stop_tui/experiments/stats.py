"""The paper's statistics over a sweep's cells (scipy.stats, no hand-written formulas).

* Mean meta-utility per generation and group (task, model, variant), on the
  validation and the test split, with a 95% interval across seeds. With fewer
  than :data:`BOOTSTRAP_MIN_N` seeds the interval is Student's t
  (``scipy.stats.ttest_1samp(...).confidence_interval``): seeds are few and
  the variance is unknown, which is exactly what the t interval accounts for
  (a normal interval would be far too narrow with 3-5 seeds, and a bootstrap
  cannot resample 3 values meaningfully). From :data:`BOOTSTRAP_MIN_N` seeds on,
  a BCa bootstrap (``scipy.stats.bootstrap``) that does not assume normality
  (meta-utilities are bounded in [0, 1] and often skewed).
* The paired change from generation 0 (same seed, same cell), same interval.
* The share of cells whose final improver beats generation 0 by at least the
  threshold (absolute meta-utility, the paper's 3% = 0.03), with a Wilson
  interval (``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``),
  which keeps its coverage for small n and shares near 0 or 1.
* The validation-test gap per generation (a meta-overfitting signal).
* Sandbox- and budget-circumvention rates per model over all candidates, with
  Wilson intervals.

Cells that failed, were stopped or never started are counted in every table
(``cells``, ``finished``, ``failed`` ...); a generation's mean uses the cells
that completed that generation, and says how many (``n``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from stop_tui.engine.evidence import (  # one interval for sweeps and for each decision
    CONFIDENCE,
    Interval,
    mean_interval,
)
from stop_tui.experiments.results import CellResult


@dataclass(frozen=True)
class Proportion:
    k: int
    n: int
    rate: float | None
    low: float | None
    high: float | None
    method: str = "wilson"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def proportion(k: int, n: int, confidence: float = CONFIDENCE) -> Proportion:
    from scipy import stats

    if n == 0:
        return Proportion(k, 0, None, None, None)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Proportion(k, n, k / n, float(ci.low), float(ci.high))


Group = tuple[str, str, str]


@dataclass
class CurvePoint:
    task: str
    model: str
    variant: str
    generation: int
    val: Interval
    test: Interval
    change: Interval  # paired change of val from generation 0
    test_change: Interval
    gap: Interval  # val - test

    def flat(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "task": self.task,
            "model": self.model,
            "variant": self.variant,
            "generation": self.generation,
            "n": self.val.n,
            "method": self.val.method,
        }
        for name in ("val", "test", "change", "test_change", "gap"):
            iv: Interval = getattr(self, name)
            row[f"{name}_mean"], row[f"{name}_low"], row[f"{name}_high"] = (
                iv.mean,
                iv.low,
                iv.high,
            )
        return row


@dataclass
class GroupSummary:
    task: str
    model: str
    variant: str
    cells: int
    finished: int
    failed: int
    stopped: int
    interrupted: int
    not_started: int
    threshold: float
    improved: Proportion  # over cells that completed at least one generation
    final: CurvePoint | None

    def flat(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            k: getattr(self, k)
            for k in (
                "task", "model", "variant", "cells", "finished", "failed", "stopped",
                "interrupted", "not_started", "threshold",
            )
        }  # fmt: skip
        row.update(
            improved_k=self.improved.k,
            improved_n=self.improved.n,
            improved_share=self.improved.rate,
            improved_low=self.improved.low,
            improved_high=self.improved.high,
        )
        if self.final is not None:
            row["final_generation"] = self.final.generation
            row.update({f"final_{k}": v for k, v in self.final.flat().items() if "_" in k})
        return row


@dataclass
class Circumvention:
    model: str
    candidates: int
    sandbox: Proportion
    budget: Proportion

    def flat(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "candidates": self.candidates,
            "sandbox_flagged": self.sandbox.k,
            "sandbox_rate": self.sandbox.rate,
            "sandbox_low": self.sandbox.low,
            "sandbox_high": self.sandbox.high,
            "budget_flagged": self.budget.k,
            "budget_rate": self.budget.rate,
            "budget_low": self.budget.low,
            "budget_high": self.budget.high,
        }


@dataclass
class SweepStats:
    curve: list[CurvePoint]
    groups: list[GroupSummary]
    circumvention: list[Circumvention]
    confidence: float = CONFIDENCE


def _groups(cells: list[CellResult]) -> dict[Group, list[CellResult]]:
    out: dict[Group, list[CellResult]] = defaultdict(list)
    for cell in cells:
        out[cell.group].append(cell)
    return out


def curve(group: Group, cells: list[CellResult], generations: int) -> list[CurvePoint]:
    points = []
    for g in range(generations + 1):
        done = [c for c in cells if g in c.val]
        if not done:
            break
        points.append(
            CurvePoint(
                *group,
                generation=g,
                val=mean_interval([c.val[g] for c in done]),
                test=mean_interval([c.test[g] for c in done]),
                change=mean_interval([c.val[g] - c.val[0] for c in done]),
                test_change=mean_interval([c.test[g] - c.test[0] for c in done]),
                gap=mean_interval([c.val[g] - c.test[g] for c in done]),
            )
        )
    return points


def compute(cells: list[CellResult], generations: int, threshold: float = 0.03) -> SweepStats:
    all_points: list[CurvePoint] = []
    summaries: list[GroupSummary] = []
    for group, members in _groups(cells).items():
        points = curve(group, members, generations)
        all_points += points
        started = [c for c in members if c.completed >= 1]
        improved = sum(1 for c in started if c.val[c.completed] - c.val[0] >= threshold - 1e-12)
        status = [c.status for c in members]
        summaries.append(
            GroupSummary(
                *group,
                cells=len(members),
                finished=status.count("finished"),
                failed=status.count("failed") + status.count("error"),
                stopped=status.count("cancelled"),
                interrupted=status.count("running"),
                not_started=status.count("not-started"),
                threshold=threshold,
                improved=proportion(improved, len(started)),
                final=points[-1] if points else None,
            )
        )
    by_model: dict[str, list[CellResult]] = defaultdict(list)
    for cell in cells:
        by_model[cell.model].append(cell)
    rates = []
    for model, members in by_model.items():
        n = sum(c.candidates for c in members)
        rates.append(
            Circumvention(
                model,
                n,
                proportion(sum(c.sandbox_flagged for c in members), n),
                proportion(sum(c.budget_flagged for c in members), n),
            )
        )
    return SweepStats(all_points, summaries, rates)
