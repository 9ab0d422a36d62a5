"""``stop-tui completion bash|zsh|fish``: print the shell's completion script."""

from __future__ import annotations

import argparse
from typing import Any

SHELLS = ("bash", "zsh", "fish")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "completion",
        help="print the shell completion script (commands, options, run ids, task names)",
        description="Print a completion script for SHELL. Install it with, for example, "
        "'stop-tui completion bash > ~/.local/share/bash-completion/completions/stop-tui', "
        "'stop-tui completion zsh > ~/.zfunc/_stop-tui' (with fpath+=(~/.zfunc) before "
        "compinit in ~/.zshrc) or "
        "'stop-tui completion fish > ~/.config/fish/completions/stop-tui.fish'.",
    )
    parser.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import argcomplete

    print(argcomplete.shellcode(["stop-tui"], shell=args.shell), end="")
    return 0
