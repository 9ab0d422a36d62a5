"""Language models: backends (OpenAI-compatible, replay, demo), budgets, transcripts.

Light names are imported here; the ones that need the ``openai`` package load on
first use (``from stop_tui.lm import OpenAIBackend`` works, but importing
``stop_tui.lm`` alone does not import ``openai``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from stop_tui.lm.budget import Budget, LanguageModel, LMEvent, RunBudget
from stop_tui.lm.replay import ReplayBackend
from stop_tui.lm.transcript import RecordingBackend, TranscriptWriter, read_transcript
from stop_tui.lm.types import (
    Backend,
    BudgetExceeded,
    ChatRequest,
    ChatResult,
    FatalLMError,
    LMError,
    ReplayDivergence,
    TransientLMError,
)

if TYPE_CHECKING:
    from stop_tui.lm.check import EndpointReport, check_endpoint
    from stop_tui.lm.openai_backend import OpenAIBackend, RetryPolicy

__all__ = [
    "Backend",
    "Budget",
    "BudgetExceeded",
    "ChatRequest",
    "ChatResult",
    "EndpointReport",
    "FatalLMError",
    "LMError",
    "LMEvent",
    "LanguageModel",
    "OpenAIBackend",
    "RecordingBackend",
    "ReplayBackend",
    "ReplayDivergence",
    "RetryPolicy",
    "RunBudget",
    "TranscriptWriter",
    "TransientLMError",
    "check_endpoint",
    "read_transcript",
]

_LAZY = {
    "OpenAIBackend": "stop_tui.lm.openai_backend",
    "RetryPolicy": "stop_tui.lm.openai_backend",
    "EndpointReport": "stop_tui.lm.check",
    "check_endpoint": "stop_tui.lm.check",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stop_tui.lm' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
