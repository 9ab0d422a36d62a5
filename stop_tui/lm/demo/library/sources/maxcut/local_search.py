import numpy as np


def algorithm(adjacency_matrix, max_passes=1000):
    """Greedy start, then move single nodes across the cut while that helps.

    gain[v] is how much the cut grows if node v switches side: the weight to
    its own side minus the weight to the other side. Moving the node with the
    largest positive gain and updating the gains in O(n) per move ends in a
    local optimum where no single move improves the cut.
    """
    weights = np.asarray(adjacency_matrix, dtype=float)
    n_nodes = len(weights)
    order = np.argsort(-weights.sum(axis=1))
    partition = np.zeros(n_nodes, dtype=int)
    weight_to_side = np.zeros((2, n_nodes))
    for node in order:
        side = 0 if weight_to_side[0, node] <= weight_to_side[1, node] else 1
        partition[node] = side
        weight_to_side[side] += weights[node]

    sign = np.where(partition == 1, 1.0, -1.0)  # +1 / -1 per side
    # gain[v] = sum_u w[v,u] * [same side] - sum_u w[v,u] * [other side]
    gain = (weights @ sign) * sign
    for _ in range(max_passes * n_nodes):
        node = int(np.argmax(gain))
        if gain[node] <= 1e-9:
            break
        sign[node] = -sign[node]
        # Neighbours now on node's side gain 2*w (they could leave it), the others lose 2*w.
        gain += 2.0 * weights[node] * sign * sign[node]
        gain[node] = -gain[node]
    partition = (sign > 0).astype(int)
    if len(set(partition.tolist())) < 2:
        partition[0] = 1 - partition[0]
    return partition.tolist()
