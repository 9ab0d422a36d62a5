"""``stop-tui tasks``: list the downstream tasks, or show one task's details."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stop_tui.tasks import Task


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tasks",
        help="list the downstream tasks",
        description=(
            "List the downstream tasks (name, title, entry point, time limit, split "
            "sizes). With NAME, show that task and the public utility the LM sees."
        ),
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="show one task in detail")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def _summary(task: Task) -> dict[str, Any]:
    return {
        "name": task.name,
        "title": task.title,
        "entry_point": task.entry_point,
        "signature": task.signature,
        "time_limit": task.time_limit,
        "splits": {name: split.count for name, split in task.splits.items()},
        "description": task.description,
    }


def _first_sentence(text: str) -> str:
    sentence, dot, _rest = text.partition(". ")
    return sentence + ("." if dot else "")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    if args.name:
        from stop_tui.tasks import get_task

        task = get_task(args.name)
        if args.json:
            print(json.dumps({**_summary(task), "public_utility": task.public_utility}, indent=2))
            return 0
        console = Console()
        console.print(f"[bold]{escape(task.name)}[/bold]: {escape(task.title)}")
        console.print(task.description, highlight=False, markup=False)
        console.print(f"entry point: {task.signature}", highlight=False, markup=False)
        console.print(f"time limit: {task.time_limit:g} s per instance", highlight=False)
        splits = ", ".join(f"{name} {split.count}" for name, split in task.splits.items())
        console.print(f"instances: {splits}", highlight=False)
        console.print("\npublic utility (what the language model sees):\n")
        sys.stdout.write(task.public_utility)
        return 0

    from stop_tui.tasks import list_tasks

    tasks = list_tasks()
    if args.json:
        print(json.dumps([_summary(task) for task in tasks], indent=2))
        return 0
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 140))  # pipes and files: no cramped wrapping
    table = Table(title="stop-tui tasks", title_justify="left")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("entry point", no_wrap=True)
    table.add_column("limit", justify="right", no_wrap=True)
    table.add_column("val/test", justify="right", no_wrap=True)
    table.add_column("task")
    for task in tasks:
        sizes = "/".join(str(task.splits[name].count) for name in ("val", "test"))
        table.add_row(
            Text(task.name),
            Text(f"{task.entry_point}()"),
            f"{task.time_limit:g} s",
            sizes,
            Text(f"{task.title}: {_first_sentence(task.description)}"),
        )
    console.print(table, highlight=False)
    return 0
