"""``stop-tui import FILE``: bring a run bundle into a workspace."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from stop_tui.cli.store_view import add_workspace_option, open_store
from stop_tui.untrusted import visible


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "import", help="import a run bundle made by 'stop-tui export --bundle'"
    )
    p.add_argument("file", metavar="FILE", type=Path, help="the .bundle file")
    add_workspace_option(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    store = open_store(args, create=True)
    for rid in store.import_bundle(args.file):
        n = len(store.list_steps(rid))
        print(visible(f"imported run {rid} ({n} improvers) into {store.path}"))
    return 0
