"""What the engine's concurrency buys: one STOP generation (plus the seed's
evaluation, as the reference does) with the demo model at a simulated LM latency,
run with the engine's concurrency and again with every LM call and evaluation
serialised. Both are measured in one run; the ratio is what counts.

    python benchmarks/bench_engine.py [--latency 1.0] [--task parity_noise]

Goal (issue 4): concurrency at least 3x faster; for scale, the reference
implementation needs about 62 s for one iteration at 1 s latency (46 LM requests,
325 utility calls, 9 meta-utility evaluations, all sequential); the same work
should take under 12 s here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from stop_tui.engine.approval import Gate, Policy
from stop_tui.engine.config import RunConfig
from stop_tui.engine.events import LMResponded, MetaUtilityEvaluated, UtilityEvaluated
from stop_tui.engine.loop import StopRun
from stop_tui.engine.recorder import MemoryRecorder
from stop_tui.engine.session import SerialBackend, seed_improver
from stop_tui.lm.demo import DemoBackend
from stop_tui.lm.types import Backend, ChatRequest, ChatResult
from stop_tui.sandbox.api import Sandbox


class SeedImproversOnly:
    """The reference's workload: every improver the model proposes is the seed
    improver (one batch of LM calls per run), solutions come from the demo model."""

    def __init__(self, inner: DemoBackend, latency: float) -> None:
        self.inner = inner
        self.latency = latency
        self.name = inner.name
        self.seed = seed_improver()

    async def complete(self, request: ChatRequest) -> ChatResult:
        if "improve_algorithm" not in request.user:
            return await self.inner.complete(request)
        await asyncio.sleep(self.latency)
        text = f"Scripted demo answer.\n```python\n{self.seed}```\n"
        return ChatResult(texts=[text] * request.n, usage_estimated=True, cost=0.0)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def one(
    sandbox: Sandbox, *, serial: bool, latency: float, task: str, seed: int, workload: str
) -> dict[str, float]:
    config = RunConfig(
        task=task, model="demo", generations=1, seed=seed, serial=serial, demo_latency=latency
    )
    demo = DemoBackend(seed=seed, latency=latency)
    backend: Backend = demo if workload == "demo" else SeedImproversOnly(demo, latency)
    run = StopRun(
        config,
        sandbox=sandbox,
        backend=SerialBackend(backend) if serial else backend,
        recorder=MemoryRecorder(seed_improver()),
        gate=Gate(Policy.AUTO),
    )
    start = time.perf_counter()
    status = await run.run()
    seconds = time.perf_counter() - start
    history = run.bus.history
    return {
        "seconds": seconds,
        "status_ok": float(status == "finished"),
        "lm_requests": sum(isinstance(e, LMResponded) for e in history),
        "utility_calls": sum(isinstance(e, UtilityEvaluated) for e in history),
        "meta_utility_evaluations": sum(isinstance(e, MetaUtilityEvaluated) for e in history),
    }


async def main(latency: float, task: str, seed: int, workload: str) -> None:
    load = os.getloadavg()[0]
    async with Sandbox() as sandbox:
        kw = {"latency": latency, "task": task, "seed": seed, "workload": workload}
        concurrent = await one(sandbox, serial=False, **kw)  # type: ignore[arg-type]
        serial = await one(sandbox, serial=True, **kw)  # type: ignore[arg-type]
    what = (
        "seed improvers everywhere (the reference's workload)"
        if workload == "reference"
        else "the demo model's improvers"
    )
    print(f"one generation of STOP on {task}, {what}, {latency:g} s per LM request")
    print(f"load average before: {load:.2f}")
    for name, r in (("concurrent", concurrent), ("serialised", serial)):
        print(
            f"  {name:11} {r['seconds']:7.1f} s  ({int(r['lm_requests'])} LM requests, "
            f"{int(r['utility_calls'])} utility calls, "
            f"{int(r['meta_utility_evaluations'])} meta-utility evaluations)"
        )
    print(f"  speed-up    {serial['seconds'] / concurrent['seconds']:7.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--task", default="parity_noise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workload",
        choices=["reference", "demo"],
        default="reference",
        help="reference: every proposed improver is the seed improver (the reference's "
        "iteration); demo: the demo model's own improvers (more LM calls per run)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.latency, args.task, args.seed, args.workload))
