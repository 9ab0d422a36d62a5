"""Runs against endpoints with quirks, as a person starts them (the CLI in a child
process, the loopback OpenAI-compatible server in the test)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli_run import SMALL, cli
from tests.support.openai_server import OpenAIServer, Reply

#: OpenAI's body for a parameter value a model does not accept (not the "only the
#: default" form that reasoning models send, which stop-tui adapts to).
REJECT_TEMPERATURE = Reply(
    status=400,
    body=json.dumps(
        {
            "error": {
                "message": "Invalid 'temperature': decimal above maximum value. Expected a "
                "value <= 0.5, but got 0.7 instead.",
                "type": "invalid_request_error",
                "param": "temperature",
                "code": "decimal_above_max_value",
            }
        }
    ).encode(),
)


def endpoint_run(server: OpenAIServer, tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    result = cli(
        "run", "--headless", "--generations", "1", "--model", "test-model",
        "--base-url", server.base_url, *SMALL, *extra, cwd=tmp_path,
    )  # fmt: skip
    return result.returncode, result.stdout, result.stderr


def runs(tmp_path: Path) -> list[dict[str, object]]:
    listed = json.loads(cli("runs", "--json", cwd=tmp_path).stdout)
    assert isinstance(listed, list)
    return listed


def test_a_run_whose_every_request_is_rejected_stops_with_one_clear_line(
    tmp_path: Path,
) -> None:
    with OpenAIServer() as server:
        server.always = REJECT_TEMPERATURE
        code, out, err = endpoint_run(server, tmp_path)
        sent = server.count()
    assert code == 1, out + err
    stopped = [line for line in out.splitlines() if "rejected 3 requests in a row" in line]
    assert len(stopped) == 1, out
    assert "temperature=0.7" in stopped[0] and "stop-tui resume" in stopped[0]
    assert "LM request failed" in out and "language-model requests failed" in out
    assert sent < 20  # stopped early, not after every generation's requests
    (run,) = runs(tmp_path)
    assert run["status"] == "failed"
    shown = cli("show", str(run["run_id"]), cwd=tmp_path)
    assert "ended: the endpoint rejected 3 requests in a row" in shown.stdout


def test_a_reasoning_model_run_finishes_with_one_notice_per_adaptation(
    tmp_path: Path,
) -> None:
    with OpenAIServer(reasoning=True) as server:
        code, out, err = endpoint_run(server, tmp_path)
        bodies = server.chat_requests()
    assert code == 0, out + err
    assert out.count("notice:") == 2 and "max_completion_tokens" in out
    assert "LM request failed" not in out
    # Exactly two requests were rejected (one per parameter learned); the rest fit.
    rejected = [b for b in bodies if "max_tokens" in b or b.get("temperature", 1) != 1]
    assert len(rejected) == 2
    assert all(b.get("max_completion_tokens") == 4096 for b in bodies[2:])
    (run,) = runs(tmp_path)
    assert run["status"] == "finished"
    replayed = cli("replay", str(run["run_id"]), cwd=tmp_path)
    assert replayed.returncode == 0 and "every score matches" in replayed.stdout
