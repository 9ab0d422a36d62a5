"""The sweep file of a small demo sweep, shared by bench_sweep.py and bench_ray.py
(imported from beside them: ``python benchmarks/bench_*.py`` puts this folder first on
``sys.path``): demo model, 1-generation-sized budgets, simulated LM latency."""

from __future__ import annotations


def demo_sweep(
    name: str,
    tasks: list[str],
    seeds: list[int],
    *,
    generations: int,
    concurrency: int,
    latency: float,
    extra: str = "",
) -> str:
    """A sweep file: every task x seed with the demo model; ``extra`` adds lines to
    its ``[settings]``."""
    return f"""
name = "{name}"
tasks = {tasks}
models = ["demo"]
seeds = {seeds}
generations = {generations}
concurrency = {concurrency}

[settings]
meta_utility_tests = 2
meta_utility_budget = 3
utility_budget = 3
lm_budget = 2
max_responses_per_call = 3
demo_latency = {latency}
{extra}"""
