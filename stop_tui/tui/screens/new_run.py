"""The new-run form: fields, choices and help generated from the settings, which validate it."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from stop_tui.config import Settings, parse_cluster
from stop_tui.errors import UserError
from stop_tui.settings_shape import RUN_OPTIONS, Policy, form_fields
from stop_tui.tui.bindings import bindings_for
from stop_tui.untrusted import rich_text
from stop_tui.view.text import model_label

#: The number fields: (settings key, label, help), generated from the settings' fields.
INT_FIELDS: list[tuple[str, str, str]] = form_fields()
#: The approval choices: every :class:`Policy`, most supervised first.
POLICY_HELP = {p.value: f"{p.value} — {p.help}" for p in Policy}
CUSTOM = "__custom__"


def validate_form(
    base: Settings,
    values: dict[str, str],
    model: str,
    task: str,
    approval: str,
    cluster: str | None = None,
) -> tuple[Settings | None, dict[str, str]]:
    """Settings from the form, or the errors by field name: the settings model's own
    rules, each error placed by the field it names (its location, never its wording)."""
    errors: dict[str, str] = {}
    update: dict[str, Any] = {}
    for name, _, _ in INT_FIELDS:
        raw = values.get(name, "").strip()
        try:
            update[name] = int(raw)
        except ValueError:
            errors[name] = f"must be a whole number, got {raw!r}" if raw else "required"
    if not model.strip():
        errors["model"] = "name a model, or choose the demo"
    if cluster is not None:
        try:
            update["cluster"] = parse_cluster(cluster)
        except UserError as exc:
            errors["cluster"] = exc.line()
    if errors:
        return None, errors
    update.update(model=model.strip(), task=task, approval=approval)
    try:
        # unset fields stay unset: defaults that depend on the model (max_cost) follow it
        settings = Settings(**{**base.model_dump(exclude_unset=True), **update})
    except ValidationError as exc:
        shown = {*values, "model", "task"}
        for error in exc.errors(include_url=False):
            loc = [str(p) for p in error.get("loc", ())]
            msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            errors[loc[0] if loc and loc[0] in shown else "form"] = msg
        return None, errors
    from stop_tui.tasks.registry import get_task

    try:
        get_task(settings.task)
    except UserError as exc:
        return None, {"task": exc.line()}
    return settings, {}


class NewRunScreen(ModalScreen[Settings | None]):
    """Start a new run: task, model, budgets, approval policy and seed."""

    BINDINGS: ClassVar[list[BindingType]] = bindings_for("new")

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        from stop_tui.tasks.registry import list_tasks

        s = self.settings
        tasks = [(f"{t.name} — {t.title}", t.name) for t in list_tasks()]
        models: list[tuple[str, str]] = [(model_label("demo"), "demo")]
        if s.model != "demo":
            where = s.base_url or s.azure_endpoint or "the configured endpoint"
            models.insert(0, (f"{s.model} at {where}", s.model))
        models.append(("another model on the configured endpoint…", CUSTOM))
        with Vertical(id="new-box", classes="dialog"):
            yield Label("New run", classes="dialog-title")
            with VerticalScroll(id="new-fields"):
                yield Label("Task")
                yield Select(tasks, value=s.task, allow_blank=False, id="task")
                yield Static(classes="field-error", id="err-task")
                yield Label("Model")
                yield Select(models, value=s.model, allow_blank=False, id="model")
                yield Input(placeholder="model name", id="model-name", classes="hidden")
                yield Static(classes="field-error", id="err-model")
                yield Label("Where sandboxed work runs")
                yield Input(
                    s.cluster,
                    placeholder="this machine (or: ray, ray://HOST:PORT, HOST:PORT)",
                    id="cluster",
                    tooltip=RUN_OPTIONS["cluster"].description,
                )
                yield Static(classes="field-error", id="err-cluster")
                with Horizontal(classes="field-grid"):
                    for name, label, help_text in INT_FIELDS:
                        with Vertical(classes="field"):
                            yield Label(label)
                            yield Input(
                                str(getattr(s, name)),
                                id=name,
                                tooltip=help_text,
                            )
                            yield Static(classes="field-error", id=f"err-{name}")
                yield Label("Approval policy")
                approval = s.approval or Policy.EVERY_CANDIDATE.value
                yield Select(
                    [(text, value) for value, text in POLICY_HELP.items()],
                    value=approval,
                    allow_blank=False,
                    id="approval",
                )
                yield Static(classes="field-error", id="err-form")
                yield Static(id="forecast")
            with Horizontal(classes="buttons"):
                yield Button("Start run [ctrl+s]", variant="primary", id="start")
                yield Button("Cancel [esc]", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#task", Select).focus()
        self.check()

    @on(Select.Changed, "#model")
    def _model_changed(self, event: Select.Changed) -> None:
        self.query_one("#model-name", Input).set_class(event.value != CUSTOM, "hidden")

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self.check()

    def _model(self) -> str:
        value = self.query_one("#model", Select).value
        if value == CUSTOM:
            return self.query_one("#model-name", Input).value
        return str(value)

    def check(self) -> Settings | None:
        values = {name: self.query_one(f"#{name}", Input).value for name, _, _ in INT_FIELDS}
        settings, errors = validate_form(
            self.settings,
            values,
            self._model(),
            str(self.query_one("#task", Select).value),
            str(self.query_one("#approval", Select).value),
            self.query_one("#cluster", Input).value,
        )
        for widget in self.query(".field-error"):
            key = (widget.id or "").removeprefix("err-")
            assert isinstance(widget, Static)
            widget.update(rich_text(errors.get(key, "")))  # may quote what was typed
            widget.set_class(key in errors, "shown")
        for name in [*(n for n, _, _ in INT_FIELDS), "cluster"]:
            self.query_one(f"#{name}", Input).set_class(name in errors, "bad")
        self._forecast(settings)
        return settings

    def _forecast(self, settings: Settings | None) -> None:
        """The worst case the form's settings allow (stop_tui.lm.forecast), live."""
        from rich.text import Text

        from stop_tui.lm.forecast import forecast

        widget = self.query_one("#forecast", Static)
        if settings is None or settings.model == "demo":
            widget.update("")
            return
        widget.update(Text("\n".join(forecast(settings).lines())))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_start()
        else:
            self.action_cancel()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_start()

    def action_start(self) -> None:
        settings = self.check()
        if settings is None:
            self.notify("fix the fields marked in red first", severity="error")
            shown = [w for w in self.query(".field-error.shown")]
            if shown:
                shown[0].scroll_visible()
                name = (shown[0].id or "").removeprefix("err-")
                field = self.query(f"#{name}")
                if name and field:
                    field.first().focus(scroll_visible=False)
            return
        self.dismiss(settings)

    def action_cancel(self) -> None:
        self.dismiss(None)
