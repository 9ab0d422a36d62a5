"""Run a run's sandboxed work on a Ray cluster, keeping every guarantee of the local sandbox.

One :class:`NodeWorker` actor per node owns that node's :class:`Sandbox` (the same
isolation stack as on this machine) and probes it when it starts: a node without
the full stack takes no work unless the user passed ``--unsafe``. Generated code
runs only in a child of that sandbox, never in the Ray worker process.

Everything that decides or counts stays with the driver (this process): budgets,
caps, transcripts, approvals, the git store. An improver running on a node sends
its utility and LM rpcs to the node's actor, which hands them to the driver
through actor method calls the driver long-polls (``next``/``answer``): the driver
answers each one with the same handler the local executor uses, so the LM is
called from the driver and its API key never leaves this machine, and the
budgets are the driver's. Polling from the driver needs no driver-side actor or
queue process and works the same through Ray client (``ray://``).

What crosses from a node to the driver is our own objects (pickled by Ray between
our processes) or, for anything the child produced (rpc params, the improver's
final message), the JSON text the sandbox already size-checked and decoded.

Faults: work on a node that dies is retried on another node. An improver's
retry replays, in order, the answers its earlier attempt already got (nothing is
charged or recorded twice); evaluations are deterministic and simply re-run.
With no accepted node left the run stops with :class:`ClusterLost`, resumable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from stop_tui.config import parse_cluster
from stop_tui.engine.executor import ClusterLost
from stop_tui.engine.runner import (
    ImproverCall,
    ImproverOutcome,
    RpcHandler,
    improver_outcome,
    payload_for,
)
from stop_tui.errors import UserError
from stop_tui.sandbox import codec
from stop_tui.sandbox.api import ExitInfo, Limits, RpcFailure, Sandbox
from stop_tui.tasks.evaluate import EvalResult, evaluate, solution_limits
from stop_tui.tasks.registry import Task, get_task


def ray_module() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(
            "running on a cluster needs Ray, which is not installed",
            hint="pip install 'stop-tui[ray]'",
        ) from None
    return ray


@dataclass(frozen=True)
class NodeReport:
    """One node's isolation, as its actor found it."""

    node_id: str
    address: str
    cpus: float
    full: bool
    accepted: bool
    detail: str  # the layers, or why the node is refused


class NodeWorker:
    """The per-node actor (made a Ray actor class by :func:`_actor_class`)."""

    def __init__(self, unsafe: bool) -> None:
        self.unsafe = unsafe
        self.sandbox: Sandbox | None = None
        self.jobs: dict[int, _Job] = {}
        self.tasks: dict[str, Task] = {}

    async def probe(self) -> dict[str, Any]:
        report = Sandbox.probe()
        accepted = report.full or self.unsafe
        if accepted and self.sandbox is None:
            self.sandbox = Sandbox(unsafe=self.unsafe)
            await self.sandbox.start()
        layers = ", ".join(
            f"{layer.name}{'' if layer.active else ' (missing)'}" for layer in report.layers
        )
        return {
            "host": socket.gethostname(),
            "full": report.full,
            "accepted": accepted,
            "detail": layers if report.full else report.refusal(),
        }

    def _sandbox(self) -> Sandbox:
        if self.sandbox is None:  # never: the driver sends work only to accepted nodes
            raise RuntimeError("this node's sandbox was refused")
        return self.sandbox

    def _task(self, name: str) -> Task:
        task = self.tasks.get(name)
        if task is None:
            task = self.tasks[name] = get_task(name)
            self._sandbox().prepare(solution_limits(task))
        return task

    async def evaluate(self, task: str, source: str, split: str, salt: int) -> EvalResult:
        return await evaluate(self._task(task), source, split, self._sandbox(), salt=salt)

    async def start_improver(self, job: int, payload: dict[str, Any], limits: Limits) -> None:
        child = await self._sandbox().spawn("improver", payload, limits)
        state = _Job()
        self.jobs[job] = state

        async def handler(method: str, params: dict[str, Any]) -> Any:
            seq = next(state.ids)
            answer: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
            state.answers[seq] = answer
            await state.events.put(("rpc", seq, method, json.dumps(codec.encode(params))))
            reply = await answer
            if reply[0] == "ok":
                return codec.decode(json.loads(reply[1]))
            raise RpcFailure(reply[1], reply[2])

        async def serve() -> None:
            try:
                async with child:
                    reply = await child.serve(handler, timeout=limits.wall_time)
                text = None if reply.message is None else json.dumps(reply.message)
                await state.events.put(("done", text, child.exit_info))
            except Exception as exc:  # our side failed: report it, never hang the driver
                await state.events.put(
                    (
                        "done",
                        None,
                        ExitInfo(None, None, None, str(exc)[:300], "", "", False, False, None, 0.0),
                    )
                )

        state.runner = asyncio.ensure_future(serve())

    async def next(self, job: int) -> tuple[Any, ...]:
        event = await self.jobs[job].events.get()
        if event[0] == "done":
            del self.jobs[job]
        return event

    async def answer(self, job: int, seq: int, reply: tuple[Any, ...]) -> None:
        future = self.jobs[job].answers.pop(seq)
        if not future.done():
            future.set_result(reply)

    async def close(self) -> None:
        if self.sandbox is not None:
            await self.sandbox.close()


@dataclass
class _Job:
    events: asyncio.Queue[tuple[Any, ...]] = dataclasses.field(default_factory=asyncio.Queue)
    answers: dict[int, asyncio.Future[tuple[Any, ...]]] = dataclasses.field(default_factory=dict)
    ids: itertools.count[int] = dataclasses.field(default_factory=lambda: itertools.count(1))
    runner: asyncio.Future[None] | None = None


@dataclass
class _Node:
    report: NodeReport
    actor: Any
    busy: int = 0


class RayExecutor:
    """Sandboxed work on the accepted nodes of a Ray cluster (see the module's docstring)."""

    def __init__(self, cluster: str, *, unsafe: bool = False) -> None:
        self.cluster = parse_cluster(cluster) or "ray"
        self.unsafe = unsafe
        self.nodes: list[_Node] = []
        self.reports: list[NodeReport] = []
        self.lost: list[str] = []
        self._jobs = itertools.count(1)
        self._connected = False

    # ------------------------------------------------------------ connection

    def connect(self) -> list[NodeReport]:
        """Join the cluster and start and probe one actor per node (blocking)."""
        if self._connected:
            return self.reports
        ray = ray_module()
        address = None if self.cluster == "ray" else self.cluster
        if address is None and not os.environ.get("RAY_ADDRESS"):
            address = "local"
        _reachable(address or os.environ.get("RAY_ADDRESS", ""))
        # Joined from a worker thread (the event loop stays free), Ray leaves our SIGTERM
        # handling alone, as it should, and says so on stderr: not news to the user.
        logging.getLogger("ray._private.worker").addFilter(_no_sigterm_notice)
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
                configure_logging=False,
            )
        except Exception as exc:
            where = address or os.environ.get("RAY_ADDRESS", "")
            raise UserError(
                f"cannot connect to the Ray cluster at {where}: {_first_line(exc)}",
                hint="start it with `ray start --head` or check the address",
            ) from None
        self._connected = True
        try:
            self._start_actors(ray)
        except BaseException:  # no node accepted (or probing failed): leave nothing behind
            for node in self.nodes:
                ray.kill(node.actor)
            self.nodes = []
            ray.shutdown()
            self._connected = False
            raise
        return self.reports

    def _start_actors(self, ray: Any) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actor_class = _actor_class(ray)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        actors = [
            actor_class.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
                num_cpus=0,
                max_concurrency=10_000,
                max_restarts=0,
            ).remote(self.unsafe)
            for n in nodes
        ]
        probes = []
        for actor in actors:
            try:
                probes.append(ray.get(actor.probe.remote(), timeout=120))
            except Exception as exc:
                probes.append({"host": "?", "full": False, "accepted": False, "detail": str(exc)})
        for node, actor, probe in zip(nodes, actors, probes, strict=True):
            report = NodeReport(
                node_id=node["NodeID"],
                address=f"{probe['host']} {node.get('NodeManagerAddress', '?')}",
                cpus=float(node.get("Resources", {}).get("CPU", 1.0)),
                full=bool(probe["full"]),
                accepted=bool(probe["accepted"]),
                detail=str(probe["detail"]),
            )
            self.reports.append(report)
            if report.accepted:
                self.nodes.append(_Node(report, actor))
            else:
                ray.kill(actor)
        if not self.nodes:
            refused = "; ".join(f"{r.address}: {r.detail}" for r in self.reports)
            raise UserError(
                f"no node of the Ray cluster can run generated code safely ({refused})",
                hint="install the sandbox's stack on the nodes (stop-tui doctor --cluster ADDRESS)"
                " or pass --unsafe",
            )

    async def close(self) -> None:
        ray = ray_module()
        for node in self.nodes:
            try:
                await node.actor.close.remote()
                ray.kill(node.actor)
            except Exception:
                pass
        self.nodes = []
        if self._connected:
            ray.shutdown()
            self._connected = False

    def describe(self) -> str:
        return (
            f"the Ray cluster at {self.cluster}: "
            f"{len(self.nodes)} of {len(self.reports)} nodes accepted"
        )

    # ------------------------------------------------------------ scheduling

    def _pick(self) -> _Node:
        if not self.nodes:
            lost = "; ".join(self.lost) or "no node accepted"
            raise ClusterLost(
                f"the Ray cluster is gone ({lost}); the run stopped at its last committed "
                "step: `stop-tui resume RUN` continues it (on this machine unless --cluster)"
            )
        return min(self.nodes, key=lambda n: n.busy / max(n.report.cpus, 1.0))

    def _drop(self, node: _Node, exc: BaseException) -> None:
        if node in self.nodes:
            self.nodes.remove(node)
            self.lost.append(f"{node.report.address} lost: {_first_line(exc)}")

    async def _on_a_node(self, work: Any) -> Any:
        """``await work(node)`` on the least busy node; a node that dies is dropped
        and the work retried on another."""
        ray = ray_module()
        while True:
            node = self._pick()
            node.busy += 1
            try:
                return await work(node)
            except (ray.exceptions.RayActorError, ray.exceptions.NodeDiedError) as exc:
                self._drop(node, exc)
            except ray.exceptions.ActorUnavailableError as exc:
                self._drop(node, exc)
            finally:
                node.busy -= 1

    # ------------------------------------------------------------------ work

    async def start(self, task: Task) -> None:
        if not self._connected:
            await asyncio.to_thread(self.connect)

    async def evaluate(self, task: Task, source: str, split: str, *, salt: int = 0) -> EvalResult:
        async def work(node: _Node) -> EvalResult:
            result: EvalResult = await node.actor.evaluate.remote(task.name, source, split, salt)
            return result

        result: EvalResult = await self._on_a_node(work)
        return result

    async def run_improver(self, call: ImproverCall) -> ImproverOutcome:
        served = RpcHandler(call)
        started = time.perf_counter()
        payload = payload_for(call)
        memo: list[tuple[str, str, tuple[Any, ...]]] = []  # (method, params, answer), in order

        async def attempt(node: _Node) -> ImproverOutcome:
            job = next(self._jobs)
            await node.actor.start_improver.remote(job, payload, call.limits)
            replayed = 0
            while True:
                event = await node.actor.next.remote(job)
                if event[0] == "done":
                    message = json.loads(event[1]) if event[1] is not None else None
                    return improver_outcome(served, started, message, event[2])
                _, seq, method, params = event
                if replayed < len(memo) and memo[replayed][:2] == (method, params):
                    answer = memo[replayed][2]  # answered before the node died: not again
                else:
                    del memo[replayed:]  # the retry diverged: the rest is new
                    answer = await _answer(served, method, params)
                    memo.append((method, params, answer))
                replayed += 1
                await node.actor.answer.remote(job, seq, answer)

        outcome: ImproverOutcome = await self._on_a_node(attempt)
        return outcome


async def _answer(served: RpcHandler, method: str, params: str) -> tuple[Any, ...]:
    """The driver's answer to one forwarded rpc, as the local sandbox would give it."""
    try:
        decoded = codec.decode(json.loads(params))
        if not isinstance(decoded, dict):
            raise RpcFailure("RpcError", "params must be an object")
        result = await served(method, decoded)
        return ("ok", json.dumps(codec.encode(result)))
    except ClusterLost as exc:
        if served.call.on_abort is not None:
            served.call.on_abort(exc)
        raise
    except Exception as exc:
        kind = getattr(exc, "rpc_type", None)
        if kind is None:  # never pass on parent internals (paths, hidden data)
            return ("err", "RpcError", f"the parent could not answer {method!r}")
        return ("err", str(kind), str(exc))


def _reachable(address: str) -> None:
    """Fail in one line, fast, when nothing listens at ``address`` (Ray itself would
    retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "local", "auto": Ray's to resolve
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=10):
            pass
    except OSError as exc:
        raise UserError(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
            hint="start it with `ray start --head` or check the address",
        ) from None


def _no_sigterm_notice(record: logging.LogRecord) -> bool:
    return "SIGTERM handler is not set" not in record.getMessage()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


_ACTOR: Any = None


def _actor_class(ray: Any) -> Any:
    global _ACTOR
    if _ACTOR is None:
        _ACTOR = ray.remote(NodeWorker)
    return _ACTOR
