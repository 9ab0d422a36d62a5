import numpy as np


def algorithm(F, D, P):
    """Assign the facilities to the locations in a random order."""
    return np.random.permutation(len(F)).tolist()
