"""Figures for papers: the Fig. 4-style curve and the Table 1-style transfer chart.

matplotlib (Agg backend, no display) is imported only when a figure is drawn, so
the command line stays fast. Each figure is written as SVG and PNG.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from stop_tui.experiments.stats import CurvePoint


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path, stem: str) -> list[Path]:
    paths = []
    for ext in ("svg", "png"):
        path = out / f"{stem}.{ext}"
        fig.savefig(
            path, dpi=150, bbox_inches="tight", metadata={"Date": None} if ext == "svg" else None
        )
        paths.append(path)
    return paths


def curve_figure(
    points: list[CurvePoint], out: Path, *, split: str = "val", stem: str = "curve"
) -> list[Path]:
    """Mean meta-utility per generation with its interval as a band, one line per
    model (and variant), one panel per task."""
    plt = _pyplot()
    tasks = sorted({p.task for p in points})
    fig, axes = plt.subplots(
        1, max(1, len(tasks)), figsize=(4.2 * max(1, len(tasks)), 3.4), squeeze=False
    )
    for ax, task in zip(axes[0], tasks, strict=False):
        lines: dict[str, list[CurvePoint]] = defaultdict(list)
        for p in points:
            if p.task == task:
                name = p.model if p.variant == "base" else f"{p.model} ({p.variant})"
                lines[name].append(p)
        for name, pts in sorted(lines.items()):
            pts.sort(key=lambda p: p.generation)
            iv = [getattr(p, split) for p in pts]
            xs = [p.generation for p in pts]
            means = [i.mean for i in iv]
            (line,) = ax.plot(xs, means, marker="o", label=f"{name} (n={iv[0].n})")
            lows = [i.low if i.low is not None else i.mean for i in iv]
            highs = [i.high if i.high is not None else i.mean for i in iv]
            ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_ylim(-0.02, 1.02)  # meta-utilities live in [0, 1]; the CSV keeps raw intervals
        ax.set_title(task)
        ax.set_xlabel("generation (T)")
        ax.set_xticks(sorted({p.generation for p in points if p.task == task}))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    which = "validation" if split == "val" else "test"
    axes[0][0].set_ylabel(f"meta-utility ({which}), mean and 95% CI")
    fig.tight_layout()
    paths = _save(fig, out, stem)
    plt.close(fig)
    return paths


def transfer_figure(rows: list[dict[str, Any]], out: Path, stem: str = "transfer") -> list[Path]:
    """Grouped bars per task: original solution, seed improver, the sweep's best improver
    (mean test meta-utility over repeats, error bar = standard error)."""
    plt = _pyplot()
    tasks = [r["task"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(tasks) + 1.5), 3.4))
    width = 0.27
    xs = list(range(len(tasks)))
    series = [
        ("original solution", [r["original_solution"] for r in rows], [0.0] * len(rows)),
        (
            "seed improver",
            [r["seed_improver"]["mean"] for r in rows],
            [r["seed_improver"]["stderr"] for r in rows],
        ),
        (
            "best improver",
            [r["improver"]["mean"] for r in rows],
            [r["improver"]["stderr"] for r in rows],
        ),
    ]
    for k, (label, means, errs) in enumerate(series):
        ax.bar([x + (k - 1) * width for x in xs], means, width, yerr=errs, capsize=3, label=label)
    ax.set_xticks(xs, tasks, rotation=15)
    ax.set_ylabel("test meta-utility")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    paths = _save(fig, out, stem)
    plt.close(fig)
    return paths
