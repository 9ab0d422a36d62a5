"""Sweep files: parse and check a sweep's TOML into a :class:`SweepSpec`.

Every problem becomes ONE :class:`~stop_tui.errors.UserError` line naming the key
and the fix (no traceback): unknown keys, unknown tasks, empty grids, negative
seeds, wrong types, bad run settings.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stop_tui.config import Policy
from stop_tui.errors import UserError, read_text

#: Run settings a sweep may set for every cell ([settings]) or per variant ([variants.NAME]).
#: task, model, seed, generations and approval are the grid's own keys.
CELL_SETTINGS = (
    "max_responses_per_call",
    "lm_budget",
    "utility_budget",
    "meta_utility_budget",
    "meta_utility_tests",
    "max_calls",
    "max_tokens_total",
    "max_cost",
    "max_tokens",
    "timeout",
    "max_concurrency",
    "max_retries",
    "base_url",
    "demo_latency",
    "demo_failure_rate",
    "demo_no_code_rate",
)
#: A sweep's approval: a :class:`~stop_tui.config.Policy`, or "ask" (at the terminal).
APPROVALS = ("ask", *(p.value for p in Policy))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Caps(_Strict):
    """Sweep-wide caps, counted over all cells together (each cell keeps its own too)."""

    max_calls: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)
    max_cost: float | None = Field(default=None, ge=0)


class Transfer(_Strict):
    """Table 1-style transfer of the best improvers (``stop-tui report --transfer``)."""

    tasks: list[str] = Field(default_factory=list)  # empty: the sweep's tasks
    repeats: int = Field(default=2, ge=1)


class SweepSpec(_Strict):
    name: str = ""
    tasks: list[str]
    models: list[str]
    seeds: list[int]
    generations: int = Field(default=2, ge=1)
    concurrency: int = Field(default=2, ge=1)
    approval: str = "auto"
    improvement_threshold: float = Field(default=0.03, ge=0)
    caps: Caps = Field(default_factory=Caps)
    settings: dict[str, Any] = Field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)
    transfer: Transfer = Field(default_factory=Transfer)

    def to_toml_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


_HINTS = {
    "tasks": "list task names, e.g. tasks = [\"parity_noise\"] (see 'stop-tui tasks')",
    "models": 'list model names, e.g. models = ["demo"]',
    "seeds": "list whole numbers of 0 or more, e.g. seeds = [0, 1, 2]",
    "generations": "set a whole number of at least 1, e.g. generations = 2",
    "concurrency": "set how many cells run at once, a whole number of at least 1",
    "approval": "one of " + ", ".join(APPROVALS),
    "improvement_threshold": "a share, e.g. 0.03 for the paper's 3%",
    "caps": "keys: max_calls, max_tokens, max_cost (numbers of 0 or more)",
    "transfer": "keys: tasks (a list of task names), repeats (at least 1)",
    "settings": "keys: " + ", ".join(CELL_SETTINGS),
    "variants": "[variants.NAME] tables of run settings: " + ", ".join(CELL_SETTINGS),
}
_TOP = list(SweepSpec.model_fields)


def _fail(where: str, key: str, problem: str, fix: str) -> UserError:
    return UserError(f"sweep file {where}: {key}: {problem}", hint=f"fix: {fix}")


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def _key(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def parse_sweep(text: str, where: str = "<text>") -> SweepSpec:
    """Parse and check a sweep file's text; raise one-line UserErrors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(where, "syntax", f"not valid TOML ({exc})", "correct the TOML syntax") from None
    for name in data:
        if name not in _TOP:
            raise _fail(
                where,
                name,
                "unknown key",
                _suggest(name, _TOP) + "known keys: " + ", ".join(_TOP),
            )
    for name in ("tasks", "models", "seeds"):
        if name not in data:
            raise _fail(where, name, "missing", _HINTS[name])
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = tuple(error.get("loc", ()))
        top = str(loc[0]) if loc else "sweep"
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden" and len(loc) >= 2:
            section = getattr(SweepSpec.model_fields[top].annotation, "model_fields", {})
            raise _fail(
                where, _key(loc), "unknown key", _suggest(str(loc[-1]), list(section)) + _HINTS[top]
            ) from None
        got = error.get("input")
        shown = f", got {got!r}" if not isinstance(got, dict | list) else ""
        raise _fail(
            where, _key(loc), message.lower() + shown, _HINTS.get(top, "see docs/experiments.md")
        ) from None
    _check(spec, where)
    return spec


def _check(spec: SweepSpec, where: str) -> None:
    from stop_tui.tasks.registry import task_names

    for name in ("tasks", "models", "seeds"):
        if not getattr(spec, name):
            raise _fail(where, name, "is empty, so the grid has no cells", _HINTS[name])
    known = task_names()
    for i, task in enumerate(spec.tasks + spec.transfer.tasks):
        if task not in known:
            key = f"tasks[{i}]" if i < len(spec.tasks) else f"transfer.tasks[{i - len(spec.tasks)}]"
            raise _fail(
                where,
                key,
                f"unknown task {task!r}",
                _suggest(task, known) + "known tasks: " + ", ".join(known),
            )
    for i, seed in enumerate(spec.seeds):
        if seed < 0:
            raise _fail(where, f"seeds[{i}]", f"negative seed {seed}", _HINTS["seeds"])
    lists: list[tuple[str, list[Any]]] = [
        ("tasks", list(spec.tasks)),
        ("models", list(spec.models)),
        ("seeds", list(spec.seeds)),
    ]
    for name, listed in lists:
        if len(set(listed)) != len(listed):
            raise _fail(where, name, "lists a value twice", "list each value once")
    for i, model in enumerate(spec.models):
        if not model.strip():
            raise _fail(where, f"models[{i}]", "empty model name", _HINTS["models"])
    if spec.approval not in APPROVALS:
        raise _fail(where, "approval", f"unknown policy {spec.approval!r}", _HINTS["approval"])
    tables = [("settings", spec.settings)] + [
        (f"variants.{name}", values) for name, values in spec.variants.items()
    ]
    for prefix, values in tables:
        for key, value in values.items():
            if key not in CELL_SETTINGS:
                raise _fail(
                    where,
                    f"{prefix}.{key}",
                    "not a setting a sweep may vary",
                    _suggest(key, list(CELL_SETTINGS)) + _HINTS["settings"],
                )
            _check_setting(where, f"{prefix}.{key}", key, value)


def _check_setting(where: str, full_key: str, key: str, value: Any) -> None:
    from stop_tui.config import Settings

    try:
        Settings.model_validate({"model": "demo", key: value})
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        field = Settings.model_fields[key]
        raise _fail(
            where,
            full_key,
            f"{message.lower()}, got {value!r}",
            f"set it to a valid {key} ({field.description or 'see stop-tui run --help'})",
        ) from None


def load_sweep(path: Path) -> tuple[SweepSpec, str]:
    """The spec and the file's text (kept verbatim in the sweep's git record)."""
    hint = "pass the path of a .toml sweep file"
    text = read_text(path, "sweep file", f"no sweep file at {path}", hint)
    return parse_sweep(text, str(path)), text
