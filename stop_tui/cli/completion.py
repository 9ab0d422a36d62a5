"""Shell completion (bash, zsh, fish) through argcomplete: commands, options, run ids
and task names.

The shell calls ``stop-tui`` with ``_ARGCOMPLETE`` set; :func:`autocomplete` then
answers from the parser and exits before any command runs. The parser itself is
cheap (commands import their heavy modules only when they run); the store and the
task registry load only when a run id or a task name is being completed.
"""

from __future__ import annotations

import argparse
import os
from typing import Any


def run_ids(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """The run ids of the workspace the command would use (``--workspace``, stop.toml,
    ``STOP_TUI_WORKSPACE``, ``./stop-runs``); nothing when it cannot be read."""
    from stop_tui.errors import UserError
    from stop_tui.store.store import RunStore

    workspace = getattr(parsed_args, "workspace", None)
    try:
        if workspace is None:
            from stop_tui.cli.common import settings_from

            workspace = settings_from(parsed_args, {"model": "demo"}).workspace
    except UserError:
        workspace = None  # a broken stop.toml: fall back to the store's default
    try:
        runs = RunStore(workspace).list_runs()
    except (UserError, OSError):
        return []
    return [run.run_id for run in runs if run.run_id.startswith(prefix)]


def task_names(prefix: str, **_: Any) -> list[str]:
    """The tasks of the registry (the folders of ``tasks/``)."""
    from stop_tui.tasks.registry import task_names as names

    return [name for name in names() if name.startswith(prefix)]


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += _subparsers(sub)
    return found


def attach_completers(parser: argparse.ArgumentParser) -> None:
    """Complete every RUN argument with run ids and every task option with task names."""
    for each in _subparsers(parser):
        for action in each._actions:
            if action.metavar == "RUN":
                action.completer = run_ids  # type: ignore[attr-defined]
            elif action.dest in ("task", "tasks") or action.metavar == "TASK":
                action.completer = task_names  # type: ignore[attr-defined]


def autocomplete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request, if this is one (then exit)."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    attach_completers(parser)
    argcomplete.autocomplete(parser)
