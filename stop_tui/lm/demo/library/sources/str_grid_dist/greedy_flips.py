from itertools import pairwise


def grid_dist(s: str, t: str) -> int:
    ans = sum(a != b for a, b in zip(s, t, strict=True))
    ans += sum(a != b for a, b in pairwise(s))
    ans += sum(a != b for a, b in pairwise(t))
    return ans


def algorithm(t: str, dist: int):
    """Start from t and flip characters while that moves the distance toward dist.

    One left-to-right pass after another, keeping a flip only when it brings
    grid_dist(s, t) strictly closer to the target. Fast, but it can get stuck
    short of the target because some single flips change the distance by 3.
    """
    s = list(t)
    current = grid_dist("".join(s), t)
    improved = True
    while improved and current != dist:
        improved = False
        for i in range(len(s)):
            s[i] = "B" if s[i] == "A" else "A"
            candidate = grid_dist("".join(s), t)
            if abs(candidate - dist) < abs(current - dist):
                current = candidate
                improved = True
                if current == dist:
                    break
            else:
                s[i] = "B" if s[i] == "A" else "A"
    return "".join(s)
