"""The headless front end: the engine's events as progress bars and log lines.

The same event stream drives the TUI. Under ``--approve ask`` approvals are
asked at the terminal, one at a time; the run keeps going on everything that
does not need a decision.

Everything untrusted (sources, diffs, summaries, flags, reasons, error messages) is
printed through :mod:`stop_tui.untrusted` as ``Text``; no string from the engine is
ever printed with markup on.
"""

from __future__ import annotations

import asyncio
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from stop_tui.engine.approval import ApprovalRequest, Decision, Purpose, human_identity
from stop_tui.engine.audit import review_warnings
from stop_tui.engine.events import (
    ApprovalDecided,
    BudgetExceededEvent,
    CandidateProposed,
    EngineError,
    EvaluationProgress,
    Event,
    GenerationFinished,
    GenerationStarted,
    LMRequested,
    LMResponded,
    MetaUtilityEvaluated,
    Notice,
    RunFinished,
    RunStarted,
    SubscriberFailed,
)
from stop_tui.engine.evidence import Evidence
from stop_tui.engine.loop import StopRun
from stop_tui.untrusted import rich_diff, rich_text, unified
from stop_tui.view.run_model import RunModel
from stop_tui.view.text import fmt, model_label


class HeadlessView:
    def __init__(self, run: StopRun, console: Console | None = None, *, ask: bool = False) -> None:
        self.run = run
        self.console = console or Console(highlight=False)
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
        self._approvals: asyncio.Queue[ApprovalRequest] = asyncio.Queue()
        run.bus.on(self.on_event)
        if ask:
            run.gate.listeners.append(self._approvals.put_nowait)

    # -- approvals at the terminal

    async def approvals(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            request = await self._approvals.get()
            if not request.pending:
                continue
            self.progress.stop()
            try:
                self.show_request(request)
                candidate = request.purpose is Purpose.CANDIDATE
                answer = await loop.run_in_executor(None, self._prompt, candidate)
            finally:
                self.progress.start()
            if answer.startswith("a"):
                request.resolve(Decision.approve(human_identity()))
            elif answer.startswith("g") and request.purpose is Purpose.CANDIDATE:
                self.run.gate.approve_rest_of_generation(request.generation)
                request.resolve(
                    Decision.approve(human_identity(), "approved the rest of this generation")
                )
            else:
                reason = answer.partition(" ")[2].strip()
                request.resolve(Decision.reject(human_identity(), reason))

    def _prompt(self, candidate: bool) -> str:
        return terminal_answer(candidate)

    def show_request(self, request: ApprovalRequest) -> None:
        show_request(self.console, request)

    # -- events

    def on_event(self, event: Event) -> None:
        self.model.apply(event)
        if isinstance(event, RunStarted):
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
        elif isinstance(event, GenerationStarted):
            self.console.print(
                Text.assemble((f"generation {event.generation}", "bold"), " started")
            )
        elif isinstance(event, CandidateProposed):
            line = rich_text(f"  candidate {event.index}: {event.summary}")
            if event.flags:
                line.append_text(rich_text(f" flags: {'; '.join(event.flags)}", "red"))
            self.console.print(line)
        elif isinstance(event, ApprovalDecided):
            if not event.approved or not event.by.startswith("policy:"):
                verdict = "approved" if event.approved else "rejected"
                why = f" ({event.reason})" if event.reason else ""
                self.console.print(rich_text(f"  {verdict} by {event.by}{why}"))
        elif isinstance(event, EvaluationProgress):
            self.progress.update(self._test_bar, completed=event.done, total=event.total)
        elif isinstance(event, MetaUtilityEvaluated):
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
        elif isinstance(event, GenerationFinished):
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
        elif isinstance(event, LMRequested):
            self._lm_status()
        elif isinstance(event, LMResponded):
            self._lm_status()
            self.progress.advance(self._lm_bar)
            if event.error:
                # Endpoint text is untrusted: printed as plain text, never as markup.
                line = Text("  LM request failed ", style="red")
                line.append(f"({event.context}): {visible(event.error)}", style="")
                self.console.print(line)
        elif isinstance(event, Notice):
            line = Text("notice: ", style="yellow")
            line.append(visible(event.message))
            self.console.print(line)
        elif isinstance(event, BudgetExceededEvent):
            if event.budget.startswith("run:"):
                self.console.print(
                    Text.assemble(("run budget reached: ", "bold red"), rich_text(event.message))
                )
        elif isinstance(event, EngineError):
            self.console.print(Text.assemble(("error: ", "bold red"), rich_text(event.message)))
        elif isinstance(event, SubscriberFailed):
            self.console.print(
                rich_text(
                    f"display error in {event.subscriber} on {event.event_kind}: {event.error} "
                    "(the run goes on; nothing was lost)",
                    "yellow",
                )
            )
        elif isinstance(event, RunFinished):
            self.progress.stop()

    def _lm_status(self) -> None:
        m = self.model
        cost = f"${m.cost:.4f}" if m.cost_known else "cost unknown"
        self.progress.update(
            self._lm_bar,
            description=f"LM calls (in flight {m.in_flight_total}, {m.tokens:,} tokens, {cost})",
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


def terminal_answer(candidate: bool) -> str:
    question = "approve [a], reject [r REASON]"
    keys: tuple[str, ...] = ("a", "r")
    if candidate:
        question += ", approve the rest of this generation [g]"
        keys = ("a", "r", "g")
    while True:
        try:
            line = input(question + ": ")
        except EOFError:
            return "r no terminal answer (end of input)"
        line = line.strip()
        if line[:1].lower() in keys:
            return line[:1].lower() + line[1:]


def visible(text: str) -> str:
    """Untrusted ``text`` (an endpoint's message) on one line, through the sanitiser."""
    from stop_tui.untrusted import visible as sanitised

    return " ".join(sanitised(text).split("\n"))


async def drive(
    run: StopRun, *, ask: bool, console: Console | None = None
) -> tuple[str, HeadlessView]:
    view = HeadlessView(run, console, ask=ask)
    approvals = asyncio.ensure_future(view.approvals()) if ask else None
    view.progress.start()
    try:
        status = await run.run()
    finally:
        view.progress.stop()
        if approvals is not None:
            approvals.cancel()
    return status, view


def interactive() -> bool:
    return sys.stdin.isatty()
