"""The worst-case forecast of a run's settings, and ``run --dry-run``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from stop_tui.config import load_settings
from stop_tui.lm.forecast import forecast
from tests.integration.test_cli_run import cli


def settings(**changes: object) -> SimpleNamespace:
    base: dict[str, object] = dict(
        model="m", prices={"m": (1.0, 2.0)}, generations=2, meta_utility_tests=2,
        meta_utility_budget=3, lm_budget=2, max_responses_per_call=3, max_tokens=100,
        max_prompt_chars=396, max_calls=None, max_tokens_total=None, max_cost=None,
    )  # fmt: skip
    base.update(changes)
    return SimpleNamespace(**base)


def test_worst_case_counts_every_budget() -> None:
    f = forecast(settings())
    # One improver run: 2 calls x 3 responses, each its own request.
    assert (f.per_improver_run.requests, f.per_improver_run.responses) == (6, 6)
    # A generation: the improver once, 3 candidates + the returned improver x 2 tests.
    assert f.per_generation.improver_runs == 1 + 4 * 2
    # The run: the seed's 2 tests + 2 generations.
    assert f.run.improver_runs == 2 + 2 * 9 and f.run.requests == 20 * 6
    prompt = (396 + 3) // 4 + 8
    assert f.run.prompt_tokens == 120 * prompt and f.run.completion_tokens == 120 * 100
    assert f.run.cost == pytest.approx((120 * prompt * 1.0 + 120 * 100 * 2.0) / 1e6)
    assert f.over_caps == () and "within every configured cap" in f.lines()[-1]


def test_caps_below_the_worst_case_are_named() -> None:
    f = forecast(settings(max_calls=10, max_tokens_total=1000, max_cost=0.001))
    assert len(f.over_caps) == 3 and f.capped_requests == 10
    assert any("max_cost $0.00" in line for line in f.over_caps)


def test_without_a_prompt_limit_only_completions_are_bounded() -> None:
    f = forecast(settings(max_prompt_chars=None, max_cost=0.001))
    assert f.run.prompt_tokens is None and f.run.cost is None
    assert f.run.completion_cost == pytest.approx(120 * 100 * 2.0 / 1e6)
    assert "+ prompts" in f.lines()[3] and "at least" in f.over_caps[0]


def test_real_settings_forecast() -> None:
    real = load_settings({"model": "gpt-4o-mini"}, environ={}, cwd=Path("/"))
    f = forecast(real)
    assert f.price == (0.15, 0.60, 0.075) and f.per_improver_run.completion_tokens == 24 * 4096


def test_dry_run_prints_the_forecast_and_runs_nothing(tmp_path: Path) -> None:
    result = cli("run", "--dry-run", "--model", "gpt-4o-mini", "--max-cost", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "worst case for model gpt-4o-mini" in result.stdout
    assert "over a cap: max_cost $1.00" in result.stdout
    assert not (tmp_path / "stop-runs").exists()
