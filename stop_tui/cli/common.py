"""Options shared by the commands that start or continue runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the settings machinery (pydantic) loads only when a command runs
    from stop_tui.config import Settings

# (flag, settings key, type, help)
RUN_OPTIONS: list[tuple[str, str, type, str]] = [
    (
        "--cluster",
        "cluster",
        str,
        "run sandboxed work on a Ray cluster: ray, ray://HOST:PORT or HOST:PORT",
    ),
    ("--task", "task", str, "downstream task (see 'stop-tui tasks'; default parity_noise)"),
    ("--model", "model", str, "model name, or 'demo' for the offline scripted demo"),
    ("--base-url", "base_url", str, "OpenAI-compatible endpoint URL"),
    ("--generations", "generations", int, "self-improvement generations (default 6)"),
    ("--max-responses-per-call", "max_responses_per_call", int, "default 6"),
    ("--lm-budget", "lm_budget", int, "language-model calls per improver run (default 4)"),
    ("--utility-budget", "utility_budget", int, "utility calls per improver run (default 25)"),
    (
        "--meta-utility-budget",
        "meta_utility_budget",
        int,
        "meta-utility calls per generation (default 25)",
    ),
    (
        "--meta-utility-tests",
        "meta_utility_tests",
        int,
        "downstream runs per meta-utility (default 5)",
    ),
    (
        "--max-tokens",
        "max_tokens",
        int,
        "tokens one response may have (default 4096; reasoning models: max_completion_tokens)",
    ),
    ("--seed", "seed", int, "seed of evaluations and of the demo model (default 0)"),
    # caps take a number or "none" (checked by the settings, with the others)
    ("--max-calls", "max_calls", str, "hard cap on LM requests for the whole run"),
    ("--max-tokens-total", "max_tokens_total", str, "hard cap on tokens for the whole run"),
    ("--max-cost", "max_cost", str, "hard cap on dollars (priced models: 20; none)"),
    ("--max-prompt-chars", "max_prompt_chars", int, "characters per LM request (65536)"),
    ("--demo-latency", "demo_latency", float, "simulated seconds per demo request"),
    ("--demo-failure-rate", "demo_failure_rate", float, "share of demo answers with broken code"),
]


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="a stop.toml to read")
    parser.add_argument(
        "--workspace", type=Path, metavar="DIR", help="the runs' git workspace (default stop-runs)"
    )
    parser.add_argument(
        "--unsafe",
        action="store_true",
        help="run generated code even where isolation is weaker than the full stack",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    group = parser.add_argument_group("run settings (override stop.toml and STOP_TUI_*)")
    for flag, key, kind, text in RUN_OPTIONS:
        group.add_argument(flag, dest=key, type=kind, default=None, help=text, metavar=key.upper())


def settings_from(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Settings:
    overrides: dict[str, Any] = {}
    for _, key, _, _ in RUN_OPTIONS:
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "workspace", None) is not None:
        overrides["workspace"] = args.workspace
    overrides.update(extra or {})
    from stop_tui.config import load_settings

    return load_settings(overrides, getattr(args, "config", None))


def saved_run_settings(args: argparse.Namespace, run_id: str) -> Settings:
    """Settings for a command on a saved run (resume, replay): the model is the run's.

    These commands have no --model; without this, an endpoint or API key set in
    stop.toml or the environment (OPENAI_BASE_URL, OPENAI_API_KEY) made every setting
    load fail with "no model is set", so a run could not be resumed or replayed.
    """
    from stop_tui.store.store import RunStore

    first = settings_from(args, {"model": "demo"})  # only to find the workspace
    store = RunStore(first.workspace)
    model = "demo"
    if store.exists and store.has_run(run_id):
        model = store.get_config(run_id).model or "demo"
    return settings_from(args, {"model": model})
