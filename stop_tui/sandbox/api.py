"""The sandbox: starts confined children (warm zygote, spares, cold start) and ends them all.

Usage::

    async with Sandbox() as sandbox:                       # probes, starts the zygote
        async with await sandbox.spawn("solution", {"source": src, "entry_point": "algorithm"},
                                       Limits(wall_time=30)) as child:
            ready = await child.recv(timeout=10)           # {"ready": True} or {"error": ...}
            reply = await child.call([x, y], timeout=2.0)  # = request({"call": encoded args})
            reply.message, reply.elapsed, reply.timed_out  # {"ok": encoded} or {"error": ...}
        info = child.exit_info                             # how it ended, capped stdout/stderr

    # improver job: answer its rpcs until it returns
    reply = await child.serve(handler, timeout=600)        # handler(method, params) -> awaitable

* ``Sandbox(unsafe=False)`` raises :class:`~stop_tui.errors.UserError` (one line
  naming the missing layers and the fix) unless every layer of the full stack
  works here; ``unsafe=True`` runs with whatever layers work.
* Each :meth:`Sandbox.spawn` gives a fresh :class:`Child`, forked from the warm
  zygote (or started cold when ``zygote=False`` or the zygote cannot start);
  a child is never reused for a second job.
* With ``spares`` (default 2, zygote only) each limits profile keeps that
  many children forked and confined ahead of time, blocked reading their first
  message; ``spawn`` hands one out (once) and its clocks start then
  (:meth:`Sandbox.prepare` warms a profile up front). A replacement is forked
  after a job of that profile has died.
* The parent measures time: :meth:`Child.request` and :meth:`Child.serve`
  report ``elapsed`` and ``timed_out``; a timed-out request kills the child
  (limit ``"timeout"``). The child's whole lifetime is bounded by
  ``Limits.wall_time`` (limit ``"wall"``).
* Every channel line is size-checked before parsing: a line longer than
  ``Limits.max_message_bytes`` kills the child (limit ``"message"``); a line
  that is not a JSON object, or a reply with the wrong id, kills it as a
  protocol error (``ExitInfo.error``).
* stdout and stderr are read by the parent: at most ``max_output_bytes`` are
  kept (together), the rest is discarded and flagged ``*_truncated``; a child
  that keeps writing past ``OUTPUT_KILL_FACTOR`` times the cap is killed
  (limit ``"output"``).
* On :meth:`Child.kill` (and on leaving ``async with``) the job and every
  process it started are dead when the call returns.

``ExitInfo.limit`` is one of ``"wall"``, ``"timeout"``, ``"cpu"``,
``"memory"``, ``"output"``, ``"message"``, ``"processes"`` or ``None``.
With ``max_processes == 1`` seccomp refuses every fork (EPERM); above 1 the
job's supervisor counts the job's processes every few milliseconds and kills
the whole job past the limit (``RLIMIT_NPROC`` does not bind root).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import tempfile
from dataclasses import asdict
from typing import Any

from stop_tui.errors import UserError
from stop_tui.sandbox import launch, layers, usage
from stop_tui.sandbox.child import Child, reap
from stop_tui.sandbox.guest.zygote import CLEANUP_SECONDS, remove_tree
from stop_tui.sandbox.limits import ExitInfo, Limits, Reply, RpcFailure

# The sandbox's whole API from one place (the types live in child.py and limits.py).
__all__ = ["JOBS", "SPARES", "Child", "ExitInfo", "Limits", "Reply", "RpcFailure", "Sandbox"]

SPARES = 2  # confined children kept waiting per limits profile (0: none; ~3 MB each)
SPARE_PROFILES = 4  # limits profiles with spares; the least recently used is dropped
JOBS = ("solution", "improver")


class Sandbox:
    """Owns the isolation layers and the warm zygote. Async context manager."""

    def __init__(
        self,
        *,
        unsafe: bool = False,
        zygote: bool = True,
        disable: tuple[str, ...] = (),
        spares: int = SPARES,
    ) -> None:
        self.report = layers.probe(disable)
        if not self.report.full and not unsafe:
            raise UserError(self.report.refusal())
        self.unsafe = unsafe
        self.use_zygote = zygote
        self._bwrap = self.report.active("bwrap")
        self._zygote: subprocess.Popen[bytes] | None = None
        self._zsock: socket.socket | None = None
        self._host_scratch: str | None = None
        self._children: set[Child] = set()
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self.spares = spares if zygote else 0  # spares are forked from the zygote only
        self._spares: dict[Limits, list[Child]] = {}  # by profile, least recently used first
        self._refills: set[asyncio.Task[None]] = set()
        self._pending: dict[Limits, int] = {}  # spares being forked, by profile
        self._closing = False

    @staticmethod
    def probe() -> layers.IsolationReport:
        return layers.probe()

    # --------------------------------------------------------------- lifetime

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the zygote (idempotent); a dead zygote is restarted."""
        self._closing = False  # spares may be prepared (again)
        await self._ensure_zygote()

    async def _ensure_zygote(self) -> None:
        async with self._lock:
            if self.use_zygote and (self._zygote is None or self._zygote.poll() is not None):
                await self._start_zygote()

    def _scratch_root(self) -> str:
        if self._bwrap:
            return launch.SCRATCH_IN_SANDBOX
        if self._host_scratch is None:
            self._host_scratch = tempfile.mkdtemp(prefix="stop-tui-sandbox-")
        return self._host_scratch

    def _prefix(self) -> list[str]:
        return launch.bwrap_argv() if self._bwrap else []

    async def _start_zygote(self) -> None:
        await self._stop_zygote()
        parent_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv = [
                *self._prefix(),
                *launch.boot_argv("zygote", str(zygote_end.fileno()), bwrap=self._bwrap),
            ]
            debug = bool(os.environ.get("STOP_TUI_SANDBOX_DEBUG"))
            self._zygote = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=None if debug else subprocess.DEVNULL,
                pass_fds=(zygote_end.fileno(),),
                env=launch.child_env(),
                cwd="/",
                start_new_session=True,
            )
        finally:
            zygote_end.close()
        self._zsock = parent_end

    async def _stop_zygote(self) -> None:
        if self._zsock is not None:
            self._zsock.close()
            self._zsock = None
        proc, self._zygote = self._zygote, None
        if proc is not None:
            await reap(proc, 2.0)  # it exits when its socket closes

    async def _hard_reset(self, child: Child) -> None:
        """Last resort when a supervisor does not answer: kill what that one job lives in.

        A cold job has its own bubblewrap, killed here. A zygote job shares the
        zygote with its concurrent jobs, which must not die for it: its
        supervisor is left to the zygote's end (``close``); the job itself was
        already sent SIGKILL through its control socket. A supervisor writes its
        status before any clean-up, so a job cannot bring this about by making
        clean-up slow.
        """
        if child._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child._process.pid, signal.SIGKILL)

    async def close(self) -> None:
        """Kill every child (spares too), stop the zygote, remove host scratch space."""
        self._closing = True
        await asyncio.gather(*self._refills, return_exceptions=True)  # they kill what they made
        self._spares.clear()
        await asyncio.gather(*(child.kill() for child in list(self._children)))
        await self._stop_zygote()
        if self._host_scratch is not None:
            remove_tree(self._host_scratch, CLEANUP_SECONDS)
            self._host_scratch = None

    # ------------------------------------------------------------------ spawn

    async def spawn(self, job: str, payload: dict[str, Any], limits: Limits | None = None) -> Child:
        """A fresh child running ``job`` (``"solution"`` or ``"improver"``).

        With spares on (the default with the zygote), the child is a *spare*
        forked and confined ahead of time with exactly these limits, waiting
        for its first (and only) payload; a replacement is then prepared in
        the background. A spare has read nothing before this call, and is
        never handed out twice.
        """
        if job not in JOBS:
            raise ValueError(f"unknown sandbox job {job!r}")
        limits = limits or Limits()
        child = self._take_spare(limits)
        if child is None:
            child = await self._new_child(limits)
        child._arm()
        await child.send({"job": job, "payload": payload})
        if self.spares > 0 and not self._closing:
            self._profile(limits)  # a replacement spare is forked when a job ends
        return child

    def prepare(self, limits: Limits | None = None) -> None:
        """Start preparing spare children for ``limits`` in the background (no-op
        without spares or while closing): the next :meth:`spawn` with these
        limits skips the fork and confinement."""
        if self.spares < 1 or self._closing:
            return
        limits = limits or Limits()
        pool = self._profile(limits)
        for _ in range(self.spares - len(pool) - self._pending.get(limits, 0)):
            self._pending[limits] = self._pending.get(limits, 0) + 1
            task = asyncio.create_task(self._refill(limits))
            self._refills.add(task)
            task.add_done_callback(self._refills.discard)

    def _profile(self, limits: Limits) -> list[Child]:
        """The spares of ``limits``, now the most recently used profile."""
        pool = self._spares.pop(limits, [])
        self._spares[limits] = pool
        while len(self._spares) > SPARE_PROFILES:
            old = next(iter(self._spares))
            for spare in self._spares.pop(old):
                spare.kill_soon()
        return pool

    async def _refill(self, limits: Limits) -> None:
        try:
            child = await self._new_child(limits)
        except (OSError, UserError):
            return  # the next spawn forks on demand (and reports the problem)
        finally:
            self._pending[limits] -= 1
        pool = self._spares.get(limits)
        if pool is None or self._closing:
            child.kill_soon()  # the profile was dropped meanwhile
            return
        pool.append(child)

    def _take_spare(self, limits: Limits) -> Child | None:
        pool = self._spares.get(limits, [])
        while pool:
            child = pool.pop(0)  # oldest first: it has had the most time to get ready
            if child.alive and not child._armed:
                return child
            child.kill_soon()  # it died waiting (e.g. its zygote was restarted)
        return None

    async def _new_child(self, limits: Limits) -> Child:
        """Fork (or start cold) a confined child for ``limits``, not yet armed."""
        job_id = f"job-{os.getpid()}-{next(self._ids)}-{secrets.token_hex(4)}"
        spec: dict[str, Any] = {
            "id": job_id,
            "limits": asdict(limits),
            "scratch_root": self._scratch_root(),
            "read_paths": list(launch.read_paths() if self._bwrap else launch.host_read_paths()),
            "layers": {
                "landlock": self.report.active("landlock"),
                "seccomp": self.report.active("seccomp"),
                "pidns": self.report.active("userns"),
            },
        }
        chan_p, chan_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ctl_p, ctl_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        usage.enable_credentials(ctl_p)  # before the supervisor's HELLO: see sandbox.usage
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        child = Child(self, job_id, limits)
        try:
            child_fds = [chan_c.fileno(), out_w, err_w, ctl_c.fileno()]
            if self.use_zygote:
                await self._send_to_zygote(spec, child_fds)
            else:
                child._process = await self._start_cold(spec, child_fds)
        except BaseException:
            for sock in (chan_p, ctl_p):
                sock.close()
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            chan_c.close()
            ctl_c.close()
            os.close(out_w)
            os.close(err_w)
        single = bool(spec["layers"]["seccomp"]) and limits.max_processes <= 1
        await child._attach(chan_p, ctl_p, out_r, err_r, single=single)
        self._children.add(child)
        return child

    async def _send_to_zygote(self, spec: dict[str, Any], fds: list[int]) -> None:
        data = json.dumps(spec).encode()
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        for attempt in range(2):
            await self._ensure_zygote()
            assert self._zsock is not None
            try:
                self._zsock.sendmsg([data], ancillary)
                return
            except OSError:
                if attempt:
                    raise
                await self._stop_zygote()  # it died: restart once

    async def _start_cold(self, spec: dict[str, Any], fds: list[int]) -> subprocess.Popen[bytes]:
        chan, out, err, ctl = fds
        spec = {**spec, "chan_fd": chan, "ctl_fd": ctl}
        argv = [*self._prefix(), *launch.boot_argv("cold", json.dumps(spec), bwrap=self._bwrap)]
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            pass_fds=(chan, ctl),
            env=launch.child_env(),
            cwd="/",
            start_new_session=True,
        )
