"""The shared LM types: the request key is a stable content hash."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from stop_tui.lm.pricing import cost_of, format_cost, price_of
from stop_tui.lm.types import Backend, BudgetExceeded, ChatRequest, ChatResult, LMError

BASE = ChatRequest("gpt-4o", "system text", "user text", n=2, temperature=0.7, max_tokens=None)


def test_key_is_sha256_of_canonical_json() -> None:
    canonical = json.dumps(
        {
            "max_tokens": None,
            "model": "gpt-4o",
            "n": 2,
            "system": "system text",
            "temperature": 0.7,
            "user": "user text",
        },
        separators=(",", ":"),
    )
    assert BASE.key() == hashlib.sha256(canonical.encode()).hexdigest()


def test_key_is_the_same_in_another_process() -> None:
    code = (
        "from stop_tui.lm.types import ChatRequest;"
        "print(ChatRequest('gpt-4o','system text','user text',n=2,temperature=0.7).key())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == BASE.key()


@pytest.mark.parametrize(
    "changed",
    [
        ChatRequest("gpt-4o-mini", "system text", "user text", n=2),
        ChatRequest("gpt-4o", "system text!", "user text", n=2),
        ChatRequest("gpt-4o", "system text", "user text ", n=2),
        ChatRequest("gpt-4o", "system text", "user text", n=3),
        ChatRequest("gpt-4o", "system text", "user text", n=2, temperature=0.8),
        ChatRequest("gpt-4o", "system text", "user text", n=2, max_tokens=100),
    ],
)
def test_every_field_changes_the_key(changed: ChatRequest) -> None:
    assert changed.key() != BASE.key()


def test_int_and_float_temperature_give_the_same_key() -> None:
    a = ChatRequest("m", "s", "u", temperature=1)
    b = ChatRequest("m", "s", "u", temperature=1.0)
    assert a.key() == b.key()
    assert ChatRequest.from_content(a.content()) == b


def test_requests_are_frozen_and_validated() -> None:
    with pytest.raises(AttributeError):
        BASE.n = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        ChatRequest("m", "s", "u", n=0)
    with pytest.raises(ValueError):
        ChatRequest("m", "s", "u", max_tokens=0)


def test_budget_exceeded_says_which_budget() -> None:
    exc = BudgetExceeded("tokens", "too many", limit=10, used=11, scope="run")
    assert isinstance(exc, LMError)
    assert (exc.kind, exc.limit, exc.used, exc.scope) == ("tokens", 10, 11, "run")


def test_backend_protocol_is_structural() -> None:
    class Echo:
        name = "echo"

        async def complete(self, request: ChatRequest) -> ChatResult:
            return ChatResult(texts=[request.user] * request.n)

        async def aclose(self) -> None:
            pass

    assert isinstance(Echo(), Backend)


def test_prices() -> None:
    assert price_of("gpt-4o") == (2.5, 10.0, 1.25)
    assert price_of("gpt-4o-2024-08-06") == (2.5, 10.0, 1.25)
    assert price_of("gpt-4o-mini-2024-07-18") == (0.15, 0.6, 0.075)  # dated snapshot
    assert price_of("gpt-4-0613") == (30.0, 60.0)  # dated without dashes
    assert price_of("openai/gpt-4o-mini") == (0.15, 0.6, 0.075)  # OpenRouter's names
    assert price_of("gpt-5-mini-2025-08-07") == (0.25, 2.0, 0.025)
    assert price_of("o3-mini-2025-01-31") == (1.1, 4.4, 0.55)
    assert price_of("gpt-4o", {"gpt-4o": (1.0, 2.0)}) == (1.0, 2.0)  # [prices] overrides
    assert cost_of("gpt-4o", 1_000_000, 0, cached_tokens=400_000) == pytest.approx(
        0.6 * 2.5 + 0.4 * 1.25
    )
    assert price_of("llama3") is None
    assert price_of("llama3", {"llama3": (0.0, 0.0)}) == (0.0, 0.0)
    assert cost_of("gpt-4o", 1_000_000, 100_000) == pytest.approx(2.5 + 1.0)
    assert cost_of("unknown-model", 10, 10) is None
    assert format_cost(None) == "unknown"
