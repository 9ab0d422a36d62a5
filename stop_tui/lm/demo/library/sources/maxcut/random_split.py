import numpy as np


def algorithm(adjacency_matrix):
    """Assign each node to a side by a fair coin flip.

    In expectation this cuts half of the total edge weight.
    """
    n_nodes = len(adjacency_matrix)
    rng = np.random.default_rng()
    partition = rng.integers(0, 2, n_nodes)
    partition[0], partition[-1] = 0, 1  # guarantee two distinct labels
    return partition.tolist()
