"""Shared bits of the store commands: the --workspace option, list commands and rich tables."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stop_tui.store import WORKSPACE_ENV, RunInfo, RunStore, StepInfo
from stop_tui.untrusted import rich_text
from stop_tui.view import text

if TYPE_CHECKING:  # rich loads when a table is printed, not when the parser is built
    from rich.console import Console
    from rich.table import Table


def add_workspace_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workspace",
        metavar="DIR",
        type=Path,
        default=None,
        help=f"run workspace (a git repository; default ${WORKSPACE_ENV} or ./stop-runs)",
    )


def add_list_command(
    subparsers: Any,
    name: str,
    help: str,
    handler: Callable[[argparse.Namespace], int],
    json_help: str,
) -> argparse.ArgumentParser:
    """A command that lists what a workspace holds: ``--workspace`` and ``--json``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help)
    add_workspace_option(parser)
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.set_defaults(handler=handler)
    return parser


def print_json(items: Iterable[Any]) -> int:
    """``--json``: each item's ``to_json()``, as one indented JSON list."""
    print(json.dumps([item.to_json() for item in items], indent=2))
    return 0


def open_store(args: argparse.Namespace, *, create: bool = False) -> RunStore:
    return RunStore(args.workspace, create=create)


def console() -> Console:
    # Piped output is not cut to 80 columns: tables stay one row per line for grep and less.
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def short_summary(subject: str) -> str:
    """The commit subject without the "gen N:" prefix and the score suffix (own columns)."""
    text = subject.split(": ", 1)[-1]
    for tail in (", meta-utility ", ", not evaluated"):
        if tail in text:
            text = text.rsplit(tail, 1)[0]
    return text


def fmt(value: float | None, digits: int = 3) -> str:
    """A score as the store commands print it (plain ``-`` when there is none)."""
    return text.fmt(value, digits, missing="-")


def runs_table(runs: list[RunInfo]) -> Table:
    from rich.table import Table

    table = Table(show_lines=False)
    for col in ("run", "task", "model", "status", "gens", "best", "cost", "created"):
        table.add_column(
            col, justify="right" if col in ("gens", "best", "cost") else "left", no_wrap=True
        )
    for r in runs:
        cells = (
            r.run_id, r.task, r.model, r.status, str(r.generations),
            fmt(r.best_meta_utility), "-" if r.cost is None else f"${r.cost:.2f}", r.created,
        )  # fmt: skip
        table.add_row(*(rich_text(cell) for cell in cells))  # store text: shown, never parsed
    return table


def flag_codes(flags: list[str] | tuple[str, ...]) -> str:
    """The flags' categories with their counts, e.g. ``hidden×6, escape`` (the table stays
    one row a line; ``show RUN GEN`` prints each flag in full)."""
    counts: dict[str, int] = {}
    for flag in flags:
        category = flag.split("/", 1)[0] if "/" in flag else flag.split(":", 1)[0]
        counts[category] = counts.get(category, 0) + 1
    return ", ".join(k + (f"×{n}" if n > 1 else "") for k, n in counts.items()) or "-"


def steps_table(steps: list[StepInfo], best: str | None) -> Table:
    from rich.table import Table

    table = Table(show_lines=False)
    right = ("gen", "cand", "meta-utility", "test")
    for col in (
        "gen",
        "kind",
        "cand",
        "meta-utility",
        "test",
        "mark",
        "decision",
        "flags",
        "commit",
        "summary",
    ):
        table.add_column(col, justify="right" if col in right else "left",
                         no_wrap=col != "summary", overflow="ellipsis")  # fmt: skip
    for s in steps:
        mark = "best" if s.commit == best else ("taken" if s.adopted else "")
        cells = (
            str(s.generation), s.kind, "-" if s.candidate is None else str(s.candidate),
            fmt(s.meta_utility), fmt(s.test_utility), mark, s.decision,
            flag_codes(s.flags), s.commit[:10], short_summary(s.summary),
        )  # fmt: skip
        table.add_row(*(rich_text(cell) for cell in cells))
    return table
