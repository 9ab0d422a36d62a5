"""Downstream tasks: seed solutions, public utilities and hidden evaluators.

The data lives in the top-level ``tasks/`` folder (shipped as package data);
this package loads it (:mod:`stop_tui.tasks.registry`). Hidden evaluators are
loaded by file path in the parent only and never reach a child.
"""

from __future__ import annotations

from stop_tui.tasks.errors import EvaluatorError, Malformed
from stop_tui.tasks.registry import Split, Task, get_task, list_tasks

__all__ = ["EvaluatorError", "Malformed", "Split", "Task", "get_task", "list_tasks"]
