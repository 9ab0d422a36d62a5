"""Progress you can see: a streamed request's tokens so far, from the real openai client
against the loopback server, through the engine's bus to both front ends' run model.

No test asserts a duration: a slow stream is a stream stalled until the test lets it go.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console

from stop_tui.cli.headless import HeadlessView
from stop_tui.engine.approval import Policy
from stop_tui.engine.events import Event, EventBus, LMProgress, LMRequested, LMResponded
from stop_tui.engine.session import prepare_run
from stop_tui.lm.openai_backend import OpenAIBackend, RetryPolicy
from stop_tui.lm.types import ChatRequest, StreamProgress, TransientLMError
from stop_tui.view.run_model import RunModel
from tests.integration.test_lm_endpoints import make  # noqa: F401 (a fixture)
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.tui import settings_for, wait_for

WORDS = [f"w{i % 10} " for i in range(30)]  # a token a chunk (a chunk is under 4 characters)


@pytest.fixture
def backend(
    openai_server: OpenAIServer,
    make: Callable[..., OpenAIBackend],  # noqa: F811
) -> Iterator[Callable[..., OpenAIBackend]]:
    """test_lm_endpoints' backends, with time for a loaded machine and no retries (a
    stalled stream is let go when the test ends)."""
    yield lambda **kw: make(**{"timeout": 20.0, "retry": RetryPolicy(max_retries=0), **kw})
    openai_server.unstall()


def req(context: str = "g1/c2/t0") -> ChatRequest:
    return ChatRequest(model="test-model", system="s", user="u", context=context)


async def until(condition: Callable[[], object], what: str) -> None:
    await wait_for(None, condition, what, limit=30.0)


async def test_progress_arrives_while_a_request_streams_and_ends_with_it(
    openai_server: OpenAIServer, backend: Callable[..., OpenAIBackend]
) -> None:
    seen: list[StreamProgress] = []
    lm = backend(on_progress=seen.append, progress_interval=0)
    # role chunk + 10 words, then the stream waits until the test lets it go
    openai_server.enqueue(Reply.streaming(["".join(WORDS)], stall_after=11))
    task = asyncio.ensure_future(lm.complete(req()))
    await until(lambda: seen and seen[-1].tokens >= 10, "progress of the first 10 chunks")
    assert openai_server.stalled.is_set() and not task.done()
    mid = list(seen)
    assert not any(p.done for p in mid)
    assert [p.tokens for p in mid] == list(range(11))  # opened at 0, then one per chunk
    assert {(p.stream, p.context) for p in mid} == {(1, "g1/c2/t0")}
    openai_server.unstall()
    result = await task
    after = len(seen)
    await asyncio.sleep(0.05)
    assert len(seen) == after  # nothing once the request is answered
    assert seen[-1].done and not any(p.done for p in seen[:-1])
    tokens = [p.tokens for p in seen[:-1]]
    assert tokens == sorted(set(tokens)) and tokens[-1] == len(WORDS)
    assert seen[-1].tokens == len(WORDS) and result.texts == ["".join(WORDS)]
    assert all(b.elapsed >= a.elapsed for a, b in itertools.pairwise(seen))


async def test_updates_are_throttled_and_a_held_back_burst_is_still_shown(
    openai_server: OpenAIServer, backend: Callable[..., OpenAIBackend]
) -> None:
    seen: list[StreamProgress] = []
    slow = backend(on_progress=seen.append, progress_interval=3600)
    openai_server.enqueue(Reply.streaming(["".join(WORDS)]))
    await slow.complete(req())
    # 30 chunks within the interval: the opening and the end, nothing between
    assert [(p.tokens, p.done) for p in seen] == [(0, False), (len(WORDS), True)]
    seen.clear()
    default = backend(on_progress=seen.append)  # a few updates a second
    openai_server.enqueue(Reply.streaming(["".join(WORDS)], stall_after=6))
    task = asyncio.ensure_future(default.complete(req("g0/t1")))
    # the 5 chunks before the stall arrive within the interval; its end reports them
    await until(lambda: seen and seen[-1].tokens == 5, "the burst before the stall")
    assert not task.done() and not seen[-1].done
    openai_server.unstall()
    await task
    assert seen[-1].done and seen[-1].tokens == len(WORDS)
    assert len(seen) < len(WORDS)


async def test_a_cancelled_stream_ends_its_progress_and_a_retry_is_a_new_stream(
    openai_server: OpenAIServer, backend: Callable[..., OpenAIBackend]
) -> None:
    seen: list[StreamProgress] = []
    lm = backend(on_progress=seen.append, progress_interval=0, timeout=1.0)
    openai_server.enqueue(Reply.streaming(["".join(WORDS)], stall_after=3))
    with pytest.raises(TransientLMError, match="timed out"):
        await lm.complete(req())
    assert seen[-1].done and seen[-1].tokens == 2 and {p.stream for p in seen} == {1}
    openai_server.unstall()
    seen.clear()
    await lm.complete(req())
    assert {p.stream for p in seen} == {2} and seen[-1].done


async def test_big_chunks_count_by_characters_and_a_failing_display_never_fails_a_request(
    openai_server: OpenAIServer, backend: Callable[..., OpenAIBackend]
) -> None:
    seen: list[StreamProgress] = []
    lm = backend(on_progress=seen.append, progress_interval=0)
    openai_server.enqueue(Reply.streaming(["x" * 399 + " " + "y" * 399 + " "]))  # 2 chunks
    await lm.complete(req())
    assert seen[-1].done and seen[-1].tokens == 200  # 800 characters / 4, not 2 chunks

    def broken(progress: StreamProgress) -> None:
        raise RuntimeError("display error")

    failing = backend(on_progress=broken, progress_interval=0)
    assert (await failing.complete(req())).texts


async def test_streamed_reasoning_counts_as_progress_never_as_the_answer(
    openai_server: OpenAIServer, backend: Callable[..., OpenAIBackend]
) -> None:
    def chunk(delta: dict[str, str]) -> str:
        body = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                "choices": [{"index": 0, "delta": delta}]}  # fmt: skip
        return f"data: {json.dumps(body)}\n\n"

    events = [chunk({"reasoning_content": "hm "}) for _ in range(5)] + [chunk({"content": "ok"})]
    openai_server.enqueue(Reply(body="".join([*events, "data: [DONE]\n\n"]).encode(), sse=True))
    seen: list[StreamProgress] = []
    result = await backend(on_progress=seen.append, progress_interval=0).complete(req())
    assert result.texts == ["ok"] and seen[-1].done and seen[-1].tokens == 6
    assert [p.tokens for p in seen[:-1]] == list(range(7))


async def test_a_request_that_does_not_stream_reports_no_progress(
    openai_server: OpenAIServer, backend: Callable[..., OpenAIBackend]
) -> None:
    seen: list[StreamProgress] = []
    lm = backend(on_progress=seen.append, progress_interval=0, stream=False)
    assert (await lm.complete(req())).texts
    openai_server.enqueue(Reply.error(400, "bad request"))
    streaming = backend(on_progress=seen.append, progress_interval=0)
    with pytest.raises(Exception, match="HTTP 400"):
        await streaming.complete(req())  # refused before any stream opened
    assert seen == []


def test_progress_events_are_ephemeral_and_a_newer_one_supersedes_an_older() -> None:
    bus = EventBus()
    got: list[Event] = []
    bus.on(got.append)
    where = {"run_id": "r", "context": "g1/c2", "generation": 1, "index": 2}
    first = LMProgress(**where, stream=7, tokens=10, elapsed=1.0)
    newer = LMProgress(**where, stream=7, tokens=20, elapsed=1.5)
    other = LMProgress(**where, stream=8, tokens=5, elapsed=0.5)
    requested = LMRequested(**where, n=1, temperature=0.7)
    for event in (requested, first, newer, other):
        bus.publish(event)
    assert got == [requested, first, newer, other]  # shown
    assert bus.history == [requested]  # never kept
    assert newer.supersedes(first) and not first.supersedes(other)
    assert not newer.supersedes(requested) and not requested.supersedes(first)
    assert newer.to_dict()["kind"] == "lm_progress"


def test_the_run_model_keeps_the_streaming_requests_only() -> None:
    model = RunModel()
    where = {"context": "g1/c2/t0", "generation": 1, "index": 2}
    model.apply(LMRequested(**where, n=1, temperature=0.7))
    model.apply(LMRequested(**where, n=1, temperature=0.7))
    model.apply(LMProgress(**where, stream=1, tokens=0, elapsed=0.0))
    model.apply(LMProgress(**where, stream=2, tokens=40, elapsed=2.0))
    line = model.apply(LMProgress(**where, stream=1, tokens=312, elapsed=4.1))
    assert line is None and not model.log  # progress is never a log line
    assert [(s.context, s.tokens, s.elapsed) for s in model.streaming()] == [
        ("g1/c2/t0", 312, 4.1),
        ("g1/c2/t0", 40, 2.0),
    ]
    model.apply(LMProgress(**where, stream=1, tokens=320, elapsed=4.3, done=True))
    assert [s.tokens for s in model.streaming()] == [40]
    done = {"prompt_tokens": 1, "completion_tokens": 1, "usage_estimated": False}
    model.apply(LMResponded(**where, n=1, **done, cost=None, latency=1.0))
    assert [s.tokens for s in model.streaming()] == [40]  # one request still in flight
    model.apply(LMResponded(**where, n=1, **done, cost=None, latency=1.0))
    assert model.streaming() == [] and model.in_flight == {}  # an end that never came


@pytest.mark.timeout(600)
async def test_a_run_publishes_progress_and_headless_piped_prints_none(tmp_path: Path) -> None:
    with OpenAIServer() as server:
        server.always = Reply.streaming()
        settings = settings_for(
            tmp_path / "ws", model="test-model", base_url=server.base_url, approval="auto"
        )
        prepared = prepare_run(settings, default_policy=Policy.AUTO, serial=True)
        run = prepared.run
        progress: list[LMProgress] = []
        run.bus.on(lambda e: progress.append(e) if isinstance(e, LMProgress) else None)
        out = io.StringIO()  # not a terminal: what a pipe gets
        view = HeadlessView(run, Console(file=out, width=200, highlight=False))
        try:
            status = await run.run()
        finally:
            await prepared.close()
    assert status == "finished", out.getvalue()
    assert progress and any(p.done for p in progress)
    assert all(p.generation is not None for p in progress)  # named by typed fields
    assert {p.context for p in progress} <= {
        e.context for e in run.bus.history if isinstance(e, LMRequested)
    }
    assert not any(isinstance(e, LMProgress) for e in run.bus.history)
    assert view.model.streams == {} and view.model.lm_calls > 0
    printed = out.getvalue()
    assert "generation 1" in printed
    assert " tok " not in printed and "streaming" not in printed and "\x1b" not in printed
    transcript = (tmp_path / "ws").rglob("*")
    for path in transcript:
        if path.is_file() and path.suffix in (".jsonl", ".json"):
            assert "lm_progress" not in path.read_text(errors="replace")


async def test_headless_shows_one_streaming_line_on_a_terminal_only(tmp_path: Path) -> None:
    where = {"context": "g1/c2", "generation": 1, "index": 2}
    for terminal in (True, False):
        prepared = prepare_run(settings_for(tmp_path / "ws"), default_policy=Policy.AUTO)
        out = io.StringIO()
        console = Console(file=out, width=120, force_terminal=terminal, highlight=False)
        view = HeadlessView(prepared.run, console)
        bar = view.progress.tasks[view._stream_bar]
        assert not bar.visible
        for event in (
            LMRequested(**where, n=1, temperature=0.7),
            LMRequested(**{**where, "context": "g1/c3"}, n=1, temperature=0.7),
            LMProgress(**where, stream=1, tokens=312, elapsed=4.1),
        ):
            view.on_event(event)
        assert bar.visible and bar.description == "LM streaming g1/c2  312 tok  4.1 s"
        assert (bar.completed, bar.total) == (1, 2)  # streaming of in flight
        view.progress.start()  # as drive() does
        view.progress.refresh()
        drawn = out.getvalue()
        view.progress.stop()
        assert ("312 tok" in drawn) is terminal  # a pipe gets no progress at all
        assert drawn == "" or terminal
        view.on_event(LMProgress(**where, stream=1, tokens=320, elapsed=4.2, done=True))
        assert not bar.visible
        await prepared.close()


async def test_a_slow_stream_that_keeps_coming_is_not_cut_off(
    openai_server: OpenAIServer, backend: Callable[..., OpenAIBackend]
) -> None:
    """The timeout is for the endpoint's next data: a stream whose whole answer takes
    longer than the timeout, a chunk at a time, finishes (a small local model writing
    4,096 tokens at 40 a second took more than the 120 s default and was retried forever)."""
    lm = backend(timeout=2.0)
    # 31 chunks 0.15 s apart: about 4.6 s in all, more than twice the timeout
    openai_server.enqueue(Reply.streaming(["".join(WORDS)], chunk_delay=0.15))
    result = await lm.complete(req())
    assert result.texts == ["".join(WORDS)] and result.retries == 0
