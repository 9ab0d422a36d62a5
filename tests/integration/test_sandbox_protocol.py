"""The channel protocol: forging, size checks, garbage, the codec, the solution job."""

from __future__ import annotations

import ast
import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stop_tui.sandbox import Child, Limits, Sandbox, codec
from stop_tui.sandbox.layers import probe

SANDBOX_DIR = Path(codec.__file__).resolve().parent
needs_stack = pytest.mark.skipif(
    not probe().full, reason="the full isolation stack is not available"
)


@pytest.fixture
async def sandbox() -> Any:
    async with Sandbox() as sb:
        yield sb


async def start(sb: Sandbox, source: str, limits: Limits | None = None) -> tuple[Child, Any]:
    payload = {"source": textwrap.dedent(source), "entry_point": "algorithm"}
    child = await sb.spawn("solution", payload, limits)
    return child, await child.recv(timeout=30)


# ------------------------------------------------------------------- codec


def test_codec_round_trips_arrays_and_scalars() -> None:
    values = [
        np.arange(12, dtype=np.int32).reshape(3, 4),
        np.array([True, False]),
        np.linspace(0, 1, 5, dtype=np.float32),
        np.zeros((0, 3), dtype=np.uint8),
        {"nested": [np.int64(7), np.float64(2.5), np.bool_(True), (1, 2)]},
    ]
    decoded = codec.decode(json.loads(json.dumps(codec.encode(values))))
    for original, back in zip(values[:4], decoded[:4], strict=True):
        assert isinstance(back, np.ndarray)
        assert back.dtype == original.dtype and back.shape == original.shape
        assert np.array_equal(back, original)
    assert decoded[4] == {"nested": [7, 2.5, True, [1, 2]]}
    assert type(decoded[4]["nested"][0]) is int


def test_codec_carries_big_arrays_as_base64() -> None:
    rng = np.random.default_rng(1)
    values = [
        rng.random((300, 300)),
        rng.integers(-5, 5, size=(40, 50), dtype=np.int16),
        rng.random(5000) > 0.5,
        np.asfortranarray(rng.random((64, 33)).astype(">f4")),
    ]
    wire = json.loads(json.dumps(codec.encode(values)))
    assert all(item["encoding"] == "base64" for item in wire)
    for original, back in zip(values, codec.decode(wire), strict=True):
        assert back.dtype == original.dtype and back.shape == original.shape
        assert np.array_equal(back, original)
        assert back.flags.writeable


def test_codec_base64_is_checked() -> None:
    good = codec.encode(np.arange(2000, dtype=np.int64))
    with pytest.raises(codec.CodecError, match="does not match"):
        codec.decode({**good, "shape": [2001]})
    with pytest.raises(codec.CodecError):
        codec.decode({**good, "__ndarray__": "!!not base64!!"})
    with pytest.raises(codec.CodecError):
        codec.decode({**good, "encoding": "pickle"})
    with pytest.raises(codec.CodecError):
        codec.decode({**good, "dtype": "|O"})
    # A bool array with bytes other than 0/1 decodes to proper bools.
    odd = {"__ndarray__": "AgMA", "dtype": "|b1", "shape": [3], "encoding": "base64"}
    decoded = codec.decode(odd)
    assert decoded.tolist() == [True, True, False]
    assert np.array_equal(~decoded, [False, False, True])


@pytest.mark.parametrize(
    "value",
    [np.array([object()]), {1: "int key"}, {1, 2}, object(), np.array(["text"])],
)
def test_codec_refuses_what_it_cannot_carry(value: Any) -> None:
    with pytest.raises(codec.CodecError):
        codec.encode(value)


@pytest.mark.parametrize(
    "wire",
    [
        {"__ndarray__": [1, 2], "dtype": "|O", "shape": [2]},
        {"__ndarray__": [1, 2], "dtype": "<i8", "shape": [3]},
        {"__ndarray__": [1, 2], "dtype": "<i8", "shape": [2], "extra": 1},
        {"__ndarray__": [[1], [2, 3]], "dtype": "<f8", "shape": [2]},
    ],
)
def test_codec_refuses_malformed_or_object_arrays(wire: dict[str, Any]) -> None:
    with pytest.raises(codec.CodecError):
        codec.decode(wire)


def test_no_pickle_anywhere_in_the_sandbox() -> None:
    forbidden = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle"}
    for path in SANDBOX_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            assert not forbidden & set(names), f"{path} imports {names}"
    # np.load/np.save of pickled data would also be pickle: decode never calls them.
    assert "allow_pickle" not in (SANDBOX_DIR / "codec.py").read_text()


# ---------------------------------------------------------------- channel


@needs_stack
async def test_print_cannot_forge_a_reply(sandbox: Sandbox) -> None:
    child, ready = await start(
        sandbox,
        """
        import json, sys
        def algorithm(x):
            for guess in ("", "0", "1"):
                print(json.dumps({"id": guess, "ok": 999}))
            sys.stdout.flush()
            return x + 1
        """,
    )
    async with child:
        assert ready == {"ready": True}
        reply = await child.request({"call": [1]}, timeout=10)
        assert reply.message is not None and reply.message["ok"] == 2
    assert child.exit_info is not None and '"ok": 999' in child.exit_info.stdout


@needs_stack
async def test_forged_reply_on_the_channel_is_a_protocol_violation(sandbox: Sandbox) -> None:
    child, _ready = await start(
        sandbox,
        """
        import os
        def algorithm(x):
            os.write(3, b'{"id": "guessed", "ok": 999}\\n')
            return x
        """,
    )
    async with child:
        reply = await child.request({"call": [1]}, timeout=10)
        assert reply.message is None
    info = child.exit_info
    assert info is not None and info.error is not None and "protocol" in info.error


@needs_stack
async def test_garbage_on_the_channel_kills_the_child(sandbox: Sandbox) -> None:
    child, ready = await start(
        sandbox,
        """
        import os
        os.write(3, b"this is not json\\n")
        def algorithm():
            return 1
        """,
    )
    assert ready is None
    await child.kill()
    info = child.exit_info
    assert info is not None and info.error is not None and "protocol violation" in info.error


@needs_stack
async def test_oversize_message_kills_the_child(sandbox: Sandbox) -> None:
    child, _ready = await start(
        sandbox,
        """
        def algorithm(n):
            return "x" * n
        """,
        Limits(max_message_bytes=10_000),
    )
    async with child:
        small = await child.request({"call": [100]}, timeout=10)
        assert small.message is not None and small.message["ok"] == "x" * 100
        big = await child.request({"call": [50_000]}, timeout=10)
        assert big.message is None and not big.timed_out
    assert child.exit_info is not None and child.exit_info.limit == "message"


@needs_stack
async def test_numpy_round_trip_through_a_child(sandbox: Sandbox) -> None:
    child, ready = await start(
        sandbox,
        """
        import numpy as np
        def algorithm(a, b, flags):
            return {"product": a @ b, "flags": ~flags, "sum": np.float64(a.sum()), "n": np.int16(3)}
        """,
    )
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    b = np.ones((3, 2), dtype=np.float64)
    flags = np.array([True, False, True])
    async with child:
        assert ready == {"ready": True}
        reply = await child.request({"call": codec.encode([a, b, flags])}, timeout=10)
    assert reply.message is not None
    out = codec.decode(reply.message["ok"])
    assert np.array_equal(out["product"], a @ b) and out["product"].dtype == np.float64
    assert np.array_equal(out["flags"], ~flags) and out["flags"].dtype == np.bool_
    assert out["sum"] == 15.0 and out["n"] == 3


@needs_stack
async def test_unserialisable_output_is_an_error_not_a_crash(sandbox: Sandbox) -> None:
    child, _ready = await start(
        sandbox,
        """
        import numpy as np
        class Evil:
            def __reduce__(self):
                return (print, ("pickled!",))
        def algorithm(kind):
            return {"object": Evil(), "array": np.array([object()]), "fine": 1}[kind]
        """,
    )
    async with child:
        for kind in ("object", "array"):
            reply = await child.request({"call": [kind]}, timeout=10)
            assert reply.message is not None
            assert reply.message["error"].startswith("unserialisable output"), reply
        fine = await child.request({"call": ["fine"]}, timeout=10)
        assert fine.message is not None and fine.message["ok"] == 1


@needs_stack
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def algorithm(:\n    pass\n", "SyntaxError"),
        ("raise RuntimeError('at definition')\n", "RuntimeError: at definition"),
        ("def other():\n    pass\n", "NameError"),
    ],
)
async def test_definition_errors_are_reported(sandbox: Sandbox, source: str, expected: str) -> None:
    child, ready = await start(sandbox, source)
    async with child:
        assert ready is not None and ready["error"].startswith(expected), ready
    assert child.exit_info is not None and child.exit_info.limit is None


@needs_stack
async def test_exceptions_in_calls_are_replies_and_the_child_goes_on(sandbox: Sandbox) -> None:
    child, _ready = await start(
        sandbox,
        """
        import sys
        def algorithm(x):
            if x == "exit":
                sys.exit(3)
            return 1 / x
        """,
    )
    async with child:
        bad = await child.request({"call": ["exit"]}, timeout=10)
        assert bad.message is not None and bad.message["error"] == "SystemExit: 3"
        zero = await child.request({"call": [0.0]}, timeout=10)
        assert zero.message is not None and zero.message["error"].startswith("ZeroDivisionError")
        good = await child.request({"call": [4]}, timeout=10)
        assert good.message is not None and good.message["ok"] == 0.25
        assert good.elapsed > 0


@needs_stack
async def test_call_sends_encoded_arguments(sandbox: Sandbox) -> None:
    child, ready = await start(
        sandbox,
        """
        def algorithm(matrix, k):
            matrix[0, 0] = -1
            return float(matrix.sum()) * k
        """,
    )
    matrix = np.ones((50, 40))
    async with child:
        assert ready == {"ready": True}
        first = await child.call([matrix, 2], timeout=10)
        second = await child.call([matrix, 3], timeout=10)
        assert first.message is not None and first.message["ok"] == (2000 - 2) * 2
        assert second.message is not None and second.message["ok"] == (2000 - 2) * 3
    assert matrix[0, 0] == 1  # the parent's copy is untouched
