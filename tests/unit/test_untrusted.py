"""The sanitiser for untrusted text: nothing a terminal interprets or a reader cannot see
gets through, plain text is unchanged, the escaping is one-to-one, markup stays text."""

from __future__ import annotations

import io
import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from stop_tui.untrusted import (
    CLOSE,
    OPEN,
    classify,
    hidden_characters,
    hidden_summary,
    replace_hidden,
    reveal,
    rich_text,
    split_lines,
    suspicious,
    visible,
)


def is_shown_as_is(char: str) -> bool:
    """The characters allowed in visible(): printable, not a format/space/separator/control
    character, not the escape bracket; newline and tab."""
    if char in "\n\t":
        return True
    category = unicodedata.category(char)
    return (
        char.isprintable()
        and category not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
        and (category != "Zs" or char == " ")
        and char != OPEN
    )


any_text = st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF))


@settings(max_examples=400, deadline=None)
@given(any_text)
def test_visible_output_has_no_control_or_invisible_characters(text: str) -> None:
    shown = visible(text)
    for char in shown:
        assert char == OPEN or is_shown_as_is(char) or unicodedata.category(char) in ("Mn", "Me")
        assert char == OPEN or classify(char) is None, repr(char)
    assert reveal(shown) == text  # one-to-one: the reviewer can always tell what it was


def test_every_code_point_below_0x3000_and_the_specials() -> None:
    """Exhaustive over the ranges where controls, bidi and zero-width characters live."""
    points = [*range(0x3000), *range(0xFE00, 0x10000), *range(0xE0000, 0xE0080)]
    points += [*range(0xE0100, 0xE01F0), 0x1D173, 0xF0000]
    for code in points:
        char = chr(code)
        shown = visible(f"a{char}b")
        assert reveal(shown) == f"a{char}b"
        inner = shown[1:-1]
        if inner == char:
            assert is_shown_as_is(char) or unicodedata.category(char) in ("Mn", "Me"), hex(code)
            assert classify(char) is None
        else:
            assert inner.startswith(OPEN) and inner.endswith(CLOSE), hex(code)
            assert all(c.isprintable() and ord(c) < 0x7F for c in inner[1:-1]), hex(code)
    for code in [
        *range(9),
        *range(11, 0x20),
        0x7F,
        *range(0x80, 0xA0),
        0x202E,
        0x2066,
        0x200B,
        0xFEFF,
    ]:
        assert visible(chr(code)).startswith(OPEN), hex(code)


@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)
        | st.sampled_from("\n\tåéü中文ßλ→✓")
    )
)
def test_plain_printable_text_round_trips(text: str) -> None:
    assert visible(text) == text
    assert rich_text(text).plain == text
    assert suspicious(text) == []


def test_named_escapes_and_backslashes() -> None:
    assert visible("a\x1b[2Kb") == "a⟦ESC⟧[2Kb"
    assert visible("x\ry") == "x⟦CR⟧y"
    assert visible("\u202e") == "⟦RLO⟧"
    assert visible("\u200b") == "⟦ZWSP⟧"
    assert visible("\ud800") == "⟦U+D800⟧"
    assert visible("\U000e0041") == "⟦U+E0041⟧"  # a tag character
    # The text "\x1b" (backslash, x, 1, b) is printable and shown as it is; a literal
    # escape bracket is escaped, so "⟦ESC⟧" typed in a source cannot pass for a real ESC.
    assert visible("\\x1b") == "\\x1b"
    assert visible("⟦ESC⟧") == "⟦U+27E6⟧ESC⟧"
    assert visible("\x1b") != visible("⟦ESC⟧")


def test_markup_is_never_parsed_and_no_control_reaches_the_terminal() -> None:
    hostile = "[/]x[bold red]red[/bold red] \x1b]8;;http://evil\x07link\x1b]8;;\x07 \x1b]52;c;ZXZpbA==\x07"
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="truecolor", width=200).print(
        rich_text(hostile)
    )
    written = out.getvalue()
    # the only ESC bytes are rich's own SGR styling of the escapes (reverse bold)
    assert re.sub(r"\x1b\[[0-9;]*m", "", written) == visible(hostile) + "\n"
    assert "[/]x[bold red]red[/bold red]" in written
    assert "\x07" not in written and "\x1b]" not in written


def test_reveal_refuses_a_stray_bracket() -> None:
    assert reveal("a⟦ESC⟧⟦U+27E6⟧⟦U+E0041⟧") == "a\x1b⟦\U000e0041"
    for bad in ("x\n⟦", "⟦NOPE⟧", "⟦U+110000⟧", "⟦⟦ESC⟧"):
        try:
            reveal(bad)
        except ValueError as exc:
            assert "⟦" in str(exc)
        else:
            raise AssertionError(bad)


def test_split_lines_only_at_newlines() -> None:
    text = "a\rb\x0bc\x0cd\x1ce\x85f\u2028g\u2029h\nsecond\n"
    assert split_lines(text) == ["a\rb\x0bc\x0cd\x1ce\x85f\u2028g\u2029h\n", "second\n"]
    assert split_lines("x") == ["x"] and split_lines("") == []


def test_suspicious_and_hidden_summary_name_the_classes_and_lines() -> None:
    source = "x = 1\ny = 'a\u202eb'  # \u2066\nz\u200b = 2\nprint('\x1b[1A\x1b[2K')\r\n"
    assert suspicious(source) == [
        "terminal escape",
        "carriage return",
        "bidi control",
        "zero-width character",
    ]
    found = hidden_characters(source)
    assert [(h.line, h.shown_as) for h in found] == [
        (2, "⟦RLO⟧"),
        (2, "⟦LRI⟧"),
        (3, "⟦ZWSP⟧"),
        (4, "⟦ESC⟧"),
        (4, "⟦ESC⟧"),
        (4, "⟦CR⟧"),
    ]
    summary = hidden_summary(source)
    assert summary is not None
    assert summary.startswith("This source contains 6 hidden or control characters")
    assert "2 bidi controls (⟦RLO⟧ ⟦LRI⟧) at line 2" in summary
    assert hidden_summary("plain\ttext\n") is None


@given(any_text)
def test_replace_hidden_leaves_nothing_hidden(text: str) -> None:
    out = replace_hidden(text)
    assert all(classify(c) in (None, "escape bracket") for c in out)
    assert len(out) == len(text) and visible(out) == out.replace("⟦", "⟦U+27E6⟧")
