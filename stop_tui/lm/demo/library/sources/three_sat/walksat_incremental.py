import random


def algorithm(formula, max_flips=20000, noise=0.4, restart_every=4000):
    """WalkSAT with incremental bookkeeping, a greedy start and restarts.

    Keeps, for every clause, the number of true literals and, for the whole
    formula, the list of unsatisfied clauses, so a flip costs only the clauses
    that contain the flipped variable. A variable whose flip breaks nothing is
    taken greedily ("freebie"); otherwise a random walk step or the least
    breaking variable. Restarts from the majority-polarity assignment with a
    little randomness if progress stalls.
    """
    rng = random.Random(0)
    n = max(abs(lit) for clause in formula for lit in clause)
    clauses = [tuple(clause) for clause in formula]
    occurrences: list[list[tuple[int, bool]]] = [[] for _ in range(n + 1)]
    balance = [0] * (n + 1)
    for index, clause in enumerate(clauses):
        for lit in clause:
            occurrences[abs(lit)].append((index, lit > 0))
            balance[abs(lit)] += 1 if lit > 0 else -1

    def start():
        values = [False] * (n + 1)
        for v in range(1, n + 1):
            majority = balance[v] >= 0
            values[v] = majority if rng.random() < 0.9 else not majority
        return values

    assignment = start()
    best = list(assignment)
    best_unsat = len(clauses) + 1

    def true_count(clause):
        return sum(assignment[abs(lit)] == (lit > 0) for lit in clause)

    def reset():
        counts = [true_count(clause) for clause in clauses]
        unsat = [i for i, c in enumerate(counts) if c == 0]
        where = {i: k for k, i in enumerate(unsat)}
        return counts, unsat, where

    counts, unsat, where = reset()

    def remove_unsat(i):
        k = where.pop(i)
        last = unsat.pop()
        if last != i:
            unsat[k] = last
            where[last] = k

    def breaks(var):
        # Clauses satisfied only by var's literal break when var flips.
        value = assignment[var]
        return sum(1 for i, positive in occurrences[var] if positive == value and counts[i] == 1)

    def flip(var):
        assignment[var] = not assignment[var]
        value = assignment[var]
        for i, positive in occurrences[var]:
            if positive == value:
                counts[i] += 1
                if counts[i] == 1:
                    remove_unsat(i)
            else:
                counts[i] -= 1
                if counts[i] == 0:
                    where[i] = len(unsat)
                    unsat.append(i)

    for step in range(max_flips):
        if len(unsat) < best_unsat:
            best_unsat = len(unsat)
            best = list(assignment)
            if best_unsat == 0:
                break
        if step and step % restart_every == 0:
            assignment = start()
            counts, unsat, where = reset()
            continue
        clause = clauses[unsat[rng.randrange(len(unsat))]]
        variables = [abs(lit) for lit in clause]
        scored = [(breaks(v), v) for v in variables]
        fewest = min(scored)[0]
        if fewest == 0 or rng.random() >= noise:
            var = rng.choice([v for b, v in scored if b == fewest])
        else:
            var = rng.choice(variables)
        flip(var)
    return best
