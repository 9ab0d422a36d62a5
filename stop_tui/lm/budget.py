"""Budgets and the language model an improver calls (in the parent process).

:class:`LanguageModel` is the paper's interface, one per improver run. Its
semantics follow the reference implementation (microsoft/stop,
``language_model.py``):

* ``prompt(expertise, message, n_responses=1, temperature=0.7)``: one system
  prompt (the "expertise"), one user message, ``n_responses`` samples; one call.
* ``batch_prompt(expertise, messages, temperature=0.7)``: one response per message,
  in the order of ``messages``; identical messages are grouped into one request
  with ``n`` = their count. The whole batch is ONE call against ``budget``, and its
  size (the number of messages, duplicates included) counts against
  ``max_responses_per_call``.
* ``n_responses`` (or the batch size) above ``max_responses_per_call`` raises
  :class:`BudgetExceeded` (kind ``responses_per_call``) and does not use a call
  (the reference asserts before counting).
* The call is counted when it starts, whether or not the request then succeeds
  (as the reference does): the ``budget + 1``-th call raises :class:`BudgetExceeded`
  (kind ``calls``). A budget can not be reset, and a new ``LanguageModel`` made by
  an improver does not exist: improvers only reach this object through the parent.
* An empty batch returns ``[]`` without using a call (the reference fails on it).
* A request whose prompt (system + user characters) is over ``max_prompt_chars``
  raises :class:`PromptTooLarge` (a ``BudgetExceeded``, kind ``prompt_size``)
  before anything is sent, recorded or paid for, and does not use a call. Arguments
  of the wrong type raise :class:`InvalidLMRequest`.

:class:`RunBudget` caps the whole run: requests (each backend request: a batch of
k distinct messages is k requests), prompt + completion tokens, and dollars. All
``LanguageModel`` objects of a run share one. Before a request is sent it
*reserves* a request, an estimate of its tokens (prompt characters / 4 plus
``n * max_tokens``, or ``n * reserve_completion_tokens`` when ``max_tokens`` is
unset) and its estimated cost, under an ``asyncio.Lock``; a request whose
reservation would pass a cap raises :class:`BudgetExceeded` (scope ``run``) without
being sent. After the response the reservation is replaced by the real usage. So
concurrent callers can not overspend the request cap at all, nor the token and
cost caps when ``max_tokens`` is set; when it is not, a response longer than the
reserve can overshoot by at most the responses already in flight. A refusal is
*final* (``exhausted`` is set, every later request raises and the engine ends the
run) only when the cap is reached: when not even the smallest request (an empty
prompt, one sample) fits in what is left. A request refused only because it is
large, or because of what is in flight, fails in its caller alone.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from stop_tui.lm.pricing import Price, cost_of, estimate_tokens
from stop_tui.lm.types import (
    Backend,
    BudgetExceeded,
    ChatRequest,
    ChatResult,
    InvalidLMRequest,
    LMError,
    PromptTooLarge,
)
from stop_tui.settings_shape import DEFAULT_MAX_PROMPT_CHARS

__all__ = [
    "DEFAULT_MAX_PROMPT_CHARS",
    "Budget",
    "LMEvent",
    "LanguageModel",
    "Reservation",
    "RunBudget",
]

#: Characters (system + user) one request may carry. The paper's prompts are an
#: improver of a few hundred lines plus the utility's description: about 5-25 kB.
#: 64 KiB leaves room for several solutions in one prompt, is ~16k tokens (4
#: characters a token: within every current model's context), and bounds what one
#: request costs (~$0.04 of prompt on gpt-4o) and stores in the transcript.
#: (Defined with the settings' shape: :data:`stop_tui.settings_shape.DEFAULT_MAX_PROMPT_CHARS`.)

EventKind = Literal["request", "response", "error", "budget_exceeded"]


@dataclass(frozen=True)
class LMEvent:
    """What a :class:`LanguageModel` reports to ``on_event`` (the engine turns these
    into its own typed events).

    ``kind``: ``request`` (about to send; ``request`` set), ``response`` (``request``
    and ``result`` set), ``error`` (``request`` and ``error`` set), or
    ``budget_exceeded`` (``budget_kind``, ``scope`` and ``error`` set; ``request`` set
    when a run cap refused one). ``call`` is the 1-based call number within the
    LanguageModel; ``label`` its label (the improver run's id, say).
    """

    kind: EventKind
    label: str
    call: int
    request: ChatRequest | None = None
    result: ChatResult | None = None
    error: str | None = None
    budget_kind: str | None = None
    scope: str | None = None
    calls_used: int = 0
    calls_budget: int = 0
    #: For ``error``: the exception's class name and the HTTP status, when there was one.
    error_type: str | None = None
    status: int | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "label": self.label,
            "call": self.call,
            "calls_used": self.calls_used,
            "calls_budget": self.calls_budget,
        }
        if self.request is not None:
            data.update(key=self.request.key(), n=self.request.n, model=self.request.model)
            data.update(temperature=self.request.temperature)
        if self.result is not None:
            data.update(
                prompt_tokens=self.result.prompt_tokens,
                completion_tokens=self.result.completion_tokens,
                usage_estimated=self.result.usage_estimated,
                latency=self.result.latency,
                retries=self.result.retries,
                cost=self.result.cost,
            )
        if self.error is not None:
            data["error"] = self.error
        if self.budget_kind is not None:
            data.update(budget_kind=self.budget_kind, scope=self.scope)
        return data


EventHook = Callable[[LMEvent], None]


@dataclass
class Reservation:
    requests: int
    tokens: int
    cost: float
    settled: bool = False


@dataclass
class RunBudget:
    """Run-wide caps (None = no cap) and counters, shared by a run's LanguageModels."""

    max_calls: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    prices: Mapping[str, Price] = field(default_factory=dict)
    reserve_completion_tokens: int = 1024

    calls_used: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cost_unknown_calls: int = 0
    tokens_estimated: bool = False
    exhausted: BudgetExceeded | None = None

    _reserved_calls: int = 0
    _reserved_tokens: int = 0
    _reserved_cost: float = 0.0
    _last: tuple[str, int | None] = ("", None)  # model and max_tokens of the latest request
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Any) -> RunBudget:
        """The ONE place a run's budget is built: the caps of a
        :class:`stop_tui.config.Settings` or a run's saved configuration (max_calls,
        max_tokens_total, max_cost, the [prices] table; reserve = the per-response
        max_tokens when set)."""
        return cls(
            max_calls=settings.max_calls,
            max_tokens=settings.max_tokens_total,
            max_cost=settings.max_cost,
            prices=dict(settings.prices),
            reserve_completion_tokens=getattr(settings, "max_tokens", None) or 1024,
        )

    @property
    def tokens_used(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def snapshot(self) -> dict[str, Any]:
        return {
            "calls_used": self.calls_used,
            "max_calls": self.max_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens_used": self.tokens_used,
            "max_tokens": self.max_tokens,
            "tokens_estimated": self.tokens_estimated,
            "cost": self.cost,
            "cost_unknown_calls": self.cost_unknown_calls,
            "max_cost": self.max_cost,
        }

    def _estimate(self, request: ChatRequest) -> tuple[int, float]:
        per_sample = (
            request.max_tokens if request.max_tokens is not None else self.reserve_completion_tokens
        )
        prompt = estimate_tokens(request.system) + estimate_tokens(request.user) + 8
        completion = request.n * per_sample
        cost = cost_of(request.model, prompt, completion, self.prices)
        return prompt + completion, cost or 0.0

    def _smallest(self, model: str, max_tokens: int | None) -> tuple[int, float]:
        """The reservation of the smallest possible request (empty prompt, one sample)."""
        return self._estimate(ChatRequest(model=model, system="", user="", max_tokens=max_tokens))

    def _tokens_reached(self, smallest: int) -> bool:
        return self.max_tokens is not None and (
            self.tokens_used >= self.max_tokens or self.tokens_used + smallest > self.max_tokens
        )

    def _cost_reached(self, smallest: float) -> bool:
        return self.max_cost is not None and (
            self.cost >= self.max_cost or (smallest > 0 and self.cost + smallest > self.max_cost)
        )

    async def reserve(self, requests: list[ChatRequest]) -> Reservation:
        """Reserve room for ``requests`` (all or nothing) or raise BudgetExceeded."""
        tokens = 0
        cost = 0.0
        self._last = (requests[0].model, requests[0].max_tokens)
        least_tokens, least_cost = self._smallest(*self._last)
        for request in requests:
            t, c = self._estimate(request)
            tokens += t
            cost += c
        async with self._lock:
            if self.exhausted is not None:
                raise self.exhausted
            count = len(requests)
            if self.max_calls is not None and (
                self.calls_used + self._reserved_calls + count > self.max_calls
            ):
                raise self._exceed(
                    BudgetExceeded(
                        "calls",
                        f"the run's cap of {self.max_calls} language-model requests is "
                        "reached (max_calls); raise it (resume --max-calls) to continue",
                        limit=self.max_calls,
                        used=self.calls_used,
                        scope="run",
                    ),
                    final=self.calls_used + self._reserved_calls >= self.max_calls,
                )
            if self.max_tokens is not None and (
                self.tokens_used + self._reserved_tokens + tokens > self.max_tokens
            ):
                raise self._exceed(
                    BudgetExceeded(
                        "tokens",
                        f"the run's cap of {self.max_tokens} tokens would be passed "
                        f"({self.tokens_used} used, {self._reserved_tokens} in flight, "
                        f"~{tokens} needed) (max_tokens_total); raise it "
                        "(resume --max-tokens-total) to continue",
                        limit=self.max_tokens,
                        used=self.tokens_used,
                        scope="run",
                    ),
                    final=self._tokens_reached(least_tokens),
                )
            if self.max_cost is not None and (
                self.cost + self._reserved_cost + cost > self.max_cost
            ):
                raise self._exceed(
                    BudgetExceeded(
                        "cost",
                        f"the run's cap of ${self.max_cost:.2f} would be passed "
                        f"(${self.cost:.4f} spent, ~${cost:.4f} needed) (max_cost); "
                        "raise it (resume --max-cost) to continue",
                        limit=self.max_cost,
                        used=self.cost,
                        scope="run",
                    ),
                    final=self._cost_reached(least_cost),
                )
            self._reserved_calls += count
            self._reserved_tokens += tokens
            self._reserved_cost += cost
            return Reservation(count, tokens, cost)

    def _exceed(self, exc: BudgetExceeded, *, final: bool) -> BudgetExceeded:
        # A refusal because of what is in flight is not final (in-flight requests
        # may finish under their reservation); reaching the cap itself is.
        if final:
            self.exhausted = exc
        return exc

    def unreserve(self, reservation: Reservation) -> bool:
        """Drop a reservation's hold on the caps, once (call under the lock); False when it
        was already settled."""
        if reservation.settled:
            return False
        reservation.settled = True
        self._reserved_calls -= reservation.requests
        self._reserved_tokens -= reservation.tokens
        self._reserved_cost -= reservation.cost
        return True

    async def settle(self, reservation: Reservation, results: list[ChatResult | None]) -> None:
        """Replace a reservation by the usage of the results (None = the request failed)."""
        async with self._lock:
            if not self.unreserve(reservation):
                return
            self.calls_used += reservation.requests  # failed requests count too
            for result in results:
                if result is None:
                    continue
                self.prompt_tokens += result.prompt_tokens
                self.completion_tokens += result.completion_tokens
                self.tokens_estimated = self.tokens_estimated or result.usage_estimated
                if result.cost is None:
                    self.cost_unknown_calls += 1
                else:
                    self.cost += result.cost
            if self.max_calls is not None and self.calls_used >= self.max_calls:
                self.exhausted = self.exhausted or BudgetExceeded(
                    "calls",
                    f"the run's cap of {self.max_calls} language-model requests is reached "
                    "(max_calls); raise it (resume --max-calls) to continue",
                    limit=self.max_calls,
                    used=self.calls_used,
                    scope="run",
                )
            least_tokens, least_cost = self._smallest(*self._last)
            if self.exhausted is not None:
                return
            if self._tokens_reached(least_tokens):
                self.exhausted = BudgetExceeded(
                    "tokens",
                    f"the run's cap of {self.max_tokens} tokens is reached "
                    f"({self.tokens_used} used, too few left for another request) "
                    "(max_tokens_total); raise it (resume --max-tokens-total) to continue",
                    limit=self.max_tokens,
                    used=self.tokens_used,
                    scope="run",
                )
            elif self._cost_reached(least_cost):
                self.exhausted = BudgetExceeded(
                    "cost",
                    f"the run's cap of ${self.max_cost:.2f} is reached (${self.cost:.4f} "
                    "spent) (max_cost); raise it (resume --max-cost) to continue",
                    limit=self.max_cost,
                    used=self.cost,
                    scope="run",
                )


Budget = RunBudget  # the name docs/ARCHITECTURE.md uses


class LanguageModel:
    """The language model one improver run may call (the paper's interface)."""

    def __init__(
        self,
        backend: Backend,
        *,
        model: str,
        budget: int = 4,
        max_responses_per_call: int = 6,
        run_budget: RunBudget | None = None,
        max_tokens: int | None = None,
        on_event: EventHook | None = None,
        label: str = "",
        max_prompt_chars: int | None = DEFAULT_MAX_PROMPT_CHARS,
    ) -> None:
        if budget < 0 or max_responses_per_call < 1:
            raise ValueError("budget must be >= 0 and max_responses_per_call >= 1")
        if max_prompt_chars is not None and max_prompt_chars < 1:
            raise ValueError("max_prompt_chars must be >= 1 (or None: no limit)")
        self.max_prompt_chars = max_prompt_chars
        self.backend = backend
        self.model = model
        self.budget = budget
        self.max_responses_per_call = max_responses_per_call
        self.run_budget = run_budget
        self.max_tokens = max_tokens
        self.on_event = on_event
        self.label = label
        self.calls_used = 0

    @property
    def calls_left(self) -> int:
        return max(0, self.budget - self.calls_used)

    def _emit(self, event: LMEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _event(self, kind: EventKind, call: int, **kw: Any) -> LMEvent:
        return LMEvent(
            kind, self.label, call, calls_used=self.calls_used, calls_budget=self.budget, **kw
        )

    def _refuse(
        self, exc: BudgetExceeded, call: int, request: ChatRequest | None = None
    ) -> NoReturn:
        self._emit(
            self._event(
                "budget_exceeded",
                call,
                request=request,
                error=str(exc),
                budget_kind=exc.kind,
                scope=exc.scope,
            )
        )
        raise exc

    def _start_call(self, responses: int) -> int:
        """Check the per-call and per-run-of-improver limits; count the call."""
        if responses > self.max_responses_per_call:
            self._refuse(
                BudgetExceeded(
                    "responses_per_call",
                    f"asked for {responses} responses in one call; at most "
                    f"{self.max_responses_per_call} are allowed per call",
                    limit=self.max_responses_per_call,
                    used=responses,
                ),
                self.calls_used + 1,
            )
        if self.calls_used >= self.budget:
            self._refuse(
                BudgetExceeded(
                    "calls",
                    f"the language-model call budget of {self.budget} calls is used up",
                    limit=self.budget,
                    used=self.calls_used,
                ),
                self.calls_used + 1,
            )
        self.calls_used += 1  # synchronous with the check: concurrent callers can't both pass
        return self.calls_used

    def _check_size(self, expertise: str, messages: list[str]) -> None:
        """Refuse (before anything is counted, sent or recorded) a prompt over the limit."""
        if self.max_prompt_chars is None:
            return
        for message in messages:
            chars = len(expertise) + len(message)
            if chars > self.max_prompt_chars:
                self._refuse(PromptTooLarge(chars, self.max_prompt_chars), self.calls_used + 1)

    def _request(self, expertise: str, message: str, n: int, temperature: float) -> ChatRequest:
        return ChatRequest(
            model=self.model,
            system=expertise,
            user=message,
            n=n,
            temperature=temperature,
            max_tokens=self.max_tokens,
            context=self.label,
        )

    async def _run(self, call: int, requests: list[ChatRequest]) -> list[ChatResult]:
        reservation: Reservation | None = None
        if self.run_budget is not None:
            try:
                reservation = await self.run_budget.reserve(requests)
            except BudgetExceeded as exc:
                self._refuse(exc, call, requests[0])
        for request in requests:
            self._emit(self._event("request", call, request=request))
        results: list[ChatResult | None] = [None] * len(requests)
        first_error: BaseException | None = None
        try:
            outcomes = await asyncio.gather(
                *(self.backend.complete(r) for r in requests), return_exceptions=True
            )
            for i, (request, outcome) in enumerate(zip(requests, outcomes, strict=True)):
                if not isinstance(outcome, BaseException) and len(outcome.texts) != request.n:
                    outcome = LMError(
                        f"backend {self.backend.name} returned {len(outcome.texts)} texts "
                        f"for n={request.n}"
                    )
                if isinstance(outcome, BaseException):
                    first_error = first_error or outcome
                    self._emit(
                        self._event(
                            "error",
                            call,
                            request=request,
                            error=f"{type(outcome).__name__}: {outcome}",
                            error_type=type(outcome).__name__,
                            status=getattr(outcome, "status", None),
                        )
                    )
                else:
                    results[i] = outcome
                    self._emit(self._event("response", call, request=request, result=outcome))
        finally:
            # Also on cancellation: the requests were sent, so they count.
            if self.run_budget is not None and reservation is not None:
                await asyncio.shield(self.run_budget.settle(reservation, results))
        if first_error is not None:
            raise first_error
        return [r for r in results if r is not None]

    async def prompt(
        self, expertise: str, message: str, n_responses: int = 1, temperature: float = 0.7
    ) -> list[str]:
        """``n_responses`` samples of one (system = ``expertise``, user = ``message``) exchange."""
        _check_text("expertise", expertise)
        _check_text("message", message)
        n = _check_count(n_responses)
        temp = _check_temperature(temperature)
        self._check_size(expertise, [message])
        call = self._start_call(n)
        (result,) = await self._run(call, [self._request(expertise, message, n, temp)])
        return list(result.texts)

    async def batch_prompt(
        self, expertise: str, messages: list[str], temperature: float = 0.7
    ) -> list[str]:
        """One response per message, in order. One call; identical messages share a request."""
        _check_text("expertise", expertise)
        if isinstance(messages, str) or not isinstance(messages, list | tuple):
            raise InvalidLMRequest("messages must be a list of strings")
        for message in messages:
            _check_text("each message", message)
        temp = _check_temperature(temperature)
        if not messages:
            return []
        if len(messages) <= self.max_responses_per_call:
            self._check_size(expertise, list(dict.fromkeys(messages)))
        call = self._start_call(len(messages))
        groups = Counter(messages)  # insertion-ordered by first occurrence
        requests = [self._request(expertise, m, count, temp) for m, count in groups.items()]
        results = await self._run(call, requests)
        pools = {m: list(r.texts) for m, r in zip(groups, results, strict=True)}
        return [pools[m].pop(0) for m in messages]


def _check_text(what: str, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidLMRequest(f"{what} must be a string, not {type(value).__name__}")


def _check_count(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidLMRequest(f"n_responses must be a positive integer, not {_short(n)}")
    return n


def _check_temperature(t: object) -> float:
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        raise InvalidLMRequest(f"temperature must be a number, not {_short(t)}")
    if not 0.0 <= float(t) <= 2.0:
        raise InvalidLMRequest(f"temperature must be between 0 and 2, not {t!r}")
    return float(t)


def _short(value: object) -> str:
    """A number shown as itself; anything else only by its type (it came from the child)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value) if isinstance(value, float) or abs(value) < 10**30 else "a huge int"
    return f"a {type(value).__name__}"
