"""``stop-tui export RUN``: scores as JSON/CSV, or the whole run as a git bundle."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stop_tui.cli.store_view import add_workspace_option, open_store
from stop_tui.errors import UserError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("export", help="export a run's scores (json/csv) or a git bundle")
    p.add_argument("run", metavar="RUN", help="run id (see 'stop-tui runs')")
    p.add_argument("--format", choices=("json", "csv"), default=None, help="scores format")
    p.add_argument("-o", "--output", metavar="FILE", type=Path, help="write scores to FILE")
    p.add_argument("--bundle", metavar="FILE", type=Path, help="write a git bundle of the run")
    add_workspace_option(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    store = open_store(args)
    if args.bundle is not None:
        if args.format or args.output:
            raise UserError(
                "--bundle cannot be combined with --format or -o",
                hint="export scores and the bundle with two commands",
            )
        path = store.export_bundle(args.run, args.bundle)
        print(f"wrote {path} (import with 'stop-tui import {path}')")
        return 0
    text = store.export_scores(args.run, args.format or "json")
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
