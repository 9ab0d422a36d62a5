"""History: step through a run's commits, compare any two improvers, see the family tree."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane, Tree

from stop_tui.engine.evidence import Evidence, scores_of_record
from stop_tui.store.records import StepInfo
from stop_tui.tui.bindings import bindings_for
from stop_tui.tui.charts import Palette
from stop_tui.tui.host import Host, host
from stop_tui.tui.render import evidence_view
from stop_tui.tui.screens.diffview import DiffView
from stop_tui.untrusted import rich_text
from stop_tui.view.text import fmt


def short(step: StepInfo) -> str:
    if step.kind == "candidate":
        return f"g{step.generation}.c{step.candidate}"
    if step.kind == "seed":
        return "seed" if step.meta_utility is not None else "seed (unscored)"
    return f"g{step.generation} {step.kind}"


def family(steps: list[StepInfo]) -> dict[str | None, list[StepInfo]]:
    """Children by parent commit: who generated (or preceded) whom."""
    children: dict[str | None, list[StepInfo]] = {}
    commits = {s.commit for s in steps}
    for s in steps:
        parent = s.parent if s.parent in commits else None
        children.setdefault(parent, []).append(s)
    return children


class HistoryScreen(Screen[None]):
    """A run's commits: step through generations, compare two improvers, the family tree."""

    BINDINGS: ClassVar[list[BindingType]] = bindings_for("history")

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.steps: list[StepInfo] = []
        self.best_commit: str | None = None
        self.marked: StepInfo | None = None
        self.current: StepInfo | None = None

    @property
    def stop_app(self) -> Host:
        return host(self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="hist-head")
        with Horizontal(id="hist-main"):
            with TabbedContent(id="hist-tabs", initial="hist-table-tab"):
                with TabPane("Commits", id="hist-table-tab"):
                    table: DataTable[Any] = DataTable(id="hist-table", cursor_type="row")
                    yield table
                with TabPane("Family tree", id="hist-tree-tab"):
                    yield Tree("run", id="hist-tree")
            with Vertical(id="hist-diff-box", classes="panel"):
                yield Static(id="hist-scores")
                yield DiffView(id="hist-diff")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#hist-table", DataTable)
        for name in ("step", "meta", "test", "decision", "mark"):
            table.add_column(name, key=name)
        self.sub_title = self.run_id
        self.load()

    @work(group="hist-load", exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        store = self.stop_app.store()
        table = self.query_one("#hist-table", DataTable)
        table.loading = True
        try:
            steps = await asyncio.to_thread(store.list_steps, self.run_id)
            best = await asyncio.to_thread(store.best, self.run_id)
        except Exception as exc:
            self.stop_app.error(exc, "could not read the run")
            return
        finally:
            table.loading = False
        unique: dict[str, StepInfo] = {}
        for step in steps:
            unique.setdefault(step.commit, step)
        self.steps = list(unique.values())
        self.best_commit = best.commit if best else None
        self._fill()
        table = self.query_one("#hist-table", DataTable)
        table.focus()

    def _fill(self) -> None:
        P = Palette.from_theme(self.app.current_theme)
        table = self.query_one("#hist-table", DataTable)
        table.clear()
        for s in self.steps:
            marks = []
            if s.commit == self.best_commit:
                marks.append("best")
            if s.adopted:
                marks.append("taken")
            if self.marked is not None and s.commit == self.marked.commit:
                marks.append("A")
            decision = rich_text(s.decision if s.decision != "none" else "—")
            if s.decision.startswith("rejected"):
                decision.stylize(P["error"])
            table.add_row(
                Text(short(s), style="bold" if s.kind != "candidate" else ""),
                fmt(s.meta_utility),
                fmt(s.test_utility),
                decision,
                " ".join(marks),
                key=s.commit,
            )
        tree: Tree[StepInfo] = self.query_one("#hist-tree", Tree)
        tree.clear()
        tree.root.label = rich_text(f"run {self.run_id}")
        children = family(self.steps)

        def add(node: Any, parent: str | None) -> None:
            for s in children.get(parent, []):
                label = Text(f"{short(s)}  {fmt(s.meta_utility)}")
                if s.commit == self.best_commit:
                    label.append("  best", style=P["success"])
                if s.decision.startswith("rejected"):
                    label.append("  rejected", style=P["error"])
                if children.get(s.commit):
                    child = node.add(label, data=s, expand=True)
                    add(child, s.commit)
                else:
                    node.add_leaf(label, data=s)

        add(tree.root, None)
        tree.root.expand()
        self._head()

    def on_resize(self) -> None:
        self.set_class(self.size.width < 110, "narrow")

    def _head(self) -> None:
        text = Text()
        if self.marked is not None:
            text.append(f" A = {short(self.marked)} ", style="bold reverse")
            text.append("  the diff shows A → the selected step; m on A clears it")
        else:
            text.append(
                "the diff shows the selected step against its parent; m marks it as A to compare"
            )
        self.query_one("#hist-head", Static).update(text)

    def _select(self, step: StepInfo) -> None:
        self.current = step
        self.show_diff()

    @on(DataTable.RowHighlighted, "#hist-table")
    def _row(self, event: DataTable.RowHighlighted) -> None:
        commit = event.row_key.value
        step = next((s for s in self.steps if s.commit == commit), None)
        if step is not None:
            self._select(step)

    @on(DataTable.RowSelected, "#hist-table")
    def _open_row(self) -> None:
        self.action_open()

    @on(Tree.NodeHighlighted, "#hist-tree")
    def _node(self, event: Tree.NodeHighlighted[StepInfo]) -> None:
        if event.node.data is not None:
            self._select(event.node.data)

    @work(group="hist-diff", exclusive=True, exit_on_error=False)
    async def show_diff(self) -> None:
        step = self.current
        if step is None:
            return
        base = self.marked.commit if self.marked is not None else step.parent
        box = self.query_one("#hist-diff-box")
        if base is None:
            self.query_one("#hist-diff", DiffView).show("", "", empty="no parent to compare with")
            return
        store = self.stop_app.store()
        try:
            sources = await asyncio.to_thread(
                lambda: (store.get_source(base), store.get_source(step.commit))
            )
            records = await asyncio.to_thread(store.get_records, [step.commit, base])
        except Exception as exc:
            self.stop_app.error(exc, "diff failed")
            return
        a = short(self.marked) if self.marked is not None else "its parent"
        box.border_title = f"{a} → {short(step)}"
        P = Palette.from_theme(self.app.current_theme)
        subject, parent = records
        self.query_one("#hist-scores", Static).update(
            evidence_view(
                Evidence(
                    purpose="compare",
                    subject=scores_of_record(subject) if subject else None,
                    parent=scores_of_record(parent) if parent else None,
                    subject_label=short(step),
                    parent_label=a,
                ),
                P,
            )
        )
        self.query_one("#hist-diff", DiffView).show(*sources)

    # ------------------------------------------------------------------ actions

    def _move_to(self, step: StepInfo) -> None:
        table = self.query_one("#hist-table", DataTable)
        self.query_one("#hist-tabs", TabbedContent).active = "hist-table-tab"
        table.move_cursor(row=table.get_row_index(step.commit))
        table.focus()

    def action_generation(self, delta: int) -> None:
        if not self.steps:
            return
        heads = [s for s in self.steps if s.kind != "candidate" and s.meta_utility is not None]
        if not heads:
            return
        current = self.current or heads[0]
        gens = sorted({s.generation for s in heads})
        now = current.generation
        later = [g for g in gens if (g > now if delta > 0 else g < now)]
        target_gen = (min(later) if delta > 0 else max(later)) if later else now
        target = next(s for s in reversed(heads) if s.generation == target_gen)
        self._move_to(target)

    def action_best(self) -> None:
        step = next((s for s in self.steps if s.commit == self.best_commit), None)
        if step is None:
            self.notify("this run has no best improver yet", severity="warning")
            return
        self._move_to(step)

    def action_mark(self) -> None:
        if self.current is None:
            return
        if self.marked is not None and self.marked.commit == self.current.commit:
            self.marked = None
        else:
            self.marked = self.current
            self.notify(f"A = {short(self.current)}; now select another step to compare")
        table = self.query_one("#hist-table", DataTable)
        row = table.cursor_row
        self._fill()
        table.move_cursor(row=row)
        self.show_diff()

    def action_open(self) -> None:
        if self.current is not None:
            self.stop_app.open_improver(self.run_id, commit=self.current.commit)

    def action_toggle_tree(self) -> None:
        tabs = self.query_one("#hist-tabs", TabbedContent)
        tabs.active = "hist-tree-tab" if tabs.active == "hist-table-tab" else "hist-table-tab"
        if tabs.active == "hist-tree-tab":
            self.query_one("#hist-tree", Tree).focus()
        else:
            self.query_one("#hist-table", DataTable).focus()

    def action_back(self) -> None:
        self.app.pop_screen()
