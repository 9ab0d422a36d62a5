def algorithm(adjacency_matrix):
    # Greedy: repeatedly place the (node, side) pair that cuts the most weight
    # towards the nodes already placed.
    n_nodes = len(adjacency_matrix)
    partition = [-1] * n_nodes
    unplaced = set(range(n_nodes))

    while unplaced:
        best_weight = -1
        best_node = None
        best_side = None
        for node in unplaced:
            for side in (0, 1):
                weight = 0
                for neighbor, w in enumerate(adjacency_matrix[node]):
                    if partition[neighbor] == 1 - side:
                        weight += w
                if weight > best_weight:
                    best_weight = weight
                    best_node = node
                    best_side = side
        partition[best_node] = best_side
        unplaced.remove(best_node)

    return partition
