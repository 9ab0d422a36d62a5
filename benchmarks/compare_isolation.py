"""Isolation cost of two checkouts, side by side in one run: ``bench_isolation.py``
of BASE and of HEAD run alternately (so load affects both alike), each with its
own code on ``PYTHONPATH``; prints the medians over the rounds and HEAD/BASE.

    git archive main | tar -x -C /tmp/base
    python benchmarks/compare_isolation.py --base /tmp/base [--head .] [--rounds 4]
        [--repeats 15] [--tasks parity_noise parity_noiseless str_grid_dist]

Goal (issue 9): HEAD at most 10% slower than BASE (ratio <= 1.10) in both
isolated columns (back-to-back and spare ready).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

COLUMNS = ("back-to-back", "spare ready")


def run_once(checkout: Path, repeats: int, tasks: list[str]) -> dict[str, tuple[float, float]]:
    """{task: (back-to-back ms, spare ready ms)} from one run of that checkout's benchmark."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    argv = [sys.executable, str(checkout / "benchmarks" / "bench_isolation.py")]
    argv += ["--repeats", str(repeats), "--tasks", *tasks]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=checkout)
    if result.returncode != 0:
        raise SystemExit(f"{checkout}: benchmark failed:\n{result.stderr[-2000:]}")
    out: dict[str, tuple[float, float]] = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if fields and fields[0] in tasks:
            times = [float(f[:-2]) for f in fields if f.endswith("ms")]
            out[fields[0]] = (times[1], times[2])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="checkout to compare against")
    parser.add_argument("--head", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--tasks", nargs="+", default=["parity_noise", "parity_noiseless", "str_grid_dist"]
    )
    args = parser.parse_args()
    runs: dict[str, list[dict[str, tuple[float, float]]]] = {"base": [], "head": []}
    for i in range(args.rounds):
        order = ("base", "head") if i % 2 == 0 else ("head", "base")
        for which in order:
            runs[which].append(run_once(getattr(args, which).resolve(), args.repeats, args.tasks))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"median over {args.rounds} alternating rounds of --repeats {args.repeats} (ms)")
    print(f"{'task':18} {'column':13} {'base':>9} {'head':>9} {'head/base':>10}")
    for task in args.tasks:
        for col, name in enumerate(COLUMNS):
            base = statistics.median(run[task][col] for run in runs["base"])
            head = statistics.median(run[task][col] for run in runs["head"])
            print(f"{task:18} {name:13} {base:9.1f} {head:9.1f} {head / base:9.2f}x")


if __name__ == "__main__":
    main()
