import random


def algorithm(formula):
    """Assign each variable True or False uniformly at random."""
    n = max(abs(lit) for clause in formula for lit in clause)
    return [False] + [random.random() < 0.5 for _ in range(n)]
