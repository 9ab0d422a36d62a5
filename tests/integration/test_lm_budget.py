"""LanguageModel (per improver run) and RunBudget (per run), over the real HTTP backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from stop_tui.lm.budget import LanguageModel, LMEvent, RunBudget
from stop_tui.lm.openai_backend import OpenAIBackend, RetryPolicy
from stop_tui.lm.types import BudgetExceeded, LMError, TransientLMError
from tests.support.openai_server import OpenAIServer, Reply


@pytest.fixture
async def backend(openai_server: OpenAIServer) -> AsyncIterator[OpenAIBackend]:
    b = OpenAIBackend(
        "test-model",
        base_url=openai_server.base_url,
        timeout=5,
        max_concurrency=64,
        retry=RetryPolicy(max_retries=0),
    )
    yield b
    await b.aclose()


def lm(backend: OpenAIBackend, **kw: object) -> LanguageModel:
    return LanguageModel(backend, model="test-model", **kw)  # type: ignore[arg-type]


async def test_prompt_returns_n_samples(
    openai_server: OpenAIServer, backend: OpenAIBackend
) -> None:
    texts = await lm(backend).prompt("You are an expert.", "Improve this.", n_responses=3)
    assert texts == [f"reply 1.{i} to: Improve this." for i in range(3)]
    (sent,) = openai_server.chat_requests()
    assert sent["messages"][0] == {"role": "system", "content": "You are an expert."}
    assert sent["n"] == 3 and sent["temperature"] == 0.7


async def test_the_call_after_the_last_allowed_one_raises(
    openai_server: OpenAIServer, backend: OpenAIBackend
) -> None:
    model = lm(backend, budget=4)
    for _ in range(4):
        await model.prompt("e", "m")
    with pytest.raises(BudgetExceeded) as info:
        await model.prompt("e", "m")
    assert info.value.kind == "calls" and info.value.scope == "improver"
    assert info.value.limit == 4
    assert openai_server.count() == 4  # the refused call sent nothing
    assert model.calls_used == 4 and model.calls_left == 0


async def test_too_many_responses_raise_without_using_a_call(
    openai_server: OpenAIServer, backend: OpenAIBackend
) -> None:
    model = lm(backend, budget=2, max_responses_per_call=6)
    with pytest.raises(BudgetExceeded) as info:
        await model.prompt("e", "m", n_responses=7)
    assert info.value.kind == "responses_per_call"
    with pytest.raises(BudgetExceeded) as info:
        await model.batch_prompt("e", [f"m{i}" for i in range(7)])
    assert info.value.kind == "responses_per_call"
    assert model.calls_used == 0 and openai_server.count() == 0
    assert len(await model.prompt("e", "m", n_responses=6)) == 6


async def test_batch_prompt_is_one_call_groups_duplicates_and_keeps_order(
    openai_server: OpenAIServer, backend: OpenAIBackend
) -> None:
    model = lm(backend, budget=1)
    messages = ["a", "b", "a", "c", "a"]
    texts = await model.batch_prompt("e", messages)
    assert len(texts) == 5
    for message, text in zip(messages, texts, strict=True):
        assert text.endswith(f"to: {message}")
    assert len(set(texts)) == 5  # the three "a" answers are three distinct samples
    assert model.calls_used == 1
    sent = sorted((r["messages"][1]["content"], r["n"]) for r in openai_server.chat_requests())
    assert sent == [("a", 3), ("b", 1), ("c", 1)]
    with pytest.raises(BudgetExceeded):
        await model.batch_prompt("e", ["d"])


async def test_empty_batch_uses_no_call(backend: OpenAIBackend) -> None:
    model = lm(backend, budget=1)
    assert await model.batch_prompt("e", []) == []
    assert model.calls_used == 0


async def test_bad_arguments_are_lm_errors(backend: OpenAIBackend) -> None:
    model = lm(backend)
    with pytest.raises(LMError, match="string"):
        await model.prompt("e", 42)  # type: ignore[arg-type]
    with pytest.raises(LMError, match="positive"):
        await model.prompt("e", "m", n_responses=0)
    with pytest.raises(LMError, match="temperature"):
        await model.prompt("e", "m", temperature=5)
    with pytest.raises(LMError, match="list"):
        await model.batch_prompt("e", "not a list")  # type: ignore[arg-type]
    assert model.calls_used == 0


async def test_a_failed_request_still_uses_the_call(
    openai_server: OpenAIServer, backend: OpenAIBackend
) -> None:
    openai_server.enqueue(Reply.error(500))
    model = lm(backend, budget=2)
    with pytest.raises(TransientLMError):
        await model.prompt("e", "m")
    assert model.calls_used == 1


async def test_concurrent_callers_cannot_overspend_an_improver_budget(
    openai_server: OpenAIServer, backend: OpenAIBackend
) -> None:
    model = lm(backend, budget=4)
    outcomes = await asyncio.gather(
        *(model.prompt("e", f"m{i}") for i in range(50)), return_exceptions=True
    )
    ok = [o for o in outcomes if isinstance(o, list)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    assert len(ok) == 4 and len(refused) == 46
    assert openai_server.count() == 4


async def test_fifty_concurrent_callers_cannot_overspend_the_run_cap(
    openai_server: OpenAIServer, backend: OpenAIBackend
) -> None:
    openai_server.delay = 0.02  # keep requests in flight while others arrive
    run = RunBudget(max_calls=7)
    models = [lm(backend, budget=4, run_budget=run, label=f"imp{i}") for i in range(50)]
    outcomes = await asyncio.gather(
        *(m.prompt("e", f"m{i}") for i, m in enumerate(models)), return_exceptions=True
    )
    ok = [o for o in outcomes if isinstance(o, list)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    assert len(ok) == 7 and len(refused) == 43
    assert all(e.scope == "run" and e.kind == "calls" for e in refused)
    assert openai_server.count() == 7
    assert run.calls_used == 7
    with pytest.raises(BudgetExceeded):  # and the run stays stopped
        await lm(backend, run_budget=run).prompt("e", "later")


async def test_token_cap_with_max_tokens_is_never_passed(
    openai_server: OpenAIServer, backend: OpenAIBackend
) -> None:
    openai_server.delay = 0.02
    run = RunBudget(max_tokens=400)
    models = [lm(backend, run_budget=run, max_tokens=20) for _ in range(50)]
    outcomes = await asyncio.gather(
        *(m.prompt("e", "hello there") for m in models), return_exceptions=True
    )
    ok = [o for o in outcomes if isinstance(o, list)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    assert ok and refused and len(ok) + len(refused) == 50
    assert all(e.kind == "tokens" for e in refused)
    assert run.tokens_used <= 400
    assert openai_server.count() == len(ok)


async def test_cost_cap_stops_the_run(openai_server: OpenAIServer) -> None:
    prices = {"test-model": (100_000.0, 100_000.0)}  # 10 cents a token
    b = OpenAIBackend(
        "test-model", base_url=openai_server.base_url, prices=prices, max_concurrency=8
    )
    try:
        run = RunBudget(max_cost=5.0, prices=prices, reserve_completion_tokens=1)
        model = lm(b, budget=100, run_budget=run)
        spent: list[float] = []
        with pytest.raises(BudgetExceeded) as info:
            for _ in range(100):
                await model.prompt("e", "m")
                spent.append(run.cost)
        assert info.value.kind == "cost"
        assert run.cost <= 5.0 + 1e-9
        assert len(spent) == openai_server.count() >= 1
    finally:
        await b.aclose()


async def test_usage_counters_add_up(openai_server: OpenAIServer, backend: OpenAIBackend) -> None:
    run = RunBudget()
    model = lm(backend, run_budget=run)
    await model.prompt("e", "m", n_responses=2)
    await model.batch_prompt("e", ["x", "y"])
    assert run.calls_used == 3  # one prompt request + two distinct batch messages
    assert run.prompt_tokens > 0 and run.completion_tokens > 0
    assert run.cost == 0.0 and run.cost_unknown_calls == 3
    snap = run.snapshot()
    assert snap["tokens_used"] == run.prompt_tokens + run.completion_tokens


async def test_events_for_request_response_error_and_budget(
    openai_server: OpenAIServer, backend: OpenAIBackend
) -> None:
    events: list[LMEvent] = []
    model = lm(backend, budget=2, on_event=events.append, label="gen1/imp0")
    await model.prompt("e", "m")
    openai_server.enqueue(Reply.error(500))
    with pytest.raises(TransientLMError):
        await model.prompt("e", "m2")
    with pytest.raises(BudgetExceeded):
        await model.prompt("e", "m3")
    kinds = [e.kind for e in events]
    assert kinds == ["request", "response", "request", "error", "budget_exceeded"]
    assert all(e.label == "gen1/imp0" for e in events)
    assert events[1].result is not None and events[1].result.texts
    assert events[4].budget_kind == "calls" and events[4].call == 3
    as_dict = events[1].as_dict()
    assert as_dict["kind"] == "response" and as_dict["prompt_tokens"] > 0
