"""How both front ends write scores, costs and model names (one place, one style)."""

from __future__ import annotations

import math

DEMO_LABEL = "demo (scripted, offline — not a language model)"
DEMO_SHORT = "demo (offline, scripted)"


def fmt(value: float | None, digits: int = 3, missing: str = "—") -> str:
    """A score with ``digits`` decimals, ``missing`` when there is none."""
    return missing if value is None else f"{value:.{digits}f}"


def fmt_cost(value: float | None, known: bool = True) -> str:
    if not known or value is None:
        return "?"
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


def fmt_stream(context: str, tokens: int, elapsed: float) -> str:
    """One streaming request: ``g1/c2  312 tok  4.1 s``."""
    return f"{context}  {tokens:,} tok  {elapsed:.1f} s"


def model_label(model: str, *, short: bool = False) -> str:
    """The model's name, saying plainly that ``demo`` is a scripted backend."""
    if model == "demo":
        return DEMO_SHORT if short else DEMO_LABEL
    return model


def spread(values: tuple[float, ...]) -> tuple[float, float] | None:
    """(lowest, highest) of the finite values, None when there are none."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return None
    return min(finite), max(finite)
