"""A resumed run in the app uses the saved run's approval policy unless told otherwise
(the headless side: tests/integration/test_settings_model.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from stop_tui.config import Policy
from stop_tui.engine.session import prepare_resume
from stop_tui.tui.app import StopApp
from tests.integration.test_settings_model import policies
from tests.support.tui import make_saved_run, settings_for, wait_for


async def test_the_app_resumes_with_the_saved_policy_unless_told_otherwise(
    tmp_path: Path,
) -> None:
    workspace = tmp_path / "ws"
    run_id = "20260107-000000-pol"
    await asyncio.to_thread(
        make_saved_run, workspace, run_id, generations=1, approval="reject-flagged"
    )
    app = StopApp(settings_for(workspace), snapshot=True)
    async with app.run_test(size=(100, 32)) as pilot:
        app.resume_run(run_id, generations=2)
        await wait_for(pilot, lambda: app.sessions, "the resumed run")
        session = app.sessions[0]
        assert session.run.gate.policy is Policy.REJECT_FLAGGED
        ended = ("finished", "failed", "cancelled")
        await wait_for(pilot, lambda: session.status in ended, "the run's end", 240)
        assert session.status == "finished"
    assert policies(workspace, run_id, 2) == {"policy:reject-flagged"}
    # `stop-tui resume RUN --approve auto` (the app's launch path): the flag wins.
    flagged = prepare_resume(settings_for(workspace, approval="auto"), run_id, generations=3)
    try:
        assert flagged.run.gate.policy is Policy.AUTO
    finally:
        await flagged.close()
