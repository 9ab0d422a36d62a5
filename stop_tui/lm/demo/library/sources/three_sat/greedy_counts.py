def algorithm(formula):
    """Give each variable the polarity it appears with most often.

    A literal that occurs more often satisfies more clauses when made true.
    Cheap and better than random, but it does not look at the clauses it leaves
    unsatisfied.
    """
    n = max(abs(lit) for clause in formula for lit in clause)
    balance = [0] * (n + 1)
    for clause in formula:
        for lit in clause:
            balance[abs(lit)] += 1 if lit > 0 else -1
    return [False] + [balance[v] >= 0 for v in range(1, n + 1)]
