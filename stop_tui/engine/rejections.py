"""Systematic rejections: a run stops when its endpoint rejects every request the same way.

Improvers catch their language model's errors, so against an endpoint that refuses
every request (a temperature the model does not take, a context too small) the
generations would pass with nothing learned. :class:`Rejections` counts consecutive
requests rejected with the same client error; at :data:`SYSTEMATIC_REJECTIONS` the loop
stops the run (resumable) with one line naming what the endpoint said and the fix.
"""

from __future__ import annotations

from stop_tui.lm.budget import LMEvent

#: Consecutive requests rejected with the same client error that stop a run.
SYSTEMATIC_REJECTIONS = 3


class SystematicRejection(Exception):
    """The endpoint rejects every request the same way: the run stops (resumable)."""


def systematic_message(error: str, event: LMEvent, count: int) -> str:
    """One line: what the endpoint said, and the fix."""
    detail = error.removeprefix("RejectedLMError: ")
    lower = detail.lower()
    request = event.request
    if "temperature" in lower and request is not None:
        fix = (
            f"the endpoint rejects temperature={request.temperature:g} (which improvers "
            "choose): use a model or endpoint that accepts it"
        )
    elif "context" in lower or "too long" in lower or ("maximum" in lower and "token" in lower):
        fix = (
            "the prompt and max_tokens do not fit the model's context window: lower "
            "max_tokens (--max-tokens) or max_prompt_chars, or serve a larger context"
        )
    elif "max_tokens" in lower or "max_completion_tokens" in lower:
        fix = "lower max_tokens (--max-tokens) to what the model allows"
    else:
        fix = "fix the endpoint settings ('stop-tui doctor' checks them)"
    return (
        f"the endpoint rejected {count} requests in a row ({detail[:300]}); {fix}, "
        "then 'stop-tui resume' continues the run"
    )


class Rejections:
    """The same client error on consecutive requests: its detail and how often."""

    def __init__(self) -> None:
        self._last: tuple[str, int] = ("", 0)

    def observe(self, event: LMEvent) -> SystematicRejection | None:
        """Count a finished request (a response or an error); the error that should stop
        the run when this is the ``SYSTEMATIC_REJECTIONS``-th same rejection in a row."""
        if event.kind != "error" or event.error_type != "RejectedLMError":
            self._last = ("", 0)
            return None
        detail = event.error or ""
        previous, count = self._last
        count = count + 1 if detail == previous else 1
        self._last = (detail, count)
        if count == SYSTEMATIC_REJECTIONS:
            return SystematicRejection(systematic_message(detail, event, count))
        return None
