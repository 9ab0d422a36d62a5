"""Replay a recorded run, offline, or resume one without paying twice.

:class:`ReplayBackend` serves responses from a transcript (see
:mod:`stop_tui.lm.transcript`) by the request's content hash and its occurrence
count: the k-th request with a given key gets the k-th recorded response for
that key.

* Plain replay (no ``fallback``): a request the transcript does not hold raises
  :class:`~stop_tui.lm.types.ReplayDivergence` naming the request and its hash;
  there is never a silent live call. A recorded error is raised again (same
  class for the LM error types, same message), so a replay takes the same path.
* Resume (``fallback=live_backend``): recorded successes are served first; a
  request not yet recorded, or recorded only as an error, goes to the fallback.
  Give a :class:`~stop_tui.lm.transcript.RecordingBackend` writing to the same
  transcript as the fallback, and the new responses are appended with the right
  occurrence numbers, so the transcript stays a complete record of the run.

When a key and occurrence appear more than once in a transcript (a resumed
run re-tried a request that had failed), the first successful record wins.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from stop_tui.lm.transcript import TranscriptRecord, iter_records
from stop_tui.lm.types import (
    Backend,
    ChatRequest,
    ChatResult,
    FatalLMError,
    LMError,
    ReplayDivergence,
    TransientLMError,
)

__all__ = ["ReplayBackend"]


@runtime_checkable
class _OccurrenceAware(Protocol):
    async def complete_as(self, request: ChatRequest, occurrence: int) -> ChatResult: ...


def _snippet(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class ReplayBackend:
    """Serves recorded responses; optionally falls back to a live backend (resume)."""

    def __init__(
        self,
        transcript: str | os.PathLike[str] | Iterable[TranscriptRecord | dict[str, Any]],
        *,
        fallback: Backend | None = None,
    ) -> None:
        self.source = str(transcript) if isinstance(transcript, str | os.PathLike) else "<records>"
        self.fallback = fallback
        self.name = "replay" if fallback is None else f"resume:{fallback.name}"
        self._records: dict[tuple[str, int], TranscriptRecord] = {}
        self._per_key: dict[str, int] = defaultdict(int)
        for record in iter_records(transcript):
            slot = (record.slot, record.occurrence)
            held = self._records.get(slot)
            if held is None or (not held.ok and record.ok):
                self._records[slot] = record
            self._per_key[record.slot] = max(self._per_key[record.slot], record.occurrence + 1)
        self._seen: dict[str, int] = defaultdict(int)
        self.served = 0  # responses served from the transcript
        self.live = 0  # requests passed to the fallback

    def __repr__(self) -> str:
        return f"ReplayBackend({self.source!r}, fallback={self.fallback!r})"

    def __len__(self) -> int:
        return len(self._records)

    async def complete(self, request: ChatRequest) -> ChatResult:
        key = request.slot()
        occurrence = self._seen[key]
        self._seen[key] = occurrence + 1
        record = self._records.get((key, occurrence))
        if self.fallback is not None:
            if record is not None and record.ok:
                self.served += 1
                return record.result()
            self.live += 1
            if isinstance(self.fallback, _OccurrenceAware):
                return await self.fallback.complete_as(request, occurrence)
            return await self.fallback.complete(request)
        if record is None:
            raise self._divergence(request, key, occurrence)
        self.served += 1
        if not record.ok:
            raise _recorded_error(record)
        return record.result()

    def _divergence(self, request: ChatRequest, key: str, occurrence: int) -> ReplayDivergence:
        known = self._per_key.get(key, 0)
        if known:
            why = (
                f"the transcript holds only {known} response(s) to this request and this is "
                f"request number {occurrence + 1}"
            )
        else:
            why = "the transcript holds no such request (the run asked something new)"
        return ReplayDivergence(
            f"replay diverged from {self.source}: request {key[:12]} "
            f"(model {request.model!r}, n={request.n}, temperature={request.temperature:g}, "
            f"user message '{_snippet(request.user)}'): {why}; replay needs the same "
            "settings, task and seeds as the recorded run, or use resume to go live",
            key=key,
            occurrence=occurrence,
        )

    async def aclose(self) -> None:
        if self.fallback is not None:
            await self.fallback.aclose()


def _recorded_error(record: TranscriptRecord) -> LMError:
    message = record.error_message or "recorded error"
    if record.error_type == "FatalLMError":
        return FatalLMError(message, status=record.error_status)
    if record.error_type == "TransientLMError":
        return TransientLMError(message, status=record.error_status, retries=record.retries)
    return LMError(f"{record.error_type}: {message}" if record.error_type else message)
