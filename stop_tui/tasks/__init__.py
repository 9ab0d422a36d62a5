"""Downstream tasks: seed solutions, public utilities and hidden evaluators.

The data lives in the top-level ``tasks/`` folder (shipped as package data);
this package loads it and evaluates solutions in the sandbox.
"""

from __future__ import annotations


class Malformed(Exception):
    """Raised by a hidden evaluator's ``score`` for an output of the wrong type,
    shape or length: the instance scores 0 and is flagged ``malformed: <reason>``."""
