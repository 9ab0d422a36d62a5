"""A run's configuration: the settings a run was started with, as the engine reads them.

Stored as ``run.json`` (``settings``) in the run's first commit, so resume and replay use
the same budgets, caps and prices. Every field shared with :class:`~stop_tui.config.Settings`
has that field's name and default (taken from the settings model, never repeated here) and
is copied by name in :meth:`RunConfig.of_settings`; the settings validated it once. A
saved ``run.json`` (which may come from an imported bundle) is checked again on load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stop_tui.config import AT_LEAST_ONE, Policy, Settings
from stop_tui.errors import UserError
from stop_tui.lm.pricing import Price
from stop_tui.store.store import new_run_id


def _default(name: str) -> Any:
    """The settings' default of ``name`` (one source for every default)."""
    return Settings.model_fields[name].default


@dataclass(frozen=True)
class RunConfig:
    task: str = _default("task")
    model: str = "demo"
    generations: int = _default("generations")
    max_responses_per_call: int = _default("max_responses_per_call")
    lm_budget: int = _default("lm_budget")  # language-model calls per improver run
    utility_budget: int = _default("utility_budget")  # utility calls per improver run
    meta_utility_budget: int = _default("meta_utility_budget")  # meta-utility calls/generation
    meta_utility_tests: int = _default("meta_utility_tests")  # runs averaged by one call
    approval: Policy = Policy.AUTO
    seed: int = _default("seed")
    # Run-wide hard caps (None = no cap).
    max_calls: int | None = None
    max_tokens_total: int | None = None
    max_cost: float | None = None
    #: The settings' [prices] table: a model priced only there is held to max_cost too.
    prices: Mapping[str, Price] = field(default_factory=dict)
    # Characters (system + user) one LM request may carry (None = no limit).
    max_prompt_chars: int | None = _default("max_prompt_chars")
    # Demo backend knobs (ignored by other backends).
    demo_failure_rate: float = _default("demo_failure_rate")
    demo_no_code_rate: float = _default("demo_no_code_rate")
    demo_latency: float = _default("demo_latency")
    # The monitor model ("" = none): its note precedes each request a person answers.
    monitor_model: str = _default("monitor_model")
    monitor_timeout: float = _default("monitor_timeout")
    monitor_max_tokens: int = _default("monitor_max_tokens")
    # Engine knobs.
    serial: bool = False  # run every LM call and evaluation one at a time (benchmarks)
    improver_cpu_seconds: float = 120.0
    improver_memory_mb: int = 1024
    run_id: str = field(default_factory=new_run_id)

    def __post_init__(self) -> None:
        for name in AT_LEAST_ONE:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(
                    f"{name.replace('_', ' ')} must be a whole number of at least 1, got {value!r}",
                    hint=f"set --{name.replace('_', '-')} to 1 or more",
                )
        try:
            object.__setattr__(self, "approval", Policy(self.approval))
        except ValueError:
            choices = ", ".join(p.value for p in Policy)
            raise UserError(
                f"unknown approval policy {self.approval!r}", hint=f"choose one of {choices}"
            ) from None
        for name in ("demo_failure_rate", "demo_no_code_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UserError(f"{name.replace('_', ' ')} must be between 0 and 1, got {value}")
        prices = {str(k): tuple(float(x) for x in v) for k, v in dict(self.prices).items()}
        object.__setattr__(self, "prices", prices)

    @classmethod
    def of_settings(
        cls, settings: Settings, *, policy: Policy, run_id: str | None = None
    ) -> RunConfig:
        """The configuration of a new run: every shared field copied by name."""
        shared = {f.name for f in dataclasses.fields(cls)} & set(Settings.model_fields)
        values = {name: getattr(settings, name) for name in shared}
        return cls(**{**values, "approval": policy, "run_id": run_id or new_run_id()})

    @property
    def policy(self) -> Policy:
        return Policy(self.approval)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["approval"] = self.policy.value
        data["prices"] = {k: list(v) for k, v in self.prices.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        data = dict(data)
        if "max_tokens" in data:  # saved before the run-wide cap got its own name
            data.setdefault("max_tokens_total", data.pop("max_tokens"))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"run configuration has unknown keys: {', '.join(unknown)}")
        # A run saved before the prompt limit existed had none: its replay must not refuse
        # a request it made.
        return cls(**{"max_prompt_chars": None, **data})

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)
