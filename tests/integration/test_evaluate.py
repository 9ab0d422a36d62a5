"""``stop_tui.tasks.evaluate``: sandboxed scores equal in-process scores, whether the
child came from a spare, was forked on demand or started cold; output and flags
survive the background kill; nothing is left running afterwards."""

from __future__ import annotations

import textwrap
import types
from typing import Any

import pytest

from stop_tui.sandbox import Sandbox
from stop_tui.sandbox.launch import package_root
from stop_tui.sandbox.layers import probe
from stop_tui.tasks import Malformed, get_task
from stop_tui.tasks.evaluate import evaluate
from tests.support.sandbox import sandbox_processes
from tests.support.solutions.harness import roundtrip, strong_source

pytestmark = pytest.mark.skipif(
    not probe().full, reason="the full isolation stack is not available"
)

ROOT = str(package_root())


def in_process_scores(name: str, source: str) -> list[float]:
    """Our trusted ``source`` run here, on the same instances, scored the same way."""
    task = get_task(name)
    module = types.ModuleType("solution")
    exec(compile(source, "<solution>", "exec"), module.__dict__)
    entry = module.__dict__[task.entry_point]
    scores = []
    for args, hidden in task.instances("val"):
        try:
            scores.append(task.score(list(args), hidden, roundtrip(entry(*args))))
        except Malformed:
            scores.append(0.0)
    return scores


def summary(result: Any) -> list[tuple[float, str | None]]:
    return [(r.score, r.flag) for r in result.instances]


@pytest.mark.parametrize("name", ["parity_noise", "str_grid_dist"])
async def test_scores_equal_in_process_scores_with_and_without_spares(name: str) -> None:
    task = get_task(name)
    source = strong_source(name)
    expected = in_process_scores(name, source)
    assert len(set(expected)) > 1 or expected[0] > 0  # a meaningful comparison
    results = []
    async with Sandbox() as sb:
        for _ in range(3):  # the first forks on demand, the next ones take spares
            results.append(await evaluate(task, source, "val", sb))
        assert sb._spares.get(next(iter(sb._spares))) is not None
    async with Sandbox(spares=0) as sb:
        results.append(await evaluate(task, source, "val", sb))
    async with Sandbox(zygote=False) as sb:
        results.append(await evaluate(task, source, "val", sb))
    for result in results:
        assert [r.score for r in result.instances] == expected
        assert all(r.flag is None for r in result.instances), result.flags
        assert result.score == sum(expected) / len(expected)


async def test_seeded_random_solutions_score_the_same_from_a_spare() -> None:
    task = get_task("parity_noise")
    async with Sandbox(spares=0) as sb:
        cold = await evaluate(task, task.seed_solution, "val", sb)
    async with Sandbox() as sb:
        first = await evaluate(task, task.seed_solution, "val", sb)
        spare = await evaluate(task, task.seed_solution, "val", sb)
    assert summary(cold) == summary(first) == summary(spare)
    assert 0 < cold.score < 1


UNSEEDED = textwrap.dedent(
    """
    import numpy as np

    def algorithm(t, dist):
        a, b = np.random.default_rng(), np.random.default_rng()
        return "".join("AB"[int(x)] for x in a.integers(0, 2, len(t)) ^ b.integers(0, 2, len(t)))
    """
)


async def test_unseeded_numpy_generators_repeat_in_every_child() -> None:
    """``np.random.default_rng()`` takes OS entropy; in a child it takes the evaluation's
    seed instead, so such a solution scores the same in every child, on every machine
    (and in a replay), while two generators of one call still differ."""
    task = get_task("str_grid_dist")
    async with Sandbox() as sb:
        runs = [await evaluate(task, UNSEEDED, "val", sb) for _ in range(2)]
    async with Sandbox(spares=0) as sb:
        runs.append(await evaluate(task, UNSEEDED, "val", sb))
        runs.append(await evaluate(task, UNSEEDED, "val", sb, salt=1))
    assert all(r.flag is None for r in runs[0].instances), runs[0].flags
    assert summary(runs[0]) == summary(runs[1]) == summary(runs[2])
    assert len({r.score for r in runs[0].instances}) > 1  # not one fixed string
    assert summary(runs[3]) != summary(runs[0])  # another seed, other draws


CHATTY = textwrap.dedent(
    """
    import sys
    calls = 0
    def algorithm(t, dist):
        global calls
        calls += 1
        print(f"call {calls}")
        print(f"err {calls}", file=sys.stderr)
        if calls == 3:
            raise ValueError("third call")
        return t
    """
)


async def test_output_and_errors_are_kept_when_the_last_child_dies_in_the_background() -> None:
    task = get_task("str_grid_dist")
    count = len(task.instances("val"))
    async with Sandbox() as sb:
        for _ in range(2):  # on demand, then from a spare
            result = await evaluate(task, CHATTY, "val", sb)
            assert result.stdout == "".join(f"call {i}\n" for i in range(1, count + 1))
            assert result.stderr == "".join(f"err {i}\n" for i in range(1, count + 1))
            assert result.instances[2].flag == "error: ValueError: third call"
            assert result.flags == ["error"]
    assert sandbox_processes(ROOT) == []


SLOW_THIRD = textwrap.dedent(
    """
    import time
    calls = 0
    def algorithm(t, dist):
        global calls
        calls += 1
        if calls == 3:
            time.sleep(30)
        return t
    """
)


async def test_a_timeout_kills_the_child_and_a_fresh_one_takes_the_rest() -> None:
    task = get_task("str_grid_dist")
    count = len(task.instances("val"))
    async with Sandbox() as sb:
        await evaluate(task, task.seed_solution, "val", sb)  # a spare exists now
        result = await evaluate(task, SLOW_THIRD, "val", sb)
    flags = [r.flag for r in result.instances]
    # Each fresh child counts from 1 again: its third call times out too.
    assert [i for i, flag in enumerate(flags) if flag == "timeout"] == [2, 5, 8]
    assert all(flag is None for flag in flags[:2] + flags[3:5] + flags[6:8])
    # MAX_TIMEOUTS reached: the rest is skipped unrun.
    assert all(flag and flag.startswith("skipped") for flag in flags[9:count])
    assert sandbox_processes(ROOT) == []
