"""Exceptions of the task layer."""

from __future__ import annotations


class Malformed(Exception):
    """Raised by a hidden evaluator's ``score`` for an output of the wrong type,
    shape or length: the instance scores 0 and is flagged ``malformed: <reason>``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class EvaluatorError(RuntimeError):
    """A hidden evaluator misbehaved (crashed, or returned a score that is not a
    finite number in [0, 1]). This is a bug in the task, never the solution's fault."""
