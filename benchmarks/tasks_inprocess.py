"""Score the seed and the trusted strong solutions of every task, in-process.

Usage: PYTHONPATH=. python benchmarks/tasks_inprocess.py [TASK ...]

Runs only OUR code (tasks/*/seed.py and tests/support/solutions/*.py) through the trusted
harness with each task's time limit enforced (measured here, without IPC), and
prints a Markdown table. Generated code must go through the sandbox instead.
"""

from __future__ import annotations

import collections
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stop_tui.tasks import get_task, list_tasks
from tests.support.solutions.harness import evaluate, strong_source


def _flags(flags: list[str]) -> str:
    counts = collections.Counter(flag.split(":")[0] for flag in flags if flag)
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "-"


def main(names: list[str]) -> None:
    tasks = [get_task(name) for name in names] if names else list_tasks()
    print("| task | solution | val | test | flags (val; test) | max call s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for task in tasks:
        for label, source in (("seed", task.seed_solution), ("strong", strong_source(task.name))):
            np.random.seed(0)
            random.seed(0)
            reports = {split: evaluate(task, source, split) for split in ("val", "test")}
            slowest = max(max(r.seconds) for r in reports.values())
            print(
                f"| {task.name} | {label} | {reports['val'].mean:.3f} | "
                f"{reports['test'].mean:.3f} | {_flags(reports['val'].flags)}; "
                f"{_flags(reports['test'].flags)} | {slowest:.3f} |",
                flush=True,
            )
    # Cost of a full validation evaluation of the parity seed, from a cold cache.
    from stop_tui.tasks.registry import load_task

    task = load_task(get_task("parity_noise").folder)
    start = time.perf_counter()
    report = evaluate(task, task.seed_solution, "val")
    elapsed = time.perf_counter() - start
    print(
        f"\nparity_noise seed, validation split, cold (generate + 20 calls + scoring): "
        f"{elapsed * 1000:.1f} ms, score {report.mean:.3f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
