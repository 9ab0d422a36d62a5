import numpy as np


def algorithm(train_samples, train_parity, test_samples):
    """Try every subset of bits and keep the one with the fewest training errors.

    With 10 bits there are only 1024 candidate subsets, so all of them are
    scored at once with one matrix product. Noisy labels only add a few errors
    to the true subset, so it still wins.
    """
    train_samples = np.asarray(train_samples) % 2
    train_parity = np.asarray(train_parity).reshape(-1) % 2
    n_bits = train_samples.shape[1]
    codes = np.arange(2**n_bits)
    subsets = (codes[:, None] >> np.arange(n_bits)[None, :]) & 1  # (2**n_bits, n_bits)
    train_predictions = (train_samples @ subsets.T) % 2  # (n_train, 2**n_bits)
    errors = np.sum(train_predictions != train_parity[:, None], axis=0)
    best = subsets[int(np.argmin(errors))]
    return (np.asarray(test_samples) @ best) % 2
