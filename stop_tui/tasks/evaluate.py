"""Evaluate an untrusted solution on a task's hidden split, in the sandbox.

The parent generates the instances and scores the outputs; the child only
ever sees the positional arguments of one instance at a time.

A task's ``time_limit`` is CPU time: the CPU seconds the child's processes
spend on one instance, measured outside the child by its supervisor
(:meth:`Child.request` with ``cpu_limit``). CPU time does not grow when the
machine is busy, so a solution gets the same verdicts, hence the same score,
on an idle laptop and under a load of 10 on 2 cores: replays and resumed runs
reproduce scores exactly. Wall time stays a backstop, ``WALL_FACTOR`` times
the limit plus ``WALL_SLACK`` per instance (a solution that sleeps or blocks
uses no CPU, and must not stall us), and it is a timeout too. A solution that
times out on one instance scores 0 there, its child is killed, and a fresh
child (never the same one) takes the remaining instances; after
``MAX_TIMEOUTS`` timeouts the rest score 0 unrun. A hostile solution costs at
most about ``count * (WALL_FACTOR * time_limit + WALL_SLACK)`` wall seconds
plus start-up (one that sleeps just under the backstop on every instance).
"""

from __future__ import annotations

import hashlib
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from stop_tui.sandbox import codec
from stop_tui.sandbox.api import Sandbox
from stop_tui.sandbox.child import Child
from stop_tui.sandbox.limits import Limits, Reply
from stop_tui.tasks import EvaluatorError, Malformed
from stop_tui.tasks.registry import Task

MAX_TIMEOUTS = 3
WALL_FACTOR = 10.0  # wall backstop per instance: this many times the CPU limit...
WALL_SLACK = 1.0  # ... plus this many seconds (start-up jitter of a loaded machine)
READY_TIMEOUT = 20.0  # seconds to define the solution (imports, top-level code)
SPLITS = ("val", "test")

# Each instance's request, serialised once per task and split (instances never change).
_REQUESTS: weakref.WeakKeyDictionary[Task, dict[str, list[codec.Prepared]]] = (
    weakref.WeakKeyDictionary()
)


def _requests(
    task: Task, split: str, instances: list[tuple[list[Any], object]]
) -> list[codec.Prepared]:
    by_split = _REQUESTS.setdefault(task, {})
    requests = by_split.get(split)
    if requests is None or len(requests) != len(instances):
        requests = [codec.Prepared({"call": codec.encode(list(args))}) for args, _ in instances]
        by_split[split] = requests
    return requests


@dataclass(frozen=True)
class InstanceResult:
    index: int
    score: float
    seconds: float | None  # parent-measured; None when the instance did not run
    # timeout | malformed: ... | error: ... | crashed: ... | skipped | evaluator: ...
    flag: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "score": self.score,
            "seconds": self.seconds,
            "flag": self.flag,
        }


@dataclass
class EvalResult:
    task: str
    split: str
    score: float
    instances: list[InstanceResult]
    flags: list[str] = field(default_factory=list)  # distinct kinds, for audits and tables
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "split": self.split,
            "score": self.score,
            "flags": self.flags,
            "seconds": self.seconds,
            "instances": [r.to_dict() for r in self.instances],
        }


def rng_seed_for(source: str, split: str, salt: int = 0) -> int:
    """The seed of the child's ``random`` and ``numpy.random`` for one evaluation.

    It depends only on the solution's text, the split and the run's seed, so the
    same solution scores the same wherever and whenever it is evaluated: replays
    reproduce scores exactly and resumed runs need not re-run anything.
    """
    digest = hashlib.sha256(f"{salt}\0{split}\0{source}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def instance_wall(task: Task) -> float:
    """The wall-clock backstop of one instance (its CPU limit is ``task.time_limit``)."""
    return task.time_limit * WALL_FACTOR + WALL_SLACK


def solution_limits(task: Task) -> Limits:
    count = max(split.count for split in task.splits.values())
    wall = READY_TIMEOUT + count * max(task.time_limit, 0.05) * WALL_FACTOR + 10
    return Limits(wall_time=wall, cpu_time=wall, memory_mb=1024)


def timed_out(task: Task, reply: Reply) -> bool:
    """Whether one instance's reply is a timeout: past the wall backstop, or
    over the CPU limit (the wall limit only when the CPU could not be measured)."""
    if reply.timed_out:
        return True
    if reply.message is None:
        return False
    spent = reply.cpu if reply.cpu is not None else reply.elapsed
    return spent > task.time_limit


def _flag_kind(flag: str) -> str:
    return flag.split(":", 1)[0]


async def _spawn(sandbox: Sandbox, task: Task, source: str, seed: int) -> tuple[Child, str | None]:
    child = await sandbox.spawn(
        "solution",
        {"source": source, "entry_point": task.entry_point, "rng_seed": seed},
        solution_limits(task),
    )
    ready = await child.recv(timeout=READY_TIMEOUT)
    if ready is None:
        info = await child.kill()
        return child, f"error: the solution did not start ({info.summary})"
    if "error" in ready:
        await child.kill()
        return child, f"error: {text_of(ready['error'], 300)}"
    return child, None


async def evaluate(
    task: Task,
    source: str,
    split: str,
    sandbox: Sandbox,
    *,
    salt: int = 0,
) -> EvalResult:
    """Score ``source`` on every instance of ``split`` (``"val"`` or ``"test"``)."""
    if split not in task.splits:
        raise ValueError(f"task {task.name} has no split {split!r}")
    started = time.perf_counter()
    instances = task.instances(split)
    requests = _requests(task, split, instances)
    seed = rng_seed_for(source, split, salt)
    results: list[InstanceResult] = []
    outputs: list[str] = []
    errors: list[str] = []
    timeouts = 0
    child: Child | None = None
    fatal: str | None = None
    try:
        for index, (args, hidden) in enumerate(instances):
            if fatal is not None:
                results.append(InstanceResult(index, 0.0, None, fatal))
                continue
            if timeouts >= MAX_TIMEOUTS:
                results.append(InstanceResult(index, 0.0, None, "skipped: too many timeouts"))
                continue
            if child is None or not child.alive:
                if child is not None:
                    _collect(await child.kill(), outputs, errors)
                child, problem = await _spawn(sandbox, task, source, seed)
                if problem is not None:
                    _collect(await child.kill(), outputs, errors)
                    child = None
                    fatal = problem  # the definition itself fails: every instance scores 0
                    results.append(InstanceResult(index, 0.0, None, fatal))
                    continue
            reply = await child.request(
                requests[index], timeout=instance_wall(task), cpu_limit=task.time_limit
            )
            if timed_out(task, reply):
                timeouts += 1
                results.append(InstanceResult(index, 0.0, reply.elapsed, "timeout"))
                if child.alive:
                    _collect(await child.kill(), outputs, errors)
                child = None
                continue
            if reply.message is None:
                info = await child.kill()
                _collect(info, outputs, errors)
                child = None
                results.append(
                    InstanceResult(index, 0.0, reply.elapsed, f"crashed: {info.summary}")
                )
                continue
            score, flag = judge(task, args, hidden, reply.message)
            results.append(InstanceResult(index, score, reply.elapsed, flag))
    finally:
        if child is not None and child.alive:
            # Every reply is in: the score no longer depends on how the child ends,
            # so it dies in the background (the sandbox waits for it on close).
            stdout, stderr = child.kill_soon()
            outputs.append(stdout)
            errors.append(stderr)
        elif child is not None:  # a limit fired: report which
            _collect(await child.kill(), outputs, errors)
    total = sum(r.score for r in results) / len(results) if results else 0.0
    flags = sorted({_flag_kind(r.flag) for r in results if r.flag})
    return EvalResult(
        task=task.name,
        split=split,
        score=total,
        instances=results,
        flags=flags,
        stdout="".join(outputs)[-20_000:],
        stderr="".join(errors)[-20_000:],
        seconds=time.perf_counter() - started,
    )


_REPLY_KEYS = ({"id", "ok"}, {"id", "error"}, {"id", "error", "limit"})


def judge(
    task: Task, args: list[Any], hidden: object, message: dict[str, Any]
) -> tuple[float, str | None]:
    """The score and flag of one instance from the child's reply (any JSON object).

    Total: whatever the child sent (a forged or garbled reply, an array of an
    impossible shape, an output that makes the hidden evaluator fail) gives a
    score of 0 and a flag, never an exception.
    """
    keys = set(message)
    if keys not in _REPLY_KEYS:
        extra = sorted(keys - {"id", "ok", "error", "limit"})[:3]
        what = f"unexpected keys {extra}" if extra else "neither an output nor an error"
        return 0.0, f"malformed: the reply has {what}"
    if "error" in message:
        return 0.0, f"error: {text_of(message['error'], 300)}"
    try:
        output = codec.decode(message["ok"])
        return task.score(list(args), hidden, output), None
    except (Malformed, codec.CodecError) as exc:
        return 0.0, f"malformed: {text_of(str(exc), 300)}"
    except EvaluatorError as exc:  # a task bug this output found: flagged, never fatal
        return 0.0, f"evaluator: {text_of(str(exc), 300)}"
    except Exception as exc:  # e.g. MemoryError or RecursionError while scoring
        return 0.0, f"malformed: the output could not be scored ({type(exc).__name__})"


def text_of(value: object, limit: int) -> str:
    """Untrusted text for a flag: a string cut to ``limit`` characters; anything
    else only named (its repr could be huge or nested past the recursion limit)."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "..."
    return f"(a {type(value).__name__}, not text)"


def _collect(info: Any, outputs: list[str], errors: list[str]) -> None:
    if info is None:
        return
    if info.stdout:
        outputs.append(info.stdout)
    if info.stderr:
        errors.append(info.stderr)
    if info.limit and info.limit != "timeout":
        errors.append(f"[sandbox] {info.summary}\n")
