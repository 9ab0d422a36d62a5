"""``stop-tui report SWEEP``: the sweep's figures, CSV/JSON numbers and a Markdown summary."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from stop_tui.cli.common import add_common


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="write a sweep's figures (SVG/PNG), numbers (CSV/JSON) and summary (Markdown)",
    )
    p.add_argument("sweep", metavar="SWEEP", help="sweep id (see 'stop-tui sweeps')")
    p.add_argument("--out", type=Path, metavar="DIR", help="directory (default sweep-report-ID)")
    p.add_argument(
        "--transfer",
        action="store_true",
        help="also run the Table 1-style transfer of the best improvers (runs the model)",
    )
    p.add_argument("--no-figures", action="store_true", help="numbers and summary only")
    add_common(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from stop_tui.cli.cmd_sweep import settings_factory, workspace_store
    from stop_tui.experiments.record import load
    from stop_tui.experiments.report import numbers, write_report
    from stop_tui.experiments.results import collect
    from stop_tui.experiments.stats import compute

    store = workspace_store(args)
    record = load(store, args.sweep)
    cells = collect(store, record)
    stats = compute(cells, record.spec.generations, record.spec.improvement_threshold)
    transfer: list[dict[str, Any]] = []
    if args.transfer:
        from stop_tui.experiments.transfer import transfer_best

        transfer = asyncio.run(
            transfer_best(
                store,
                record,
                cells,
                settings_factory(args),
                unsafe=args.unsafe,
                on_row=lambda what: print(f"transfer {what}: done"),
            )
        )
    out = args.out or Path(f"sweep-report-{record.sweep_id}")
    written = write_report(
        out, numbers(record, cells, stats, transfer), figures=not args.no_figures
    )
    print(f"wrote {len(written)} files to {out}: " + ", ".join(p.name for p in written))
    return 0
