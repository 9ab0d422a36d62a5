"""Hidden evaluator: learning parity with noise.

A hidden subset of the 10 bits (each bit in it with probability 0.3) defines
the label: the parity (sum mod 2) of the sample's bits in the subset.
Training labels are flipped with probability 0.05; test labels are clean.
Score: the fraction of the 20 test samples predicted correctly.
"""

from stop_tui.tasks.parity import generator, score

NOISE = 0.05
generate = generator(NOISE)

__all__ = ["NOISE", "generate", "score"]
