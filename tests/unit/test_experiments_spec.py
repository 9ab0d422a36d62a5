"""Sweep files: a good one expands to its grid; each bad one is ONE clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from stop_tui.errors import UserError
from stop_tui.experiments.grid import expand
from stop_tui.experiments.spec import parse_sweep
from tests.support.sweep import cli, sweep_text

GOOD = sweep_text(["parity_noise", "three_sat"], [0, 1])


def test_a_good_file_expands_to_tasks_x_models_x_variants_x_seeds() -> None:
    spec = parse_sweep(GOOD + "\n[variants.small]\nlm_budget = 1\n[variants.big]\nlm_budget = 3\n")
    cells = expand(spec)
    assert len(cells) == 2 * 1 * 2 * 2
    assert len({c.key for c in cells}) == len(cells)
    small = [c for c in cells if c.variant == "small"]
    assert all(
        c.overrides["lm_budget"] == 1 and c.overrides["meta_utility_tests"] == 2 for c in small
    )
    assert {c.overrides["seed"] for c in cells} == {0, 1}


BAD = [
    ('tasks = ["parity_nosie"]', "tasks[0]", "unknown task 'parity_nosie'"),
    ("colour = 1", "colour", "unknown key"),
    ("tasks = []", "tasks", "grid has no cells"),
    ("seeds = [0, -3]", "seeds[1]", "negative seed -3"),
    ('generations = "two"', "generations", "valid integer"),
    ("concurrency = 0", "concurrency", "greater than or equal to 1"),
    ("[caps]\nmax_call = 3", "caps.max_call", "did you mean 'max_calls'"),
    ("[settings]\nlm_budgt = 2", "settings.lm_budgt", "did you mean 'lm_budget'"),
    ("[settings]\ndemo_latency = -1", "settings.demo_latency", "got -1"),
    ("seeds = [1, 1]", "seeds", "twice"),
]


def _with(line: str) -> str:
    key = line.split("=")[0].strip()
    if key in ("tasks", "seeds", "generations", "concurrency"):
        lines = [x for x in GOOD.splitlines() if not x.startswith(key + " ")]
        return line + "\n" + "\n".join(lines)
    if line.startswith("[settings]"):
        return GOOD + "\n" + line.removeprefix("[settings]\n")
    if line.startswith("["):
        return GOOD.replace("[settings]", line + "\n[settings]")
    return line + "\n" + GOOD


@pytest.mark.parametrize(("line", "key", "words"), BAD)
def test_bad_file_names_the_key_and_the_fix(line: str, key: str, words: str) -> None:
    with pytest.raises(UserError) as info:
        parse_sweep(_with(line), "grid.toml")
    message = info.value.line()
    assert "\n" not in message
    assert message.startswith(f"sweep file grid.toml: {key}: "), message
    assert words in message and "(fix: " in message, message


def test_bad_file_at_the_command_line_is_one_line_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "grid.toml").write_text(_with("seeds = [-1]"))
    result = cli("sweep", "grid.toml", "--headless", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "seeds[0]: negative seed -1" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    missing = cli("sweep", "nope.toml", "--headless", cwd=tmp_path, timeout=120)
    assert missing.returncode == 2 and "no sweep file at nope.toml" in missing.stderr
