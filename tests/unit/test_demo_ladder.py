"""The demo's step rule and ladders: small steps up, rare jumps, and improvers ranked by
what they achieve with the real demo backend.

The improvers run in-process here (they are this project's own trusted library code)
against the real :class:`DemoBackend`, through a small synchronous adapter with the
paper's interface; solutions are scored by their rung on the library's ladder (a
program the ladder does not contain, such as broken code, scores 0).
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from typing import Any

import pytest

from stop_tui.lm.demo import DemoBackend, demo_improvers, demo_solutions, recognise, step_weight
from stop_tui.lm.demo.recognise import _normalise
from stop_tui.lm.types import ChatRequest
from tests.support.demo import (
    UTILITY_TEXT,
    extract_code,
    improve_prompt,
    install_helpers_module,
    load,
)

SYSTEM = "You are an expert computer scientist and programmer."
TASK = "parity_noise"
LADDER = demo_solutions(TASK)
# Validation scores of the parity_noise ladder (docs/demo-model.md), weakest first.
RUNG_SCORES = [0.53, 0.54, 0.67, 1.0, 1.0, 1.0]
HONEST = demo_improvers(include_hostile=False)
ITERATING = [e for e in HONEST if e.name not in {"seed", "two_batches", "whole_budget"}]


@pytest.fixture(autouse=True)
def _helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    install_helpers_module(monkeypatch)


def rung_of(code: Any, entries: list[Any] = LADDER) -> int | None:
    if not isinstance(code, str):
        return None
    normalised = _normalise(code)
    return next((e.strength for e in entries if _normalise(e.source) == normalised), None)


def proposals(backend: DemoBackend, user: str, count: int, temperature: float = 0.7) -> list[Any]:
    async def draw() -> list[Any]:
        texts: list[str] = []
        for _ in range(count):
            request = ChatRequest(
                model="demo", system=SYSTEM, user=user, n=6, temperature=temperature
            )
            texts.extend((await backend.complete(request)).texts)
        return [extract_code(t) for t in texts]

    return asyncio.run(draw())


def solution_gaps(level: int, count: int, temperature: float = 0.7, seed: int = 17) -> Counter[int]:
    backend = DemoBackend(seed=seed, failure_rate=0.0, no_code_rate=0.0)
    user = improve_prompt(LADDER[level].source, UTILITY_TEXT[TASK])
    rungs = [rung_of(c) for c in proposals(backend, user, count, temperature)]
    assert None not in rungs
    return Counter(r - level for r in rungs if r is not None)


def test_step_weights_favour_one_rung_up_and_sum_to_one() -> None:
    assert step_weight(1) > 4 * step_weight(2) > 0
    assert step_weight(2) > 2 * step_weight(3) > step_weight(4) > 0
    assert step_weight(1) > step_weight(0) > 0 and step_weight(-1, weaker=2) < step_weight(0)
    long_ladder = sum(step_weight(g, weaker=3) for g in range(-3, 40))
    assert long_ladder == pytest.approx(1.0, abs=1e-6)


def test_from_rung_zero_few_proposals_jump_more_than_two_rungs() -> None:
    gaps = solution_gaps(0, count=100)  # 600 proposals, fixed seed
    total = sum(gaps.values())
    # Expected at temperature 0.7: one up 67%, same 16%, two up 13%, more than two up 4%.
    assert sum(n for g, n in gaps.items() if g > 2) / total < 0.08
    assert 0.55 < gaps[1] / total < 0.8
    assert gaps[1] > 3 * gaps[2] > 0
    assert gaps[0] > 0


def test_from_a_middle_rung_most_proposals_are_the_next_one() -> None:
    gaps = solution_gaps(2, count=100)
    total = sum(gaps.values())
    assert gaps[1] / total > 0.5
    assert sum(n for g, n in gaps.items() if g < 0) > 0  # sometimes a weaker program
    assert sum(n for g, n in gaps.items() if g > 2) / total < 0.08


def test_a_lower_temperature_jumps_less() -> None:
    cold = solution_gaps(0, count=60, temperature=0.3)
    hot = solution_gaps(0, count=60, temperature=1.1)
    jumps = {
        name: sum(n for g, n in c.items() if g >= 2) for name, c in (("cold", cold), ("hot", hot))
    }
    assert jumps["cold"] < jumps["hot"]
    assert cold[1] > hot[1]


def test_improver_requests_step_up_the_improver_ladder() -> None:
    backend = DemoBackend(seed=5, failure_rate=0.0, no_code_rate=0.0, hostile_rate=0.0)
    meta_text = (
        "def meta_utility(improve_str):\n    '''Mean downstream utility of the improver.'''\n"
    )
    for level in (0, 3):
        user = improve_prompt(HONEST[level].source, meta_text)
        assert recognise(SYSTEM, user).level == level
        rungs = [rung_of(c, HONEST) for c in proposals(backend, user, 50)]
        assert None not in rungs
        gaps = Counter(r - level for r in rungs if r is not None)
        assert gaps[1] / len(rungs) > 0.5
        assert sum(n for g, n in gaps.items() if g > 2) / len(rungs) < 0.08


# -- the improvers, run against the real demo backend -----------------------------------------


class SyncLanguageModel:
    """The paper's language-model interface over a DemoBackend, with the engine's rules:
    one call per prompt/batch_prompt, identical messages of a batch share one request."""

    def __init__(self, backend: DemoBackend, budget: int, context: str) -> None:
        self.backend = backend
        self.budget = budget
        self.max_responses_per_call = 6
        self.context = context
        self.calls = 0
        self.levels: list[int] = []  # the level the demo recognised, per request

    def _requests(self, expertise: str, groups: dict[str, int], temperature: float) -> Any:
        self.calls += 1
        if self.calls > self.budget:
            raise RuntimeError("BudgetExceeded")

        async def run() -> dict[str, list[str]]:
            out = {}
            for message, n in groups.items():
                self.levels.append(recognise(expertise, message).level)
                request = ChatRequest(
                    model="demo",
                    system=expertise,
                    user=message,
                    n=n,
                    temperature=temperature,
                    context=self.context,
                )
                out[message] = list((await self.backend.complete(request)).texts)
            return out

        return asyncio.run(run())

    def prompt(
        self, expertise: str, message: str, n_responses: int = 1, temperature: float = 0.7
    ) -> list[str]:
        return self._requests(expertise, {message: n_responses}, temperature)[message]

    def batch_prompt(
        self, expertise: str, messages: list[str], temperature: float = 0.7
    ) -> list[str]:
        messages = list(messages)
        pools = self._requests(expertise, dict(Counter(messages)), temperature)
        return [pools[m].pop(0) for m in messages]


class RungUtility:
    str = UTILITY_TEXT[TASK]

    def __init__(self, budget: int = 25) -> None:
        self.budget = budget
        self.calls = 0

    def __call__(self, solution: Any) -> float:
        self.calls += 1
        if self.calls > self.budget:
            raise RuntimeError("utility budget exceeded")
        rung = rung_of(solution)
        return 0.0 if rung is None else RUNG_SCORES[rung]


def run_downstream(improver: Any, seed: int) -> tuple[int, list[int]]:
    """One downstream run from the seed solution: (rung reached, -1 if none; levels seen)."""
    lm = SyncLanguageModel(DemoBackend(seed=seed), budget=4, context=f"run{seed}")
    result = load(improver.source, "improve_algorithm")(LADDER[0].source, RungUtility(), lm)
    rung = rung_of(result)
    assert lm.calls <= 4
    return (-1 if rung is None else rung), lm.levels


SEEDS = range(12)


def achievements(entry: Any) -> list[float]:
    scores = []
    for seed in SEEDS:
        rung, _ = run_downstream(entry, seed)
        scores.append(0.0 if rung < 0 else RUNG_SCORES[rung])
    return scores


def test_the_seed_improver_climbs_one_or_two_rungs() -> None:
    rungs = [run_downstream(HONEST[0], seed)[0] for seed in range(20)]
    assert HONEST[0].name == "seed"
    assert sum(1 for r in rungs if r in (1, 2)) >= 12  # typically one or two rungs
    assert sum(1 for r in rungs if r >= 3) <= 6  # a lucky jump now and then


@pytest.mark.parametrize("entry", ITERATING, ids=lambda e: e.name)
def test_iterating_improvers_feed_the_best_back_and_the_demo_sees_it(entry: Any) -> None:
    reached = []
    for seed in range(6):
        rung, levels = run_downstream(entry, seed)
        reached.append(rung)
        # The first request shows the seed solution (rung 0); later requests show what
        # the improver kept, and the demo recognises it from the code in the prompt.
        assert levels[0] == 0
        assert max(levels) >= 1
    assert statistics.mean(reached) >= 2.5  # they climb further than the seed improver


def test_the_improver_ladder_is_ordered_by_what_the_improvers_achieve() -> None:
    means = [statistics.mean(achievements(entry)) for entry in HONEST]
    named = dict(zip([e.name for e in HONEST], means, strict=True))
    # The budget-using rungs climb strictly; every iterating improver beats them.
    assert named["seed"] < named["two_batches"] < named["whole_budget"] < named["two_rounds"]
    assert min(named[e.name] for e in ITERATING) >= named["whole_budget"]
    assert named["seed"] < 0.8 and min(named[e.name] for e in ITERATING) > 0.9


class ImproverRungUtility:
    """A stand-in meta-utility: an improver scores by its rung on the improver ladder."""

    str = (
        "def meta_utility(improve_str):\n"
        "    '''Runs improve_algorithm from improve_str on a downstream task and returns\n"
        "    the mean utility of what it produces (see the budgets below).'''\n"
    )

    def __init__(self, budget: int = 25) -> None:
        self.budget = budget
        self.calls = 0

    def __call__(self, solution: Any) -> float:
        self.calls += 1
        if self.calls > self.budget:
            raise RuntimeError("meta-utility budget exceeded")
        rung = rung_of(solution, HONEST)
        return 0.0 if rung is None else (rung + 1) / len(HONEST)


@pytest.mark.parametrize("entry", HONEST, ids=lambda e: e.name)
def test_an_improver_improving_itself_is_seen_at_its_own_rung(entry: Any) -> None:
    lm = SyncLanguageModel(DemoBackend(seed=3, hostile_rate=0.0), budget=4, context="meta")
    improve = load(entry.source, "improve_algorithm")
    result = improve(entry.source, ImproverRungUtility(), lm)
    assert lm.levels[0] == entry.strength  # recognised from its own code in the prompt
    rung = rung_of(result, HONEST)
    assert rung is not None and rung >= entry.strength - 1  # keeps or finds a near rung
