"""Small modal screens: the key help (``?``) and a yes/no confirmation."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Label, Static


class HelpScreen(ModalScreen[None]):
    """Every key of the screen underneath and of the app, with what it does."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="help.close"),
        Binding("question_mark", "dismiss", "Close", key_display="?", show=False),
    ]

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        from stop_tui.tui.app import _bindings

        table = Table(box=None, expand=True, show_header=True, header_style="bold")
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("action")
        table.add_column("where", style="dim")
        seen: set[tuple[str, str]] = set()
        for node, bindings in _bindings(self.under):
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
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="dialog"):
            yield Label(self.question, classes="dialog-title")
            if self.detail:
                yield Static(self.detail, classes="dim")
            with Horizontal(classes="buttons"):
                yield Button("Yes [y]", variant="error", id="yes")
                yield Button("No [n]", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
