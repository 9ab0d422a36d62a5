"""One writer per run: an advisory ``fcntl.flock`` on ``.git/stop-locks/<run-id>.lock``.

The lock file holds who took it (pid, host, start time, command) so that a
second process can say exactly who is in the way. The kernel drops a flock when
its holder dies; if a dead holder's lock is still held (a descendant inherited
the descriptor), a lock naming a dead pid on this host is broken by replacing
the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from stop_tui.errors import UserError
from stop_tui.store.records import now_iso


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def process_start(pid: int) -> int | None:
    """The start time of a process in clock ticks since boot (tells a reused pid apart)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def read_holder(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process"
    cmd = str(holder.get("command", "")).strip()
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}" + (
        f" ({cmd})" if cmd else ""
    )


class RunLock:
    """An exclusive lock on one run. Use as a context manager or call release()."""

    def __init__(self, lock_dir: Path, run_id: str, command: str | None = None) -> None:
        self.path = lock_dir / f"{run_id}.lock"
        self.run_id = run_id
        self.command = command if command is not None else " ".join(sys.argv)[:200]
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _attempt in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = read_holder(self.path)
                if self._holder_dead(holder):
                    self._break(holder)
                    continue
                raise UserError(
                    f"run {self.run_id} is in use by {describe_holder(holder)}",
                    hint="wait for it to finish or stop that process",
                ) from None
            # We hold a lock on *some* inode: make sure it is still the file at our path
            # (a concurrent breaker may have replaced it between our open and our flock).
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": now_iso(),
                "command": self.command,
                "pid_start": process_start(os.getpid()),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
            self.fd = fd
            return self
        raise UserError(f"could not lock run {self.run_id}", hint="try again")

    @staticmethod
    def _holder_dead(holder: dict[str, Any] | None) -> bool:
        if not holder:
            return False
        try:
            pid = int(holder.get("pid", 0))
        except (TypeError, ValueError):
            return False
        if holder.get("host") != socket.gethostname():
            return False  # another machine's process: we cannot tell, so we never break it
        if not pid_alive(pid):
            return True
        recorded = holder.get("pid_start")
        return recorded is not None and process_start(pid) not in (None, recorded)  # pid reused

    def _break(self, holder: dict[str, Any] | None) -> None:
        # Replace the file only if it still names the same dead holder.
        if read_holder(self.path) == holder:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        time.sleep(0.01)

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
        os.close(self.fd)  # closing drops the flock
        self.fd = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()
