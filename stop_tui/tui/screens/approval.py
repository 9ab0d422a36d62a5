"""The approval modal: nothing generated runs before someone says yes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static, TextArea

from stop_tui.engine.approval import ApprovalRequest, Gate, Purpose
from stop_tui.engine.audit import review_warnings
from stop_tui.tui.bindings import bindings_for, with_key
from stop_tui.tui.charts import Palette
from stop_tui.tui.host import Host, host
from stop_tui.tui.render import (
    allowances_view,
    behaviour_view,
    evidence_view,
    flags_view,
    monitor_view,
)
from stop_tui.tui.screens.diffview import DiffView
from stop_tui.untrusted import reveal, visible

if TYPE_CHECKING:
    from stop_tui.tui.session import RunSession

#: The modal's answer: (action, payload) with action approve | reject (payload: reason) |
#: edit (payload: the edited source) | rest | next | later | elsewhere (decided elsewhere).
Answer = tuple[str, str]


def apply_answer(request: ApprovalRequest, answer: Answer, gate: Gate | None) -> bool:
    """Decide ``request`` as the modal answered (approve, reject, edit, rest: with
    ``gate``, the rest of the generation's candidates too, once this answer has won).
    False when another answer (another terminal, a policy) decided it first."""
    action, payload = answer
    if action == "approve":
        return request.approve()
    if action == "reject":
        return request.reject(payload)
    if action == "edit":
        return request.approve_edited(payload)
    if action == "rest":
        taken = request.approve(reason="approved the rest of this generation")
        if taken and gate is not None:
            gate.approve_rest_of_generation(request.generation)
        return taken
    return True  # next, later, elsewhere: nothing to decide here


def request_name(request: ApprovalRequest) -> str:
    """``g1 c0`` for a candidate, ``g1 adoption`` for an adoption."""
    which = f"c{request.index}" if request.index is not None else "adoption"
    return f"g{request.generation} {which}"


def describe(request: ApprovalRequest) -> str:
    if request.purpose is Purpose.CANDIDATE:
        return f"Run candidate {request.index} of generation {request.generation}?"
    return f"Adopt the improver generation {request.generation} returned?"


class ApprovalScreen(ModalScreen[Answer | None]):
    """A generated improver asks to run: its diff, the audit, what it may do, your decision."""

    BINDINGS: ClassVar[list[BindingType]] = bindings_for("approval")

    def __init__(self, request: ApprovalRequest, session: RunSession | None = None) -> None:
        super().__init__()
        self.request = request
        self.session = session
        self.mode = "view"  # view | reject | edit

    def compose(self) -> ComposeResult:
        r = self.request
        P = Palette.from_theme(self.app.current_theme)
        with Vertical(id="approval-box", classes="dialog"):
            yield Label(describe(r), classes="dialog-title", id="approval-title")
            yield Static(Text(self._queue_text()), id="approval-queue", classes="dim")
            yield Static(
                self._warning_text(r.source),
                id="approval-warning",
                classes="" if review_warnings(r.source) else "hidden",
            )
            with Horizontal(id="approval-main"):
                yield DiffView(r.parent_source, r.source, id="approval-diff", classes="panel")
                # The editor holds the visible form (hidden characters as ⟦…⟧ escapes);
                # saving turns the escapes back into the characters they stand for.
                yield TextArea(
                    visible(r.source),
                    id="approval-editor",
                    classes="hidden",
                    tab_behavior="indent",
                )
                with VerticalScroll(id="approval-side", classes="panel"):
                    yield Static(Text("scores", style="bold underline"))
                    yield Static(evidence_view(r.evidence, P), id="approval-scores")
                    if r.evidence is not None and (
                        r.evidence.behaviour is not None or r.evidence.parent_behaviour is not None
                    ):
                        yield Static(Text("behaviour in its tests", style="bold underline"))
                        yield Static(
                            behaviour_view(
                                r.evidence.behaviour,
                                r.evidence.parent_behaviour,
                                r.evidence.alarms,
                                P,
                            ),
                            id="approval-behaviour",
                        )
                    if r.evidence is not None and r.evidence.monitor is not None:
                        yield Static(monitor_view(r.evidence.monitor, P), id="approval-monitor")
                    yield Static(flags_view(r.flags, P), id="approval-flags")
                    yield Static(Text("if approved it may use", style="bold"))
                    yield Static(allowances_view(r.allowances), id="approval-allowances")
            yield Input(
                placeholder="why reject it? (enter to reject, "
                f"{self.stop_app.key('approval.later')} to go back)",
                id="approval-reason",
                classes="hidden",
            )
            with Horizontal(classes="buttons", id="approval-buttons"):
                key = self.stop_app.key
                yield Button(self._approve_label(), variant="success", id="approve")
                yield Button(
                    with_key("Reject", key("approval.reject")), variant="error", id="reject"
                )
                yield Button(with_key("Edit", key("approval.edit")), variant="primary", id="edit")
                if r.purpose is Purpose.CANDIDATE:
                    yield Button(with_key("Rest of gen", key("approval.rest")), id="rest")
                yield Button(with_key("Later", key("approval.later")), id="later")
            yield Footer(compact=True)

    @property
    def stop_app(self) -> Host:
        return host(self.app)

    def _approve_label(self) -> Content:
        if self.mode == "edit":
            return with_key("Approve edited", self.stop_app.key("approval.save"))
        return with_key("Approve", self.stop_app.key("approval.approve"))

    def on_mount(self) -> None:
        self.query_one("#approval-diff").border_title = "diff against its parent"
        self.query_one("#approval-side").border_title = "scores and audit"
        self.query_one("#approval-diff").focus()
        # Answered elsewhere (`stop-tui answer` in another terminal, or a policy): close.
        self.request.decided.add_done_callback(self._on_decided)

    def _on_decided(self, _: object) -> None:
        self.call_later(self._decided_elsewhere)

    def on_unmount(self) -> None:
        self.request.decided.remove_done_callback(self._on_decided)

    def on_screen_resume(self) -> None:  # decided while another screen was on top
        if self.request.decided.done():
            self._decided_elsewhere()

    def _decided_elsewhere(self) -> None:
        if not self.is_attached or self.app.screen is not self:
            return  # on_screen_resume looks again
        decided = self.request.decided
        if not decided.cancelled() and decided.exception() is None:
            decision = decided.result()
            self.notify(
                visible(f"{request_name(self.request)}: {decision.action} by {decision.by}"),
                title="answered elsewhere",
                markup=False,
            )
        # else: the run stopped waiting. Either way the next waiting request, if any, shows.
        self.dismiss(("elsewhere", ""))

    def _warning_text(self, source: str) -> Text:
        P = Palette.from_theme(self.app.current_theme)
        return Text("\n").join(
            Text(line, style=f"bold {P['error']}") for line in review_warnings(source)
        )

    def _queue_text(self) -> str:
        if self.session is None:
            return ""
        pending = self.session.pending()
        others = [p for p in pending if p is not self.request]
        if not others:
            return "nothing else is waiting"
        names = ", ".join(request_name(p) for p in others[:5])
        return f"{len(others)} more waiting: {names} ({self.stop_app.key('approval.next')}: next)"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "rest":
            return self.request.purpose is Purpose.CANDIDATE and self.mode == "view"
        if action == "save_edit":
            return self.mode == "edit"
        if action == "external_edit":
            return bool(os.environ.get("VISUAL") or os.environ.get("EDITOR"))
        if action in ("approve", "reject", "edit", "next"):
            return self.mode == "view"
        return True

    # ------------------------------------------------------------------ actions

    def on_button_pressed(self, event: Button.Pressed) -> None:
        action = event.button.id or ""
        if action == "approve" and self.mode == "edit":
            self.action_save_edit()
            return
        if action == "reject" and self.mode == "reject":
            self._reject_now()
            return
        self.run_action_by_name(action)

    def run_action_by_name(self, name: str) -> None:
        handler = getattr(self, f"action_{name}", None)
        if handler is not None:
            handler()

    def action_approve(self) -> None:
        self.dismiss(("approve", ""))

    def action_reject(self) -> None:
        self.mode = "reject"
        reason = self.query_one("#approval-reason", Input)
        reason.remove_class("hidden")
        reason.focus()
        self.refresh_bindings()

    @on(Input.Submitted, "#approval-reason")
    def _reject_now(self) -> None:
        reason = self.query_one("#approval-reason", Input).value.strip()
        self.dismiss(("reject", reason or "rejected without a reason"))

    def action_edit(self) -> None:
        self.mode = "edit"
        self.query_one("#approval-diff").add_class("hidden")
        editor = self.query_one("#approval-editor", TextArea)
        editor.remove_class("hidden")
        key = self.stop_app.key
        editor.border_title = (
            f"edit the candidate — {key('approval.save')} approves the edited source, "
            f"{key('approval.later')} cancels"
        )
        editor.focus()
        self.query_one("#approve", Button).label = self._approve_label()
        self.refresh_bindings()

    def action_external_edit(self) -> None:
        """Edit in ``$VISUAL``/``$EDITOR`` (the app steps aside meanwhile); the result
        comes back into the in-app editor to review and approve with ctrl+s."""
        import shlex
        import subprocess
        import tempfile

        from textual.app import SuspendNotSupported

        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or ""
        current = self.request.source
        if self.mode == "edit":
            try:
                current = reveal(self.query_one("#approval-editor", TextArea).text)
            except ValueError as exc:
                self.notify(visible(str(exc)), severity="error", markup=False)
                return
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
            handle.write(current)
            path = Path(handle.name)
        try:
            with self.app.suspend():
                subprocess.call([*shlex.split(editor), str(path)])
            edited = path.read_text(encoding="utf-8")
        except SuspendNotSupported:
            self.notify("this terminal cannot hand over to an editor", severity="error")
            return
        except (OSError, ValueError) as exc:
            self.notify(visible(f"could not run {editor!r}: {exc}"), severity="error", markup=False)
            return
        finally:
            path.unlink(missing_ok=True)
        if self.mode != "edit":
            self.action_edit()
        self.query_one("#approval-editor", TextArea).text = visible(edited)
        self._show_warnings(edited)

    def _show_warnings(self, source: str) -> None:
        warning = self.query_one("#approval-warning", Static)
        warning.update(self._warning_text(source))
        warning.set_class(not review_warnings(source), "hidden")

    def action_save_edit(self) -> None:
        try:
            source = reveal(self.query_one("#approval-editor", TextArea).text)
        except ValueError as exc:
            self.notify(visible(str(exc)), severity="error", markup=False)
            return
        if source == self.request.source:
            self.dismiss(("approve", ""))
        else:
            self.dismiss(("edit", source))

    def action_rest(self) -> None:
        self.dismiss(("rest", ""))

    def action_next(self) -> None:
        self.dismiss(("next", ""))

    def action_later(self) -> None:
        if self.mode != "view":
            self.mode = "view"
            self.query_one("#approval-reason", Input).add_class("hidden")
            self.query_one("#approval-editor", TextArea).add_class("hidden")
            self.query_one("#approval-diff").remove_class("hidden")
            self.query_one("#approve", Button).label = self._approve_label()
            self.query_one("#approval-diff").focus()
            self.refresh_bindings()
            return
        self.dismiss(("later", ""))
