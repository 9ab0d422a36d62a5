"""Helpers for the sweep tests: small demo sweep files and the CLI as a person runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SMALL_SETTINGS = """
[settings]
meta_utility_tests = 2
meta_utility_budget = 2
utility_budget = 3
lm_budget = 2
max_responses_per_call = 3
"""


def sweep_text(
    tasks: list[str],
    seeds: list[int],
    *,
    generations: int = 2,
    concurrency: int = 2,
    extra: str = "",
    settings: str = SMALL_SETTINGS,
) -> str:
    return (
        f'name = "test sweep"\n'
        f"tasks = {json.dumps(tasks)}\n"
        f'models = ["demo"]\n'
        f"seeds = {json.dumps(seeds)}\n"
        f"generations = {generations}\n"
        f"concurrency = {concurrency}\n"
        f"{extra}\n{settings}"
    )


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("STOP_TUI_", "OPENAI_"))}


def cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stop_tui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
    )


def in_force_from_export(rows: list[dict[str, Any]]) -> dict[int, float]:
    """Written out again here (not imported): generation -> validation meta-utility of
    the improver in force, from ``stop-tui export`` rows."""
    out: dict[int, float] = {}
    seeds = [r for r in rows if r["kind"] == "seed" and r["meta_utility_val"] is not None]
    out[0] = seeds[-1]["meta_utility_val"]
    g = 1
    while True:
        ends = [r for r in rows if r["generation"] == g and r["kind"] in ("adopted", "kept")]
        if not ends:
            return out
        out[g] = ends[0]["meta_utility_val"] if ends[0]["kind"] == "adopted" else out[g - 1]
        g += 1
