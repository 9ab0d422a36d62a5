"""Strict validation of solution outputs, shared by the hidden evaluators.

An evaluator receives whatever the child sent back, decoded by the codec:
``numpy.ndarray`` of a numeric or bool dtype, or plain JSON values. Nothing is
coerced silently: a value of the wrong type, shape or length raises
:class:`~stop_tui.tasks.Malformed` with a reason a person can read. In
particular a 2-D array is never flattened or broadcast, so predictions of
another shape cannot inflate a score (the paper's reward hack).
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np

from stop_tui.tasks.errors import Malformed

_NUMERIC_KINDS = "biuf"  # bool, signed int, unsigned int, float (not complex, not object)


def describe(value: Any) -> str:
    """A short description of a value's type and shape, for error messages."""
    if isinstance(value, np.ndarray):
        return f"numpy array of dtype {value.dtype} and shape {tuple(value.shape)}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of length {len(value)}"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:20] + "..."
        return f"string {shown!r}"
    return type(value).__name__


def _is_scalar_number(item: Any) -> bool:
    # Python bool/int/float and numpy scalars; not str, not complex, not containers.
    return isinstance(item, (bool, np.bool_)) or (
        isinstance(item, (Integral, Real)) and not isinstance(item, complex)
    )


def flat_numbers(output: Any, length: int, what: str) -> np.ndarray:
    """``output`` as a 1-D float array of exactly ``length`` finite numbers.

    Accepts a 1-D numpy array of a bool/int/float dtype or a flat list/tuple of
    bools, ints and floats. Rejects other types, nested sequences, 2-D arrays
    (even of shape (length, 1)), strings, None and non-finite values.
    """
    if isinstance(output, np.ndarray):
        if output.dtype.kind not in _NUMERIC_KINDS:
            raise Malformed(f"{what}: expected numbers, got a {describe(output)}")
        if output.ndim != 1:
            raise Malformed(
                f"{what}: expected a flat sequence of {length} values, got a {describe(output)}"
            )
        values = output
    elif isinstance(output, (list, tuple)):
        if len(output) != length:
            raise Malformed(f"{what}: expected exactly {length} values, got {len(output)}")
        for index, item in enumerate(output):
            if not _is_scalar_number(item):
                raise Malformed(
                    f"{what}: element {index} is a {describe(item)}, expected a number or a bool"
                )
        values = np.asarray([_as_float(item) for item in output], dtype=float)
    else:
        raise Malformed(f"{what}: expected a list or a 1-D numpy array, got {describe(output)}")
    if values.shape != (length,):
        raise Malformed(f"{what}: expected exactly {length} values, got {values.shape[0]}")
    result = values.astype(float)
    if not np.all(np.isfinite(result)):
        raise Malformed(f"{what}: contains NaN or infinite values")
    return result


def _as_float(item: Any) -> float:
    try:
        return float(item)
    except OverflowError:
        # An integer too large for a float: keep it out of range rather than crash.
        return math.inf


def zero_one(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` (from :func:`flat_numbers`) as an int array, each exactly 0 or 1."""
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise Malformed(f"{what}: value {values[index]!r} at index {index} is not 0 or 1")
    return values.astype(np.int64)


def permutation(output: Any, n: int, what: str) -> np.ndarray:
    """``output`` as an int array that is exactly a permutation of ``range(n)``."""
    if isinstance(output, np.ndarray) and output.dtype.kind == "b":
        raise Malformed(f"{what}: expected integers, got a {describe(output)}")
    if isinstance(output, (list, tuple)):
        for index, item in enumerate(output):
            if isinstance(item, (bool, np.bool_)):
                raise Malformed(f"{what}: element {index} is a bool, expected an integer")
    values = flat_numbers(output, n, what)
    if not np.all(values == np.round(values)):
        raise Malformed(f"{what}: values must be whole numbers")
    ints = values.astype(np.int64)
    if sorted(ints.tolist()) != list(range(n)):
        raise Malformed(f"{what}: expected a permutation of range({n}) (each of 0..{n - 1} once)")
    return ints
