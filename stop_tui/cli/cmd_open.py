"""``stop-tui open [RUN]``: open the app on a saved run (or on the home screen)."""

from __future__ import annotations

import argparse

from stop_tui.cli.common import add_common, settings_from


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "open",
        help="open the app on a saved run (no RUN: the home screen)",
        description="Open the Textual app on a saved run: its generations, improvers, "
        "history and replay. Without RUN, the home screen lists the workspace's runs.",
    )
    parser.add_argument("run_id", metavar="RUN", nargs="?", default=None)
    add_common(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    from stop_tui.tui.launch import launch_open

    return launch_open(settings, args.run_id, unsafe=args.unsafe)
