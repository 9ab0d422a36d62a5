"""The one settings model: stop.toml, the environment and flags validated once, each error
naming its source; the command line's options and the app's form generated from it; the
run budget built from it with the [prices] table; the approval policy of a resumed run
decided in one place for both front ends (the app's side: tests/app/test_settings_resume.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stop_tui.config import SECTIONS, Policy, Settings, cli_options, form_fields, load_settings
from stop_tui.engine.approval import Gate
from stop_tui.engine.config import RunConfig
from stop_tui.engine.session import prepare_run
from stop_tui.errors import UserError
from stop_tui.lm.types import BudgetExceeded
from stop_tui.store.store import RunStore
from tests.integration.test_cli_run import SMALL as CLI_SMALL
from tests.integration.test_cli_run import cli
from tests.support.openai_server import OpenAIServer
from tests.support.tui import settings_for


def test_generations_zero_in_stop_toml_is_refused_at_load_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    config = tmp_path / "conf" / "stop.toml"
    config.write_text('model = "demo"\ngenerations = 0\n')
    with pytest.raises(UserError) as info:
        load_settings(None, config, environ={}, cwd=tmp_path)
    line = info.value.line()
    assert str(config) in line and "'generations'" in line and "at least 1" in line
    env = {"STOP_TUI_LM_BUDGET": "0"}
    with pytest.raises(UserError) as info:
        load_settings({"model": "demo"}, environ=env, cwd=tmp_path)
    assert "environment variable STOP_TUI_LM_BUDGET" in info.value.line()
    with pytest.raises(UserError) as info:
        load_settings({"model": "demo", "meta_utility_tests": 0}, environ={}, cwd=tmp_path)
    assert "the command line" in info.value.line()


def test_stop_toml_sections_by_concern_and_the_flat_form(tmp_path: Path) -> None:
    config = tmp_path / "stop.toml"
    config.write_text(
        '[endpoint]\nmodel = "demo"\ntimeout = 30\n[run]\ngenerations = 2\napproval = "auto"\n'
        "[caps]\nmax_tokens_total = 900\n[demo]\ndemo_latency = 0.5\n"
    )
    settings = load_settings(None, config, environ={}, cwd=tmp_path)
    assert (settings.timeout, settings.generations, settings.approval) == (30, 2, Policy.AUTO)
    assert (settings.max_tokens_total, settings.demo_latency) == (900, 0.5)
    flat = tmp_path / "flat.toml"
    flat.write_text('model = "demo"\ngenerations = 2\nmax_tokens_total = 900\n')
    assert load_settings(None, flat, environ={}, cwd=tmp_path).generations == 2
    config.write_text("[caps]\ngenerations = 2\n")
    with pytest.raises(UserError) as info:
        load_settings({"model": "demo"}, config, environ={}, cwd=tmp_path)
    assert "[caps]" in info.value.line() and "belongs in [run]" in info.value.line()
    config.write_text("[run]\ngenerations = 0\n")
    with pytest.raises(UserError) as info:
        load_settings({"model": "demo"}, config, environ={}, cwd=tmp_path)
    assert str(config) in info.value.line() and "at least 1" in info.value.line()
    sectioned = [key for keys in SECTIONS.values() for key in keys]
    assert len(sectioned) == len(set(sectioned))  # every key in one section
    assert set(Settings.model_fields) - set(sectioned) == {"prices", "keymap"}


def test_the_command_line_refuses_generations_zero_from_stop_toml(tmp_path: Path) -> None:
    (tmp_path / "stop.toml").write_text("generations = 0\n")
    result = cli("run", "--headless", "--model", "demo", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "stop.toml" in result.stderr and "generations" in result.stderr


def test_run_options_and_form_fields_are_the_settings_fields() -> None:
    flags = {key: flag for flag, key, _, _ in cli_options()}
    for name in ("task", "model", "generations", "seed", "max_cost", "max_tokens_total"):
        assert flags[name] == "--" + name.replace("_", "-")
    assert flags["max_tokens"] == "--max-tokens"  # per response; the run-wide cap is distinct
    assert all(text for _, _, _, text in cli_options())  # every option has help
    assert [name for name, _, _ in form_fields()] == [
        "generations",
        "max_responses_per_call",
        "lm_budget",
        "utility_budget",
        "meta_utility_budget",
        "meta_utility_tests",
        "seed",
    ]


def test_one_policy_type_from_settings_to_the_saved_run(tmp_path: Path) -> None:
    settings = load_settings(
        {"model": "demo", "approval": "reject-flagged"}, environ={}, cwd=tmp_path
    )
    assert settings.approval is Policy.REJECT_FLAGGED
    with pytest.raises(UserError) as info:
        load_settings({"model": "demo", "approval": "sometimes"}, environ={}, cwd=tmp_path)
    assert "approval" in info.value.line() and "the command line" in info.value.line()
    config = RunConfig.of_settings(settings, policy=settings.approval)
    saved = config.to_dict()
    assert saved["approval"] == "reject-flagged" and "max_tokens" not in saved
    assert RunConfig.from_dict(saved) == config
    # A run saved before the run-wide token cap had its own name keeps its cap.
    old = {k: v for k, v in saved.items() if k not in ("max_tokens_total", "prices")}
    assert RunConfig.from_dict({**old, "max_tokens": 500}).max_tokens_total == 500


async def test_a_model_priced_only_in_stop_toml_is_held_to_max_cost(
    openai_server: OpenAIServer, tmp_path: Path
) -> None:
    config = tmp_path / "stop.toml"
    config.write_text(
        'model = "test-model"\nmax_cost = 0.002\napi_key = "k"\n'
        f'base_url = "{openai_server.base_url}"\nworkspace = "{tmp_path / "ws"}"\n'
        '[prices]\n"test-model" = { prompt = 1.0, completion = 1.0 }\n'
    )
    settings = load_settings(None, config, environ={}, cwd=tmp_path)
    prepared = prepare_run(settings, default_policy=Policy.AUTO, run_id="20260105-000000-cost")
    try:
        run = prepared.run
        assert run.config.to_dict()["prices"] == {"test-model": [1.0, 1.0]}  # saved with the run
        model = run.language_model("test", 1, 0)
        await model.prompt("e", "small")  # ~1,040 tokens reserved: $0.00104 fits $0.002
        assert openai_server.count() == 1
        with pytest.raises(BudgetExceeded) as info:
            # ~2,000 prompt tokens + the completion reserve: more than the cap holds
            await model.prompt("e", "x" * 8_000)
        assert info.value.scope == "run" and info.value.kind == "cost"
        assert openai_server.count() == 1  # refused before it was sent
    finally:
        await prepared.close()


def policies(workspace: Path, run_id: str, generation: int) -> set[str]:
    """Who decided about the candidates of one generation (the Stop-Decision trailers)."""
    steps = RunStore(workspace).list_steps(run_id)
    return {
        s.decision.split(" by ", 1)[-1]
        for s in steps
        if s.generation == generation and s.kind == "candidate"
    }


def test_headless_resume_without_approve_uses_the_saved_runs_policy(tmp_path: Path) -> None:
    args = ("--model", "demo", "--demo-failure-rate", "0", *CLI_SMALL)
    started = cli(
        "run", "--headless", "--generations", "1", "--approve", "reject-flagged", *args,
        cwd=tmp_path,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    workspace = tmp_path / "stop-runs"
    (run_id,) = [r.run_id for r in RunStore(workspace).list_runs()]
    assert policies(workspace, run_id, 1) == {"policy:reject-flagged"}
    resumed = cli("resume", run_id, "--headless", "--generations", "2", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert policies(workspace, run_id, 2) == {"policy:reject-flagged"}
    # --approve still wins over the saved policy.
    again = cli(
        "resume", run_id, "--headless", "--generations", "3", "--approve", "auto", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert policies(workspace, run_id, 3) == {"policy:auto"}


def test_headless_resume_of_a_supervised_run_needs_a_terminal(tmp_path: Path) -> None:
    workspace = tmp_path / "stop-runs"
    run_id = "20260106-000000-sup"

    async def supervised_run() -> None:  # saved as each-generation, answered by a policy here
        settings = settings_for(workspace, generations=1, approval="each-generation")
        prepared = prepare_run(
            settings, default_policy=Policy.AUTO, run_id=run_id, gate=Gate(Policy.AUTO)
        )
        try:
            assert await prepared.run.run() == "finished"
        finally:
            await prepared.close()

    asyncio.run(supervised_run())
    resumed = cli("resume", run_id, "--headless", "--generations", "2", cwd=tmp_path)
    assert resumed.returncode == 2 and resumed.stderr.count("\n") == 1
    assert "each-generation" in resumed.stderr and "terminal" in resumed.stderr
