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


def unified(parent: str, source: str, a: str = "parent", b: str = "this improver") -> str:
    return "".join(
        difflib.unified_diff(
            parent.splitlines(keepends=True), source.splitlines(keepends=True), a, b
        )
    )


def diff_text(diff: str, P: Palette) -> Text:
    """A unified diff, coloured: additions, deletions, hunk headers."""
    if not diff.strip():
        return Text("(no change: the same source as its parent)", style="dim")
    out = Text()
    for line in diff.splitlines():
        if line.startswith(("+++", "---", "diff ", "index ")):
            out.append(line + "\n", style="bold")
        elif line.startswith("@@"):
            out.append(line + "\n", style=P["accent"])
        elif line.startswith("+"):
            out.append(line + "\n", style=P["success"])
        elif line.startswith("-"):
            out.append(line + "\n", style=P["error"])
        else:
            out.append(line + "\n")
    out.rstrip()
    return out


def side_by_side(parent: str, source: str, P: Palette) -> RenderableType:
    """Parent on the left, this improver on the right; changed lines coloured."""
    left, right = parent.splitlines(), source.splitlines()
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
                    table.add_row(str(i1 + k + 1), left[i1 + k], str(j1 + k + 1), right[j1 + k])
                table.add_row("", Text("⋮", style="dim"), "", Text("⋮", style="dim"))
                for k in (span - 2, span - 1):
                    table.add_row(str(i1 + k + 1), left[i1 + k], str(j1 + k + 1), right[j1 + k])
            else:
                for k in range(span):
                    table.add_row(str(i1 + k + 1), left[i1 + k], str(j1 + k + 1), right[j1 + k])
            continue
        n = max(i2 - i1, j2 - j1)
        for k in range(n):
            li, rj = i1 + k, j1 + k
            table.add_row(
                str(li + 1) if li < i2 else "",
                Text(left[li], style=P["error"]) if li < i2 else "",
                str(rj + 1) if rj < j2 else "",
                Text(right[rj], style=P["success"]) if rj < j2 else "",
            )
    return table


def source_view(source: str) -> Syntax:
    return Syntax(source, "python", line_numbers=True, word_wrap=False, theme="ansi_dark")


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
            parts.append(Text(f"    {item.split(': ', 1)[-1] if '/' in item else item}",
                              style=P["error"]))  # fmt: skip
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
        text.append(str(value), style="bold")
    return text
