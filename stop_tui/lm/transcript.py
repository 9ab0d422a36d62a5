"""JSON Lines transcripts of every language-model request and response.

One line per request, written (flushed and fsynced) before the result is handed
on, so a crash never loses a paid-for response. A line::

    {"v": 1, "ts": 1767225600.123, "backend": "openai:gpt-4o-mini",
     "key": "<sha256 of the request content>", "occurrence": 0,
     "model": "...", "system": "...", "user": "...", "n": 2, "temperature": 0.7,
     "max_tokens": null,
     "ok": true, "texts": ["...", "..."],
     "usage": {"prompt_tokens": 812, "completion_tokens": 640, "estimated": false},
     "latency": 3.2, "retries": 0, "cost": 0.0005, "error": null}

A failed request has ``"ok": false``, ``"texts": []`` and
``"error": {"type": "TransientLMError", "message": "...", "status": 429}``.

``occurrence`` numbers identical requests (same ``key``) in the order they were
made: the k-th identical request has occurrence k. Replay serves the record with
the same key and occurrence. The API key is never written (backends scrub it from
error texts; the writer refuses any line that contains a registered secret).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stop_tui.lm.types import Backend, ChatRequest, ChatResult, LMError

__all__ = [
    "TRANSCRIPT_VERSION",
    "RecordingBackend",
    "TranscriptRecord",
    "TranscriptWriter",
    "read_transcript",
]

TRANSCRIPT_VERSION = 1
#: Secrets at least this long are scrubbed from whole lines, shorter ones from error texts.
SCRUB_EVERYWHERE_MIN = 12


@dataclass(frozen=True)
class TranscriptRecord:
    """One parsed transcript line."""

    key: str
    occurrence: int
    request: ChatRequest
    ok: bool
    texts: list[str]
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool
    latency: float
    retries: int
    cost: float | None
    error_type: str | None
    error_message: str | None
    error_status: int | None
    ts: float
    backend: str
    reasoning_tokens: int = 0
    adapted: dict[str, str] | None = None
    cached_tokens: int = 0
    max_tokens_sent: int | None = None

    @property
    def slot(self) -> str:
        """Key scoped by context: what occurrence numbers count (see ChatRequest.slot)."""
        return self.request.slot()

    def result(self) -> ChatResult:
        return ChatResult(
            texts=list(self.texts),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            usage_estimated=self.usage_estimated,
            latency=self.latency,
            retries=self.retries,
            cost=self.cost,
            reasoning_tokens=self.reasoning_tokens,
            cached_tokens=self.cached_tokens,
            adapted=dict(self.adapted or {}),
            max_tokens_sent=self.max_tokens_sent,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TranscriptRecord:
        request = ChatRequest.from_content(data)
        key = str(data["key"])
        if request.key() != key:
            raise ValueError(
                f"the recorded key {key[:12]} does not match the request's content "
                f"(hash {request.key()[:12]}): the line was edited or corrupted"
            )
        usage = data.get("usage") or {}
        error = data.get("error") or {}
        ok = bool(data.get("ok", not error))
        texts = [str(t) for t in data.get("texts") or []]
        if ok and len(texts) != request.n:
            raise ValueError(f"{len(texts)} texts recorded for a request with n={request.n}")
        cost = data.get("cost")
        return cls(
            key=key,
            occurrence=int(data["occurrence"]),
            request=request,
            ok=ok,
            texts=texts,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            usage_estimated=bool(usage.get("estimated", False)),
            latency=float(data.get("latency") or 0.0),
            retries=int(data.get("retries") or 0),
            cost=None if cost is None else float(cost),
            error_type=error.get("type"),
            error_message=error.get("message"),
            error_status=error.get("status"),
            ts=float(data.get("ts") or 0.0),
            backend=str(data.get("backend", "")),
            reasoning_tokens=int(usage.get("reasoning_tokens", 0) or 0),
            cached_tokens=int(usage.get("cached_tokens", 0) or 0),
            adapted={str(k): str(v) for k, v in (data.get("adapted") or {}).items()},
            max_tokens_sent=_positive_int(data.get("max_tokens_sent")),
        )


def _positive_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _line(
    request: ChatRequest,
    occurrence: int,
    backend: str,
    result: ChatResult | None,
    error: BaseException | None,
) -> dict[str, Any]:
    record: dict[str, Any] = {"v": TRANSCRIPT_VERSION, "ts": time.time(), "backend": backend}
    record["key"] = request.key()
    record["occurrence"] = occurrence
    record.update(request.content())
    if request.context:
        record["context"] = request.context
    if result is not None:
        record.update(
            ok=True,
            texts=list(result.texts),
            usage={
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "estimated": result.usage_estimated,
                **(
                    {"reasoning_tokens": result.reasoning_tokens} if result.reasoning_tokens else {}
                ),
            },
            latency=result.latency,
            retries=result.retries,
            cost=result.cost,
            error=None,
        )
        if result.adapted:
            record["adapted"] = dict(result.adapted)
        if result.max_tokens_sent is not None:
            record["max_tokens_sent"] = result.max_tokens_sent
    else:
        record.update(
            ok=False,
            texts=[],
            usage=None,
            latency=None,
            retries=getattr(error, "retries", 0),
            cost=None,
            error={
                "type": type(error).__name__,
                "message": str(error),
                "status": getattr(error, "status", None),
            },
        )
    return record


def read_transcript(path: str | os.PathLike[str]) -> list[TranscriptRecord]:
    """Parse a transcript. A torn last line (a crash mid-write) is ignored; any other
    bad line raises :class:`LMError` naming the file and line."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise LMError(f"transcript {p} does not exist") from None
    lines = raw.split(b"\n")
    records: list[TranscriptRecord] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        is_last = all(not rest.strip() for rest in lines[number:])
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if is_last and not raw.endswith(b"\n"):
                break  # torn final write
            raise LMError(f"transcript {p} line {number} is not JSON ({exc})") from None
        try:
            records.append(TranscriptRecord.from_json(data))
        except (KeyError, TypeError, ValueError) as exc:
            raise LMError(f"transcript {p} line {number} is not a valid record ({exc})") from None
    return records


def iter_records(
    source: str | os.PathLike[str] | Iterable[TranscriptRecord | dict[str, Any]],
) -> Iterator[TranscriptRecord]:
    if isinstance(source, str | os.PathLike):
        yield from read_transcript(source)
        return
    for item in source:
        yield item if isinstance(item, TranscriptRecord) else TranscriptRecord.from_json(item)


class TranscriptWriter:
    """Appends records to a JSONL file; flush + fsync after every line.

    When the file already exists (appending after a crash), the occurrence counters
    continue from the records in it.
    """

    def __init__(self, path: str | os.PathLike[str], *, secrets: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._counts: dict[str, int] = defaultdict(int)
        if self.path.exists() and self.path.stat().st_size > 0:
            for record in read_transcript(self.path):
                self._counts[record.slot] = max(self._counts[record.slot], record.occurrence + 1)
            self._repair_torn_tail()
        self._secrets = [s for s in secrets if s and len(s) >= 4]
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._lock = asyncio.Lock()
        self.lines_written = 0

    def _repair_torn_tail(self) -> None:
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            # Drop a torn final line so the next record starts on a line of its own.
            keep = raw[: raw.rfind(b"\n") + 1]
            with open(self.path, "wb") as f:
                f.write(keep)
                f.flush()
                os.fsync(f.fileno())

    def add_secret(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            self._secrets.append(secret)

    def next_occurrence(self, key: str) -> int:
        """Claim the next occurrence number of ``key`` (synchronous, so race-free)."""
        occurrence = self._counts[key]
        self._counts[key] = occurrence + 1
        return occurrence

    def claim(self, key: str, occurrence: int) -> None:
        """Note that ``occurrence`` of ``key`` is used (resume serves some from elsewhere)."""
        self._counts[key] = max(self._counts[key], occurrence + 1)

    async def write(
        self,
        request: ChatRequest,
        occurrence: int,
        backend: str,
        result: ChatResult | None = None,
        error: BaseException | None = None,
    ) -> None:
        line = _line(request, occurrence, backend, result, error)
        if line["error"] and line["error"]["message"]:
            for secret in self._secrets:  # an error may echo the key: always scrubbed
                line["error"]["message"] = line["error"]["message"].replace(secret, "***")
        text = json.dumps(line, ensure_ascii=False)
        for secret in self._secrets:
            # Only a credential-like secret is scrubbed from the whole line. A short one is
            # a placeholder ("test", "EMPTY") that local servers accept; replacing it in the
            # content changed the request ("test_samples" -> "***_samples"), so the line no
            # longer matched its key and the transcript could not be read to resume or replay.
            if len(secret) >= SCRUB_EVERYWHERE_MIN:
                text = text.replace(secret, "***")
        async with self._lock:
            self._file.write(text + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            self.lines_written += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class RecordingBackend:
    """Wraps a backend and writes every request and its result (or error) to a
    transcript before handing the result on."""

    def __init__(self, inner: Backend, writer: TranscriptWriter | str | os.PathLike[str]) -> None:
        self.inner = inner
        self.writer = writer if isinstance(writer, TranscriptWriter) else TranscriptWriter(writer)
        secret = getattr(inner, "_secret", None)
        if isinstance(secret, str):
            self.writer.add_secret(secret)
        for more in getattr(inner, "secrets", ()):  # a router's backends (lm.monitor_route)
            self.writer.add_secret(more)
        self.name = inner.name

    def __repr__(self) -> str:
        return f"RecordingBackend({self.inner!r}, {str(self.writer.path)!r})"

    async def complete(self, request: ChatRequest) -> ChatResult:
        return await self.complete_as(request, self.writer.next_occurrence(request.slot()))

    async def complete_as(self, request: ChatRequest, occurrence: int) -> ChatResult:
        """Complete ``request`` recording it as the given occurrence of its key."""
        self.writer.claim(request.slot(), occurrence)
        # A backend whose answers depend on the occurrence (the demo) is told it: on
        # resume the earlier occurrences come from the transcript and never reach it.
        complete_as = getattr(self.inner, "complete_as", None)
        try:
            if complete_as is not None:
                result = await complete_as(request, occurrence)
            else:
                result = await self.inner.complete(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self.writer.write(request, occurrence, self.inner.name, error=exc)
            raise
        await self.writer.write(request, occurrence, self.inner.name, result=result)
        return result

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            self.writer.close()
