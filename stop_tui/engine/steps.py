"""What one step of a run records: a meta-utility result as a ``StepResult``, with a
one-line summary of its source and the behaviour alarms as flags."""

from __future__ import annotations

import ast

from stop_tui.engine.approval import Decision
from stop_tui.engine.audit import Flag
from stop_tui.engine.meta_utility import MetaResult
from stop_tui.engine.recorder import StepResult


def summarize(source: str) -> str:
    """One line saying what an improver or solution is: its docstring's first
    line, else its first comment, else its size."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return "does not parse"
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                return doc.strip().splitlines()[0][:100]
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and len(stripped) > 2:
            return stripped.lstrip("# ")[:100]
    return f"{len(source.splitlines())} lines"


def result_to_step(result: MetaResult | None, source: str, decision: Decision | None) -> StepResult:
    if result is None:
        return StepResult(
            meta_utility=None, test_meta_utility=None, tests=[], flags=[], decision=decision
        )
    return StepResult(
        meta_utility=result.meta_utility,
        test_meta_utility=result.test_meta_utility,
        tests=result.tests,
        flags=list(result.flags),
        decision=decision,
        summary=summarize(source),
        lm_calls=result.lm_calls,
        utility_calls=result.utility_calls,
        seconds=result.seconds,
        behaviour=result.behaviour.to_json() if result.behaviour is not None else {},
    )


def behaviour_flag(alarm: str) -> Flag:
    """A sharp change of behaviour, as a flag (``reject-flagged`` rejects it at adoption)."""
    return Flag("behaviour", "changed", alarm)
