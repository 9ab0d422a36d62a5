"""``stop-tui run``: start a STOP run (the app, or ``--headless`` in the terminal)."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from stop_tui.cli.common import add_run_options, settings_from
from stop_tui.errors import UserError
from stop_tui.untrusted import rich_text

if TYPE_CHECKING:  # the engine, rich and the front ends load only when a command runs
    from stop_tui.cli.headless import HeadlessView
    from stop_tui.engine.session import Prepared

APPROVE_CHOICES = ["auto", "ask", "reject-flagged", "every-candidate", "each-generation"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="start a self-improvement run",
        description="Start a STOP run: the improver improves itself for N generations.",
    )
    parser.add_argument(
        "--headless", action="store_true", help="run in the terminal without the app"
    )
    parser.add_argument(
        "--approve",
        choices=APPROVE_CHOICES,
        default=None,
        help="who approves generated improvers: auto (headless default, still audited), "
        "ask (at the terminal), reject-flagged, every-candidate, each-generation",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the worst case of requests, tokens and dollars the settings allow, "
        "and exit without running",
    )
    add_run_options(parser)
    parser.set_defaults(handler=handle)


def approval_settings(approve: str | None) -> tuple[dict[str, str], bool]:
    """(settings overrides, ask at the terminal?) for an ``--approve`` value."""
    from stop_tui.engine.approval import Policy

    if approve is None:
        return {}, False
    if approve == "ask":
        return {"approval": Policy.EVERY_CANDIDATE.value}, True
    return {"approval": approve}, False


def handle(args: argparse.Namespace) -> int:
    from stop_tui.cli.headless import interactive
    from stop_tui.engine.approval import Policy

    overrides, ask = approval_settings(args.approve)
    settings = settings_from(args, overrides)
    if args.dry_run:
        from stop_tui.lm.forecast import forecast

        print("\n".join(forecast(settings).lines()))
        return 0
    if not args.headless:
        from stop_tui.tui.launch import launch_new_run

        return launch_new_run(settings, unsafe=args.unsafe)
    if ask and not interactive():
        raise UserError(
            "--approve ask needs a terminal to answer at",
            hint="use --approve auto or reject-flagged",
        )
    if (
        settings.approval in (Policy.EVERY_CANDIDATE.value, Policy.EACH_GENERATION.value)
        and not ask
    ):
        if not interactive():
            raise UserError(
                f"approval policy {settings.approval} needs someone to answer",
                hint="use --approve ask at a terminal, or --approve auto / reject-flagged",
            )
        ask = True
    from stop_tui.engine.session import prepare_run
    from stop_tui.lm.forecast import forecast

    # Said before anything is spent; the caps are enforced while the run goes, so a
    # worst case above one is a warning (typical runs spend a small share of it).
    for line in forecast(settings).over_caps:
        print(f"note: the worst case is over a cap ({line}); the run stops if it reaches it")
    prepared = prepare_run(settings, default_policy=Policy.AUTO, unsafe=args.unsafe)
    return run_headless(prepared, ask=ask)


def run_headless(prepared: Prepared, *, ask: bool) -> int:
    from rich.console import Console
    from rich.text import Text

    from stop_tui.cli.headless import drive, visible

    # Log lines are not wrapped (grep-able logs); tables still fit the terminal.
    console = Console(highlight=False, soft_wrap=True)

    async def main() -> tuple[str, HeadlessView]:
        try:
            return await drive(prepared.run, ask=ask, console=console)
        finally:
            await prepared.close()

    try:
        status, view = asyncio.run(main())
    except KeyboardInterrupt:
        console.print(
            rich_text(
                "stopped; the run is saved. Continue it with: "
                f"stop-tui resume {prepared.run.run_id}"
            )
        )
        return 130
    console.print(view.summary_table())
    if view.model.lm_failures:
        failed = Text(f"{view.model.lm_failures} language-model requests failed; last: ", "red")
        failed.append(visible(view.model.last_lm_error))
        console.print(failed)
    console.print(
        rich_text(
            f"{view.model.circumvention}; "
            f"workspace {prepared.store.path}, branch stop/{prepared.run.run_id}"
        )
    )
    if status != "finished":
        console.print(rich_text(f"run ended: {status}"))
        return 1
    return 0
