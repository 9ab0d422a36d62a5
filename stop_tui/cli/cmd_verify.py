"""``stop-tui verify RUN``: check a run's history end to end and print one line per check."""

from __future__ import annotations

import argparse
from typing import Any

from stop_tui.cli.store_view import add_workspace_option, open_store


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "verify",
        help="check a run's integrity: sources vs hashes, decisions, records, transcripts",
        description="Check a run end to end: every improver.py against the sha256 its record "
        "names, every decision against the source it decided, records against their commits' "
        "trailers, transcripts against their hashes and usage, the chain of parents, the "
        "refs, and (where decision commits are signed) each signature with git verify-commit. "
        "Exit 0 when every check passes, 1 otherwise.",
    )
    p.add_argument("run_id", metavar="RUN")
    add_workspace_option(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from stop_tui.store.verify import verify_run
    from stop_tui.untrusted import visible

    report = verify_run(open_store(args), args.run_id)
    for line in report.lines():
        print(visible(line))  # problems may quote a hostile commit's refs, paths, trailers
    return 0 if report.ok else 1
