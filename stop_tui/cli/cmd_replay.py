"""``stop-tui replay RUN``: re-execute a saved run offline and check every score and source."""

from __future__ import annotations

import argparse
import asyncio

from stop_tui.cli.common import add_common, saved_run_settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "replay",
        help="re-run a saved run offline from its transcripts and check every score",
        description="Replay a run with no network: LM responses from the recorded "
        "transcripts, approvals from the recorded decisions, the same seeds. Stops at "
        "the first score or reproduced source that differs from the committed one; refuses "
        "a run whose history does not verify ('stop-tui verify RUN').",
    )
    parser.add_argument("run_id", metavar="RUN")
    parser.add_argument(
        "--branch", action="store_true", help="also write the replay as a new run for comparison"
    )
    add_common(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    settings = saved_run_settings(args, args.run_id)
    from stop_tui.engine.replay import replay
    from stop_tui.sandbox.api import Sandbox
    from stop_tui.store.store import RunStore

    store = RunStore(settings.workspace)
    store.require_run(args.run_id)
    console = Console(highlight=False)

    async def main():
        async with Sandbox(unsafe=args.unsafe) as sandbox:
            return await replay(store, args.run_id, sandbox=sandbox, to_branch=args.branch)

    report = asyncio.run(main())
    from rich.text import Text

    from stop_tui.untrusted import rich_text

    table = Table(title=rich_text(f"replay of {args.run_id}"))
    for column in ("step", "recorded", "replayed", "match"):
        table.add_column(column)
    for step in report.steps:
        recorded = "—" if step.recorded is None else f"{step.recorded:.6f}"
        table.add_row(
            rich_text(step.label),
            recorded,
            f"{step.replayed:.6f}",
            Text("yes", style="green") if step.matches else Text("NO", style="bold red"),
        )
    console.print(table)
    if report.new_run:
        console.print(rich_text(f"replay written as run {report.new_run}"))
    if report.legacy:
        console.print(Text("sources: unverifiable: recorded before source hashes"))
    if report.ok:
        console.print(
            f"[green]every score matches[/] ({len(report.steps)} meta-utility evaluations); "
            f"every reproduced source matches its commit ({report.sources_matched} sources)"
        )
        return 0
    console.print(
        Text.assemble(("replay diverged: ", "bold red"), rich_text(str(report.divergence)))
    )
    return 1
