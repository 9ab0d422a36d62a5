"""Small modal screens: the key help (``?``) and a yes/no confirmation."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Label, Static

from stop_tui.tui.bindings import bindings_for, reachable_bindings, with_key
from stop_tui.tui.host import host
from stop_tui.untrusted import rich_text


class HelpScreen(ModalScreen[None]):
    """Every key of the screen underneath and of the app, with what it does."""

    BINDINGS: ClassVar[list[BindingType]] = bindings_for("help")

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, show_header=True, header_style="bold")
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("action")
        table.add_column("where", style="dim")
        seen: set[tuple[str, str]] = set()
        for node, bindings in reachable_bindings(self.under):
            where = "everywhere" if node is self.app else type(node).__name__
            for b in bindings:
                key = b.key_display or self.app.get_key_display(b)
                if (key, b.description) in seen or not b.description:
                    continue
                seen.add((key, b.description))
                table.add_row(key, b.description, where)
        table.add_row("ctrl+p", "command palette: every action by name", "everywhere")
        table.add_row("tab / shift+tab", "move between panels", "everywhere")
        doc = (self.under.__doc__ or "").strip().splitlines()
        with Vertical(id="help-box", classes="dialog"):
            yield Label(f"Keys — {type(self.under).__name__}", classes="dialog-title")
            if doc:
                yield Static(doc[0], classes="dim")
            with VerticalScroll():
                yield Static(table)
            yield Static("mouse: click rows, tabs and buttons; scroll panels", classes="dim")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = bindings_for("confirm")

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="dialog"):
            # may name a run: shown through the sanitiser, never read as markup
            yield Label(rich_text(self.question), classes="dialog-title")
            if self.detail:
                yield Static(rich_text(self.detail), classes="dim")
            with Horizontal(classes="buttons"):
                key = host(self.app).key
                yield Button(with_key("Yes", key("confirm.yes")), variant="error", id="yes")
                yield Button(with_key("No", key("confirm.no")), id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
