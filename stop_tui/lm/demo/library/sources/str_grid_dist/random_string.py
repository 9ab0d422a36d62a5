import random


def algorithm(t: str, dist: int):
    """Return a random string over "AB" of the same length as t.

    Ignores dist: the grid distance of a random string is whatever it is.
    """
    return "".join(random.choice("AB") for _ in t)
