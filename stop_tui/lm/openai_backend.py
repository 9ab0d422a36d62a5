"""The OpenAI (and OpenAI-compatible, and Azure OpenAI) chat completions backend.

Retry policy (ours, not the client's: the ``openai`` client is built with
``max_retries=0``):

* retried: HTTP 408, 409, 429 and 5xx, timeouts, connection errors, and malformed
  responses (invalid JSON, no choices); at most ``RetryPolicy.max_retries``
  retries per HTTP request, then :class:`~stop_tui.lm.types.TransientLMError`;
* the wait before retry ``k`` (0-based) is ``min(max_delay, base_delay * 2**k)``
  times a random factor in ``[1 - jitter, 1]``; when the server sends
  ``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms``, that wait is used
  instead, capped at ``max_retry_after``;
* not retried: 401, 403, 404 raise :class:`~stop_tui.lm.types.FatalLMError` at once
  (the message names the fix); other 4xx (a 400 for an over-long prompt, say)
  raise :class:`~stop_tui.lm.types.LMError`.

Requests stream (``stream=True`` with ``stream_options.include_usage``) so that a
per-request timeout closes the HTTP connection: the server sees the client go away and
the retry is never sent while the same request is still being served. ``timeout``
counts from when the request is sent (not while it waits for a concurrency slot) to
the endpoint's next data: each streamed chunk starts it again, up to ``STREAM_CAP``
timeouts in all, so a slow model that keeps answering is not cut off. A server that
rejects ``stream_options`` (HTTP 400 naming it) is asked without it; one that rejects
streaming is asked without streaming. While a request streams, ``on_progress`` is told
how far it has got (:class:`~stop_tui.lm.types.StreamProgress`: approximate tokens so
far, seconds since it was sent): when the stream opens, at most every
``progress_interval`` seconds after (a clock read per chunk), and when it ends
(``done``), so a slow local model looks slow, not frozen.
At most ``max_concurrency`` requests are in flight; the rest queue. Unset: 1 for a
server on this machine (llama.cpp, Ollama, LM Studio serve one at a time), else 4.

What an endpoint does not accept is learned from its HTTP 400 once and remembered
for this backend (the run): ``max_tokens`` rejected -> ``max_completion_tokens``
(reasoning models); a non-default ``temperature`` rejected -> sent without one;
``n`` rejected -> ``n=1`` requests in parallel; ``reasoning_effort`` or
``stream_options`` rejected -> left out. Each adaptation is reported once to
``on_notice`` and recorded on every result it applied to (``ChatResult.adapted``, in
the transcript). Reasoning tokens (``usage.completion_tokens_details.reasoning_tokens``)
are part of the completion tokens reported and are counted (and priced) with them.

``n`` samples: the request asks for ``n`` choices; when a server returns fewer
(several local servers ignore ``n``), the missing ones are requested in parallel
with ``n=1`` each. Token usage comes from the response's ``usage`` block; when a
response has none, the counts are estimated (4 characters a token) and
``usage_estimated`` is set. Cost comes from :mod:`stop_tui.lm.pricing`.

The API key is held only in memory: it never appears in ``repr``, events, exceptions
or transcripts (an echo of it in a server's error text is replaced by ``***``).
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import json
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import openai

from stop_tui.lm.pricing import Price, cost_of, estimate_tokens
from stop_tui.lm.progress import StreamMeter, reasoning_chars
from stop_tui.lm.types import (
    ChatRequest,
    ChatResult,
    FatalLMError,
    ProgressHook,
    RejectedLMError,
    TransientLMError,
)

__all__ = ["OpenAIBackend", "RetryPolicy", "default_concurrency", "parse_retry_after"]

Sleep = Callable[[float], Awaitable[None]]
RetryHook = Callable[[dict[str, Any]], None]
NoticeHook = Callable[[str], None]

#: A streamed request may take this many timeouts in all, as long as data keeps coming;
#: _DEADLINE is the running request's timeout, which its stream pushes on.
STREAM_CAP = 10
_DEADLINE: contextvars.ContextVar[asyncio.Timeout] = contextvars.ContextVar("deadline")

#: Hosts whose servers are on this machine (default concurrency 1).
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0"}


def default_concurrency(base_url: str | None) -> int:
    """Requests in flight at once when not configured: 1 for a server on this
    machine (local servers usually serve one request at a time; a second would only
    wait there, its timeout running), 4 for a remote endpoint."""
    if base_url:
        from urllib.parse import urlsplit

        host = (urlsplit(base_url).hostname or "").lower()
        if host in _LOCAL_HOSTS or host.startswith("127."):
            return 1
    return 4


_RETRY_STATUSES = {408, 409, 429}


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter; honours Retry-After up to a cap."""

    max_retries: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 60.0
    jitter: float = 0.5

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if retry_after is not None:
            return max(0.0, min(retry_after, self.max_retry_after))
        backoff = min(self.max_delay, self.base_delay * (2**attempt))
        return backoff * (1.0 - self.jitter * rng.random())


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` may be a number of seconds or an HTTP date. Returns None when
    absent or unparseable; never negative.
    """
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


class _Malformed(Exception):
    pass


@dataclass
class _Reply:
    texts: list[str]
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    retries: int
    reasoning_tokens: int = 0
    cached_tokens: int = 0


#: Adaptations the backend can learn: (parameter the endpoint rejected, what it does).
_ADAPTATIONS: dict[str, str] = {
    "max_tokens": "sent as max_completion_tokens",
    "temperature": "left out (the model accepts only its default)",
    "n": "n=1 requests in parallel",
    "reasoning_effort": "left out",
    "stream_options": "left out (usage read from the reply, else estimated)",
    "stream": "requests do not stream",
}


def _rejected_param(status: int, body: object, text: str) -> str | None:
    """The request parameter an HTTP 400/422 says is not supported, or None."""
    if status not in (400, 422):
        return None
    inner = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(inner, dict):
        param = inner.get("param")
        if isinstance(param, str) and param in _ADAPTATIONS:
            code = str(inner.get("code") or "")
            if param != "temperature" or "unsupported" in code or "default" in text.lower():
                return param
    lower = text.lower()
    for param in ("max_tokens", "stream_options", "reasoning_effort", "temperature"):
        if f"'{param}'" in lower or f'"{param}"' in lower or f"`{param}`" in lower:
            if "unsupported" in lower or "not support" in lower or "not permitted" in lower:
                return param
            if param == "temperature" and "only the default" in lower:
                return param
    if re.search(r"\b'?n'?\b.{0,20}(must be|at most|only) ?1\b", lower) or "'n' is not" in lower:
        return "n"
    if "stream" in lower and ("not support" in lower or "unsupported" in lower):
        return "stream"
    return None


class OpenAIBackend:
    """Chat completions through ``openai.AsyncOpenAI`` (or ``AsyncAzureOpenAI``)."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        azure_endpoint: str | None = None,
        azure_api_version: str | None = None,
        azure_deployment: str | None = None,
        timeout: float = 120.0,
        max_tokens: int | None = None,
        max_concurrency: int | None = None,
        stream: bool = True,
        reasoning_effort: str | None = None,
        retry: RetryPolicy | None = None,
        prices: Mapping[str, Price] | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        on_retry: RetryHook | None = None,
        on_notice: NoticeHook | None = None,
        on_progress: ProgressHook | None = None,
        progress_interval: float = 0.25,
    ) -> None:
        if not model:
            raise FatalLMError("no model name given: set 'model' in stop.toml or pass --model")
        if max_concurrency is None:
            max_concurrency = default_concurrency(azure_endpoint or base_url)
        if max_concurrency < 1:
            raise FatalLMError("max_concurrency must be at least 1")
        self.model = model
        self.base_url = base_url
        self.azure_endpoint = azure_endpoint
        self.timeout = float(timeout)
        self.max_tokens = max_tokens
        self.max_concurrency = max_concurrency
        self.reasoning_effort = reasoning_effort
        self.retry = retry or RetryPolicy()
        self.prices = dict(prices or {})
        self.name = f"openai:{model}" if azure_endpoint is None else f"azure:{model}"
        self._sleep: Sleep = sleep or asyncio.sleep
        self._rng = rng or random.Random()
        self._on_retry = on_retry
        self._on_notice = on_notice
        self._on_progress = on_progress
        self.progress_interval = float(progress_interval)
        self._streams = 0  # streamed requests so far (numbers their progress reports)
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._secret = api_key or ""
        #: Parameters this endpoint rejected (learned from its errors; see module docs).
        self.rejected: set[str] = set() if stream else {"stream"}
        self.notices: list[str] = []
        self._client: openai.AsyncOpenAI
        if azure_endpoint is not None:
            if not azure_api_version:
                raise FatalLMError(
                    "Azure OpenAI needs an API version: set azure_api_version in stop.toml "
                    "or OPENAI_API_VERSION"
                )
            if not api_key:
                raise FatalLMError(
                    "Azure OpenAI needs an API key: set AZURE_OPENAI_API_KEY or OPENAI_API_KEY"
                )
            self._client = openai.AsyncAzureOpenAI(
                azure_endpoint=azure_endpoint,
                api_version=azure_api_version,
                azure_deployment=azure_deployment or model,
                api_key=api_key,
                organization=organization,
                timeout=self.timeout,
                max_retries=0,
            )
        else:
            if not api_key and base_url is None:
                raise FatalLMError(
                    "no API key for api.openai.com: set OPENAI_API_KEY (or api_key in "
                    "stop.toml), or set base_url for a local server"
                )
            self._client = openai.AsyncOpenAI(
                # Local servers accept any key; the client needs a non-empty one.
                api_key=api_key or "no-key",
                base_url=base_url,
                organization=organization,
                timeout=self.timeout,
                max_retries=0,
            )

    def __repr__(self) -> str:
        where = self.azure_endpoint or self.base_url or "api.openai.com"
        key = "***" if self._secret else "None"
        return f"OpenAIBackend(model={self.model!r}, endpoint={where!r}, api_key={key})"

    async def aclose(self) -> None:
        await self._client.close()

    # -- public --------------------------------------------------------------
    async def complete(self, request: ChatRequest) -> ChatResult:
        start = time.monotonic()
        if "n" in self.rejected and request.n > 1:
            replies = list(
                await asyncio.gather(*(self._request(request, 1) for _ in range(request.n)))
            )
            texts = [t for r in replies for t in r.texts[:1]]
        else:
            first = await self._request(request, request.n)
            replies = [first]
            texts = list(first.texts[: request.n])
        missing = request.n - len(texts)
        while missing > 0:
            # The server returned fewer choices than asked for: ask for the rest, one each.
            more = await asyncio.gather(*(self._request(request, 1) for _ in range(missing)))
            for reply in more:
                replies.append(reply)
                texts.extend(reply.texts[:1])
            missing = request.n - len(texts)
        prompt_tokens = sum(r.prompt_tokens for r in replies)
        completion_tokens = sum(r.completion_tokens for r in replies)
        return ChatResult(
            texts=texts,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            usage_estimated=any(r.estimated for r in replies),
            latency=time.monotonic() - start,
            retries=sum(r.retries for r in replies),
            cost=cost_of(
                request.model or self.model,
                prompt_tokens,
                completion_tokens,
                self.prices,
                cached_tokens=sum(r.cached_tokens for r in replies),
            ),
            reasoning_tokens=sum(r.reasoning_tokens for r in replies),
            cached_tokens=sum(r.cached_tokens for r in replies),
            adapted=self._adapted(request, n_split=request.n > 1),
            max_tokens_sent=self.max_tokens if request.max_tokens is None else None,
        )

    # -- internals -------------------------------------------------------------
    def _adapted(self, request: ChatRequest, *, n_split: bool) -> dict[str, str]:
        out: dict[str, str] = {}
        for param in sorted(self.rejected):
            if param == "n" and not n_split:
                continue
            if param == "temperature" and request.temperature == 1.0:
                continue
            if param == "reasoning_effort" and not self.reasoning_effort:
                continue
            if param == "max_tokens" and self._max_tokens(request) is None:
                continue
            out[param] = _ADAPTATIONS[param]
        return out

    def _learn(self, param: str, detail: str) -> None:
        if param in self.rejected:
            return
        self.rejected.add(param)
        notice = (
            f"{self._where()} rejected '{param}' for model {self.model!r} ({detail[:160]}); "
            f"for the rest of this run it is {_ADAPTATIONS[param]}"
        )
        self.notices.append(notice)
        if self._on_notice is not None:
            self._on_notice(notice)

    def scrub(self, text: str) -> str:
        """``text`` with any occurrence of the API key replaced by ``***``."""
        if self._secret and len(self._secret) >= 4:
            text = text.replace(self._secret, "***")
        return text

    def _where(self) -> str:
        return self.azure_endpoint or self.base_url or "https://api.openai.com/v1"

    def _fatal(self, exc: openai.APIStatusError) -> FatalLMError | None:
        status = exc.status_code
        detail = self.scrub(error_text(exc))
        if status == 401:
            return FatalLMError(
                f"the endpoint {self._where()} rejected the API key (HTTP 401: {detail}); "
                "check OPENAI_API_KEY (or api_key in stop.toml)",
                status=status,
            )
        if status == 403:
            return FatalLMError(
                f"access denied by {self._where()} (HTTP 403: {detail}); check that the key, "
                f"organization and project may use model {self.model!r}",
                status=status,
            )
        if status == 404:
            return FatalLMError(
                f"model {self.model!r} or the chat completions route was not found at "
                f"{self._where()} (HTTP 404: {detail}); check the model name "
                "('stop-tui doctor' lists the models) and base_url (it usually ends in /v1)",
                status=status,
            )
        return None

    async def _request(self, request: ChatRequest, n: int) -> _Reply:
        attempt = 0
        adaptations = 0
        while True:
            retry_after: float | None = None
            status: int | None = None
            try:
                async with self._semaphore:
                    # Started once a slot is free (time queued is not counted); pushed on by
                    # each streamed chunk. Firing cancels the task and closes the connection.
                    async with asyncio.timeout(self.timeout) as deadline:
                        token = _DEADLINE.set(deadline)
                        try:
                            return await self._once(request, n, attempt)
                        finally:
                            _DEADLINE.reset(token)
            except openai.APIStatusError as exc:
                fatal = self._fatal(exc)
                if fatal is not None:
                    raise fatal from None
                status = exc.status_code
                detail = self.scrub(error_text(exc))
                param = _rejected_param(status, exc.body, detail)
                if param is not None and param not in self.rejected and adaptations < 6:
                    adaptations += 1
                    self._learn(param, detail)
                    if param == "n" and n > 1:
                        replies = await asyncio.gather(
                            *(self._request(request, 1) for _ in range(n))
                        )
                        return _Reply(
                            texts=[t for r in replies for t in r.texts[:1]],
                            prompt_tokens=sum(r.prompt_tokens for r in replies),
                            completion_tokens=sum(r.completion_tokens for r in replies),
                            estimated=any(r.estimated for r in replies),
                            retries=attempt + sum(r.retries for r in replies),
                            reasoning_tokens=sum(r.reasoning_tokens for r in replies),
                            cached_tokens=sum(r.cached_tokens for r in replies),
                        )
                    continue  # resend at once, adapted (not a retry: nothing was served)
                if status not in _RETRY_STATUSES and status < 500:
                    raise RejectedLMError(
                        f"the endpoint rejected the request (HTTP {status}: {detail})",
                        status=status,
                        detail=detail,
                    ) from None
                retry_after = parse_retry_after(dict(exc.response.headers))
                reason = f"HTTP {status}: {detail}"
            except (TimeoutError, openai.APITimeoutError):
                reason = (
                    f"timed out: nothing received for {self.timeout:g}s, or "
                    f"{self.timeout * STREAM_CAP:g}s in all (the request was cancelled)"
                )
            except openai.APIConnectionError as exc:
                reason = f"connection error: {self.scrub(str(exc.__cause__ or exc))}"
            except (_Malformed, json.JSONDecodeError, openai.APIResponseValidationError) as exc:
                reason = f"malformed response: {self.scrub(str(exc))[:200]}"
            if attempt >= self.retry.max_retries:
                raise TransientLMError(
                    f"gave up on {self._where()} after {attempt} retries: {reason}",
                    status=status,
                    retries=attempt,
                )
            delay = self.retry.delay(attempt, retry_after, self._rng)
            if self._on_retry is not None:
                self._on_retry(
                    {"attempt": attempt + 1, "delay": delay, "reason": reason, "status": status}
                )
            await self._sleep(delay)
            attempt += 1

    def _max_tokens(self, request: ChatRequest) -> int | None:
        return request.max_tokens if request.max_tokens is not None else self.max_tokens

    def _kwargs(self, request: ChatRequest, n: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": request.model or self.model,
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.user},
            ],
            "n": n,
            "timeout": self.timeout,
        }
        if "temperature" not in self.rejected or request.temperature == 1.0:
            kwargs["temperature"] = request.temperature
        max_tokens = self._max_tokens(request)
        if max_tokens is not None:
            name = "max_completion_tokens" if "max_tokens" in self.rejected else "max_tokens"
            kwargs[name] = max_tokens
        if self.reasoning_effort and "reasoning_effort" not in self.rejected:
            kwargs["reasoning_effort"] = self.reasoning_effort
        if "stream" not in self.rejected:
            kwargs["stream"] = True
            if "stream_options" not in self.rejected:
                kwargs["stream_options"] = {"include_usage": True}
        return kwargs

    async def _once(self, request: ChatRequest, n: int, attempt: int) -> _Reply:
        kwargs = self._kwargs(request, n)
        if kwargs.get("stream"):
            texts, usage = await self._streamed(kwargs, request.context)
        else:
            response = await self._client.chat.completions.create(**kwargs)
            choices = getattr(response, "choices", None)
            if not choices or not isinstance(choices, list):
                raise _Malformed("the response has no choices")
            try:
                ordered = sorted(choices, key=lambda c: getattr(c, "index", 0) or 0)
                texts = [str(getattr(c.message, "content", None) or "") for c in ordered]
            except (AttributeError, TypeError) as exc:
                raise _Malformed(f"unreadable choices ({exc})") from None
            usage = getattr(response, "usage", None)
        if usage is not None:
            try:
                details = getattr(usage, "completion_tokens_details", None)
                reasoning = getattr(details, "reasoning_tokens", None) if details else None
                prompt_details = getattr(usage, "prompt_tokens_details", None)
                cached = getattr(prompt_details, "cached_tokens", None) if prompt_details else None
                return _Reply(
                    texts=texts,
                    prompt_tokens=int(usage.prompt_tokens),
                    completion_tokens=int(usage.completion_tokens or 0),
                    estimated=False,
                    retries=attempt,
                    reasoning_tokens=int(reasoning or 0),
                    cached_tokens=int(cached or 0),
                )
            except (AttributeError, TypeError, ValueError):
                pass  # an unreadable usage block: estimate as if there were none
        return _Reply(
            texts=texts,
            prompt_tokens=estimate_tokens(request.system) + estimate_tokens(request.user) + 8,
            completion_tokens=sum(estimate_tokens(t) for t in texts[:n]),
            estimated=True,
            retries=attempt,
        )

    async def _streamed(self, kwargs: dict[str, Any], context: str) -> tuple[list[str], Any]:
        """Read a streamed completion: the choices' texts by index and the usage (from
        the last chunk, when the server sends one). The stream is closed however this
        ends (a timeout cancels it here), which closes the HTTP connection. Progress
        goes to ``on_progress`` (see the module's docs)."""
        self._streams += 1
        meter = StreamMeter(self._streams, context, self._on_progress, self.progress_interval)
        parts: dict[int, list[str]] = {}
        usage: Any = None
        deadline = _DEADLINE.get(None)
        loop = asyncio.get_running_loop()
        cap = loop.time() + self.timeout * STREAM_CAP
        try:
            stream = await self._client.chat.completions.create(**kwargs)
            meter.report()
            try:
                async for chunk in stream:
                    if deadline is not None:  # data came: the idle timeout starts again
                        deadline.reschedule(min(loop.time() + self.timeout, cap))
                    if getattr(chunk, "usage", None) is not None:
                        usage = chunk.usage
                    for choice in getattr(chunk, "choices", None) or []:
                        index = int(getattr(choice, "index", 0) or 0)
                        delta = getattr(choice, "delta", None)
                        content = getattr(delta, "content", None) if delta is not None else None
                        piece = parts.setdefault(index, [])
                        if isinstance(content, str):
                            piece.append(content)
                            meter.chunk(len(content))
                        elif delta is not None:
                            meter.chunk(reasoning_chars(delta))
            except (AttributeError, TypeError, ValueError) as exc:
                raise _Malformed(f"unreadable stream ({exc})") from None
            finally:
                await stream.close()
        finally:
            meter.report(done=True)
        if not parts:
            raise _Malformed("the stream had no choices")
        return ["".join(parts[i]) for i in sorted(parts)], usage


def error_text(exc: openai.APIStatusError, limit: int = 300, *, dump_body: bool = True) -> str:
    """The endpoint's own error message (``{"error": {"message": ...}}``), at most ``limit``
    characters; else the JSON body (``dump_body``) or the client's message."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:limit]
        if dump_body:
            return json.dumps(body)[:limit]
    return str(exc.message)[:limit]
