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


def algorithm(train_samples, train_parity, test_samples):
    """Solve for the parity with Gaussian elimination over all training samples.

    Without label noise the system is consistent, and with many more samples
    than bits it almost always has a unique solution: the hidden subset.
    """
    train_samples = np.asarray(train_samples)
    train_parity = np.asarray(train_parity).reshape(-1)
    x = solve_gf2(train_samples, train_parity)
    return (np.asarray(test_samples) @ x) % 2
