"""A run's configuration: everything needed to start, resume or replay it.

Stored as ``run.json`` in the run's first commit. Full names everywhere (the
paper's single letters only appear in comments).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from stop_tui.engine.approval import Policy
from stop_tui.errors import UserError
from stop_tui.lm.budget import DEFAULT_MAX_PROMPT_CHARS
from stop_tui.store.store import new_run_id


@dataclass(frozen=True)
class RunConfig:
    task: str = "parity_noise"
    model: str = "demo"
    generations: int = 6
    max_responses_per_call: int = 6
    lm_budget: int = 4  # language-model calls per improver run
    utility_budget: int = 25  # downstream utility calls per improver run
    meta_utility_budget: int = 25  # meta-utility calls per generation
    meta_utility_tests: int = 5  # downstream runs averaged by one meta-utility call
    approval: str = Policy.AUTO.value
    seed: int = 0
    # Run-wide hard caps (None = no cap).
    max_calls: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    # Characters (system + user) one LM request may carry (None = no limit).
    max_prompt_chars: int | None = DEFAULT_MAX_PROMPT_CHARS
    # Demo backend knobs (ignored by other backends).
    demo_failure_rate: float = 0.1
    demo_no_code_rate: float = 0.05
    demo_latency: float = 0.0
    # Engine knobs.
    serial: bool = False  # run every LM call and evaluation one at a time (benchmarks)
    improver_cpu_seconds: float = 120.0
    improver_memory_mb: int = 1024
    run_id: str = field(default_factory=new_run_id)

    def __post_init__(self) -> None:
        positive = {
            "generations": self.generations,
            "max_responses_per_call": self.max_responses_per_call,
            "lm_budget": self.lm_budget,
            "utility_budget": self.utility_budget,
            "meta_utility_budget": self.meta_utility_budget,
            "meta_utility_tests": self.meta_utility_tests,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(
                    f"{name.replace('_', ' ')} must be a whole number of at least 1, got {value!r}",
                    hint=f"set --{name.replace('_', '-')} to 1 or more",
                )
        try:
            Policy(self.approval)
        except ValueError:
            choices = ", ".join(p.value for p in Policy)
            raise UserError(
                f"unknown approval policy {self.approval!r}", hint=f"choose one of {choices}"
            ) from None
        for name in ("demo_failure_rate", "demo_no_code_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UserError(f"{name.replace('_', ' ')} must be between 0 and 1, got {value}")

    @property
    def policy(self) -> Policy:
        return Policy(self.approval)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"run configuration has unknown keys: {', '.join(unknown)}")
        # A run saved before the prompt limit existed had none: its replay must not refuse
        # a request it made.
        return cls(**{"max_prompt_chars": None, **data})

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)
