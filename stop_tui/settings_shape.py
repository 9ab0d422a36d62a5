"""The shape of the settings, shared below and above them: the approval :class:`Policy`
type, ``stop.toml``'s sections, and the field metadata that generates the command line's
run options and the app's new-run form (:data:`RUN_OPTIONS`). No pydantic here: the
command line's parser (and shell completion) reads it without the settings machinery."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "AT_LEAST_ONE",
    "DEFAULT_MAX_COST",
    "DEFAULT_MAX_PROMPT_CHARS",
    "DEFAULT_MAX_TOKENS",
    "RUN_OPTIONS",
    "SECTIONS",
    "Policy",
    "RunOption",
    "cli_options",
    "form_fields",
    "run_field",
]


class Policy(StrEnum):
    """Who approves generated improvers: the ONE type of an approval policy (the
    settings field, the command line's and the app form's choices, the stored run)."""

    EVERY_CANDIDATE = "every-candidate"
    EACH_GENERATION = "each-generation"
    REJECT_FLAGGED = "reject-flagged"
    AUTO = "auto"

    @property
    def help(self) -> str:
        """One line for a choice list (the app's form, ``--help``)."""
        return {
            "every-candidate": "you approve each candidate and each adoption",
            "each-generation": "candidates run, you approve each adoption",
            "reject-flagged": "flagged code is rejected, the rest runs",
            "auto": "everything runs (still audited and sandboxed)",
        }[self.value]

    @property
    def needs_person(self) -> bool:
        """True when someone must answer some requests (a person, not the policy)."""
        return self in (Policy.EVERY_CANDIDATE, Policy.EACH_GENERATION)


#: The run-wide dollar cap of a model with a known non-zero price when max_cost is
#: not set. A paper-configured run (seed improver, 6 generations) costs about $7
#: on gpt-4o and under $1 on gpt-4o-mini; an improver that uses every budget can
#: cost ~20 times that. $20 lets the former finish and stops the latter early.
#: Demo, free (price 0) and unknown-price models (local servers) get no default cap.
DEFAULT_MAX_COST = 20.0
#: The default per-response token limit. 4096: an improver or solution in the paper is a
#: few hundred lines (~3,000 tokens at most); 4096 leaves room for the explanation around
#: the code, while a small local model that never stops can not fill a whole context
#: window (8k+ tokens, minutes of generation) on every request.
DEFAULT_MAX_TOKENS = 4096
#: Characters (system + user) one language-model request may carry by default.
DEFAULT_MAX_PROMPT_CHARS = 64 * 1024


@dataclass(frozen=True)
class RunOption:
    """A run setting that is also a command-line flag (``--name``) and, with ``form``, a
    number field of the app's new-run form under that label. Plain data (no pydantic), so
    the command line's parser and its shell completion build without the settings
    machinery; :func:`run_field` makes the settings model's field of it."""

    default: Any
    description: str
    form: str | None = None
    #: The flag's argparse type (default: the default's type; caps take "none" too: str).
    cli_type: type | None = None


#: Every run option, in the order ``--help`` lists them.
RUN_OPTIONS: dict[str, RunOption] = {
    "cluster": RunOption(
        "",
        'Where sandboxed work runs: "" = this machine; "ray" = RAY_ADDRESS or a new local Ray '
        'instance; "ray://HOST:PORT" or "HOST:PORT" = an existing Ray cluster (docs/clusters.md).',
    ),
    "task": RunOption("parity_noise", "Downstream task (see 'stop-tui tasks')."),
    "model": RunOption(
        "", 'Model name (Azure: the deployment); "demo" = the offline scripted demo.'
    ),
    "base_url": RunOption(None, "OpenAI-compatible endpoint URL."),
    "generations": RunOption(6, "Self-improvement generations.", "Generations"),
    "max_responses_per_call": RunOption(
        6, "Responses one language-model call may ask for.", "Responses/call"
    ),
    "lm_budget": RunOption(4, "Language-model calls per improver run.", "LM budget"),
    "utility_budget": RunOption(25, "Utility calls per improver run.", "Utility budget"),
    "meta_utility_budget": RunOption(25, "Meta-utility calls per generation.", "Meta budget"),
    "meta_utility_tests": RunOption(
        5, "Downstream runs averaged by one meta-utility call.", "Meta tests"
    ),
    "max_tokens": RunOption(
        DEFAULT_MAX_TOKENS,
        "Tokens one response may have (per response; sent as max_tokens, or "
        "max_completion_tokens to reasoning models; the run-wide cap is max_tokens_total).",
    ),
    "seed": RunOption(0, "Seed of evaluations and of the demo model.", "Seed"),
    "max_calls": RunOption(
        None, "Hard cap on language-model requests for the whole run.", cli_type=str
    ),
    "max_tokens_total": RunOption(
        None, "Hard cap on tokens for the whole run (max_tokens is per response).", cli_type=str
    ),
    "max_cost": RunOption(
        None,
        f"Hard cap on dollars for the whole run (unset: {DEFAULT_MAX_COST:g} for a priced "
        "model, else none).",
        cli_type=str,
    ),
    "max_prompt_chars": RunOption(
        DEFAULT_MAX_PROMPT_CHARS,
        "Characters (system + user) one language-model request may carry.",
    ),
    "demo_latency": RunOption(0.0, "Seconds per demo request."),
    "monitor_model": RunOption(
        "",
        "A second model that writes a short risk note before each approval request (advisory "
        'only: the person decides); "" = no monitor; "demo" = the scripted demo monitor.',
    ),
    "monitor_base_url": RunOption(
        None, "The monitor's OpenAI-compatible endpoint URL (unset: the run's endpoint)."
    ),
    "demo_failure_rate": RunOption(0.1, "Share of demo answers with broken code."),
}


def run_field(name: str, **constraints: Any) -> Any:
    """The settings model's field of run option ``name`` (default, description, and
    ``json_schema_extra`` naming its flag and form label), with pydantic ``constraints``."""
    from pydantic import Field

    option = RUN_OPTIONS[name]
    extra: dict[str, Any] = {"flag": "--" + name.replace("_", "-")}
    if option.form is not None:
        extra["form"] = option.form
    return Field(
        default=option.default,
        description=option.description,
        json_schema_extra=extra,
        **constraints,
    )


def cli_options() -> list[tuple[str, str, type, str]]:
    """(flag, settings key, type, help) of every run option: the command line's run
    options ARE the settings' run fields."""
    out: list[tuple[str, str, type, str]] = []
    for name, option in RUN_OPTIONS.items():
        kind = option.cli_type or (str if option.default is None else type(option.default))
        text = option.description.rstrip(".")
        if option.default not in (None, "") and "unset:" not in text:
            text += f" (default {option.default})"
        out.append(("--" + name.replace("_", "-"), name, kind, text.replace("%", "%%")))
    return out


def form_fields() -> list[tuple[str, str, str]]:
    """(settings key, label, help) of the app's new-run form's number fields."""
    return [
        (name, option.form, option.description.rstrip("."))
        for name, option in RUN_OPTIONS.items()
        if option.form is not None
    ]


#: The STOP budgets: whole numbers of at least 1 (one message for every front end).
AT_LEAST_ONE = (
    "generations",
    "max_responses_per_call",
    "lm_budget",
    "utility_budget",
    "meta_utility_budget",
    "meta_utility_tests",
)

#: stop.toml's sections by concern: ``[endpoint]``, ``[run]``, ``[caps]``, ``[demo]``,
#: ``[monitor]``
#: (``[prices]`` and ``[keymap]`` are tables of their own). A key of a section is
#: also accepted at the top of the file (the flat form of earlier versions), and
#: its environment variable is ``STOP_TUI_<KEY>`` either way.
SECTIONS: dict[str, tuple[str, ...]] = {
    "endpoint": (
        "model",
        "base_url",
        "api_key",
        "organization",
        "azure_endpoint",
        "azure_api_version",
        "azure_deployment",
        "timeout",
        "max_tokens",
        "max_concurrency",
        "stream",
        "reasoning_effort",
        "max_retries",
        "retry_base_delay",
        "retry_max_delay",
    ),
    "run": (
        "task",
        *AT_LEAST_ONE,
        "seed",
        "approval",
        "workspace",
        "cluster",
    ),
    "caps": ("max_calls", "max_tokens_total", "max_cost", "max_prompt_chars"),
    "demo": ("demo_failure_rate", "demo_no_code_rate", "demo_latency"),
    "monitor": (
        "monitor_model",
        "monitor_base_url",
        "monitor_api_key",
        "monitor_timeout",
        "monitor_max_tokens",
    ),
}
