"""``stop-tui runs``: the runs in a workspace."""

from __future__ import annotations

import argparse
from typing import Any

from stop_tui.cli.store_view import add_list_command, console, open_store, print_json, runs_table


def register(subparsers: Any) -> None:
    add_list_command(
        subparsers, "runs", "list the runs in a workspace", handle, "print JSON instead of a table"
    )


def handle(args: argparse.Namespace) -> int:
    store = open_store(args)
    runs = store.list_runs()
    if args.json:
        return print_json(runs)
    out = console()
    if not runs:
        out.print(f"No runs in {store.path}.")
        return 0
    out.print(runs_table(runs))
    return 0
