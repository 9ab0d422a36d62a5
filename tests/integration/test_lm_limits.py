"""The LM proxy's limits, over the real openai client and our loopback server:
an over-large prompt is refused before it is sent, paid for or recorded; a request
too large for what is left of a run cap fails alone; the run's caps are exhausted
only when not even the smallest request fits; the settings and their defaults."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stop_tui.config import DEFAULT_MAX_COST, load_settings
from stop_tui.errors import UserError
from stop_tui.lm.budget import DEFAULT_MAX_PROMPT_CHARS, LanguageModel, LMEvent, RunBudget
from stop_tui.lm.openai_backend import OpenAIBackend, RetryPolicy
from stop_tui.lm.transcript import RecordingBackend
from stop_tui.lm.types import BudgetExceeded, InvalidLMRequest, PromptTooLarge
from tests.support.openai_server import OpenAIServer


@pytest.fixture
async def backend(openai_server: OpenAIServer) -> AsyncIterator[OpenAIBackend]:
    b = OpenAIBackend(
        "test-model", base_url=openai_server.base_url, timeout=5, retry=RetryPolicy(max_retries=0)
    )
    yield b
    await b.aclose()


def sent_chars(server: OpenAIServer) -> list[int]:
    return [sum(len(m["content"]) for m in body["messages"]) for body in server.chat_requests()]


async def test_an_oversized_prompt_never_reaches_the_server_the_bill_or_the_transcript(
    openai_server: OpenAIServer, backend: OpenAIBackend, tmp_path: Path
) -> None:
    transcript = tmp_path / "transcript.jsonl"
    events: list[LMEvent] = []
    run = RunBudget(max_tokens=1_000_000)
    model = LanguageModel(
        RecordingBackend(backend, transcript),
        model="test-model",
        budget=2,
        run_budget=run,
        on_event=events.append,
    )
    assert model.max_prompt_chars == DEFAULT_MAX_PROMPT_CHARS  # on by default
    huge = "SECRET-PAYLOAD " * 300_000  # 4.5 MB
    with pytest.raises(PromptTooLarge) as info:
        await model.prompt("You are an expert.", huge)
    assert isinstance(info.value, BudgetExceeded) and info.value.kind == "prompt_size"
    assert "max_prompt_chars" in str(info.value) and "4,500,018" in str(info.value)
    with pytest.raises(PromptTooLarge):
        await model.batch_prompt("You are an expert.", ["short", huge])
    assert openai_server.count() == 0
    assert model.calls_used == 0 and run.calls_used == 0 and run.tokens_used == 0
    assert [e.kind for e in events] == ["budget_exceeded", "budget_exceeded"]
    assert all(e.budget_kind == "prompt_size" and e.scope == "improver" for e in events)
    assert "SECRET-PAYLOAD" not in json.dumps([e.as_dict() for e in events])
    # A prompt within the limit still goes through, and only it is recorded.
    await model.prompt("You are an expert.", "x" * (DEFAULT_MAX_PROMPT_CHARS - 18))
    assert openai_server.count() == 1 and sent_chars(openai_server) == [DEFAULT_MAX_PROMPT_CHARS]
    assert "SECRET-PAYLOAD" not in transcript.read_text()


async def test_the_limit_counts_system_and_user_together(
    openai_server: OpenAIServer, backend: OpenAIBackend
) -> None:
    model = LanguageModel(backend, model="test-model", budget=4, max_prompt_chars=100)
    await model.prompt("e" * 50, "m" * 50)
    with pytest.raises(PromptTooLarge):
        await model.prompt("e" * 51, "m" * 50)
    with pytest.raises(PromptTooLarge):
        await model.batch_prompt("e" * 90, ["short", "m" * 11])
    unlimited = LanguageModel(backend, model="test-model", max_prompt_chars=None)
    await unlimited.prompt("e", "m" * 200_000)
    assert sent_chars(openai_server) == [100, 200_001]


async def test_a_request_too_large_for_the_rest_of_a_run_cap_fails_alone(
    openai_server: OpenAIServer, backend: OpenAIBackend
) -> None:
    run = RunBudget(max_tokens=3_000)
    model = LanguageModel(backend, model="test-model", budget=100, run_budget=run, max_tokens=100)
    await model.prompt("e", "small")
    with pytest.raises(BudgetExceeded) as info:
        await model.prompt("e", "x" * 20_000)  # ~5,000 tokens: more than the cap holds
    assert info.value.scope == "run" and info.value.kind == "tokens"
    assert run.exhausted is None  # refused, but the cap is not used up
    assert openai_server.count() == 1
    await model.prompt("e", "small again")  # smaller requests still go through
    assert openai_server.count() == 2
    message = "m" * 400
    while run.exhausted is None:  # spend the cap with ever smaller requests
        try:
            await model.prompt("e", message)
        except BudgetExceeded as exc:
            assert exc.scope == "run" and exc.kind == "tokens"
            assert message, "an empty request was refused before the cap was exhausted"
            message = ""
    # Exhausted once not even an empty one-sample request (8 + 100 tokens) fits.
    assert run.tokens_used + 108 > 3_000
    assert run.tokens_used <= 3_000
    with pytest.raises(BudgetExceeded):
        await model.prompt("e", "")


async def test_a_batch_of_ten_thousand_messages_is_refused_without_a_request(
    openai_server: OpenAIServer, backend: OpenAIBackend
) -> None:
    model = LanguageModel(backend, model="test-model", budget=4, max_responses_per_call=6)
    with pytest.raises(BudgetExceeded) as info:
        await model.batch_prompt("e", [f"m{i}" for i in range(10_000)])
    assert info.value.kind == "responses_per_call"
    for bad in ("6", True, 2.0, None):
        with pytest.raises(InvalidLMRequest):
            await model.prompt("e", "m", n_responses=bad)  # type: ignore[arg-type]
    with pytest.raises(BudgetExceeded):
        await model.prompt("e", "m", n_responses=10**9)
    with pytest.raises(InvalidLMRequest):
        await model.prompt("e", "m", temperature=float("nan"))
    assert openai_server.count() == 0 and model.calls_used == 0


# ------------------------------------------------------------------ settings


def load(tmp_path: Path, overrides: dict[str, object], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return load_settings(overrides, None, environ=env or {}, cwd=tmp_path)


def test_max_prompt_chars_comes_from_file_env_and_flags(tmp_path: Path) -> None:
    assert load(tmp_path, {}).max_prompt_chars == 65_536
    (tmp_path / "stop.toml").write_text("max_prompt_chars = 1000\n")
    assert load(tmp_path, {}).max_prompt_chars == 1000
    env = {"STOP_TUI_MAX_PROMPT_CHARS": "2000"}
    assert load(tmp_path, {}, env).max_prompt_chars == 2000
    assert load(tmp_path, {"max_prompt_chars": 3000}, env).max_prompt_chars == 3000
    with pytest.raises(UserError, match="max_prompt_chars"):
        load(tmp_path, {"max_prompt_chars": 0})


def test_priced_models_get_a_default_cost_cap_and_others_none(tmp_path: Path) -> None:
    key = {"api_key": "k"}
    assert load(tmp_path, {"model": "gpt-4o", **key}).max_cost == DEFAULT_MAX_COST
    assert load(tmp_path, {"model": "gpt-4o-mini-2024-07-18", **key}).max_cost == DEFAULT_MAX_COST
    assert load(tmp_path, {"model": "demo"}).max_cost is None
    local = {"model": "llama3", "base_url": "http://127.0.0.1:1/v1"}
    assert load(tmp_path, local).max_cost is None  # unknown price: no cost to cap
    free = {**local, "prices": {"llama3": [0.0, 0.0]}}
    assert load(tmp_path, free).max_cost is None
    assert load(tmp_path, {"model": "gpt-4o", **key, "max_cost": 3}).max_cost == 3.0
    assert load(tmp_path, {"model": "gpt-4o", **key, "max_cost": "none"}).max_cost is None
    env = {"STOP_TUI_MAX_COST": "none", "STOP_TUI_MAX_CALLS": "off"}
    settings = load(tmp_path, {"model": "gpt-4o", **key}, env)
    assert settings.max_cost is None and settings.max_calls is None
    assert "max_cost" not in load(tmp_path, {"model": "gpt-4o", **key}).model_fields_set


def test_the_apps_new_run_form_gives_the_same_default_cap(tmp_path: Path) -> None:
    from stop_tui.tui.screens.new_run import INT_FIELDS, validate_form

    base = load(tmp_path, {"model": "demo", "api_key": "k"})
    values = {name: str(getattr(base, name)) for name, _, _ in INT_FIELDS}
    priced, errors = validate_form(base, values, "gpt-4o", "parity_noise", "auto")
    assert priced is not None and not errors, errors
    assert priced.max_cost == DEFAULT_MAX_COST
    demo, _ = validate_form(priced, values, "demo", "parity_noise", "auto")
    assert demo is not None and demo.max_cost is None
    chosen = load(tmp_path, {"model": "demo", "api_key": "k", "max_cost": 3})
    kept, _ = validate_form(chosen, values, "gpt-4o", "parity_noise", "auto")
    assert kept is not None and kept.max_cost == 3.0
