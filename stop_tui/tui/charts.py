"""Small text charts (rich renderables): meta-utility per generation with its
per-test spread, the current generation's candidate scores, and budget meters."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from stop_tui.untrusted import rich_text
from stop_tui.view.run_model import CandidateRow, GenerationRow
from stop_tui.view.text import fmt, spread


class Palette(dict[str, str]):
    """Theme colours by name (primary, accent, secondary, warning, error, success, text)."""

    @classmethod
    def default(cls) -> Palette:
        return cls(
            primary="#0178D4",
            accent="#ffa62b",
            secondary="#004578",
            warning="#ffa62b",
            error="#ba3c5b",
            success="#4EBF71",
            text="default",
        )

    @classmethod
    def from_theme(cls, theme: object) -> Palette:
        base = cls.default()
        for name in ("primary", "accent", "secondary", "warning", "error", "success"):
            value = getattr(theme, name, None)
            if value:
                base[name] = str(value)
        return base

    def __missing__(self, key: str) -> str:
        return "default"


BAR = "█"
SPREAD = "▒"
MEAN = "┃"


def score_bar(mean: float | None, values: tuple[float, ...], width: int, P: Palette) -> Text:
    """``█`` up to the worst test, ``▒`` from there to the best test, ``┃`` at the mean
    (all scores are in [0, 1])."""
    text = Text()
    width = max(4, width)
    if mean is None:
        return Text(" " * width)
    lo_hi = spread(values) or (mean, mean)
    lo = round(max(0.0, min(1.0, lo_hi[0])) * width)
    hi = round(max(0.0, min(1.0, lo_hi[1])) * width)
    mid = min(width - 1, round(max(0.0, min(1.0, mean)) * width))
    for i in range(width):
        if i == mid and hi > lo:
            text.append(MEAN, style="bold")
        elif i < lo:
            text.append(BAR, style=P["primary"])
        elif i < hi:
            text.append(SPREAD, style=P["accent"])
        else:
            text.append("·", style="dim")
    return text


def legend(P: Palette) -> Text:
    text = Text("", style="dim")
    text.append(BAR, style=P["primary"])
    text.append(" worst test  ")
    text.append(SPREAD, style=P["accent"])
    text.append(" up to best  ")
    text.append(MEAN)
    text.append(" mean")
    return text


class MetaChart:
    """Meta-utility of each generation's improver, with the min–max over its tests."""

    def __init__(self, rows: list[GenerationRow], palette: Palette) -> None:
        self.rows = rows
        self.P = palette

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        P = self.P
        width = options.max_width
        label_w, num_w = 4, 18
        bar_w = max(6, width - label_w - num_w - 2)
        if not self.rows:
            yield Text("no scores yet", style="dim")
            return
        for row in self.rows:
            line = Text(f"g{row.generation:<3}", style="bold" if row.status == "adopted" else "")
            if row.meta_utility is None:
                line.append(Text(" " * bar_w))
                line.append(f" {row.status}", style="dim")
            else:
                line.append(score_bar(row.meta_utility, row.per_test, bar_w, P))
                lo_hi = spread(row.per_test)
                line.append(f" {row.meta_utility:.3f}")
                if lo_hi:
                    line.append(f" {lo_hi[0]:.2f}–{lo_hi[1]:.2f}", style="dim")
                if row.status == "kept":
                    line.append(" kept", style=P["warning"])
            yield line
        yield legend(P)


class CandidateChart:
    """The candidates of one generation: score bars, or what they are waiting for."""

    def __init__(self, generation: int, candidates: list[CandidateRow], palette: Palette) -> None:
        self.generation = generation
        self.candidates = candidates
        self.P = palette

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        P = self.P
        width = options.max_width
        bar_w = max(6, width - 4 - 16 - 2)
        if not self.candidates:
            yield Text(f"generation {self.generation}: no candidates yet", style="dim")
            return
        for cand in self.candidates:
            line = Text(f"c{cand.index:<3}")
            if cand.decision == "rejected":
                line.append(Text("rejected".ljust(bar_w), style=P["error"]))
            elif cand.meta_utility is not None:
                line.append(score_bar(cand.meta_utility, cand.per_test, bar_w, P))
                line.append(f" {cand.meta_utility:.3f}")
            elif cand.decision == "waiting":
                line.append(Text("waiting for your decision".ljust(bar_w), style=P["accent"]))
            elif cand.total:
                line.append(
                    Text(f"evaluating {cand.done}/{cand.total}".ljust(bar_w), style=P["secondary"])
                )
            else:
                line.append(rich_text(cand.decision.ljust(bar_w), "dim"))  # as stored
            if cand.flags:
                line.append(" ⚑", style=P["warning"])
            yield line


def meter(label: str, used: float, cap: float | None, width: int, text: str, P: Palette) -> Text:
    """``label [#####.....] text``; no cap: just the text."""
    line = Text(f"{label:<8}")
    bar_w = max(4, width - 8 - len(text) - 3)
    if cap is None or cap <= 0:
        line.append(Text("no cap".ljust(bar_w + 2), style="dim"))
    else:
        share = max(0.0, min(1.0, used / cap))
        filled = round(share * bar_w)
        style = P["error"] if share >= 0.9 else P["warning"] if share >= 0.7 else P["success"]
        line.append("▕")
        line.append("━" * filled, style=style)
        line.append("━" * (bar_w - filled), style="dim")
        line.append("▏")
    line.append(f" {text}")
    return line


def progress(done: int, total: int, width: int, P: Palette) -> Text:
    bar_w = max(4, width)
    filled = round(bar_w * (done / total)) if total else 0
    text = Text()
    text.append("━" * filled, style=P["secondary"])
    text.append("━" * (bar_w - filled), style="dim")
    return text


__all__ = ["CandidateChart", "MetaChart", "fmt", "legend", "meter", "progress", "score_bar"]
