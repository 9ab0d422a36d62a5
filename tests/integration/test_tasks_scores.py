"""Seed and strong (trusted, ours) solutions scored by the hidden evaluators.

These run OUR code in-process through tests/support/solutions/harness.py; generated code
never does. Time limits are not enforced here (tests never depend on timing):
the measured, time-limited numbers are in docs/tasks.md.
"""

from __future__ import annotations

import numpy as np
import pytest

from stop_tui.tasks import get_task
from tests.support.solutions.harness import evaluate, roundtrip, strong_source

# (task, validation instances to run (None = all 20), lowest acceptable strong mean,
#  required margin strong - seed). Slow solutions run on fewer instances. Max-Cut's
#  seed (a pure-Python greedy) cuts well but takes seconds, far over the 0.5 s
#  limit, which is why it scores 0 in a timed evaluation; untimed, the local search
#  must merely not be worse.
CASES = [
    ("parity_noise", None, 0.9, 0.3),
    ("parity_noiseless", None, 0.95, 0.3),
    ("three_sat", 4, 0.99, 0.2),
    ("maxcut", 1, 0.55, -0.01),
    ("str_grid_dist", None, 0.99, 0.3),
    ("modified_quadratic_assignment", 4, 0.95, 0.02),
]


@pytest.mark.parametrize(("name", "limit", "strong_floor", "margin"), CASES)
def test_seed_and_strong_scores(
    name: str, limit: int | None, strong_floor: float, margin: float
) -> None:
    task = get_task(name)
    seed = evaluate(task, task.seed_solution, "val", enforce_time_limit=False, limit=limit)
    strong = evaluate(task, strong_source(name), "val", enforce_time_limit=False, limit=limit)
    for report in (seed, strong):
        assert all(0.0 <= value <= 1.0 for value in report.scores)
    assert all(flag == "" for flag in strong.flags), strong.flags
    assert strong.mean >= strong_floor
    assert strong.mean >= seed.mean + margin, (seed.mean, strong.mean)
    print(f"{name}: seed {seed.mean:.3f} (n={len(seed.scores)}), strong {strong.mean:.3f}")


def test_parity_seed_is_near_chance_and_strong_is_near_perfect_on_test_split() -> None:
    task = get_task("parity_noise")
    np.random.seed(0)  # the seed guesses with numpy's global generator
    seed = evaluate(task, task.seed_solution, "test", enforce_time_limit=False)
    strong = evaluate(task, strong_source(task.name), "test", enforce_time_limit=False)
    assert 0.4 <= seed.mean <= 0.6
    assert strong.mean > 0.9


def test_three_sat_seed_gives_up_with_none_which_is_flagged() -> None:
    # The paper's seed returns None after 1000 fruitless flips; that is not an
    # assignment, so it is malformed (scores 0) rather than a crash.
    task = get_task("three_sat")
    seed = evaluate(task, task.seed_solution, "val", enforce_time_limit=False, limit=4)
    for value, flag in zip(seed.scores, seed.flags, strict=True):
        assert (value == 1.0 and flag == "") or (value == 0.0 and "got None" in flag)


def test_maxcut_random_partition_scores_about_one_half() -> None:
    task = get_task("maxcut")
    args, hidden = task.instances("val")[0]
    rng = np.random.default_rng(0)
    values = [task.score(args, hidden, rng.integers(0, 2, 300)) for _ in range(20)]
    assert 0.48 < float(np.mean(values)) < 0.52
    # The complement of a partition cuts the same edges.
    labels = rng.integers(0, 2, 300)
    assert task.score(args, hidden, labels) == pytest.approx(task.score(args, hidden, 1 - labels))


def test_grid_distance_hidden_example_is_exact_and_partial_credit_is_bounded() -> None:
    task = get_task("str_grid_dist")
    for args, hidden in task.instances("test"):
        t = args[0]
        assert task.score(args, hidden, hidden["example"]) == 1.0
        flipped = "".join("B" if c == "A" else "A" for c in t)
        assert 0.0 <= task.score(args, hidden, flipped) <= 1.0


def test_mqa_scale_random_is_low_and_identity_is_below_local_search() -> None:
    task = get_task("modified_quadratic_assignment")
    rng = np.random.default_rng(1)
    randoms, strongs = [], []
    ns: dict[str, object] = {}
    exec(strong_source(task.name), ns)
    for args, hidden in task.instances("val")[:5]:
        assert hidden["best_cost"] < hidden["random_cost"]
        randoms += [task.score(args, hidden, rng.permutation(15)) for _ in range(20)]
        strongs.append(task.score(args, hidden, roundtrip(ns["algorithm"](*args))))  # type: ignore[operator]
    assert float(np.mean(randoms)) < 0.25  # most random permutations cost about the mean
    assert min(strongs) > 0.9
