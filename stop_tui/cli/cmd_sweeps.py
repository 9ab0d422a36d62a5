"""``stop-tui sweeps``: the sweeps of a workspace, newest first; ``show SWEEP`` summarises one."""

from __future__ import annotations

import argparse
import json
from typing import Any

from stop_tui.cli.store_view import add_list_command, console, fmt, open_store, print_json
from stop_tui.untrusted import rich_text


def register(subparsers: Any) -> None:
    add_list_command(subparsers, "sweeps", "list the sweeps of the workspace", handle, "print JSON")


def handle(args: argparse.Namespace) -> int:
    from rich.table import Table

    from stop_tui.experiments.record import list_sweeps

    store = open_store(args)
    sweeps = list_sweeps(store)
    if args.json:
        return print_json(sweeps)
    states = {r.run_id: r.status for r in store.list_runs()} if store.exists else {}
    table = Table()
    for col in ("sweep", "name", "cells", "finished", "status", "created"):
        table.add_column(col)
    for r in sweeps:
        done = sum(1 for e in r.cells if states.get(e.run_id) == "finished")
        cells = (r.sweep_id, r.spec.name or "-", str(len(r.cells)), str(done), r.status, r.created)
        table.add_row(*(rich_text(cell) for cell in cells))  # store text: shown, never parsed
    console().print(table)
    if not sweeps:
        console().print("no sweeps yet: stop-tui sweep FILE (see docs/experiments.md)")
    return 0


def show(args: argparse.Namespace) -> int:
    """A sweep's cells and its statistics."""
    from rich.table import Table

    from stop_tui.experiments.record import load
    from stop_tui.experiments.results import collect
    from stop_tui.experiments.stats import compute

    store = open_store(args)
    record = load(store, args.run)
    cells = collect(store, record)
    stats = compute(cells, record.spec.generations, record.spec.improvement_threshold)
    if args.json:
        from stop_tui.experiments.report import numbers

        print(json.dumps(numbers(record, cells, stats), indent=2))
        return 0
    out = console()
    out.print(
        rich_text(
            f"sweep {record.sweep_id} {record.spec.name!r}: {len(cells)} cells, "
            f"status {record.status}, stop-tui {record.software_version}; "
            f"git show refs/stop-sweeps/{record.sweep_id}:runs.txt"
        )
    )
    table = Table(title="cells")
    for col in ("cell", "run", "status", "gens", "gen 0", "last", "test last"):
        table.add_column(col)
    for c in cells:
        last = c.completed
        row = (
            c.key, c.run_id, c.status, str(max(last, 0)), fmt(c.val.get(0)),
            fmt(c.val.get(last)), fmt(c.test.get(last)),
        )  # fmt: skip
        table.add_row(*(rich_text(cell) for cell in row))
    out.print(table)
    out.print(stats_table(stats))
    return 0


def stats_table(stats: Any) -> Any:
    from rich.table import Table

    from stop_tui.experiments.report import ci_text as ci

    table = Table(
        title=f"meta-utility per generation (mean, {int(stats.confidence * 100)}% CI over seeds)"
    )
    for col in (
        "task",
        "model",
        "variant",
        "gen",
        "n",
        "val",
        "test",
        "change vs gen 0",
        "val-test gap",
    ):
        table.add_column(col)

    for p in stats.curve:
        table.add_row(
            rich_text(p.task), rich_text(p.model), rich_text(p.variant), str(p.generation), str(p.val.n),
            ci(p.val.mean, p.val.low, p.val.high), ci(p.test.mean, p.test.low, p.test.high),
            ci(p.change.mean, p.change.low, p.change.high), ci(p.gap.mean, p.gap.low, p.gap.high),
        )  # fmt: skip
    return table
