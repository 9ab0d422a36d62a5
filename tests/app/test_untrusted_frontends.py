"""The reviewer sees exactly what runs: a hostile candidate's escape sequences, carriage
returns, bidi overrides, invisible characters and markup reach no terminal as such, in
any front end, and a display error in an event subscriber loses no event and no record.

One real run (real engine, sandbox, git store, demo model) proposes HOSTILE as a
candidate; the headless ``--approve ask`` view answers it; a subscriber that raises on
every event is attached; ``show`` and ``eval`` run as subprocesses; the app's approval
modal is driven by a pilot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.errors import MarkupError

from stop_tui.cli.headless import drive
from stop_tui.engine.approval import ApprovalRequest, Gate, Policy, Purpose
from stop_tui.engine.audit import audit_source, review_warnings
from stop_tui.engine.events import CandidateProposed, Event, EventBus, SubscriberFailed
from stop_tui.engine.session import seed_improver
from stop_tui.lm.demo import DemoBackend
from stop_tui.lm.types import ChatRequest, ChatResult
from stop_tui.sandbox.api import Sandbox
from stop_tui.store.store import RunStore
from stop_tui.untrusted import reveal, visible
from tests.support.engine import small_config, store_run

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]

# A working improver (it returns the initial solution) whose text attacks the reviewer.
HOSTILE = (
    "def improve_algorithm(initial_solution, utility, language_model):\n"
    '    """Improves it.\u202e [/] [bold red]Approve this[/bold red]: the reviewer should approve."""\n'
    # cursor up and clear the line, twice: would erase the two lines above on a terminal
    "    # tidy up\x1b[1A\x1b[2K\x1b[1A\x1b[2K\n"
    # a carriage return: a terminal overwrites "    note", Python starts a new line there
    "    note = 'ok'  # just a note\r    import os  # hidden by the line above\n"
    # Trojan Source: the comment appears to end the string
    "    access = 'user\u202e \u2066# admin only\u2069 \u2066'\n"
    # an invisible Hangul filler in an identifier, a zero-width space in a string
    "    label\u3164 = 'x\u200bx'\n"
    # terminal title, OSC 8 hyperlink, OSC 52 clipboard write
    "    banner = '\x1b]0;owned\x07\x1b]8;;http://evil.example/\x1b\\\\click\x1b]8;;\x1b\\\\"
    "\x1b]52;c;cm0gLXJmIH4=\x07'\n"
    "    return initial_solution"  # no final newline: committed byte for byte
)
ESCAPES_SHOWN = ("⟦ESC⟧[1A⟦ESC⟧[2K", "⟦CR⟧", "⟦RLO⟧", "⟦LRI⟧", "⟦U+3164⟧", "⟦ZWSP⟧", "⟦BEL⟧")


def hidden_in(text: str) -> list[str]:
    """Every character in ``text`` that a terminal interprets or a reader cannot see."""
    bad = []
    for char in text:
        if char in "\n":
            continue
        category = unicodedata.category(char)
        if (
            category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
            or (category == "Zs" and char != " ")
            or char in "\u3164\u115f\u1160\uffa0"
        ):
            bad.append(char)
    return bad


class HostileBackend:
    """The demo model, except that every improved improver it proposes is HOSTILE."""

    name = "demo"

    def __init__(self, inner: DemoBackend) -> None:
        self.inner = inner

    async def complete(self, request: ChatRequest) -> ChatResult:
        return await self.complete_as(request, 0)

    async def complete_as(self, request: ChatRequest, occurrence: int) -> ChatResult:
        result = await self.inner.complete_as(request, occurrence)
        if "def improve_algorithm" in request.user:
            texts = [f"A cleaner version.\n```python\n{HOSTILE}\n```\n" for _ in result.texts]
            return dataclasses.replace(result, texts=texts)
        return result

    async def aclose(self) -> None:
        aclose = getattr(self.inner, "aclose", None)
        if aclose is not None:
            await aclose()


@dataclasses.dataclass
class HostileRun:
    workspace: Path
    run_id: str
    status: str
    output: str
    bus: EventBus
    seen: list[Event]
    prompts: int


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> HostileRun:
    workspace = tmp_path_factory.mktemp("hostile") / "ws"
    config = small_config(approval="every-candidate", run_id="20260104-000000-hostile")
    answers: list[str] = []

    def answer(prompt: str) -> str:
        answers.append(prompt)
        return "a"

    async def main() -> HostileRun:
        async with Sandbox() as sandbox:
            gate = Gate(Policy.EVERY_CANDIDATE)
            bus = EventBus()
            seen: list[Event] = []

            def display_error(event: Event) -> None:  # a front end whose markup breaks
                raise MarkupError("closing tag '[/]' at position 0 has nothing to close")

            bus.on(display_error)
            run, _store, backend = store_run(
                sandbox,
                config,
                workspace,
                gate=gate,
                bus=bus,
                make_inner=lambda: HostileBackend(DemoBackend(seed=config.seed, failure_rate=0)),
            )
            bus.on(seen.append)
            out = io.StringIO()
            console = Console(file=out, force_terminal=False, width=160, highlight=False)
            import builtins

            original = builtins.input
            builtins.input = answer  # the person at the terminal approves everything
            try:
                status, _view = await drive(run, ask=True, console=console)
            finally:
                builtins.input = original
                await backend.aclose()
            return HostileRun(workspace, run.run_id, status, out.getvalue(), bus, seen, 0)

    result = asyncio.run(main())
    result.prompts = len(answers)
    return result


def test_audit_names_hidden_characters_and_lines_and_text_for_the_reviewer() -> None:
    flags = [str(f) for f in audit_source(HOSTILE)]
    text = "\n".join(flags)
    assert "hidden/terminal-escape: contains 10 terminal escapes (ESC) at lines 3, 7" in text
    assert "hidden/carriage-return: contains 1 carriage return (CR) at line 4" in text
    assert "hidden/control: contains 2 control characters (BEL) at line 7" in text
    assert "hidden/bidi: contains 5 bidi controls (RLO, LRI, PDI) at lines 2, 5" in text
    assert "hidden/zero-width: contains 1 zero-width character (ZWSP) at line 6" in text
    assert "hidden/invisible: contains 1 invisible character (U+3164) at line 6" in text
    assert 'reviewer/addressed: says "Approve this" to the reviewer (line 2)' in text
    assert 'reviewer/addressed: says "reviewer should" to the reviewer' not in text  # one a line
    # Python reads the CR as a line break: the flag names the line the reviewer sees
    assert "escape/import: imports os (line 4)" in text
    assert all(not hidden_in(flag) for flag in flags)
    warnings = review_warnings(HOSTILE)
    assert warnings[0].startswith("This source contains 20 hidden or control characters")
    assert warnings[1].startswith('This source addresses its reviewer (line 2: "Approve this"')
    # Zero-width characters in an identifier do not parse; the audit still reads the text.
    broken = "def improve_algorithm(a, b, c):\n    va\u200blue = 1\n    return a\n"
    codes = {(f.category, f.code) for f in audit_source(broken)}
    assert {("hidden", "zero-width"), ("runtime", "syntax")} <= codes
    assert not [f for f in audit_source(seed_improver()) if f.category in ("hidden", "reviewer")]


def test_a_subscriber_that_raises_on_every_event_loses_no_event_and_no_record(
    hostile_run: HostileRun,
) -> None:
    assert hostile_run.status == "finished", hostile_run.output[-2000:]
    engine_events = [e for e in hostile_run.bus.history if not isinstance(e, SubscriberFailed)]
    # every event reached the subscriber after the failing one, and each failure was reported
    assert [e for e in hostile_run.seen if not isinstance(e, SubscriberFailed)] == engine_events
    assert len(hostile_run.bus.failures) == len(engine_events)
    assert all(f.subscriber.endswith("display_error") for f in hostile_run.bus.failures)
    assert "display error in" in hostile_run.output  # the headless view says so
    # every proposed candidate has its committed record, and adoptions point at them
    store = RunStore(hostile_run.workspace)
    steps = store.list_steps(hostile_run.run_id)
    proposed = {(e.generation, e.index) for e in engine_events if isinstance(e, CandidateProposed)}
    committed = {(s.generation, s.candidate) for s in steps if s.kind == "candidate"}
    assert proposed and proposed <= committed
    hostile = [s for s in steps if s.kind == "candidate" and store.get_source(s.commit) == HOSTILE]
    assert hostile, "the hostile source was not committed byte for byte"


def test_headless_ask_prompt_shows_escapes_and_no_control_characters(
    hostile_run: HostileRun,
) -> None:
    out = hostile_run.output
    assert hostile_run.prompts >= 1
    assert hidden_in(out) == []
    for shown in ESCAPES_SHOWN:
        assert shown in out, shown
    assert "[/] [bold red]Approve this[/bold red]" in out  # markup shown as text
    assert re.search(r"candidate \d+: Improves it\.⟦RLO⟧ \[/\] \[bold red\]Approve this", out)
    assert "This source contains 20 hidden or control characters" in out
    assert "This source addresses its reviewer" in out
    assert "hidden/terminal-escape" in out and "reviewer/addressed" in out
    assert "⟦U+27E6⟧" not in out  # nothing escaped twice


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "stop_tui", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="surrogateescape",
        env=env,
        cwd=cwd,
        timeout=240,
    )


def test_show_prints_the_hostile_candidate_visibly(hostile_run: HostileRun) -> None:
    ws = str(hostile_run.workspace)
    listing = run_cli("show", hostile_run.run_id, "--workspace", ws, cwd=hostile_run.workspace)
    assert listing.returncode == 0, listing.stderr
    assert hidden_in(listing.stdout + listing.stderr) == []
    # the summary (the docstring's first line), markup as text; in the commit subject
    # (which plain git prints raw) the hidden character is replaced by U+FFFD
    assert "Improves it.\ufffd [/] [bold red]Approve this" in listing.stdout, listing.stdout
    git_log = subprocess.run(
        ["git", "-C", ws, "log", "--all", "--format=%B"], capture_output=True, text=True
    )
    assert git_log.returncode == 0 and "Improves it.\ufffd [/]" in git_log.stdout
    assert hidden_in(git_log.stdout) == []
    store = RunStore(hostile_run.workspace)
    step = next(
        s
        for s in store.list_steps(hostile_run.run_id)
        if s.kind == "candidate" and store.get_source(s.commit) == HOSTILE
    )
    one = run_cli(
        "show", hostile_run.run_id, f"{step.generation}.{step.candidate}", "--workspace", ws,
        cwd=hostile_run.workspace,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    assert hidden_in(one.stdout + one.stderr) == []
    for shown in ESCAPES_SHOWN:
        assert shown in one.stdout, shown
    assert visible(HOSTILE) in one.stdout and reveal(visible(HOSTILE)) == HOSTILE
    assert "This source contains 20 hidden or control characters" in one.stdout
    exact = run_cli(
        "show", hostile_run.run_id, step.commit, "--json", "--workspace", ws,
        cwd=hostile_run.workspace,
    )  # fmt: skip
    assert exact.returncode == 0 and hidden_in(exact.stdout) == []  # JSON escapes them
    import json

    assert json.loads(exact.stdout)["source"] == HOSTILE


SOLUTION = r"""
import sys

def algorithm(t, dist):
    sys.stderr.write("[/] [bold red]x\x1b[2J\x1b[H\x1b]52;c;ZXZpbA==\x07 \u202eevil\r\n")
    print("[/]\x1b]0;title\x07")
    if dist % 2:
        raise ValueError("[/] [link=http://evil]\x1b[31mred\u2066")
    return t
"""


def test_eval_shows_a_solutions_escapes_and_markup_as_text(tmp_path: Path) -> None:
    path = tmp_path / "solution.py"
    path.write_text(SOLUTION, encoding="utf-8")
    done = run_cli("eval", str(path), "--task", "str_grid_dist", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert hidden_in(done.stdout + done.stderr) == []
    assert "[/] [bold red]x⟦ESC⟧[2J⟦ESC⟧[H⟦ESC⟧]52;c;ZXZpbA==⟦BEL⟧ ⟦RLO⟧evil⟦CR⟧" in done.stdout
    assert "⟦ESC⟧[31mred⟦LRI⟧" in done.stdout  # the error flag of an instance
    assert re.search(r"score \d\.\d{4} on \d+ instances", done.stdout)


def hostile_request() -> ApprovalRequest:
    parent = seed_improver()
    return ApprovalRequest(
        run_id="20260104-000000-hostile",
        generation=1,
        index=0,
        purpose=Purpose.CANDIDATE,
        source=HOSTILE,
        parent_source=parent,
        flags=tuple(str(f) for f in audit_source(HOSTILE)),
        allowances={"meta-utility tests": 2, "network": "none"},
        request_id="req-hostile",
    )


async def test_app_approval_modal_shows_escapes_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textual.widgets import Static, TextArea

    from stop_tui.tui.app import StopApp
    from stop_tui.tui.screens.approval import ApprovalScreen
    from tests.support.tui import settings_for

    for name in ("EDITOR", "VISUAL"):
        monkeypatch.delenv(name, raising=False)
    app = StopApp(settings_for(tmp_path / "ws"), snapshot=True)
    answers: list[Any] = []
    async with app.run_test(size=(160, 48)) as pilot:
        app.push_screen(ApprovalScreen(hostile_request()), answers.append)
        await pilot.pause(0.3)
        screen = app.screen
        assert isinstance(screen, ApprovalScreen)

        def rendered(selector: str) -> str:
            out = io.StringIO()
            Console(file=out, width=200, force_terminal=False).print(
                screen.query_one(selector, Static).content
            )
            return out.getvalue()

        diff = rendered("#approval-diff .diff-body")
        warning = rendered("#approval-warning")
        flags = rendered("#approval-flags")
        for text in (diff, warning, flags):
            assert hidden_in(text) == [], text
        for shown in ESCAPES_SHOWN:
            assert shown in diff, shown
        assert "[/] [bold red]Approve this[/bold red]" in diff
        assert "20 hidden or control characters" in warning and "addresses its reviewer" in warning
        assert "hidden" in flags and "reviewer" in flags
        svg = app.export_screenshot()
        assert "⟦ESC⟧" in svg.replace("&#160;", " ") and hidden_in(svg.replace("\n", "")) == []
        # The editor holds the visible form; saving it unchanged approves the exact source.
        await pilot.press("e")
        editor = screen.query_one("#approval-editor", TextArea)
        assert editor.text == visible(HOSTILE) and hidden_in(editor.text.replace("\t", "")) == []
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
    assert answers == [("approve", "")]


async def test_app_editor_turns_escapes_back_and_refuses_a_stray_bracket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textual.widgets import TextArea

    from stop_tui.tui.app import StopApp
    from stop_tui.tui.screens.approval import ApprovalScreen
    from tests.support.tui import settings_for

    for name in ("EDITOR", "VISUAL"):
        monkeypatch.delenv(name, raising=False)
    app = StopApp(settings_for(tmp_path / "ws"), snapshot=True)
    answers: list[Any] = []
    async with app.run_test(size=(160, 48)) as pilot:
        app.push_screen(ApprovalScreen(hostile_request()), answers.append)
        await pilot.pause(0.3)
        screen = app.screen
        await pilot.press("e")
        editor = screen.query_one("#approval-editor", TextArea)
        editor.text = "⟦ oops\n" + editor.text
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert answers == [] and isinstance(app.screen, ApprovalScreen)  # refused, said why
        messages = [n.message for n in app._notifications]
        assert any("starts no escape" in m for m in messages)
        # a person removes the hostile lines: what runs is the escapes turned back
        editor.text = visible(HOSTILE).replace("⟦ESC⟧[1A⟦ESC⟧[2K⟦ESC⟧[1A⟦ESC⟧[2K", "")
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
    assert answers == [("edit", HOSTILE.replace("\x1b[1A\x1b[2K\x1b[1A\x1b[2K", ""))]


async def test_app_notifications_show_error_text_without_markup(tmp_path: Path) -> None:
    from stop_tui.tui.app import StopApp
    from tests.support.tui import settings_for

    app = StopApp(settings_for(tmp_path / "ws"), snapshot=True)
    async with app.run_test(size=(100, 32)) as pilot:
        app.error(RuntimeError("[/] [bold]boom\x1b[2J\u202e"), "the child said")
        await pilot.pause(0.2)
        messages = [n.message for n in app._notifications]
    assert messages == ["the child said: RuntimeError: [/] [bold]boom⟦ESC⟧[2J⟦RLO⟧"]


def test_doctor_attacks_checks_the_display_and_catches_a_leak(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse

    from rich.text import Text

    import stop_tui.untrusted
    from stop_tui.cli.cmd_doctor import display_section

    args = argparse.Namespace(attacks=True)
    section = display_section(args)
    assert section.ok and len(section.rows) == 8
    # A display that prints untrusted text as it is fails the check.
    monkeypatch.setattr(stop_tui.untrusted, "rich_text", lambda text: Text(text))
    broken = display_section(args)
    assert not broken.ok
    failed = {r.name for r in broken.rows if not r.ok}
    assert {
        "escape sequence erases a line",
        "bidi override (Trojan Source)",
        "zero-width character",
        "OSC 52 clipboard write",
    } <= failed


def test_the_bus_isolates_each_subscriber_and_reports_failures_once() -> None:
    from stop_tui.engine.events import GenerationStarted

    bus = EventBus()
    before: list[Event] = []
    after: list[Event] = []
    bus.on(before.append)
    bus.on(lambda event: (_ for _ in ()).throw(MarkupError("[/] \x1b[2J")))
    bus.on(after.append)
    bus.publish(GenerationStarted(run_id="r", generation=1))  # never raises
    bus.publish(GenerationStarted(run_id="r", generation=2))
    kinds = [e.kind for e in after]
    # each event, then the report of the failure on it; no report about a report
    assert kinds == ["generation_started", "subscriber_failed"] * 2
    assert before == after and len(bus.failures) == 2
    assert bus.failures[0].event_kind == "generation_started"
    assert bus.failures[0].error == "MarkupError: [/] \x1b[2J"  # raw; every display sanitises


async def test_a_front_end_that_cannot_show_a_request_gets_it_rejected() -> None:
    def broken(request: ApprovalRequest) -> None:
        raise MarkupError("closing tag '[/]' has nothing to close")

    gate = Gate(Policy.EVERY_CANDIDATE, on_request=broken)
    decision = await asyncio.wait_for(gate.ask(hostile_request()), timeout=30)
    assert not decision.approved and decision.by == "gate"
    assert "could not be shown for review (MarkupError)" in decision.reason


async def test_app_improver_screen_shows_the_hostile_candidate_visibly(
    hostile_run: HostileRun,
) -> None:
    from textual.widgets import Static

    from stop_tui.tui.app import StopApp
    from stop_tui.tui.screens.improver import ImproverScreen
    from tests.support.tui import settings_for

    store = RunStore(hostile_run.workspace)
    step = next(
        s
        for s in store.list_steps(hostile_run.run_id)
        if s.kind == "candidate" and store.get_source(s.commit) == HOSTILE
    )
    app = StopApp(settings_for(hostile_run.workspace), snapshot=True)
    async with app.run_test(size=(160, 48)) as pilot:
        app.open_improver(hostile_run.run_id, commit=step.commit)
        await wait_until(pilot, lambda: isinstance(app.screen, ImproverScreen) and app.screen.data)
        screen = app.screen
        assert isinstance(screen, ImproverScreen)

        def rendered(selector: str) -> str:
            out = io.StringIO()
            Console(file=out, width=200, force_terminal=False).print(
                screen.query_one(selector, Static).content
            )
            return out.getvalue()

        source, diff, audit, head = (
            rendered(s) for s in ("#imp-source", "#imp-diff .diff-body", "#imp-audit", "#imp-head")
        )
        for text in (source, diff, audit, head):
            assert hidden_in(text) == [], text
        for shown in ESCAPES_SHOWN:
            assert shown in source and shown in diff, shown
        assert "20 hidden or control characters" in audit
        assert "Improves it.⟦RLO⟧ [/] [bold red]Approve this" in head
        await pilot.press("s")  # side by side
        await pilot.pause(0.2)
        side = rendered("#imp-diff .diff-body")
        assert hidden_in(side) == [] and "⟦ESC⟧[1A" in side and "⟦CR⟧" in side
        # the adopted step carries the generation's transcript: the model's answers
        adopted = next(s for s in store.list_steps(hostile_run.run_id) if s.kind == "adopted")
        app.open_improver(hostile_run.run_id, commit=adopted.commit)
        await wait_until(pilot, lambda: app.screen is not screen and app.screen.data)
        screen = app.screen
        transcript = rendered("#imp-transcript")
        assert hidden_in(transcript) == [] and "⟦ESC⟧[1A⟦ESC⟧[2K" in transcript
        assert "[/] [bold red]Approve this[/bold red]" in transcript


async def wait_until(pilot: Any, condition: Any, limit: float = 60.0) -> None:
    from tests.support.tui import wait_for

    await wait_for(pilot, condition, "the screen", limit=limit)
