"""The language model's events as the run's bus events, named by generation and candidate.

:class:`~stop_tui.lm.budget.LanguageModel` reports each request, response, error and
budget refusal as an :class:`~stop_tui.lm.budget.LMEvent`; :func:`bus_event` turns one
into the :mod:`stop_tui.engine.events` event both front ends show (``LMRequested``,
``LMResponded``, ``BudgetExceededEvent``), with the generation and candidate the
language model works for as typed fields. A backend's streaming progress
(:class:`~stop_tui.lm.types.StreamProgress`) becomes an ephemeral ``LMProgress``
(:func:`progress_event`).
"""

from __future__ import annotations

from typing import Any

from stop_tui.engine.events import (
    BudgetExceededEvent,
    Event,
    LMProgress,
    LMRequested,
    LMResponded,
)
from stop_tui.lm.budget import LMEvent
from stop_tui.lm.types import StreamProgress


def progress_event(
    progress: StreamProgress, run_id: str, generation: int | None, index: int | None
) -> LMProgress:
    """The bus event for a streamed request's ``progress``."""
    return LMProgress(
        run_id=run_id,
        context=progress.context,
        generation=generation,
        index=index,
        stream=progress.stream,
        tokens=progress.tokens,
        elapsed=progress.elapsed,
        done=progress.done,
    )


def bus_event(event: LMEvent, run_id: str, generation: int, index: int | None) -> Event | None:
    """The bus event for ``event`` (None: nothing to show)."""
    where: dict[str, Any] = {
        "run_id": run_id,
        "context": event.label,
        "generation": generation,
        "index": index,
    }
    request = event.request
    if event.kind == "request" and request is not None:
        return LMRequested(**where, n=request.n, temperature=request.temperature)
    if event.kind in ("response", "error") and request is not None:
        result = event.result
        return LMResponded(
            **where,
            n=request.n,
            prompt_tokens=result.prompt_tokens if result else 0,
            completion_tokens=result.completion_tokens if result else 0,
            usage_estimated=result.usage_estimated if result else False,
            cost=result.cost if result else None,
            latency=result.latency if result else 0.0,
            retries=result.retries if result else 0,
            error=event.error,
        )
    if event.kind == "budget_exceeded":
        return BudgetExceededEvent(
            **where, budget=f"{event.scope}:{event.budget_kind}", message=event.error or ""
        )
    return None
