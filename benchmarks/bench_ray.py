"""What Ray costs at equal cores: the same demo work on the local executor and on a
loopback Ray cluster of 1, 2 and 3 nodes that share this machine's cores.

    python benchmarks/bench_ray.py [--latency 0.2] [--generations 1] [--evals 40]

Two measurements per executor, side by side in one process:
- a demo STOP run (``--generations``, simulated LM latency ``--latency``): the
  improver's rpcs go node -> driver -> node, so this shows the forwarding cost;
- ``--evals`` concurrent evaluations of a CPU-heavy solution on parity_noise's
  validation split: the per-evaluation cost used for the projection in
  docs/clusters.md.
Prints the wall times and each Ray configuration's overhead against local (goal:
under 20% at equal cores). Every Ray address is 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from stop_tui.engine.approval import Gate, Policy
from stop_tui.engine.config import RunConfig
from stop_tui.engine.executor import Executor
from stop_tui.engine.loop import StopRun
from stop_tui.engine.recorder import MemoryRecorder
from stop_tui.engine.session import seed_improver
from stop_tui.lm.demo import DemoBackend
from stop_tui.sandbox.api import Sandbox
from stop_tui.tasks.registry import get_task

HEAVY = """
def algorithm(*args):
    total = 0
    for i in range(150_000):  # about 10-20 ms of CPU per instance
        total += i * i % 7
    return [0] * 10
"""


async def measure(executor: Executor | None, sandbox: Sandbox, args: argparse.Namespace) -> dict:
    task = get_task("parity_noise")
    config = RunConfig(
        model="demo",
        generations=args.generations,
        meta_utility_tests=2,
        meta_utility_budget=3,
        utility_budget=3,
        lm_budget=2,
        max_responses_per_call=3,
        demo_failure_rate=0.0,
        demo_latency=args.latency,
        seed=1,
    )
    run = StopRun(
        config,
        sandbox=sandbox,
        backend=DemoBackend(seed=1, failure_rate=0.0, latency=args.latency),
        recorder=MemoryRecorder(seed_improver()),
        gate=Gate(Policy.AUTO),
        executor=executor,
    )
    used = run.executor
    await used.start(task)
    started = time.perf_counter()
    status = await run.run()
    run_seconds = time.perf_counter() - started
    assert status == "finished", status
    heavy = HEAVY.replace("algorithm", task.entry_point)
    started = time.perf_counter()
    await asyncio.gather(
        *(used.evaluate(task, heavy + f"\n# {i}\n", "val") for i in range(args.evals))
    )
    eval_seconds = time.perf_counter() - started
    return {"run": run_seconds, "evals": eval_seconds, "per_eval": eval_seconds / args.evals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--generations", type=int, default=1)
    parser.add_argument("--evals", type=int, default=40)
    parser.add_argument("--nodes", type=int, nargs="*", default=[1, 2, 3])
    args = parser.parse_args()
    cores = os.cpu_count() or 1

    async def local() -> dict:
        async with Sandbox() as sandbox:
            return await measure(None, sandbox, args)

    rows = [("local", local_result := asyncio.run(local()))]
    from ray.cluster_utils import Cluster

    from stop_tui.engine.ray_executor import RayExecutor

    for n in args.nodes:
        node = {
            "node_ip_address": "127.0.0.1",
            "num_cpus": max(cores // n, 1),
            "object_store_memory": 100 * 1024**2,
        }
        cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
        for _ in range(n - 1):
            cluster.add_node(**node)
        executor = RayExecutor(cluster.address)
        executor.connect()

        async def remote(executor: RayExecutor = executor) -> dict:
            try:
                async with Sandbox() as sandbox:
                    return await measure(executor, sandbox, args)
            finally:
                await executor.close()

        rows.append((f"ray x{n}", asyncio.run(remote())))
        cluster.shutdown()
    print(f"{'executor':10} {'demo run s':>11} {'evals s':>8} {'s/eval':>7} {'overhead':>9}")
    for name, r in rows:
        over = r["run"] / local_result["run"] + r["evals"] / local_result["evals"]
        print(
            f"{name:10} {r['run']:11.2f} {r['evals']:8.2f} {r['per_eval']:7.3f}"
            f" {100 * (over / 2 - 1):+8.0f}%"
        )
    print(f"({cores} cores shared by every configuration; overhead = mean of the two ratios)")


if __name__ == "__main__":
    main()
