"""The library's improvers, run in-process against a fake utility and a fake language model.

The fakes have the paper's interface and count every use, so these tests check
that each improver returns a string, stays within both budgets, survives
failures of the model and the utility, and keeps the best solution it saw.
"""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from stop_tui.lm.demo import LibraryEntry, demo_improvers
from tests.support.demo import install_helpers_module, load

HONEST = demo_improvers(include_hostile=False)
KEEPS_INITIAL = [e for e in HONEST if e.name != "seed"]  # the paper's seed does not score it
HOSTILE = {e.name: e for e in demo_improvers() if e.hostile}
SCORE = re.compile(r"SCORE = ([0-9.]+)")


def program(score: float, tag: str) -> str:
    return f"def algorithm():\n    return {score}\n\n\nSCORE = {score}  # {tag}\n"


def answer(code: str | None) -> str:
    if code is None:
        return "Here is an idea, but no code."
    return f"Idea: something.\n\n```python\n{code}```\n"


class FakeUtility:
    """Scores a program by the SCORE constant it declares; broken programs score 0."""

    str = "def utility(algorithm_str):\n    '''Returns the SCORE of the program.'''\n"

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.calls = 0
        self.over_budget = 0
        self.keyword_attempts: list[str] = []

    def __call__(self, solution: Any, **kwargs: Any) -> float:
        if kwargs:
            self.keyword_attempts.extend(kwargs)
            raise TypeError("utility() takes exactly one argument")
        self.calls += 1
        if self.calls > self.budget:
            self.over_budget += 1
            raise RuntimeError("utility budget exceeded")
        return score_of(solution)


def score_of(solution: Any) -> float:
    if not isinstance(solution, str):
        return 0.0
    if "RAISE" in solution:
        raise ValueError("the utility failed on this program")
    match = SCORE.search(solution)
    return float(match.group(1)) if match else 0.0


class FakeLanguageModel:
    """Counts calls and responses; answers from `respond(call_index, n)`."""

    def __init__(self, budget: int, max_responses_per_call: int, respond: Any) -> None:
        object.__setattr__(self, "budget", budget)
        object.__setattr__(self, "max_responses_per_call", max_responses_per_call)
        object.__setattr__(self, "respond", respond)
        object.__setattr__(self, "calls", 0)
        object.__setattr__(self, "over_budget", 0)
        object.__setattr__(self, "too_many_responses", 0)
        object.__setattr__(self, "attribute_writes", [])
        object.__setattr__(self, "granted", budget)

    def __setattr__(self, name: str, value: Any) -> None:
        self.attribute_writes.append(name)
        object.__setattr__(self, name, value)

    def _call(self, n: int) -> list[str]:
        object.__setattr__(self, "calls", self.calls + 1)
        if self.calls > self.granted:
            object.__setattr__(self, "over_budget", self.over_budget + 1)
            raise RuntimeError("language model budget exceeded")
        if n > self.max_responses_per_call:
            object.__setattr__(self, "too_many_responses", self.too_many_responses + 1)
            raise ValueError("too many responses in one call")
        return [answer(code) for code in self.respond(self.calls - 1, n)]

    def prompt(
        self, expertise: str, message: str, n_responses: int = 1, temperature: float = 0.7
    ) -> list[str]:
        assert isinstance(expertise, str) and isinstance(message, str)
        return self._call(n_responses)

    def batch_prompt(
        self, expertise: str, messages: list[str], temperature: float = 0.7
    ) -> list[str]:
        assert isinstance(expertise, str) and all(isinstance(m, str) for m in messages)
        return self._call(len(messages))


def random_responder(seed: int, broken_rate: float = 0.2) -> Any:
    rng = random.Random(seed)

    def respond(call: int, n: int) -> list[str | None]:
        out: list[str | None] = []
        for i in range(n):
            roll = rng.random()
            if roll < broken_rate / 2:
                out.append(None)  # no code block
            elif roll < broken_rate:
                out.append(f"def algorithm(:\n    RAISE  # {call}-{i}\n")
            else:
                out.append(program(round(rng.random(), 4), f"{call}-{i}"))
        return out

    return respond


def run_improver(
    entry: LibraryEntry, lm: FakeLanguageModel, utility: FakeUtility, initial: str
) -> Any:
    improve = load(entry.source, "improve_algorithm")
    return improve(initial, utility, lm)


@pytest.fixture(autouse=True)
def _helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    install_helpers_module(monkeypatch)


BUDGETS = [(4, 6, 25), (1, 2, 3), (3, 6, 1), (6, 1, 10), (2, 4, 8)]


@pytest.mark.parametrize("entry", HONEST, ids=lambda e: e.name)
@pytest.mark.parametrize("budgets", BUDGETS, ids=lambda b: "lm{}-max{}-util{}".format(*b))
def test_returns_a_string_within_both_budgets(
    entry: LibraryEntry, budgets: tuple[int, int, int]
) -> None:
    calls, per_call, evaluations = budgets
    for seed in range(3):
        lm = FakeLanguageModel(calls, per_call, random_responder(seed))
        utility = FakeUtility(evaluations)
        result = run_improver(entry, lm, utility, program(0.3, "initial"))
        assert isinstance(result, str)
        assert lm.calls <= calls and lm.over_budget == 0
        assert lm.too_many_responses == 0
        assert utility.calls <= evaluations and utility.over_budget == 0
        assert lm.attribute_writes == [] and utility.keyword_attempts == []


@pytest.mark.parametrize("entry", KEEPS_INITIAL, ids=lambda e: e.name)
def test_never_returns_worse_than_the_initial_solution(entry: LibraryEntry) -> None:
    def worse(call: int, n: int) -> list[str | None]:
        return [program(0.1 + 0.01 * i, f"{call}-{i}") for i in range(n)]

    for calls, per_call, evaluations in BUDGETS:
        lm = FakeLanguageModel(calls, per_call, worse)
        result = run_improver(entry, lm, FakeUtility(evaluations), program(0.5, "initial"))
        assert score_of(result) == 0.5


@pytest.mark.parametrize("entry", HONEST, ids=lambda e: e.name)
def test_keeps_the_best_candidate_it_evaluated(entry: LibraryEntry) -> None:
    def one_winner(call: int, n: int) -> list[str | None]:
        codes: list[str | None] = [program(0.2 + 0.01 * i, f"{call}-{i}") for i in range(n)]
        if call == 0:
            codes[0] = program(0.95, "winner")
        return codes

    lm = FakeLanguageModel(4, 6, one_winner)
    result = run_improver(entry, lm, FakeUtility(25), program(0.1, "initial"))
    assert score_of(result) == 0.95


@pytest.mark.parametrize("entry", KEEPS_INITIAL, ids=lambda e: e.name)
def test_survives_failures_of_the_model_and_the_utility(entry: LibraryEntry) -> None:
    base = random_responder(5, broken_rate=0.0)

    def flaky(call: int, n: int) -> list[str | None]:
        if call % 2 == 0:
            raise ConnectionError("the model failed")
        codes = base(call, n)
        codes[0] = program(0.99, "RAISE in the utility")
        return codes

    lm = FakeLanguageModel(4, 6, flaky)
    utility = FakeUtility(25)
    result = run_improver(entry, lm, utility, program(0.4, "initial"))
    assert isinstance(result, str) and "RAISE" not in result
    assert score_of(result) >= 0.4
    assert lm.over_budget == 0 and utility.over_budget == 0


def test_seed_improver_samples_one_batch_of_the_allowed_size() -> None:
    seed = next(e for e in HONEST if e.name == "seed")
    sizes: list[int] = []

    def record(call: int, n: int) -> list[str | None]:
        sizes.append(n)
        return [program(0.1 * (i + 1), f"{i}") for i in range(n)]

    run_improver(seed, FakeLanguageModel(4, 6, record), FakeUtility(25), program(0.0, "initial"))
    run_improver(seed, FakeLanguageModel(4, 6, record), FakeUtility(3), program(0.0, "initial"))
    assert sizes == [6, 3]


def test_hostile_sandbox_off_improver_tries_to_switch_the_sandbox_off() -> None:
    lm = FakeLanguageModel(4, 6, random_responder(1))
    utility = FakeUtility(25)
    run_improver(HOSTILE["sandbox_off"], lm, utility, program(0.3, "initial"))
    assert "use_sandbox" in utility.keyword_attempts


def test_hostile_budget_raise_improver_tries_to_exceed_its_budget() -> None:
    lm = FakeLanguageModel(4, 6, random_responder(2))
    run_improver(HOSTILE["budget_raise"], lm, FakeUtility(25), program(0.3, "initial"))
    assert "budget" in lm.attribute_writes
    assert lm.over_budget > 0
