"""The sweep statistics, checked against numbers computed here by other means:
numpy for means and standard deviations, t quantiles from a printed table, the
Wilson interval written out."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stop_tui.experiments.results import CellResult
from stop_tui.experiments.stats import compute, mean_interval, proportion

# Student t, two-sided 95% (0.975 quantile), from a printed table.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776}


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def t_interval(values: list[float]) -> tuple[float, float, float]:
    a = np.array(values)
    m = float(a.mean())
    half = T_975[len(values) - 1] * float(a.std(ddof=1)) / math.sqrt(len(values))
    return m, m - half, m + half


def cell(task: str, seed: int, val: list[float], test: list[float], **kw: object) -> CellResult:
    return CellResult(
        key=f"{task}/demo/base/s{seed}", run_id=f"r{task}{seed}", task=task, model="demo",
        variant="base", seed=seed, status=str(kw.pop("status", "finished")),
        val=dict(enumerate(val)), test=dict(enumerate(test)), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


CELLS = [
    cell(
        "parity_noise", 0, [0.50, 0.60, 0.62], [0.48, 0.55, 0.50], candidates=4, sandbox_flagged=1
    ),
    cell("parity_noise", 1, [0.40, 0.41, 0.47], [0.40, 0.42, 0.44], candidates=3, budget_flagged=1),
    cell("parity_noise", 2, [0.55, 0.56, 0.56], [0.50, 0.53, 0.57], candidates=5),
    cell("parity_noise", 3, [0.30], [0.31], status="failed", candidates=2, sandbox_flagged=1),
    cell("parity_noise", 4, [], [], status="not-started"),
]


def test_curve_means_and_t_intervals_match_numpy_and_the_t_table() -> None:
    stats = compute(CELLS, generations=2, threshold=0.03)
    points = {p.generation: p for p in stats.curve}
    # Generation 0: four cells scored their seed (the failed one too); 2: three cells.
    assert points[0].val.n == 4 and points[2].val.n == 3
    m, lo, hi = t_interval([0.50, 0.40, 0.55, 0.30])
    assert points[0].val.mean == pytest.approx(m)
    assert (points[0].val.low, points[0].val.high) == (
        pytest.approx(lo, abs=1e-3),
        pytest.approx(hi, abs=1e-3),
    )
    m, lo, hi = t_interval([0.50, 0.44, 0.57])
    assert points[2].test.mean == pytest.approx(m)
    assert points[2].test.low == pytest.approx(lo, abs=1e-3)
    # The paired change from generation 0, per cell, then the t interval of the changes.
    m, lo, hi = t_interval([0.62 - 0.50, 0.47 - 0.40, 0.56 - 0.55])
    assert points[2].change.mean == pytest.approx(m)
    assert points[2].change.high == pytest.approx(hi, abs=1e-3)
    # The validation-test gap.
    m, lo, hi = t_interval([0.62 - 0.50, 0.47 - 0.44, 0.56 - 0.57])
    assert points[2].gap.mean == pytest.approx(m) and points[2].gap.low == pytest.approx(
        lo, abs=1e-3
    )
    assert points[2].val.method == "t"


def test_improved_share_counts_failed_cells_and_uses_wilson() -> None:
    (group,) = compute(CELLS, generations=2, threshold=0.03).groups
    assert (group.cells, group.finished, group.failed, group.not_started) == (5, 3, 1, 1)
    # Started cells with >= 1 generation: seeds 0, 1, 2; improved by >= 0.03: seeds 0 and 1.
    assert (group.improved.k, group.improved.n) == (2, 3)
    lo, hi = wilson(2, 3)
    assert group.improved.low == pytest.approx(lo, abs=1e-6)
    assert group.improved.high == pytest.approx(hi, abs=1e-6)


def test_circumvention_rates_pool_candidates_with_wilson_intervals() -> None:
    (rate,) = compute(CELLS, generations=2).circumvention
    assert rate.candidates == 14
    assert (rate.sandbox.k, rate.budget.k) == (2, 1)
    lo, hi = wilson(2, 14)
    assert rate.sandbox.low == pytest.approx(lo, abs=1e-6) and rate.sandbox.high == pytest.approx(
        hi, abs=1e-6
    )


def test_edge_cases_are_explicit_not_invented() -> None:
    assert mean_interval([]).mean is None
    single = mean_interval([0.4])
    assert (single.mean, single.low, single.method) == (0.4, None, "single")
    flat = mean_interval([0.5, 0.5, 0.5])
    assert (flat.low, flat.high) == (0.5, 0.5)
    assert proportion(0, 0).rate is None
    _, hi = wilson(0, 10)
    assert proportion(0, 10).high == pytest.approx(hi, abs=1e-6)


def test_many_seeds_use_a_bootstrap_that_agrees_with_t_for_normal_data() -> None:
    rng = np.random.default_rng(7)
    values = list(rng.normal(0.5, 0.1, size=40))
    boot = mean_interval(values)
    assert boot.method == "bootstrap-bca"
    half = 2.023 * float(np.std(values, ddof=1)) / math.sqrt(40)  # t(0.975, 39) from a table
    assert boot.low == pytest.approx(float(np.mean(values)) - half, abs=0.01)
    assert boot.high == pytest.approx(float(np.mean(values)) + half, abs=0.01)
