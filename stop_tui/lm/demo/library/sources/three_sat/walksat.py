import random


def algorithm(formula, max_flips=1000, noise=0.5):
    """WalkSAT: repeatedly repair a random unsatisfied clause.

    With probability `noise` flip a random variable of the clause, otherwise
    flip the variable whose flip breaks the fewest currently satisfied
    clauses. Stops after `max_flips` flips so it always returns in time.
    """
    rng = random.Random(0)
    n = max(abs(lit) for clause in formula for lit in clause)
    assignment = [False] + [rng.random() < 0.5 for _ in range(n)]
    occurrences: list[list[int]] = [[] for _ in range(n + 1)]
    for index, clause in enumerate(formula):
        for lit in clause:
            occurrences[abs(lit)].append(index)

    def satisfied(clause):
        return any(assignment[abs(lit)] == (lit > 0) for lit in clause)

    def break_count(var):
        assignment[var] = not assignment[var]
        broken = sum(not satisfied(formula[i]) for i in occurrences[var])
        assignment[var] = not assignment[var]
        return broken

    for _ in range(max_flips):
        unsatisfied = [clause for clause in formula if not satisfied(clause)]
        if not unsatisfied:
            break
        clause = rng.choice(unsatisfied)
        if rng.random() < noise:
            var = abs(rng.choice(clause))
        else:
            var = min((abs(lit) for lit in clause), key=break_count)
        assignment[var] = not assignment[var]
    return assignment
