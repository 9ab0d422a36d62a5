"""Shared helpers for the sandbox tests (real child processes)."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

SET_COMM = """
import ctypes as _ct
def _mark(name):
    _ct.CDLL(None).prctl(15, _ct.c_char_p(name.encode()), 0, 0, 0)  # PR_SET_NAME
"""


def new_marker() -> str:
    """A process name (max 15 chars) that attack programs give themselves."""
    return "stpx" + secrets.token_hex(5)


def marked(marker: str) -> list[int]:
    """Pids on this host whose name is ``marker`` (found by scanning /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if comm == marker and state != "Z":
            found.append(int(entry.name))
    return found


def wait_gone(marker: str, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        left = marked(marker)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def sandbox_processes(root: str, owner: int | None = None) -> list[int]:
    """Pids whose command line runs the sandbox boot code (from ``root`` or a private
    guest root, see ``launch.guest_root``) for ``owner`` (default: this test process)."""
    tag = f"owner={os.getpid() if owner is None else owner}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (
            state != "Z"
            and any(
                arg.split(b":")[0] == root.encode() or b"/stop-tui-guest-" in arg for arg in cmdline
            )
            and tag in cmdline
            and b"stop_tui.sandbox.guest.zygote" in b" ".join(cmdline)
        ):
            found.append(int(entry.name))
    return found
