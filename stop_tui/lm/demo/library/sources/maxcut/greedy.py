import numpy as np


def algorithm(adjacency_matrix):
    """Place nodes one by one on the side that cuts more weight so far.

    Each node goes opposite to the heavier of its already-placed neighbours,
    which cuts at least half of the weight to earlier nodes. Vectorised with
    running per-side weight totals.
    """
    weights = np.asarray(adjacency_matrix, dtype=float)
    n_nodes = len(weights)
    # Heaviest nodes first: their decisions matter most.
    order = np.argsort(-weights.sum(axis=1))
    partition = np.zeros(n_nodes, dtype=int)
    weight_to_side = np.zeros((2, n_nodes))
    for node in order:
        side = 0 if weight_to_side[0, node] <= weight_to_side[1, node] else 1
        partition[node] = side
        weight_to_side[side] += weights[node]
    if len(set(partition.tolist())) < 2:
        partition[0] = 1 - partition[0]
    return partition.tolist()
