"""The headless front end: the engine's events as progress bars and log lines.

The bars (generations, meta-utility tests, LM calls, and one line for the LM
requests streaming now: context, tokens so far, seconds) are drawn only on a terminal;
piped or redirected output gets the log lines alone.

The same event stream drives the TUI. Under ``--approve ask`` approvals are
asked at the terminal, one at a time; the run keeps going on everything that
does not need a decision.

Everything untrusted (sources, diffs, summaries, flags, reasons, error messages) is
printed through :mod:`stop_tui.untrusted` as ``Text``; no string from the engine is
ever printed with markup on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import sys
import termios
import threading
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from stop_tui.engine import events
from stop_tui.engine.approval import (
    ApprovalRequest,
    Decision,
    Gate,
    Purpose,
    SharedAnswers,
    human_identity,
)
from stop_tui.engine.audit import review_warnings
from stop_tui.engine.evidence import Evidence, MonitorNote
from stop_tui.engine.loop import StopRun
from stop_tui.store.answers import AnswerBoard
from stop_tui.untrusted import rich_diff, rich_text, unified
from stop_tui.view.run_model import RunModel
from stop_tui.view.text import fmt, fmt_stream, model_label


class HeadlessView:
    def __init__(
        self,
        run: StopRun,
        console: Console | None = None,
        *,
        ask: bool = False,
        shared: SharedAnswers | None = None,
        workspace: str = "",
    ) -> None:
        self.run = run
        self.shared = shared  # the run's requests are answerable from other processes too
        self.workspace = workspace
        self.console = console or Console(highlight=False)
        self.prompt = TerminalPrompt(self.console)
        self.ask = ask
        self.model = RunModel.of_config(run.config)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
        )
        self._gen_bar = self.progress.add_task("generations", total=run.config.generations)
        self._test_bar = self.progress.add_task(
            "meta-utility tests", total=run.config.meta_utility_tests
        )
        self._lm_bar = self.progress.add_task("LM calls (in flight 0)", total=None)
        # requests streaming of those in flight, their progress in the description
        self._stream_bar = self.progress.add_task("LM streaming", total=None, visible=False)
        self._approvals: asyncio.Queue[ApprovalRequest] = asyncio.Queue()
        run.bus.on(self.on_event)
        if ask:
            run.gate.listeners.append(self._approvals.put_nowait)

    # -- approvals at the terminal

    async def approvals(self) -> None:
        while True:
            request = await self._approvals.get()
            await self.prompt.ready()
            if not request.pending:
                continue
            self.progress.stop()
            try:
                self.show_request(request)
                answer = await self.prompt.ask(request, request.request_id)
            finally:
                self.progress.start()
            if answer is None:
                continue
            if not resolve(request, answer, self.run.gate):
                self.prompt.lost(request, request.request_id)

    def stop_prompting(self) -> None:
        self.prompt.stop()

    def show_request(self, request: ApprovalRequest) -> None:
        show_request(self.console, request)
        if self.shared is not None and request.request_id in self.shared.offered:
            data = self.shared.offered[request.request_id][1]
            where = f" --workspace {self.workspace}" if self.workspace else ""
            self.console.print(
                rich_text(
                    f"or from another terminal: stop-tui answer {self.run.run_id} "
                    f"{request.request_id} approve|reject --sha256 {data['source_sha256']}"
                    f"{where}",
                    "dim",
                )
            )

    # -- events

    def on_event(self, event: events.Event) -> None:
        self.model.apply(event)
        if isinstance(event, events.RunStarted):
            resumed = (
                f", resuming after generation {event.resumed_from_generation}"
                if event.resumed_from_generation
                else ""
            )
            self.console.print(
                Text.assemble(
                    "run ",
                    rich_text(event.run_id, "bold"),
                    rich_text(
                        f": task {event.task}, model {model_label(event.model)}, "
                        f"{event.generations} generations{resumed}"
                    ),
                )
            )
            self.progress.update(self._gen_bar, completed=event.resumed_from_generation)
        elif isinstance(event, events.GenerationStarted):
            self.console.print(
                Text.assemble((f"generation {event.generation}", "bold"), " started")
            )
        elif isinstance(event, events.CandidateProposed):
            line = rich_text(f"  candidate {event.index}: {event.summary}")
            if event.flags:
                line.append_text(rich_text(f" flags: {'; '.join(event.flags)}", "red"))
            self.console.print(line)
        elif isinstance(event, events.ApprovalDecided):
            if not event.approved or not event.by.startswith("policy:"):
                verdict = "approved" if event.approved else "rejected"
                why = f" ({event.reason})" if event.reason else ""
                self.console.print(rich_text(f"  {verdict} by {event.by}{why}"))
        elif isinstance(event, events.EvaluationProgress):
            self.progress.update(self._test_bar, completed=event.done, total=event.total)
        elif isinstance(event, events.MetaUtilityEvaluated):
            if event.index is None:
                if event.generation == 0:
                    self.console.print(
                        Text(
                            f"  seed improver: meta-utility {fmt(event.meta_utility)} "
                            f"(test {fmt(event.test_meta_utility)})"
                        )
                    )
            else:
                self.console.print(
                    Text(
                        f"  candidate {event.index}: meta-utility {fmt(event.meta_utility)} "
                        f"(tests {', '.join(f'{v:.2f}' for v in event.per_test)})"
                    )
                )
        elif isinstance(event, events.GenerationFinished):
            self.progress.advance(self._gen_bar)
            if event.adopted:
                self.console.print(
                    Text.assemble(
                        (f"generation {event.generation}: adopted", "bold green"),
                        f", meta-utility {fmt(event.meta_utility)} "
                        f"(test {fmt(event.test_meta_utility)})",
                    )
                )
            else:
                self.console.print(
                    Text.assemble(
                        (f"generation {event.generation}: kept the previous improver", "yellow"),
                        rich_text(f" ({event.reason})"),
                    )
                )
        elif isinstance(event, events.LMProgress):
            self._stream_status()
        elif isinstance(event, events.LMRequested):
            self._lm_status()
        elif isinstance(event, events.LMResponded):
            self._lm_status()
            self._stream_status()
            self.progress.advance(self._lm_bar)
            if event.error:
                # Endpoint text is untrusted: printed as plain text, never as markup.
                line = Text("  LM request failed ", style="red")
                line.append(f"({event.context}): {visible(event.error)}", style="")
                self.console.print(line)
        elif isinstance(event, events.Notice):
            line = Text("notice: ", style="yellow")
            line.append(visible(event.message))
            self.console.print(line)
        elif isinstance(event, events.BudgetExceededEvent):
            if event.budget.startswith("run:"):
                self.console.print(
                    Text.assemble(("run budget reached: ", "bold red"), rich_text(event.message))
                )
        elif isinstance(event, events.EngineError):
            self.console.print(Text.assemble(("error: ", "bold red"), rich_text(event.message)))
        elif isinstance(event, events.SubscriberFailed):
            self.console.print(
                rich_text(
                    f"display error in {event.subscriber} on {event.event_kind}: {event.error} "
                    "(the run goes on; nothing was lost)",
                    "yellow",
                )
            )
        elif isinstance(event, events.RunFinished):
            self.progress.stop()

    def _lm_status(self) -> None:
        m = self.model
        cost = f"${m.cost:.4f}" if m.cost_known else "cost unknown"
        self.progress.update(
            self._lm_bar,
            description=f"LM calls (in flight {m.in_flight_total}, {m.tokens:,} tokens, {cost})",
        )

    def _stream_status(self) -> None:
        streaming = self.model.streaming()
        shown = " · ".join(fmt_stream(s.context, s.tokens, s.elapsed) for s in streaming[:3])
        more = f" · +{len(streaming) - 3} more" if len(streaming) > 3 else ""
        self.progress.update(
            self._stream_bar,
            description=f"LM streaming {shown}{more}",
            completed=len(streaming),
            total=max(len(streaming), self.model.in_flight_total),
            visible=bool(streaming),
        )

    def summary_table(self) -> Table:
        table = Table(title=rich_text(f"run {self.run.run_id}"))
        for column in (
            "generation",
            "meta-utility",
            "test",
            "change",
            "candidates",
            "approved",
            "rejected",
            "outcome",
        ):
            table.add_column(column, justify="right" if column != "outcome" else "left")
        outcomes = {"seed": "seed", "adopted": "adopted", "kept": "kept previous: {reason}"}
        for generation in sorted(self.model.rows):
            row = self.model.rows[generation]
            change = row.change
            table.add_row(
                str(generation),
                fmt(row.meta_utility),
                fmt(row.test_meta_utility),
                "" if change is None else f"{change:+.3f}",
                str(row.proposed),
                str(row.approved),
                str(row.rejected),
                rich_text(outcomes.get(row.status, "unfinished").format(reason=row.reason)),
            )
        return table


def show_request(console: Console, request: ApprovalRequest, label: str = "") -> None:
    """An approval request at the terminal: what, the diff, the audit, the allowances."""
    what = "candidate" if request.index is not None else "adoption of the returned improver"
    where = f"{label}: " if label else ""
    title = (
        f"approval: {where}generation {request.generation}, {what} "
        f"{request.index if request.index is not None else ''}"
    )
    if label:  # a rule would cut a long label to the terminal's width
        console.rule()
        console.print(rich_text(title, "bold"))
    else:
        console.rule(rich_text(title))
    diff = unified(request.parent_source, request.source, "parent improver", "candidate")
    console.print(rich_diff(diff, empty="(no change)"))
    for warning in review_warnings(request.source):
        console.print(Text(warning, style="bold red"))  # our words, escapes already made
    if request.evidence is not None:
        console.print(Text("scores:", style="bold"))
        for line in request.evidence.lines():
            console.print(rich_text("  " + line))
        print_behaviour(console, request.evidence)
    print_monitor(console, request.evidence.monitor if request.evidence else None)
    if request.flags:
        console.print(Text("audit flags:", style="bold red"))
        for flag in request.flags:
            console.print(rich_text(f"  • {flag}", "red"))
    else:
        console.print(Text("audit: nothing flagged", style="green"))
    allowed = ", ".join(f"{k}: {v}" for k, v in request.allowances.items())
    console.print(rich_text(f"if approved it may use: {allowed}", "dim"))


def print_behaviour(console: Console, evidence: Evidence) -> None:
    """The returned improver's test runs beside its parent's, sharp changes first."""
    child, parent = evidence.behaviour, evidence.parent_behaviour
    if child is None and parent is None:
        return
    console.print(Text("behaviour in its tests (this | parent):", style="bold"))
    for alarm in evidence.alarms:  # may quote words of its prompts
        console.print(rich_text(f"  ⚑ {alarm}", "bold red"))
    mine = dict(child.rows()) if child else {}
    theirs = dict(parent.rows()) if parent else {}
    for key in mine or theirs:
        console.print(Text(f"  {key}: {mine.get(key, '-')} | {theirs.get(key, '-')}"))


def print_monitor(console: Console, note: MonitorNote | None) -> None:
    """The monitor model's note: a heading in fixed words, its text through the sanitiser."""
    if note is None:
        return
    console.print(Text(note.heading(), style="bold magenta" if note.available else "dim"))
    for line in note.text.split("\n"):
        console.print(rich_text("  " + line))


#: Reads one approval line: (is it a candidate, set when the prompt should give up) -> text.
LineReader = Callable[[bool, threading.Event], str]


class TerminalPrompt:
    """Approvals at the terminal, one at a time, for a run's view and a sweep's.

    The line is read on a daemon thread that polls the terminal, so a request decided
    elsewhere first (another terminal through :class:`SharedAnswers`, or a policy) stops
    its prompt, says so, and what was typed for it is discarded, never applied to the
    next request."""

    def __init__(self, console: Console, read: LineReader | None = None) -> None:
        self.console = console
        self.read: LineReader = read or terminal_answer
        self._cancel = threading.Event()  # set: the prompt being read stops waiting
        self._line: asyncio.Future[str] | None = None

    async def ready(self) -> None:
        """Wait for a prompt that was answered elsewhere but is still reading (stdin that
        cannot be polled) to return; nothing it read is used."""
        if self._line is not None and not self._line.done():
            await self._line
        self._line = None

    async def ask(self, request: ApprovalRequest, label: str) -> str | None:
        """The line typed for ``request``, or None when it was decided elsewhere first."""
        await self.ready()
        line = self._line = self._start(request.purpose is Purpose.CANDIDATE)
        either: set[asyncio.Future[Any]] = {line, request.decided}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not line.done():
            self.stop()  # the prompt returns unless stdin cannot be polled
            self.console.print(rich_text(f"\n  {label} was answered elsewhere", "yellow"))
            return None
        self._line = None
        return line.result()

    def lost(self, request: ApprovalRequest, label: str) -> None:
        """Say that the answer typed for ``request`` lost to one given first elsewhere."""
        self.console.print(
            rich_text(f"  your answer was not recorded: {label} was already {request.lost_to}",
                      "yellow")
        )  # fmt: skip

    def stop(self) -> None:
        self._cancel.set()

    def _start(self, candidate: bool) -> asyncio.Future[str]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        self._cancel = cancel = threading.Event()

        def read() -> None:
            text: str | None = None
            error: BaseException | None = None
            try:
                text = self.read(candidate, cancel)
            except BaseException as exc:  # handed to the event loop
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, text, error)

        threading.Thread(target=read, name="approval-prompt", daemon=True).start()
        return future


def _settle(future: asyncio.Future[str], text: str | None, exc: BaseException | None) -> None:
    if future.done():  # the loop closed over it
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(text or "")


def terminal_answer(candidate: bool, cancelled: threading.Event | None = None) -> str:
    """A line answering an approval at the terminal (``""`` when ``cancelled`` first).

    With ``cancelled``, the line is read only once the terminal has one (polled), so a
    prompt answered elsewhere leaves no read holding stdin when the process exits."""
    question = "approve [a], reject [r REASON]"
    keys: tuple[str, ...] = ("a", "r")
    if candidate:
        question += ", approve the rest of this generation [g]"
        keys = ("a", "r", "g")
    if cancelled is not None:
        _discard_typeahead()  # a line typed for an earlier request never answers this one
    while True:
        prompt = question + ": "
        if cancelled is not None:
            print(prompt, end="", flush=True)
            prompt = ""
            if _line_ready(cancelled) is False:
                return ""
        try:
            line = input(prompt)
        except EOFError:
            return "r no terminal answer (end of input)"
        line = line.strip()
        if line[:1].lower() in keys:
            return line[:1].lower() + line[1:]


def _discard_typeahead() -> None:
    with contextlib.suppress(AttributeError, OSError, ValueError, termios.error):
        fd = sys.stdin.fileno()
        if os.isatty(fd):
            termios.tcflush(fd, termios.TCIFLUSH)


def _line_ready(cancelled: threading.Event) -> bool | None:
    """True when stdin has input, False when cancelled first, None when it cannot be polled."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    while not cancelled.is_set():
        try:
            readable, _, _ = select.select([fd], [], [], 0.2)
        except (OSError, ValueError):
            return None
        if readable:
            return True
    return False


def resolve(request: ApprovalRequest, answer: str, gate: Gate | None) -> bool:
    """Decide ``request`` by a :func:`terminal_answer`: approve, approve the rest of this
    generation (a candidate; ``gate``, when known, then approves its later candidates), or
    reject with the reason given. False when another answerer decided it first."""
    if answer.startswith("a"):
        return request.resolve(Decision.approve(human_identity()))
    if answer.startswith("g") and request.purpose is Purpose.CANDIDATE:
        decided = request.resolve(
            Decision.approve(human_identity(), "approved the rest of this generation")
        )
        if decided and gate is not None:
            gate.approve_rest_of_generation(request.generation)
        return decided
    reason = answer.partition(" ")[2].strip()
    return request.resolve(Decision.reject(human_identity(), reason))


def visible(text: str) -> str:
    """Untrusted ``text`` (an endpoint's message) on one line, through the sanitiser."""
    from stop_tui.untrusted import visible as sanitised

    return " ".join(sanitised(text).split("\n"))


async def drive(
    run: StopRun,
    *,
    ask: bool,
    console: Console | None = None,
    board: AnswerBoard | None = None,
    workspace: str = "",
) -> tuple[str, HeadlessView]:
    """Run with the headless view. ``board``: the run's requests are also answerable with
    ``stop-tui answer`` (whichever answer comes first is the decision)."""
    view = HeadlessView(run, console, ask=ask)
    shared = SharedAnswers(run.gate, board) if ask and board is not None else None
    tasks = []
    if shared is not None:
        view.shared, view.workspace = shared, workspace
        run.bus.on(shared.on_event)
        tasks.append(asyncio.ensure_future(shared.watch()))
    if ask:
        tasks.append(asyncio.ensure_future(view.approvals()))
    view.progress.start()
    try:
        status = await run.run()
    finally:
        view.progress.stop()
        view.stop_prompting()
        for task in tasks:
            task.cancel()
        if shared is not None:
            shared.close()
    return status, view


def interactive() -> bool:
    return sys.stdin.isatty()
