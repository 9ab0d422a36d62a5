"""Spawn cost: warm zygote child vs cold child vs an in-process function call.

Run from a checkout::

    PYTHONPATH=$PWD python benchmarks/bench_spawn.py [--n 30]

Prints the median and 90th percentile (milliseconds) of
- ``in-process call``: calling the solution function directly (no isolation);
- ``warm spawn``: ``Sandbox.spawn`` from the zygote until the child reports ready;
- ``cold spawn``: the same without a zygote (bwrap + a fresh interpreter + numpy);
- ``kill``: ``Child.kill`` until the job and its namespace are gone (warm);
- ``round trip``: one ``Child.request`` of a trivial call in a warm child;
- ``array round trip``: one request carrying a 300x300 float array both ways;
- ``call(300x300 in)``: the time :meth:`Child.call` counts for a call whose
  argument is that array and whose result is one number.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import numpy as np

from stop_tui.sandbox import Limits, Sandbox, codec

SOURCE = """
import numpy as np
def algorithm(x):
    return x
"""
PAYLOAD = {"source": SOURCE, "entry_point": "algorithm"}


def stats(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return f"median {statistics.median(ms):9.4f} ms   p90 {p90:9.4f} ms   (n={len(ms)})"


async def timed(fn: Callable[[], Awaitable[object]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - start)
    return out


async def main(n: int) -> None:
    namespace: dict[str, object] = {}
    exec(SOURCE, namespace)
    fn = namespace["algorithm"]
    assert callable(fn)
    calls = []
    for _ in range(n * 100):
        start = time.perf_counter()
        fn(1)
        calls.append(time.perf_counter() - start)
    print(f"in-process call     {stats(calls)}")

    limits = Limits()
    kills: list[float] = []

    async def spawn_ready(sb: Sandbox) -> None:
        child = await sb.spawn("solution", PAYLOAD, limits)
        assert await child.recv(30) == {"ready": True}
        start = time.perf_counter()
        await child.kill()
        kills.append(time.perf_counter() - start)

    async with Sandbox() as warm:
        await spawn_ready(warm)  # first spawn after start-up is not counted
        kills.clear()
        spawn_times = await timed(lambda: spawn_ready(warm), n)
        print(
            f"warm spawn          {stats([s - k for s, k in zip(spawn_times, kills, strict=True)])}"
        )
        print(f"kill                {stats(kills)}")
        child = await warm.spawn("solution", PAYLOAD, limits)
        assert await child.recv(30) == {"ready": True}
        one = codec.encode([1])
        trips = [(await child.request({"call": one}, 10)).elapsed for _ in range(n * 10)]
        print(f"round trip          {stats(trips)}")
        matrix = np.random.default_rng(0).random((300, 300))
        big = codec.encode([matrix])
        trips = [(await child.request({"call": big}, 10)).elapsed for _ in range(n)]
        print(f"array round trip    {stats(trips)}   (300x300 float64 each way)")
        source = "def algorithm(x):\n    return len(x)\n"
        counted = []
        async with await warm.spawn("solution", {**PAYLOAD, "source": source}, limits) as lenc:
            assert await lenc.recv(30) == {"ready": True}
            for _ in range(n):
                reply = await lenc.call([matrix], timeout=10)
                assert reply.message is not None and reply.message["ok"] == 300
                counted.append(reply.elapsed)
        print(f"call(300x300 in)    {stats(counted)}   (time counted by Child.call)")
        await child.kill()

    kills.clear()
    async with Sandbox(zygote=False) as cold:
        spawn_times = await timed(lambda: spawn_ready(cold), n)
        print(
            f"cold spawn          {stats([s - k for s, k in zip(spawn_times, kills, strict=True)])}"
        )

    start = time.perf_counter()
    async with Sandbox() as sb:
        await spawn_ready(sb)
    print(f"zygote start + first child + close: {1000 * (time.perf_counter() - start):.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="samples per measurement")
    asyncio.run(main(parser.parse_args().n))
