"""``stop-tui report SWEEP``: figures, CSV and JSON of every number behind them, a summary.

Writes into ``--out`` (default ``sweep-report-<id>``): ``curve.svg/png`` (validation),
``curve-test.svg/png``, ``curve.csv`` (per generation and group), ``groups.csv``,
``circumvention.csv``, ``cells.csv``, ``transfer.csv`` and ``transfer.svg/png`` (when
transfer ran), ``report.json`` (all of it) and ``summary.md``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from stop_tui.experiments.record import SweepRecord
from stop_tui.experiments.results import CellResult
from stop_tui.experiments.stats import SweepStats


def numbers(
    record: SweepRecord,
    cells: list[CellResult],
    stats: SweepStats,
    transfer: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "sweep": {
            "sweep_id": record.sweep_id,
            "name": record.spec.name,
            "created": record.created,
            "software_version": record.software_version,
            "status": record.status,
            "spec": record.spec.to_toml_dict(),
            "info": record.info,
        },
        "confidence": stats.confidence,
        "interval_note": (
            "mean over seeds; Student-t interval (scipy.stats.ttest_1samp) below 20 seeds, "
            "BCa bootstrap (scipy.stats.bootstrap) from 20; shares and rates: Wilson "
            "(scipy.stats.binomtest().proportion_ci)"
        ),
        "model_note": (
            "models are named as configured; each cell's 'endpoints' lists the backend and "
            "model name its transcript recorded per request (the response's own model field "
            "is not recorded)"
        ),
        "cells": [c.to_json() for c in cells],
        "curve": [p.flat() for p in stats.curve],
        "groups": [g.flat() for g in stats.groups],
        "circumvention": [c.flat() for c in stats.circumvention],
        "transfer": transfer or [],
    }


def _csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in rows:
        for k in row:
            if k not in keys:
                keys.append(k)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: _cell(v) for k, v in row.items()})


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def ci_text(mean: float | None, low: float | None, high: float | None) -> str:
    """A mean and its interval, as the tables show them: ``0.512 [0.401, 0.620]``."""
    if mean is None:
        return "-"
    if low is None or high is None:
        return f"{mean:.3f}"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def summary_markdown(data: dict[str, Any], figures: list[str]) -> str:
    s = data["sweep"]
    lines = [
        f"# Sweep {s['sweep_id']}" + (f": {s['name']}" if s["name"] else ""),
        "",
        f"stop-tui {s['software_version']}, created {s['created']}, status {s['status']}. "
        f"{len(data['cells'])} cells; intervals: {data['interval_note']}.",
        "",
    ]
    for fig in figures:
        lines += [f"![{fig}]({fig})", ""]
    lines += [
        "## Did it improve?",
        "",
        "| task | model | variant | cells | finished | failed | stopped | not started | final gen | "
        "val (95% CI) | change vs gen 0 | improved >= threshold |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in data["groups"]:
        share = (
            f"{g['improved_k']}/{g['improved_n']} ({_pct(g['improved_share'])}, "
            f"CI {_pct(g['improved_low'])}-{_pct(g['improved_high'])})"
        )
        lines.append(
            f"| {g['task']} | {g['model']} | {g['variant']} | {g['cells']} | {g['finished']} | "
            f"{g['failed']} | {g['stopped']} | {g['not_started']} | {g.get('final_generation', '-')} | "
            f"{ci_text(g.get('final_val_mean'), g.get('final_val_low'), g.get('final_val_high'))} | "
            f"{ci_text(g.get('final_change_mean'), g.get('final_change_low'), g.get('final_change_high'))} | "
            f"{share} |"
        )
    lines += [
        "",
        "## Per generation (validation, test, val-test gap)",
        "",
        "| task | model | variant | gen | n | val | test | gap |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in data["curve"]:
        lines.append(
            f"| {p['task']} | {p['model']} | {p['variant']} | {p['generation']} | {p['n']} | "
            f"{ci_text(p['val_mean'], p['val_low'], p['val_high'])} | "
            f"{ci_text(p['test_mean'], p['test_low'], p['test_high'])} | "
            f"{ci_text(p['gap_mean'], p['gap_low'], p['gap_high'])} |"
        )
    lines += [
        "",
        "## Circumvention (candidates flagged by the audit)",
        "",
        "| model | candidates | sandbox | budget |",
        "|---|---|---|---|",
    ]
    for c in data["circumvention"]:
        lines.append(
            f"| {c['model']} | {c['candidates']} | {c['sandbox_flagged']} "
            f"({_pct(c['sandbox_rate'])}, CI {_pct(c['sandbox_low'])}-{_pct(c['sandbox_high'])}) | "
            f"{c['budget_flagged']} ({_pct(c['budget_rate'])}, CI {_pct(c['budget_low'])}-"
            f"{_pct(c['budget_high'])}) |"
        )
    if data["transfer"]:
        lines += ["", "## Transfer of the best improvers (test meta-utility)", ""]
        lines += ["| task | original | seed improver | best improver |", "|---|---|---|---|"]
        for r in data["transfer"]:
            lines.append(
                f"| {r['task']} | {r['original_solution']:.3f} | "
                f"{r['seed_improver']['mean']:.3f} ± {r['seed_improver']['stderr']:.3f} | "
                f"{r['improver']['mean']:.3f} ± {r['improver']['stderr']:.3f} |"
            )
    lines += [
        "",
        "## Cells",
        "",
        "| cell | run | status | endpoints | message |",
        "|---|---|---|---|---|",
    ]
    for c in data["cells"]:
        message = str(c["message"]).replace("|", "/")[:120]
        lines.append(
            f"| {c['key']} | {c['run_id']} | {c['status']} | {'; '.join(c['endpoints']) or '-'} | {message} |"
        )
    lines += ["", data["model_note"] + ".", ""]
    return "\n".join(lines)


def write_report(out: Path, data: dict[str, Any], *, figures: bool = True) -> list[Path]:
    from stop_tui.experiments.figures import curve_figure, transfer_figure

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    _csv(out / "curve.csv", data["curve"])
    _csv(out / "groups.csv", data["groups"])
    _csv(out / "circumvention.csv", data["circumvention"])
    _csv(out / "cells.csv", [{k: v for k, v in c.items()} for c in data["cells"]])
    written += [out / n for n in ("curve.csv", "groups.csv", "circumvention.csv", "cells.csv")]
    names: list[str] = []
    if figures and data["curve"]:
        points = _points(data["curve"])
        written += curve_figure(points, out, split="val", stem="curve")
        written += curve_figure(points, out, split="test", stem="curve-test")
        names += ["curve.png", "curve-test.png"]
    if data["transfer"]:
        _csv(out / "transfer.csv", data["transfer"])
        written.append(out / "transfer.csv")
        if figures:
            written += transfer_figure(data["transfer"], out)
            names.append("transfer.png")
    (out / "report.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(summary_markdown(data, names), encoding="utf-8")
    written += [out / "report.json", out / "summary.md"]
    return written


def _points(rows: list[dict[str, Any]]) -> list[Any]:
    """Curve points back from their flat rows (what the figures draw is what the CSV says)."""
    from stop_tui.experiments.stats import CurvePoint, Interval

    def iv(row: dict[str, Any], name: str) -> Interval:
        return Interval(
            row[f"{name}_mean"], row[f"{name}_low"], row[f"{name}_high"], row["n"], row["method"]
        )

    return [
        CurvePoint(
            r["task"],
            r["model"],
            r["variant"],
            r["generation"],
            iv(r, "val"),
            iv(r, "test"),
            iv(r, "change"),
            iv(r, "test_change"),
            iv(r, "gap"),
        )
        for r in rows
    ]
