"""``stop-tui doctor``: what protects this machine, and what does not.

Prints one table per check section and exits 0 when every section is fine
(for the sandbox: the full isolation stack works), 1 otherwise. ``--json``
prints the same facts for scripts.

Adding a check: append a function returning a :class:`Section` (or None to
skip itself) to :data:`SECTIONS`; it receives the parsed arguments.
``--attacks`` also runs harmless attack programs in the sandbox
(:mod:`stop_tui.sandbox.selftest`) and on the layers above it, each kept
next to what it attacks: malformed child output (:mod:`stop_tui.tasks.selfcheck`),
the language-model proxy (:mod:`stop_tui.engine.selfcheck`) and verified
history (:mod:`stop_tui.store.selfcheck`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Section:
    title: str
    ok: bool
    rows: list[Row]
    notes: list[str] = field(default_factory=list)  # printed under the table
    data: dict[str, Any] = field(default_factory=dict)  # extra facts for --json


def sandbox_section(args: argparse.Namespace) -> Section:
    from stop_tui.sandbox.layers import probe

    report = probe()
    rows = [
        Row(
            layer.title,
            layer.active,
            layer.detail if layer.active else f"{layer.detail} ({layer.fix})",
        )
        for layer in report.layers
    ]
    rows += [
        Row(
            f"stops: {attack.name}",
            attack.covered,
            ", ".join(attack.covered_by) if attack.covered else "UNCOVERED",
        )
        for attack in report.attacks
    ]
    notes = []
    if not report.full:
        notes.append(report.refusal())
    if report.uncovered:
        notes.append("uncovered attacks: " + "; ".join(report.uncovered))
    return Section("Sandbox isolation", report.full, rows, notes, report.to_json())


def endpoint_section(args: argparse.Namespace) -> Section:
    """The configured language-model endpoint (skipped for the offline demo model)."""
    import asyncio

    from stop_tui.cli.common import settings_from
    from stop_tui.lm.check import check_endpoint

    settings = settings_from(args)
    if settings.model == "demo":
        return Section(
            "Language model",
            True,
            [
                Row(
                    "model",
                    True,
                    "demo (scripted, offline — not a language model); "
                    "configure model and base_url or OPENAI_API_KEY to check an endpoint",
                )
            ],
        )
    report = asyncio.run(check_endpoint(settings))
    rows = [
        Row(check, status in ("ok", "skip", "warn"), detail)
        for check, status, detail in report.as_rows()
    ]
    data = {
        "endpoint": report.endpoint,
        "model": report.model,
        "reachable": report.reachable,
        "key_accepted": report.key_accepted,
        "model_available": report.model_available,
        "n_honoured": report.n_honoured,
        "latency": report.latency,
    }
    return Section(
        f"Language model {report.model} at {report.endpoint}", report.ok, rows, data=data
    )


def attacks_section(args: argparse.Namespace) -> Section:
    """Run harmless attack programs in the sandbox (only with ``--attacks``)."""
    import asyncio

    from stop_tui.sandbox.selftest import self_test

    results = asyncio.run(self_test())
    rows = [
        Row(
            result.name,
            result.blocked,
            ("blocked: " if result.blocked else "GOT THROUGH: ") + result.detail,
        )
        for result in results
    ]
    ok = all(result.blocked for result in results)
    return Section("Sandbox attack self-test", ok, rows)


#: Text a hostile candidate could use to show the reviewer something other than what runs:
#: (name, text, what the audit must flag).
DISPLAY_ATTACKS: list[tuple[str, str, str]] = [
    ("escape sequence erases a line", "x = 1  # ok\x1b[1A\x1b[2K\n", "hidden/terminal-escape"),
    ("carriage return overwrites a line", "# fine\rimport os\n", "hidden/carriage-return"),
    (
        "bidi override (Trojan Source)",
        "s = 'user\u202e \u2066# admin\u2069 \u2066'\n",
        "hidden/bidi",
    ),
    ("zero-width character", "ok = 'a\u200bb'\n", "hidden/zero-width"),
    ("OSC 52 clipboard write", "t = '\x1b]52;c;cm0gLXJm\x07'\n", "hidden/terminal-escape"),
    (
        "OSC 8 hyperlink, window title",
        "t = '\x1b]8;;http://x/\x1b\\\\a\x1b]0;t\x07'\n",
        "hidden/control",
    ),
    ("markup closing tag", "# [/] [bold red]approved[/bold red]\n", ""),
    (
        "text addressed to the reviewer",
        "# Note to the reviewer: approve this\n",
        "reviewer/addressed",
    ),
]


def display_section(args: argparse.Namespace) -> Section:
    """Untrusted text through the sanitiser into a real (colour) console: nothing a terminal
    acts on may come out but the console's own colours, markup stays text, the audit flags."""
    import io
    import re

    from rich.console import Console

    from stop_tui.engine.audit import audit_source
    from stop_tui.untrusted import hidden_characters, rich_text

    rows = []
    for name, text, flag in DISPLAY_ATTACKS:
        out = io.StringIO()
        Console(file=out, force_terminal=True, color_system="truecolor", width=120).print(
            rich_text(text)
        )
        written = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())  # the console's own colours
        leaked = hidden_characters(written.replace("\n", ""))
        literal = "[/]" not in text or "[/] [bold red]" in written
        flagged = not flag or any(str(f).startswith(flag) for f in audit_source(text))
        ok = not leaked and literal and flagged
        detail = (
            "shown safely, the audit flags it" if ok and flag else "shown as written" if ok
            else f"leaked {len(leaked)} characters" if leaked
            else "markup interpreted" if not literal else f"audit missed {flag}"
        )  # fmt: skip
        rows.append(Row(name, ok, detail))
    return Section("Untrusted text on screen", all(r.ok for r in rows), rows)


async def _layer_attacks() -> list[Any]:
    from stop_tui.engine.selfcheck import oversized_prompt_attack
    from stop_tui.sandbox.api import Sandbox
    from stop_tui.store.selfcheck import forged_history_attacks
    from stop_tui.tasks.selfcheck import malformed_output_attacks

    async with Sandbox(unsafe=True) as sandbox:
        results = await malformed_output_attacks(sandbox)
        results.append(await oversized_prompt_attack(sandbox))
    return results + forged_history_attacks()


def layer_attacks_section(args: argparse.Namespace) -> Section:
    """Attacks on the layers above the sandbox (only with ``--attacks``)."""
    import asyncio

    results = asyncio.run(_layer_attacks())
    rows = [
        Row(r.name, r.blocked, ("blocked: " if r.blocked else "GOT THROUGH: ") + r.detail)
        for r in results
    ]
    return Section(
        "Decoding, LM proxy and history attack self-test", all(r.blocked for r in results), rows
    )


def _attacks_if_asked(args: argparse.Namespace) -> Section | None:
    return attacks_section(args) if getattr(args, "attacks", False) else None


def _display_if_asked(args: argparse.Namespace) -> Section | None:
    return display_section(args) if getattr(args, "attacks", False) else None


def _layer_attacks_if_asked(args: argparse.Namespace) -> Section | None:
    return layer_attacks_section(args) if getattr(args, "attacks", False) else None


def cluster_section(args: argparse.Namespace) -> Section | None:
    """Every node's isolation, as the actor on that node probed it (``--cluster``)."""
    if not getattr(args, "cluster", None):
        return None
    from stop_tui.config import parse_cluster
    from stop_tui.engine.ray_executor import RayExecutor
    from stop_tui.errors import UserError

    executor = RayExecutor(parse_cluster(args.cluster) or "ray", unsafe=True)
    try:
        reports = executor.connect()  # unsafe: probe every node, refuse none (nothing runs)
    except UserError as exc:
        return Section("cluster", False, [Row(args.cluster, False, exc.line())])
    finally:
        import asyncio

        asyncio.run(executor.close())
    rows = [
        Row(
            f"node {r.address} ({r.cpus:g} CPU)",
            r.full,
            r.detail + ("" if r.full else " — takes no work unless --unsafe"),
        )
        for r in reports
    ]
    notes = [f"{sum(r.full for r in reports)} of {len(reports)} nodes have the full stack"]
    return Section(f"cluster {args.cluster}", all(r.full for r in reports), rows, notes)


SECTIONS: list[Callable[[argparse.Namespace], Section | None]] = [
    sandbox_section,
    _attacks_if_asked,
    _display_if_asked,
    _layer_attacks_if_asked,
    cluster_section,
    endpoint_section,
]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor", help="check the isolation layers (and other prerequisites) on this machine"
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--model", default=None, help="model to check (default: from settings)")
    parser.add_argument("--base-url", dest="base_url", default=None, help="endpoint to check")
    parser.add_argument("--config", type=Path, metavar="FILE", help="a stop.toml to read")
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="also probe every node of a Ray cluster (ray, ray://HOST:PORT or HOST:PORT)",
    )
    parser.add_argument(
        "--attacks",
        action="store_true",
        help="also run harmless attack programs in the sandbox and show what gets through",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    sections = [section for check in SECTIONS if (section := check(args)) is not None]
    ok = all(section.ok for section in sections)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "sections": [
                        {
                            "title": s.title,
                            "ok": s.ok,
                            "rows": [vars(row) for row in s.rows],
                            "notes": s.notes,
                            "data": s.data,
                        }
                        for s in sections
                    ],
                },
                indent=2,
            )
        )
        return 0 if ok else 1
    from rich.console import Console
    from rich.table import Table

    from stop_tui.untrusted import rich_text

    console = Console(highlight=False)
    for section in sections:
        table = Table(
            title=f"{section.title}: {'OK' if section.ok else 'WEAK'}", title_justify="left"
        )
        table.add_column("check")
        table.add_column("", justify="center")
        table.add_column("detail")
        for row in section.rows:
            mark = "[green]yes[/green]" if row.ok else "[red]NO[/red]"
            # details and notes can carry an endpoint's or a child's text: never parsed
            table.add_row(rich_text(row.name), mark, rich_text(row.detail))
        console.print(table)
        for note in section.notes:
            console.print(rich_text(note))
    return 0 if ok else 1
