"""Endpoint quirks, against the loopback server's provider modes with the real openai
client: reasoning models, servers without ``n`` or ``stream_options``, single-slot
servers, streamed garbage, timeouts that cancel the request."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from stop_tui.config import load_settings
from stop_tui.errors import UserError
from stop_tui.lm.openai_backend import OpenAIBackend, RetryPolicy, default_concurrency
from stop_tui.lm.pricing import price_of
from stop_tui.lm.types import ChatRequest, RejectedLMError, TransientLMError
from tests.support.openai_server import OpenAIServer, Reply

PRICES = {"test-model": (1.0, 10.0)}  # dollars per 1M tokens


@pytest.fixture
async def make(openai_server: OpenAIServer) -> AsyncIterator[Callable[..., OpenAIBackend]]:
    made: list[OpenAIBackend] = []

    def factory(**kw: object) -> OpenAIBackend:
        options: dict[str, object] = {
            "base_url": openai_server.base_url,
            "timeout": 5.0,
            "max_tokens": 4096,
            "prices": PRICES,
            "retry": RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05),
            "rng": random.Random(1),
        }
        options.update(kw)
        backend = OpenAIBackend("test-model", **options)  # type: ignore[arg-type]
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.aclose()


def req(user: str = "hello", n: int = 1, temperature: float = 0.7) -> ChatRequest:
    return ChatRequest(
        model="test-model", system="You are terse.", user=user, n=n, temperature=temperature
    )


def test_default_concurrency_is_one_for_local_servers() -> None:
    assert default_concurrency("http://127.0.0.1:8080/v1") == 1
    assert default_concurrency("http://localhost:11434/v1") == 1
    assert default_concurrency("http://[::1]:1234/v1") == 1
    assert default_concurrency("https://api.groq.com/openai/v1") == 4
    assert default_concurrency(None) == 4


async def test_requests_stream_with_usage(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    result = await make().complete(req("stream me", n=2))
    assert result.texts == ["reply 1.0 to: stream me", "reply 1.1 to: stream me"]
    assert result.usage_estimated is False and result.completion_tokens > 0
    (body,) = openai_server.chat_requests()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 4096


async def test_reasoning_model_is_learned_once_and_costs_its_reasoning_tokens(
    make: Callable[..., OpenAIBackend],
) -> None:
    server = OpenAIServer(reasoning=True).start()
    notices: list[str] = []
    try:
        backend = make(base_url=server.base_url, on_notice=notices.append)
        result = await backend.complete(req("think", n=1))
        # max_tokens rejected, then temperature rejected, then served: 3 requests.
        assert server.count() == 3
        sent = server.chat_requests()[-1]
        assert "max_tokens" not in sent and sent["max_completion_tokens"] == 4096
        assert "temperature" not in sent
        assert result.adapted == {
            "max_tokens": "sent as max_completion_tokens",
            "temperature": "left out (the model accepts only its default)",
        }
        assert result.reasoning_tokens == 50
        assert result.completion_tokens == len(result.texts[0].split()) + 1 + 50
        expected = (result.prompt_tokens * 1.0 + result.completion_tokens * 10.0) / 1e6
        assert result.cost == pytest.approx(expected)
        assert len(notices) == 2 and "max_completion_tokens" in notices[0]
        # Learned for the run: the next request is sent right the first time.
        again = await backend.complete(req("again", n=2))
        assert server.count() == 4 and len(again.texts) == 2
        assert again.reasoning_tokens == 100 and len(notices) == 2
    finally:
        server.stop()


async def test_temperature_one_is_sent_to_a_reasoning_model(
    make: Callable[..., OpenAIBackend],
) -> None:
    server = OpenAIServer(reasoning=True).start()
    try:
        backend = make(base_url=server.base_url, max_tokens=None)
        result = await backend.complete(req(temperature=1.0))
        assert server.count() == 1 and result.adapted == {}
    finally:
        server.stop()


async def test_server_without_n_gets_parallel_single_requests(
    make: Callable[..., OpenAIBackend],
) -> None:
    server = OpenAIServer(no_n=True).start()
    try:
        backend = make(base_url=server.base_url, max_concurrency=4)
        result = await backend.complete(req("many", n=3))
        assert len(result.texts) == 3 and len(set(result.texts)) == 3
        assert server.count() == 4  # one rejected, three served
        assert [b["n"] for b in server.chat_requests()] == [3, 1, 1, 1]
        assert result.adapted == {"n": "n=1 requests in parallel"}
        await backend.complete(req("more", n=2))
        assert server.count() == 6  # learned: no rejected request this time
    finally:
        server.stop()


async def test_server_rejecting_stream_options_is_asked_without(
    make: Callable[..., OpenAIBackend],
) -> None:
    server = OpenAIServer(stream_options=False).start()
    try:
        backend = make(base_url=server.base_url)
        result = await backend.complete(req())
        assert server.count() == 2 and "stream_options" not in server.chat_requests()[-1]
        assert result.usage_estimated is True  # no usage without stream_options
        assert result.texts == ["reply 2.0 to: hello"]
    finally:
        server.stop()


async def test_server_without_usage_is_estimated(make: Callable[..., OpenAIBackend]) -> None:
    server = OpenAIServer(usage=False).start()
    try:
        result = await make(base_url=server.base_url).complete(req("x" * 400))
        assert result.usage_estimated is True and result.prompt_tokens >= 100
        assert result.cost is not None and result.cost > 0
    finally:
        server.stop()


async def test_single_slot_server_is_never_sent_two_requests(
    make: Callable[..., OpenAIBackend],
) -> None:
    server = OpenAIServer(serial=True, delay=0.05).start()
    try:
        backend = make(base_url=server.base_url)  # loopback: concurrency 1 by default
        results = await asyncio.gather(*(backend.complete(req(f"q{i}")) for i in range(4)))
        assert server.rejected_busy == 0 and server.max_in_flight == 1
        assert server.count() == 4 and all(r.retries == 0 for r in results)
    finally:
        server.stop()


async def test_time_queued_is_not_counted_as_request_timeout(
    make: Callable[..., OpenAIBackend],
) -> None:
    # Each reply takes 0.6 s; the timeout is 1 s; the fourth request waits ~1.8 s for
    # its slot. Were the wait counted, it would time out and be resent.
    server = OpenAIServer(delay=0.6).start()
    try:
        backend = make(base_url=server.base_url, timeout=1.0, max_concurrency=1)
        results = await asyncio.gather(*(backend.complete(req(f"q{i}")) for i in range(4)))
        assert server.count() == 4 and all(r.retries == 0 for r in results)
    finally:
        server.stop()


async def test_timeout_closes_the_connection_before_the_retry(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    openai_server.enqueue(Reply.slow(30.0))
    backend = make(timeout=1.0, retry=RetryPolicy(max_retries=2, base_delay=0.5, jitter=0.0))
    result = await backend.complete(req())
    assert result.retries == 1 and openai_server.count() == 2
    assert openai_server.abandoned == 1  # the server saw the client go away
    assert openai_server.max_in_flight == 1  # never served twice at once


async def test_streamed_garbage_gives_one_clear_line(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    openai_server.enqueue(*(Reply.garbage_stream() for _ in range(3)))
    with pytest.raises(TransientLMError) as info:
        await make().complete(req())
    message = str(info.value)
    assert "\n" not in message and "malformed response" in message
    assert openai_server.count() == 3


async def test_client_error_is_rejected_with_status_and_detail(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    openai_server.enqueue(
        Reply.error(400, "This model's maximum context length is 8192 tokens.", code="x")
    )
    with pytest.raises(RejectedLMError) as info:
        await make().complete(req())
    assert info.value.status == 400 and "maximum context length" in info.value.detail
    assert openai_server.count() == 1


async def test_cached_prompt_tokens_cost_the_cached_price(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    openai_server.cached_tokens = 10
    backend = make(prices={"test-model": (1.0, 10.0, 0.25)})
    result = await backend.complete(req("x" * 400))
    assert result.cached_tokens == 10 and result.prompt_tokens > 10
    expected = ((result.prompt_tokens - 10) * 1.0 + 10 * 0.25 + result.completion_tokens * 10) / 1e6
    assert result.cost == pytest.approx(expected)


def test_prices_in_stop_toml_take_a_cached_price(tmp_path: Path) -> None:
    config = tmp_path / "stop.toml"
    config.write_text(
        'model = "my-model"\nbase_url = "http://127.0.0.1:1/v1"\n'
        '[prices]\n"my-model" = { prompt = 1.0, completion = 2.0, cached = 0.1 }\n'
        '"gpt-4o" = [9.0, 9.0]\n'
    )
    settings = load_settings(None, config, environ={})
    assert settings.prices == {"my-model": (1.0, 2.0, 0.1), "gpt-4o": (9.0, 9.0)}
    assert price_of("gpt-4o-2024-08-06", settings.prices) == (9.0, 9.0)
    with pytest.raises(UserError):
        config.write_text(
            'model = "m"\n[prices]\n"m" = { prompt = 1.0, completion = 2.0, x = 1 }\n'
        )
        load_settings(None, config, environ={})
