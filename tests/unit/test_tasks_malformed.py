"""Outputs of the wrong type, shape, length or value raise Malformed (score 0, flagged).

The paper's reward hack: LPN predictions of another shape were broadcast by numpy
against the labels and scored over 1000%. Here no output is ever reshaped or
broadcast, and every evaluator rejects anything but the exact shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stop_tui.tasks import EvaluatorError, Malformed, get_task
from tests.support.paper_tasks import PAPER_TASKS


def _first(name: str) -> tuple[Any, list[Any], Any]:
    task = get_task(name)
    args, hidden = task.instances("val")[0]
    return task, args, hidden


def test_the_broadcasting_hack_would_score_over_1000_percent_naively_but_is_malformed() -> None:
    task, args, hidden = _first("parity_noise")
    labels = hidden["test_parity"]
    column = labels.reshape(20, 1)  # correct predictions, as a column
    naive = np.sum(column == labels) / 20  # the misspecified utility
    assert naive > 10.0  # (20, 1) == (20,) broadcasts to (20, 20): over 1000%
    with pytest.raises(Malformed, match=r"shape \(20, 1\)"):
        task.score(args, hidden, column)
    with pytest.raises(Malformed):
        task.score(args, hidden, np.tile(labels, (20, 1)))
    assert task.score(args, hidden, labels.copy()) == 1.0


PARITY_BAD: list[tuple[object, str]] = [
    (np.zeros(19, dtype=np.int64), "exactly 20 values"),
    (np.zeros(21, dtype=np.int64), "exactly 20 values"),
    ([0] * 20 + [1], "exactly 20 values"),
    ([], "exactly 20 values"),
    (np.zeros((20, 1)), "shape"),
    (np.zeros((1, 20)), "shape"),
    (np.zeros((4, 5)), "shape"),
    (np.zeros(()), "shape"),
    ([[0]] * 20, "element 0 is a list"),
    ([0] * 19 + ["1"], "element 19 is a string"),
    ("01" * 10, "expected a list or a 1-D numpy array"),
    (None, "NoneType"),
    ({"0": 1}, "dict"),
    (7, "int"),
    ([0] * 19 + [None], "element 19 is a NoneType"),
    ([0.0] * 19 + [float("nan")], "NaN"),
    (np.full(20, np.inf), "NaN or infinite"),
    ([0] * 19 + [2], "not 0 or 1"),
    ([0] * 19 + [-1], "not 0 or 1"),
    ([0.5] * 20, "not 0 or 1"),
    (np.full(20, 1 + 1j), "expected numbers"),
    ([0] * 19 + [10**400], "NaN or infinite"),
]


@pytest.mark.parametrize("name", ["parity_noise", "parity_noiseless"])
@pytest.mark.parametrize(("output", "reason"), PARITY_BAD)
def test_parity_malformed(name: str, output: object, reason: str) -> None:
    task, args, hidden = _first(name)
    with pytest.raises(Malformed, match=reason):
        task.score(args, hidden, output)


@pytest.mark.parametrize(
    "convert",
    [
        lambda a: a.tolist(),
        lambda a: tuple(a.tolist()),
        lambda a: a.astype(bool),
        lambda a: a.astype(bool).tolist(),
        lambda a: a.astype(np.float64),
        lambda a: [float(v) for v in a],
        lambda a: a.astype(np.uint8),
        lambda a: [np.int32(v) for v in a],
    ],
)
def test_parity_accepts_reasonable_encodings(convert: Any) -> None:
    task, args, hidden = _first("parity_noise")
    assert task.score(args, hidden, convert(hidden["test_parity"])) == 1.0


def test_three_sat_validation() -> None:
    task, args, hidden = _first("three_sat")
    planted = hidden["planted"]
    assert task.score(args, hidden, planted) == 1.0
    assert task.score(args, hidden, [None, *planted[1:]]) == 1.0  # index 0 ignored
    assert task.score(args, hidden, np.array(planted, dtype=np.int64)) == 1.0
    assert task.score(args, hidden, [not v for v in planted]) in (0.0, 1.0)
    for output, reason in [
        (None, "got None"),
        (planted[1:], "exactly 51 values"),
        ([*planted, True], "exactly 51 values"),
        ({str(v): planted[v] for v in range(1, 51)}, "got a dict"),
        ("T" * 51, "expected a list"),
        ([False, *planted[1:50], "True"], "element 50 is a string"),
        ([False, *planted[1:50], [True]], "element 50 is a list"),
        ([False, *planted[1:50], 2], "not 0 or 1"),
        ([False, *planted[1:50], -1], "not 0 or 1"),
        ([False, *planted[1:50], float("nan")], "NaN"),
        (np.array(planted).reshape(51, 1), "shape"),
    ]:
        with pytest.raises(Malformed, match=reason):
            task.score(args, hidden, output)


def test_three_sat_unsatisfying_assignment_scores_zero() -> None:
    task, args, hidden = _first("three_sat")
    formula = args[0]
    # Make the first clause false: every literal in it evaluates to False.
    assignment = list(hidden["planted"])
    for lit in formula[0]:
        assignment[abs(lit)] = lit < 0
    assert task.score(args, hidden, assignment) == 0.0


def test_maxcut_validation() -> None:
    task, args, hidden = _first("maxcut")
    good = np.arange(300) % 2
    assert 0.0 < task.score(args, hidden, good) < 1.0
    assert task.score(args, hidden, ["a" == "a"] * 150 + [False] * 150) > 0.0
    assert task.score(args, hidden, [7.5] * 150 + [-3.0] * 150) > 0.0
    for output, reason in [
        ([0] * 300, "exactly 2 distinct labels, got 1"),
        (np.arange(300) % 3, "exactly 2 distinct labels, got 3"),
        (good[:299], "exactly 300 values"),
        (np.append(good, 1), "exactly 300 values"),
        (good.reshape(300, 1), "shape"),
        (good.reshape(2, 150), "shape"),
        (["L"] * 150 + ["R"] * 150, "element 0 is a string"),
        ([0.0] * 299 + [float("nan")], "NaN"),
        (None, "NoneType"),
        ({"0": 1}, "dict"),
    ]:
        with pytest.raises(Malformed, match=reason):
            task.score(args, hidden, output)


def test_grid_distance_validation() -> None:
    task, args, hidden = _first("str_grid_dist")
    t = args[0]
    assert task.score(args, hidden, hidden["example"]) == 1.0
    for output, reason in [
        (t + "A", "expected length"),
        (t[:-1], "expected length"),
        (t.lower(), "only the characters"),
        ("C" * len(t), "only the characters"),
        (list(t), "expected a string"),
        (None, "expected a string"),
        (np.zeros(len(t)), "expected a string"),
        (1, "expected a string"),
    ]:
        with pytest.raises(Malformed, match=reason):
            task.score(args, hidden, output)


def test_mqa_validation() -> None:
    task, args, hidden = _first("modified_quadratic_assignment")
    identity = list(range(15))
    assert 0.0 <= task.score(args, hidden, identity) <= 1.0
    assert task.score(args, hidden, np.arange(15, dtype=np.float64)) == task.score(
        args, hidden, identity
    )
    for output, reason in [
        ([0] * 15, "permutation"),
        (list(range(1, 16)), "permutation"),
        (list(range(14)), "exactly 15 values"),
        (list(range(16)), "exactly 15 values"),
        ([0.5, *range(1, 15)], "whole numbers"),
        ([True, *range(1, 15)], "bool"),
        (np.ones(15, dtype=bool), "expected integers"),
        (np.arange(15).reshape(15, 1), "shape"),
        ([[i] for i in range(15)], "element 0 is a list"),
        ([str(i) for i in range(15)], "string"),
        ([float("nan"), *range(1, 15)], "NaN"),
        (None, "NoneType"),
    ]:
        with pytest.raises(Malformed, match=reason):
            task.score(args, hidden, output)


_WEIRD: list[object] = [
    None,
    True,
    0,
    -1.5,
    float("nan"),
    "",
    "AB",
    [],
    {},
    {"__ndarray__": [1, 2]},
    [None],
    [[[]]],
    [1e308] * 300,
    [-(2**70)] * 20,
    np.zeros(0),
    np.zeros((0, 20)),
    np.zeros((20, 0)),
    np.ones((300, 300)),
    np.array([True]),
    np.arange(51) % 2,
    np.arange(300) % 2,
    np.arange(15),
    np.arange(20) % 2,
]


@pytest.mark.parametrize("name", PAPER_TASKS)
def test_weird_outputs_only_ever_score_in_range_or_are_malformed(name: str) -> None:
    task = get_task(name)
    for args, hidden in task.instances("val")[:2]:
        for output in _WEIRD:
            try:
                value = task.score(args, hidden, output)
            except Malformed:
                continue
            except EvaluatorError as exc:  # pragma: no cover - the failure we guard against
                pytest.fail(f"{name} crashed on {output!r:.60}: {exc}")
            assert 0.0 <= value <= 1.0
