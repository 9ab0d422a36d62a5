"""The worst case a run's settings allow: requests, tokens and dollars.

Before anything runs, :func:`forecast` bounds what STOP can spend, from its budgets:

* improver runs: generation 0 scores the seed improver (``meta_utility_tests`` runs);
  each later generation runs the improver once on itself, and every one of its
  utility calls (at most ``meta_utility_budget`` candidates) and what it returns are
  each scored by ``meta_utility_tests`` runs;
* one improver run makes at most ``lm_budget`` calls of at most
  ``max_responses_per_call`` responses; in the worst case every response is its own
  request (a batch of distinct messages);
* a response has at most ``max_tokens`` completion tokens (reasoning tokens
  included: ``max_completion_tokens`` bounds them too); a request's prompt at most
  ``max_prompt_chars`` / 4 tokens (unbounded when there is no prompt limit);
* dollars from the model's price (unknown price: unknown cost);
* the run-wide caps (``max_calls``, ``max_tokens_total``, ``max_cost``) bound the
  totals: the run stops when one is reached.

The worst case is far above a typical run (improvers rarely use every budget, and
answers are usually much shorter than ``max_tokens``); it is what the settings
*allow*. The CLI prints it (``stop-tui run --dry-run``); the app's new-run form can
show it live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stop_tui.lm.pricing import Price, price_of

__all__ = ["Forecast", "Spend", "forecast"]


@dataclass(frozen=True)
class Spend:
    """Worst-case requests, responses, tokens and dollars (None = unbounded/unknown)."""

    improver_runs: int
    requests: int
    responses: int
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None
    #: Dollars of the completions alone (a lower bound when prompts are unbounded).
    completion_cost: float | None = None

    @property
    def tokens(self) -> int | None:
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Forecast:
    model: str
    per_improver_run: Spend
    per_generation: Spend
    run: Spend  # the whole run, before the run-wide caps
    generations: int
    price: Price | None
    capped_requests: int  # the run's requests after max_calls
    #: One line per cap the worst case passes ("max_cost $5.00 < worst case $41.20").
    over_caps: tuple[str, ...]

    def lines(self) -> list[str]:
        """The forecast as readable lines (what ``run --dry-run`` prints)."""

        def spend(s: Spend) -> str:
            if s.prompt_tokens is None and s.completion_tokens is not None:
                # No prompt size limit: the completions are bounded, the prompts are not.
                return (
                    f"{s.requests:,} requests, {s.responses:,} responses, "
                    f"{s.completion_tokens:,} completion tokens + prompts (no prompt limit), "
                    f"{_dollars(s.completion_cost)} + prompts"
                )
            tokens = "unbounded" if s.tokens is None else f"{s.tokens:,}"
            return (
                f"{s.requests:,} requests, {s.responses:,} responses, {tokens} tokens, "
                f"{_dollars(s.cost)}"
            )

        price = (
            "price unknown (add it to [prices])"
            if self.price is None
            else f"${self.price[0]:g}/${self.price[1]:g} per 1M prompt/completion tokens"
        )
        out = [
            f"worst case for model {self.model} ({price}):",
            f"  per improver run:  {spend(self.per_improver_run)}",
            f"  per generation:    {spend(self.per_generation)} "
            f"({self.per_generation.improver_runs} improver runs)",
            f"  whole run ({self.generations} generations + seed): {spend(self.run)}",
        ]
        out += [f"  over a cap: {line}" for line in self.over_caps]
        if not self.over_caps:
            out.append("  within every configured cap")
        return out


def _dollars(cost: float | None) -> str:
    return "cost unknown" if cost is None else f"${cost:,.2f}"


def _spend(
    runs: int,
    per_run_requests: int,
    per_run_responses: int,
    prompt_per_request: int | None,
    completion_per_response: int | None,
    price: Price | None,
) -> Spend:
    requests = runs * per_run_requests
    responses = runs * per_run_responses
    prompt = None if prompt_per_request is None else requests * prompt_per_request
    completion = None if completion_per_response is None else responses * completion_per_response
    cost: float | None = None
    if price is not None and (
        price == (0.0, 0.0) or (prompt is not None and completion is not None)
    ):
        cost = ((prompt or 0) * price[0] + (completion or 0) * price[1]) / 1_000_000
    completion_cost = (
        None if price is None or completion is None else completion * price[1] / 1_000_000
    )
    return Spend(runs, requests, responses, prompt, completion, cost, completion_cost)


def forecast(settings: Any, prices: Mapping[str, Price] | None = None) -> Forecast:
    """The worst case of a :class:`stop_tui.config.Settings` (or anything with its
    fields: model, generations, meta_utility_tests, meta_utility_budget, lm_budget,
    max_responses_per_call, max_tokens, max_calls, max_tokens_total, max_cost, and
    optionally max_prompt_chars and prices)."""
    model = str(settings.model)
    table = dict(getattr(settings, "prices", None) or {})
    table.update(prices or {})
    price = price_of(model, table)
    tests = int(settings.meta_utility_tests)
    per_run_responses = int(settings.lm_budget) * int(settings.max_responses_per_call)
    per_run_requests = per_run_responses
    prompt_chars = getattr(settings, "max_prompt_chars", None)
    prompt_tokens = None if prompt_chars is None else (int(prompt_chars) + 3) // 4 + 8
    completion = None if settings.max_tokens is None else int(settings.max_tokens)

    def spend(runs: int) -> Spend:
        return _spend(runs, per_run_requests, per_run_responses, prompt_tokens, completion, price)

    per_generation_runs = 1 + (int(settings.meta_utility_budget) + 1) * tests
    generations = int(settings.generations)
    run = spend(tests + generations * per_generation_runs)
    over: list[str] = []
    capped_requests = run.requests
    if settings.max_calls is not None and run.requests > settings.max_calls:
        over.append(f"max_calls {settings.max_calls:,} < worst case {run.requests:,} requests")
        capped_requests = int(settings.max_calls)
    if settings.max_tokens_total is not None and (
        run.tokens is None or run.tokens > settings.max_tokens_total
    ):
        worst = "unbounded" if run.tokens is None else f"{run.tokens:,}"
        over.append(f"max_tokens_total {settings.max_tokens_total:,} < worst case {worst} tokens")
    if settings.max_cost is not None:
        if run.cost is not None and run.cost > settings.max_cost:
            over.append(f"max_cost ${settings.max_cost:,.2f} < worst case {_dollars(run.cost)}")
        elif run.cost is None:
            least = run.completion_cost
            worst = "unbounded" if least is None else f"at least {_dollars(least)}"
            over.append(f"max_cost ${settings.max_cost:,.2f} < worst case {worst}")
    return Forecast(
        model=model,
        per_improver_run=spend(1),
        per_generation=spend(per_generation_runs),
        run=run,
        generations=generations,
        price=price,
        capped_requests=capped_requests,
        over_caps=tuple(over),
    )
