"""Token prices and cost.

Prices are US dollars per one million tokens, ``(prompt, completion)``. The
built-in table holds a few common OpenAI models (list prices; check your
provider's page, they change); extend or override it with a ``[prices]`` table in
``stop.toml``. A model that is not in the table has an unknown cost (``None``),
shown as "unknown", never as zero.

A dated snapshot name (``gpt-4o-2024-08-06``) uses the price of the longest
table entry it starts with followed by ``-`` (``gpt-4o``).
"""

from __future__ import annotations

from collections.abc import Mapping

Price = tuple[float, float]

BUILTIN_PRICES: dict[str, Price] = {
    "demo": (0.0, 0.0),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-4-0314": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
}


def price_of(model: str, table: Mapping[str, Price] | None = None) -> Price | None:
    """The ``(prompt, completion)`` price per 1M tokens of ``model``, or None if unknown."""
    prices: dict[str, Price] = dict(BUILTIN_PRICES)
    if table:
        prices.update(table)
    if model in prices:
        return prices[model]
    best: str | None = None
    for name in prices:
        if model.startswith(name + "-") and (best is None or len(name) > len(best)):
            best = name
    return prices[best] if best is not None else None


def cost_of(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    table: Mapping[str, Price] | None = None,
) -> float | None:
    """Dollars for the given token counts, or None when the model's price is unknown."""
    price = price_of(model, table)
    if price is None:
        return None
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000


def estimate_tokens(text: str) -> int:
    """A rough token count for text when the server reports no usage: 4 characters a token."""
    return (len(text) + 3) // 4


def format_cost(cost: float | None) -> str:
    return "unknown" if cost is None else f"${cost:.4f}"
