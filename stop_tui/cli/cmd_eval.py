"""``stop-tui eval FILE --task NAME``: score a solution on a task, in the sandbox."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from stop_tui.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="score a solution file on a task (isolated)",
        description="Evaluate a solution on a task's hidden split in the sandbox.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="Python source of the solution")
    parser.add_argument("--task", required=True, help="task name (see 'stop-tui tasks')")
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=0, help="seed of the solution's random state")
    parser.add_argument(
        "--unsafe",
        action="store_true",
        help="run even where isolation is weaker than the full stack",
    )
    parser.set_defaults(handler=handle)


def read_source(path: Path, what: str = "solution") -> str:
    """Read a Python file people point us at, with one-line errors."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} file {path} does not exist", hint="check the path") from None
    except IsADirectoryError:
        raise UserError(
            f"{path} is a directory, not a {what} file", hint="pass a .py file"
        ) from None
    except PermissionError:
        raise UserError(
            f"cannot read {path}: permission denied", hint="check its permissions"
        ) from None
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path} is not UTF-8 text (byte {exc.start})", hint="save it as UTF-8"
        ) from None
    try:
        compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise UserError(
            f"{path} line {exc.lineno}: syntax error: {exc.msg}", hint="fix the Python syntax"
        ) from None
    except ValueError as exc:  # NUL bytes
        raise UserError(f"{path} is not valid Python source ({exc})") from None
    return source


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from stop_tui.tasks.registry import get_task

    task = get_task(args.task)
    source = read_source(args.file)
    from stop_tui.sandbox.api import Sandbox
    from stop_tui.tasks.evaluate import evaluate

    async def main():
        async with Sandbox(unsafe=args.unsafe) as sandbox:
            return await evaluate(task, source, args.split, sandbox, salt=args.seed)

    result = asyncio.run(main())
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    from rich.text import Text

    from stop_tui.untrusted import rich_text

    console = Console(highlight=False)
    table = Table(title=rich_text(f"{task.name} ({args.split} split): {args.file}"))
    table.add_column("instance", justify="right")
    table.add_column("score", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("flag")
    for r in result.instances:
        seconds = "—" if r.seconds is None else f"{r.seconds:.4f}"
        table.add_row(str(r.index), f"{r.score:.3f}", seconds, rich_text(r.flag or ""))
    console.print(table)
    if result.stderr.strip():
        console.print(Text("solution stderr (last lines):", style="dim"))
        console.print(rich_text(result.stderr.strip()[-800:]))
    console.print(
        Text.assemble(
            "score ",
            (f"{result.score:.4f}", "bold"),
            f" on {len(result.instances)} instances "
            f"(time limit {task.time_limit:g} s each; took {result.seconds:.2f} s)",
            rich_text(f"; flags: {', '.join(result.flags)}" if result.flags else ""),
        )
    )
    return 0
