"""``stop-tui doctor`` checks the configured endpoint: against a real OpenAI-compatible
server on 127.0.0.1, through the real openai client, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.openai_server import OpenAIServer


def doctor(
    server: OpenAIServer, model: str, key: str = "sk-test-key"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOP_TUI_", "OPENAI_"))}
    env["OPENAI_API_KEY"] = key
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "stop_tui",
            "doctor",
            "--json",
            "--model",
            model,
            "--base-url",
            server.base_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def endpoint(result: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    data = json.loads(result.stdout)
    (section,) = [s for s in data["sections"] if s["title"].startswith("Language model")]
    return section


def test_doctor_reports_a_working_endpoint(openai_server: OpenAIServer) -> None:
    result = doctor(openai_server, "test-model")
    section = endpoint(result)
    assert section["ok"], section
    assert section["data"]["reachable"] and section["data"]["model_available"]
    assert section["data"]["n_honoured"] is True
    assert section["data"]["latency"] is not None
    assert "sk-test-key" not in result.stdout + result.stderr


def test_doctor_reports_an_unknown_model_and_fewer_choices(openai_server: OpenAIServer) -> None:
    openai_server.max_choices = 1
    result = doctor(openai_server, "no-such-model")
    assert result.returncode == 1
    section = endpoint(result)
    assert not section["ok"] and section["data"]["model_available"] is False


def test_doctor_reports_a_rejected_key(openai_server: OpenAIServer) -> None:
    openai_server.api_key = "the-right-key"
    result = doctor(openai_server, "test-model", key="sk-wrong-key")
    assert result.returncode == 1
    section = endpoint(result)
    assert section["data"]["key_accepted"] is False
    assert "sk-wrong-key" not in result.stdout
