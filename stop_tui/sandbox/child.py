"""One job in a confined process, seen from the parent: its channel, its clocks, its end.

:class:`Child` sends and receives size-checked JSON lines, measures time in the
parent (a timed-out request kills the child, limit ``"timeout"``; the whole
lifetime is bounded by ``Limits.wall_time``, limit ``"wall"``), reads stdout and
stderr itself (at most ``max_output_bytes`` kept; ``OUTPUT_KILL_FACTOR`` times
that kills it, limit ``"output"``), answers an improver's rpcs, and on
:meth:`Child.kill` returns only once the job and every process it started are dead.
Children are made by :class:`stop_tui.sandbox.api.Sandbox` (their :class:`Owner`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from stop_tui.sandbox import codec, usage
from stop_tui.sandbox.guest.runner import EXIT_CONFINE, EXIT_MEMORY
from stop_tui.sandbox.guest.zygote import CPU, GO, HELLO
from stop_tui.sandbox.limits import ExitInfo, Handler, Limits, Reply, RpcFailure

OUTPUT_KILL_FACTOR = 4
KILL_GRACE = 5.0  # seconds to wait for the supervisor's status after a kill
CORES = os.cpu_count() or 1  # asked once: os.cpu_count() reads /sys (~25 us) every call


class Owner(Protocol):
    """What a child needs of the sandbox that made it (:class:`stop_tui.sandbox.api.Sandbox`)."""

    _children: set[Child]  # the live children, which the owner kills on close
    _spares: dict[Limits, list[Child]]  # the limits profiles that keep spares

    def prepare(self, limits: Limits | None = None) -> None: ...

    async def _hard_reset(self, child: Child) -> None: ...


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

    def __init__(self, sandbox: Owner, job_id: str, limits: Limits) -> None:
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
        self._ctl: socket.socket  # the control socket: GO, CPU and EOF out; HELLO, usage, status in
        self._ctl_transport: asyncio.BaseTransport | None = None
        self._job_usage: usage.JobUsage | None = None  # the job's CPU, read from /proc
        self._single_process = False  # the job cannot fork: its process clock is its usage
        self._greeted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._out: _Capture
        self._err: _Capture
        self._tasks: list[asyncio.Task[Any]] = []
        self._pipes: list[asyncio.ReadTransport] = []
        self._timer: asyncio.TimerHandle | None = None
        self._armed = False  # a job was handed to it (a spare is not armed yet)
        self._exchange = asyncio.Lock()  # one request/serve at a time per child
        self._usage: asyncio.Future[float] | None = None  # the pending CPU query
        self._usage_lock = asyncio.Lock()
        # CPU used when the last limited request ended, measured (or being measured)
        # since _mark_time: see _limited.
        self._cpu_mark: asyncio.Future[float | None] | None = None
        self._mark_time = 0.0
        self._mark_read = False  # the mark was read here (else asked of the supervisor)

    async def _attach(
        self, chan: socket.socket, ctl: socket.socket, out: int, err: int, *, single: bool
    ) -> None:
        """Take over the job's sockets and pipes. ``ctl`` has ``SO_PASSCRED`` on (see
        :mod:`stop_tui.sandbox.usage`); ``single``: the job cannot start processes."""
        loop = asyncio.get_running_loop()
        self._reader, self._writer = await asyncio.open_unix_connection(
            sock=chan, limit=self.limits.max_message_bytes + 1
        )
        ctl.setblocking(False)
        self._ctl, self._single_process = ctl, single
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
        with contextlib.suppress(OSError):
            self._ctl.send(GO)  # one byte into an empty buffer: never blocks

    async def _hello(self) -> bytes:
        """The supervisor's first byte on the control socket and, from its credentials,
        a reader of the job's CPU time (``HELLO``; anything else is kept for the status)."""
        try:
            data, pid = await usage.first_byte(self._ctl)
            if data == HELLO and pid is not None:
                self._job_usage = usage.JobUsage.open(pid, self._single_process)
        finally:
            if not self._greeted.done():
                self._greeted.set_result(None)
        return b"" if data == HELLO else data

    async def _read_status(self) -> None:
        status: dict[str, Any] = {"error": "the sandbox ended before the job reported"}
        try:
            first = await self._hello()
            reader = asyncio.StreamReader()
            if first:
                reader.feed_data(first)
            self._ctl_transport, _ = await asyncio.get_running_loop().create_unix_connection(
                lambda: asyncio.StreamReaderProtocol(reader), sock=self._ctl
            )
            while line := await reader.readline():
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
        """CPU seconds the job's processes have used so far, measured outside the job
        (read here, else asked of its supervisor: the job cannot forge either); None
        when the job has ended or the supervisor does not answer within ``KILL_GRACE``."""
        if (seconds := self._read_usage()) is not None:
            return seconds
        return await self._ask_usage()

    async def _ask_usage(self) -> float | None:
        """The job's CPU seconds as its supervisor answers (a round trip), or None."""
        async with self._usage_lock:
            if not self.alive or self._kill_task is not None:
                return None
            answer: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            self._usage = answer
            try:
                self._ctl.send(CPU)
            except OSError:
                return None
            waits: set[asyncio.Future[Any]] = {answer, self._status}
            await asyncio.wait(waits, timeout=KILL_GRACE, return_when="FIRST_COMPLETED")
            self._usage = None
            return answer.result() if answer.done() else None

    def _read_usage(self) -> float | None:
        """The job's CPU seconds measured here (no round trip), or None."""
        if self._job_usage is None or not self.alive or self._kill_task is not None:
            return None
        return self._job_usage.seconds()

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
        # The CPU mark (what the job had used when the previous limited request ended) is
        # taken then: read here, or (no reader) a supervisor query that the request does
        # not wait for; only a verdict that needs the mark awaits it.
        if self._cpu_mark is None:  # the first: every measurement from one source
            if not self._greeted.done():
                waits: set[asyncio.Future[Any]] = {self._greeted, self._status}
                await asyncio.wait(waits, timeout=KILL_GRACE, return_when="FIRST_COMPLETED")
            self._fire_mark()
        mark, mark_time, read = self._cpu_mark, self._mark_time, self._mark_read
        assert mark is not None
        self._cpu_mark = None
        state = {"spent": 0.0}

        async def now() -> float | None:  # measured as the mark was: one source per verdict
            return self._read_usage() if read else await self._ask_usage()

        async def over_cpu() -> bool:
            before = await mark
            used = await now()
            if before is None or used is None:  # no supervisor answer: the wall backstop
                return False
            state["spent"] = used - before
            return used - before > cpu_limit

        # Asked twice per limit: a job over it is stopped within 1.5 limits of CPU.
        reply = await self._request(message, timeout, check=(cpu_limit / 2, over_cpu))
        if reply.message is None:
            return Reply(None, reply.elapsed, reply.timed_out, state["spent"])
        # The job's processes cannot have used more CPU since the mark than the wall time
        # since then on every core: under the limit that way, the verdict needs no
        # measurement (the reply carries no ``cpu``; its wall time is under the limit).
        if (time.perf_counter() - mark_time) * CORES <= cpu_limit:
            self._fire_mark()
            return Reply(reply.message, reply.elapsed, False, None)
        before = await mark
        after = await now()
        if after is None and self._status.done():  # it replied, then ended (rusage: exact)
            after = self._status.result().get("cpu")
        self._set_mark(after, read)
        if before is None or after is None:
            return Reply(reply.message, reply.elapsed, False, None)
        return Reply(reply.message, reply.elapsed, False, after - before)

    def _fire_mark(self) -> None:
        if (seconds := self._read_usage()) is not None:
            self._set_mark(seconds, read=True)
        else:
            self._mark_time, self._mark_read = time.perf_counter(), False
            self._cpu_mark = asyncio.ensure_future(self._ask_usage())

    def _set_mark(self, seconds: float | None, read: bool) -> None:
        """The mark is ``seconds``, measured now; ``read``: here (else asked), so that
        the next verdict measures the same way."""
        self._mark_time, self._mark_read = time.perf_counter(), read
        self._cpu_mark = asyncio.get_running_loop().create_future()
        self._cpu_mark.set_result(seconds)

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
        with contextlib.suppress(OSError):
            self._ctl.shutdown(socket.SHUT_WR)  # the supervisor SIGKILLs the job's pid 1
        try:
            status = await asyncio.wait_for(asyncio.shield(self._status), KILL_GRACE)
        except TimeoutError:
            status = {"error": "the supervisor did not answer"}
            await self.sandbox._hard_reset(self)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(self._out.done, self._err.done), KILL_GRACE)
        self._writer.close()
        for task in self._tasks:
            task.cancel()
        if self._ctl_transport is not None:
            self._ctl_transport.close()
        else:  # the HELLO never came: its reader goes before the fd number can be reused
            with contextlib.suppress(OSError, ValueError):
                asyncio.get_running_loop().remove_reader(self._ctl.fileno())
            self._ctl.close()
        if self._job_usage is not None:
            self._job_usage.close()
        if self._process is not None:
            await reap(self._process)
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


async def reap(process: subprocess.Popen[bytes], grace: float = KILL_GRACE) -> None:
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
