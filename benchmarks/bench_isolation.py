"""What isolation costs: one validation evaluation of each task's seed solution,
in the sandbox (warm zygote, the real ``stop_tui.tasks.evaluate``) and in-process
(unsafe, for comparison only: the same instances, calls and scoring, without a
child). All are measured side by side in one run (interleaved, so load affects
each alike); the ratios are what count.

    python benchmarks/bench_isolation.py [--repeats 15] [--tasks parity_noise ...] [--gap 50]

Two isolated columns: *back-to-back* starts the next evaluation as soon as the
previous one returned (throughput: every evaluation then waits for part of a
fork and confinement, since a spare needs longer than an evaluation to get
ready); *spare ready* pauses ``--gap`` ms (untimed) before each evaluation, as
the LM calls between evaluations do in a STOP run, so the evaluation starts on
a confined spare (latency). Goal (issue 2): isolation costs at most 1.5x on
parity_noise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import statistics
import time
import types

import numpy as np

from stop_tui.sandbox import codec
from stop_tui.sandbox.api import SPARES, Sandbox
from stop_tui.tasks import Malformed
from stop_tui.tasks.evaluate import evaluate, rng_seed_for
from stop_tui.tasks.registry import Task, get_task, task_names


class _TimeUp(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _TimeUp


def in_process(task: Task, source: str, split: str = "val") -> float:
    """The unsafe baseline: the same work as ``evaluate`` minus the isolation."""
    signal.signal(signal.SIGALRM, _alarm)
    seed = rng_seed_for(source, split)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    module = types.ModuleType("solution")
    exec(compile(source, "<solution>", "exec"), module.__dict__)
    entry = module.__dict__[task.entry_point]
    total = 0.0
    instances = task.instances(split)
    for args, hidden in instances:
        start = time.perf_counter()
        # Stop a slow call at the time limit, as the sandbox does (else Max-Cut's seed,
        # which always times out, would take 1.7 s a call here).
        signal.setitimer(signal.ITIMER_REAL, task.time_limit * 1.05)
        try:
            output = entry(*args)
            # The same transport the sandbox uses, so the comparison is fair on encoding.
            output = codec.decode(codec.encode(output))
        except Exception:
            continue
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if time.perf_counter() - start > task.time_limit:
            continue
        with contextlib.suppress(Malformed):
            total += task.score(list(args), hidden, output)
    return total / len(instances)


async def measure(names: list[str], repeats: int, gap: float, spares: int) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load}, gap {1000 * gap:.0f} ms, {spares} spare(s) per profile")
    head = f"{'task':20} {'in-process':>11} {'back-to-back':>13} {'ratio':>7}"
    print(f"{head} {'spare ready':>12} {'ratio':>7}   (median of {repeats})")
    async with Sandbox(spares=spares) as sandbox:
        for name in names:
            task = get_task(name)
            source = task.seed_solution
            task.instances("val")  # generate once (both paths use the cache)
            await evaluate(task, source, "val", sandbox)  # warm the zygote
            inproc: list[float] = []
            isolated: list[float] = []
            ready: list[float] = []
            for _ in range(repeats):  # interleaved, so load affects all alike
                start = time.perf_counter()
                in_process(task, source)
                inproc.append(time.perf_counter() - start)
                start = time.perf_counter()
                await evaluate(task, source, "val", sandbox)
                isolated.append(time.perf_counter() - start)
                await asyncio.sleep(gap)
                start = time.perf_counter()
                await evaluate(task, source, "val", sandbox)
                ready.append(time.perf_counter() - start)
            a, b, c = (statistics.median(x) for x in (inproc, isolated, ready))
            print(
                f"{name:20} {1000 * a:9.1f}ms {1000 * b:11.1f}ms {b / a:6.2f}x"
                f" {1000 * c:10.1f}ms {c / a:6.2f}x"
            )
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--tasks", nargs="+", default=None)
    parser.add_argument(
        "--gap", type=float, default=50, help="untimed pause (ms) before a 'spare ready' run"
    )
    parser.add_argument("--spares", type=int, default=SPARES, help="spares per limits profile")
    args = parser.parse_args()
    asyncio.run(measure(args.tasks or task_names(), args.repeats, args.gap / 1000, args.spares))


if __name__ == "__main__":
    main()
