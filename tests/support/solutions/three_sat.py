"""Trusted reference solution for three_sat (ours, for tests): WalkSAT.

Incremental true-literal counts per clause; pick a random unsatisfied clause,
flip a variable that breaks no clause if there is one, else a random variable
of the clause with probability NOISE, else the one breaking the fewest clauses.
Returns the best assignment found if the flip budget or the time budget runs out.
"""

import random
import time

NOISE = 0.5
MAX_FLIPS = 200_000
TIME_BUDGET = 0.03


def algorithm(formula):
    start = time.perf_counter()
    rng = random.Random(20231004)
    n = max(abs(lit) for clause in formula for lit in clause)
    value = [False] + [rng.random() < 0.5 for _ in range(n)]
    occurs = {}  # literal -> clause indices
    for index, clause in enumerate(formula):
        for lit in clause:
            occurs.setdefault(lit, []).append(index)
    true_count = [sum(value[abs(lit)] == (lit > 0) for lit in clause) for clause in formula]
    unsat = [i for i, count in enumerate(true_count) if count == 0]
    where = {clause: pos for pos, clause in enumerate(unsat)}

    def make_unsat(clause):
        where[clause] = len(unsat)
        unsat.append(clause)

    def make_sat(clause):
        pos = where.pop(clause)
        last = unsat.pop()
        if last != clause:
            unsat[pos] = last
            where[last] = pos

    def breaks(var):
        lit = var if value[var] else -var  # the literal that is currently true
        return sum(1 for c in occurs.get(lit, ()) if true_count[c] == 1)

    def flip(var):
        now_true = -var if value[var] else var
        value[var] = not value[var]
        for c in occurs.get(now_true, ()):
            true_count[c] += 1
            if true_count[c] == 1:
                make_sat(c)
        for c in occurs.get(-now_true, ()):
            true_count[c] -= 1
            if true_count[c] == 0:
                make_unsat(c)

    best, best_unsat = list(value), len(unsat)
    for step in range(MAX_FLIPS):
        if not unsat:
            return value
        if len(unsat) < best_unsat:
            best, best_unsat = list(value), len(unsat)
        if step % 256 == 0 and time.perf_counter() - start > TIME_BUDGET:
            break
        clause = formula[unsat[rng.randrange(len(unsat))]]
        variables = [abs(lit) for lit in clause]
        costs = [breaks(v) for v in variables]
        if 0 in costs:
            var = variables[costs.index(0)]
        elif rng.random() < NOISE:
            var = rng.choice(variables)
        else:
            var = variables[costs.index(min(costs))]
        flip(var)
    return value if not unsat else best
