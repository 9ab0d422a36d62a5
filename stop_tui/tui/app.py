"""The Textual app: watch, steer and audit a self-improving run.

Screens: home (the runs of a workspace, a new-run form), run (live or saved),
improver, approval (modal), history, replay. Keyboard first: every binding is in
the footer, ``?`` lists them, the command palette (``ctrl+p``) runs any of them, and
``[keymap]`` in stop.toml rebinds them by id (``stop_tui.keymap``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import BindingType
from textual.screen import Screen
from textual.worker import WorkerCancelled, WorkerFailed

from stop_tui.config import Settings
from stop_tui.errors import UserError
from stop_tui.keymap import label
from stop_tui.store.store import RunStore
from stop_tui.tui.bindings import bindings_for
from stop_tui.tui.commands import ActionsProvider
from stop_tui.untrusted import visible

if TYPE_CHECKING:
    from stop_tui.tui.host import Host
    from stop_tui.tui.session import RunSession

SNAPSHOT_ENV = "STOP_TUI_SNAPSHOT"


class StopApp(App[int]):
    """``StopApp(settings, start=...)``; ``start`` is one of ``home``, ``new``, ``open``,
    ``resume``, with ``run_id``/``prepared`` where needed."""

    TITLE = "stop-tui"
    SUB_TITLE = "supervised self-improvement (STOP)"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {ActionsProvider}
    BINDINGS: ClassVar[list[BindingType]] = bindings_for("app")

    def __init__(
        self,
        settings: Settings,
        *,
        start: str = "home",
        run_id: str | None = None,
        prepared: Any = None,
        unsafe: bool = False,
        generations: int | None = None,
        snapshot: bool | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.unsafe = unsafe
        self.start = start
        self.start_run_id = run_id
        self.start_prepared = prepared
        self.start_generations = generations
        self.snapshot = bool(os.environ.get(SNAPSHOT_ENV)) if snapshot is None else snapshot
        self.sessions: list[RunSession] = []  # the runs started in this app
        # ``[keymap]`` of stop.toml (checked at load): binding id -> key(s).
        self.set_keymap(settings.keymap)

    # ------------------------------------------------------------------ helpers

    @property
    def workspace(self) -> Path:
        return Path(self.settings.workspace)

    def store(self) -> RunStore:
        return RunStore(self.settings.workspace)

    def hide(self, text: str, width: int | None = None) -> str:
        """Volatile text (dates, commit ids, clocks): blanked in snapshot mode."""
        if not self.snapshot:
            return text
        return "·" * (width if width is not None else min(len(text), 10))

    def key(self, binding_id: str) -> str:
        """How to name the key of a binding in text, the user's keymap applied."""
        return label(binding_id, self.settings.keymap)

    def error(self, exc: BaseException, what: str = "") -> None:
        """Show an error as a notification, never as a traceback."""
        text = exc.line() if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        message = visible(f"{what}: {text}" if what else text)
        self.notify(message, severity="error", timeout=10, markup=False)

    # ------------------------------------------------------------------ startup

    def on_mount(self) -> None:
        from stop_tui.tui.screens.home import HomeScreen

        self.push_screen(HomeScreen())
        try:
            if self.start == "new" and self.start_prepared is not None:
                self.open_live(self.start_prepared)
            elif self.start == "new":
                self.new_run()
            elif self.start == "open" and self.start_run_id:
                self.open_saved(self.start_run_id)
            elif self.start == "resume" and self.start_run_id:
                self.resume_run(self.start_run_id, self.start_generations)
        except Exception as exc:
            self.error(exc)

    # ------------------------------------------------------------------ navigation

    def new_run(self) -> None:
        from stop_tui.tui.screens.new_run import NewRunScreen

        self.push_screen(NewRunScreen(self.settings), self._new_run_chosen)

    def _new_run_chosen(self, settings: Settings | None) -> None:
        if settings is not None:
            self.start_new(settings)

    def start_new(self, settings: Settings, run_id: str | None = None) -> None:
        """Prepare a run (in a thread: probing the sandbox takes a moment), then show it."""
        from stop_tui.engine.approval import Policy
        from stop_tui.engine.session import prepare_run

        def prepare() -> Any:
            return prepare_run(
                settings, default_policy=Policy.EVERY_CANDIDATE, unsafe=self.unsafe, run_id=run_id
            )

        self.notify("starting the run…", timeout=3)
        self.run_worker(self._prepare_then_open(prepare), group="prepare", exit_on_error=False)

    def resume_run(self, run_id: str, generations: int | None = None) -> None:
        from stop_tui.engine.session import prepare_resume

        def prepare() -> Any:
            return prepare_resume(
                self.settings, run_id, unsafe=self.unsafe, generations=generations
            )

        self.notify(visible(f"resuming {run_id}…"), timeout=3, markup=False)
        self.run_worker(self._prepare_then_open(prepare), group="prepare", exit_on_error=False)

    async def _prepare_then_open(self, prepare: Any) -> None:
        import asyncio

        try:
            prepared = await asyncio.to_thread(prepare)
        except Exception as exc:
            self.error(exc, "could not start the run")
            return
        self.open_live(prepared)

    def open_live(self, prepared: Any) -> None:
        from stop_tui.tui.screens.run import RunScreen
        from stop_tui.tui.session import RunSession

        session = RunSession(prepared)
        self.sessions.append(session)
        # Installed, so leaving the screen keeps it (and its run) alive; the home screen's
        # "open" brings it back.
        name = f"run:{session.run_id}"
        if self.is_screen_installed(name):
            self.uninstall_screen(name)
        self.install_screen(RunScreen(session=session), name=name)
        self.push_screen(name)

    def open_saved(self, run_id: str) -> None:
        from stop_tui.tui.screens.run import RunScreen

        name = f"run:{run_id}"
        if self.is_screen_installed(name):
            screen = self.get_screen(name)
            if screen in self.screen_stack:
                self.notify("that run is already open further back (esc to return)")
                return
            self.push_screen(name)
            return
        self.push_screen(RunScreen(run_id=run_id))

    def open_history(self, run_id: str) -> None:
        from stop_tui.tui.screens.history import HistoryScreen

        self.push_screen(HistoryScreen(run_id))

    def open_replay(self, run_id: str) -> None:
        from stop_tui.tui.screens.replay import ReplayScreen

        self.push_screen(ReplayScreen(run_id))

    def open_improver(
        self, run_id: str, commit: str | None = None, spec: str | None = None
    ) -> None:
        from stop_tui.tui.screens.improver import ImproverScreen

        self.push_screen(ImproverScreen(run_id, commit=commit, spec=spec))

    # ------------------------------------------------------------------ actions

    def action_help(self) -> None:
        from stop_tui.tui.screens.dialogs import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
            return
        self.push_screen(HelpScreen(self.screen))

    async def action_quit(self) -> None:
        running = [s for s in self.sessions if s.active]
        if not running:
            self.exit(0)
            return
        from stop_tui.tui.screens.dialogs import ConfirmScreen

        async def answered(yes: bool | None) -> None:
            if not yes:
                return
            for session in running:
                session.stop()
            for session in running:
                if session.worker is not None:
                    with contextlib.suppress(WorkerCancelled, WorkerFailed):
                        await session.worker.wait()
            self.exit(0)

        self.push_screen(
            ConfirmScreen(
                f"{len(running)} run(s) still going. Stop and quit?",
                "The run is saved at its last committed step; continue it later with "
                "'stop-tui resume RUN'.",
            ),
            answered,
        )

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("New run", "Start a new self-improvement run", self.new_run)


if TYPE_CHECKING:

    def _is_a_host(app: StopApp) -> Host:  # mypy checks that StopApp is what screens expect
        return app
