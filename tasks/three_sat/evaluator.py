"""Hidden evaluator: random planted-satisfiable 3-SAT.

A hidden assignment of 50 variables is drawn first; clauses of 3 distinct
variables with random signs are drawn and kept only if the hidden assignment
satisfies them, until there are 200. Every formula is therefore satisfiable.
Score: 1 if the returned assignment satisfies every clause, else 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stop_tui.tasks.checks import describe, flat_numbers, zero_one
from stop_tui.tasks.errors import Malformed

N_VARS = 50
N_CLAUSES = 200


def generate(rng: np.random.Generator) -> tuple[list[Any], object]:
    planted = rng.random(N_VARS) < 0.5  # planted[v - 1] is variable v
    clauses: list[list[int]] = []
    while len(clauses) < N_CLAUSES:
        batch = 2 * N_CLAUSES
        variables = np.argsort(rng.random((batch, N_VARS)), axis=1)[:, :3] + 1
        positive = rng.random((batch, 3)) < 0.5
        satisfied = (planted[variables - 1] == positive).any(axis=1)
        for row, signs, keep in zip(variables, positive, satisfied, strict=True):
            if keep and len(clauses) < N_CLAUSES:
                clauses.append([int(v) if s else -int(v) for v, s in zip(row, signs, strict=True)])
    hidden = {"planted": [False, *(bool(x) for x in planted)]}
    return [clauses], hidden


def score(args: list[Any], hidden: Any, output: object) -> float:
    what = "assignment"
    if isinstance(output, (list, tuple)) and len(output) == N_VARS + 1 and output[0] is None:
        output = [False, *output[1:]]  # index 0 is ignored; None there is fine
    if output is None:
        raise Malformed(f"{what}: got None, expected a list of {N_VARS + 1} truth values")
    if isinstance(output, dict):
        raise Malformed(f"{what}: got a dict, expected a list of {N_VARS + 1} truth values")
    if not isinstance(output, (list, tuple, np.ndarray)):
        raise Malformed(
            f"{what}: expected a list of {N_VARS + 1} truth values, got {describe(output)}"
        )
    values = flat_numbers(output, N_VARS + 1, what)
    values[0] = 0.0  # index 0 is ignored
    truth = zero_one(values, what).astype(bool)
    formula = args[0]
    for clause in formula:
        if not any(truth[abs(lit)] == (lit > 0) for lit in clause):
            return 0.0
    return 1.0
