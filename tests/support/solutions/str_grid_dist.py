"""Trusted reference solution for str_grid_dist (ours, for tests): exact DP.

grid_dist(s, t) = mismatches(s, t) + changes(s) + changes(t); with t fixed we
need mismatches(s, t) + changes(s) == dist - changes(t). A DP over positions
keeps, for each last character, the set of reachable partial costs with a back
pointer, then rebuilds a string with exactly the needed cost.
"""

from itertools import pairwise


def algorithm(t: str, dist: int):
    n = len(t)
    need = dist - sum(a != b for a, b in pairwise(t))
    # reach[i][c] maps a cost of s[: i + 1] ending in c to the previous character.
    reach = [{"A": {}, "B": {}} for _ in range(n)]
    for c in "AB":
        reach[0][c][int(c != t[0])] = None
    for i in range(1, n):
        for c in "AB":
            here = int(c != t[i])
            for prev in "AB":
                step = here + int(prev != c)
                for cost in reach[i - 1][prev]:
                    reach[i][c].setdefault(cost + step, prev)
    # Exact if possible, otherwise the closest reachable cost.
    options = [(abs(cost - need), cost, c) for c in "AB" for cost in reach[n - 1][c]]
    _, cost, c = min(options)
    chars = []
    for i in range(n - 1, -1, -1):
        chars.append(c)
        prev = reach[i][c][cost]
        if prev is not None:
            cost -= int(c != t[i]) + int(prev != c)
            c = prev
    return "".join(reversed(chars))
