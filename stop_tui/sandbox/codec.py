"""The value codec shared by the parent and the guest (stdlib + numpy only).

JSON values pass as they are. A ``numpy.ndarray`` of a numeric or bool dtype
travels as ``{"__ndarray__": <nested lists>, "dtype": "<str>", "shape": [...]}``;
arrays of more than ``BASE64_MIN_SIZE`` elements travel as
``{"__ndarray__": "<base64 of the raw bytes>", "dtype", "shape", "encoding":
"base64"}`` instead (formatting floats as JSON text costs about 1 µs each,
parsing a list of 1000 ints and building the array about 250 µs on a slow
machine, base64 about 50 µs). An integer array whose values all fit a narrower
integer type travels as that type's bytes, named in ``"wire"`` (e.g. int64
zeros and ones as one byte each), and is widened back to ``dtype`` on decoding;
``wire`` must be an integer type narrower than ``dtype`` that converts without
loss.
numpy scalars become Python scalars; tuples become lists. Anything else (object
arrays, sets, functions, custom classes, non-string dict keys) is refused with
:class:`CodecError`. Never pickle: decoding builds only JSON values and numeric
arrays, so a hostile message cannot run code in the reader.

Decoding is total: whatever a parsed JSON line holds, :func:`decode` returns
values or raises :class:`CodecError`, never another exception. An array's
dtype must be a plain numeric or bool type named as :func:`encode` names it,
its shape at most ``MAX_DIMS`` non-negative dimensions with at most
``MAX_ELEMENTS`` elements, checked against the data's length *before*
anything is allocated.

Messages are one JSON object per line (:func:`dumps_message` /
:func:`loads_message`); the *reader* checks the size of every line before
parsing it.
"""

from __future__ import annotations

import base64
import functools
import json
import math
from typing import Any

import numpy as np

NDARRAY_KEY = "__ndarray__"
BASE64_MIN_SIZE = 64
_NARROW = tuple(np.dtype(t) for t in ("u1", "i1", "u2", "i2", "u4", "i4"))
_ALLOWED_KINDS = frozenset("biuf")  # bool, signed int, unsigned int, float
_MAX_DEPTH = 64
MAX_DIMS = 32  # numpy's own limit is 64; no task needs more than 2
MAX_ELEMENTS = 1 << 24  # ~16.8 M elements: more than a 16 MB message can carry
_ARRAY_KEYS = (
    {NDARRAY_KEY, "dtype", "shape"},
    {NDARRAY_KEY, "dtype", "shape", "encoding"},
    {NDARRAY_KEY, "dtype", "shape", "encoding", "wire"},
)


class CodecError(ValueError):
    """A value that cannot travel between parent and child."""


def encode(value: Any, _depth: int = 0) -> Any:
    """Turn ``value`` into a JSON-ready structure (numpy arrays become tagged dicts)."""
    if _depth > _MAX_DEPTH:
        raise CodecError("value is nested too deeply")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _ALLOWED_KINDS:
            raise CodecError(f"numpy arrays of dtype {value.dtype} cannot be sent")
        shape = list(value.shape)
        if value.size > BASE64_MIN_SIZE:
            wire = _narrow(value)
            raw = np.ascontiguousarray(value if wire is None else value.astype(wire)).tobytes()
            text = base64.b64encode(raw).decode("ascii")
            tagged = {
                NDARRAY_KEY: text,
                "dtype": value.dtype.str,
                "shape": shape,
                "encoding": "base64",
            }
            if wire is not None:
                tagged["wire"] = wire.str
            return tagged
        return {NDARRAY_KEY: value.tolist(), "dtype": value.dtype.str, "shape": shape}
    if isinstance(value, np.generic):
        if value.dtype.kind not in _ALLOWED_KINDS:
            raise CodecError(f"numpy scalars of dtype {value.dtype} cannot be sent")
        return value.item()
    if isinstance(value, list | tuple):
        return [encode(item, _depth + 1) for item in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CodecError(f"dict keys must be strings, not {type(key).__name__}")
            if key == NDARRAY_KEY:
                raise CodecError(f"the dict key {NDARRAY_KEY!r} is reserved")
            out[key] = encode(item, _depth + 1)
        return out
    raise CodecError(f"values of type {type(value).__name__} cannot be sent")


def _narrow(value: np.ndarray) -> np.dtype[Any] | None:
    """The narrowest integer type holding every value of an integer array, if narrower."""
    if value.dtype.kind not in "iu" or value.dtype.itemsize == 1:
        return None
    low, high = int(value.min()), int(value.max())
    for wire in _NARROW:
        if wire.itemsize >= value.dtype.itemsize:
            return None
        info = np.iinfo(wire)
        if info.min <= low and high <= info.max and _widens(wire, value.dtype):
            return wire
    return None


def _widens(wire: np.dtype[Any], dtype: np.dtype[Any]) -> bool:
    """Whether every ``wire`` value converts to ``dtype`` without loss."""
    return (
        wire.kind in "iu"
        and dtype.kind in "iu"
        and wire.itemsize < dtype.itemsize
        and not (wire.kind == "i" and dtype.kind == "u")
    )


def decode(value: Any) -> Any:
    """Inverse of :func:`encode` on a parsed JSON structure.

    Total: anything that is not a value :func:`encode` could have produced
    raises :class:`CodecError` (numpy's errors, ``MemoryError`` and
    ``RecursionError`` included), never another exception.
    """
    try:
        return _decode(value, 0)
    except CodecError:
        raise
    except Exception as exc:  # a numpy or interpreter limit: still just malformed data
        raise CodecError(f"malformed value ({type(exc).__name__})") from exc


_JSON_SCALARS = frozenset({type(None), bool, int, float, str})


def _decode(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind in _JSON_SCALARS:
        return value
    if depth > _MAX_DEPTH:
        raise CodecError("value is nested too deeply")
    if kind is list:
        return [_decode(item, depth + 1) for item in value]
    if kind is dict:
        if NDARRAY_KEY in value:
            return _decode_array(value)
        return {key: _decode(item, depth + 1) for key, item in value.items()}
    raise CodecError(f"values of type {kind.__name__} are not JSON")


def _dtype(text: Any) -> np.dtype[Any]:
    """A plain numeric or bool dtype, named exactly as :func:`encode` names it."""
    if not isinstance(text, str) or len(text) > 8:
        raise CodecError("malformed array: bad dtype")
    return _parse_dtype(text)


@functools.lru_cache(maxsize=64)
def _parse_dtype(text: str) -> np.dtype[Any]:
    try:
        dtype = np.dtype(text)
    except Exception as exc:
        raise CodecError(f"malformed array: unknown dtype {text!r}") from exc
    if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise CodecError(f"arrays of dtype {dtype} are refused")
    if dtype.str != text:  # e.g. "float64" or "\x00": not what encode writes
        raise CodecError(f"malformed array: dtype {text!r} is not in its canonical form")
    return dtype


def _shape(shape: Any) -> list[int]:
    """A declared shape, checked before anything of that size is allocated."""
    if not isinstance(shape, list) or len(shape) > MAX_DIMS:
        raise CodecError("malformed array: bad shape")
    size = 1
    for n in shape:
        if type(n) is not int or n < 0:
            raise CodecError("malformed array: bad shape")
        if n > MAX_ELEMENTS or (n and size * n > MAX_ELEMENTS):
            raise CodecError(f"malformed array: shape {shape[:8]} is too large")
        size *= n or 1
    return shape


def _decode_array(value: dict[str, Any]) -> np.ndarray:
    if set(value) not in _ARRAY_KEYS:
        raise CodecError("malformed array: unexpected keys")
    dtype = _dtype(value["dtype"])
    shape = _shape(value["shape"])
    if "encoding" in value:
        return _decode_base64(value, dtype, shape)
    data = value[NDARRAY_KEY]
    if shape and not isinstance(data, list):
        raise CodecError("malformed array: data is not a list")
    try:
        if dtype.kind == "f":  # e.g. 1e300 as float16: inf, without a warning
            with np.errstate(all="ignore"):
                array = np.array(data, dtype=dtype)
        else:  # integers out of range raise OverflowError instead
            array = np.array(data, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"malformed array: {str(exc)[:200]}") from exc
    if list(array.shape) != shape:
        if math.prod(shape) == 0 and array.size == 0:
            return array.reshape(shape)
        raise CodecError(f"malformed array: data of shape {list(array.shape)}, declared {shape}")
    return array


def dumps_message(message: dict[str, Any]) -> bytes:
    """One message as a JSON line (values already encoded; NaN/Infinity pass as Python's JSON does)."""
    if not isinstance(message, dict):
        raise CodecError("a message must be a JSON object")
    try:
        text = json.dumps(message, ensure_ascii=False, allow_nan=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise CodecError(str(exc)) from exc
    return text.encode("utf-8") + b"\n"


class Prepared:
    """A message serialised once and sent many times, each time with its own ``id``
    (e.g. one instance's arguments, sent to every solution evaluated on it).

    ``with_id`` gives exactly what :func:`dumps_message` gives for the message
    with ``"id"`` added last, without serialising the rest again.
    """

    __slots__ = ("_head", "size")

    def __init__(self, message: dict[str, Any]) -> None:
        if not isinstance(message, dict) or "id" in message:
            raise CodecError("a prepared message is a JSON object without an id")
        line = dumps_message(message)
        head = line[:-2]  # drop the closing brace and the newline
        self._head = head if head == b"{" else head + b","
        self.size = len(line)

    def with_id(self, request_id: str) -> bytes:
        return self._head + b'"id":' + json.dumps(request_id).encode() + b"}\n"


def loads_message(line: bytes) -> dict[str, Any]:
    """Parse one JSON line; the caller has already checked its size."""
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CodecError(f"not a JSON line: {exc}") from exc
    if not isinstance(value, dict):
        raise CodecError("a message must be a JSON object")
    return value


def _decode_base64(value: dict[str, Any], dtype: np.dtype[Any], shape: list[int]) -> np.ndarray:
    data = value[NDARRAY_KEY]
    if value["encoding"] != "base64" or not isinstance(data, str):
        raise CodecError("malformed array: unknown encoding")
    wire = dtype
    if "wire" in value:
        wire = _dtype(value["wire"])
        if not _widens(wire, dtype):  # also refuses a wire type equal to dtype
            raise CodecError("malformed array: bad wire type")
    expected = math.prod(shape) * wire.itemsize
    # base64 of n bytes is 4 * ceil(n / 3) characters: checked before decoding anything
    if len(data) != 4 * ((expected + 2) // 3):
        raise CodecError("malformed array: data does not match dtype and shape")
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise CodecError(f"malformed array: {exc}") from exc
    if len(raw) != expected:
        raise CodecError("malformed array: data does not match dtype and shape")
    if dtype.kind == "b":  # only 0 and 1 are valid bools: normalise any other byte
        return (np.frombuffer(raw, dtype=np.uint8) != 0).reshape(shape)
    if wire is not dtype:
        return np.frombuffer(raw, dtype=wire).reshape(shape).astype(dtype)
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
