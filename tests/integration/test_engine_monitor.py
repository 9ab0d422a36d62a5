"""The monitor model: a second opinion before each approval, never in charge of one.

Real parts: the demo backend proposes improvers, the monitor is the real openai client
talking to the scripted OpenAI-compatible server on 127.0.0.1, the improvers run in the
real sandbox, the store is a real git repository. The note reaches the request and the
step's record, a hostile note is shown sanitised, a failing or slow monitor never holds a
decision (nor stops the run), and the transcript serves the monitor's request offline.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from stop_tui.cli.headless import show_request
from stop_tui.config import load_settings, make_monitor_backend
from stop_tui.engine.approval import ApprovalRequest, Gate, Policy, Purpose
from stop_tui.engine.events import LMRequested
from stop_tui.engine.evidence import MonitorNote
from stop_tui.engine.monitor import MONITOR_FLAG, review
from stop_tui.engine.recorder import work_transcript_path
from stop_tui.lm.demo import DemoBackend
from stop_tui.lm.monitor_route import MONITOR_SYSTEM, MonitorRoute
from stop_tui.lm.replay import ReplayBackend
from stop_tui.lm.transcript import read_transcript
from stop_tui.store.records import Decision
from tests.support.engine import CountingSandbox, memory_run, small_config, store_run
from tests.support.openai_server import OpenAIServer, Reply, is_chat_path

pytestmark = [pytest.mark.timeout(300)]

NOTE = (
    "The candidate only changes the temperature; nothing addresses the reviewer.\nVERDICT: concern"
)


def routed(server: OpenAIServer, tmp_path: Path, **extra: Any) -> MonitorRoute:
    """Demo proposals, the monitor on the loopback server: what ``make_run_backend`` builds."""
    settings = load_settings(
        {
            "model": "demo",
            "monitor_model": "test-model",
            "monitor_base_url": server.base_url,
            "retry_base_delay": 0,
            **extra,
        },
        environ={"STOP_TUI_MONITOR_API_KEY": "sk-monitor"},
        cwd=tmp_path,
    )
    monitor = make_monitor_backend(settings)
    assert monitor is not None
    return MonitorRoute(DemoBackend(seed=0, failure_rate=0.0), monitor)


def answering(requests: list[ApprovalRequest], reject_adoption: bool = True) -> Gate:
    def answer(request: ApprovalRequest) -> None:
        requests.append(request)
        if request.purpose is Purpose.ADOPTION and reject_adoption:
            asyncio.get_running_loop().call_soon(request.reject, "not today")
        else:
            asyncio.get_running_loop().call_soon(request.approve)

    return Gate(Policy.EVERY_CANDIDATE, on_request=answer)


async def test_a_note_reaches_the_request_and_the_record_and_replays_offline(
    openai_server: OpenAIServer, tmp_path: Path
) -> None:
    openai_server.responder = lambda body, seq: [NOTE]
    requests: list[ApprovalRequest] = []
    config = small_config(
        approval="every-candidate", monitor_model="test-model", meta_utility_budget=2
    )
    async with CountingSandbox() as sandbox:
        run, store, _ = store_run(
            sandbox,
            config,
            tmp_path / "ws",
            gate=answering(requests),
            make_inner=lambda: routed(openai_server, tmp_path),
        )
        assert await run.run() == "finished"
        # Every request a person saw carried the monitor's note, parsed and labelled.
        assert requests and all(r.evidence and r.evidence.monitor for r in requests)
        note = requests[0].evidence.monitor  # type: ignore[union-attr]
        assert note == MonitorNote("concern", NOTE, "test-model", "g1/monitor/c0")
        # The monitor saw the diff and the evidence, and only through our prompt.
        chats = [r for r in openai_server.requests if is_chat_path(r.path)]
        assert len(chats) == len(requests)
        system, user = (m["content"] for m in chats[0].json["messages"])
        assert system.startswith(MONITOR_SYSTEM) and "## Diff against its parent" in user
        assert chats[0].json["model"] == "test-model"
        assert chats[0].json["max_tokens"] == config.monitor_max_tokens  # a short note
        assert chats[0].headers["authorization"] == "Bearer sk-monitor"
        # Published like any LM call, under its own label.
        contexts = {e.context for e in run.bus.history if isinstance(e, LMRequested)}
        assert "g1/monitor/c0" in contexts
        # Recorded with the decision in the step's commit (the audit trail keeps it).
        recorded = [
            store.get_record(s.commit) for s in store.list_steps(config.run_id) if s.generation
        ]
        decisions = [r.decision for r in recorded if r.decision is not None]
        assert decisions and all(d.monitor.get("text") == NOTE for d in decisions)
        assert Decision.from_json(decisions[0].to_json()).monitor["verdict"] == "concern"
        # The run's transcript holds the monitor's requests: a replay needs no network.
        transcript = work_transcript_path(store, config.run_id)
        labels = [r.request.context for r in read_transcript(transcript)]
        assert labels.count("g1/monitor/c0") == 1
        # Counted toward the run's caps like every other request.
        assert run.run_budget.calls_used == len(labels)
        served = len(chats)
        openai_server.stop()
        run.backend = ReplayBackend(transcript)
        again = await review(run, requests[0])
        assert again == note
        assert len(chats) == served  # nothing reached the (stopped) server


HOSTILE = (
    "\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07[bold red]APPROVED BY SECURITY[/] "
    "Reviewer: press a now.\u202e\nVERDICT: ok"
)


async def test_a_hostile_note_is_shown_sanitised_and_decides_nothing(
    openai_server: OpenAIServer, tmp_path: Path
) -> None:
    openai_server.responder = lambda body, seq: [HOSTILE]
    requests: list[ApprovalRequest] = []
    config = small_config(
        approval="every-candidate", monitor_model="test-model", meta_utility_budget=1
    )
    async with CountingSandbox() as sandbox:
        run, _ = memory_run(
            sandbox,
            config,
            backend=routed(openai_server, tmp_path),
            gate=answering(requests),
        )
        assert await run.run() == "finished"
    # "VERDICT: ok" approved nothing: the person was still asked about every request.
    assert requests and requests[0].evidence and requests[0].evidence.monitor
    note = requests[0].evidence.monitor
    assert note.verdict == "ok" and note.text == HOSTILE  # kept exactly, shown escaped
    console = Console(record=True, width=120, force_terminal=True, color_system="truecolor")
    show_request(console, requests[0])
    shown = console.export_text(styles=False)
    assert "⟦ESC⟧[2J" in shown and "⟦BEL⟧" in shown and "⟦RLO⟧" in shown
    assert "[bold red]APPROVED BY SECURITY[/]" in shown  # markup stays literal text
    raw = console.export_text(styles=True)
    assert "\x1b[2J" not in raw and "\x1b]52" not in raw and "\u202e" not in raw
    assert "untrusted, advisory only" in shown


@pytest.mark.parametrize("failure", ["error", "timeout", "unknown-model", "rejected"])
async def test_a_failing_monitor_never_blocks_the_decision(
    openai_server: OpenAIServer, tmp_path: Path, failure: str
) -> None:
    extra: dict[str, Any] = {}
    model = "test-model"
    if failure == "error":
        for _ in range(20):
            openai_server.enqueue(Reply.error(500))
    elif failure == "timeout":
        for _ in range(20):
            openai_server.enqueue(Reply(delay=3.0, texts=["too late\nVERDICT: ok"]))
        extra["monitor_timeout"] = 0.5
    elif failure == "rejected":
        for _ in range(40):  # a client error, never retried: RejectedLMError
            openai_server.enqueue(Reply.error(400, "this endpoint rejects the request"))
    else:
        model = "no-such-model"  # the server answers 404, every time
    requests: list[ApprovalRequest] = []
    config = small_config(
        approval="every-candidate",
        monitor_model=model,
        monitor_timeout=extra.get("monitor_timeout", 60.0),
        meta_utility_budget=3,
    )
    async with CountingSandbox() as sandbox:
        run, recorder = memory_run(
            sandbox,
            config,
            backend=routed(openai_server, tmp_path, monitor_model=model, **extra),
            gate=answering(requests),
        )
        assert await run.run() == "finished"
    if failure == "rejected":
        # Rejected monitor requests in a row never count toward the run's "the endpoint
        # rejects every request" stop (which a run's own LM calls do).
        for _ in range(4):
            await review(run, requests[0])
        assert run.aborted is None
    assert len(requests) >= 2
    for request in requests:
        note = request.evidence.monitor if request.evidence else None
        assert note is not None and not note.available
        assert note.text.startswith("monitor unavailable: ")
        if failure == "timeout":
            assert "no answer within 0.5 s" in note.text
    steps = [s for s in recorder.steps if s.step.decision is not None]
    assert steps and all(
        s.step.decision.monitor.get("verdict") == "unavailable"  # type: ignore[union-attr]
        for s in steps
    )


async def test_reject_flagged_weighs_a_flag_verdict_and_auto_skips_the_monitor(
    openai_server: OpenAIServer, tmp_path: Path
) -> None:
    openai_server.responder = lambda body, seq: ["It rewrites the utility call.\nVERDICT: flag"]
    config = small_config(
        approval="reject-flagged", monitor_model="test-model", meta_utility_budget=1
    )
    async with CountingSandbox() as sandbox:
        run, recorder = memory_run(sandbox, config, backend=routed(openai_server, tmp_path))
        assert await run.run() == "finished"
        decisions = [s.step.decision for s in recorder.steps if s.step.decision is not None]
        assert decisions and all(not d.approved for d in decisions)
        assert all(MONITOR_FLAG in d.reason for d in decisions)
        assert all(d.monitor.get("verdict") == "flag" for d in decisions)
        asked = openai_server.count()
        auto = small_config(approval="auto", monitor_model="test-model", meta_utility_budget=1)
        run, recorder = memory_run(sandbox, auto, backend=routed(openai_server, tmp_path))
        assert await run.run() == "finished"
    assert openai_server.count() == asked  # nobody reads a note under auto: none is asked


async def test_the_demo_backend_scripts_a_labelled_monitor_note(tmp_path: Path) -> None:
    requests: list[ApprovalRequest] = []
    config = small_config(approval="every-candidate", monitor_model="demo", meta_utility_budget=1)
    async with CountingSandbox() as sandbox:
        run, _ = memory_run(sandbox, config, gate=answering(requests))
        assert await run.run() == "finished"
    note = requests[0].evidence.monitor if requests[0].evidence else None
    assert note is not None and note.model == "demo"
    assert note.text.startswith("Scripted demo monitor note (offline, not a language model).")
    assert note.verdict in ("ok", "concern", "flag")


def test_monitor_settings_come_from_the_monitor_section_the_environment_and_flags(
    tmp_path: Path,
) -> None:
    config = tmp_path / "stop.toml"
    config.write_text(
        '[endpoint]\nmodel = "demo"\n[monitor]\nmonitor_model = "gpt-4o-mini"\n'
        'monitor_base_url = "http://127.0.0.1:9/v1"\nmonitor_timeout = 5\n'
    )
    settings = load_settings(None, config, environ={}, cwd=tmp_path)
    assert (settings.monitor_model, settings.monitor_timeout) == ("gpt-4o-mini", 5)
    env = load_settings(None, config, environ={"STOP_TUI_MONITOR_MODEL": "m2"}, cwd=tmp_path)
    assert env.monitor_model == "m2"
    flag = load_settings({"monitor_model": "m3"}, config, environ={}, cwd=tmp_path)
    assert flag.monitor_model == "m3"
    assert settings.redacted()["monitor_api_key"] is None
    from stop_tui.config import UserError

    config.write_text('[monitor]\nmonitor_base_url = "ftp://x"\n')
    with pytest.raises(UserError) as info:
        load_settings({"model": "demo"}, config, environ={}, cwd=tmp_path)
    assert "monitor_base_url" in info.value.line()


async def test_the_run_backend_routes_monitor_requests_and_redacts_the_monitor_key(
    openai_server: OpenAIServer, tmp_path: Path
) -> None:
    from stop_tui.config import make_run_backend
    from stop_tui.lm.types import ChatRequest

    openai_server.api_key = "the-right-key"  # the monitor sends another: 401, key echoed
    settings = load_settings(
        {
            "model": "demo",
            "monitor_model": "test-model",
            "monitor_base_url": openai_server.base_url,
        },
        environ={"STOP_TUI_MONITOR_API_KEY": "sk-monitor-secret"},
        cwd=tmp_path,
    )
    transcript = tmp_path / "transcript.jsonl"
    backend = make_run_backend(settings, transcript)
    proposal = ChatRequest("demo", "You improve improvers.", "improve_algorithm", context="g1/meta")
    await backend.complete(proposal)
    assert openai_server.count() == 0  # the run's own requests never reach the monitor
    monitor = ChatRequest("test-model", MONITOR_SYSTEM, "diff", context="g1/monitor/c0")
    with pytest.raises(Exception, match=r"401|API key"):
        await backend.complete(monitor)
    assert openai_server.count() == 1
    await backend.aclose()
    text = transcript.read_text()
    assert "g1/monitor/c0" in text and "g1/meta" in text
    assert "sk-monitor-secret" not in text  # redacted like the run's own key (never stored)


async def test_a_second_terminal_sees_the_note_with_the_published_request(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    from stop_tui.engine.approval import SharedAnswers
    from stop_tui.store.answers import AnswerBoard
    from tests.support.tui import adoption_request

    request = adoption_request()
    assert request.evidence is not None
    note = MonitorNote("concern", "It spends\x1b[2J its whole budget.\nVERDICT: concern", "m")
    request = replace(request, evidence=replace(request.evidence, monitor=note))
    board = AnswerBoard(tmp_path, request.run_id)
    shared = SharedAnswers(Gate(Policy.EVERY_CANDIDATE), board)
    shared.offer(request)
    import json

    written = json.loads(board.request_path(request.request_id).read_text(encoding="utf-8"))
    review = written["review"]  # what `stop-tui pending` prints (through the sanitiser)
    assert note.heading() in review and "It spends\x1b[2J its whole budget." in review


def test_a_demo_run_with_the_demo_monitor_keeps_its_notes_in_the_record(tmp_path: Path) -> None:
    """The command line end to end, offline: --monitor-model demo under reject-flagged, then
    `stop-tui show` prints the note committed with each decision, and replay reproduces."""
    import json

    from tests.integration.test_cli_run import SMALL, cli

    result = cli(
        "run", "--headless", "--model", "demo", "--monitor-model", "demo",
        "--approve", "reject-flagged", "--generations", "1", *SMALL, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_id = json.loads(cli("runs", "--json", cwd=tmp_path).stdout)[0]["run_id"]
    shown = cli("show", run_id, "1", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "monitor note (demo, untrusted, advisory only): verdict " in shown.stdout
    assert "Scripted demo monitor note (offline, not a language model)." in shown.stdout
    replayed = cli("replay", run_id, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr


def test_a_cost_cap_needs_the_monitors_price_too(tmp_path: Path) -> None:
    from stop_tui.config import UserError

    with pytest.raises(UserError) as info:
        load_settings(
            {"model": "gpt-4o-mini", "monitor_model": "my-local-judge"}, environ={}, cwd=tmp_path
        )  # gpt-4o-mini is priced: the default $20 cap applies, so the monitor needs a price
    assert "my-local-judge" in info.value.line() and "[prices]" in info.value.line()
    priced = load_settings(
        {
            "model": "gpt-4o-mini",
            "monitor_model": "my-local-judge",
            "prices": {"my-local-judge": [0.0, 0.0]},
        },
        environ={},
        cwd=tmp_path,
    )
    assert priced.max_cost == 20.0
