"""The run screen shows how far each streaming LM request has got (a slow local model
looks slow, not frozen): the real app, engine and openai client against the loopback
server, whose stream stalls until the test lets it go."""

from __future__ import annotations

import re
from pathlib import Path

from textual.widgets import Static

from stop_tui.engine.approval import Policy
from stop_tui.engine.events import LMProgress, LMRequested
from stop_tui.engine.session import prepare_run
from stop_tui.tui.app import StopApp
from stop_tui.tui.messages import EngineEvent
from stop_tui.tui.screens.run import RunScreen
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.tui import settings_for, wait_for

STREAMING = re.compile(r"^\s+(g\d+/\S+)\s+([1-9]\d*) tok\s+\d+\.\d s$", re.MULTILINE)


def plain(widget: Static) -> str:
    content = widget.render()
    return str(getattr(content, "plain", content))


async def test_the_run_screen_shows_tokens_streamed_per_request_in_flight(
    tmp_path: Path,
) -> None:
    with OpenAIServer() as server:
        words = " ".join(f"w{i}" for i in range(40))
        server.always = Reply.streaming([words], stall_after=9)  # role + 8 words, then waits
        settings = settings_for(
            tmp_path / "ws", model="test-model", base_url=server.base_url, approval="auto"
        )
        prepared = prepare_run(settings, default_policy=Policy.AUTO, run_id="20260105-000000-tok")
        app = StopApp(settings, start="new", prepared=prepared, snapshot=True)
        async with app.run_test(size=(110, 40)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
            screen = app.screen
            assert isinstance(screen, RunScreen)
            activity = screen.query_one("#activity", Static)
            await wait_for(
                pilot, lambda: STREAMING.search(plain(activity)), "a streaming request's tokens"
            )
            shown = plain(activity)
            assert server.stalled.is_set() and "LM requests in flight:" in shown
            # one streams (a local server serves one at a time); any other waits its turn
            ((context, tokens),) = STREAMING.findall(shown)
            assert context in screen.model.in_flight and int(tokens) == 8
            session = app.sessions[0]
            assert not any(isinstance(e, LMProgress) for e in session.bus.history)
            server.unstall()
            await wait_for(pilot, lambda: not session.active, "the run to finish", limit=300)
            assert screen.model.status == "finished"
            assert screen.model.streams == {} and not STREAMING.search(plain(activity))


def test_a_waiting_progress_message_gives_way_to_a_newer_one_of_its_request() -> None:
    where = {"context": "g1/c2", "generation": 1, "index": 2}
    old = EngineEvent(LMProgress(**where, stream=1, tokens=10, elapsed=1.0))
    new = EngineEvent(LMProgress(**where, stream=1, tokens=20, elapsed=1.5))
    other = EngineEvent(LMProgress(**where, stream=2, tokens=20, elapsed=1.5))
    requested = EngineEvent(LMRequested(**where, n=1, temperature=0.7))
    # Textual asks the message it dequeued whether the next one may take its place.
    assert old.can_replace(new) and not new.can_replace(other)
    assert not old.can_replace(requested) and not requested.can_replace(old)
