import numpy as np


def algorithm(F, D, P, lambda_value=0.5, n_starts=4):
    """2-swap local search from several starts, keeping the best assignment.

    The objective to minimise is sum_ij F[i, j] * D[a[i], a[j]]
    - lambda_value * sum_i P[i, a[i]]. From each start (the identity, then
    random permutations) we repeatedly apply the best swap of two facilities'
    locations until no swap lowers the cost. The cost of all n*(n-1)/2 swaps is
    computed with numpy in one go per step.
    """
    F = np.asarray(F, dtype=float)
    D = np.asarray(D, dtype=float)
    P = np.asarray(P, dtype=float)
    n = len(F)
    rng = np.random.default_rng(0)
    rows, cols = np.triu_indices(n, 1)

    def cost(a):
        return float((F * D[np.ix_(a, a)]).sum() - lambda_value * P[np.arange(n), a].sum())

    def swapped_costs(a):
        # One candidate assignment per pair (r, s): a with a[r] and a[s] exchanged.
        candidates = np.repeat(a[None, :], len(rows), axis=0)
        idx = np.arange(len(rows))
        candidates[idx, rows] = a[cols]
        candidates[idx, cols] = a[rows]
        flows = (F[None, :, :] * D[candidates[:, :, None], candidates[:, None, :]]).sum(axis=(1, 2))
        prefs = P[np.arange(n)[None, :], candidates].sum(axis=1)
        return flows - lambda_value * prefs, candidates

    best, best_cost = np.arange(n), float("inf")
    for start in range(n_starts):
        a = np.arange(n) if start == 0 else rng.permutation(n)
        current = cost(a)
        for _ in range(10 * n):
            costs, candidates = swapped_costs(a)
            k = int(np.argmin(costs))
            if costs[k] >= current - 1e-12:
                break
            a, current = candidates[k], float(costs[k])
        if current < best_cost:
            best, best_cost = a.copy(), current
    return best.tolist()
