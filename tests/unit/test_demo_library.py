"""The demo library: every program compiles, the solutions are as strong as their rank says,
and the honest improvers use only the paper's interface.

The task solutions run in-process here only because they are this project's own
trusted code; the app always runs them in the sandbox.
"""

from __future__ import annotations

import ast
import itertools

import numpy as np
import pytest

from stop_tui.lm.demo import IMPROVER, TASKS, LibraryEntry, demo_improvers, demo_solutions
from stop_tui.paths import improvers_dir
from tests.support.demo import (
    cut_fraction,
    grid_dist,
    load,
    load_entry,
    maxcut_instance,
    mqa_cost,
    parity_accuracy,
    sat_instance,
    satisfies,
)
from tests.support.paper_tasks import PAPER_TASKS

ALL_ENTRIES = [e for t in TASKS for e in demo_solutions(t)] + demo_improvers()
SOLUTION_IMPORTS = {"numpy", "random", "math", "itertools", "copy", "collections", "heapq"}
FORBIDDEN_NAMES = {"open", "exec", "eval", "__import__", "compile", "input"}


def by_name(task: str) -> dict[str, LibraryEntry]:
    return {e.name: e for e in demo_solutions(task)}


@pytest.mark.parametrize("entry", ALL_ENTRIES, ids=lambda e: f"{e.task}/{e.name}")
def test_every_source_compiles_and_defines_its_entry_point(entry: LibraryEntry) -> None:
    tree = ast.parse(entry.source)
    compile(tree, entry.name, "exec")
    names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert entry.entry_point in names
    assert entry.description and not entry.description.endswith(".")


@pytest.mark.parametrize(
    "entry", [e for t in TASKS for e in demo_solutions(t)], ids=lambda e: f"{e.task}/{e.name}"
)
def test_solutions_use_no_threads_processes_files_or_network(entry: LibraryEntry) -> None:
    tree = ast.parse(entry.source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert {a.name.split(".")[0] for a in node.names} <= SOLUTION_IMPORTS
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] in SOLUTION_IMPORTS
        elif isinstance(node, ast.Name):
            assert node.id not in FORBIDDEN_NAMES


def test_catalogue_is_ordered_and_complete() -> None:
    assert set(TASKS) == set(PAPER_TASKS)
    for task in TASKS:
        entries = demo_solutions(task)
        assert len(entries) >= 4
        assert [e.strength for e in entries] == list(range(len(entries)))
        assert not any(e.hostile for e in entries)
    honest = demo_improvers(include_hostile=False)
    assert [e.strength for e in honest] == list(range(len(honest)))
    assert honest[0].name == "seed" and len(honest) >= 8
    assert demo_solutions("no_such_task") == []


def test_seed_improver_file_is_the_library_seed() -> None:
    shipped = (improvers_dir() / "seed.py").read_text(encoding="utf-8")
    assert shipped == demo_improvers()[0].source
    assert "min(language_model.max_responses_per_call, utility.budget)" in shipped


def test_hostile_improvers_are_marked_with_a_reason() -> None:
    hostile = {e.name: e for e in demo_improvers() if e.hostile}
    assert set(hostile) == {"sandbox_off", "budget_raise"}
    for entry in hostile.values():
        assert entry.hostile_reason and entry.strength == -1
    assert "use_sandbox=False" in hostile["sandbox_off"].source
    assert "language_model.budget = " in hostile["budget_raise"].source
    assert "LanguageModel(" in hostile["budget_raise"].source


# -- the improvers' interface --------------------------------------------------------------

LM_ATTRIBUTES = {"prompt", "batch_prompt", "max_responses_per_call", "budget"}
UTILITY_ATTRIBUTES = {"str", "budget"}
LM_KEYWORDS = {"prompt": {"n_responses", "temperature"}, "batch_prompt": {"temperature"}}
IMPROVER_IMPORTS = {"helpers", "math", "random", "re", "itertools", "collections", "heapq"}


def interface_violations(source: str) -> list[str]:
    """Every use of language_model / utility outside the paper's interface."""
    problems = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            problems += [f"imports {m}" for m in modules if m.split(".")[0] not in IMPROVER_IMPORTS]
            if isinstance(node, ast.ImportFrom) and node.module == "helpers":
                problems += [
                    f"imports helpers.{a.name}" for a in node.names if a.name != "extract_code"
                ]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner, attribute = node.value.id, node.attr
            if owner == "language_model" and attribute not in LM_ATTRIBUTES:
                problems.append(f"language_model.{attribute}")
            if owner == "utility" and attribute not in UTILITY_ATTRIBUTES:
                problems.append(f"utility.{attribute}")
            if owner in {"language_model", "utility"} and not isinstance(node.ctx, ast.Load):
                problems.append(f"assigns {owner}.{attribute}")
        elif isinstance(node, ast.Name) and node.id in {"language_model", "utility"}:
            if not isinstance(node.ctx, ast.Load):
                problems.append(f"rebinds {node.id}")
        elif isinstance(node, ast.Call):
            func = node.func
            calls_utility = isinstance(func, ast.Name) and func.id == "utility"
            if calls_utility and (len(node.args) != 1 or node.keywords):
                problems.append("calls utility with other than one positional argument")
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "language_model"
                and func.attr in LM_KEYWORDS
            ):
                extra = {k.arg for k in node.keywords} - LM_KEYWORDS[func.attr]
                problems += [
                    f"language_model.{func.attr}({k}=...)" for k in sorted(map(str, extra))
                ]
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            problems.append(f"uses {node.id}")
    if "use_sandbox" in source:
        problems.append("mentions use_sandbox")
    return problems


@pytest.mark.parametrize("entry", demo_improvers(include_hostile=False), ids=lambda e: e.name)
def test_honest_improvers_use_only_the_allowed_interface(entry: LibraryEntry) -> None:
    assert entry.task == IMPROVER
    assert interface_violations(entry.source) == []


@pytest.mark.parametrize("entry", [e for e in demo_improvers() if e.hostile], ids=lambda e: e.name)
def test_the_interface_check_catches_the_hostile_improvers(entry: LibraryEntry) -> None:
    assert interface_violations(entry.source) != []


# -- the solutions' strength -----------------------------------------------------------------


def test_parity_noise_strong_solutions_beat_90_percent_and_weak_ones_do_not() -> None:
    entries = by_name("parity_noise")
    scores = {
        name: parity_accuracy(load_entry(entry), noise=0.05, n_instances=40)
        for name, entry in entries.items()
    }
    for strong in ("subset_search", "gauss_vote", "subset_map"):
        assert scores[strong] > 0.9, scores
    for weak in ("seed", "majority"):
        assert scores[weak] < 0.7, scores
    assert scores["gauss_plain"] < 0.9, scores  # no noise handling
    assert scores["gauss_plain"] > scores["majority"], scores


def test_parity_noiseless_solutions() -> None:
    entries = by_name("parity_noiseless")
    scores = {
        name: parity_accuracy(load_entry(entry), noise=0.0, n_instances=40)
        for name, entry in entries.items()
    }
    assert scores["gauss_all"] > 0.97 and scores["subset_consistent"] > 0.97, scores
    assert scores["seed"] < 0.7 and scores["majority"] < 0.7, scores
    assert scores["majority"] < scores["gauss_first"] < scores["gauss_all"], scores


def test_walksat_solves_most_planted_instances() -> None:
    entries = by_name("three_sat")
    formulas = [sat_instance(np.random.default_rng([11, i])) for i in range(20)]
    solved = {
        name: sum(satisfies(f, load_entry(entry)(f)) for f in formulas)
        for name, entry in entries.items()
    }
    assert solved["walksat"] >= 16, solved
    assert solved["walksat_incremental"] >= 19, solved
    assert solved["all_true"] <= 2 and solved["random_assignment"] <= 2, solved


def test_maxcut_local_search_beats_greedy_and_random() -> None:
    entries = by_name("maxcut")
    graphs = [maxcut_instance(np.random.default_rng([13, i])) for i in range(3)]
    mean = {
        name: float(np.mean([cut_fraction(g, load_entry(entry)(g)) for g in graphs]))
        for name, entry in entries.items()
    }
    assert mean["one_side"] < 0.1, mean
    assert 0.45 < mean["random_split"] < 0.55, mean
    assert mean["local_search"] > mean["greedy"] > mean["random_split"], mean
    assert mean["local_search"] > mean["random_split"] + 0.03, mean
    assert mean["iterated_local_search"] > mean["local_search"], mean


def test_exact_grid_distance_construction_is_exact() -> None:
    exact = load_entry(by_name("str_grid_dist")["exact_dp"])
    for n in range(1, 8):
        for t in map("".join, itertools.product("AB", repeat=n)):
            reachable = {grid_dist("".join(s), t) for s in itertools.product("AB", repeat=n)}
            for dist in range(3 * n + 2):
                s = exact(t, dist)
                best_gap = min(abs(d - dist) for d in reachable)
                assert abs(grid_dist(s, t) - dist) == best_gap, (t, dist, s)
    rng = np.random.default_rng(17)
    for _ in range(200):
        n = int(rng.integers(1, 31))
        t = "".join(rng.choice(list("AB"), n))
        target = grid_dist("".join(rng.choice(list("AB"), n)), t)
        assert grid_dist(exact(t, target), t) == target


def test_grid_distance_ladder() -> None:
    entries = by_name("str_grid_dist")
    rng = np.random.default_rng(19)
    cases = []
    for _ in range(100):
        n = int(rng.integers(1, 31))
        t = "".join(rng.choice(list("AB"), n))
        cases.append((t, grid_dist("".join(rng.choice(list("AB"), n)), t)))
    exact_rate = {
        name: float(np.mean([grid_dist(load_entry(e)(t, d), t) == d for t, d in cases]))
        for name, e in entries.items()
    }
    assert exact_rate["exact_dp"] == 1.0
    assert exact_rate["seed"] < exact_rate["greedy_flips"], exact_rate
    assert exact_rate["random_string"] < exact_rate["greedy_flips"], exact_rate


def test_quadratic_assignment_ladder() -> None:
    entries = by_name("modified_quadratic_assignment")
    instances = [np.random.default_rng([23, i]).random((3, 15, 15)) for i in range(8)]
    mean = {
        name: float(np.mean([mqa_cost(F, D, P, load_entry(e)(F, D, P)) for F, D, P in instances]))
        for name, e in entries.items()
    }
    assert mean["swap_search"] < mean["greedy"] < mean["identity"], mean
    assert mean["swap_search"] < mean["random_permutation"], mean


def test_load_rejects_nothing_silently() -> None:
    with pytest.raises(SyntaxError):
        load("def algorithm(:\n    pass\n", "algorithm")
