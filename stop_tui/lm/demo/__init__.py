"""The ``demo`` backend: scripted, offline, deterministic. Not a language model.

See :mod:`stop_tui.lm.demo.backend` and docs/demo-model.md.
"""

from stop_tui.lm.demo.backend import (
    DEMO_DISPLAY_NAME,
    DEMO_LABEL,
    DEMO_MODEL,
    DemoBackend,
    estimate_tokens,
    step_weight,
)
from stop_tui.lm.demo.library import IMPROVER, TASKS, LibraryEntry, demo_improvers, demo_solutions
from stop_tui.lm.demo.recognise import Recognition, recognise

__all__ = [
    "DEMO_DISPLAY_NAME",
    "DEMO_LABEL",
    "DEMO_MODEL",
    "IMPROVER",
    "TASKS",
    "DemoBackend",
    "LibraryEntry",
    "Recognition",
    "demo_improvers",
    "demo_solutions",
    "estimate_tokens",
    "recognise",
    "step_weight",
]
