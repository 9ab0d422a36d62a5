def algorithm(adjacency_matrix):
    """Put node 0 on one side and every other node on the other.

    A valid partition (two distinct labels) that cuts only the edges of
    node 0: a baseline to beat.
    """
    n_nodes = len(adjacency_matrix)
    return [1] + [0] * (n_nodes - 1)
