"""Work out what a prompt asks for: improve a task's solution, improve an improver, or other.

This is keyword matching on the prompt text (system + user), not understanding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

from stop_tui.lm.demo.library import IMPROVER, LibraryEntry, demo_improvers, demo_solutions
from stop_tui.lm.monitor_route import MONITOR_SYSTEM

__all__ = ["Recognition", "recognise"]

Kind = Literal["solution", "improver", "monitor", "other"]


@dataclass(frozen=True, slots=True)
class Recognition:
    """What the prompt asks for.

    ``task`` is the task name for ``kind == "solution"``, ``"improvers"`` for
    ``kind == "improver"`` and None otherwise. ``level`` is the strength of the
    strongest library entry whose code appears in the prompt, or -1 when none does.
    """

    kind: Kind
    task: str | None
    level: int = -1


# (pattern, weight): distinctive names weigh more than common words.
_TASK_WORDS: dict[str, list[tuple[str, int]]] = {
    "parity": [
        (r"parity", 3),
        (r"train_samples|train_parity|test_samples", 2),
        (r"\bbits?\b", 1),
    ],
    "three_sat": [
        (r"3-?sat|three_sat", 3),
        (r"\bclauses?\b", 2),
        (r"\bformula\b", 1),
        (r"algorithm\(formula\)", 2),
        (r"\bliterals?\b", 1),
        (r"satisf", 1),
    ],
    "maxcut": [
        (r"max[-_ ]?cut", 3),
        (r"adjacency", 2),
        (r"cut weight|cut_weight", 2),
        (r"\bpartition", 1),
    ],
    "str_grid_dist": [
        (r"grid_dist|grid distance|str_grid_dist", 3),
        (r"find_at_dist|algorithm\(t, dist\)", 2),
        (r"\"ab\"|'ab'", 1),
    ],
    "modified_quadratic_assignment": [
        (r"quadratic assignment|mqap|modified_quadratic_assignment", 3),
        (r"facilit(y|ies)", 2),
        (r"algorithm\(f, d, p\)", 2),
        (r"\bflow\b", 1),
        (r"preference", 1),
    ],
}
_MIN_TASK_SCORE = 3
_NOISELESS = re.compile(r"noiseless|noise-free|without (label )?noise|\bno (label )?noise")
_NOISY = re.compile(r"nois")


@cache
def _normalised_source(source: str) -> str:
    return _normalise(source)


def _normalise(text: str) -> str:
    """Code compared line by line, ignoring indentation changes and blank lines."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def _level(prompt: str, entries: list[LibraryEntry]) -> int:
    haystack = _normalise(prompt)
    matched = [e.strength for e in entries if _normalised_source(e.source) in haystack]
    return max(matched, default=-1)


def _task(lowered: str) -> str | None:
    scores: dict[str, int] = {}
    for name, words in _TASK_WORDS.items():
        scores[name] = sum(weight for pattern, weight in words if re.search(pattern, lowered))
    best = max(scores, key=lambda name: scores[name])
    if scores[best] < _MIN_TASK_SCORE:
        return None
    if best == "parity":
        if _NOISELESS.search(lowered):
            return "parity_noiseless"
        return "parity_noise" if _NOISY.search(lowered) else "parity_noiseless"
    return best


def recognise(system: str, user: str) -> Recognition:
    """Classify a prompt and find how strong the solution it shows already is."""
    if system.startswith(MONITOR_SYSTEM):
        return Recognition("monitor", None)
    text = f"{system}\n{user}"
    lowered = text.lower()
    if "improve_algorithm" in text and (
        "def improve_algorithm" in text or "meta" in lowered or "improver" in lowered
    ):
        return Recognition("improver", IMPROVER, _level(user, demo_improvers()))
    task = _task(lowered)
    if task is None:
        return Recognition("other", None)
    return Recognition("solution", task, _level(user, demo_solutions(task)))
