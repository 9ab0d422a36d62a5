import numpy as np


def solve_gf2(rows, labels):
    """Solve rows @ x = labels (mod 2) by Gaussian elimination.

    Free variables are set to 0 and inconsistent equations are ignored, so this
    always returns some 0/1 vector x.
    """
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
    """Learn the parity as a linear function over GF(2).

    Uses the first 20 training samples and trusts every label, so a single
    noisy label among them can corrupt the recovered subset.
    """
    train_samples = np.asarray(train_samples)
    train_parity = np.asarray(train_parity).reshape(-1)
    k = min(len(train_samples), 2 * train_samples.shape[1])
    x = solve_gf2(train_samples[:k], train_parity[:k])
    return (np.asarray(test_samples) @ x) % 2
