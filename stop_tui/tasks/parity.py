"""Learning parity (with or without label noise): the generator and scorer the two
parity tasks' hidden evaluators share. Parent-side only, like ``checks``: the
sandbox never binds ``stop_tui/tasks``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from stop_tui.tasks.checks import flat_numbers, zero_one

N_BITS = 10
P_IN_SUBSET = 0.3
N_TRAIN = 100
N_TEST = 20

Generate = Callable[[np.random.Generator], tuple[list[Any], object]]


def generator(noise: float) -> Generate:
    """Instances whose training labels are flipped with probability ``noise``."""

    def generate(rng: np.random.Generator) -> tuple[list[Any], object]:
        subset = rng.binomial(1, P_IN_SUBSET, N_BITS).astype(np.int64)
        samples = rng.integers(0, 2, size=(N_TRAIN + N_TEST, N_BITS), dtype=np.int64)
        parity = (samples @ subset) % 2
        train_samples, test_samples = samples[:N_TRAIN], samples[N_TRAIN:]
        train_parity = parity[:N_TRAIN].copy()
        if noise > 0:
            train_parity ^= rng.binomial(1, noise, N_TRAIN).astype(np.int64)
        hidden = {"test_parity": parity[N_TRAIN:].copy(), "subset": subset}
        return [train_samples, train_parity, test_samples], hidden

    return generate


def score(args: list[Any], hidden: Any, output: object) -> float:
    predictions = zero_one(flat_numbers(output, N_TEST, "predictions"), "predictions")
    return float(np.mean(predictions == hidden["test_parity"]))
