"""What running a sweep's cells concurrently buys: a 12-run demo sweep with simulated
LM latency (the demo backend sleeps ``--latency`` s per request), run with
``concurrency = --concurrency`` and again with ``concurrency = 1`` (the same 12 runs
started one after another), in one process each time, through the same controller.
Also the parent's peak memory: Python allocations (tracemalloc peak per phase) and
the process's maximum resident set size (ru_maxrss, a high-water mark: the serial
phase runs first).

    python benchmarks/bench_sweep.py [--latency 0.5] [--concurrency 6] [--generations 1]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

from demo_sweep import demo_sweep  # beside this script

from stop_tui.config import load_settings
from stop_tui.experiments.controller import SweepController
from stop_tui.experiments.record import SweepRecord, save
from stop_tui.experiments.spec import parse_sweep
from stop_tui.store.store import RunStore


def sweep_file(latency: float, concurrency: int, generations: int) -> str:
    return demo_sweep(
        "bench", ["parity_noise", "str_grid_dist"], [0, 1, 2, 3, 4, 5],
        generations=generations, concurrency=concurrency, latency=latency,
    )  # fmt: skip


def phase(root: Path, text: str) -> dict[str, float]:
    store = RunStore(root, create=True)
    record = SweepRecord.new(parse_sweep(text), text)
    save(store, record, "bench")
    controller = SweepController(
        record, store, lambda overrides: load_settings(overrides, None, environ={})
    )
    tracemalloc.reset_peak()
    start = time.perf_counter()
    result = asyncio.run(controller.run())
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    finished = sum(o.status == "finished" for o in result.outcomes)
    return {
        "seconds": seconds,
        "finished": finished,
        "cells": len(result.outcomes),
        "peak_concurrency": result.peak_concurrency,
        "lm_requests": result.budget.get("calls_used", 0),
        "tracemalloc_peak_mb": peak / 2**20,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--generations", type=int, default=1)
    args = parser.parse_args()
    tracemalloc.start()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        serial = phase(Path(tmp) / "serial", sweep_file(args.latency, 1, args.generations))
        both = phase(
            Path(tmp) / "concurrent", sweep_file(args.latency, args.concurrency, args.generations)
        )
    print(f"12 demo runs, {args.generations} generation(s), {args.latency} s per LM request")
    for name, r in (("one after another", serial), (f"concurrency {args.concurrency}", both)):
        print(
            f"  {name:>20}: {r['seconds']:7.1f} s, {int(r['finished'])}/{int(r['cells'])} finished, "
            f"peak {int(r['peak_concurrency'])} at once, {int(r['lm_requests'])} LM requests, "
            f"tracemalloc peak {r['tracemalloc_peak_mb']:.1f} MiB, maxrss {r['maxrss_mb']:.0f} MiB"
        )
    print(f"speed-up (serial / concurrent wall time): {serial['seconds'] / both['seconds']:.2f}x")


if __name__ == "__main__":
    main()
