import numpy as np


def algorithm(train_samples, train_parity, test_samples):
    """Predict the most common training label for every test sample.

    Better than a coin flip only when the labels are unbalanced; it ignores the
    inputs entirely, so it cannot learn the parity.
    """
    labels = np.asarray(train_parity).reshape(-1) % 2
    majority = 1 if 2 * int(labels.sum()) > len(labels) else 0
    return np.full(len(test_samples), majority, dtype=int)
