"""What a screen may ask of the app it runs in (a Protocol), so that screens never
import the app: the app imports the screens, never the other way round."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from stop_tui.config import Settings
    from stop_tui.store.store import RunStore
    from stop_tui.tui.session import RunSession

__all__ = ["Host", "host"]


class Host(Protocol):
    """The app as the screens see it (``StopApp`` implements it)."""

    settings: Settings
    unsafe: bool
    snapshot: bool
    sessions: list[RunSession]

    @property
    def workspace(self) -> Path: ...

    def store(self) -> RunStore: ...

    def hide(self, text: str, width: int | None = None) -> str:
        """Volatile text (dates, commit ids, clocks): blanked in snapshot mode."""
        ...

    def error(self, exc: BaseException, what: str = "") -> None:
        """Show an error as a notification, never as a traceback."""
        ...

    def key(self, binding_id: str) -> str:
        """How to name the key of a binding in text, the user's keymap applied."""
        ...

    def new_run(self) -> None: ...

    def open_saved(self, run_id: str) -> None: ...

    def resume_run(self, run_id: str, generations: int | None = None) -> None: ...

    def open_history(self, run_id: str) -> None: ...

    def open_replay(self, run_id: str) -> None: ...

    def open_improver(
        self, run_id: str, commit: str | None = None, spec: str | None = None
    ) -> None: ...


def host(app: object) -> Host:
    """``screen.app`` as a :class:`Host`."""
    return cast(Host, app)
