import numpy as np


def algorithm(adjacency_matrix, rounds=100, kick=20):
    """Iterated local search: climb, kick a few nodes across, climb again, keep the best.

    gain[v] is how much the cut grows if node v switches side. Single moves
    with the largest positive gain lead to a local optimum; then `kick` random
    nodes are switched to escape it and the climb repeats. The best cut seen
    over `rounds` rounds is returned.
    """
    weights = np.asarray(adjacency_matrix, dtype=float)
    n_nodes = len(weights)
    rng = np.random.default_rng(0)

    def climb(sign):
        gain = (weights @ sign) * sign
        while True:
            node = int(np.argmax(gain))
            if gain[node] <= 1e-9:
                return sign
            sign[node] = -sign[node]
            gain += 2.0 * weights[node] * sign * sign[node]
            gain[node] = -gain[node]

    def cut(sign):
        # Each cut edge contributes w * (1 - s_u * s_v) / 2; sum over ordered pairs / 2.
        return float((weights.sum() - sign @ weights @ sign) / 4)

    # Greedy start: each node opposite the heavier side of its placed neighbours.
    sign = np.zeros(n_nodes)
    for node in np.argsort(-weights.sum(axis=1)):
        sign[node] = -1.0 if weights[node] @ sign > 0 else 1.0
    sign = climb(sign)
    best, best_cut = sign.copy(), cut(sign)
    for _ in range(rounds):
        candidate = best.copy()
        flipped = rng.choice(n_nodes, size=min(kick, n_nodes), replace=False)
        candidate[flipped] = -candidate[flipped]
        candidate = climb(candidate)
        value = cut(candidate)
        if value > best_cut:
            best, best_cut = candidate, value
    partition = (best > 0).astype(int)
    if len(set(partition.tolist())) < 2:
        partition[0] = 1 - partition[0]
    return partition.tolist()
