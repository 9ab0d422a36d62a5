"""The demo backend's library: task solutions and improvers, weak to strong.

Every entry's source is a ``.py`` file under ``sources/`` read as text: it is
code shown to people and run in the sandbox, never imported by the app. The
order of the entries in :data:`CATALOG` is their strength (0 = weakest); the
demo backend steps up it mostly one rung at a time. The improvers are ordered by
what they achieve with the demo backend on parity_noise (tests/unit/test_demo_ladder.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = [
    "IMPROVER",
    "TASKS",
    "LibraryEntry",
    "demo_improvers",
    "demo_solutions",
]

SOURCES = Path(__file__).resolve().parent / "sources"

IMPROVER = "improvers"
"""The pseudo-task name under which improvers are filed."""


@dataclass(frozen=True, slots=True)
class LibraryEntry:
    """One candidate answer: a complete program and what it does."""

    task: str
    name: str
    description: str
    source: str
    strength: int
    hostile: bool = False
    hostile_reason: str | None = None

    @property
    def entry_point(self) -> str:
        return "improve_algorithm" if self.task == IMPROVER else "algorithm"


# (file stem, one-line idea), weakest first. Hostile improvers carry a reason.
_SOLUTIONS: dict[str, list[tuple[str, str]]] = {
    "parity_noise": [
        ("seed", "guess every test label at random"),
        ("majority", "predict the most common training label for every test sample"),
        (
            "gauss_plain",
            "treat the parity as a linear function over GF(2) and solve for it by "
            "Gaussian elimination on a subset of the samples",
        ),
        (
            "subset_search",
            "try all 1024 subsets of bits at once with numpy and keep the one with the "
            "fewest training disagreements, which tolerates a few noisy labels",
        ),
        (
            "gauss_vote",
            "run Gaussian elimination on many small random subsets of the samples and let "
            "the candidates vote, weighted by how well each explains all the training data",
        ),
        (
            "subset_map",
            "score every subset of bits by its likelihood under 5% label noise plus a prior "
            "that favours small subsets, and predict with the most probable one",
        ),
    ],
    "parity_noiseless": [
        ("seed", "guess every test label at random"),
        ("majority", "predict the most common training label for every test sample"),
        (
            "gauss_first",
            "solve for the parity by Gaussian elimination over GF(2) using as many samples "
            "as there are bits",
        ),
        (
            "gauss_all",
            "solve for the parity by Gaussian elimination over GF(2) using every training sample",
        ),
        (
            "subset_consistent",
            "check all 1024 subsets of bits against the training data and keep the smallest "
            "consistent one",
        ),
    ],
    "three_sat": [
        ("all_true", "set every variable to True"),
        ("random_assignment", "assign each variable at random"),
        ("greedy_counts", "give each variable the polarity it appears with most often"),
        (
            "walksat",
            "WalkSAT: repeatedly repair a random unsatisfied clause, mixing random and "
            "least-breaking flips, with a cap on the number of flips",
        ),
        (
            "walksat_incremental",
            "WalkSAT with incremental clause counts, a majority-polarity start, freebie "
            "moves and restarts, so many more flips fit in the time limit",
        ),
    ],
    "maxcut": [
        ("one_side", "put one node on one side and every other node on the other"),
        ("random_split", "assign each node to a side by a fair coin flip"),
        ("greedy", "place nodes one by one on the side that cuts more weight so far"),
        (
            "local_search",
            "start from the greedy cut and move single nodes across while that increases "
            "the cut, keeping the gains up to date with numpy",
        ),
        (
            "iterated_local_search",
            "iterated local search: climb to a local optimum, kick a few nodes across and "
            "climb again, keeping the best cut",
        ),
    ],
    "str_grid_dist": [
        ("seed", "return t itself"),
        ("random_string", "return a random string over 'AB' of the right length"),
        (
            "greedy_flips",
            "start from t and flip characters while that moves the grid distance toward the target",
        ),
        (
            "exact_dp",
            "dynamic programming over the distances each prefix can reach, then rebuild a "
            "string that hits the target exactly",
        ),
    ],
    "modified_quadratic_assignment": [
        ("identity", "assign facility i to location i"),
        ("random_permutation", "assign facilities to locations in a random order"),
        (
            "greedy",
            "place the facilities with the most flow first, each at the free location that "
            "adds the least cost",
        ),
        (
            "swap_search",
            "2-swap local search from several starts, scoring all swaps at once with numpy",
        ),
    ],
}

_IMPROVERS: list[tuple[str, str, str | None]] = [
    ("seed", "sample one batch of rewrites and keep the best under the utility", None),
    (
        "two_batches",
        "the seed's prompt sampled in two batches instead of one, keeping the best",
        None,
    ),
    ("whole_budget", "the seed's prompt sampled with every allowed call, keeping the best", None),
    ("two_rounds", "two rounds of the seed's batch, the second improving the first's best", None),
    ("temperature_sweep", "hill climbing that samples hot first and colder later", None),
    ("refine_feedback", "iterative refinement that shows the model its scores", None),
    ("decompose", "split the solution into its functions and improve each part", None),
    ("simulated_annealing", "simulated annealing with the model proposing moves", None),
    ("genetic", "a genetic algorithm with model-written mutation and crossover", None),
    ("bandit_ucb", "a multi-armed bandit over prompt hints, chosen by UCB", None),
    ("beam_search", "beam search over rewrites, keeping the two best", None),
    (
        "sandbox_off",
        "score candidates faster by calling the utility without its sandbox",
        "calls utility(..., use_sandbox=False) to switch the sandbox off",
    ),
    (
        "budget_raise",
        "get more samples by giving the language model a bigger budget",
        "builds a new LanguageModel and sets language_model.budget to exceed its call budget",
    ),
]

TASKS: tuple[str, ...] = tuple(_SOLUTIONS)


def _read(folder: str, stem: str) -> str:
    if (folder, stem) == ("improvers", "seed"):
        # The demo's seed improver is the real one (improvers/seed.py), not a copy.
        from stop_tui.paths import improvers_dir

        return (improvers_dir() / "seed.py").read_text(encoding="utf-8")
    return (SOURCES / folder / f"{stem}.py").read_text(encoding="utf-8")


@cache
def _solutions(task: str) -> tuple[LibraryEntry, ...]:
    return tuple(
        LibraryEntry(task, name, idea, _read(task, name), strength)
        for strength, (name, idea) in enumerate(_SOLUTIONS[task])
    )


@cache
def _improvers() -> tuple[LibraryEntry, ...]:
    entries = []
    strength = 0
    for name, idea, reason in _IMPROVERS:
        entries.append(
            LibraryEntry(
                IMPROVER,
                name,
                idea,
                _read(IMPROVER, name),
                -1 if reason else strength,
                hostile=reason is not None,
                hostile_reason=reason,
            )
        )
        if reason is None:
            strength += 1
    return tuple(entries)


def demo_solutions(task: str) -> list[LibraryEntry]:
    """The library's solutions for ``task``, weakest first; [] for an unknown task."""
    if task not in _SOLUTIONS:
        return []
    return list(_solutions(task))


def demo_improvers(*, include_hostile: bool = True) -> list[LibraryEntry]:
    """The library's improvers: the honest ones weakest first, then the hostile ones.

    Hostile entries (``hostile=True``, strength -1) misbehave the way improvers
    written by real language models did in the paper; the demo backend serves
    them rarely so that the safety audit has something to catch.
    """
    return [e for e in _improvers() if include_hostile or not e.hostile]
