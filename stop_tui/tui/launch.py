"""Entry points the command line calls; each returns an exit code."""

from __future__ import annotations

from typing import Any

from stop_tui.config import Settings


def _run(app: object) -> int:
    result = app.run()  # type: ignore[attr-defined]
    return int(result or 0)


def launch_home(settings: Settings, *, unsafe: bool = False) -> int:
    """``stop-tui``: the home screen (the runs of the workspace)."""
    from stop_tui.tui.app import StopApp

    return _run(StopApp(settings, unsafe=unsafe))


def launch_new_run(settings: Settings, *, unsafe: bool = False) -> int:
    """``stop-tui run``: start the run the settings describe at once (the engine is
    prepared first, so a bad setting or a missing sandbox is one error line, no app)."""
    from stop_tui.engine.approval import Policy
    from stop_tui.engine.session import prepare_run
    from stop_tui.tui.app import StopApp

    prepared = prepare_run(settings, default_policy=Policy.EVERY_CANDIDATE, unsafe=unsafe)
    return _run(StopApp(settings, start="new", prepared=prepared, unsafe=unsafe))


def launch_resume(
    settings: Settings,
    run_id: str,
    *,
    unsafe: bool = False,
    generations: int | None = None,
    caps: dict[str, Any] | None = None,
) -> int:
    """``stop-tui resume RUN``: continue a saved run in the app (``caps``: raised run caps)."""
    from stop_tui.engine.session import prepare_resume
    from stop_tui.tui.app import StopApp

    prepared = prepare_resume(settings, run_id, unsafe=unsafe, generations=generations, caps=caps)
    return _run(StopApp(settings, start="new", prepared=prepared, unsafe=unsafe))


def launch_open(settings: Settings, run_id: str | None, *, unsafe: bool = False) -> int:
    """``stop-tui open [RUN]``: a saved run (or the home screen)."""
    from stop_tui.store.store import RunStore
    from stop_tui.tui.app import StopApp

    if run_id is None:
        return launch_home(settings, unsafe=unsafe)
    RunStore(settings.workspace).require_run(run_id)  # one clear line before any screen
    return _run(StopApp(settings, start="open", run_id=run_id, unsafe=unsafe))


def launch_sweep(
    store: Any, settings_for: Any, controller: Any = None, *, unsafe: bool = False
) -> int:
    """``stop-tui sweep [FILE]``: the sweep screen (or, without a file, the new-sweep form)."""
    from stop_tui.tui.sweep_app import SweepApp

    return _run(SweepApp(store, settings_for, controller, unsafe=unsafe))
