"""Types shared by every language-model backend.

A backend turns one :class:`ChatRequest` (one system prompt, one user message,
``n`` samples) into one :class:`ChatResult`. Backends: ``OpenAIBackend``
(``stop_tui.lm.openai_backend``), ``ReplayBackend`` (``stop_tui.lm.replay``),
``DemoBackend`` (``stop_tui.lm.demo``).

This module is a stable contract: other packages implement :class:`Backend`
against it. It imports only the standard library.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "Backend",
    "BudgetExceeded",
    "BudgetKind",
    "ChatRequest",
    "ChatResult",
    "FatalLMError",
    "InvalidLMRequest",
    "LMError",
    "ProgressHook",
    "PromptTooLarge",
    "RejectedLMError",
    "ReplayDivergence",
    "StreamProgress",
    "TransientLMError",
]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat completion request: ``n`` samples of one (system, user) exchange."""

    model: str
    system: str
    user: str
    n: int = 1
    temperature: float = 0.7
    max_tokens: int | None = None
    #: Where the request comes from in a run (e.g. ``g2/c3/t1``: generation 2, candidate 3,
    #: meta-utility test 1). Not part of the content or :meth:`key`; it scopes occurrence
    #: numbers (:meth:`slot`) so that concurrent identical requests from different places
    #: are told apart deterministically, whatever order they arrive in.
    context: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"ChatRequest.n must be a positive int, got {self.n!r}")
        if self.max_tokens is not None and (
            isinstance(self.max_tokens, bool)
            or not isinstance(self.max_tokens, int)
            or self.max_tokens < 1
        ):
            raise ValueError(
                f"ChatRequest.max_tokens must be a positive int or None, got {self.max_tokens!r}"
            )

    def content(self) -> dict[str, Any]:
        """The request content as plain JSON values (what :meth:`key` hashes)."""
        return {
            "model": self.model,
            "system": self.system,
            "user": self.user,
            "n": self.n,
            "temperature": float(self.temperature),
            "max_tokens": self.max_tokens,
        }

    def key(self) -> str:
        """Stable content hash: sha256 hex of the canonical JSON of :meth:`content`.

        Canonical JSON: sorted keys, no whitespace, UTF-8 (``ensure_ascii=False``),
        temperature as a float. The same request gives the same key in every
        process and on every machine.
        """
        canonical = json.dumps(
            self.content(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def slot(self) -> str:
        """What occurrence numbers count: the content hash, scoped by the context."""
        key = self.key()
        return f"{key}@{self.context}" if self.context else key

    @classmethod
    def from_content(cls, data: dict[str, Any]) -> ChatRequest:
        """Inverse of :meth:`content` (used when reading transcripts)."""
        return cls(
            model=str(data["model"]),
            system=str(data["system"]),
            user=str(data["user"]),
            n=int(data["n"]),
            temperature=float(data["temperature"]),
            max_tokens=None if data.get("max_tokens") is None else int(data["max_tokens"]),
            context=str(data.get("context") or ""),
        )


@dataclass(slots=True)
class ChatResult:
    """What a backend returns for one :class:`ChatRequest`.

    ``texts`` has exactly ``request.n`` entries. ``usage_estimated`` is True when
    the token counts were estimated (the server did not report usage).
    ``latency`` is wall-clock seconds for the whole call including retries.
    ``cost`` is US dollars, or None when the model's price is unknown.
    """

    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_estimated: bool = False
    latency: float = 0.0
    retries: int = 0
    cost: float | None = None
    #: Hidden reasoning tokens of reasoning models (part of ``completion_tokens``, billed).
    reasoning_tokens: int = 0
    #: Prompt tokens the provider served from its cache (part of ``prompt_tokens``).
    cached_tokens: int = 0
    #: How the request was adapted to what the endpoint accepts, e.g.
    #: ``{"max_tokens": "max_completion_tokens", "temperature": "dropped"}`` (recorded in
    #: the transcript so that a replay reports exactly what was sent).
    adapted: dict[str, str] = field(default_factory=dict)
    #: The per-response token limit the backend sent when the request named none (its
    #: own default, e.g. the run's ``max_tokens``); recorded beside the request, outside
    #: its content key, so a replay or a resume with another limit still finds it.
    max_tokens_sent: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class StreamProgress:
    """How far one streamed HTTP request has got (what a backend reports to its
    ``on_progress`` hook while the answer arrives; never recorded anywhere).

    ``stream`` numbers the backend's streamed requests (a retry is a new stream);
    ``context`` is the request's :attr:`ChatRequest.context`. ``tokens`` approximates
    the completion tokens received so far, all choices together: the number of content
    (or reasoning) chunks, or the characters / 4 when that is more (a server that sends
    several tokens a chunk). ``elapsed``: seconds since the request was sent. ``done``:
    the stream ended (answered, failed or cancelled); nothing follows for it.
    """

    stream: int
    context: str
    tokens: int
    elapsed: float
    done: bool = False


ProgressHook = Callable[[StreamProgress], None]


@runtime_checkable
class Backend(Protocol):
    """A source of chat completions."""

    name: str

    async def complete(self, request: ChatRequest) -> ChatResult: ...

    async def aclose(self) -> None: ...


class LMError(Exception):
    """Base class of language-model errors."""


BudgetKind = Literal["calls", "responses_per_call", "tokens", "cost", "prompt_size"]


class InvalidLMRequest(LMError):
    """A call with arguments of the wrong type or range (e.g. ``n_responses="6"``,
    a temperature of NaN, a message that is not a string). Nothing is sent."""


class BudgetExceeded(LMError):
    """A budget or cap was reached; the caller (improver, or the run) must stop.

    ``kind`` says which: ``"calls"`` (an improver's language-model call budget or
    the run's cap on calls), ``"responses_per_call"`` (more samples than
    ``max_responses_per_call`` in one call), ``"tokens"`` (run-wide token cap),
    ``"cost"`` (run-wide money cap), ``"prompt_size"`` (one request's prompt over
    ``max_prompt_chars``, :class:`PromptTooLarge`). ``scope`` is ``"improver"`` or
    ``"run"``.
    """

    def __init__(
        self,
        kind: BudgetKind,
        message: str,
        *,
        limit: float | int | None = None,
        used: float | int | None = None,
        scope: Literal["improver", "run"] = "improver",
    ) -> None:
        self.kind: BudgetKind = kind
        self.limit = limit
        self.used = used
        self.scope = scope
        super().__init__(message)


class PromptTooLarge(BudgetExceeded):
    """One request's prompt (system + user characters) is over the per-request limit.
    The request is refused before anything is sent or paid for; the call is not used."""

    def __init__(self, chars: int, limit: int) -> None:
        super().__init__(
            "prompt_size",
            f"the prompt has {chars:,} characters (system + user); at most {limit:,} are "
            "allowed per request (max_prompt_chars): shorten it",
            limit=limit,
            used=chars,
        )


class FatalLMError(LMError):
    """An error retrying cannot fix (401/403/404, bad configuration): stop the run.

    The message names the fix (check OPENAI_API_KEY, check the model name, ...).
    ``status`` is the HTTP status when there was one.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class RejectedLMError(LMError):
    """The endpoint rejected the request with a client error (HTTP 400, 413, 422...)
    that retrying the same request will not fix. ``status`` is the HTTP status and
    ``detail`` the endpoint's own message (untrusted text)."""

    def __init__(self, message: str, *, status: int | None = None, detail: str = "") -> None:
        self.status = status
        self.detail = detail
        super().__init__(message)


class TransientLMError(LMError):
    """Retries were exhausted on a transient failure (429, 5xx, timeout, connection)."""

    def __init__(self, message: str, *, status: int | None = None, retries: int = 0) -> None:
        self.status = status
        self.retries = retries
        super().__init__(message)


class ReplayDivergence(LMError):
    """A replayed run asked for a request the transcript does not hold."""

    def __init__(
        self, message: str, *, key: str | None = None, occurrence: int | None = None
    ) -> None:
        self.key = key
        self.occurrence = occurrence
        super().__init__(message)
