"""Rendering helpers shared by screens: coloured unified and side-by-side diffs,
source with line numbers, audit flags explained in words."""

from __future__ import annotations

import difflib

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from stop_tui.engine.audit import EXPLANATIONS
from stop_tui.tui.charts import Palette
from stop_tui.untrusted import ESCAPE_STYLE, ESCAPES, rich_diff, rich_text, unified, visible

__all__ = ["diff_text", "flags_view", "side_by_side", "source_view", "unified"]


def diff_text(diff: str, P: Palette) -> Text:
    """A unified diff, coloured: additions, deletions, hunk headers; untrusted text made
    visible (:func:`stop_tui.untrusted.rich_diff`)."""
    return rich_diff(diff, added=P["success"], removed=P["error"], hunk=P["accent"])


def side_by_side(parent: str, source: str, P: Palette) -> RenderableType:
    """Parent on the left, this improver on the right; changed lines coloured."""
    left, right = parent.split("\n"), source.split("\n")  # lines end at newlines only
    left, right = left[: len(left) - (left[-1] == "")], right[: len(right) - (right[-1] == "")]
    table = Table(box=None, expand=True, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("parent", ratio=1, overflow="fold")
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("this improver", ratio=1, overflow="fold")
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    if matcher.ratio() == 1.0:
        return Text("(no change: the same source as its parent)", style="dim")
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            span = i2 - i1
            if span > 6:  # show context only around changes
                for k in (0, 1):
                    table.add_row(str(i1 + k + 1), rich_text(left[i1 + k]),
                                  str(j1 + k + 1), rich_text(right[j1 + k]))  # fmt: skip
                table.add_row("", Text("⋮", style="dim"), "", Text("⋮", style="dim"))
                for k in (span - 2, span - 1):
                    table.add_row(str(i1 + k + 1), rich_text(left[i1 + k]),
                                  str(j1 + k + 1), rich_text(right[j1 + k]))  # fmt: skip
            else:
                for k in range(span):
                    table.add_row(str(i1 + k + 1), rich_text(left[i1 + k]),
                                  str(j1 + k + 1), rich_text(right[j1 + k]))  # fmt: skip
            continue
        n = max(i2 - i1, j2 - j1)
        for k in range(n):
            li, rj = i1 + k, j1 + k
            table.add_row(
                str(li + 1) if li < i2 else "",
                rich_text(left[li], P["error"]) if li < i2 else "",
                str(rj + 1) if rj < j2 else "",
                rich_text(right[rj], P["success"]) if rj < j2 else "",
            )
    return table


def source_view(source: str) -> Syntax:
    """The source with line numbers and highlighting, shown through the sanitiser: every
    hidden or control character is a ``⟦…⟧`` escape in reverse video."""
    shown = visible(source)
    syntax = Syntax(shown, "python", line_numbers=True, word_wrap=False, theme="ansi_dark")
    for number, line in enumerate(shown.split("\n"), 1):
        for match in ESCAPES.finditer(line):
            syntax.stylize_range(ESCAPE_STYLE, (number, match.start()), (number, match.end()))
    return syntax


def flags_view(flags: list[str] | tuple[str, ...], P: Palette) -> Group:
    """Flagged categories first (warning colours, each flag with what it means), then
    the categories the audit found nothing in."""
    by_category: dict[str, list[str]] = {}
    for flag in flags:
        category = flag.split("/", 1)[0] if "/" in flag else "other"
        by_category.setdefault(category, []).append(flag)
    parts: list[RenderableType] = []
    for category, items in by_category.items():
        head = Text(f"⚑ {category}", style=f"bold {P['warning']}")
        explanation = EXPLANATIONS.get(category)
        if explanation:
            head.append(f" — {explanation}", style=P["warning"])
        parts.append(head)
        for item in items:
            parts.append(rich_text(f"    {item.split(': ', 1)[-1] if '/' in item else item}",
                                   P["error"]))  # fmt: skip
    for category in EXPLANATIONS:
        if category not in by_category:
            parts.append(Text(f"✓ {category}: nothing found", style=P["success"]))
    if not flags:
        parts.insert(0, Text("the static audit flagged nothing", style=f"bold {P['success']}"))
    return Group(*parts)


def allowances_view(allowances: dict[str, object]) -> Text:
    """One line per allowance, ``key: value``, wrapping as a whole (a two-column
    table split numbers across lines in a narrow panel)."""
    text = Text()
    for i, (key, value) in enumerate(allowances.items()):
        if i:
            text.append("\n")
        text.append(f"{key}: ", style="dim")
        text.append_text(rich_text(str(value), "bold"))
    return text
