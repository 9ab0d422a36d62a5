"""Rendering helpers shared by screens: coloured unified and side-by-side diffs,
source with line numbers, audit flags explained in words."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from stop_tui.engine.audit import EXPLANATIONS
from stop_tui.engine.behaviour import Behaviour
from stop_tui.engine.evidence import Evidence, MonitorNote
from stop_tui.tui.charts import Palette
from stop_tui.untrusted import ESCAPE_STYLE, ESCAPES, rich_text, visible

__all__ = ["behaviour_view", "code_diff", "evidence_view", "flags_view", "source_view"]


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


def monitor_view(note: MonitorNote, P: Palette) -> Text:
    """The monitor model's note: the heading in fixed words, the text through the sanitiser
    (plain Text: markup in it stays literal, escape sequences show as ⟦ESC⟧)."""
    # the heading's words are ours, but its model name and verdict come from the record
    head = rich_text(note.heading(), f"bold {P['accent']}" if note.available else "dim")
    return Text("\n").join([head, rich_text(note.text)])


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


def evidence_view(evidence: Evidence | None, P: Palette) -> Text:
    """The engine's evidence at a decision (numbers and fixed words): headings bold, the
    difference green when it is an improvement beyond two standard errors, red when a loss."""
    if evidence is None:
        return Text("no scores were sent with this request", style="dim")
    text = Text()
    val_diff, _ = evidence.differences()
    for i, line in enumerate(evidence.lines()):
        if i:
            text.append("\n")
        if not line.startswith(" ") and line.endswith(":"):
            text.append(line, style="bold")
        elif line.startswith("difference") and val_diff is not None:
            clear = val_diff.se is None or abs(val_diff.delta) >= 2 * val_diff.se
            colour = P["success"] if val_diff.delta > 0 else P["error"]
            text.append(line, style=f"bold {colour}" if clear and val_diff.delta else "bold")
        else:
            text.append(line)
    return text


_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")


def _code(line: str, style: str = "") -> Text:
    """One line of untrusted code through the sanitiser (never markup), tabs expanded."""
    return rich_text(line.expandtabs(4), style)


def _word_marked(line: str, other: str, style: str, changed: str) -> Text:
    """``line`` in ``style``, the words that differ from ``other`` also in ``changed``."""
    text = _code(line, style)
    a = _TOKEN.findall(visible(other.expandtabs(4)))
    b = _TOKEN.findall(visible(line.expandtabs(4)))  # the same characters as ``text``
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    offsets = [0]
    for token in b:
        offsets.append(offsets[-1] + len(token))
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal" and j2 > j1:
            text.stylize(changed, offsets[j1], offsets[j2])
    return text


def _lines(text: str) -> list[str]:
    """Lines split at newlines only (a CR or form feed stays in its line, shown escaped)."""
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


@dataclass
class CodeDiff:
    """A rendered diff: the text (one row per line, never wrapped) and the rows where
    each change starts (for jump-to-next-change)."""

    text: Text
    changes: list[int]


def code_diff(
    parent: str, source: str, P: Palette, *, side: bool = False, context: int = 3
) -> CodeDiff:
    """``parent`` → ``source`` with line numbers, changed lines coloured and, in lines
    changed in place, the changed words highlighted; unified or side by side."""
    old, new = _lines(parent), _lines(source)
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    if old == new:
        if parent == source:
            return CodeDiff(Text("(no change: the same source as its parent)", style="dim"), [])
        return CodeDiff(
            Text("(the only change: the newline at the end of the file)", style="bold"), []
        )
    width = len(str(max(len(old), len(new), 1)))
    left_width = max((_code(line).cell_len for line in old), default=0)
    deleted, inserted = f"{P['error']}", f"{P['success']}"
    marked = "bold reverse"
    rows: list[Text] = []
    changes: list[int] = []

    def number(n: int | None) -> Text:
        return Text(f"{n:>{width}} " if n is not None else " " * (width + 1), style="dim")

    def row(i: int | None, j: int | None, left: Text | None, right: Text | None, sign: str) -> None:
        line = Text(no_wrap=True, overflow="ignore", end="")
        if side:
            line.append_text(number(None if i is None else i + 1))
            cell = left or Text()
            line.append_text(cell)
            line.append(" " * (left_width - cell.cell_len) + " │ ", style="dim")
            line.append_text(number(None if j is None else j + 1))
            line.append_text(right or Text())
        else:
            line.append_text(number(None if i is None else i + 1))
            line.append_text(number(None if j is None else j + 1))
            line.append(sign + " ", style="bold")
            line.append_text(left if left is not None else (right or Text()))
        rows.append(line)

    def changed(
        lines: list[str], n: int, others: list[str], m: int, paired: bool, style: str
    ) -> Text:
        """Changed line ``n``: if ``paired`` (changed in place), the words that differ from
        its counterpart ``others[m]`` marked."""
        if paired:
            return _word_marked(lines[n], others[m], style, marked)
        return _code(lines[n], style)

    for group in matcher.get_grouped_opcodes(context):
        first, last = group[0], group[-1]
        rows.append(
            Text(
                f"@@ parent {first[1] + 1}–{last[2]}, this {first[3] + 1}–{last[4]} @@",
                style=P["accent"],
                no_wrap=True,
                end="",
            )
        )
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for k in range(i2 - i1):
                    same = _code(old[i1 + k])
                    row(i1 + k, j1 + k, same, same, " ")
                continue
            changes.append(len(rows))
            paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
            if side:
                for k in range(max(i2 - i1, j2 - j1)):
                    i, j = i1 + k, j1 + k
                    left = changed(old, i, new, j, k < paired, deleted) if i < i2 else None
                    right = changed(new, j, old, i, k < paired, inserted) if j < j2 else None
                    row(i if i < i2 else None, j if j < j2 else None, left, right, "")
                continue
            for k in range(i2 - i1):
                row(i1 + k, None, changed(old, i1 + k, new, j1 + k, k < paired, deleted), None, "-")
            for k in range(j2 - j1):
                row(
                    None, j1 + k, None, changed(new, j1 + k, old, i1 + k, k < paired, inserted), "+"
                )
    return CodeDiff(Text("\n", no_wrap=True, overflow="ignore").join(rows), changes)


def behaviour_view(
    child: Behaviour | None,
    parent: Behaviour | None,
    alarms: tuple[str, ...] | list[str],
    P: Palette,
) -> RenderableType:
    """This improver's test runs beside its parent's; sharp changes first, in warning colours.
    Prompt summaries are untrusted text: plain Text, never markup."""
    if child is None and parent is None:
        return Text("no behaviour recorded (it has not run its tests)", style="dim")
    parts: list[RenderableType] = []
    for alarm in alarms:  # may quote words of its prompts
        parts.append(rich_text(f"⚑ {alarm}", f"bold {P['warning']}"))
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("this", justify="right")
    table.add_column("parent", justify="right")
    mine = dict(child.rows()) if child is not None else {}
    theirs = dict(parent.rows()) if parent is not None else {}
    for key in mine or theirs:
        table.add_row(Text(key, style="dim"), mine.get(key, "-"), theirs.get(key, "-"))
    parts.append(table)
    if child is not None and child.prompts:
        parts.append(Text("prompts it sent (summarised):", style="dim"))
        for prompt in child.prompts[:3]:
            line = rich_text("  " + prompt)
            line.no_wrap, line.overflow = True, "ellipsis"
            parts.append(line)
    return Group(*parts)
