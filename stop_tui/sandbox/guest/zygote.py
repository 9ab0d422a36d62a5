"""The zygote (fork server), the per-job supervisor and the cold entry point.

Trusted code that runs inside bubblewrap (stdlib + numpy + the guest modules).

Process tree of one job::

    zygote (pre-imported, one per Sandbox)           cold path: no zygote, the
      └─ supervisor  (fork; unshares a user+pid ns)  process started by the parent
           └─ job    (fork; pid 1 of its own pid     is the supervisor itself
                      namespace; confines itself, runs runner.main)

The parent hands the zygote four file descriptors per job with SCM_RIGHTS over
a SOCK_SEQPACKET socket, together with a JSON spec (job id, limits, paths,
layers): the job's message channel, its stdout, its stderr, and a *control*
socket that only the supervisor keeps. The supervisor kills the job (SIGKILL to
pid 1 of the job's pid namespace, which takes every process the job started,
including ones that called ``setsid()``) when the control socket reaches EOF
(the parent closed it, or the parent died) or when the backstop wall-clock
limit passes, or (when the job may fork) when it has more processes than
allowed. The backstop clock starts when the parent writes ``GO`` on the
control socket, just before it sends the job's payload: a *spare* job (forked
and confined ahead of time, waiting for a payload it has not been sent) has
run nothing untrusted and may wait indefinitely; it still dies when the
parent closes the control socket or dies. The supervisor's first byte on the
control socket is ``HELLO``, which carries its credentials to the parent, so the
parent can read the job's CPU time from ``/proc`` itself (per-instance time
limits that do not depend on the machine's load); where it cannot, each ``CPU``
byte the parent writes is answered with one line ``{"usage": seconds}``: the
CPU time the job's processes have used so far (user + system, reaped children
included). After the job is reaped it writes one JSON status line (exit
code or signal, CPU seconds) on the control socket, and only then lets the job's
scratch go (its private tmpfs dies with the supervisor's mount namespace; without
per-job namespaces a bounded :func:`remove_tree`).
"""

from __future__ import annotations

import array
import contextlib
import gc
import json
import os
import select
import signal
import socket
import sys
import time
from typing import Any, NoReturn

from stop_tui.sandbox.guest import confine
from stop_tui.sandbox.guest.runner import EXIT_CONFINE

N_FDS = 4  # channel, stdout, stderr, control
BACKSTOP_GRACE = 5.0  # seconds past the wall limit before the supervisor kills on its own
GO = b"g"  # control byte: the job's payload follows, start the backstop clock
CPU = b"c"  # control byte: answer {"usage": CPU seconds the job has used so far}
HELLO = b"h"  # the supervisor's first byte on the control socket (it carries its credentials)
PROCESS_POLL = 0.005  # seconds between process counts when a job may fork
POLL_FALLBACK = 0.01  # seconds between checks for the job's end without pidfds
CLEANUP_SECONDS = 10.0  # most time spent removing a job's scratch directory (no userns)


def _child_env(scratch: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": scratch,
        "TMPDIR": scratch,
        "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }


def _job(spec: dict[str, Any], scratch: str, fds: tuple[int, int, int], alive_r: int) -> NoReturn:
    """Runs in the job process: confine, then hand over to the runner. Never returns."""
    try:
        chan, out, err = fds
        os.setsid()
        confine.set_pdeathsig()
        if select.select([alive_r], [], [], 0)[0]:
            os._exit(EXIT_CONFINE)  # the supervisor is already gone
        devnull = os.open("/dev/null", os.O_RDONLY)
        for src, dst in ((devnull, 0), (out, 1), (err, 2), (chan, 3)):
            os.dup2(src, dst, inheritable=True)
        os.closerange(4, 65536)
        limits = spec["limits"]
        layers = spec["layers"]
        os.environ.clear()
        os.environ.update(_child_env(scratch))
        os.chdir(scratch)
        confine.apply_rlimits(
            cpu_seconds=float(limits["cpu_time"]),
            memory_bytes=int(limits["memory_mb"]) * 1024 * 1024,
            file_bytes=int(limits["max_file_bytes"]),
            open_files=int(limits["max_open_files"]),
            processes=int(limits["max_processes"]),
        )
        confine.drop_capabilities()
        if layers.get("landlock"):
            confine.apply_landlock(spec["read_paths"], [scratch, "/dev/null"])
        allow_fork = int(limits["max_processes"]) > 1
        if layers.get("seccomp"):
            confine.apply_seccomp(allow_fork=allow_fork)
        elif not allow_fork:
            confine.no_new_privs()
    except BaseException as exc:  # fail closed: nothing untrusted has run yet
        try:
            os.write(2, f"stop-tui sandbox: confinement failed: {exc!r}\n".encode())
        finally:
            os._exit(EXIT_CONFINE)
    from stop_tui.sandbox.guest import runner

    runner.main(3, int(limits["max_message_bytes"]))
    os._exit(0)  # runner.main exits on its own; this is a backstop


def supervise(spec: dict[str, Any], chan: int, out: int, err: int, ctl: int) -> NoReturn:
    """Run one job under supervision and report its end on ``ctl``. Never returns.

    With per-job namespaces (the ``userns`` layer) the job's scratch is a private
    tmpfs (size and inode limits from the spec) mounted on the scratch root in
    the job's own mount namespace, and its IPC namespace is its own: the kernel
    drops both when this process exits, after the status is written. Without
    them (``--unsafe``) the scratch is a subdirectory, removed after the status
    is written by :func:`remove_tree` (bounded in time, never recursive).
    """
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    confine.become_subreaper()  # without a pid namespace, orphans still come back to us
    private = bool(spec["layers"].get("pidns"))
    limits = spec["limits"]
    scratch = spec["scratch_root"] if private else os.path.join(spec["scratch_root"], spec["id"])
    status: dict[str, Any] = {}
    made = False
    try:
        if private:
            size = int(limits.get("scratch_mb", 64)) * 1024 * 1024
            confine.enter_job_namespaces(scratch, size, int(limits.get("scratch_files", 4096)))
        else:
            os.mkdir(scratch, 0o700)
            made = True
        alive_r, alive_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(alive_w)
            os.close(ctl)
            _job(spec, scratch, (chan, out, err), alive_r)
        os.close(alive_r)
        for fd in (chan, out, err):
            os.close(fd)
        # With SO_PASSCRED on its end the parent receives our pid in its own pid
        # namespace with this byte (the kernel vouches for it), finds the job as our
        # only child and reads the job's CPU time from /proc itself, without asking.
        os.write(ctl, HELLO)
        backstop = float(limits["wall_time"]) + BACKSTOP_GRACE
        status = _watch(pid, ctl, backstop, int(limits["max_processes"]))
    except BaseException as exc:
        status = {"error": f"supervisor: {exc!r}"}
    try:
        os.write(ctl, json.dumps(status).encode() + b"\n")  # first: clean-up never delays it
        os.close(ctl)
        if made:
            remove_tree(scratch, CLEANUP_SECONDS)
    finally:
        os._exit(0)


def remove_tree(root: str, seconds: float) -> bool:
    """Remove the directory ``root`` and everything in it, giving up after ``seconds``.

    Never recursive and never deeper than two levels: every subdirectory met is
    renamed up to ``root`` first, so a tree of any depth costs no stack and two
    open descriptors. Directories without permissions are opened up first;
    FIFOs, sockets and symlinks are unlinked, never opened or followed.
    Returns True when ``root`` is gone.
    """
    deadline = time.monotonic() + seconds
    try:
        top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return not os.path.lexists(root)
    moved = 0
    todo: list[str | None] = [None]  # None: root itself; else a name directly in root
    try:
        while todo:
            name = todo.pop()
            try:
                fd = top if name is None else os.open(name, _DIR_FLAGS, dir_fd=top)
            except OSError:
                continue
            try:
                for entry in list(os.scandir(fd)):
                    if time.monotonic() > deadline:
                        return False
                    if not entry.is_dir(follow_symlinks=False):
                        with contextlib.suppress(OSError):
                            os.unlink(entry.name, dir_fd=fd)
                        continue
                    with contextlib.suppress(OSError):
                        os.chmod(entry.name, 0o700, dir_fd=fd)
                    if name is None:
                        todo.append(entry.name)
                        continue
                    moved += 1
                    new = f".stop-tui-rm-{moved}"
                    with contextlib.suppress(OSError):
                        os.rename(entry.name, new, src_dir_fd=fd, dst_dir_fd=top)
                        todo.append(new)
            except OSError:
                pass
            finally:
                if fd != top:
                    os.close(fd)
            if name is not None:
                with contextlib.suppress(OSError):
                    os.rmdir(name, dir_fd=top)
    finally:
        os.close(top)
    with contextlib.suppress(OSError):
        os.rmdir(root)
    return not os.path.lexists(root)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def count_processes(root: int, limit: int) -> int:
    """Processes in the tree under ``root`` (stops counting past ``limit``).

    Orphans of the job reparent to its pid 1 (or, without a pid namespace, to
    the supervisor, which then counts them too), so the tree holds them all.
    """
    seen = 0
    todo = [root, *_orphans(root)]
    while todo and seen <= limit:
        pid = todo.pop()
        seen += 1
        todo.extend(children_of(pid))
    return seen


def _orphans(job: int) -> list[int]:
    return [pid for pid in children_of(os.getpid()) if pid != job]


def children_of(pid: int, proc: str = "/proc") -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"{proc}/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"{proc}/{pid}/task/{tid}/children") as f:
                found.extend(int(child) for child in f.read().split())
        except (OSError, ValueError):
            continue
    return found


def stat_fields(stat: bytes) -> list[bytes]:
    """The fields of a ``/proc/PID/stat`` line from field 3 (state) on: after the last
    ``)``, since the command name in parentheses may hold spaces and ``)`` itself."""
    return stat[stat.rfind(b")") + 2 :].split()


def _stat_ticks(stat: bytes) -> int:
    """User + system clock ticks in one ``/proc/PID/stat``: the process's own (all its
    threads, also exited ones) and its reaped children's (fields 14-17)."""
    try:
        return sum(int(value) for value in stat_fields(stat)[11:15])  # utime stime cutime cstime
    except (ValueError, IndexError):
        return 0


def job_cpu_seconds(job: int) -> float:
    """CPU seconds (user + system) used so far by the job's process tree."""
    return tree_cpu_seconds([job, *_orphans(job)])


def tree_cpu_seconds(roots: list[int], proc: str = "/proc") -> float:
    """CPU seconds (user + system) used so far by the processes ``roots`` and all
    their descendants.

    Read from ``/proc/PID/stat`` of every process in the trees: a process's own
    time covers its threads (also exited ones), its children's time covers the
    children it reaped. Resolution: one clock tick (usually 10 ms). The parent
    reads the same files with host pids (:mod:`stop_tui.sandbox.usage`).
    """
    ticks = 0
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"{proc}/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ticks += _stat_ticks(stat)
        todo.extend(children_of(pid, proc))
    return ticks / CLOCK_TICKS


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _kill_descendants() -> None:
    """SIGKILL and reap whatever is left below the supervisor.

    With a pid namespace nothing is left (the job was its pid 1). Without one,
    processes the job started (also ``setsid()`` orphans, which reparent to the
    supervisor, a subreaper) are killed here, repeatedly until none remain.
    """
    me = os.getpid()
    for _ in range(1000):
        todo, tree = children_of(me), []
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children_of(pid))
        if not tree:
            return
        for pid in tree:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        while True:
            try:
                reaped, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if reaped == 0:
                time.sleep(0.001)
                if not children_of(me):
                    break


def _watch(pid: int, ctl: int, backstop: float, max_processes: int) -> dict[str, Any]:
    # The backstop (``backstop`` seconds) runs from the parent's GO byte on ``ctl``.
    deadline, armed = float("inf"), False
    # Linux: a pidfd becomes readable when the job ends. Elsewhere (unsafe
    # mode only) the loop wakes up every POLL_FALLBACK seconds to look.
    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    killed = None
    poller = select.poll()
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    poller.register(ctl, select.POLLIN)
    # RLIMIT_NPROC does not bind uid 0, so when forks are allowed the
    # supervisor counts the job's processes itself, every PROCESS_POLL seconds.
    counting = max_processes > 1
    while True:
        timeout_ms = -1  # no backstop before GO: poll without a timeout
        if deadline != float("inf"):
            timeout_ms = max(0, int((deadline - time.monotonic()) * 1000))
        if counting:
            timeout_ms = _cap(timeout_ms, int(PROCESS_POLL * 1000))
        if pidfd is None:
            timeout_ms = _cap(timeout_ms, int(POLL_FALLBACK * 1000))
        events = dict(poller.poll(timeout_ms))
        if pidfd is not None and pidfd in events:
            break
        if pidfd is None and os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
            break
        if counting and killed is None and count_processes(pid, max_processes) > max_processes:
            killed = "processes"
            os.kill(pid, signal.SIGKILL)
            counting = False
            continue
        if time.monotonic() >= deadline and killed is None:
            killed = "backstop"
            os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        if ctl in events:
            try:
                data = os.read(ctl, 64)
            except OSError:
                data = b""
            if GO in data and not armed:
                armed, deadline = True, time.monotonic() + backstop
            for _ in range(data.count(CPU)):
                answer = json.dumps({"usage": job_cpu_seconds(pid)}).encode() + b"\n"
                with contextlib.suppress(OSError):
                    os.write(ctl, answer)
            if not data and killed is None:  # parent closed the control socket or died
                killed = "parent"
                os.kill(pid, signal.SIGKILL)
            if not data:
                poller.unregister(ctl)
    _, raw, usage = os.wait4(pid, 0)
    _kill_descendants()
    status: dict[str, Any] = {"cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss}
    if os.WIFSIGNALED(raw):
        status["signal"] = os.WTERMSIG(raw)
    else:
        status["exit_code"] = os.WEXITSTATUS(raw)
    if killed:
        status["killed"] = killed
    return status


def _cap(timeout_ms: int, most: int) -> int:
    return most if timeout_ms < 0 else min(timeout_ms, most)


# ---------------------------------------------------------------------- zygote


def _recv_job(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    fds = array.array("i")
    msg, ancdata, _flags, _addr = sock.recvmsg(1 << 20, socket.CMSG_SPACE(N_FDS * fds.itemsize))
    if not msg:
        return None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - (len(data) % fds.itemsize)
            fds.frombytes(data[:usable])
    return json.loads(msg), list(fds)


def serve(sock: socket.socket) -> None:
    """The zygote loop: one fork per job request, until the parent hangs up."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped automatically
    while True:
        try:
            received = _recv_job(sock)
        except (ConnectionError, OSError):
            return
        if received is None:
            return
        spec, fds = received
        if len(fds) != N_FDS:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                supervise(spec, *fds)
            finally:
                os._exit(1)
        for fd in fds:
            os.close(fd)


def _preimport() -> None:
    """Import once in the zygote what every job needs (forked children share it):
    numpy, ``numpy.random`` and ``random`` (every job seeds both; numpy loads
    ``numpy.random`` lazily, which cost a job about 10-50 ms before its first line)."""
    import copy  # noqa: F401
    import random  # noqa: F401

    import numpy
    import numpy.random  # noqa: F401

    from stop_tui.sandbox import codec  # noqa: F401
    from stop_tui.sandbox.guest import helpers, runner  # noqa: F401


def main(argv: list[str]) -> None:
    """``zygote FD`` serves jobs on socket FD; ``cold SPEC_JSON`` supervises one job
    (channel and control fds named in the spec, the job's stdout/stderr are ours)."""
    confine.set_pdeathsig()
    guest_dir = os.path.dirname(os.path.abspath(__file__))
    if guest_dir not in sys.path:
        sys.path.insert(0, guest_dir)  # improvers may `from helpers import extract_code`
    if argv[0] == "zygote":
        _preimport()
        # Every job inherits these objects: keep the cyclic GC away from them, or a
        # job's first full collection walks them all (milliseconds, in the middle of
        # some instance) and writes to every page holding one (copy-on-write).
        gc.freeze()
        sock = socket.socket(fileno=int(argv[1]))
        serve(sock)
    elif argv[0] == "cold":
        _preimport()
        spec = json.loads(argv[1])
        supervise(spec, int(spec["chan_fd"]), 1, 2, int(spec["ctl_fd"]))
    else:
        raise SystemExit(f"unknown mode {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
