"""One improver (a generation's or a candidate's): source, diff, scores, audit,
decision and the language-model transcript."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Static, TabbedContent, TabPane

from stop_tui.engine.audit import review_warnings
from stop_tui.engine.behaviour import Behaviour, alarms
from stop_tui.engine.evidence import MonitorNote, scores_lines
from stop_tui.store.records import StepInfo, StepRecord
from stop_tui.tui.bindings import bindings_for
from stop_tui.tui.charts import Palette
from stop_tui.tui.host import Host, host
from stop_tui.tui.render import behaviour_view, flags_view, monitor_view, source_view
from stop_tui.tui.screens.diffview import DiffView
from stop_tui.untrusted import rich_text, visible
from stop_tui.view.text import fmt


@dataclass
class StepData:
    step: StepInfo
    record: StepRecord
    source: str
    parent_source: str
    diff: str
    transcript: list[dict[str, Any]] = field(default_factory=list)
    #: The record of the parent's own scoring (a "kept" commit records the rejected
    #: improver's tests: the one it kept is further up), for the behaviour diff.
    parent_record: StepRecord | None = None


def step_label(step: StepInfo) -> str:
    if step.kind == "candidate":
        return f"generation {step.generation}, candidate {step.candidate}"
    if step.kind == "seed":
        return "the seed improver (generation 0)"
    return f"generation {step.generation} ({step.kind})"


def load_step(store: Any, step: StepInfo, steps: list[StepInfo] | None = None) -> StepData:
    """Blocking store reads for one step (``steps``: the run's, to find the parent's scoring)."""
    record = store.get_record(step.commit)
    source = store.get_source(step.commit)
    if step.parent:
        parent_source = store.get_source(step.parent)
        diff = store.diff(step.parent, step.commit)
    else:
        parent_source, diff = "", ""
    transcript = store.get_transcript(step.commit)
    by_commit = {s.commit: s for s in steps or []}
    parent_record, at = None, step.parent
    while at is not None:
        parent_record = store.get_record(at)
        if parent_record.kind != "kept" or at not in by_commit:
            break
        at, parent_record = by_commit[at].parent, None
    return StepData(step, record, source, parent_source, diff, transcript, parent_record)


def transcript_view(entries: list[dict[str, Any]], query: str, P: Palette) -> RenderableType:
    q = query.strip().lower()
    parts: list[RenderableType] = []
    shown = 0
    for n, entry in enumerate(entries, 1):
        texts = [str(t) for t in entry.get("texts") or []]
        haystack = "\n".join([str(entry.get("system", "")), str(entry.get("user", "")), *texts])
        # searched in the text as recorded and as shown (so a query may name an escape)
        haystack += "\n" + visible(haystack)
        if q and q not in haystack.lower() and q not in str(entry.get("context", "")).lower():
            continue
        shown += 1
        usage = entry.get("usage") or {}
        head = rich_text(
            f"── request {n} · {entry.get('context', '')} · {entry.get('n', 1)} response(s) · "
            f"temperature {entry.get('temperature', '')} · "
            f"{usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)} tokens"
            + (" (estimated)" if usage.get("estimated") else ""),
            f"bold {P['primary']}",
        )
        if entry.get("error"):
            head.append_text(rich_text(f" · error: {entry['error']}", P["error"]))
        parts.append(head)
        for title, body in [("system", entry.get("system", "")), ("prompt", entry.get("user", ""))]:
            parts.append(Text(title, style="bold"))
            parts.append(_highlight(str(body), q, P))
        for k, text in enumerate(texts):
            parts.append(Text(f"response {k + 1}", style=f"bold {P['success']}"))
            parts.append(_highlight(text, q, P))
    if not entries:
        return Text("no language-model requests were recorded for this improver", style="dim")
    if not shown:
        return rich_text(f"no request matches {query!r}", "dim")
    return Group(Text(f"{shown} of {len(entries)} request(s)", style="dim"), *parts)


def _highlight(body: str, query: str, P: Palette) -> Text:
    text = rich_text(body)
    if query:
        text.highlight_words([query], style=f"reverse {P['accent']}", case_sensitive=False)
    return text


class ImproverScreen(Screen[None]):
    """An improver: source, diff against its parent, per-test scores, audit, transcript."""

    BINDINGS: ClassVar[list[BindingType]] = bindings_for("improver")

    def __init__(self, run_id: str, *, commit: str | None = None, spec: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.commit = commit
        self.spec = spec
        self.steps: list[StepInfo] = []
        self.index = 0
        self.data: StepData | None = None
        self.side = False
        self._filter_timer: Timer | None = None

    @property
    def stop_app(self) -> Host:
        return host(self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="imp-head")
        with TabbedContent(id="imp-tabs", initial="source"):
            with TabPane("Source [1]", id="source"), VerticalScroll():
                yield Static(id="imp-source")
            with TabPane("Diff [2]", id="diff"):
                yield DiffView(id="imp-diff")
            with TabPane("Scores [3]", id="scores"), VerticalScroll():
                yield Static(id="imp-scores")
            with TabPane("Audit [4]", id="audit"), VerticalScroll():
                yield Static(id="imp-audit")
            with TabPane("Transcript [5]", id="transcript"):
                yield Input(
                    placeholder="filter the transcript (prompts and responses)", id="imp-filter"
                )
                with VerticalScroll():
                    yield Static(id="imp-transcript")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = self.run_id
        self.load_steps()

    @work(group="imp-load", exclusive=True, exit_on_error=False)
    async def load_steps(self) -> None:
        store = self.stop_app.store()
        try:
            steps = await asyncio.to_thread(store.list_steps, self.run_id)
            commit = self.commit
            if commit is None and self.spec is not None:
                commit = await asyncio.to_thread(store.resolve, self.run_id, self.spec)
        except Exception as exc:
            self.stop_app.error(exc, "could not read the run")
            return
        self.steps = [s for s in steps if not (s.kind == "seed" and s.meta_utility is None)]
        if not self.steps:
            self.steps = steps
        self.index = next((i for i, s in enumerate(self.steps) if s.commit == commit), 0)
        self.show()

    @work(group="imp-step", exclusive=True, exit_on_error=False)
    async def show(self) -> None:
        step = self.steps[self.index]
        try:
            data = await asyncio.to_thread(load_step, self.stop_app.store(), step, self.steps)
        except Exception as exc:
            self.stop_app.error(exc, "could not read the improver")
            return
        self.data = data
        self.render_step()

    def render_step(self) -> None:
        data = self.data
        if data is None:
            return
        P = Palette.from_theme(self.app.current_theme)
        step, record = data.step, data.record
        head = Text()
        head.append(f" {step_label(step)} ", style=f"bold reverse {P['primary']}")
        head.append(f"  {self.index + 1}/{len(self.steps)}  ", style="dim")
        head.append(f"meta-utility {fmt(record.meta_utility)} (test {fmt(record.test_utility)})")
        decision = record.decision
        if decision is not None:
            verdict = decision.action + (" (edited)" if decision.edited else "")
            colour = P["error"] if decision.action == "rejected" else P["success"]
            head.append(f" · {verdict}", style=colour)
            if decision.by:
                head.append_text(rich_text(f" by {decision.by}"))
            if decision.reason:
                head.append_text(rich_text(f": {decision.reason}", "italic"))
        head.append(f" · commit {self.stop_app.hide(step.commit[:10])}", style="dim")
        if record.summary:
            head.append_text(rich_text(f"\n {record.summary}", "italic"))
        self.query_one("#imp-head", Static).update(head)
        self.query_one("#imp-source", Static).update(source_view(data.source))
        self.render_diff()
        self.query_one("#imp-scores", Static).update(
            Group(
                self.scores_view(record, P),
                Text("\nbehaviour in its tests, beside its parent's", style="bold"),
                self.behaviour_view(data, P),
            )
        )
        audit: list[RenderableType] = [
            Text(line, style=f"bold {P['error']}") for line in review_warnings(data.source)
        ]
        audit.append(flags_view(record.flags, P))
        reason = record.extra.get("reason")
        if reason:
            audit.append(rich_text(f"\noutcome: {reason}", P["warning"]))
        note = MonitorNote.from_json(record.decision.monitor) if record.decision else None
        if note is not None:  # untrusted: through the sanitiser, as in the modal
            audit += [Text(""), monitor_view(note, P)]
        proposed = record.extra.get("proposed_source")
        if proposed:
            audit.append(
                Text("\nthe person who approved it edited the proposed source", style="bold")
            )
        self.query_one("#imp-audit", Static).update(Group(*audit))
        self.render_transcript()

    def render_diff(self) -> None:
        data = self.data
        if data is None:
            return
        target = self.query_one("#imp-diff", DiffView)
        target.side = self.side
        if not data.step.parent:
            target.show("", "", empty="the first commit of the run has no parent")
        else:
            target.show(data.parent_source, data.source)

    def render_transcript(self) -> None:
        if self.data is None:
            return
        P = Palette.from_theme(self.app.current_theme)
        query = self.query_one("#imp-filter", Input).value
        self.query_one("#imp-transcript", Static).update(
            transcript_view(self.data.transcript, query, P)
        )

    @staticmethod
    def behaviour_view(data: StepData, P: Palette) -> RenderableType:
        child = Behaviour.from_json(data.record.behaviour) if data.record.behaviour else None
        parent = (
            Behaviour.from_json(data.parent_record.behaviour)
            if data.parent_record is not None and data.parent_record.behaviour
            else None
        )
        found = alarms(child, parent) if child is not None else []
        return behaviour_view(child, parent, found, P)

    def scores_view(self, record: StepRecord, P: Palette) -> RenderableType:
        if not record.tests:
            why = (
                "it was rejected, so it never ran"
                if record.decision is not None and record.decision.action == "rejected"
                else "no meta-utility tests were recorded"
            )
            return Text(why, style="dim")
        table = Table(title="meta-utility tests (downstream runs)", expand=False)
        table.add_column("test", justify="right")
        table.add_column("validation", justify="right")
        table.add_column("test split", justify="right")
        table.add_column("error")
        for t in record.tests:
            table.add_row(
                str(t.index), fmt(t.val), fmt(t.test), rich_text(t.error or "", P["error"])
            )
        table.add_row("mean", fmt(record.meta_utility), fmt(record.test_utility), "", style="bold")
        budget = ", ".join(
            f"{k.replace('_', ' ')} {v:g}" for k, v in record.budget.items() if k != "seconds"
        )
        spread = Text("\n".join(scores_lines(record)))
        return Group(table, spread, Text(f"used: {budget}" if budget else "", style="dim"))

    # ------------------------------------------------------------------ actions

    @on(Input.Changed, "#imp-filter")
    def _filter(self) -> None:
        # Transcripts are long: render once typing pauses.
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(0.3, self.render_transcript)

    @on(Input.Submitted, "#imp-filter")
    def _filter_now(self) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self.render_transcript()

    def action_step(self, delta: int) -> None:
        if not self.steps:
            return
        self.index = (self.index + delta) % len(self.steps)
        self.show()

    def action_side_by_side(self) -> None:
        self.side = not self.side  # narrow terminals scroll sideways
        self.query_one("#imp-tabs", TabbedContent).active = "diff"
        self.render_diff()

    def action_tab(self, tab: str) -> None:
        self.query_one("#imp-tabs", TabbedContent).active = tab

    def action_filter(self) -> None:
        self.query_one("#imp-tabs", TabbedContent).active = "transcript"
        self.query_one("#imp-filter", Input).focus()

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.set_focus(None)
            return
        self.app.pop_screen()

    def on_resize(self) -> None:
        if self.side:
            self.render_diff()
