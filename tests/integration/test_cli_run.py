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


def cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOP_TUI_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "stop_tui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
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
    improver.write_text((Path(__file__).parents[2] / "improvers" / "seed.py").read_text())
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


def test_a_bundle_imported_elsewhere_replays_with_every_score_matching(tmp_path: Path) -> None:
    first, second = tmp_path / "alice", tmp_path / "bob"
    first.mkdir()
    second.mkdir()
    made = cli("run", "--headless", "--generations", "1", "--model", "demo", *SMALL, cwd=first)
    assert made.returncode == 0, made.stderr
    run_id = json.loads(cli("runs", "--json", cwd=first).stdout)[0]["run_id"]
    bundle = tmp_path / "run.bundle"
    assert cli("export", run_id, "--bundle", str(bundle), cwd=first).returncode == 0
    imported = cli("import", str(bundle), cwd=second)
    assert imported.returncode == 0, imported.stderr
    log = subprocess.run(
        ["git", "-C", str(second / "stop-runs"), "log", "--format=%s", f"stop/{run_id}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert log.splitlines()[-1].startswith("gen 0")
    replayed = cli("replay", run_id, "--branch", cwd=second)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "every score matches" in replayed.stdout and "replay written as run" in replayed.stdout
    assert len(json.loads(cli("runs", "--json", cwd=second).stdout)) == 2


def test_ctrl_c_stops_cleanly_and_the_run_resumes(tmp_path: Path) -> None:
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOP_TUI_", "OPENAI_"))}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stop_tui",
            "run",
            "--headless",
            "--generations",
            "2",
            "--model",
            "demo",
            "--demo-latency",
            "0.3",
            *SMALL,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    workspace = tmp_path / "stop-runs"
    while time.monotonic() < deadline and not (workspace / ".git" / "refs" / "stop").exists():
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "stop-tui resume" in out
    (run,) = json.loads(cli("runs", "--json", cwd=tmp_path).stdout)
    assert run["status"] == "cancelled"
    resumed = cli("resume", run["run_id"], "--headless", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(cli("runs", "--json", cwd=tmp_path).stdout)[0]["status"] == "finished"
