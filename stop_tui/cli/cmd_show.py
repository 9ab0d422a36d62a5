"""``stop-tui show RUN [GEN]``: a run's generations and candidates, or one improver."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from stop_tui.cli.store_view import add_workspace_option, console, fmt, open_store, steps_table
from stop_tui.untrusted import rich_text, visible


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "show",
        help="show a run's generations and candidates, or one generation's record and source",
    )
    p.add_argument(
        "run",
        metavar="RUN",
        help="run id (see 'stop-tui runs'), or a sweep id (see 'stop-tui sweeps')",
    )
    p.add_argument(
        "gen",
        metavar="GEN",
        nargs="?",
        help="generation (3), candidate (3.1), 'best' or a commit id",
    )
    add_workspace_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.run.startswith("sweep-") and args.gen is None:
        from stop_tui.cli.cmd_sweeps import show

        return show(args)
    store = open_store(args)
    store.require_run(args.run)
    out = console()
    if args.gen is None:
        steps = store.list_steps(args.run)
        best = store.best(args.run)
        if args.json:
            print(json.dumps([s.to_json() for s in steps], indent=2))
            return 0
        config = store.get_config(args.run)
        state = store.get_state(args.run)
        out.print(
            rich_text(
                f"run {args.run}: task {config.task}, model {config.model}, "
                f"status {state.status if state else 'unknown'}, "
                f"best {fmt(best.meta_utility if best else None)}"
                + (f" (gen {best.generation}, {best.commit[:10]})" if best else "")
            )
        )
        if state is not None and state.message and state.status != "finished":
            # The run's own last word (e.g. why the endpoint stopped it): endpoint text
            # inside is untrusted, so printed as plain text with controls made visible.
            out.print(f"ended: {visible(state.message)}", markup=False)
        out.print(steps_table(steps, best.commit if best else None))
        from stop_tui.engine.audit import circumvention_line

        out.print(rich_text(circumvention_line(s.flags for s in steps if s.kind == "candidate")))
        out.print(
            rich_text(
                "mark: best = the run's best improver, taken = a candidate a generation adopted.\n"
                f"Plain git: git -C {store.path} log --all --graph --oneline"
            )
        )
        return 0
    from stop_tui.engine.audit import review_warnings

    commit = store.resolve(args.run, args.gen)
    record = store.get_record(commit)
    source = store.get_source(commit)
    if args.json:
        data = {"commit": commit, "record": record.to_json(), "source": source}
        print(json.dumps(data, indent=2))
        return 0
    head = f"gen {record.generation} {record.kind}"
    if record.kind == "candidate":
        head += f" {record.candidate}"
    lines = [
        f"{head}  commit {commit}",
        f"summary: {record.summary}",
        f"meta-utility: {fmt(record.meta_utility)} (test split {fmt(record.test_utility)})",
    ]
    from stop_tui.engine.evidence import scores_lines  # scipy only when it is used

    lines += ["  " + line for line in scores_lines(record)]
    for t in record.tests:
        err = f"  error: {t.error}" if t.error else ""
        lines.append(f"  test {t.index}: val {fmt(t.val)}, test {fmt(t.test)}{err}")
    if record.budget:
        lines.append("budget: " + ", ".join(f"{k} {v}" for k, v in sorted(record.budget.items())))
    lines.append("flags: " + (", ".join(record.flags) or "none"))
    if record.decision:
        d = record.decision
        lines.append(
            f"decision: {d.action} by {d.by or '-'} at {d.at or '-'}"
            + (" (edited)" if d.edited else "")
            + (f": {d.reason}" if d.reason else "")
        )
        from stop_tui.engine.evidence import MonitorNote

        note = MonitorNote.from_json(d.monitor)  # untrusted text: printed through rich_text
        if note is not None:
            lines += [note.heading(), *("  " + line for line in note.text.split("\n"))]
    for line in lines:
        out.print(rich_text(line))
    for warning in review_warnings(source):
        out.print(warning, style="bold red", markup=False)  # our words, escapes already made
    out.print("--- improver.py (hidden and control characters shown as ⟦…⟧; --json: exact text)")
    sys.stdout.flush()
    shown = visible(source)
    sys.stdout.write(shown if shown.endswith("\n") else shown + "\n")
    return 0
