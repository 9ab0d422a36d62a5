import numpy as np


def solve_gf2(rows, labels):
    """Solve rows @ x = labels (mod 2) by Gaussian elimination (free variables = 0)."""
    a = np.array(rows, dtype=np.uint8) % 2
    b = np.array(labels, dtype=np.uint8) % 2
    n_rows, n_vars = a.shape
    pivots = []
    row = 0
    for col in range(n_vars):
        candidates = np.nonzero(a[row:, col])[0]
        if len(candidates) == 0:
            continue
        pivot = row + candidates[0]
        a[[row, pivot]] = a[[pivot, row]]
        b[[row, pivot]] = b[[pivot, row]]
        for other in range(n_rows):
            if other != row and a[other, col]:
                a[other] ^= a[row]
                b[other] ^= b[row]
        pivots.append(col)
        row += 1
        if row == n_rows:
            break
    x = np.zeros(n_vars, dtype=np.uint8)
    for r, col in enumerate(pivots):
        x[col] = b[r]
    return x


def algorithm(train_samples, train_parity, test_samples, n_rounds=40, subset_size=14):
    """Gaussian elimination on many random subsets of the training data, then a vote.

    A small subset is likely to contain no noisy label. Each candidate subset of
    bits is weighted by how well it explains the whole training set, and the
    test predictions are a weighted vote of the candidates.
    """
    rng = np.random.default_rng(12345)
    train_samples = np.asarray(train_samples) % 2
    train_parity = np.asarray(train_parity).reshape(-1) % 2
    test_samples = np.asarray(test_samples) % 2
    n_train = len(train_samples)
    size = min(subset_size, n_train)
    votes = np.zeros(len(test_samples))
    for _ in range(n_rounds):
        chosen = rng.choice(n_train, size=size, replace=False)
        x = solve_gf2(train_samples[chosen], train_parity[chosen])
        errors = int(np.sum((train_samples @ x) % 2 != train_parity))
        weight = np.exp(-errors)
        predictions = (test_samples @ x) % 2
        votes += weight * (2.0 * predictions - 1.0)
    return (votes > 0).astype(int)
