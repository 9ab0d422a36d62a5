"""What Ray costs at equal cores: the same demo sweep on the local executor and on a
loopback Ray cluster of 1, 2 and 3 nodes that share this machine's cores.

    python benchmarks/bench_ray.py [--latency 0.2] [--seeds 2] [--evals 20] [--nodes 1 2 3]

Two measurements per executor, side by side in one process:
- a demo sweep (parity_noise and the CPU-heavy maxcut, ``--seeds`` seeds, 1 generation,
  simulated LM latency ``--latency``, 4 cells at once) through the sweep controller,
  as ``stop-tui sweep FILE --cluster ADDRESS`` runs it: improvers' rpcs go node ->
  driver -> node, so this shows the forwarding cost; every cell's scores are checked
  equal to the local sweep's;
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
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from demo_sweep import demo_sweep  # beside this script

from stop_tui.config import load_settings
from stop_tui.engine.executor import Executor, LocalExecutor
from stop_tui.experiments.controller import SweepController
from stop_tui.experiments.record import SweepRecord, save
from stop_tui.experiments.results import collect
from stop_tui.experiments.spec import parse_sweep
from stop_tui.sandbox.api import Sandbox
from stop_tui.store.store import RunStore
from stop_tui.tasks.registry import get_task

HEAVY = """
def algorithm(*args):
    total = 0
    for i in range(150_000):  # about 10-20 ms of CPU per instance
        total += i * i % 7
    return [0] * 10
"""


def sweep_file(latency: float, seeds: int) -> str:
    return demo_sweep(
        "bench-ray", ["parity_noise", "maxcut"], list(range(seeds)),
        generations=1, concurrency=4, latency=latency, extra="demo_failure_rate = 0.0\n",
    )  # fmt: skip


def sweep(root: Path, text: str, cluster: str) -> dict[str, Any]:
    """One demo sweep; its wall time and every cell's (task, seed) -> scores."""
    store = RunStore(root, create=True)
    record = SweepRecord.new(parse_sweep(text), text)
    save(store, record, "bench")
    controller = SweepController(
        record,
        store,
        lambda overrides: load_settings({**overrides, "cluster": cluster}, None, environ={}),
    )
    start = time.perf_counter()
    result = asyncio.run(controller.run())
    seconds = time.perf_counter() - start
    assert result.ok, [(o.key, o.status, o.message) for o in result.outcomes]
    scores = {(c.task, c.seed): (c.val, c.test) for c in collect(store, record)}
    return {"sweep": seconds, "scores": scores}


async def evaluations(executor: Executor, evals: int) -> float:
    task = get_task("parity_noise")
    await executor.start(task)
    heavy = HEAVY.replace("algorithm", task.entry_point)
    start = time.perf_counter()
    await asyncio.gather(
        *(executor.evaluate(task, heavy + f"\n# {i}\n", "val") for i in range(evals))
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--evals", type=int, default=20)
    parser.add_argument("--nodes", type=int, nargs="*", default=[1, 2, 3])
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    text = sweep_file(args.latency, args.seeds)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))

    async def local_evals() -> float:
        async with Sandbox() as sandbox:
            return await evaluations(LocalExecutor(sandbox), args.evals)

    try:
        local = sweep(tmp / "local", text, "")
        local["evals"] = asyncio.run(local_evals())
        rows = [("local", local)]
        from ray.cluster_utils import Cluster

        from stop_tui.engine.ray_executor import RayExecutor

        for n in args.nodes:
            node = {
                "node_ip_address": "127.0.0.1",
                "num_cpus": max(cores // n, 1),
                "object_store_memory": 100 * 1024**2,
            }
            cluster = Cluster(
                initialize_head=True, head_node_args={**node, "include_dashboard": False}
            )
            for _ in range(n - 1):
                cluster.add_node(**node)
            try:
                row = sweep(tmp / f"ray{n}", text, cluster.address)
                executor = RayExecutor(cluster.address)
                executor.connect()

                async def remote_evals(executor: RayExecutor = executor) -> float:
                    try:
                        return await evaluations(executor, args.evals)
                    finally:
                        await executor.close()

                row["evals"] = asyncio.run(remote_evals())
            finally:
                cluster.shutdown()
            rows.append((f"ray x{n}", row))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'executor':10} {'sweep s':>8} {'evals s':>8} {'s/eval':>7} {'overhead':>9}  scores")
    for name, r in rows:
        over = r["sweep"] / local["sweep"] + r["evals"] / local["evals"]
        same = "= local" if r["scores"] == local["scores"] else "DIFFER from local"
        print(
            f"{name:10} {r['sweep']:8.2f} {r['evals']:8.2f} {r['evals'] / args.evals:7.3f}"
            f" {100 * (over / 2 - 1):+8.0f}%  {same}"
        )
    cells = len(local["scores"])
    print(
        f"({cores} cores shared by every configuration; sweep: {cells} cells, 1 generation, "
        f"{args.latency} s per LM request; overhead = mean of the two ratios)"
    )


if __name__ == "__main__":
    main()
