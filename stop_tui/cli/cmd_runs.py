"""``stop-tui runs``: the runs in a workspace."""

from __future__ import annotations

import argparse
import json
from typing import Any

from stop_tui.cli.store_view import add_workspace_option, console, open_store, runs_table


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("runs", help="list the runs in a workspace")
    add_workspace_option(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    store = open_store(args)
    runs = store.list_runs()
    if args.json:
        print(json.dumps([r.to_json() for r in runs], indent=2))
        return 0
    out = console()
    if not runs:
        out.print(f"No runs in {store.path}.")
        return 0
    out.print(runs_table(runs))
    return 0
