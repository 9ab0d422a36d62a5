"""Guest entry point: read the job from the channel, dispatch, answer requests.

Runs inside a confined job process (imports only stdlib, numpy and the codec).
The channel (fd 3) carries JSON lines; stdout and stderr are plain pipes, so
nothing the guest code prints can pass for a protocol message. The first
message from the parent is ``{"job": name, "payload": {...}}``.

Jobs
----
``solution`` (payload ``{"source", "entry_point"}``)
    defines the source in a fresh module namespace, then sends
    ``{"ready": true}`` (or ``{"error": "..."}`` and exits when the source does
    not define a callable entry point). Then it answers every
    ``{"id": ..., "call": [encoded args]}`` with ``{"id": ..., "ok": encoded
    output}`` or ``{"id": ..., "error": "Type: message"}``.
``improver`` (payload ``{"source", "initial_solution", "utility": {"str",
"budget"}, "language_model": {"budget", "max_responses_per_call"}}``)
    runs ``improve_algorithm(initial_solution, utility, language_model)``
    (``BudgetExceeded``, ``UtilityError`` and ``RpcError`` are predefined in
    the improver's namespace); the proxies send ``{"id", "rpc": method, "params"}`` and wait for ``{"id",
    "result"}`` or ``{"id", "rpc_error": {"type", "message"}}``. Ends with
    ``{"result": str}`` or ``{"error": "..."}``.

A ``MemoryError`` ends the job with exit code ``EXIT_MEMORY`` after an error
reply that carries ``"limit": "memory"``, so the parent can name the limit
that fired (a job can only make itself look worse by forging that).
"""

from __future__ import annotations

import builtins
import contextlib
import os
import select
import socket
import sys
import types
from collections.abc import Callable
from typing import Any, NoReturn

from stop_tui.sandbox import codec

EXIT_CONFINE = 70  # a confinement layer could not be applied: nothing untrusted ran
EXIT_MEMORY = 71  # the job hit its memory limit (MemoryError)


class Channel:
    """Blocking JSON-lines endpoint on the job side."""

    def __init__(self, fd: int, max_bytes: int) -> None:
        self._sock = socket.socket(fileno=fd)
        self._reader = self._sock.makefile("rb")
        self._max = max_bytes

    def send(self, message: dict[str, Any]) -> None:
        self._sock.sendall(codec.dumps_message(message))

    def send_line(self, line: bytes) -> None:
        self._sock.sendall(line)

    def recv(self) -> dict[str, Any] | None:
        line = self._reader.readline(self._max + 1)
        if not line:
            return None
        if len(line) > self._max or not line.endswith(b"\n"):
            _die("message from the parent is too large or cut short")
        return codec.loads_message(line)


def _die(reason: str, code: int = 1) -> NoReturn:
    try:
        sys.stderr.write(f"stop-tui guest: {reason}\n")
        sys.stderr.flush()
    finally:
        os._exit(code)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _define(source: str, name: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    module = types.ModuleType(name)
    module.__dict__["__builtins__"] = builtins
    module.__dict__.update(extra or {})
    code = compile(source, f"<{name}>", "exec")
    exec(code, module.__dict__)
    return module.__dict__


def _seed_random(payload: dict[str, Any]) -> None:
    """Seed ``random`` and numpy's global state from the parent's ``rng_seed`` so that
    a solution or improver that draws random numbers behaves the same in a replay."""
    seed = payload.get("rng_seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return
    import random

    random.seed(seed)
    with contextlib.suppress(Exception):
        import numpy
        import numpy.random.bit_generator as bit_generator

        numpy.random.seed(seed % 2**32)
        # numpy.random.default_rng() (and any SeedSequence without entropy) draws its
        # entropy from the OS through this module global: from here on it comes from a
        # stream of the same seed, so unseeded generators repeat on every machine too.
        if callable(getattr(bit_generator, "randbits", None)):
            setattr(bit_generator, "randbits", random.Random(seed).getrandbits)  # noqa: B010


# -------------------------------------------------------------------- solution


def _run_solution(chan: Channel, payload: dict[str, Any]) -> None:
    _seed_random(payload)
    try:
        namespace = _define(str(payload["source"]), "solution")
        entry = namespace.get(str(payload["entry_point"]))
        if not callable(entry):
            raise NameError(f"the solution does not define a function {payload['entry_point']!r}")
    except MemoryError as exc:
        chan.send({"error": _describe(exc), "limit": "memory"})
        _flush()
        os._exit(EXIT_MEMORY)
    except BaseException as exc:
        chan.send({"error": _describe(exc)})
        return
    _flush()
    chan.send({"ready": True})
    while True:
        message = chan.recv()
        if message is None:
            return
        reply_id = message.get("id")
        try:
            args = codec.decode(message["call"])
            output = entry(*args)
        except MemoryError as exc:
            _flush()
            chan.send({"id": reply_id, "error": _describe(exc), "limit": "memory"})
            os._exit(EXIT_MEMORY)
        except BaseException as exc:
            _flush()
            chan.send({"id": reply_id, "error": _describe(exc)})
            continue
        _flush()
        try:
            line = codec.dumps_message({"id": reply_id, "ok": codec.encode(output)})
        except Exception as exc:
            chan.send({"id": reply_id, "error": f"unserialisable output: {_describe(exc)}"})
            continue
        chan.send_line(line)


# -------------------------------------------------------------------- improver


class RpcError(Exception):
    """The parent refused an rpc for a reason without its own class."""


class BudgetExceeded(RpcError):
    """A language-model or utility budget is used up."""


class UtilityError(RpcError):
    """The parent could not evaluate a solution."""


_RPC_ERRORS: dict[str, type[RpcError]] = {
    cls.__name__: cls for cls in (RpcError, BudgetExceeded, UtilityError)
}


class _Rpc:
    def __init__(self, chan: Channel) -> None:
        self._chan = chan
        self._next = 0

    def call(self, method: str, params: dict[str, Any]) -> Any:
        self._next += 1
        request_id = self._next
        self._chan.send({"id": request_id, "rpc": method, "params": codec.encode(params)})
        while True:
            reply = self._chan.recv()
            if reply is None:
                _die("the parent hung up during an rpc", 0)
            if reply.get("id") != request_id:
                continue
            if "rpc_error" in reply:
                err = reply["rpc_error"] if isinstance(reply["rpc_error"], dict) else {}
                kind = str(err.get("type", "RpcError"))
                cls = _RPC_ERRORS.get(kind, RpcError)
                text = str(err.get("message", ""))
                raise cls(text if cls is not RpcError or kind == "RpcError" else f"{kind}: {text}")
            return codec.decode(reply.get("result"))


class Utility:
    """The utility proxy an improver receives: ``utility(solution, use_sandbox=True)``."""

    def __init__(self, rpc: _Rpc, text: str, budget: int) -> None:
        self._rpc = rpc
        self.str = text
        self.budget = budget

    def __call__(self, solution: str, use_sandbox: bool = True) -> float:
        result = self._rpc.call("utility", {"solution": solution, "use_sandbox": use_sandbox})
        return float(result)


class LanguageModel:
    """The language-model proxy an improver receives."""

    def __init__(self, rpc: _Rpc, budget: int, max_responses_per_call: int) -> None:
        self._rpc = rpc
        self.budget = budget
        self.max_responses_per_call = max_responses_per_call

    def prompt(
        self, expertise: str, message: str, n_responses: int = 1, temperature: float = 0.7
    ) -> list[str]:
        params = {
            "expertise": expertise,
            "message": message,
            "n_responses": n_responses,
            "temperature": temperature,
        }
        return _strings(self._rpc.call("lm.prompt", params))

    def batch_prompt(
        self, expertise: str | list[str], messages: list[str], temperature: float = 0.7
    ) -> list[str]:
        params = {"expertise": expertise, "messages": list(messages), "temperature": temperature}
        return _strings(self._rpc.call("lm.batch_prompt", params))


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise RpcError("the parent answered with something other than a list")
    return [str(item) for item in value]


def _run_improver(chan: Channel, payload: dict[str, Any]) -> None:
    _seed_random(payload)
    rpc = _Rpc(chan)
    utility_spec = payload["utility"]
    lm_spec = payload["language_model"]
    utility = Utility(rpc, str(utility_spec["str"]), int(utility_spec["budget"]))
    language_model = LanguageModel(
        rpc, int(lm_spec["budget"]), int(lm_spec["max_responses_per_call"])
    )
    try:
        namespace = _define(str(payload["source"]), "improver", dict(_RPC_ERRORS))
        improve: Callable[..., Any] | None = namespace.get("improve_algorithm")
        if not callable(improve):
            raise NameError("the improver does not define a function 'improve_algorithm'")
        result = improve(payload["initial_solution"], utility, language_model)
    except MemoryError as exc:
        _flush()
        chan.send({"error": _describe(exc), "limit": "memory"})
        os._exit(EXIT_MEMORY)
    except BaseException as exc:
        _flush()
        chan.send({"error": _describe(exc)})
        return
    _flush()
    if isinstance(result, str):
        chan.send({"result": result})
    else:
        chan.send({"error": f"improve_algorithm returned {type(result).__name__}, not a string"})


JOBS: dict[str, Callable[[Channel, dict[str, Any]], None]] = {
    "solution": _run_solution,
    "improver": _run_improver,
}


def _warm_up() -> None:
    """Walk the paths every job takes (codec, JSON, base64, numpy's random state,
    compile) on made-up values before the payload arrives. A freshly forked job
    shares the zygote's memory copy-on-write; doing this while it waits as a
    spare takes the page copies and first-call costs off the job's clock.
    Trusted code on constant data: nothing from the parent is read yet."""
    import random

    import numpy

    with contextlib.suppress(Exception):
        values: list[Any] = [numpy.arange(200).reshape(20, 10), numpy.zeros(100)]
        values += [numpy.ones(8, bool), numpy.arange(5), 1.5, "AB", [1, None], {"k": True}]
        line = codec.dumps_message({"id": "warm", "call": codec.encode(values)})
        codec.decode(codec.loads_message(line)["call"])
        state = random.getstate(), numpy.random.get_state()
        random.seed(0)
        numpy.random.seed(0)
        numpy.random.binomial(1, 0.5, 20)
        random.setstate(state[0])
        numpy.random.set_state(state[1])
        compile("def f(x):\n    return [x]\n", "<warm>", "exec")


def main(fd: int, max_message_bytes: int) -> NoReturn:
    chan = Channel(fd, max_message_bytes)
    if not select.select([fd], [], [], 0)[0]:  # a spare with time to spare (no job yet)
        _warm_up()
    first = chan.recv()
    if first is None:
        os._exit(0)
    job = JOBS.get(str(first.get("job")))
    if job is None or not isinstance(first.get("payload"), dict):
        _die(f"unknown job {first.get('job')!r}")
    job(chan, first["payload"])
    _flush()
    os._exit(0)
