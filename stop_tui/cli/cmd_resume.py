"""``stop-tui resume RUN``: continue a saved run from its last committed step."""

from __future__ import annotations

import argparse

from stop_tui.cli.cmd_run import add_approve, answerer, approval_settings, run_headless
from stop_tui.cli.common import add_cluster, add_common, saved_run_settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "resume",
        help="continue a saved run",
        description="Continue a run from its last committed step. LM responses already "
        "paid for are served from the run's transcript, not bought again.",
    )
    parser.add_argument("run_id", metavar="RUN", help="run id, or a sweep id (sweep-...)")
    parser.add_argument("--generations", type=int, help="raise the run's number of generations")
    add_approve(parser)
    parser.add_argument(
        "--headless", action="store_true", help="run in the terminal without the app"
    )
    for flag, key in (
        ("--max-calls", "max_calls"),
        ("--max-tokens-total", "max_tokens_total"),
        ("--max-cost", "max_cost"),
    ):
        parser.add_argument(
            flag, dest=key, metavar=key.upper(), help="raise (or set, or 'none') the run's cap"
        )
    parser.add_argument(
        "--max-tokens",
        dest="max_tokens",
        type=int,
        metavar="MAX_TOKENS",
        help="tokens one response may have from now on (default 4096)",
    )
    add_cluster(parser)
    add_common(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.run_id.startswith("sweep-"):
        from stop_tui.cli.cmd_sweep import resume

        return resume(args)
    overrides, ask = approval_settings(args.approve)
    settings = saved_run_settings(args, args.run_id, overrides)
    from stop_tui.engine.session import RESUME_CAPS, prepare_resume, resume_policy, saved_run

    caps = {key: getattr(settings, key) for key in RESUME_CAPS if getattr(args, key) is not None}
    if not args.headless:
        from stop_tui.tui.launch import launch_resume

        return launch_resume(
            settings, args.run_id, unsafe=args.unsafe, generations=args.generations, caps=caps
        )
    # the policy: --approve > STOP_TUI_APPROVAL > stop.toml > the saved run's (resume_policy)
    policy = resume_policy(settings, saved_run(settings, args.run_id)[1])
    ask = answerer(policy, ask, hint="use --approve auto")
    prepared = prepare_resume(
        settings, args.run_id, unsafe=args.unsafe, generations=args.generations, caps=caps
    )
    return run_headless(prepared, ask=ask)
