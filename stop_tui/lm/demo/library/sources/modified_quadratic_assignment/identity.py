def algorithm(F, D, P):
    """Assign facility i to location i."""
    return list(range(len(F)))
