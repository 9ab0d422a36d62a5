"""The endpoint check behind `stop-tui doctor`, against a real local HTTP server."""

from __future__ import annotations

from pathlib import Path

from stop_tui.config import Settings, load_settings
from stop_tui.lm.check import check_endpoint
from tests.support.openai_server import OpenAIServer, Reply


def settings(tmp_path: Path, **overrides: object) -> Settings:
    return load_settings(overrides, None, environ={}, cwd=tmp_path)


def statuses(report: object) -> dict[str, str]:
    return {check: status for check, status, _ in report.as_rows()}  # type: ignore[attr-defined]


async def test_healthy_endpoint(tmp_path: Path, openai_server: OpenAIServer) -> None:
    openai_server.models = ["test-model", "other"]
    report = await check_endpoint(
        settings(tmp_path, model="test-model", base_url=openai_server.base_url)
    )
    assert report.ok and report.reachable and report.key_accepted and report.model_available
    assert report.n_honoured is True
    assert report.latency is not None and report.latency > 0
    assert report.models == ["other", "test-model"]
    assert statuses(report) == {
        "endpoint": "ok",
        "key": "ok",
        "model": "ok",
        "n": "ok",
        "latency": "ok",
    }
    assert openai_server.count("/v1/models") == 1
    (sent,) = openai_server.chat_requests()
    assert sent["n"] == 2 and sent["max_tokens"] == 1


async def test_server_that_ignores_n(tmp_path: Path, openai_server: OpenAIServer) -> None:
    openai_server.max_choices = 1
    report = await check_endpoint(
        settings(tmp_path, model="test-model", base_url=openai_server.base_url)
    )
    assert report.ok and report.n_honoured is False
    assert statuses(report)["n"] == "warn"


async def test_server_that_rejects_n(tmp_path: Path, openai_server: OpenAIServer) -> None:
    openai_server.enqueue(Reply.error(400, "n must be 1"))
    report = await check_endpoint(
        settings(tmp_path, model="test-model", base_url=openai_server.base_url)
    )
    assert report.ok and report.n_honoured is False
    assert openai_server.count() == 2  # n=2 refused, then n=1


async def test_no_models_endpoint_falls_back_to_a_completion(
    tmp_path: Path, openai_server: OpenAIServer
) -> None:
    openai_server.models_endpoint = False
    report = await check_endpoint(
        settings(tmp_path, model="test-model", base_url=openai_server.base_url)
    )
    assert report.ok and report.models == []
    assert statuses(report)["model"] == "ok"


async def test_wrong_key(tmp_path: Path, openai_server: OpenAIServer) -> None:
    openai_server.api_key = "sk-right-one-123"
    report = await check_endpoint(
        settings(
            tmp_path, model="test-model", base_url=openai_server.base_url, api_key="sk-wrong-456"
        )
    )
    assert report.reachable and report.key_accepted is False and not report.ok
    assert statuses(report)["key"] == "fail"
    assert openai_server.count() == 0  # stopped before paying for a completion
    assert all("sk-wrong-456" not in detail for _, _, detail in report.as_rows())


async def test_unknown_model(tmp_path: Path, openai_server: OpenAIServer) -> None:
    report = await check_endpoint(
        settings(tmp_path, model="gpt-nope", base_url=openai_server.base_url)
    )
    assert report.reachable and report.model_available is False and not report.ok
    assert statuses(report)["model"] == "fail"


async def test_unreachable(tmp_path: Path) -> None:
    dead = OpenAIServer().start()
    url = dead.base_url
    dead.stop()
    report = await check_endpoint(settings(tmp_path, model="m", base_url=url))
    assert report.reachable is False and not report.ok
    assert statuses(report) == {"endpoint": "fail"}


async def test_demo_needs_no_endpoint(tmp_path: Path) -> None:
    report = await check_endpoint(settings(tmp_path, model="demo"))
    assert report.ok and statuses(report) == {"endpoint": "skip"}
