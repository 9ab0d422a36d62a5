"""The one sanitiser for untrusted text: what a model or generated code wrote, made safe to show.

Everything that came from generated code or a model (sources, diffs, stderr, answers,
summaries, flags' messages, transcripts, children's errors) is shown through this module,
by both front ends, so that the reviewer sees exactly what will run:

- :func:`visible` returns plain text in which every character that a terminal would
  interpret, or that a reader cannot see, is replaced by a visible escape. Newline and tab
  are kept; nothing else below U+0020 survives. Escaped: C0 controls (including ESC, so no
  escape sequence can reach the terminal, and CR, which could overwrite a line), DEL, C1
  controls, bidi controls (Trojan Source), zero-width and other format characters
  (category Cf), line/paragraph separators, spaces other than U+0020, variation selectors,
  invisible fillers, lone surrogates, private-use and unassigned code points.
- The escape of a character is ``⟦NAME⟧`` (e.g. ``⟦ESC⟧``, ``⟦CR⟧``, ``⟦RLO⟧``, ``⟦ZWSP⟧``)
  or ``⟦U+XXXX⟧`` for a character without a short name. The opening bracket ``⟦`` (U+27E6)
  never appears in the output except as the start of an escape: one in the input is itself
  escaped as ``⟦U+27E6⟧``. So the mapping is one-to-one and backslashes are left alone:
  ``"\\x1b"`` written in a source (four printable characters) reads as it is, while a real
  ESC byte reads ``⟦ESC⟧``; the two can never be confused.
- :func:`rich_text` builds a :class:`rich.text.Text` from :func:`visible` without parsing
  markup (``[bold]`` or ``[/]`` in untrusted text stays literal text), escapes styled so
  that they stand out.
- :func:`suspicious` names the classes of hidden characters a text contains;
  :func:`hidden_characters` lists each with its line; :func:`hidden_summary` says it in
  words for the approval prompts.

This module sits below every layer (stdlib only; rich is imported when a ``Text`` is built).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

OPEN = "⟦"
CLOSE = "⟧"

_C0_NAMES = "NUL SOH STX ETX EOT ENQ ACK BEL BS HT LF VT FF CR SO SI DLE DC1 DC2 DC3 DC4 NAK SYN ETB CAN EM SUB ESC FS GS RS US"
_C0_NAMES_LIST = _C0_NAMES.split()

#: Short names of the characters people meet in attacks; the rest are ``U+XXXX``.
NAMES: dict[str, str] = {chr(i): name for i, name in enumerate(_C0_NAMES_LIST)}
NAMES.update(
    {
        "\x7f": "DEL",
        "\x85": "NEL",
        "\x9b": "CSI",
        "\x9d": "OSC",
        "\xa0": "NBSP",
        "\xad": "SHY",
        "\u061c": "ALM",
        "\u200b": "ZWSP",
        "\u200c": "ZWNJ",
        "\u200d": "ZWJ",
        "\u200e": "LRM",
        "\u200f": "RLM",
        "\u2028": "LS",
        "\u2029": "PS",
        "\u202a": "LRE",
        "\u202b": "RLE",
        "\u202c": "PDF",
        "\u202d": "LRO",
        "\u202e": "RLO",
        "\u2060": "WJ",
        "\u2066": "LRI",
        "\u2067": "RLI",
        "\u2068": "FSI",
        "\u2069": "PDI",
        "\ufeff": "BOM",
    }
)

BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
#: Letters that render as nothing (Hangul fillers, used to hide identifiers).
FILLERS = frozenset("\u115f\u1160\u3164\uffa0")

#: The classes :func:`suspicious` reports, in the order it reports them.
CLASSES = (
    "terminal escape",
    "carriage return",
    "control character",
    "bidi control",
    "zero-width character",
    "invisible format character",
    "line or paragraph separator",
    "unusual space",
    "invisible character",
    "lone surrogate",
    "private-use or unassigned character",
    "escape bracket",
)


@lru_cache(maxsize=4096)
def classify(char: str) -> str | None:
    """The class of a character :func:`visible` escapes, or None for one shown as it is."""
    code = ord(char)
    if char in "\n\t":
        return None
    if char == "\x1b" or char in "\x9b\x9d":
        return "terminal escape"
    if char == "\r":
        return "carriage return"
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return "control character"
    if code < 0x7F:
        return None
    if char in BIDI:
        return "bidi control"
    if char in ZERO_WIDTH:
        return "zero-width character"
    if char == OPEN:
        return "escape bracket"
    category = unicodedata.category(char)
    if category == "Cf":
        return "invisible format character"
    if category in ("Zl", "Zp"):
        return "line or paragraph separator"
    if category == "Zs":
        return "unusual space"
    if char in FILLERS or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF:
        return "invisible character"
    if category == "Cs":
        return "lone surrogate"
    if category in ("Co", "Cn"):
        return "private-use or unassigned character"
    return None


#: An escape in :func:`visible`'s output (``⟦`` never appears otherwise).
ESCAPES = re.compile(f"{OPEN}[A-Z0-9+]{{1,8}}{CLOSE}")


def escape(char: str) -> str:
    """The visible escape of one character (``⟦ESC⟧``, ``⟦U+E0041⟧``)."""
    return OPEN + NAMES.get(char, f"U+{ord(char):04X}") + CLOSE


_SAFE = re.compile(r"[\t\n\x20-\x7e]*")


def _pieces(text: str) -> Iterator[tuple[str, bool]]:
    """(piece, escaped) runs: shown text and escapes, in order."""
    start = 0
    n = len(text)
    i = 0
    while i < n:
        match = _SAFE.match(text, i)
        assert match is not None
        i = match.end()
        if i >= n:
            break
        char = text[i]
        if classify(char) is None:
            i += 1
            continue
        if start < i:
            yield text[start:i], False
        yield escape(char), True
        i += 1
        start = i
    if start < n:
        yield text[start:], False


def visible(text: str) -> str:
    """``text`` with every control or invisible character replaced by its escape."""
    if _SAFE.fullmatch(text):
        return text
    return "".join(piece for piece, _ in _pieces(text))


_BY_NAME = {name: char for char, name in NAMES.items()}


def reveal(shown: str) -> str:
    """The inverse of :func:`visible`: the text whose visible form is ``shown`` (used when a
    person edits the visible form, e.g. in the approval modal's editor). Raises
    ``ValueError`` naming the first ``⟦`` that does not start a known escape."""

    def back(match: re.Match[str]) -> str:
        name = match.group(0)[1:-1]
        if name in _BY_NAME:
            return _BY_NAME[name]
        if re.fullmatch(r"U\+[0-9A-F]{4,6}", name) and int(name[2:], 16) <= 0x10FFFF:
            return chr(int(name[2:], 16))
        raise ValueError(f"unknown escape {match.group(0)!r}")

    blanked = ESCAPES.sub(lambda m: " " * len(m.group(0)), shown)
    if OPEN in blanked:
        line = shown.count("\n", 0, blanked.index(OPEN)) + 1
        raise ValueError(f"a {OPEN} at line {line} starts no escape (write {OPEN}U+27E6{CLOSE})")
    return ESCAPES.sub(back, shown)


def replace_hidden(text: str, by: str = "\ufffd") -> str:
    """``text`` with every character :func:`visible` would escape replaced by ``by`` (for
    one-line labels stored where other tools show them raw, e.g. commit subjects that
    ``git log`` prints; the full text is always available to show with :func:`visible`).
    A literal ``⟦`` is kept: it is visible."""
    if _SAFE.fullmatch(text):
        return text
    return "".join(
        by if (kind := classify(c)) is not None and kind != "escape bracket" else c for c in text
    )


#: The style of escapes in :func:`rich_text` (reverse video: they cannot pass for code).
ESCAPE_STYLE = "reverse bold"


def rich_text(text: str, style: str = "", *, escape_style: str = ESCAPE_STYLE) -> Text:
    """A ``rich.text.Text`` of :func:`visible` ``(text)``; markup is never parsed."""
    from rich.text import Text

    out = Text(style=style)
    for piece, escaped in _pieces(text):
        out.append(piece, style=escape_style if escaped else None)
    return out


def split_lines(text: str) -> list[str]:
    """Lines split at newline only, ends kept (``str.splitlines`` also splits at CR, VT,
    FF, FS/GS/RS, NEL, LS and PS, and would hide them from the reviewer)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


@dataclass(frozen=True)
class Hidden:
    """One escaped character of a text: its line (1-based, counted at newlines), column,
    the character and its class."""

    line: int
    column: int
    char: str
    kind: str

    @property
    def shown_as(self) -> str:
        return escape(self.char)


def hidden_characters(text: str) -> list[Hidden]:
    found: list[Hidden] = []
    if _SAFE.fullmatch(text):
        return found
    for line_no, line in enumerate(text.split("\n"), 1):
        for column, char in enumerate(line, 1):
            kind = classify(char)
            if kind is not None and kind != "escape bracket":
                found.append(Hidden(line_no, column, char, kind))
    return found


def suspicious(text: str) -> list[str]:
    """The classes of hidden characters in ``text`` (an escape bracket ``⟦`` is not
    hidden but is listed too, since it is escaped), in the order of :data:`CLASSES`."""
    if _SAFE.fullmatch(text):
        return []
    kinds = {classify(char) for char in set(text)}
    return [kind for kind in CLASSES if kind in kinds]


def _lines(numbers: list[int]) -> str:
    unique = sorted(set(numbers))
    shown = ", ".join(str(n) for n in unique[:6]) + (", …" if len(unique) > 6 else "")
    return ("line " if len(unique) == 1 else "lines ") + shown


def group_hidden(text: str) -> dict[str, list[Hidden]]:
    """:func:`hidden_characters` grouped by class, in the order of :data:`CLASSES`."""
    groups: dict[str, list[Hidden]] = {}
    for item in hidden_characters(text):
        groups.setdefault(item.kind, []).append(item)
    return {kind: groups[kind] for kind in CLASSES if kind in groups}


def describe_group(kind: str, items: list[Hidden], *, brackets: bool = True) -> str:
    """``2 bidi controls (⟦RLO⟧ ⟦PDF⟧) at lines 3, 12``; without brackets
    ``2 bidi controls (RLO, PDF) at lines 3, 12`` (for text that is itself shown through
    :func:`visible` later, such as audit flags, which would escape the brackets again)."""
    names = dict.fromkeys(item.shown_as for item in items)
    shown = " ".join(names) if brackets else ", ".join(name[1:-1] for name in names)
    noun = kind if len(items) == 1 else kind + "s"
    return f"{len(items)} {noun} ({shown}) at {_lines([item.line for item in items])}"


def hidden_summary(text: str, what: str = "This source") -> str | None:
    """One sentence for a reviewer, or None when ``text`` hides nothing."""
    groups = group_hidden(text)
    if not groups:
        return None
    total = sum(len(items) for items in groups.values())
    parts = "; ".join(describe_group(kind, items) for kind, items in groups.items())
    noun = "character" if total == 1 else "characters"
    return (
        f"{what} contains {total} hidden or control {noun}: {parts}. "
        f"Each is shown as a {OPEN}…{CLOSE} escape, never interpreted."
    )


def unified(parent: str, source: str, a: str = "parent", b: str = "this improver") -> str:
    """A unified diff whose lines are split at newlines only (see :func:`split_lines`);
    untrusted: show it with :func:`rich_diff` or :func:`visible`."""
    import difflib

    def lines(text: str) -> list[str]:
        out = split_lines(text)
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        return out

    return "".join(difflib.unified_diff(lines(parent), lines(source), a, b))


def rich_diff(
    diff: str,
    *,
    added: str = "green",
    removed: str = "red",
    hunk: str = "cyan",
    header: str = "bold",
    empty: str = "(no change: the same source as its parent)",
) -> Text:
    """A unified diff as a coloured ``Text``, every line through :func:`rich_text`."""
    from rich.text import Text

    if not diff.strip():
        return Text(empty, style="dim")
    out = Text()
    for line in diff.split("\n"):
        if line.startswith(("+++", "---", "diff ", "index ")):
            style = header
        elif line.startswith("@@"):
            style = hunk
        elif line.startswith("+"):
            style = added
        elif line.startswith("-"):
            style = removed
        else:
            style = ""
        out.append_text(rich_text(line, style))
        out.append("\n")
    out.rstrip()
    return out
