import numpy as np


def algorithm(train_samples, train_parity, test_samples, noise_rate=0.05, p_bit=0.3):
    """Maximum a posteriori search over all subsets of bits.

    Every one of the 2**n_bits subsets is scored by its log-likelihood under
    label noise (each training error costs log((1 - noise) / noise)) plus a
    prior that favours small subsets (each chosen bit costs
    log((1 - p_bit) / p_bit)). The whole search is one vectorised matrix product.
    """
    train_samples = np.asarray(train_samples) % 2
    train_parity = np.asarray(train_parity).reshape(-1) % 2
    n_bits = train_samples.shape[1]
    codes = np.arange(2**n_bits)
    subsets = (codes[:, None] >> np.arange(n_bits)[None, :]) & 1
    train_predictions = (train_samples @ subsets.T) % 2
    errors = np.sum(train_predictions != train_parity[:, None], axis=0)
    error_cost = np.log((1 - noise_rate) / noise_rate)
    bit_cost = np.log((1 - p_bit) / p_bit)
    cost = errors * error_cost + subsets.sum(axis=1) * bit_cost
    best = subsets[int(np.argmin(cost))]
    return (np.asarray(test_samples) @ best) % 2
