"""Options shared by the commands that start or continue runs (generated from the settings)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the settings machinery (pydantic) loads only when a command runs
    from stop_tui.config import Settings


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


def add_cluster(parser: argparse.ArgumentParser) -> None:
    """``--cluster`` for the commands that take no other run setting (sweep, resume)."""
    from stop_tui.settings_shape import RUN_OPTIONS

    parser.add_argument(
        "--cluster", default=None, metavar="CLUSTER", help=RUN_OPTIONS["cluster"].description
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    from stop_tui.settings_shape import cli_options

    group = parser.add_argument_group("run settings (override stop.toml and STOP_TUI_*)")
    for flag, key, kind, text in cli_options():
        group.add_argument(flag, dest=key, type=kind, default=None, help=text, metavar=key.upper())


def settings_from(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Settings:
    from stop_tui.config import load_settings
    from stop_tui.settings_shape import cli_options

    overrides: dict[str, Any] = {}
    for _, key, _, _ in cli_options():
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "workspace", None) is not None:
        overrides["workspace"] = args.workspace
    overrides.update(extra or {})
    return load_settings(overrides, getattr(args, "config", None))


def saved_run_settings(
    args: argparse.Namespace, run_id: str, extra: dict[str, Any] | None = None
) -> Settings:
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
    return settings_from(args, {**(extra or {}), "model": model})
