"""OpenAIBackend with the real openai client against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import AsyncIterator, Callable

import pytest

from stop_tui.lm.openai_backend import OpenAIBackend, RetryPolicy, parse_retry_after
from stop_tui.lm.types import ChatRequest, FatalLMError, LMError, TransientLMError
from tests.support.openai_server import OpenAIServer, Reply

KEY = "sk-test-0123456789abcdef"


class SleepLog:
    """Stands in for asyncio.sleep: records the delays asked for, waits no time."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
def sleeps() -> SleepLog:
    return SleepLog()


@pytest.fixture
async def make(
    openai_server: OpenAIServer, sleeps: SleepLog
) -> AsyncIterator[Callable[..., OpenAIBackend]]:
    made: list[OpenAIBackend] = []

    def factory(**kw: object) -> OpenAIBackend:
        options: dict[str, object] = {
            "api_key": KEY,
            "base_url": openai_server.base_url,
            "timeout": 5.0,
            "retry": RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05),
            "sleep": sleeps,
            "rng": random.Random(1),
        }
        options.update(kw)
        backend = OpenAIBackend(str(options.pop("model", "test-model")), **options)  # type: ignore[arg-type]
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.aclose()


def req(user: str = "hello", n: int = 1, model: str = "test-model") -> ChatRequest:
    return ChatRequest(model=model, system="You are terse.", user=user, n=n, temperature=0.7)


async def test_completion_with_n_uses_one_request_and_reports_usage(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    backend = make()
    result = await backend.complete(req("what is 2+2", n=3))
    assert result.texts == [f"reply 1.{i} to: what is 2+2" for i in range(3)]
    assert openai_server.count() == 1
    sent = openai_server.chat_requests()[0]
    assert sent["n"] == 3 and sent["model"] == "test-model" and sent["temperature"] == 0.7
    assert sent["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "what is 2+2"},
    ]
    assert openai_server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert result.usage_estimated is False
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.retries == 0
    assert result.cost is None  # "test-model" has no price


async def test_max_tokens_from_request_or_backend_default(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    backend = make(max_tokens=77)
    await backend.complete(req())
    await backend.complete(ChatRequest(model="test-model", system="s", user="u", n=1, max_tokens=5))
    first, second = openai_server.chat_requests()
    assert first["max_tokens"] == 77
    assert second["max_tokens"] == 5


async def test_fewer_choices_than_n_are_filled_by_parallel_requests(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    openai_server.max_choices = 1  # a server that ignores n
    result = await make().complete(req("x", n=4))
    assert len(result.texts) == 4
    assert len(set(result.texts)) == 4  # four separate samples, not one repeated
    assert openai_server.count() == 4
    ns = sorted(r["n"] for r in openai_server.chat_requests())
    assert ns == [1, 1, 1, 4]


async def test_partial_choices_fetch_only_the_missing_ones(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    openai_server.enqueue(Reply.ok(choices=2))
    result = await make().complete(req("x", n=5))
    assert len(result.texts) == 5
    assert openai_server.count() == 4  # one with n=5 giving 2, then 3 with n=1


async def test_missing_usage_is_estimated_and_marked(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    openai_server.enqueue(Reply.ok(["a" * 40], usage=False))
    result = await make().complete(req("b" * 400))
    assert result.usage_estimated is True
    assert result.completion_tokens == 10  # 40 characters / 4
    assert result.prompt_tokens >= 100  # 400 characters of user message / 4


async def test_cost_from_price_table(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    backend = make(prices={"test-model": (1_000_000.0, 2_000_000.0)})  # $1 / $2 per token
    result = await backend.complete(req())
    assert result.cost == pytest.approx(result.prompt_tokens * 1.0 + result.completion_tokens * 2.0)


async def test_429_honours_retry_after_seconds(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend], sleeps: SleepLog
) -> None:
    openai_server.enqueue(Reply.error(429, "slow down", retry_after="2"))
    result = await make().complete(req())
    assert openai_server.count() == 2
    assert result.retries == 1
    assert sleeps.delays == [2.0]


async def test_retry_after_is_capped(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend], sleeps: SleepLog
) -> None:
    openai_server.enqueue(Reply.error(429, retry_after="86400"))
    backend = make(retry=RetryPolicy(max_retries=2, base_delay=0.01, max_retry_after=7.5))
    await backend.complete(req())
    assert sleeps.delays == [7.5]


async def test_retry_after_http_date(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend], sleeps: SleepLog
) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    openai_server.enqueue(Reply.error(503, retry_after=when))
    await make().complete(req())
    assert len(sleeps.delays) == 1
    assert 20.0 <= sleeps.delays[0] <= 31.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    assert parse_retry_after({"Retry-After": "-4"}) == 0.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None
    past = email.utils.formatdate(time.time() - 100, usegmt=True)
    assert parse_retry_after({"Retry-After": past}) == 0.0


async def test_exponential_backoff_without_retry_after(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend], sleeps: SleepLog
) -> None:
    openai_server.enqueue(Reply.error(500), Reply.error(502), Reply.error(500))
    backend = make(retry=RetryPolicy(max_retries=3, base_delay=1.0, max_delay=100, jitter=0.5))
    result = await backend.complete(req())
    assert result.retries == 3
    assert openai_server.count() == 4
    # attempt k waits base * 2**k scaled by a jitter factor in [0.5, 1].
    for k, delay in enumerate(sleeps.delays):
        assert 0.5 * 2**k <= delay <= 2**k


async def test_retries_are_bounded_then_transient_error(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    openai_server.enqueue(*[Reply.error(500, "boom")] * 10)
    with pytest.raises(TransientLMError) as info:
        await make(retry=RetryPolicy(max_retries=2, base_delay=0.0)).complete(req())
    assert openai_server.count() == 3  # the first try and two retries
    assert info.value.status == 500 and info.value.retries == 2
    assert "boom" in str(info.value)


async def test_timeout_is_retried(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    openai_server.enqueue(Reply.slow(10.0))
    result = await make(timeout=1.0).complete(req())
    assert openai_server.count() == 2
    assert result.retries == 1


async def test_malformed_json_is_retried(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    openai_server.enqueue(Reply.malformed(), Reply(status=200, body=b'{"no": "choices"}'))
    result = await make().complete(req())
    assert openai_server.count() == 3
    assert result.retries == 2 and len(result.texts) == 1


async def test_connection_refused_is_retried_then_fails(
    make: Callable[..., OpenAIBackend], sleeps: SleepLog
) -> None:
    dead = OpenAIServer().start()
    url = dead.base_url
    dead.stop()
    with pytest.raises(TransientLMError, match="connection error"):
        await make(base_url=url, retry=RetryPolicy(max_retries=2, base_delay=0.0)).complete(req())
    assert len(sleeps.delays) == 2


async def test_401_is_fatal_at_once_and_the_key_is_not_shown(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    openai_server.api_key = "sk-the-right-key-000"
    backend = make()
    with pytest.raises(FatalLMError) as info:
        await backend.complete(req())
    assert openai_server.count() == 1  # not retried
    assert info.value.status == 401
    assert "OPENAI_API_KEY" in str(info.value)
    assert KEY not in str(info.value)  # the server echoed it; we scrubbed it
    assert KEY not in repr(backend) and "***" in repr(backend)


async def test_403_is_fatal(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    openai_server.enqueue(Reply.error(403, "no access"))
    with pytest.raises(FatalLMError, match="403") as info:
        await make().complete(req())
    assert openai_server.count() == 1
    assert "organization" in str(info.value)


async def test_404_unknown_model_is_fatal_and_names_the_fix(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    with pytest.raises(FatalLMError) as info:
        await make(model="gpt-nope").complete(req(model="gpt-nope"))
    assert openai_server.count() == 1
    assert info.value.status == 404
    assert "'gpt-nope'" in str(info.value) and "model name" in str(info.value)


async def test_400_is_an_error_but_not_retried_nor_fatal(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    openai_server.enqueue(Reply.error(400, "prompt too long"))
    with pytest.raises(LMError, match="prompt too long") as info:
        await make().complete(req())
    assert not isinstance(info.value, FatalLMError | TransientLMError)
    assert openai_server.count() == 1


async def test_max_concurrency_limits_requests_in_flight(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    openai_server.hold()  # replies wait until released
    backend = make(max_concurrency=3)
    calls = asyncio.gather(*(backend.complete(req(f"q{i}")) for i in range(12)))
    for _ in range(500):  # until 3 requests are open at the server (at most ~5 s)
        if openai_server.in_flight_now() >= 3:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # room for a 4th to arrive, were the limit broken
    open_at_once = openai_server.in_flight_now()
    openai_server.release()
    results = await calls
    assert open_at_once == 3
    assert len(results) == 12
    assert openai_server.count() == 12
    assert openai_server.max_in_flight == 3


def test_missing_key_for_openai_is_a_clear_fatal_error() -> None:
    with pytest.raises(FatalLMError, match="OPENAI_API_KEY"):
        OpenAIBackend("gpt-4o-mini", api_key=None, base_url=None)


async def test_local_server_needs_no_key(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    backend = make(api_key=None)
    result = await backend.complete(req())
    assert len(result.texts) == 1
    assert "None" in repr(backend)


async def test_organization_header_is_sent(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    await make(organization="org-42").complete(req())
    assert openai_server.requests[0].headers["openai-organization"] == "org-42"


async def test_azure_openai_route_and_key_header(openai_server: OpenAIServer) -> None:
    openai_server.models = ["my-deployment"]
    openai_server.api_key = KEY
    backend = OpenAIBackend(
        "my-deployment",
        api_key=KEY,
        azure_endpoint=f"http://127.0.0.1:{openai_server.port}",
        azure_api_version="2024-10-21",
        retry=RetryPolicy(max_retries=0),
    )
    try:
        result = await backend.complete(req(model="my-deployment", n=2))
    finally:
        await backend.aclose()
    assert len(result.texts) == 2
    (sent,) = openai_server.requests
    assert sent.path == "/openai/deployments/my-deployment/chat/completions"
    assert sent.headers["api-key"] == KEY
    assert backend.name == "azure:my-deployment" and KEY not in repr(backend)


@pytest.mark.parametrize(
    "body", [b'"just a string"', b'{"choices": "x"}', b'{"choices": [1, 2]}', b"{}"]
)
async def test_odd_bodies_are_malformed_and_retried(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend], body: bytes
) -> None:
    openai_server.enqueue(Reply(status=200, body=body))
    result = await make(stream=False).complete(req())
    assert result.retries == 1 and openai_server.count() == 2


async def test_unreadable_usage_is_estimated(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    body = b'{"choices": [{"index": 0, "message": {"content": "hi"}}], "usage": {"prompt_tokens": "x"}}'
    openai_server.enqueue(Reply(status=200, body=body))
    result = await make(stream=False).complete(req())
    assert result.texts == ["hi"] and result.usage_estimated is True


async def test_unreadable_streamed_usage_is_estimated(
    openai_server: OpenAIServer, make: Callable[..., OpenAIBackend]
) -> None:
    chunk = b'data: {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", '
    body = (
        chunk
        + b'"choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\n'
        + chunk
        + b'"choices": [], "usage": {"prompt_tokens": "x"}}\n\ndata: [DONE]\n\n'
    )
    openai_server.enqueue(Reply(status=200, body=body, sse=True))
    result = await make().complete(req())
    assert result.texts == ["hi"] and result.usage_estimated is True
