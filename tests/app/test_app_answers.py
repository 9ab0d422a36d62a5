"""A run in the app publishes its requests like a headless run: `stop-tui pending` lists
them and `stop-tui answer` from another terminal decides one; the open modal closes and
says who answered, and the record names them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from stop_tui.engine.approval import Policy
from stop_tui.engine.events import ApprovalDecided, MetaUtilityEvaluated
from stop_tui.engine.session import prepare_run
from stop_tui.store.records import sha256_hex
from stop_tui.tui.app import StopApp
from stop_tui.tui.screens.approval import ApprovalScreen
from tests.support.engine import CountingSandbox
from tests.support.tui import settings_for, wait_for


async def cli(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOP_TUI_", "OPENAI_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stop_tui", *args, env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_a_request_in_the_app_is_answered_from_another_terminal(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    settings = settings_for(workspace, approval="every-candidate")
    run_id = "20260102-000000-shared"
    prepared = prepare_run(settings, default_policy=Policy.EVERY_CANDIDATE, run_id=run_id)
    sandbox = CountingSandbox()
    prepared.run.sandbox = sandbox
    prepared.sandbox = sandbox
    app = StopApp(settings, start="new", prepared=prepared, snapshot=True)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: app.sessions, "the run screen")
        session = app.sessions[0]
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "a request")
        screen = app.screen
        assert isinstance(screen, ApprovalScreen)
        request = screen.request
        code, out, err = await cli("pending", run_id, "--json", "--workspace", str(workspace))
        assert code == 0, err
        listed = json.loads(out)
        listed = listed if isinstance(listed, list) else [listed]
        (published,) = [r for r in listed if r["request_id"] == request.request_id]
        sha = published["source_sha256"]
        assert sha == sha256_hex(request.source)  # the hash of exactly what will run
        code, out, err = await cli(
            "answer", run_id, request.request_id, "reject", "--sha256", sha,
            "--note", "not from this one", "--workspace", str(workspace),
        )  # fmt: skip
        assert code == 0, out + err
        await wait_for(pilot, lambda: app.screen is not screen, "the modal to close")
        assert not request.pending
        # Answering in the app afterwards changes nothing: the first answer decided.
        assert not request.approve()
        assert "stop-tui answer" in request.lost_to
        # The next request shows by itself; "rest of generation" there is this person's.
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ApprovalScreen) and app.screen.request is not request,
            "the next request",
        )
        following = app.screen.request
        await pilot.pause(0.2)
        await pilot.press("g")
        await wait_for(pilot, lambda: not following.pending, "the rest of the generation")
        assert following.lost_to == ""  # it won its own claim
        rest = following.decided.result()
        assert rest.action == "approved" and "stop-tui answer" not in rest.by
        assert rest.reason == "approved the rest of this generation"
        session.stop()
        await wait_for(pilot, lambda: not session.active, "the run to stop")
    decided = [
        e for e in session.bus.history
        if isinstance(e, ApprovalDecided) and (e.generation, e.index) == (request.generation, request.index)
    ]  # fmt: skip
    assert len(decided) == 1 and not decided[0].approved
    assert decided[0].reason == "not from this one" and "(stop-tui answer, pid " in decided[0].by
    scored = {
        (e.generation, e.index) for e in session.bus.history if isinstance(e, MetaUtilityEvaluated)
    }
    assert (request.generation, request.index) not in scored  # the rejected candidate never ran
