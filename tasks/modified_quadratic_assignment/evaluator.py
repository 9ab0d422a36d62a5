"""Hidden evaluator: modified quadratic assignment (QAP with a preference term).

F (flows), D (distances) and P (preferences) are 15 x 15 matrices of uniform
[0, 1) numbers. An assignment a places facility i at location a[i]; its cost is

    cost(a) = sum_ij F[i, j] * D[a[i], a[j]] - 0.5 * sum_i P[i, a[i]]   (minimise)

The score maps the cost to [0, 1], higher is better, with two references
computed here from the instance's own random generator (so they are fixed per
instance and never shown to the solution):

    random   = mean cost of 1000 uniformly random permutations
    best     = best cost found by a best-improvement swap local search
               started from the 24 best of those random permutations
    score    = clip((random - cost) / (random - best), 0, 1)

An average random assignment scores 0, matching the local-search reference
scores 1, and beating it is capped at 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stop_tui.tasks.checks import permutation

N = 15
LAMBDA = 0.5
N_RANDOM = 1000
N_STARTS = 24


def costs(F: np.ndarray, D: np.ndarray, P: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """The cost of each row of ``perms`` (shape (k, N))."""
    placed = D[perms[:, :, None], perms[:, None, :]]
    flow = np.einsum("ij,kij->k", F, placed)
    preference = P[np.arange(N), perms].sum(axis=1)
    return flow - LAMBDA * preference  # type: ignore[no-any-return]


def swap_deltas(F: np.ndarray, D: np.ndarray, P: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Matrix of cost changes: entry (r, s) is cost(a with a[r], a[s] swapped) - cost(a)."""
    B = D[np.ix_(a, a)]
    Q = P[:, a]
    N_, M_ = F @ B.T, F.T @ B
    fr, fs = np.diag(F)[:, None], np.diag(F)[None, :]
    br, bs = np.diag(B)[:, None], np.diag(B)[None, :]
    nd, md, qd = np.diag(N_), np.diag(M_), np.diag(Q)
    rows = N_ + N_.T - nd[:, None] - nd[None, :]
    rows -= (fr - F.T) * (B.T - br) + (F - fs) * (bs - B)
    cols = M_ + M_.T - md[:, None] - md[None, :]
    cols -= (fr - F) * (B - br) + (F.T - fs) * (bs - B.T)
    both = (fr - fs) * (bs - br) + (F - F.T) * (B.T - B)
    linear = -LAMBDA * (Q + Q.T - qd[:, None] - qd[None, :])
    return rows + cols + both + linear  # type: ignore[no-any-return]


def _local_search(F: np.ndarray, D: np.ndarray, P: np.ndarray, start: np.ndarray) -> float:
    """Best-improvement pairwise-swap descent; the cost of the local optimum."""
    current = start.copy()
    while True:
        deltas = swap_deltas(F, D, P, current)
        r, s = divmod(int(np.argmin(deltas)), N)
        if deltas[r, s] >= -1e-12:
            return float(costs(F, D, P, current[None, :])[0])
        current[r], current[s] = current[s], current[r]


def generate(rng: np.random.Generator) -> tuple[list[Any], object]:
    F = rng.random((N, N))
    D = rng.random((N, N))
    P = rng.random((N, N))
    perms = np.argsort(rng.random((N_RANDOM, N)), axis=1)
    random_costs = costs(F, D, P, perms)
    starts = perms[np.argsort(random_costs)[:N_STARTS]]
    best = min(_local_search(F, D, P, start) for start in starts)
    hidden = {"random_cost": float(random_costs.mean()), "best_cost": best}
    return [F, D, P], hidden


def score(args: list[Any], hidden: Any, output: object) -> float:
    F, D, P = (np.asarray(matrix, dtype=np.float64) for matrix in args)
    assignment = permutation(output, N, "assignment")
    cost = float(costs(F, D, P, assignment[None, :])[0])
    span = hidden["random_cost"] - hidden["best_cost"]
    return float(np.clip((hidden["random_cost"] - cost) / span, 0.0, 1.0))
