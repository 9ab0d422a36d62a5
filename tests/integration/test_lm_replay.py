"""Transcripts, replay and resume, recorded against a real local HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stop_tui.lm.budget import LanguageModel
from stop_tui.lm.openai_backend import OpenAIBackend, RetryPolicy
from stop_tui.lm.replay import ReplayBackend
from stop_tui.lm.transcript import RecordingBackend, TranscriptWriter, read_transcript
from stop_tui.lm.types import ChatRequest, FatalLMError, LMError, ReplayDivergence
from tests.support.openai_server import OpenAIServer, Reply

KEY = "sk-secret-key-for-transcript-tests"


def live(server: OpenAIServer, **kw: object) -> OpenAIBackend:
    options: dict[str, object] = {
        "api_key": KEY,
        "base_url": server.base_url,
        "timeout": 5.0,
        "retry": RetryPolicy(max_retries=2, base_delay=0.0),
    }
    options.update(kw)
    return OpenAIBackend("test-model", **options)  # type: ignore[arg-type]


async def session(backend: object) -> list[list[str]]:
    """A small deterministic 'improver run': repeated and distinct requests."""
    model = LanguageModel(backend, model="test-model", budget=10)  # type: ignore[arg-type]
    out = [
        await model.prompt("expert", "improve A", n_responses=2),
        await model.prompt("expert", "improve A", n_responses=2),  # same request again
        await model.batch_prompt("expert", ["x", "y", "x"]),
        await model.prompt("expert", "improve B", temperature=0.2),
    ]
    return out


async def test_record_then_replay_offline_gives_identical_responses(tmp_path: Path) -> None:
    path = tmp_path / "run" / "transcript.jsonl"
    server = OpenAIServer(api_key=KEY).start()
    try:
        recorder = RecordingBackend(live(server), path)
        recorded = await session(recorder)
        await recorder.aclose()
        served_live = server.count()
    finally:
        server.stop()  # replay must not need it
    assert served_live == 5  # 2 prompts + 2 distinct batch messages + 1 prompt
    assert recorded[0] != recorded[1]  # the k-th identical request got the k-th response

    replay = ReplayBackend(path)
    replayed = await session(replay)
    assert replayed == recorded
    assert replay.served == 5


async def test_transcript_contents_and_no_key(tmp_path: Path, openai_server: OpenAIServer) -> None:
    path = tmp_path / "t.jsonl"
    openai_server.enqueue(Reply.error(429, retry_after="0"))
    recorder = RecordingBackend(live(openai_server), path)
    request = ChatRequest("test-model", "sys", "user text", n=2, temperature=0.5, max_tokens=9)
    result = await recorder.complete(request)
    await recorder.aclose()
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["key"] == request.key() and rec["occurrence"] == 0
    assert (rec["model"], rec["system"], rec["user"], rec["n"]) == (
        "test-model",
        "sys",
        "user text",
        2,
    )
    assert rec["temperature"] == 0.5 and rec["max_tokens"] == 9
    assert rec["texts"] == result.texts and rec["ok"] is True
    assert rec["usage"]["prompt_tokens"] == result.prompt_tokens
    assert rec["retries"] == 1 and rec["latency"] > 0 and rec["ts"] > 0
    assert rec["error"] is None
    assert KEY not in path.read_text()


async def test_errors_are_recorded_without_the_key(
    tmp_path: Path, openai_server: OpenAIServer
) -> None:
    openai_server.api_key = "sk-a-different-right-key"  # the server echoes what we send
    path = tmp_path / "t.jsonl"
    recorder = RecordingBackend(live(openai_server), path)
    with pytest.raises(FatalLMError):
        await recorder.complete(ChatRequest("test-model", "s", "u"))
    await recorder.aclose()
    text = path.read_text()
    rec = json.loads(text)
    assert rec["ok"] is False and rec["texts"] == []
    assert rec["error"]["type"] == "FatalLMError" and rec["error"]["status"] == 401
    assert KEY not in text and "***" in text


async def test_writer_also_scrubs_secrets_it_is_given(tmp_path: Path) -> None:
    writer = TranscriptWriter(tmp_path / "t.jsonl", secrets=["hunter22-secret"])
    request = ChatRequest("m", "s", "please leak hunter22-secret")
    await writer.write(request, 0, "x", error=LMError("echo hunter22-secret"))
    writer.close()
    assert "hunter22-secret" not in (tmp_path / "t.jsonl").read_text()


async def test_a_changed_request_raises_divergence(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with OpenAIServer() as server:
        recorder = RecordingBackend(live(server), path)
        await recorder.complete(ChatRequest("test-model", "s", "the question", n=1))
        await recorder.aclose()
    replay = ReplayBackend(path)
    with pytest.raises(ReplayDivergence) as info:
        await replay.complete(ChatRequest("test-model", "s", "the question", n=1, temperature=0.9))
    changed = ChatRequest("test-model", "s", "the question", n=1, temperature=0.9)
    assert info.value.key == changed.key()
    assert changed.key()[:12] in str(info.value) and "the question" in str(info.value)
    # The recorded one is still served; asking for it a second time diverges too.
    await replay.complete(ChatRequest("test-model", "s", "the question", n=1))
    with pytest.raises(ReplayDivergence, match="only 1 response"):
        await replay.complete(ChatRequest("test-model", "s", "the question", n=1))


async def test_replay_raises_recorded_errors_again(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with OpenAIServer() as server:
        server.enqueue(*[Reply.error(500, "down")] * 3)
        recorder = RecordingBackend(live(server), path)
        with pytest.raises(LMError):
            await recorder.complete(ChatRequest("test-model", "s", "u"))
        ok = await recorder.complete(ChatRequest("test-model", "s", "u"))
        await recorder.aclose()
    replay = ReplayBackend(path)
    with pytest.raises(LMError, match="down"):
        await replay.complete(ChatRequest("test-model", "s", "u"))
    again = await replay.complete(ChatRequest("test-model", "s", "u"))
    assert again.texts == ok.texts


async def test_resume_serves_recorded_then_goes_live(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with OpenAIServer() as server:
        recorder = RecordingBackend(live(server), path)
        model = LanguageModel(recorder, model="test-model", budget=10)
        first = [await model.prompt("e", "q1"), await model.prompt("e", "q2")]
        await recorder.aclose()
    # "crash"; a new server (nothing recorded there) and a resumed run:
    with OpenAIServer() as server:
        resumed = ReplayBackend(path, fallback=RecordingBackend(live(server), path))
        model = LanguageModel(resumed, model="test-model", budget=10)
        again = [await model.prompt("e", "q1"), await model.prompt("e", "q2")]
        assert again == first
        assert server.count() == 0  # nothing paid twice
        new = await model.prompt("e", "q3")
        repeat = await model.prompt("e", "q1")  # the 2nd "q1": not recorded yet -> live
        assert server.count() == 2
        assert resumed.served == 2 and resumed.live == 2
        await resumed.aclose()
    records = read_transcript(path)
    assert [(r.request.user, r.occurrence) for r in records] == [
        ("q1", 0),
        ("q2", 0),
        ("q3", 0),
        ("q1", 1),
    ]
    # And the complete transcript now replays the whole resumed run offline.
    replay = ReplayBackend(path)
    model = LanguageModel(replay, model="test-model", budget=10)
    assert await model.prompt("e", "q1") == first[0]
    assert await model.prompt("e", "q2") == first[1]
    assert await model.prompt("e", "q3") == new
    assert await model.prompt("e", "q1") == repeat


async def test_resume_retries_requests_that_had_failed(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with OpenAIServer() as server:
        server.api_key = "right-key-0000"  # first run: wrong key, fatal
        recorder = RecordingBackend(live(server), path)
        with pytest.raises(FatalLMError):
            await recorder.complete(ChatRequest("test-model", "s", "u"))
        await recorder.aclose()
        server.api_key = None  # key fixed; resume
        resumed = ReplayBackend(path, fallback=RecordingBackend(live(server), path))
        result = await resumed.complete(ChatRequest("test-model", "s", "u"))
        await resumed.aclose()
        assert server.count() == 2
    records = read_transcript(path)
    assert [(r.ok, r.occurrence) for r in records] == [(False, 0), (True, 0)]
    replayed = await ReplayBackend(path).complete(ChatRequest("test-model", "s", "u"))
    assert replayed.texts == result.texts  # the success wins over the recorded error


async def test_torn_last_line_is_ignored_and_repaired(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with OpenAIServer() as server:
        recorder = RecordingBackend(live(server), path)
        await recorder.complete(ChatRequest("test-model", "s", "one"))
        await recorder.aclose()
        with open(path, "a") as f:
            f.write('{"v": 1, "key": "abc", "occ')  # a crash mid-write
        assert len(read_transcript(path)) == 1
        recorder = RecordingBackend(live(server), path)  # appending repairs the tail
        await recorder.complete(ChatRequest("test-model", "s", "two"))
        await recorder.aclose()
    assert [r.request.user for r in read_transcript(path)] == ["one", "two"]


async def test_corrupted_or_edited_lines_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with OpenAIServer() as server:
        recorder = RecordingBackend(live(server), path)
        await recorder.complete(ChatRequest("test-model", "s", "one"))
        await recorder.complete(ChatRequest("test-model", "s", "two"))
        await recorder.aclose()
    lines = path.read_text().splitlines()
    edited = json.loads(lines[0])
    edited["user"] = "something else"
    path.write_text(json.dumps(edited) + "\n" + lines[1] + "\n")
    with pytest.raises(LMError, match=r"line 1 .*does not match"):
        ReplayBackend(path)
    path.write_text("not json\n" + lines[1] + "\n")
    with pytest.raises(LMError, match="line 1 is not JSON"):
        read_transcript(path)


def test_missing_transcript_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LMError, match="does not exist"):
        ReplayBackend(tmp_path / "nope.jsonl")


async def test_the_record_is_on_disk_before_the_caller_sees_the_response(
    tmp_path: Path, openai_server: OpenAIServer
) -> None:
    path = tmp_path / "t.jsonl"
    recorder = RecordingBackend(live(openai_server), path)
    seen_on_disk: list[int] = []

    def on_event(event: object) -> None:
        if getattr(event, "kind", "") == "response":
            # Read with a separate file handle, as a crash survivor would.
            seen_on_disk.append(len(path.read_bytes().splitlines()))

    model = LanguageModel(recorder, model="test-model", budget=3, on_event=on_event)
    await model.prompt("e", "a")
    await model.prompt("e", "b")
    await recorder.aclose()
    assert seen_on_disk == [1, 2]


async def test_context_scopes_occurrences_so_replay_ignores_arrival_order(tmp_path: Path) -> None:
    """Identical requests from different places in a run (contexts) are numbered per
    context, so a replay serves each place its own recorded answer even when the
    concurrent requests arrive in another order than when they were recorded."""
    from stop_tui.lm.demo import DemoBackend

    path = tmp_path / "t.jsonl"
    recorder = RecordingBackend(DemoBackend(seed=3), path)
    from stop_tui.tasks import get_task

    task = get_task("parity_noise")
    user = f"Improve:\n```python\n{task.seed_solution}```\nScore:\n{task.public_utility}"
    base = {"model": "demo", "system": "s", "user": user, "n": 4}
    recorded = {}
    for context in ("g1/c0/t0", "g1/c0/t1", "g1/c0/t2"):
        result = await recorder.complete(ChatRequest(**base, context=context))  # type: ignore[arg-type]
        recorded[context] = result.texts
    await recorder.aclose()
    assert len({tuple(v) for v in recorded.values()}) == 3  # the demo varies by context
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["context"] for line in lines] == ["g1/c0/t0", "g1/c0/t1", "g1/c0/t2"]
    assert {line["occurrence"] for line in lines} == {0}
    replay = ReplayBackend(path)
    for context in ("g1/c0/t2", "g1/c0/t0", "g1/c0/t1"):  # another order
        result = await replay.complete(ChatRequest(**base, context=context))  # type: ignore[arg-type]
        assert result.texts == recorded[context]
    with pytest.raises(ReplayDivergence):
        await replay.complete(ChatRequest(**base, context="g1/c0/t3"))  # type: ignore[arg-type]
