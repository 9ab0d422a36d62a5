"""Codec wire forms added for speed: narrowed integer arrays, prepared messages."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from stop_tui.sandbox import codec

CASES = [
    (np.arange(100, dtype=np.int64) % 2, "|u1"),
    (np.arange(100, dtype=np.int64) - 50, "|i1"),
    (np.arange(100, dtype=np.int32) * 600, "<u2"),
    (np.arange(100, dtype=np.int32) * 1000, None),  # needs 4 bytes: not narrower
    (np.full(100, 2**40, dtype=np.int64), None),
    (np.arange(100, dtype=np.uint64) * 300, "<u2"),
    (np.full(100, -1, dtype=np.int16), "|i1"),
    (np.array([-(2**31)] * 100, dtype=np.int64), "<i4"),
    (np.ones(100, dtype=np.int8), None),
    (np.linspace(0, 1, 100), None),
    (np.zeros(100, dtype=bool), None),
]


@pytest.mark.parametrize(("array", "wire"), CASES)
def test_integer_arrays_travel_narrowed_and_come_back_exact(
    array: np.ndarray, wire: str | None
) -> None:
    encoded = codec.encode(array.reshape(10, 10))
    assert encoded.get("wire") == wire
    line = codec.dumps_message({"v": encoded})
    back = codec.decode(codec.loads_message(line)["v"])
    assert back.dtype == array.dtype and back.shape == (10, 10)
    assert np.array_equal(back, array.reshape(10, 10))
    assert back.flags.writeable


def test_parity_arguments_shrink_on_the_wire() -> None:
    samples = np.random.default_rng(0).integers(0, 2, (100, 10))
    text = json.dumps(codec.encode(samples))
    assert len(text) < 1500  # one byte per value, base64: ~1.4 kB instead of ~11 kB


@pytest.mark.parametrize(
    "wire",
    ["<i8", "<f4", "|b1", "|i1", "<u8", "nonsense", 7],
)
def test_bad_wire_types_are_refused(wire: object) -> None:
    # Target dtype unsigned 4 bytes: a signed, equal, wider, non-integer or unknown wire
    # type could not convert back without loss.
    raw = base64.b64encode(bytes(8)).decode()
    value = {
        "__ndarray__": raw,
        "dtype": "<u4",
        "shape": [2],
        "encoding": "base64",
        "wire": wire,
    }
    with pytest.raises(codec.CodecError):
        codec.decode(value)


def test_wire_data_must_match_the_wire_size() -> None:
    good = codec.encode(np.arange(100, dtype=np.int64))
    assert good["wire"] == "|u1"
    short = {**good, "__ndarray__": base64.b64encode(bytes(99)).decode()}
    with pytest.raises(codec.CodecError):
        codec.decode(short)
    wrong = {**good, "wire": "<u2"}  # 100 bytes are not 100 two-byte values
    with pytest.raises(codec.CodecError):
        codec.decode(wrong)


@pytest.mark.parametrize("message", [{}, {"call": [1, [2.5, None], "x"]}, {"a": "é\n"}])
def test_prepared_messages_equal_freshly_serialised_ones(message: dict[str, object]) -> None:
    prepared = codec.Prepared(message)
    for request_id in ("0123abcd", 'q"uote'):
        line = prepared.with_id(request_id)
        assert line == codec.dumps_message({**message, "id": request_id})
        assert codec.loads_message(line) == {**message, "id": request_id}


def test_prepared_messages_refuse_an_id_of_their_own() -> None:
    with pytest.raises(codec.CodecError):
        codec.Prepared({"id": "fixed", "call": []})
