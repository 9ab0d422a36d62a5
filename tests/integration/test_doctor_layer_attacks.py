"""``stop-tui doctor --attacks`` attacks the layers above the sandbox too: every row
is blocked on the real stack, and each fails when its protection is switched off
(so no row can pass vacuously)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from stop_tui.cli import cmd_doctor
from stop_tui.engine import selfcheck as engine_check
from stop_tui.lm.budget import LanguageModel
from stop_tui.sandbox import codec
from stop_tui.sandbox.api import Sandbox
from stop_tui.sandbox.layers import probe
from stop_tui.store import selfcheck as store_check
from stop_tui.store.verify import VerifyReport
from stop_tui.tasks import evaluate as evaluate_module
from stop_tui.tasks.selfcheck import FORGERIES, malformed_output_attacks

pytestmark = [
    pytest.mark.skipif(not probe().full, reason="the full isolation stack is not available"),
    pytest.mark.timeout(600),
]


def test_doctor_attacks_include_decoding_lm_proxy_and_history() -> None:
    assert cmd_doctor._layer_attacks_if_asked in cmd_doctor.SECTIONS
    assert cmd_doctor._layer_attacks_if_asked(argparse.Namespace(attacks=False)) is None
    section = cmd_doctor.layer_attacks_section(argparse.Namespace(attacks=True))
    names = [row.name for row in section.rows]
    assert names == [
        *FORGERIES,
        "send an over-large prompt through the LM proxy",
        "replace an adopted source in git (verify)",
        "replace an adopted source in git (resume)",
    ]
    assert section.ok and all(row.ok for row in section.rows), section.rows


async def test_malformed_rows_fail_when_judging_is_not_total(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def naive(task: Any, args: Any, hidden: Any, message: dict[str, Any]) -> Any:
        return task.score(list(args), hidden, codec.decode(message["ok"])), None

    monkeypatch.setattr(evaluate_module, "judge", naive)
    async with Sandbox() as sandbox:
        results = await malformed_output_attacks(sandbox)
    by_name = {r.name: r for r in results}
    assert not by_name["reply with an impossible array shape"].blocked
    assert not by_name["reply with extra keys"].blocked


async def test_the_lm_row_fails_without_a_prompt_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    def unlimited(*args: Any, **kw: Any) -> LanguageModel:
        return LanguageModel(*args, **{**kw, "max_prompt_chars": None})

    monkeypatch.setattr(engine_check, "LanguageModel", unlimited)
    async with Sandbox() as sandbox:
        result = await engine_check.oversized_prompt_attack(sandbox)
    assert not result.blocked and "1 request(s) reached the model" in result.detail


def test_the_history_rows_fail_when_verify_and_resume_see_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_check, "verify_run", lambda store, run_id: VerifyReport(run_id, []))
    monkeypatch.setattr(store_check, "check_resumable", lambda store, run_id: None)
    assert [r.blocked for r in store_check.forged_history_attacks()] == [False, False]
