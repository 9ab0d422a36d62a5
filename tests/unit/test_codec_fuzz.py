"""Fuzzing everything the parent decodes from a child: the codec, one solution reply
(``judge``) and the improver's rpcs (``RpcHandler``). Whatever arrives, the only
outcomes are a value, a :class:`CodecError`, a flagged result or an
:class:`RpcFailure` the improver sees; never another exception in the parent."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stop_tui.engine.runner import MAX_SOURCE_CHARS, ImproverCall, RpcHandler
from stop_tui.lm.budget import LanguageModel, RunBudget
from stop_tui.lm.demo import DemoBackend
from stop_tui.sandbox import codec
from stop_tui.sandbox.api import Limits, RpcFailure
from stop_tui.tasks import get_task
from stop_tui.tasks.evaluate import judge

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

DTYPES = [
    "<f8", "<f4", "<f2", "|b1", "|u1", "|i1", "<i8", "<u8", ">f4", "<f16", "<c16", "|O",
    "|V8", "<M8[ns]", "<m8", "<U4", "|S3", "i4,i4", "(2,)i4", "(2", "float64", "\x00",
    "f" * 40, "", "<i4 ", 7, None, [], {"a": 1},
]  # fmt: skip
HUGE = [2**31, 2**40, 2**63, 2**64, 2**70, 10**30]

ints = st.one_of(st.integers(-5, 5), st.sampled_from(HUGE), st.integers())
floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.one_of(st.none(), st.booleans(), ints, floats, st.text(max_size=20))
shapes = st.one_of(
    st.lists(st.one_of(st.integers(0, 4), st.sampled_from(HUGE), st.integers(-3, -1)), max_size=6),
    st.lists(st.just(0), min_size=30, max_size=70),
    st.lists(st.just(1), min_size=30, max_size=70),
    scalars,
    st.lists(scalars, max_size=3),
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def arrays(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Tagged array dicts: mostly plausible, often subtly wrong."""
    data = st.one_of(
        st.lists(children, max_size=6),
        st.binary(max_size=64).map(_b64),
        st.text(max_size=20),
        children,
    )
    base = st.fixed_dictionaries(
        {
            codec.NDARRAY_KEY: data,
            "dtype": st.sampled_from(DTYPES),
            "shape": shapes,
        },
        optional={
            "encoding": st.sampled_from(["base64", "pickle", 1, None]),
            "wire": st.sampled_from(DTYPES),
            "extra": scalars,
        },
    )
    return base


json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
        arrays(children),
    ),
    max_leaves=30,
)


def _decode_or_codec_error(value: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning may escape either
        with contextlib.suppress(codec.CodecError):
            codec.decode(value)


@FUZZ
@given(json_values)
def test_decode_of_anything_is_a_value_or_a_codec_error(value: Any) -> None:
    _decode_or_codec_error(value)


@FUZZ
@given(json_values)
def test_decode_survives_a_json_round_trip_of_anything(value: Any) -> None:
    # What actually arrives: a parsed JSON line (NaN and Infinity included).
    try:
        line = codec.dumps_message({"ok": value})
    except codec.CodecError:
        return
    _decode_or_codec_error(codec.loads_message(line)["ok"])


@FUZZ
@given(st.binary(max_size=200))
def test_loads_message_of_any_bytes_is_an_object_or_a_codec_error(line: bytes) -> None:
    with contextlib.suppress(codec.CodecError):
        assert isinstance(codec.loads_message(line), dict)


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        {"__ndarray__": "", "dtype": "<f8", "shape": [2**40, 2**40, 0], "encoding": "base64"},
        {"__ndarray__": [], "dtype": "<f8", "shape": [2**40, 2**40, 0]},
        {"__ndarray__": [], "dtype": "<f8", "shape": [2**70, 0]},
        {"__ndarray__": [], "dtype": "<f8", "shape": [0] * 65},
        {"__ndarray__": "A" * 40, "dtype": "<f8", "shape": [2**20, 2**20], "encoding": "base64"},
        {"__ndarray__": "", "dtype": "<f8", "shape": [-1], "encoding": "base64"},
        {"__ndarray__": "AAAA", "dtype": "<f8", "shape": [1], "encoding": "base64"},
        {"__ndarray__": "AAAAAAAAAAA", "dtype": "<f8", "shape": [1], "encoding": "base64"},
        {"__ndarray__": [1], "dtype": "float64", "shape": [1]},
        {"__ndarray__": [1], "dtype": "\x00", "shape": [1]},
        {"__ndarray__": [1], "dtype": "<M8[s]", "shape": [1]},
        {"__ndarray__": [[1, 2]], "dtype": "i4,i4", "shape": [1]},
        {"__ndarray__": [1], "dtype": "(2,)i4", "shape": [1]},
        {"__ndarray__": 1.0, "dtype": "<f8", "shape": [1]},
        {"__ndarray__": _nested(70), "dtype": "<f8", "shape": [1] * 70},
        {"__ndarray__": [1], "dtype": "<f8", "shape": [True]},
        _nested(5000),
    ],
    ids=lambda v: json.dumps(v)[:40] if not isinstance(v, list) else "nested",
)
def test_impossible_arrays_are_codec_errors(value: Any) -> None:
    with pytest.raises(codec.CodecError):
        codec.decode(value)


def test_the_element_cap_is_checked_before_allocating() -> None:
    # Declares 2**25 float64s (256 MiB) with matching data length: refused by the cap.
    n = codec.MAX_ELEMENTS * 2
    text = "A" * (4 * math.ceil(n * 8 / 3))
    value = {"__ndarray__": text, "dtype": "<f8", "shape": [n], "encoding": "base64"}
    with pytest.raises(codec.CodecError, match="too large"):
        codec.decode(value)
    # At the cap it still decodes (a 16.8 M-element bool array).
    ok = codec.encode(np.zeros(codec.MAX_ELEMENTS, dtype=bool))
    assert codec.decode(ok).shape == (codec.MAX_ELEMENTS,)


# ------------------------------------------------------------ solution replies


PARITY = get_task("parity_noise")
PARITY_ARGS, PARITY_HIDDEN = PARITY.instances("val")[0]

replies = st.one_of(
    st.fixed_dictionaries({"id": scalars, "ok": json_values}),
    st.fixed_dictionaries({"id": scalars, "error": json_values}),
    st.dictionaries(st.sampled_from(["id", "ok", "error", "limit", "extra"]), json_values),
)


@settings(FUZZ, max_examples=150)
@given(replies)
def test_any_solution_reply_is_a_score_or_a_flag(message: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score, flag = judge(PARITY, PARITY_ARGS, PARITY_HIDDEN, message)
    assert 0.0 <= score <= 1.0
    assert flag is None or (isinstance(flag, str) and len(flag) < 400)
    if flag is not None:
        assert score == 0.0


def test_a_reply_with_extra_keys_or_no_output_is_flagged() -> None:
    for message in ({"id": "1", "ok": [0] * 20, "extra": 1}, {"id": "1"}, {}):
        score, flag = judge(PARITY, PARITY_ARGS, PARITY_HIDDEN, message)
        assert score == 0.0 and flag is not None and flag.startswith("malformed")
    score, flag = judge(PARITY, PARITY_ARGS, PARITY_HIDDEN, {"id": "1", "error": _nested(900)})
    assert flag == "error: (a list, not text)"


# ------------------------------------------------------------ improver rpcs


rpc_params = st.one_of(
    st.dictionaries(
        st.sampled_from(
            ["solution", "use_sandbox", "expertise", "message", "messages", "n_responses",
             "temperature", "extra"]
        ),
        st.one_of(
            json_values,
            st.sampled_from([10**9, "6", True, -1, 0, 2.5, math.nan, math.inf, 3]),
            st.lists(st.text(max_size=5), max_size=8),
        ),
    ),
    json_values,
)  # fmt: skip
methods = st.sampled_from(["utility", "lm.prompt", "lm.batch_prompt", "lm.other", ""])


async def _zero(solution: Any, use_sandbox: bool) -> float:
    assert isinstance(solution, str) and len(solution) <= MAX_SOURCE_CHARS
    return 0.25


def _handler() -> tuple[RpcHandler, list[BaseException]]:
    aborted: list[BaseException] = []
    lm = LanguageModel(
        DemoBackend(seed=0, failure_rate=0.0),
        model="demo",
        budget=2,
        max_responses_per_call=3,
        run_budget=RunBudget(max_tokens=50_000),
        max_prompt_chars=200,
    )
    call = ImproverCall(
        source="",
        initial_solution="",
        utility_text="",
        utility_budget=3,
        utility=_zero,
        language_model=lm,
        limits=Limits(),
        on_abort=aborted.append,
    )
    return RpcHandler(call), aborted


@settings(FUZZ, max_examples=100)
@given(st.lists(st.tuples(methods, rpc_params), min_size=1, max_size=4))
def test_any_rpc_is_answered_or_refused_to_the_improver(calls: list[tuple[str, Any]]) -> None:
    handler, aborted = _handler()

    async def go() -> None:
        for method, params in calls:
            try:
                result = await handler(method, params)
            except RpcFailure as exc:
                assert exc.rpc_type in ("BudgetExceeded", "TypeError", "RpcError", "UtilityError")
                continue
            codec.encode(result)  # what goes back must be sendable
            if method == "utility":
                assert isinstance(result, float)
            else:
                assert isinstance(result, list) and all(isinstance(t, str) for t in result)

    asyncio.run(go())
    assert not aborted  # nothing an improver sends ends the run by itself
    assert handler.uses <= 3 and handler.call.language_model.calls_used <= 2


@pytest.mark.parametrize(
    ("method", "params", "rpc_type", "code"),
    [
        ("lm.prompt", {"expertise": "e", "message": 7}, "TypeError", "malformed-rpc"),
        ("lm.prompt", {"expertise": "e", "message": "m", "n_responses": "6"}, "TypeError", "malformed-rpc"),
        ("lm.prompt", {"expertise": "e", "message": "m", "n_responses": True}, "TypeError", "malformed-rpc"),
        ("lm.prompt", {"expertise": "e", "message": "m", "n_responses": 10**9}, "BudgetExceeded", "over-lm"),
        ("lm.prompt", {"expertise": "e", "message": "m", "temperature": math.nan}, "TypeError", "malformed-rpc"),
        ("lm.prompt", {"expertise": "e", "message": "m" * 500}, "BudgetExceeded", "prompt-size"),
        ("lm.prompt", {"expertise": "e", "message": "m", "extra": 1}, "TypeError", "malformed-rpc"),
        ("lm.batch_prompt", {"expertise": "e", "messages": ["m"] * 10_000}, "BudgetExceeded", "over-lm"),
        ("lm.batch_prompt", {"expertise": "e" * 300, "messages": ["m"]}, "BudgetExceeded", "prompt-size"),
        ("lm.batch_prompt", {"expertise": "e", "messages": "m"}, "TypeError", "malformed-rpc"),
        ("utility", {"solution": "x" * (MAX_SOURCE_CHARS + 1)}, "UtilityError", "solution-size"),
        ("utility", ["not", "an", "object"], "TypeError", "malformed-rpc"),
        ("nope", {}, "RpcError", "malformed-rpc"),
    ],
)  # fmt: skip
async def test_malformed_and_oversized_rpcs_are_refused_and_flagged(
    method: str, params: Any, rpc_type: str, code: str
) -> None:
    handler, aborted = _handler()
    with pytest.raises(RpcFailure) as info:
        await handler(method, params)
    assert info.value.rpc_type == rpc_type
    assert code in [f.code for f in handler.flags]
    assert handler.call.language_model.calls_used == 0 and not aborted


async def test_a_non_string_solution_scores_zero_and_is_flagged() -> None:
    handler, _ = _handler()
    assert await handler("utility", {"solution": None}) == 0.0
    assert await handler("utility", {"solution": {"a": [1]}}) == 0.0
    assert [f.code for f in handler.flags] == ["not-a-string"]
    assert handler.uses == 2
    # and well-formed calls still work through the same handler
    assert await handler("utility", {"solution": "def algorithm(): pass"}) == 0.25
    texts = await handler("lm.prompt", {"expertise": "e", "message": "m", "n_responses": 2})
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
