"""Shared helpers for the demo tests: instance generators and prompts (test-only code)."""

from __future__ import annotations

import itertools
import sys
import types
from typing import Any

import numpy as np

from stop_tui.lm.demo import LibraryEntry

# Short public-utility texts in the spirit of tasks/<name>/utility.txt.
UTILITY_TEXT: dict[str, str] = {
    "parity_noise": (
        "def utility(algorithm_str):\n"
        '    """Learning parity with noise: 10 bits, 100 training samples whose labels are\n'
        "    flipped with noise_level = 0.05, 20 test samples. Returns the mean accuracy of\n"
        '    algorithm(train_samples, train_parity, test_samples)."""\n'
    ),
    "parity_noiseless": (
        "def utility(algorithm_str):\n"
        '    """Learning parity without noise: 10 bits, 100 exactly labelled training\n'
        "    samples, 20 test samples. Returns the mean accuracy of\n"
        '    algorithm(train_samples, train_parity, test_samples)."""\n'
    ),
    "three_sat": (
        "def utility(algorithm_str):\n"
        '    """Random 3-SAT with 50 variables and 200 clauses. algorithm(formula) gets a list\n'
        "    of clauses, each with 3 literals, and returns an assignment. Returns the\n"
        '    fraction of formulas satisfied within the time limit."""\n'
    ),
    "maxcut": (
        "def utility(algorithm_str):\n"
        '    """Max-Cut on random weighted graphs: algorithm(adjacency_matrix) returns a\n'
        '    partition of the nodes. Returns the cut weight over the total weight."""\n'
    ),
    "str_grid_dist": (
        "def utility(algorithm_str):\n"
        '    """algorithm(t, dist) must return s with grid_dist(s, t) == dist, where grid_dist\n'
        '    counts mismatches plus adjacent changes. Returns 1 if exact."""\n'
    ),
    "modified_quadratic_assignment": (
        "def utility(algorithm_str):\n"
        '    """Modified quadratic assignment: place 15 facilities at 15 locations given\n'
        "    flow F, distance D and preference P matrices; algorithm(F, D, P) returns a\n"
        '    permutation. Lower sum F*D - 0.5 * preference is better."""\n'
    ),
}

SEED_IMPROVER_EXPERTISE = "You are an expert computer scientist and programmer."

META_UTILITY_TEXT = (
    "def meta_utility(improve_str):\n"
    '    """Evaluates the improver in improve_str: it defines\n'
    "    improve_algorithm(initial_solution, utility, language_model), which is run on\n"
    "    downstream tasks; at most 4 language-model calls with 6 responses each and 25\n"
    '    utility calls. Returns the mean downstream utility."""\n'
)


def improve_prompt(solution: str, utility_text: str) -> str:
    """The user message a seed-style improver sends."""
    return (
        f"Here is a solution to improve:\n```python\n{solution}\n```\n\n"
        f"It is scored by this utility function:\n```python\n{utility_text}\n```\n\n"
        "Return an improved solution. First propose an idea, then implement it."
    )


def extract_code(text: Any) -> Any:
    """The largest fenced code block of a response, fences nested (None if there is none).

    A line "```word" opens a block and a bare "```" closes one, so the code of an
    improver, whose prompts contain fenced blocks themselves, comes out whole.
    Lists map over.
    """
    if isinstance(text, list):
        return [extract_code(t) for t in text]
    if not isinstance(text, str):
        return None
    blocks: list[list[str]] = []
    current: list[str] = []
    depth = 0
    for line in text.split("\n"):
        if line.startswith("```"):
            if line[3:].strip():
                if depth > 0:
                    current.append(line)
                depth += 1
                continue
            if depth > 0:
                depth -= 1
                if depth == 0:
                    blocks.append(current)
                    current = []
                else:
                    current.append(line)
                continue
        if depth > 0:
            current.append(line)
    if not blocks:
        return None
    return "\n".join(max(blocks, key=lambda b: sum(len(x) + 1 for x in b)))


def install_helpers_module(monkeypatch: Any) -> None:
    """Make `from helpers import extract_code` work for library improvers run in tests."""
    module = types.ModuleType("helpers")
    module.extract_code = extract_code  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "helpers", module)


def load(source: str, entry_point: str) -> Any:
    """Define a (trusted, library) source in a fresh namespace and return its entry point."""
    namespace: dict[str, Any] = {"__name__": "demo_library_under_test"}
    exec(compile(source, "<library>", "exec"), namespace)
    return namespace[entry_point]


def load_entry(entry: LibraryEntry) -> Any:
    return load(entry.source, entry.entry_point)


# -- instance generators (the parameters of ARCHITECTURE.md and the tasks) -----------------


def parity_instance(rng: np.random.Generator, noise: float = 0.05) -> tuple[list[Any], np.ndarray]:
    n_bits, n_train, n_test = 10, 100, 20
    secret = rng.binomial(1, 0.3, n_bits)
    samples = rng.binomial(1, 0.5, (n_train + n_test, n_bits))
    labels = (samples @ secret) % 2
    train_labels = (labels[:n_train] + rng.binomial(1, noise, n_train)) % 2
    return [samples[:n_train], train_labels, samples[n_train:]], labels[n_train:]


def parity_accuracy(algorithm: Any, noise: float, n_instances: int = 30, seed: int = 0) -> float:
    accuracies = []
    for i in range(n_instances):
        args, answer = parity_instance(np.random.default_rng([seed, i]), noise)
        predictions = np.asarray(algorithm(*args)).reshape(-1)
        if predictions.shape != answer.shape:
            accuracies.append(0.0)
            continue
        accuracies.append(float(np.mean(predictions == answer)))
    return float(np.mean(accuracies))


def sat_instance(rng: np.random.Generator, n: int = 50, m: int = 200) -> list[list[int]]:
    """A random 3-SAT formula with a planted satisfying assignment."""
    planted = [False] + [bool(rng.random() < 0.5) for _ in range(n)]
    formula: list[list[int]] = []
    while len(formula) < m:
        variables = rng.choice(np.arange(1, n + 1), size=3, replace=False)
        clause = [int(v) if rng.random() < 0.5 else -int(v) for v in variables]
        if any(planted[abs(lit)] == (lit > 0) for lit in clause):
            formula.append(clause)
    return formula


def satisfies(formula: list[list[int]], assignment: Any) -> bool:
    if assignment is None or len(assignment) < 51:
        return False
    return all(any(bool(assignment[abs(lit)]) == (lit > 0) for lit in c) for c in formula)


def maxcut_instance(rng: np.random.Generator, n: int = 300) -> np.ndarray:
    weights = rng.integers(1, 11, (n, n)) * (rng.random((n, n)) < 0.4)
    upper = np.triu(weights, 1)
    return (upper + upper.T).astype(float)


def cut_fraction(weights: np.ndarray, partition: Any) -> float:
    labels = np.asarray(partition)
    assert len(labels) == len(weights) and len(set(labels.tolist())) == 2
    cut = weights[labels[:, None] != labels[None, :]].sum() / 2
    return float(cut / (weights.sum() / 2))


def grid_dist(s: str, t: str) -> int:
    assert isinstance(s, str) and len(s) == len(t) and set(s + t) <= set("AB")
    total = sum(a != b for a, b in zip(s, t, strict=True))
    total += sum(a != b for a, b in itertools.pairwise(s))
    total += sum(a != b for a, b in itertools.pairwise(t))
    return total


def mqa_cost(F: np.ndarray, D: np.ndarray, P: np.ndarray, assignment: Any) -> float:
    a = np.asarray(assignment, dtype=int)
    assert sorted(a.tolist()) == list(range(len(F)))
    return float((F * D[np.ix_(a, a)]).sum() - 0.5 * P[np.arange(len(F)), a].sum())
