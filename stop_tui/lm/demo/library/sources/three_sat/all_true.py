def algorithm(formula):
    """Set every variable to True.

    Satisfies each clause that has at least one positive literal; a random
    formula almost always has some all-negative clause, so this rarely solves it.
    """
    n = max(abs(lit) for clause in formula for lit in clause)
    return [True] * (n + 1)
