"""`stop-tui tasks` through a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.paper_tasks import PAPER_TASKS

NAMES = set(PAPER_TASKS)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stop_tui", *args], capture_output=True, text=True, timeout=60
    )


def test_tasks_table_lists_every_task() -> None:
    result = run_cli("tasks")
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        assert name in result.stdout
    assert "0.05 s" in result.stdout and "20/50" in result.stdout
    assert "algorithm()" in result.stdout
    assert "F[i,j]" in result.stdout  # brackets are text, not console markup


def test_tasks_json() -> None:
    result = run_cli("tasks", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {entry["name"] for entry in data} == NAMES
    by_name = {entry["name"]: entry for entry in data}
    assert by_name["three_sat"]["time_limit"] == 0.05
    assert by_name["maxcut"]["splits"] == {"val": 20, "test": 50}
    for entry in data:
        assert set(entry) == {
            "name",
            "title",
            "entry_point",
            "signature",
            "time_limit",
            "splits",
            "description",
        }
        assert "seed" not in json.dumps(entry["splits"])  # split seeds are not printed


@pytest.mark.parametrize("as_json", [False, True])
def test_tasks_name_shows_the_public_utility(as_json: bool) -> None:
    result = run_cli("tasks", "str_grid_dist", *(["--json"] if as_json else []))
    assert result.returncode == 0, result.stderr
    text = json.loads(result.stdout)["public_utility"] if as_json else result.stdout
    assert "def utility(algorithm_str: str)" in text
    assert "def grid_dist" in text
    assert "4321" not in result.stdout and "5678" not in result.stdout


def test_unknown_task_is_one_line_naming_the_choices() -> None:
    result = run_cli("tasks", "parity")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "unknown task 'parity'" in lines[0] and "parity_noise" in lines[0]
    assert "Traceback" not in result.stderr
