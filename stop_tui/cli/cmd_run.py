"""``stop-tui run``: start a STOP run (the app, or ``--headless`` in the terminal)."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from stop_tui.cli.common import add_run_options, settings_from
from stop_tui.errors import UserError
from stop_tui.settings_shape import Policy
from stop_tui.untrusted import rich_text

if TYPE_CHECKING:  # the engine, rich and the front ends load only when a command runs
    from stop_tui.cli.headless import HeadlessView
    from stop_tui.engine.session import Prepared

#: ``--approve``: a :class:`Policy`, or "ask" (every-candidate, answered at the terminal).
ASK = "ask"
APPROVE_CHOICES = [Policy.AUTO.value, ASK, *(p.value for p in Policy if p is not Policy.AUTO)]
APPROVE_HELP = "who approves generated improvers: ask (at the terminal, every candidate), " + (
    ", ".join(f"{p.value} ({p.help})" for p in Policy)
)


def add_approve(parser: argparse.ArgumentParser, text: str = APPROVE_HELP) -> None:
    parser.add_argument("--approve", choices=APPROVE_CHOICES, default=None, help=text)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="start a self-improvement run",
        description="Start a STOP run: the improver improves itself for N generations.",
    )
    parser.add_argument(
        "--headless", action="store_true", help="run in the terminal without the app"
    )
    add_approve(parser, APPROVE_HELP + "; headless default auto, the app's every-candidate")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the worst case of requests, tokens and dollars the settings allow, "
        "and exit without running",
    )
    add_run_options(parser)
    parser.set_defaults(handler=handle)


def approval_settings(approve: str | None) -> tuple[dict[str, Policy], bool]:
    """(settings overrides, ask at the terminal?) for an ``--approve`` value."""
    if approve is None:
        return {}, False
    if approve == ASK:
        return {"approval": Policy.EVERY_CANDIDATE}, True
    return {"approval": Policy(approve)}, False


def answerer(policy: Policy, ask: bool, *, hint: str) -> bool:
    """Whether the terminal answers approvals (``ask``) for ``policy`` in a headless run;
    a policy that needs a person without a terminal is one error line."""
    from stop_tui.cli.headless import interactive

    if (ask or policy.needs_person) and not interactive():
        what = "--approve ask" if ask else f"approval policy {policy.value}"
        raise UserError(f"{what} needs a terminal to answer at", hint=hint)
    return ask or policy.needs_person


def handle(args: argparse.Namespace) -> int:
    overrides, ask = approval_settings(args.approve)
    settings = settings_from(args, overrides)
    if args.dry_run:
        from stop_tui.lm.forecast import forecast

        print("\n".join(forecast(settings).lines()))
        return 0
    if not args.headless:
        from stop_tui.tui.launch import launch_new_run

        return launch_new_run(settings, unsafe=args.unsafe)
    policy = settings.approval or Policy.AUTO
    ask = answerer(policy, ask, hint="use --approve auto or reject-flagged")
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
    from stop_tui.store.answers import AnswerBoard

    # Log lines are not wrapped (grep-able logs); tables still fit the terminal.
    console = Console(highlight=False, soft_wrap=True)

    async def main() -> tuple[str, HeadlessView]:
        try:
            board = AnswerBoard(prepared.store.lock_dir, prepared.run.run_id)
            where = str(prepared.store.path.resolve())
            return await drive(prepared.run, ask=ask, console=console, board=board, workspace=where)
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
