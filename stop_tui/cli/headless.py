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
from dataclasses import dataclass, field

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
    RunFinished,
    RunStarted,
    SubscriberFailed,
)
from stop_tui.engine.loop import StopRun
from stop_tui.untrusted import rich_diff, rich_text, unified


@dataclass
class GenerationRow:
    generation: int
    meta_utility: float | None = None
    test_meta_utility: float | None = None
    per_test: tuple[float, ...] = ()
    candidates: int = 0
    approved: int = 0
    rejected: int = 0
    adopted: bool | None = None
    reason: str = ""
    flags: int = 0


@dataclass
class Totals:
    lm_calls: int = 0
    in_flight: int = 0
    tokens: int = 0
    cost: float = 0.0
    cost_known: bool = True
    rows: dict[int, GenerationRow] = field(default_factory=dict)

    def row(self, generation: int) -> GenerationRow:
        return self.rows.setdefault(generation, GenerationRow(generation))


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


class HeadlessView:
    def __init__(self, run: StopRun, console: Console | None = None, *, ask: bool = False) -> None:
        self.run = run
        self.console = console or Console(highlight=False)
        self.ask = ask
        self.totals = Totals()
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
                request.resolve(Decision(True, human_identity()))
            elif answer.startswith("g") and request.purpose is Purpose.CANDIDATE:
                self.run.gate.approve_rest_of_generation(request.generation)
                request.resolve(
                    Decision(True, human_identity(), reason="approved the rest of this generation")
                )
            else:
                reason = answer.partition(" ")[2].strip()
                request.resolve(Decision(False, human_identity(), reason=reason))

    def _prompt(self, candidate: bool) -> str:
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

    def show_request(self, request: ApprovalRequest) -> None:
        what = "candidate" if request.index is not None else "adoption of the returned improver"
        self.console.rule(
            Text(
                f"approval: generation {request.generation}, {what} "
                f"{request.index if request.index is not None else ''}"
            )
        )
        diff = unified(request.parent_source, request.source, "parent improver", "candidate")
        self.console.print(rich_diff(diff, empty="(no change)"))
        for warning in review_warnings(request.source):
            self.console.print(Text(warning, style="bold red"))
        if request.flags:
            self.console.print(Text("audit flags:", style="bold red"))
            for flag in request.flags:
                self.console.print(rich_text(f"  • {flag}", "red"))
        else:
            self.console.print(Text("audit: nothing flagged", style="green"))
        allowed = ", ".join(f"{k}: {v}" for k, v in request.allowances.items())
        self.console.print(rich_text(f"if approved it may use: {allowed}", "dim"))

    # -- events

    def on_event(self, event: Event) -> None:
        t = self.totals
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
            t.row(event.generation)
            self.console.print(
                Text.assemble((f"generation {event.generation}", "bold"), " started")
            )
        elif isinstance(event, CandidateProposed):
            row = t.row(event.generation)
            row.candidates += 1
            row.flags += 1 if event.flags else 0
            line = rich_text(f"  candidate {event.index}: {event.summary}")
            if event.flags:
                line.append_text(rich_text(f" flags: {'; '.join(event.flags)}", "red"))
            self.console.print(line)
        elif isinstance(event, ApprovalDecided):
            if event.index is not None:
                row = t.row(event.generation)
                if event.approved:
                    row.approved += 1
                else:
                    row.rejected += 1
            if not event.approved or not event.by.startswith("policy:"):
                verdict = "approved" if event.approved else "rejected"
                why = f" ({event.reason})" if event.reason else ""
                self.console.print(rich_text(f"  {verdict} by {event.by}{why}"))
        elif isinstance(event, EvaluationProgress):
            self.progress.update(self._test_bar, completed=event.done, total=event.total)
        elif isinstance(event, MetaUtilityEvaluated):
            if event.index is None:
                row = t.row(event.generation)
                row.meta_utility = event.meta_utility
                row.test_meta_utility = event.test_meta_utility
                row.per_test = event.per_test
                if event.generation == 0:
                    self.console.print(
                        f"  seed improver: meta-utility {fmt(event.meta_utility)} "
                        f"(test {fmt(event.test_meta_utility)})"
                    )
            else:
                self.console.print(
                    f"  candidate {event.index}: meta-utility {fmt(event.meta_utility)} "
                    f"(tests {', '.join(f'{v:.2f}' for v in event.per_test)})"
                )
        elif isinstance(event, GenerationFinished):
            row = t.row(event.generation)
            row.adopted = event.adopted
            row.reason = event.reason
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
            t.in_flight += 1
            self._lm_status()
        elif isinstance(event, LMResponded):
            t.in_flight = max(0, t.in_flight - 1)
            t.lm_calls += 1
            t.tokens += event.prompt_tokens + event.completion_tokens
            if event.cost is None:
                t.cost_known = False
            else:
                t.cost += event.cost
            self._lm_status()
            self.progress.advance(self._lm_bar)
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
        t = self.totals
        cost = f"${t.cost:.4f}" if t.cost_known else "cost unknown"
        self.progress.update(
            self._lm_bar,
            description=f"LM calls (in flight {t.in_flight}, {t.tokens:,} tokens, {cost})",
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
        previous: float | None = None
        for generation in sorted(self.totals.rows):
            row = self.totals.rows[generation]
            change = (
                f"{row.meta_utility - previous:+.3f}"
                if row.meta_utility is not None and previous is not None
                else ""
            )
            if generation == 0:
                outcome = "seed"
            elif row.adopted:
                outcome = "adopted"
            elif row.adopted is False:
                outcome = f"kept previous: {row.reason}"
            else:
                outcome = "unfinished"
            table.add_row(
                str(generation),
                fmt(row.meta_utility),
                fmt(row.test_meta_utility),
                change,
                str(row.candidates),
                str(row.approved),
                str(row.rejected),
                rich_text(outcome),
            )
            if row.meta_utility is not None and (generation == 0 or row.adopted):
                previous = row.meta_utility
        return table


def model_label(model: str) -> str:
    if model == "demo":
        return "demo (scripted, offline — not a language model)"
    return model


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
