"""A trusted, in-process harness for tests and measurements.

It runs solution source that WE wrote (the seeds in tasks/*/seed.py and the
reference solutions in this folder) directly in this process: never use it on
LM-generated code, which belongs in the sandbox. It mimics what the sandboxed
evaluation does around each call: fresh copies of the arguments, a codec-like
round trip of the output (numpy arrays stay arrays, numpy scalars become Python
scalars, tuples become lists), the per-instance time limit (measured here
without any IPC), and Malformed outputs scoring 0.
"""

from __future__ import annotations

import copy
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stop_tui.tasks import Malformed, Task

SOLUTIONS_DIR = Path(__file__).resolve().parent
STRONG = {
    "parity_noise": "parity.py",
    "parity_noiseless": "parity.py",
    "three_sat": "three_sat.py",
    "maxcut": "maxcut.py",
    "str_grid_dist": "str_grid_dist.py",
    "modified_quadratic_assignment": "modified_quadratic_assignment.py",
}


def strong_source(task_name: str) -> str:
    return (SOLUTIONS_DIR / STRONG[task_name]).read_text(encoding="utf-8")


def roundtrip(value: Any) -> Any:
    """What the codec would hand the evaluator for ``value``."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"the codec refuses arrays of dtype {value.dtype}")
        return value.copy()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [roundtrip(item) for item in value]
    if isinstance(value, dict):
        return {str(key): roundtrip(item) for key, item in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"not encodable: {type(value).__name__}")


class _Timeout(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Timeout


@dataclass
class Report:
    scores: list[float] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # "" when fine
    seconds: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))


def evaluate(
    task: Task,
    source: str,
    split: str,
    *,
    enforce_time_limit: bool = True,
    limit: int | None = None,
) -> Report:
    """Score trusted ``source`` on the instances of ``split`` (the first ``limit``)."""
    namespace: dict[str, Any] = {"__name__": "solution"}
    exec(compile(source, f"<{task.name} solution>", "exec"), namespace)
    function = namespace[task.entry_point]
    report = Report()
    instances = task.instances(split)[:limit]
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        for args, hidden in instances:
            call_args = copy.deepcopy(args)
            flag = ""
            start = time.perf_counter()
            try:
                if enforce_time_limit:
                    # Stop runaway (trusted) code shortly after the limit.
                    signal.setitimer(signal.ITIMER_REAL, task.time_limit + 0.05)
                output = function(*call_args)
            except _Timeout:
                output, flag = None, "timeout"
            except Exception as exc:
                output, flag = None, f"error: {type(exc).__name__}: {exc}"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            elapsed = time.perf_counter() - start
            value = 0.0
            if not flag and enforce_time_limit and elapsed > task.time_limit:
                flag = "timeout"
            if not flag:
                try:
                    value = task.score(args, hidden, roundtrip(output))
                except Malformed as exc:
                    flag = f"malformed: {exc.reason}"
            report.scores.append(value)
            report.flags.append(flag)
            report.seconds.append(elapsed)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return report
