import numpy as np


def algorithm(F, D, P, lambda_value=0.5):
    """Build the assignment one facility at a time, cheapest location first.

    The objective to minimise is sum_ij F[i, j] * D[a[i], a[j]]
    - lambda_value * sum_i P[i, a[i]]. Facilities with the most flow are placed
    first; each goes to the free location that adds the least cost given the
    facilities already placed, counting its preference bonus.
    """
    F = np.asarray(F, dtype=float)
    D = np.asarray(D, dtype=float)
    P = np.asarray(P, dtype=float)
    n = len(F)
    order = np.argsort(-(F.sum(axis=0) + F.sum(axis=1)))
    assignment = [-1] * n
    placed: list[int] = []
    free = set(range(n))
    for facility in order:
        best_location, best_cost = -1, float("inf")
        for location in sorted(free):
            cost = F[facility, facility] * D[location, location]
            cost -= lambda_value * P[facility, location]
            for other in placed:
                where = assignment[other]
                cost += F[facility, other] * D[location, where]
                cost += F[other, facility] * D[where, location]
            if cost < best_cost:
                best_location, best_cost = location, cost
        assignment[facility] = best_location
        placed.append(facility)
        free.remove(best_location)
    return assignment
