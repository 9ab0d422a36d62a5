"""The ``stop-tui`` command line.

Each subcommand lives in its own module ``stop_tui/cli/cmd_<name>.py`` that
defines ``register(subparsers)``; the parser calls the function stored as the
``handler`` default with the parsed arguments. Add a command by adding its
module name to :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from stop_tui import __version__
from stop_tui.errors import UserError

COMMANDS: list[str] = [
    "run",
    "resume",
    "runs",
    "show",
    "replay",
    "export",
    "import",
    "verify",
    "eval",
    "tasks",
    "transfer",
    "doctor",
    "open",
    "pending",
    "answer",
    "sweep",
    "sweeps",
    "report",
    "completion",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own errors: one line plus the fix, exit 2.
        raise UserError(message, hint=f"see '{self.prog} --help'")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="stop-tui",
        description="Supervised recursive self-improvement of LM scaffolding (STOP).",
    )
    parser.add_argument("--version", action="version", version=f"stop-tui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"stop_tui.cli.cmd_{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        if argv is None:
            from stop_tui.cli.completion import autocomplete

            autocomplete(parser)  # the shell asking for completions: answer and exit
        args = parser.parse_args(argv)
        handler = getattr(args, "handler", None)
        if handler is None:
            # No command: open the app on the home screen (``--help`` lists the commands).
            from stop_tui.config import load_settings
            from stop_tui.tui.launch import launch_home

            return launch_home(load_settings())
        return int(handler(args) or 0)
    except UserError as exc:
        from stop_tui.untrusted import visible

        print(f"stop-tui: error: {visible(exc.line())}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("stop-tui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``stop-tui runs | head``): not an error of ours.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
