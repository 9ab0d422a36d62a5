"""Hidden evaluator: string grid distance.

grid_dist(s, t) for two strings of equal length over "AB" counts the positions
where they differ plus the adjacent pairs that differ within s and within t.
An instance draws a length L in 1..30 and two random strings t and s; the
solution gets t and dist = grid_dist(s, t) and must return a string at exactly
that distance. Score: 1 for an exact hit, otherwise partial credit
0.5 - |grid_dist(answer, t) - dist| / (6 L), clamped to [0, 0.5].
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np

from stop_tui.tasks.checks import describe
from stop_tui.tasks.errors import Malformed

MIN_LENGTH = 1
MAX_LENGTH = 30


def grid_dist(s: str, t: str) -> int:
    total = sum(a != b for a, b in zip(s, t, strict=True))
    total += sum(a != b for a, b in pairwise(s))
    total += sum(a != b for a, b in pairwise(t))
    return total


def _random_string(rng: np.random.Generator, length: int) -> str:
    return "".join("AB"[int(bit)] for bit in rng.integers(0, 2, size=length))


def generate(rng: np.random.Generator) -> tuple[list[Any], object]:
    length = int(rng.integers(MIN_LENGTH, MAX_LENGTH + 1))
    t = _random_string(rng, length)
    s = _random_string(rng, length)
    return [t, grid_dist(s, t)], {"example": s}


def score(args: list[Any], hidden: Any, output: object) -> float:
    t, dist = args[0], int(args[1])
    if not isinstance(output, str):
        raise Malformed(f"answer: expected a string over 'AB', got {describe(output)}")
    if len(output) != len(t):
        raise Malformed(f"answer: expected length {len(t)} (the length of t), got {len(output)}")
    if not set(output) <= {"A", "B"}:
        raise Malformed("answer: may contain only the characters 'A' and 'B'")
    d = grid_dist(output, t)
    if d == dist:
        return 1.0
    return min(0.5, max(0.0, 0.5 - abs(d - dist) / (6 * len(t))))
