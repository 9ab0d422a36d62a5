"""Save an SVG screenshot of the run screen during a small demo run (for the docs):
``python -m stop_tui.tui.screenshot docs/run-screen.svg``; with ``--adoption``, the
approval modal of the first adoption decision of such a run (its scores, its parent's,
the behaviour diff): ``python -m stop_tui.tui.screenshot --adoption docs/adoption.svg``.

Runs a real two-generation demo run in a temporary workspace under every-candidate
approval, approves what it is asked, and takes the picture while the second
generation waits for a decision (so the badge and the queue show)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from pathlib import Path

from textual.worker import WorkerCancelled, WorkerFailed


async def _shoot(out: Path, size: tuple[int, int], adoption: bool = False) -> None:
    from stop_tui.config import load_settings
    from stop_tui.engine.approval import Policy
    from stop_tui.engine.session import prepare_run
    from stop_tui.tui.app import StopApp
    from stop_tui.tui.screens.approval import ApprovalScreen
    from stop_tui.tui.screens.run import RunScreen

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            {
                "model": "demo",
                "workspace": Path(tmp) / "stop-runs",
                "generations": 3,
                "meta_utility_tests": 3,
                "meta_utility_budget": 3,
                "utility_budget": 3,
                "lm_budget": 2,
                "max_responses_per_call": 3,
                "demo_latency": 0.2,
                "max_calls": 120,
                "approval": "every-candidate",
            },
            environ={},
        )
        prepared = prepare_run(settings, default_policy=Policy.EVERY_CANDIDATE)
        app = StopApp(settings, start="new", prepared=prepared)
        async with app.run_test(size=size) as pilot:
            answered = 0
            while True:
                await pilot.pause(0.1)
                screen = app.screen
                if isinstance(screen, ApprovalScreen):
                    if adoption and screen.request.index is None:
                        await pilot.pause(0.3)
                        app.save_screenshot(filename=out.name, path=str(out.parent.absolute()))
                        await pilot.press("a")
                        break
                    if adoption:
                        await pilot.press("a")
                        continue
                    if screen.request.generation >= 2 and screen.request.index == 1:
                        await pilot.press("escape")  # leave it waiting: the badge shows
                        break
                    await pilot.press("r" if answered == 2 else "a")
                    if answered == 2:
                        await pilot.press(*"duplicate idea", "enter")
                    answered += 1
            await pilot.pause(0.6)
            if not adoption:
                run_screen = next(s for s in app.screen_stack if isinstance(s, RunScreen))
                run_screen.render_all()
                await pilot.pause(0.2)
                app.save_screenshot(filename=out.name, path=str(out.parent.absolute()))
            for session in app.sessions:
                session.stop()
                if session.worker is not None:
                    with contextlib.suppress(WorkerCancelled, WorkerFailed):
                        await session.worker.wait()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    adoption = "--adoption" in args
    args = [a for a in args if a != "--adoption"]
    default = "docs/adoption.svg" if adoption else "docs/run-screen.svg"
    out = Path(args[0] if args else default)
    asyncio.run(_shoot(out, (120, 36), adoption=adoption))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
