"""``stop-tui sweep FILE``: run a sweep (tasks x models x seeds x variants) of ordinary runs."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stop_tui.cli.cmd_run import ASK
from stop_tui.cli.common import add_cluster, add_common
from stop_tui.errors import UserError
from stop_tui.settings_shape import Policy

if TYPE_CHECKING:
    from stop_tui.config import Settings
    from stop_tui.experiments.controller import SweepController

#: The policies no one has to answer, and "ask" (the terminal answers).
APPROVE_CHOICES = [ASK, *(p.value for p in Policy if not p.needs_person)]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "sweep",
        help="run a sweep of runs from a sweep file (see docs/experiments.md)",
        description="Run every cell of a sweep file as an ordinary run, several at once.",
    )
    parser.add_argument(
        "file",
        metavar="FILE",
        type=Path,
        nargs="?",
        help="the sweep's TOML file (none: the app's new-sweep form)",
    )
    parser.add_argument("--headless", action="store_true", help="run in the terminal")
    parser.add_argument(
        "--approve",
        choices=APPROVE_CHOICES,
        default=None,
        help="override the file's approval: auto, ask (at the terminal), reject-flagged",
    )
    add_cluster(parser)
    add_common(parser)
    parser.set_defaults(handler=handle)


def settings_factory(args: argparse.Namespace) -> Any:
    """Cell overrides -> Settings, with the user's stop.toml and environment underneath
    (``--cluster`` over both: where the work runs is not part of the sweep file)."""
    from stop_tui.config import load_settings, parse_cluster

    cluster = getattr(args, "cluster", None)
    flags = {} if cluster is None else {"cluster": parse_cluster(cluster)}  # bad: one line now

    def settings_for(overrides: dict[str, Any]) -> Settings:
        return load_settings({**overrides, **flags}, getattr(args, "config", None))

    return settings_for


def workspace_store(args: argparse.Namespace) -> Any:
    from stop_tui.store.store import RunStore

    settings = settings_factory(args)(
        {"model": "demo"}
        if args.workspace is None
        else {"model": "demo", "workspace": args.workspace}
    )
    return RunStore(settings.workspace, create=True)


def handle(args: argparse.Namespace) -> int:
    from stop_tui.experiments.record import SweepRecord, save
    from stop_tui.experiments.spec import load_sweep

    if args.file is None:
        if args.headless:
            raise UserError(
                "a headless sweep needs a sweep file", hint="stop-tui sweep FILE --headless"
            )
        from stop_tui.tui.launch import launch_sweep

        return launch_sweep(workspace_store(args), settings_factory(args), unsafe=args.unsafe)
    spec, text = load_sweep(args.file)
    if args.approve is not None:
        spec = spec.model_copy(update={"approval": args.approve})
    ask = _check_answerable(spec.approval, args.headless)
    store = workspace_store(args)
    record = SweepRecord.new(spec, text)
    save(store, record, f"created ({len(record.cells)} cells)")
    return run_sweep(args, store, record, ask=ask)


def _check_answerable(approval: str, headless: bool) -> bool:
    """Whether a headless sweep asks at the terminal; an error when it must and cannot."""
    from stop_tui.cli.headless import interactive

    ask = approval in ("ask", "every-candidate", "each-generation")
    if ask and headless and not interactive():
        raise UserError(
            f"approval '{approval}' needs a terminal to answer at",
            hint="use --approve auto or reject-flagged, or run without --headless",
        )
    return ask


def run_sweep(args: argparse.Namespace, store: Any, record: Any, *, ask: bool) -> int:
    from stop_tui.experiments.controller import SweepController

    controller = SweepController(record, store, settings_factory(args), unsafe=args.unsafe)
    if not args.headless:
        from stop_tui.tui.launch import launch_sweep

        return launch_sweep(store, controller.settings_for, controller, unsafe=args.unsafe)
    return run_headless(controller, ask=ask)


def run_headless(controller: SweepController, *, ask: bool) -> int:
    from rich.console import Console
    from rich.markup import escape

    from stop_tui.cli.sweep_view import drive

    console = Console(highlight=False, soft_wrap=True)
    sweep_id = controller.record.sweep_id
    console.print(
        f"sweep [bold]{sweep_id}[/]: {len(controller.record.cells)} cells, "
        f"{controller.record.spec.concurrency} at once; workspace {controller.store.path}"
    )
    try:
        result, view = asyncio.run(drive(controller, console, ask=ask))
    except KeyboardInterrupt:
        console.print(f"stopped; the sweep is saved. Continue it with: stop-tui resume {sweep_id}")
        return 130
    console.print(view.table(result))
    for where in result.clusters.values():
        console.print(f"sandboxed work ran on {escape(where)}")
    console.print(
        f"peak concurrency {result.peak_concurrency}; "
        f"LM requests {result.budget.get('calls_used', 0)}; "
        f"git: refs/stop-sweeps/{sweep_id}; report: stop-tui report {sweep_id}"
    )
    return 0 if result.ok else 1


def resume(args: argparse.Namespace) -> int:
    """``stop-tui resume SWEEP``: finished cells skipped, the others resumed or started."""
    from stop_tui.experiments.record import load

    store = workspace_store(args)
    record = load(store, args.run_id)
    spec = record.spec
    if args.approve is not None:
        if args.approve not in APPROVE_CHOICES:
            raise UserError(
                f"--approve {args.approve} does not apply to a sweep",
                hint="use " + ", ".join(APPROVE_CHOICES),
            )
        spec = spec.model_copy(update={"approval": args.approve})
        for entry in record.cells:
            entry.cell.overrides["approval"] = (
                "every-candidate" if args.approve == "ask" else args.approve
            )
    if args.generations is not None:
        raise UserError(
            "--generations does not apply to a sweep", hint="set generations in a new sweep file"
        )
    ask = _check_answerable(spec.approval, args.headless)
    return run_sweep(args, store, record, ask=ask)
