"""The diff widget every screen shows code changes with: never soft-wrapped, line
numbers, horizontal scrolling, changed words highlighted, unified or side by side,
jump to the next change (keys: the ``diff`` scope of :mod:`stop_tui.keymap`)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import ScrollableContainer
from textual.widgets import Static

from stop_tui.tui.bindings import bindings_for
from stop_tui.tui.charts import Palette
from stop_tui.tui.render import code_diff

__all__ = ["DiffView"]


class DiffView(ScrollableContainer, can_focus=True):
    """``parent`` → ``source``; ``v`` toggles side by side, ``.``/``,`` jump between changes."""

    BINDINGS: ClassVar[list[BindingType]] = bindings_for("diff")
    DEFAULT_CSS = """
    DiffView { overflow-x: auto; overflow-y: auto; }
    DiffView > .diff-body { width: auto; height: auto; }
    """

    def __init__(
        self,
        parent: str = "",
        source: str = "",
        *,
        side: bool = False,
        empty: str = "",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.parent_source = parent
        self.source = source
        self.side = side
        self.empty = empty  # shown instead of a diff (e.g. "no parent to compare with")
        self.changes: list[int] = []
        self.current = -1  # index into ``changes`` of the change last jumped to

    def compose(self) -> ComposeResult:
        yield Static(classes="diff-body")

    def on_mount(self) -> None:
        self.refresh_diff()

    def show(self, parent: str, source: str, *, empty: str = "") -> None:
        """Show another pair of sources (or ``empty``'s message), from the top."""
        self.parent_source, self.source, self.empty = parent, source, empty
        self.current = -1
        self.refresh_diff()
        self.scroll_to(0, 0, animate=False)

    def refresh_diff(self) -> None:
        body = self.query_one(".diff-body", Static)
        if self.empty:
            self.changes = []
            body.update(Text(self.empty, style="dim"))
            return
        P = Palette.from_theme(self.app.current_theme)
        rendered = code_diff(self.parent_source, self.source, P, side=self.side)
        self.changes = rendered.changes
        body.update(rendered.text)
        self._title()

    def _title(self) -> None:
        mode = "side by side" if self.side else "unified"
        n = len(self.changes)
        where = (
            f"change {self.current + 1}/{n}"
            if self.current >= 0
            else f"{n} change" + ("" if n == 1 else "s")
        )
        self.border_subtitle = f"{mode} · {where}"

    @property
    def text(self) -> str:
        """What is shown, as plain text (tests, copy)."""
        rendered = self.query_one(".diff-body", Static).render()
        return rendered.plain if isinstance(rendered, Text) else str(rendered)

    def action_toggle_mode(self) -> None:
        self.side = not self.side
        self.refresh_diff()

    def action_change(self, delta: int) -> None:
        if not self.changes:
            return
        self.current = max(0, min(len(self.changes) - 1, self.current + delta))
        self.scroll_to(y=max(0, self.changes[self.current] - 1), animate=False)
        self._title()

    def action_change_home(self) -> None:
        self.current = -1
        self.scroll_to(0, 0, animate=False)
        self._title()
