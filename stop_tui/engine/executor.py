"""Where sandboxed work runs: the executor boundary between the engine and the machines.

Everything that starts generated code goes through an :class:`Executor`: a
solution's evaluation on a task split, and an improver's run (whose utility and
LM rpcs are answered by the driver's handler, where budgets are counted). The
loop, approvals, store and front ends never know which executor they use.
:class:`LocalExecutor` (the default) runs children of this machine's sandbox;
:mod:`stop_tui.engine.ray_executor` runs them in the sandboxes of a Ray
cluster's nodes.
"""

from __future__ import annotations

from typing import Protocol

from stop_tui.engine.runner import ImproverCall, ImproverOutcome, RunAborted, run_improver
from stop_tui.sandbox.api import Sandbox
from stop_tui.tasks.evaluate import EvalResult, evaluate, solution_limits
from stop_tui.tasks.registry import Task


class ClusterLost(RunAborted):
    """The executor has no machine left to run on; the run stops resumable."""


class Executor(Protocol):
    """Runs sandboxed work; every answer a child needs comes from the caller."""

    async def start(self, task: Task) -> None:
        """Get ready to evaluate solutions of ``task`` (idempotent)."""

    async def evaluate(self, task: Task, source: str, split: str, *, salt: int = 0) -> EvalResult:
        """Score ``source`` on ``split`` of ``task`` in a sandbox (deterministic)."""
        ...

    async def run_improver(self, call: ImproverCall) -> ImproverOutcome:
        """Run an improver in a sandbox, answering its rpcs with ``call``'s objects."""
        ...

    async def close(self) -> None:
        """Release what :meth:`start` took (this machine's sandbox is its owner's)."""

    def describe(self) -> str:
        """Where the work runs, in a few words for people."""
        ...


class LocalExecutor:
    """This machine's sandbox (what every run used before executors existed)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def start(self, task: Task) -> None:
        await self.sandbox.start()
        # Confined spare children for this task's evaluations, ready before the first.
        self.sandbox.prepare(solution_limits(task))

    async def evaluate(self, task: Task, source: str, split: str, *, salt: int = 0) -> EvalResult:
        return await evaluate(task, source, split, self.sandbox, salt=salt)

    async def run_improver(self, call: ImproverCall) -> ImproverOutcome:
        return await run_improver(self.sandbox, call)

    async def close(self) -> None:
        return None

    def describe(self) -> str:
        return "this machine's sandbox"
