"""Overhead of the LM layer against a local OpenAI-compatible server (no network).

    PYTHONPATH=. python benchmarks/bench_lm.py [requests]

Prints requests per second through OpenAIBackend alone, through RecordingBackend
(JSONL transcript, fsync per record) and the replay rate from that transcript.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from stop_tui.lm.budget import LanguageModel, RunBudget
from stop_tui.lm.openai_backend import OpenAIBackend
from stop_tui.lm.replay import ReplayBackend
from stop_tui.lm.transcript import RecordingBackend
from tests.support.openai_server import OpenAIServer


async def drive(backend: object, count: int) -> float:
    budget = RunBudget(max_calls=count)
    models = [
        LanguageModel(backend, model="test-model", budget=1, run_budget=budget)  # type: ignore[arg-type]
        for _ in range(count)
    ]
    start = time.perf_counter()
    await asyncio.gather(*(m.prompt("expert", f"message {i}", 2) for i, m in enumerate(models)))
    return time.perf_counter() - start


async def main(count: int) -> None:
    with OpenAIServer() as server, tempfile.TemporaryDirectory() as tmp:
        live = OpenAIBackend("test-model", base_url=server.base_url, max_concurrency=8)
        plain = await drive(live, count)
        path = Path(tmp) / "t.jsonl"
        recorder = RecordingBackend(live, path)
        recorded = await drive(recorder, count)
        await recorder.aclose()
        replay = ReplayBackend(path)
        replayed = await drive(replay, count)
        print(f"{count} prompt calls (n=2), max_concurrency=8, local stdlib server:")
        print(f"  live            {count / plain:8.0f} calls/s")
        print(f"  live + record   {count / recorded:8.0f} calls/s  ({path.stat().st_size} bytes)")
        print(f"  replay          {count / replayed:8.0f} calls/s")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
