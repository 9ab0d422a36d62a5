"""Parent-side API of the sandbox (asyncio).

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
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from stop_tui.errors import UserError
from stop_tui.sandbox import codec, layers
from stop_tui.sandbox.guest.runner import EXIT_CONFINE, EXIT_MEMORY
from stop_tui.sandbox.guest.zygote import CLEANUP_SECONDS, CPU, GO, remove_tree

OUTPUT_KILL_FACTOR = 4
KILL_GRACE = 5.0  # seconds to wait for the supervisor's status after a kill
SPARES = 2  # confined children kept waiting per limits profile (0: none; ~3 MB each)
SPARE_PROFILES = 4  # limits profiles with spares; the least recently used is dropped
JOBS = ("solution", "improver")


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


class _Capture(asyncio.Protocol):
    """Reads one of stdout/stderr, keeping at most the shared budget."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self.data = bytearray()
        self.truncated = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        child = self.child
        room = child.limits.max_output_bytes - child._output_kept
        if room > 0:
            kept = data[:room]
            self.data += kept
            child._output_kept += len(kept)
        if len(data) > max(room, 0):
            self.truncated = True
        child._output_seen += len(data)
        if child._output_seen > OUTPUT_KILL_FACTOR * child.limits.max_output_bytes:
            child._trip("output")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


class Child:
    """One job in a confined process. Use as an async context manager."""

    def __init__(self, sandbox: Sandbox, job_id: str, limits: Limits) -> None:
        self.sandbox = sandbox
        self.id = job_id
        self.limits = limits
        self._started = time.monotonic()
        self._output_kept = 0
        self._output_seen = 0
        self._limit: str | None = None
        self._memory_hit = False  # the guest reported a MemoryError
        self._error: str | None = None
        self._exit: ExitInfo | None = None
        self._status: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._kill_task: asyncio.Task[ExitInfo] | None = None
        self._closed_channel = False
        self._process: subprocess.Popen[bytes] | None = None  # cold path only
        self._reader: asyncio.StreamReader
        self._writer: asyncio.StreamWriter
        self._ctl_reader: asyncio.StreamReader
        self._ctl_writer: asyncio.StreamWriter
        self._out: _Capture
        self._err: _Capture
        self._tasks: list[asyncio.Task[Any]] = []
        self._pipes: list[asyncio.ReadTransport] = []
        self._timer: asyncio.TimerHandle | None = None
        self._armed = False  # a job was handed to it (a spare is not armed yet)
        self._exchange = asyncio.Lock()  # one request/serve at a time per child
        self._usage: asyncio.Future[float] | None = None  # the pending CPU query
        self._usage_lock = asyncio.Lock()
        self._cpu_mark: float | None = None  # CPU used when the last limited request ended

    async def _attach(self, chan: socket.socket, ctl: socket.socket, out: int, err: int) -> None:
        loop = asyncio.get_running_loop()
        self._reader, self._writer = await asyncio.open_unix_connection(
            sock=chan, limit=self.limits.max_message_bytes + 1
        )
        self._ctl_reader, self._ctl_writer = await asyncio.open_unix_connection(sock=ctl)
        self._out = _Capture(self)
        self._err = _Capture(self)
        for capture, fd in ((self._out, out), (self._err, err)):
            transport, _ = await loop.connect_read_pipe(
                _factory(capture), os.fdopen(fd, "rb", buffering=0)
            )
            self._pipes.append(transport)
        self._tasks.append(asyncio.create_task(self._read_status()))

    def _arm(self) -> None:
        """The job starts now: start the wall clock here and in the supervisor (GO)."""
        self._armed = True
        self._started = time.monotonic()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.limits.wall_time, self._trip, "wall")
        with contextlib.suppress(OSError, RuntimeError):
            self._ctl_writer.write(GO)

    async def _read_status(self) -> None:
        status: dict[str, Any] = {"error": "the sandbox ended before the job reported"}
        try:
            while line := await self._ctl_reader.readline():
                message = json.loads(line)
                if isinstance(message, dict) and set(message) == {"usage"}:
                    if self._usage is not None and not self._usage.done():
                        self._usage.set_result(float(message["usage"]))
                    continue
                status = message  # the last line: how the job ended
                break
        except (OSError, ValueError) as exc:
            status = {"error": f"unreadable job status: {exc}"}
        if not self._status.done():
            self._status.set_result(status)

    # ------------------------------------------------------------------ state

    @property
    def alive(self) -> bool:
        return self._exit is None and not self._status.done()

    @property
    def exit_info(self) -> ExitInfo | None:
        return self._exit

    def _trip(self, limit: str | None, error: str | None = None) -> None:
        """A limit fired or the protocol was broken: record why and start the kill."""
        if self._limit is None and self._error is None and self._exit is None:
            self._limit, self._error = limit, error
        if self._kill_task is None and self._exit is None:
            self._kill_task = asyncio.ensure_future(self._do_kill())
            self._ending()

    # -------------------------------------------------------------- messages

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message (values already encoded with :mod:`codec`)."""
        await self._send_line(codec.dumps_message(message))

    async def _send_line(self, line: bytes) -> None:
        if len(line) > self.limits.max_message_bytes:
            raise codec.CodecError(f"message of {len(line)} bytes exceeds the limit")
        if not self.alive:
            return
        try:
            self._writer.write(line)
            if self._writer.transport.get_write_buffer_size():
                await self._writer.drain()  # only when the socket buffer is full
        except (ConnectionError, OSError):
            pass  # the child is gone; recv reports it

    async def recv(self, timeout: float) -> dict[str, Any] | None:
        """The next message, or None on timeout or when the child has ended."""
        message, _timed_out = await self._recv(timeout)
        return message

    async def _recv(self, timeout: float) -> tuple[dict[str, Any] | None, bool]:
        if self._exit is not None or self._closed_channel or self._kill_task is not None:
            return None, False
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                line = await self._reader.readuntil(b"\n")
        except TimeoutError:
            return None, True
        except asyncio.LimitOverrunError:
            self._trip("message")
            return None, False
        except asyncio.IncompleteReadError as exc:
            self._closed_channel = True
            if len(exc.partial) > 0:
                self._trip(None, "the channel ended in the middle of a message")
            return None, False
        except (ConnectionError, OSError):
            self._closed_channel = True
            return None, False
        if len(line) > self.limits.max_message_bytes:
            self._trip("message")
            return None, False
        try:
            message = codec.loads_message(line)
        except codec.CodecError as exc:
            self._trip(None, f"protocol violation: {exc}")
            return None, False
        if message.get("limit") == "memory":
            self._memory_hit = True
        return message, False

    async def cpu_used(self) -> float | None:
        """CPU seconds the job's processes have used so far, as its supervisor
        measures them (outside the job: the job cannot forge it); None when the
        job has ended or the supervisor does not answer within ``KILL_GRACE``."""
        async with self._usage_lock:
            if not self.alive or self._kill_task is not None:
                return None
            usage: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            self._usage = usage
            try:
                self._ctl_writer.write(CPU)
            except (OSError, RuntimeError):
                return None
            waits: set[asyncio.Future[Any]] = {usage, self._status}
            await asyncio.wait(waits, timeout=KILL_GRACE, return_when="FIRST_COMPLETED")
            self._usage = None
            return usage.result() if usage.done() else None

    async def request(
        self,
        message: dict[str, Any] | codec.Prepared,
        timeout: float,
        *,
        cpu_limit: float | None = None,
    ) -> Reply:
        """Send ``message`` with a fresh id and wait for the reply carrying that id.

        ``message`` may be a :class:`codec.Prepared` message (serialised once,
        e.g. the same instance's arguments sent to many children). A timeout
        kills the child (limit ``"timeout"``); a reply with another id is a
        protocol violation and kills it too.

        With ``cpu_limit`` the reply also carries ``cpu``, the CPU seconds the
        job used for this request (since the previous limited request ended:
        work a background thread does between requests counts too), and the
        request times out as soon as that exceeds ``cpu_limit``; ``timeout``
        stays the wall-clock backstop. A CPU verdict does not depend on how
        loaded the machine is; a wall-clock one does.
        """
        async with self._exchange:
            if cpu_limit is None:
                return await self._request(message, timeout)
            return await self._limited(message, timeout, cpu_limit)

    async def _limited(
        self, message: dict[str, Any] | codec.Prepared, timeout: float, cpu_limit: float
    ) -> Reply:
        before = self._cpu_mark if self._cpu_mark is not None else await self.cpu_used()
        if before is None:  # no supervisor answer: the wall clock is all there is
            return await self._request(message, min(timeout, cpu_limit))
        state = {"spent": 0.0}

        async def over_cpu() -> bool:
            used = await self.cpu_used()
            if used is not None:
                state["spent"] = used - before
            return used is not None and used - before > cpu_limit

        reply = await self._request(message, timeout, check=(cpu_limit, over_cpu))
        if reply.message is None:
            return Reply(None, reply.elapsed, reply.timed_out, state["spent"])
        after = await self.cpu_used()
        if after is None and self._status.done():  # it replied, then ended
            after = self._status.result().get("cpu")
        self._cpu_mark = after
        return Reply(reply.message, reply.elapsed, False, None if after is None else after - before)

    async def _request(
        self,
        message: dict[str, Any] | codec.Prepared,
        timeout: float,
        check: tuple[float, Callable[[], Awaitable[bool]]] | None = None,
    ) -> Reply:
        request_id = secrets.token_hex(8)
        if isinstance(message, codec.Prepared):
            line = message.with_id(request_id)
        else:
            line = codec.dumps_message({**message, "id": request_id})
        start = time.perf_counter()
        try:  # a child that stops reading cannot stall us past the timeout
            async with asyncio.timeout(timeout):
                await self._send_line(line)
        except TimeoutError:
            self._trip("timeout")
            return Reply(None, time.perf_counter() - start, True)
        if check is None:
            reply, timed_out = await self._recv(timeout - (time.perf_counter() - start))
        else:  # wait in slices, asking between them whether the CPU limit is passed
            interval, over = check
            while True:
                left = timeout - (time.perf_counter() - start)
                reply, timed_out = await self._recv(min(left, interval))
                if reply is not None or not timed_out or left <= interval:
                    break
                if await over():
                    break
        elapsed = time.perf_counter() - start
        if reply is None:
            if timed_out:
                self._trip("timeout")
            return Reply(None, elapsed, timed_out)
        if reply.get("id") != request_id:
            self._trip(None, "protocol violation: a reply to a request that was not made")
            return Reply(None, elapsed)
        return Reply(reply, elapsed)

    async def call(self, args: list[Any], timeout: float) -> Reply:
        """Call a ``solution`` job's entry point with ``args`` (plain values, arrays).

        Sugar for ``request({"call": codec.encode(args)}, timeout)``. The time
        counted includes sending and decoding the arguments (about a
        millisecond for a 300x300 float matrix): splitting it off would let a
        hostile solution compute while its arguments "load". The reply's
        message is ``{"ok": encoded output}`` or ``{"error": ...}`` (decode
        ``ok`` with :func:`codec.decode`).
        """
        return await self.request({"call": codec.encode(list(args))}, timeout)

    async def serve(self, handler: Handler, timeout: float) -> Reply:
        """Answer the guest's rpcs with ``handler`` until it sends its final message.

        Returns the final ``{"result": ...}`` or ``{"error": ...}`` message;
        ``elapsed`` covers the whole exchange, including the handler's time.
        The handler gets decoded params and returns a codec-encodable value;
        an exception with an ``rpc_type`` attribute (e.g. :class:`RpcFailure`)
        reaches the guest as an exception of that name with its message, any
        other exception as a bare ``RpcError`` without details.
        """
        async with self._exchange:
            return await self._serve(handler, timeout)

    async def _serve(self, handler: Handler, timeout: float) -> Reply:
        start = time.perf_counter()
        deadline = time.monotonic() + timeout
        while True:
            message, timed_out = await self._recv(deadline - time.monotonic())
            if message is None:
                if timed_out:
                    self._trip("timeout")
                return Reply(None, time.perf_counter() - start, timed_out)
            if "rpc" not in message:
                return Reply(message, time.perf_counter() - start)
            answer: dict[str, Any] = {"id": message.get("id")}
            try:
                params = message.get("params")
                if not isinstance(params, dict):
                    raise RpcFailure("RpcError", "params must be an object")
                result = await handler(str(message["rpc"]), codec.decode(params))
                answer["result"] = codec.encode(result)
            except Exception as exc:
                kind = getattr(exc, "rpc_type", None)
                if kind is None:  # never pass on parent internals (paths, hidden data)
                    text = f"the parent could not answer {message.get('rpc')!r}"
                    answer["rpc_error"] = {"type": "RpcError", "message": text}
                else:
                    answer["rpc_error"] = {"type": str(kind), "message": str(exc)}
            try:
                await asyncio.wait_for(self.send(answer), max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                self._trip("timeout")
                return Reply(None, time.perf_counter() - start, True)

    # ------------------------------------------------------------------- end

    async def kill(self) -> ExitInfo:
        """Kill the job and everything it started; return how it ended."""
        if self._exit is not None:
            return self._exit
        if self._kill_task is None:
            self._kill_task = asyncio.ensure_future(self._do_kill())
            self._ending()
        return await asyncio.shield(self._kill_task)

    def kill_soon(self) -> tuple[str, str]:
        """Start killing the job without waiting for it; return the stdout and
        stderr captured so far (including what is already in the pipes).

        For callers whose result no longer depends on how the job ends (an
        evaluation whose last reply arrived): the guest flushes its output
        before each reply, so nothing written before that reply is lost. The
        kill completes in the background; :meth:`kill` and
        :meth:`Sandbox.close` still wait for it.
        """
        self._drain_pipes()
        out = self._out.data.decode("utf-8", "replace")
        err = self._err.data.decode("utf-8", "replace")
        if self._kill_task is None and self._exit is None:
            self._kill_task = asyncio.ensure_future(self._do_kill())
            self._ending()
        return out, err

    def _drain_pipes(self) -> None:
        """Read what stdout and stderr already hold (non-blocking) into the captures."""
        for transport, capture in zip(self._pipes, (self._out, self._err), strict=True):
            pipe = transport.get_extra_info("pipe")
            if pipe is None or transport.is_closing():
                continue
            with contextlib.suppress(OSError):  # BlockingIOError: nothing more there
                while data := os.read(pipe.fileno(), 65536):
                    capture.data_received(data)

    async def _do_kill(self) -> ExitInfo:
        if self._timer is not None:
            self._timer.cancel()
        with contextlib.suppress(OSError, RuntimeError):
            if self._ctl_writer.can_write_eof():
                self._ctl_writer.write_eof()  # the supervisor SIGKILLs the job's pid 1
        try:
            status = await asyncio.wait_for(asyncio.shield(self._status), KILL_GRACE)
        except TimeoutError:
            status = {"error": "the supervisor did not answer"}
            await self.sandbox._hard_reset(self)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(self._out.done, self._err.done), KILL_GRACE)
        for closable in (self._writer, self._ctl_writer):
            closable.close()
        for task in self._tasks:
            task.cancel()
        if self._process is not None:
            await _reap(self._process)
        self._exit = self._exit_info(status)
        self.sandbox._children.discard(self)
        return self._exit

    def _ending(self) -> None:
        """The job is being killed: once it is dead, fork a replacement spare, so
        that its fork and confinement overlap whatever the caller does next
        rather than a running job or the kill itself."""
        if self._armed and self.limits in self.sandbox._spares and self._kill_task is not None:
            self._kill_task.add_done_callback(lambda _: self.sandbox.prepare(self.limits))

    def _exit_info(self, status: dict[str, Any]) -> ExitInfo:
        limit, error = self._limit, self._error
        code = status.get("exit_code")
        sig = status.get("signal")
        cpu = status.get("cpu")
        if limit is None and error is None:
            if status.get("killed") == "backstop":
                limit = "wall"
            elif status.get("killed") == "processes":
                limit = "processes"
            elif sig == signal.SIGXCPU or (
                sig == signal.SIGKILL and cpu is not None and cpu >= self.limits.cpu_time * 0.95
            ):
                limit = "cpu"
            elif code == EXIT_MEMORY or self._memory_hit:
                limit = "memory"
            elif code == EXIT_CONFINE:
                error = "the sandbox could not confine the child: " + _last_line(self._err.data)
            elif "error" in status:
                error = str(status["error"])
        return ExitInfo(
            exit_code=code,
            signal=sig,
            limit=limit,
            error=error,
            stdout=self._out.data.decode("utf-8", "replace"),
            stderr=self._err.data.decode("utf-8", "replace"),
            stdout_truncated=self._out.truncated,
            stderr_truncated=self._err.truncated,
            cpu_time=cpu,
            wall_time=time.monotonic() - self._started,
            stopped=status.get("killed") == "parent",
        )

    async def __aenter__(self) -> Child:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()


def _factory(capture: _Capture) -> Callable[[], _Capture]:
    return lambda: capture


async def _reap(process: subprocess.Popen[bytes], grace: float = KILL_GRACE) -> None:
    """Wait for a direct child without blocking the loop; SIGKILL it after ``grace``."""
    deadline = time.monotonic() + grace
    while process.poll() is None:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await asyncio.get_running_loop().run_in_executor(None, process.wait)
            return
        await asyncio.sleep(0.01)


def _last_line(data: bytes | bytearray) -> str:
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no details"


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
            return layers.SCRATCH_IN_SANDBOX
        if self._host_scratch is None:
            self._host_scratch = tempfile.mkdtemp(prefix="stop-tui-sandbox-")
        return self._host_scratch

    def _prefix(self) -> list[str]:
        return layers.bwrap_argv() if self._bwrap else []

    async def _start_zygote(self) -> None:
        await self._stop_zygote()
        parent_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv = [*self._prefix(), *layers.boot_argv("zygote", str(zygote_end.fileno()))]
            debug = bool(os.environ.get("STOP_TUI_SANDBOX_DEBUG"))
            self._zygote = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=None if debug else subprocess.DEVNULL,
                pass_fds=(zygote_end.fileno(),),
                env=layers.child_env(),
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
            await _reap(proc, 2.0)  # it exits when its socket closes

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
            "read_paths": list(layers.read_paths() if self._bwrap else layers.host_read_paths()),
            "layers": {
                "landlock": self.report.active("landlock"),
                "seccomp": self.report.active("seccomp"),
                "pidns": self.report.active("userns"),
            },
        }
        chan_p, chan_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ctl_p, ctl_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
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
        await child._attach(chan_p, ctl_p, out_r, err_r)
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
        argv = [*self._prefix(), *layers.boot_argv("cold", json.dumps(spec))]
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            pass_fds=(chan, ctl),
            env=layers.child_env(),
            cwd="/",
            start_new_session=True,
        )
