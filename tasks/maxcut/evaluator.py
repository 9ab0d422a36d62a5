"""Hidden evaluator: weighted Max-Cut on dense random graphs.

300 nodes; each pair is joined with probability 0.4 by an edge of integer
weight 1..10 (uniform). Score: the weight of the edges crossing the partition
divided by the total edge weight, in [0, 1]. A uniformly random partition cuts
about half of the weight (0.5); a good local search reaches about 0.55.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stop_tui.tasks.checks import flat_numbers
from stop_tui.tasks.errors import Malformed

N_NODES = 300
P_EDGE = 0.4
MAX_WEIGHT = 10


def generate(rng: np.random.Generator) -> tuple[list[Any], object]:
    edges = np.triu(rng.random((N_NODES, N_NODES)) < P_EDGE, k=1)
    weights = rng.integers(1, MAX_WEIGHT + 1, size=(N_NODES, N_NODES))
    upper = np.where(edges, weights, 0).astype(np.float64)
    adjacency = upper + upper.T
    return [adjacency], {"total_weight": float(upper.sum())}


def score(args: list[Any], hidden: Any, output: object) -> float:
    labels = flat_numbers(output, N_NODES, "partition")
    distinct = np.unique(labels)
    if distinct.size != 2:
        raise Malformed(f"partition: expected exactly 2 distinct labels, got {distinct.size}")
    adjacency = np.asarray(args[0], dtype=np.float64)
    side = labels == distinct[0]
    cut = float(adjacency[np.ix_(side, ~side)].sum())
    return cut / float(hidden["total_weight"])
