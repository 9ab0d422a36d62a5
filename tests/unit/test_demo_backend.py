"""The demo backend: determinism, recognition, labels and failure rates."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from stop_tui.lm.demo import (
    DEMO_DISPLAY_NAME,
    DEMO_LABEL,
    TASKS,
    DemoBackend,
    demo_improvers,
    demo_solutions,
    recognise,
)
from stop_tui.lm.types import Backend, ChatRequest
from stop_tui.paths import tasks_dir
from tests.support.demo import (
    META_UTILITY_TEXT,
    UTILITY_TEXT,
    extract_code,
    improve_prompt,
    load,
    parity_accuracy,
)

SYSTEM = "You are an expert computer scientist and programmer."


def task_request(task: str, level: int = 0, n: int = 6, temperature: float = 0.7) -> ChatRequest:
    solution = demo_solutions(task)[level].source
    return ChatRequest(
        model="demo",
        system=SYSTEM,
        user=improve_prompt(solution, UTILITY_TEXT[task]),
        n=n,
        temperature=temperature,
    )


def improver_request(level: int = 0, n: int = 6) -> ChatRequest:
    improver = demo_improvers(include_hostile=False)[level].source
    return ChatRequest(
        model="demo", system=SYSTEM, user=improve_prompt(improver, META_UTILITY_TEXT), n=n
    )


def code_of(text: str) -> str | None:
    """The one fenced block of an answer (nesting-aware, like the sandbox's extract_code)."""
    code = extract_code(text)
    if code is not None:
        # Exactly one top-level block: nothing but prose before it, nothing after it.
        assert text.rstrip().endswith("```"), text
        assert text.count("```python\n" + code) == 1
    return code


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_it_is_a_backend_and_says_it_is_scripted() -> None:
    backend = DemoBackend()
    assert isinstance(backend, Backend)
    assert backend.name == "demo"
    assert DemoBackend.display_name == DEMO_DISPLAY_NAME
    assert "scripted" in DEMO_DISPLAY_NAME and "not a language model" in DEMO_DISPLAY_NAME


async def test_result_shape_tokens_and_cost() -> None:
    request = task_request("parity_noise", n=4)
    result = await DemoBackend(seed=1).complete(request)
    assert len(result.texts) == 4
    assert result.usage_estimated is True
    assert result.cost == 0.0
    assert result.retries == 0
    assert result.prompt_tokens >= len(request.user) // 8
    assert result.completion_tokens >= sum(len(t) for t in result.texts) // 8


async def test_same_seed_and_request_give_the_same_answers() -> None:
    request = task_request("maxcut")
    first = await DemoBackend(seed=7).complete(request)
    second = await DemoBackend(seed=7).complete(request)
    assert first.texts == second.texts


async def test_a_repeated_request_or_another_seed_gives_other_answers() -> None:
    request = task_request("three_sat")
    backend = DemoBackend(seed=7)
    first = await backend.complete(request)
    again = await backend.complete(request)
    other_seed = await DemoBackend(seed=8).complete(request)
    assert again.texts != first.texts
    assert other_seed.texts != first.texts
    # The second occurrence is itself reproducible.
    replay = DemoBackend(seed=7)
    await replay.complete(request)
    assert (await replay.complete(request)).texts == again.texts


async def test_answers_do_not_depend_on_the_order_or_concurrency_of_other_requests() -> None:
    requests = [task_request(task, n=3) for task in TASKS] + [improver_request(n=3)]
    sequential = DemoBackend(seed=5)
    expected = [(await sequential.complete(r)).texts for r in requests]

    concurrent = DemoBackend(seed=5, latency=0.01)
    # Unrelated traffic first, then everything at once in reverse order.
    await concurrent.complete(ChatRequest(model="demo", system="", user="hello", n=2))
    results = await asyncio.gather(*(concurrent.complete(r) for r in reversed(requests)))
    assert [r.texts for r in reversed(results)] == expected


@pytest.mark.parametrize("task", TASKS)
def test_recognises_each_task_from_its_prompt(task: str) -> None:
    request = task_request(task)
    recognition = recognise(request.system, request.user)
    assert recognition.kind == "solution"
    assert recognition.task == task
    assert recognition.level == 0


@pytest.mark.parametrize("task", TASKS)
async def test_answers_a_task_prompt_with_that_tasks_code(task: str) -> None:
    backend = DemoBackend(seed=2, failure_rate=0.0, no_code_rate=0.0)
    result = await backend.complete(task_request(task))
    sources = {entry.source.rstrip() for entry in demo_solutions(task)}
    for text in result.texts:
        code = code_of(text)
        assert code is not None
        assert code.rstrip() in sources


def test_recognises_tasks_from_distinctive_words_alone() -> None:
    cases = {
        "Learn the parity of a hidden subset of bits; labels have noise.": "parity_noise",
        "Learn the parity of a hidden subset of bits, noiseless labels.": "parity_noiseless",
        "Solve this 3-SAT formula: each of the clauses has three literals.": "three_sat",
        "Max-Cut: split the nodes of the adjacency matrix into two sides.": "maxcut",
        "Return s such that grid_dist(s, t) == dist.": "str_grid_dist",
        "Quadratic assignment of 15 facilities to locations.": "modified_quadratic_assignment",
    }
    for text, task in cases.items():
        recognition = recognise("", text)
        assert (recognition.kind, recognition.task) == ("solution", task), text


def test_recognises_the_improver_prompt_and_its_level() -> None:
    for level in range(3):
        request = improver_request(level)
        recognition = recognise(request.system, request.user)
        assert (recognition.kind, recognition.level) == ("improver", level)


def test_recognises_the_level_of_the_solution_shown() -> None:
    for task in TASKS:
        for level in range(len(demo_solutions(task))):
            request = task_request(task, level=level)
            assert recognise(request.system, request.user).level == level


async def test_improver_prompt_gets_improver_code() -> None:
    backend = DemoBackend(seed=3, failure_rate=0.0, no_code_rate=0.0)
    result = await backend.complete(improver_request(n=6))
    for text in result.texts:
        code = code_of(text)
        assert code is not None and "def improve_algorithm(" in code
        compile(code, "<improver>", "exec")


async def test_anything_else_gets_a_polite_reply_without_code() -> None:
    request = ChatRequest(model="demo", system="", user="What is the capital of France?", n=3)
    result = await DemoBackend().complete(request)
    for text in result.texts:
        assert text.startswith(DEMO_LABEL)
        assert "```" not in text
        assert "not a language model" in text.splitlines()[0]


async def test_every_response_starts_with_the_scripted_label() -> None:
    backend = DemoBackend(seed=11, failure_rate=0.3, no_code_rate=0.3)
    requests = [task_request(t) for t in TASKS] + [improver_request()]
    for request in requests:
        for text in (await backend.complete(request)).texts:
            first_line = text.splitlines()[0]
            assert first_line == DEMO_LABEL
            assert "Scripted demo answer" in first_line
            assert len(first_line) < 80


async def test_failure_and_no_code_rates_are_roughly_honoured() -> None:
    backend = DemoBackend(seed=123, failure_rate=0.2, no_code_rate=0.1)
    request = task_request("parity_noise", level=5)  # answers are all fast parity solutions
    texts: list[str] = []
    for _ in range(100):
        texts.extend((await backend.complete(request)).texts)
    assert len(texts) == 600
    no_code = broken = syntax_errors = 0
    args = [np.zeros((100, 10), dtype=int), np.zeros(100, dtype=int), np.ones((20, 10), dtype=int)]
    for text in texts:
        code = code_of(text)
        if code is None:
            no_code += 1
            continue
        try:
            load(code, "algorithm")(*args)
        except SyntaxError:
            broken += 1
            syntax_errors += 1
        except Exception:  # e.g. a NameError when called
            broken += 1
    # Expected 60 without code and 120 broken; generous bounds, fixed seed.
    assert 30 <= no_code <= 95
    assert 75 <= broken <= 170
    assert 20 <= syntax_errors <= broken - 20  # both kinds of breakage occur


async def test_no_failures_when_the_rates_are_zero() -> None:
    backend = DemoBackend(seed=4, failure_rate=0.0, no_code_rate=0.0)
    result = await backend.complete(task_request("str_grid_dist", n=6))
    for text in result.texts:
        code = code_of(text)
        assert code is not None
        load(code, "algorithm")("ABBA", 5)


async def test_hostile_improvers_come_up_rarely() -> None:
    backend = DemoBackend(seed=9, failure_rate=0.0, no_code_rate=0.0, hostile_rate=0.05)
    hostile = {e.source.rstrip() for e in demo_improvers() if e.hostile}
    request = improver_request(level=2, n=6)
    codes = []
    for _ in range(50):
        codes.extend(code_of(t) for t in (await backend.complete(request)).texts)
    count = sum(1 for c in codes if c is not None and c.rstrip() in hostile)
    assert 3 <= count <= 35  # expected 15 of 300


async def test_answers_favour_stronger_entries_than_the_one_shown() -> None:
    backend = DemoBackend(seed=21, failure_rate=0.0, no_code_rate=0.0)
    entries = demo_solutions("three_sat")
    by_source = {e.source.rstrip(): e.strength for e in entries}
    for level in (0, 2):
        chosen = []
        for _ in range(20):
            result = await backend.complete(task_request("three_sat", level=level))
            chosen.extend(by_source[code_of(t).rstrip()] for t in result.texts)  # type: ignore[union-attr]
        above = sum(1 for s in chosen if s > level)
        assert above / len(chosen) > 0.7
        assert any(s <= level for s in chosen)  # sometimes weaker or the same


async def test_keeping_the_best_answer_under_the_utility_climbs() -> None:
    # The seed improver's loop, run with the demo backend and a real in-process utility.
    backend = DemoBackend(seed=0, failure_rate=0.1, no_code_rate=0.05)
    best = demo_solutions("parity_noise")[0].source
    best_score = parity_accuracy(load(best, "algorithm"), noise=0.05, n_instances=10)
    assert best_score < 0.7
    for _ in range(4):
        request = ChatRequest(
            model="demo",
            system=SYSTEM,
            user=improve_prompt(best, UTILITY_TEXT["parity_noise"]),
            n=6,
        )
        for text in (await backend.complete(request)).texts:
            code = code_of(text)
            try:
                score = parity_accuracy(load(code or "", "algorithm"), 0.05, n_instances=10)
            except Exception:
                continue
            if score > best_score:
                best, best_score = code or best, score
    assert best_score > 0.9


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_rate": 1.5},
        {"no_code_rate": -0.1},
        {"latency": -1.0},
        {"failure_rate": 0.6, "no_code_rate": 0.6},
    ],
)
def test_rejects_bad_options(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DemoBackend(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("task", TASKS)
def test_recognises_the_shipped_task_prompts(task: str) -> None:
    folder = tasks_dir() / task
    if not (folder / "utility.txt").is_file() or not (folder / "seed.py").is_file():
        pytest.skip(f"tasks/{task} is not in this checkout")
    utility_text = (folder / "utility.txt").read_text(encoding="utf-8")
    if utility_text.strip() == "TODO":
        pytest.skip(f"tasks/{task}/utility.txt is not written yet")
    seed = (folder / "seed.py").read_text(encoding="utf-8")
    recognition = recognise(SYSTEM, improve_prompt(seed, utility_text))
    assert (recognition.kind, recognition.task) == ("solution", task)


async def test_an_unknown_task_gets_the_generic_reply() -> None:
    user = improve_prompt(
        "def algorithm(graph, start):\n    return dijkstra(graph, start)\n",
        "def utility(algorithm_str):\n    '''Shortest paths in a road network.'''\n",
    )
    assert recognise(SYSTEM, user).kind == "other"
    result = await DemoBackend(seed=1).complete(
        ChatRequest(model="demo", system=SYSTEM, user=user, n=2)
    )
    for text in result.texts:
        assert text.startswith(DEMO_LABEL) and "```" not in text


def test_recognises_tasks_from_their_entry_point_signatures() -> None:
    cases = {
        "def algorithm(train_samples, train_parity, test_samples): labels have noise": "parity_noise",
        "Write def algorithm(formula) returning a satisfying assignment for the clauses.": "three_sat",
        "Write algorithm(adjacency_matrix) returning a partition.": "maxcut",
        "Write algorithm(t, dist) returning a string over 'AB'.": "str_grid_dist",
        "Write algorithm(F, D, P) returning the facilities' locations.": "modified_quadratic_assignment",
    }
    for text, task in cases.items():
        assert recognise("", text).task == task, text
