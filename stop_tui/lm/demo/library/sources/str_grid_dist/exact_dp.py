from itertools import pairwise


def algorithm(t: str, dist: int):
    """Exact construction by dynamic programming over reachable distances.

    grid_dist(s, t) = mismatches(s, t) + changes(s) + changes(t). The last term
    is fixed, so we need a string s whose cost mismatches(s, t) + changes(s)
    equals dist - changes(t). Scanning left to right, reachable[i][c] holds
    every cost achievable by a prefix of length i + 1 ending in character c.
    If the target cost is reachable we rebuild a string that hits it exactly;
    otherwise we take the reachable cost closest to it.
    """
    n = len(t)
    if n == 0:
        return ""
    target = dist - sum(a != b for a, b in pairwise(t))
    letters = "AB"
    reachable: list[list[set[int]]] = [[set(), set()] for _ in range(n)]
    for c in range(2):
        reachable[0][c].add(int(letters[c] != t[0]))
    for i in range(1, n):
        for c in range(2):
            mismatch = int(letters[c] != t[i])
            for prev in range(2):
                step = mismatch + int(prev != c)
                reachable[i][c].update(cost + step for cost in reachable[i - 1][prev])

    # The reachable final cost closest to the target.
    best_cost, best_char = min(
        ((cost, c) for c in range(2) for cost in reachable[n - 1][c]),
        key=lambda pair: (abs(pair[0] - target), pair[0]),
    )
    # Walk back: at each position pick a predecessor that can still reach the cost.
    chars = [best_char]
    cost = best_cost
    for i in range(n - 1, 0, -1):
        c = chars[-1]
        cost -= int(letters[c] != t[i])
        for prev in range(2):
            if cost - int(prev != c) in reachable[i - 1][prev]:
                cost -= int(prev != c)
                chars.append(prev)
                break
    return "".join(letters[c] for c in reversed(chars))
