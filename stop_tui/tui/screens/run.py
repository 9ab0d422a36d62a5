"""The run screen: generations, charts, what is running now, the event log.

A live run (a :class:`RunSession`) is driven by engine events; a saved run is
read from the store once. The same :class:`RunModel` feeds both.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, RichLog, Sparkline, Static

from stop_tui.engine.approval import ApprovalRequest
from stop_tui.tui.bindings import bindings_for
from stop_tui.tui.charts import CandidateChart, MetaChart, Palette, meter, progress
from stop_tui.tui.host import Host, host
from stop_tui.tui.messages import ApprovalNeeded, EngineEvent, RunEnded
from stop_tui.untrusted import rich_text, visible
from stop_tui.view.run_model import LogLine, RunModel, from_store
from stop_tui.view.text import fmt, fmt_cost, fmt_stream, model_label

if TYPE_CHECKING:
    from stop_tui.tui.session import RunSession

COLUMNS = [
    ("gen", "gen"),
    ("status", "status"),
    ("val", "meta-utility (validation)"),
    ("test", "meta-utility (test)"),
    ("Δ", "change from the parent improver"),
    ("cand p/a/r", "candidates proposed / approved / rejected"),
    ("LM", "language-model calls"),
    ("tokens", "tokens"),
    ("cost", "cost"),
    ("flags", "flagged improvers"),
]


class RunScreen(Screen[None]):
    """A run: its generations, scores, what runs now and the event log."""

    BINDINGS: ClassVar[list[BindingType]] = bindings_for("run")

    def __init__(self, *, session: RunSession | None = None, run_id: str | None = None) -> None:
        super().__init__()
        self.session = session
        self.model = (
            RunModel.of_config(session.run.config) if session else RunModel(run_id=run_id or "")
        )
        self.selected_generation: int | None = None
        self._dirty = True
        self._approval_open: ApprovalRequest | None = None
        self._follow = True

    @property
    def stop_app(self) -> Host:
        return host(self.app)

    @property
    def live(self) -> bool:
        return self.session is not None and self.session.active

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="run-status")
        table: DataTable[Any] = DataTable(id="generations", cursor_type="row", zebra_stripes=True)
        yield table
        with Horizontal(id="run-mid"):
            with Vertical(id="charts"):
                yield Static(id="meta-chart", classes="panel")
                yield Sparkline([], id="trend")
                yield Static(id="cand-chart", classes="panel")
            yield Static(id="activity", classes="panel")
        yield RichLog(id="log", markup=False, wrap=True, max_lines=2000)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#generations", DataTable)
        for label, _tip in COLUMNS:
            table.add_column(label, key=label)
        self.query_one("#meta-chart").border_title = "meta-utility by generation"
        self.query_one("#activity").border_title = "now"
        self.query_one("#log").border_title = "events"
        self.set_interval(0.2, self._render_if_dirty)
        self.watch(self.app, "theme", lambda _theme: self.render_all(), init=False)
        self.sub_title = self.model.run_id
        if self.session is not None:
            self.session.attach(self.post_message)
            self.session.worker = self.app.run_worker(
                self.session.drive(),
                group="engine",
                name=f"run {self.model.run_id}",
                exit_on_error=False,
            )
        else:
            self.load()
        self.render_all()

    def on_resize(self) -> None:
        self.set_class(self.size.width < 110, "narrow")

    # ------------------------------------------------------------------ saved runs

    @work(group="run-load", exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        store = self.stop_app.store()
        table = self.query_one("#generations", DataTable)
        table.loading = True
        try:
            model = await asyncio.to_thread(from_store, store, self.model.run_id)
        except Exception as exc:
            table.loading = False
            self.stop_app.error(exc, f"could not open run {self.model.run_id}")
            if self.app.screen is self:
                self.app.pop_screen()
            return
        self.model = model
        table.loading = False
        log = self.query_one("#log", RichLog)
        log.clear()
        log.write(
            rich_text(  # the saved message may quote a child's error
                f"saved run {model.run_id}: {model.task}, {model_label(model.model)}, "
                f"status {model.status}" + (f" ({model.message})" if model.message else "")
            )
        )
        key = self.stop_app.key
        log.write(
            Text(
                f"enter: improver of a generation · {key('run.history')}: history and family "
                f"tree · {key('run.replay')}: replay offline · {key('run.resume')}: resume",
                style="dim",
            )
        )
        self.render_all()
        self.refresh_bindings()

    # ------------------------------------------------------------------ engine messages

    @on(EngineEvent)
    def _engine_event(self, message: EngineEvent) -> None:
        try:
            line = self.model.apply(message.event)
            if line is not None:
                self._write_log(line)
        except Exception as exc:  # a display bug must never take the run down
            self.stop_app.error(exc, f"could not show a {message.event.kind} event")
        self._dirty = True

    @on(ApprovalNeeded)
    def _approval_needed(self, message: ApprovalNeeded) -> None:
        self._dirty = True
        if self._approval_open is None:
            self.show_approval(message.request)

    @on(RunEnded)
    def _run_ended(self, message: RunEnded) -> None:
        if message.error:
            self.notify(
                visible(message.error),
                title="the run failed",
                severity="error",
                timeout=15,
                markup=False,
            )
        elif message.status == "failed":
            why = self.model.message or "see the event log"
            self.notify(
                visible(why), title="the run failed", severity="error", timeout=15, markup=False
            )
        elif message.status == "finished":
            self.notify(visible(f"run {self.model.run_id} finished"), title="done", markup=False)
        else:
            self.notify(
                visible(f"run {self.model.run_id}: {message.status}"),
                severity="warning",
                markup=False,
            )
        if self.model.status in ("running", "paused", "starting"):
            self.model.status = message.status
        self._dirty = True
        self.refresh_bindings()

    def _write_log(self, line: LogLine) -> None:
        P = Palette.from_theme(self.app.current_theme)
        style = {"warning": P["warning"], "error": P["error"], "success": P["success"],
                 "accent": P["accent"]}.get(line.style, line.style)  # fmt: skip
        text = Text()
        if not self.stop_app.snapshot:
            text.append(time.strftime("%H:%M:%S ", time.localtime(line.at)), style="dim")
        text.append_text(rich_text(line.text, style))
        self.query_one("#log", RichLog).write(text)

    # ------------------------------------------------------------------ approvals

    def show_approval(self, request: ApprovalRequest | None = None) -> None:
        from stop_tui.tui.screens.approval import ApprovalScreen

        if self.session is None:
            return
        pending = self.session.pending()
        if request is None or not request.pending:
            request = pending[0] if pending else None
        if request is None:
            return
        self._approval_open = request
        self.app.push_screen(
            ApprovalScreen(request, self.session), lambda result: self._answered(request, result)
        )

    def _answered(self, request: ApprovalRequest, result: tuple[str, str] | None) -> None:
        self._approval_open = None
        if result is not None and request.pending and self.session is not None:
            from stop_tui.tui.screens.approval import apply_answer

            action = result[0]
            if not apply_answer(request, result, self.session.gate):  # another answer won
                self.notify(visible(f"already {request.lost_to}"), markup=False)
            if action == "next":
                later = [r for r in self.session.pending() if r is not request]
                if later:
                    self.call_after_refresh(self.show_approval, later[0])
                return
        self._dirty = True
        if result is not None and result[0] != "later":
            self.call_after_refresh(self.show_approval)

    def action_approvals(self) -> None:
        if self.session is None or not self.session.pending():
            self.notify("no decisions waiting")
            return
        self.show_approval()

    # ------------------------------------------------------------------ rendering

    def _render_if_dirty(self) -> None:
        if self._dirty:
            try:
                self.render_all()
            except Exception as exc:  # keep the run going; say what went wrong
                self._dirty = False
                self.stop_app.error(exc, "could not draw the run screen")

    def render_all(self) -> None:
        self._dirty = False
        m = self.model
        P = Palette.from_theme(self.app.current_theme)
        self._render_status(P)
        self._render_table(P)
        rows = [m.rows[g] for g in sorted(m.rows)]
        self.query_one("#meta-chart", Static).update(MetaChart(rows, P))
        values = [r.meta_utility for r in rows if r.meta_utility is not None]
        self.query_one("#trend", Sparkline).data = values if len(values) > 1 else []
        generation = self.selected_generation if self.selected_generation is not None else m.current
        chart = self.query_one("#cand-chart", Static)
        chart.border_title = f"candidates of generation {generation}"
        chart.update(CandidateChart(generation, m.candidates_of(generation), P))
        self._render_activity(P)

    def _render_status(self, P: Palette) -> None:
        m = self.model
        status = Text()
        icon = {"running": "▶", "paused": "⏸", "finished": "✔"}.get(m.status, "■")
        colour = {
            "running": P["success"],
            "paused": P["warning"],
            "finished": P["success"],
            "starting": P["accent"],
        }.get(m.status, P["error"])
        status.append(f" {icon} {m.status} ", style=f"bold {colour}")
        if m.status == "paused":
            status.append(f"({self.stop_app.key('run.pause')} resumes) ", style=colour)
        pending = len(self.session.pending()) if self.session is not None else 0
        if pending:
            press = self.stop_app.key("run.approvals")
            status.append(
                f" ⚑ {pending} waiting: press {press} ", style=f"bold reverse {P['accent']}"
            )
        gens = f"gen {m.current}/{m.generations}" if m.generations else ""
        status.append_text(rich_text(f" {gens} · {m.task} · {model_label(m.model, short=True)}"))
        self.query_one("#run-status", Static).update(status)
        self.sub_title = m.run_id

    def _render_table(self, P: Palette) -> None:
        table = self.query_one("#generations", DataTable)
        m = self.model
        cursor = table.cursor_row
        was_last = cursor >= table.row_count - 1
        table.clear()
        for g in sorted(m.rows):
            row = m.rows[g]
            change = row.change
            delta = Text("—" if change is None else f"{change:+.3f}")
            if change is not None and change > 0:
                delta.stylize(P["success"])
            elif change is not None and change < 0:
                delta.stylize(P["error"])
            status = Text(row.status)
            if row.status == "adopted":
                status.stylize(P["success"])
            elif row.status in ("kept", "unfinished"):
                status.stylize(P["warning"])
            elif row.status == "running":
                status.stylize(P["accent"])
            flags = Text(str(row.flags) if row.flags else "—")
            if row.flags:
                flags.stylize(P["warning"])
            table.add_row(
                str(g),
                status,
                fmt(row.meta_utility),
                fmt(row.test_meta_utility),
                delta,
                f"{row.proposed}/{row.approved}/{row.rejected}" if g else "—",
                str(row.lm_calls),
                f"{row.tokens:,}",
                fmt_cost(row.cost, row.cost_known),
                flags,
                key=str(g),
            )
        if table.row_count:
            target = table.row_count - 1 if (was_last and self._follow) else cursor
            table.move_cursor(row=min(target, table.row_count - 1), animate=False)

    def _render_activity(self, P: Palette) -> None:
        m = self.model
        width = max(20, self.query_one("#activity").size.width - 4)
        lines: list[Text] = []
        if m.status in ("running", "starting"):
            lines.append(Text(f"generation {m.current}: working", style="bold"))
        else:
            lines.append(rich_text(m.status + (f": {m.message}" if m.message else ""), "bold"))
        if m.in_flight:
            lines.append(Text(f"LM requests in flight: {m.in_flight_total}"))
            streaming = m.streaming()
            for s in streaming[:4]:  # context from our own labels; numbers ours
                lines.append(Text(f"  {fmt_stream(s.context, s.tokens, s.elapsed)}"))
            shown = Counter(s.context for s in streaming)
            rest = [(c, n - shown[c]) for c, n in sorted(m.in_flight.items()) if n > shown[c]]
            for context, n in rest[: max(0, 4 - len(streaming))]:
                lines.append(Text(f"  {context}" + (f" ×{n}" if n > 1 else ""), style="dim"))
        elif m.status in ("running", "starting"):
            lines.append(Text("LM requests in flight: 0", style="dim"))
        for (g, index), (done, total) in sorted(
            m.evaluations.items(), key=lambda kv: (kv[0][0], -1 if kv[0][1] is None else kv[0][1])
        )[:4]:
            label = f"g{g} {'c' + str(index) if index is not None else 'final'}"
            line = Text(f"{label:<8}")
            line.append(progress(done, total, max(4, width - 16), P))
            line.append(f" {done}/{total}")
            lines.append(line)
        if m.pending_approvals and self.session is not None and self.session.pending():
            lines.append(
                Text(f"{len(self.session.pending())} decision(s) waiting", style=P["accent"])
            )
        lines.append(Text("budgets (whole run)", style="bold"))
        lines.append(
            meter("calls", m.lm_calls, m.max_calls, width,
                  f"{m.lm_calls}" + (f"/{m.max_calls}" if m.max_calls else ""), P)
        )  # fmt: skip
        lines.append(
            meter("tokens", m.tokens, m.max_tokens, width,
                  f"{m.tokens:,}" + (f"/{m.max_tokens:,}" if m.max_tokens else ""), P)
        )  # fmt: skip
        cost_text = fmt_cost(m.cost, m.cost_known) + (
            f"/{fmt_cost(m.max_cost)}" if m.max_cost else ""
        )
        lines.append(meter("cost", m.cost, m.max_cost, width, cost_text, P))
        if m.best_generation is not None:
            lines.append(
                Text(f"best: generation {m.best_generation}, {fmt(m.best_meta_utility)}",
                     style=P["success"])
            )  # fmt: skip
        if m.candidates:
            lines.append(Text(m.circumvention, style="dim"))
        self.query_one("#activity", Static).update(Text("\n").join(lines))

    @on(DataTable.RowHighlighted, "#generations")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key is not None:
            generation = int(key)
            self._follow = generation == max(self.model.rows, default=0)
            if generation != self.selected_generation:
                self.selected_generation = generation
                self._dirty = True

    @on(DataTable.RowSelected, "#generations")
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_improver()

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("pause", "stop", "approvals"):
            return self.live
        if action in ("resume_run", "replay"):
            return not self.live
        return True

    def action_pause(self) -> None:
        if self.session is None or not self.live:
            return
        if self.session.run.paused:
            self.session.resume()
            self.notify("resumed")
        else:
            self.session.pause()
            self.notify("pausing: work already started finishes, nothing new starts")
        self._dirty = True

    def action_stop(self) -> None:
        from stop_tui.tui.screens.dialogs import ConfirmScreen

        if self.session is None or not self.live:
            return
        session = self.session

        def answered(yes: bool | None) -> None:
            if yes:
                session.stop()
                self.notify("stopping…")

        self.app.push_screen(
            ConfirmScreen(
                "Stop this run?",
                f"Everything committed so far stays; continue later with "
                f"'stop-tui resume {self.model.run_id}'.",
            ),
            answered,
        )

    def action_improver(self) -> None:
        generation = self.selected_generation
        if generation is None:
            self.notify("no generation selected", severity="warning")
            return
        row = self.model.rows.get(generation)
        if row is None or (row.status == "running" and generation != 0):
            self.notify(
                f"generation {generation} is not committed yet; its candidates are in the history",
                severity="warning",
            )
            return
        self.stop_app.open_improver(self.model.run_id, commit=row.commit, spec=str(generation))

    def action_history(self) -> None:
        self.stop_app.open_history(self.model.run_id)

    def action_resume_run(self) -> None:
        if self.live:
            return
        self.stop_app.resume_run(self.model.run_id)

    def action_replay(self) -> None:
        if not self.live:
            self.stop_app.open_replay(self.model.run_id)

    def action_back(self) -> None:
        if self.live:
            self.notify(
                "the run keeps going; open it again from the home screen (o). "
                "Decisions it needs pop up wherever you are."
            )
        self.app.pop_screen()
