import numpy as np


def algorithm(train_samples, train_parity, test_samples):
    """Guess every test label at random (the task's starting point, about 50%)."""
    predictions = np.random.binomial(1, 0.5, len(test_samples))
    return predictions
