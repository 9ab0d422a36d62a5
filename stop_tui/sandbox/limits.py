"""The sandbox's value types: a child's limits, a reply, how a child ended, an rpc failure.

``ExitInfo.limit`` is one of ``"wall"``, ``"timeout"``, ``"cpu"``,
``"memory"``, ``"output"``, ``"message"``, ``"processes"`` or ``None``.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from stop_tui.errors import UserError


@dataclass(frozen=True)
class Limits:
    """Per-child limits; the defaults suit evaluating one solution."""

    wall_time: float = 60.0  # whole child lifetime, seconds (parent-measured)
    cpu_time: float = 60.0  # RLIMIT_CPU, seconds
    memory_mb: int = 1024  # RLIMIT_AS and RLIMIT_DATA
    max_processes: int = 1  # 1 = no fork at all (seccomp)
    max_output_bytes: int = 1_000_000  # stdout+stderr kept, the rest discarded (flag truncated)
    max_message_bytes: int = 16_000_000  # one channel line, either direction
    max_open_files: int = 64  # RLIMIT_NOFILE
    max_file_bytes: int = 16_000_000  # RLIMIT_FSIZE (files in scratch; not pipes)
    scratch_mb: int = 64  # the job's private scratch tmpfs: total size (userns layer)
    scratch_files: int = 4096  # ... and number of inodes (files, directories, FIFOs)

    def __post_init__(self) -> None:
        if self.wall_time <= 0 or self.cpu_time <= 0:
            raise UserError("sandbox time limits must be positive", hint="check the limits")
        if min(self.memory_mb, self.max_processes, self.max_open_files, self.scratch_mb) < 1:
            raise UserError("sandbox limits must be at least 1", hint="check the limits")
        if self.scratch_files < 16:
            raise UserError("scratch_files must be at least 16", hint="check the limits")
        if self.max_open_files < 8:
            raise UserError("max_open_files must be at least 8", hint="the runner needs a few")


@dataclass(frozen=True)
class Reply:
    message: dict[str, Any] | None  # None: timed out, or the child ended / was killed
    elapsed: float  # seconds, measured in the parent
    timed_out: bool = False
    cpu: float | None = None  # with ``cpu_limit``: the job's CPU seconds for this request


@dataclass(frozen=True)
class ExitInfo:
    """How a child ended."""

    exit_code: int | None
    signal: int | None
    limit: str | None  # wall, timeout, cpu, memory, output, message, processes
    error: str | None  # protocol violation or sandbox failure
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    cpu_time: float | None
    wall_time: float
    stopped: bool = False  # still running when the parent ended it (the normal end)

    @property
    def summary(self) -> str:
        if self.limit:
            return f"killed: {self.limit} limit"
        if self.error:
            return f"error: {self.error}"
        if self.stopped:
            return "stopped by the parent"
        if self.signal is not None:
            return f"killed by signal {signal.Signals(self.signal).name}"
        return f"exit code {self.exit_code}"


class RpcFailure(Exception):
    """Raise from an rpc handler to send ``{"rpc_error": {"type", "message"}}`` to the guest.

    Any exception with an ``rpc_type`` attribute is passed on the same way.
    """

    def __init__(self, rpc_type: str, message: str) -> None:
        super().__init__(message)
        self.rpc_type = rpc_type


Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]
