"""The headless front end and the commands around it, as a person runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

SMALL = [
    "--meta-utility-tests",
    "2",
    "--meta-utility-budget",
    "3",
    "--utility-budget",
    "3",
    "--lm-budget",
    "2",
    "--max-responses-per-call",
    "3",
]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOP_TUI_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "stop_tui", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_headless_run_then_runs_show_resume_replay_export(tmp_path: Path) -> None:
    result = cli("run", "--headless", "--generations", "2", "--model", "demo", *SMALL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "demo (scripted, offline — not a language model)" in result.stdout
    assert "generation 2" in result.stdout and "sandbox circumvention" in result.stdout
    runs = json.loads(cli("runs", "--json", cwd=tmp_path).stdout)
    assert len(runs) == 1 and runs[0]["status"] == "finished" and runs[0]["generations"] == 2
    run_id = runs[0]["run_id"]
    shown = cli("show", run_id, cwd=tmp_path)
    assert shown.returncode == 0 and re.search(r"│\s+2 │ (adopted|kept)", shown.stdout)
    # A finished run cannot be resumed unless asked for more generations.
    again = cli("resume", run_id, "--headless", cwd=tmp_path)
    assert again.returncode == 2 and "already finished" in again.stderr
    more = cli("resume", run_id, "--headless", "--generations", "3", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    assert json.loads(cli("runs", "--json", cwd=tmp_path).stdout)[0]["generations"] == 3
    replayed = cli("replay", run_id, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "every score matches" in replayed.stdout
    exported = cli("export", run_id, "--format", "csv", cwd=tmp_path)
    assert exported.returncode == 0 and exported.stdout.count("\n") >= 4


def test_ask_needs_a_terminal(tmp_path: Path) -> None:
    result = cli("run", "--headless", "--approve", "ask", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "terminal" in result.stderr


def test_bad_settings_are_one_line(tmp_path: Path) -> None:
    result = cli("run", "--headless", "--generations", "-1", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "generations" in result.stderr and "Traceback" not in result.stderr
    result = cli("run", "--headless", "--task", "nope", cwd=tmp_path)
    assert result.returncode == 2 and "nope" in result.stderr


def test_transfer_prints_table_one(tmp_path: Path) -> None:
    improver = tmp_path / "improver.py"
    improver.write_text((Path(__file__).parents[1] / "improvers" / "seed.py").read_text())
    result = cli(
        "transfer",
        str(improver),
        "--tasks",
        "str_grid_dist",
        "--json",
        "--model",
        "demo",
        *SMALL,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["task"] == "str_grid_dist"
    assert 0.0 <= row["original_solution"] <= 1.0
    assert 0.0 <= row["seed_improver"]["mean"] <= 1.0 and 0.0 <= row["improver"]["mean"] <= 1.0
