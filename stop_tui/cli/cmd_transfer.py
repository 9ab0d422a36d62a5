"""``stop-tui transfer IMPROVER_FILE``: the paper's Table 1 for any improver."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from stop_tui.cli.cmd_eval import read_source
from stop_tui.cli.common import add_run_options, settings_from
from stop_tui.errors import UserError
from stop_tui.untrusted import rich_text

DEFAULT_TASKS = [
    "str_grid_dist",
    "modified_quadratic_assignment",
    "three_sat",
    "maxcut",
    "parity_noiseless",
]
PAPER = {  # Table 1 of the paper (GPT-4): original / seed improver / improved improver, %
    "str_grid_dist": (43.9, 44.3, 56.7),
    "modified_quadratic_assignment": (20.4, 20.6, 22.1),
    "three_sat": (0.0, 21.2, 75.1),
    "maxcut": (0.0, 58.7, 74.2),
    "parity_noiseless": (50.0, 59.3, 81.7),
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "transfer",
        help="evaluate an improver on other tasks (the paper's Table 1)",
        description="Per task: the original solution's utility, the seed improver's "
        "meta-utility and the given improver's, on the test split (mean ± standard error).",
    )
    parser.add_argument("improver", type=Path, metavar="IMPROVER_FILE")
    parser.add_argument("--tasks", nargs="+", metavar="TASK", default=None)
    parser.add_argument("--repeats", type=int, default=1, help="independent repeats per task")
    parser.add_argument("--json", action="store_true")
    add_run_options(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    if args.repeats < 1:
        raise UserError("--repeats must be at least 1")
    improver = read_source(args.improver, "improver")
    settings = settings_from(args)
    from stop_tui.config import make_backend
    from stop_tui.engine.approval import Policy
    from stop_tui.engine.session import run_config, seed_improver
    from stop_tui.engine.transfer import transfer_table
    from stop_tui.sandbox.api import Sandbox
    from stop_tui.tasks.registry import get_task

    tasks = args.tasks or DEFAULT_TASKS
    for name in tasks:
        get_task(name)
    config = run_config(settings, default_policy=Policy.AUTO).replace(approval="auto")
    console = Console(highlight=False, stderr=args.json)

    async def main():
        backend = make_backend(settings)
        try:
            async with Sandbox(unsafe=args.unsafe) as sandbox:
                return await transfer_table(
                    improver,
                    seed_improver(),
                    tasks,
                    config=config,
                    sandbox=sandbox,
                    backend=backend,
                    repeats=args.repeats,
                    on_row=lambda row: console.print(rich_text(f"{row.task}: done")),
                )
        finally:
            await backend.aclose()

    rows = asyncio.run(main())
    if args.json:
        print(json.dumps([row.to_dict() for row in rows], indent=2))
        return 0
    table = Table(
        title=rich_text(
            f"transfer of {args.improver} (test split, {args.repeats} repeat(s), "
            f"model {config.model})"
        )
    )
    for column in (
        "task",
        "original u(s)",
        "seed improver",
        "this improver",
        "paper (orig / seed / improved)",
    ):
        table.add_column(column)
    for row in rows:
        paper = PAPER.get(row.task)
        table.add_row(
            rich_text(row.task),
            f"{100 * row.original:.1f}%",
            row.seed_improver.percent(),
            row.improver.percent(),
            " / ".join(f"{v:.1f}%" for v in paper) if paper else "—",
        )
    console.print(table)
    return 0
