"""Token prices and cost.

Prices are US dollars per one million tokens, ``(prompt, completion)`` or
``(prompt, completion, cached_prompt)``. The built-in table holds OpenAI's list prices
(standard tier, checked 2025-08; they change: check your provider's page) with the
price of cached input tokens (``usage.prompt_tokens_details.cached_tokens``, part of
the prompt tokens, billed at the cached price). Extend or override it with a
``[prices]`` table in ``stop.toml``. A model that is not in the table has an unknown
cost (``None``), shown as "unknown", never as zero.

Names resolve as providers write them: exact first; then without a provider prefix
(``openai/gpt-4o`` on OpenRouter); then a dated snapshot without its date
(``gpt-4o-2024-08-06`` and ``gpt-4-0613`` use ``gpt-4o`` and ``gpt-4``); then the
longest table entry the name starts with followed by ``-``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: (prompt, completion) or (prompt, completion, cached prompt), dollars per 1M tokens.
Price = tuple[float, ...]

BUILTIN_PRICES: dict[str, Price] = {
    "demo": (0.0, 0.0),
    "gpt-5": (1.25, 10.00, 0.125),
    "gpt-5-mini": (0.25, 2.00, 0.025),
    "gpt-5-nano": (0.05, 0.40, 0.005),
    "gpt-4.1": (2.00, 8.00, 0.50),
    "gpt-4.1-mini": (0.40, 1.60, 0.10),
    "gpt-4.1-nano": (0.10, 0.40, 0.025),
    "gpt-4o": (2.50, 10.00, 1.25),
    "gpt-4o-mini": (0.15, 0.60, 0.075),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-4-0314": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o1": (15.00, 60.00, 7.50),
    "o1-mini": (1.10, 4.40, 0.55),
    "o3": (2.00, 8.00, 0.50),
    "o3-mini": (1.10, 4.40, 0.55),
    "o4-mini": (1.10, 4.40, 0.275),
}

_DATE = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


def price_of(model: str, table: Mapping[str, Price] | None = None) -> Price | None:
    """The price per 1M tokens of ``model`` (see the module docs), or None if unknown."""
    prices: dict[str, Price] = dict(BUILTIN_PRICES)
    if table:
        prices.update({k: tuple(v) for k, v in table.items()})
    names = [model]
    if "/" in model:
        names.append(model.rsplit("/", 1)[1])
    for name in list(names):
        undated = _DATE.sub("", name)
        if undated != name:
            names.append(undated)
    for name in names:
        if name in prices:
            return prices[name]
    best: str | None = None
    for name in names:
        for entry in prices:
            if name.startswith(entry + "-") and (best is None or len(entry) > len(best)):
                best = entry
    return prices[best] if best is not None else None


def cost_of(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    table: Mapping[str, Price] | None = None,
    cached_tokens: int = 0,
) -> float | None:
    """Dollars for the given token counts, or None when the model's price is unknown.
    ``cached_tokens`` (part of ``prompt_tokens``) cost the cached-input price."""
    price = price_of(model, table)
    if price is None:
        return None
    cached = min(max(cached_tokens, 0), prompt_tokens)
    cached_price = price[2] if len(price) > 2 else price[0]
    return (
        (prompt_tokens - cached) * price[0] + cached * cached_price + completion_tokens * price[1]
    ) / 1_000_000


def estimate_tokens(text: str) -> int:
    """A rough token count for text when the server reports no usage: 4 characters a token."""
    return (len(text) + 3) // 4


def format_cost(cost: float | None) -> str:
    return "unknown" if cost is None else f"${cost:.4f}"
