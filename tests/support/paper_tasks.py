"""The paper's six tasks, written out once for the tests (independently of the code
that lists them, so a missing task is caught)."""

PAPER_TASKS: tuple[str, ...] = (
    "parity_noise",
    "parity_noiseless",
    "three_sat",
    "maxcut",
    "str_grid_dist",
    "modified_quadratic_assignment",
)
