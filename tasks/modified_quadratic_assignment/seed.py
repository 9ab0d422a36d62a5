from copy import deepcopy
from random import randint, random

import numpy as np


def algorithm(F, D, P):
    # Simulated annealing over swaps of two facilities' locations.
    n = len(F)
    lambda_value = 0.5

    def objective(assignment):
        total = sum(F[i, j] * D[assignment[i], assignment[j]] for i in range(n) for j in range(n))
        total -= lambda_value * sum(P[i, assignment[i]] for i in range(n))
        return total

    def swap_two(assignment):
        i = randint(0, n - 1)
        j = randint(0, n - 1)
        while i == j:
            j = randint(0, n - 1)
        assignment[i], assignment[j] = assignment[j], assignment[i]

    max_iterations = 1000
    temperature = 1.0
    cooling_rate = 0.99

    assignment = list(range(n))
    best = deepcopy(assignment)
    best_value = objective(assignment)

    for _ in range(max_iterations):
        temperature *= cooling_rate
        if temperature == 0:
            break
        candidate = deepcopy(assignment)
        swap_two(candidate)
        candidate_value = objective(candidate)
        delta = candidate_value - objective(assignment)
        if delta < 0 or random() < np.exp(-delta / temperature):
            assignment = candidate
            if candidate_value < best_value:
                best = deepcopy(assignment)
                best_value = candidate_value

    return best
