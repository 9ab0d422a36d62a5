"""The CPU time a job has used, read by the parent from ``/proc`` without asking anyone.

A job's supervisor sends one ``HELLO`` byte on its control socket; with
``SO_PASSCRED`` on the parent's end, the kernel attaches the supervisor's pid
*as the parent sees it* (the job runs in nested pid namespaces). The job is
the supervisor's only child. :class:`JobUsage` then reads the same
``/proc/PID/stat`` fields the supervisor would (utime, stime, cutime, cstime),
so a CPU verdict is the number the supervisor would answer, without a round
trip per instance.

A job that cannot fork (seccomp on, one process allowed) is one process with
threads: its CPU-time clock (``clock_gettime`` of the process clock of its pid,
which Linux lets any process read: the scheduler's nanoseconds over all its
threads, exited ones included, one system call of under 1 us) is its whole
usage. A pidfd of the job, held from the start, tells when it has ended: a
reading is then dropped, so it is never of a process that reused the pid. A job
that may fork is measured by walking every process below the supervisor (the
supervisor's own ``/proc`` directory, held open, shows when it is gone).
Anything unreadable gives None and the caller asks the supervisor instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import struct
import time

from stop_tui.sandbox.guest.zygote import children_of, stat_fields, tree_cpu_seconds

PROC = "/proc"
_UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid
CREDENTIALS_SPACE = socket.CMSG_SPACE(_UCRED.size)


def enable_credentials(sock: socket.socket) -> bool:
    """Ask the kernel to attach the sender's credentials to what ``sock`` receives."""
    passcred = getattr(socket, "SO_PASSCRED", None)
    if passcred is None:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, passcred, 1)
    except OSError:
        return False
    return True


async def first_byte(sock: socket.socket) -> tuple[bytes, int | None]:
    """The first byte received on the non-blocking ``sock`` (b"" at its end) and the
    pid of its sender, as the kernel attached it (None without credentials)."""
    loop = asyncio.get_running_loop()
    got: asyncio.Future[tuple[bytes, int | None]] = loop.create_future()
    fd = sock.fileno()

    def ready() -> None:
        try:
            data, ancillary, _, _ = sock.recvmsg(1, CREDENTIALS_SPACE)
        except BlockingIOError:
            return
        except OSError:
            data, ancillary = b"", []
        loop.remove_reader(fd)
        if not got.done():
            got.set_result((data, sender_pid(ancillary)))

    loop.add_reader(fd, ready)
    try:
        return await got
    finally:
        loop.remove_reader(fd)


def sender_pid(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The sender's pid from a received ``SCM_CREDENTIALS`` message, if any."""
    kind = getattr(socket, "SCM_CREDENTIALS", None)
    for level, typ, data in ancillary:
        if level == socket.SOL_SOCKET and typ == kind and len(data) >= _UCRED.size:
            pid = int(_UCRED.unpack_from(data)[0])
            return pid if pid > 0 else None
    return None


class JobUsage:
    """CPU seconds used so far by the job below one supervisor (host pids)."""

    def __init__(self, supervisor: int, job: int, single: bool) -> None:
        self.supervisor = supervisor
        self.job = job
        self.single = single
        self._clock = process_clock(job)
        self._closed = False
        self._sup_fd = os.open(f"{PROC}/{supervisor}", os.O_RDONLY | os.O_DIRECTORY)
        # A pidfd of the job says when it has ended, so that a reading is never of another
        # process that took its pid after the supervisor reaped it.
        self._ended = select.poll()
        self._job_fd: int | None = None
        if hasattr(os, "pidfd_open"):
            try:
                self._job_fd = os.pidfd_open(job)
            except OSError:
                os.close(self._sup_fd)
                raise
            self._ended.register(self._job_fd, select.POLLIN)
        if parent_of(job) != supervisor:  # the pid was already another process's
            self.close()
            raise ProcessLookupError(job)

    @classmethod
    def open(cls, supervisor: int, single: bool) -> JobUsage | None:
        """The usage reader of the job below ``supervisor``, or None when ``/proc``
        does not show exactly one child there (then the supervisor is asked)."""
        try:
            fd = os.open(f"{PROC}/{supervisor}/task/{supervisor}/children", os.O_RDONLY)
            try:
                children = os.read(fd, 4096).split()
            finally:
                os.close(fd)
            if len(children) != 1:
                return None
            return cls(supervisor, int(children[0]), single)
        except (OSError, ValueError):
            return None

    def seconds(self) -> float | None:
        """CPU seconds (user + system, reaped children included), or None when the
        job or its supervisor is gone or ``/proc`` cannot be read."""
        if self._closed:
            return None
        try:
            if self.single:
                seconds = time.clock_gettime(self._clock)
                return None if self._ended.poll(0) else seconds
            os.close(os.open("stat", os.O_RDONLY, dir_fd=self._sup_fd))  # still ours?
            # the job's tree, and (without a pid namespace) its orphans, reparented to
            # the supervisor: every process below the supervisor
            return tree_cpu_seconds(children_of(self.supervisor, PROC), PROC)
        except OSError:
            return None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in (self._sup_fd, self._job_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from ``/proc``, or None."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat_fields(stat)[1])
    except (OSError, ValueError, IndexError):
        return None


def process_clock(pid: int) -> int:
    """The clock id of process ``pid``'s CPU time (Linux's ``MAKE_PROCESS_CPUCLOCK(pid,
    CPUCLOCK_SCHED)``, what glibc's ``clock_getcpuclockid`` returns)."""
    return (~pid << 3) | 2
