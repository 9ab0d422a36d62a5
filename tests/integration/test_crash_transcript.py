"""A short placeholder API key (``test``, ``EMPTY``) must not corrupt the work
transcript: the run has to stay readable for resume and replay."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stop_tui.lm.replay import ReplayBackend
from stop_tui.lm.transcript import RecordingBackend, TranscriptWriter, read_transcript
from stop_tui.lm.types import ChatRequest, ChatResult, FatalLMError
from tests.support.openai_server import OpenAIServer


async def test_a_short_key_is_scrubbed_from_errors_but_content_stays_intact(
    tmp_path: Path,
) -> None:
    from stop_tui.lm.openai_backend import OpenAIBackend

    path = tmp_path / "t.jsonl"
    request = ChatRequest("test-model", "s", "def algorithm(test_samples): return test_samples")
    with OpenAIServer() as server:
        backend = OpenAIBackend("test-model", api_key="test", base_url=server.base_url)
        recorder = RecordingBackend(backend, path)
        result = await recorder.complete(request)
        server.api_key = "other"  # the next request is refused; the 401 echoes "test"
        with pytest.raises(FatalLMError):
            await recorder.complete(ChatRequest("test-model", "s", "again"))
        await recorder.aclose()
    records = read_transcript(path)  # raised "the line was edited or corrupted" before
    assert records[0].request == request and records[0].texts == result.texts
    assert records[1].error_message is not None and "test" not in records[1].error_message
    replayed = await ReplayBackend(path).complete(request)
    assert replayed.texts == result.texts


async def test_a_credential_like_key_is_still_scrubbed_everywhere(tmp_path: Path) -> None:
    writer = TranscriptWriter(tmp_path / "t.jsonl", secrets=["sk-live-0123456789abcdef"])
    result = ChatResult(["it says sk-live-0123456789abcdef"], 1, 1, False, 0.1, 0, None)
    await writer.write(ChatRequest("m", "s", "u"), 0, "x", result=result)
    writer.close()
    assert "sk-live-0123456789abcdef" not in (tmp_path / "t.jsonl").read_text()


def test_resume_and_replay_take_the_saved_runs_model_with_an_endpoint_in_the_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``resume``/``replay`` have no --model: with OPENAI_BASE_URL or OPENAI_API_KEY set
    (as for the run itself), loading settings failed with "no model is set"."""
    from stop_tui.cli import build_parser
    from stop_tui.cli.common import saved_run_settings
    from stop_tui.store import RunStore
    from stop_tui.store.synthetic import build_run

    for name in list(os.environ):
        if name.startswith(("STOP_TUI_", "OPENAI_", "AZURE_OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    ws = tmp_path / "ws"
    run_id = build_run(RunStore(ws, create=True), generations=1, model="gpt-4o-mini")
    for argv in (
        ["resume", run_id, "--workspace", str(ws)],
        ["replay", run_id, "--workspace", str(ws)],
    ):
        args = build_parser().parse_args(argv)
        settings = saved_run_settings(args, run_id)
        assert settings.model == "gpt-4o-mini"
        assert settings.base_url == "http://127.0.0.1:9/v1"


async def test_a_resumed_demo_run_answers_a_repeated_request_as_the_uninterrupted_one(
    tmp_path: Path,
) -> None:
    """The demo's answer depends on the occurrence of a request in its context. On
    resume the recorded occurrences are served from the transcript and never reach
    the demo, so the first live repeat must still be answered as occurrence k, not 0."""
    from stop_tui.lm.demo import DemoBackend

    request = ChatRequest(
        "demo",
        "You are an expert.",
        "Improve this improver:\n```python\ndef improve_algorithm"
        "(initial_solution, utility, language_model):\n    return initial_solution\n```",
        n=2,
        context="g1/meta",
    )
    clean = RecordingBackend(DemoBackend(seed=3, failure_rate=0.0), tmp_path / "clean.jsonl")
    answers = [(await clean.complete(request)).texts for _ in range(3)]
    await clean.aclose()
    assert answers[0] != answers[1]  # the occurrence matters

    crashed = tmp_path / "crashed.jsonl"  # the run died after its first response
    crashed.write_text((tmp_path / "clean.jsonl").read_text().splitlines()[0] + "\n")
    resumed = ReplayBackend(crashed)
    resumed.fallback = RecordingBackend(DemoBackend(seed=3, failure_rate=0.0), crashed)
    again = [(await resumed.complete(request)).texts for _ in range(3)]
    await resumed.aclose()
    assert again == answers
    assert [r.occurrence for r in read_transcript(crashed)] == [0, 1, 2]
