"""The store commands, run as a user would: ``python -m stop_tui ...`` in a subprocess."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stop_tui.store import RunStore
from stop_tui.store.synthetic import build_run

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("STOP_TUI_WORKSPACE", None)
    return subprocess.run(
        [sys.executable, "-m", "stop_tui", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("cli")
    store = RunStore(root / "stop-runs", create=True)
    rid = build_run(store, generations=2, candidates=2, run_id="20261126-090000-abcd")
    build_run(store, generations=1, candidates=1, run_id="20261126-080000-0000", task="maxcut",
              status="paused")  # fmt: skip
    return root, rid


def test_runs_table_and_json(ws: tuple[Path, str]) -> None:
    root, rid = ws
    table = cli("runs", cwd=root)  # default workspace: ./stop-runs
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if rid in line)
    assert "parity_noise" in row and "finished" in row and "$0.50" in row
    assert "maxcut" in table.stdout and "paused" in table.stdout
    data = json.loads(cli("runs", "--json", "--workspace", str(root / "stop-runs")).stdout)
    assert sorted(r["run_id"] for r in data) == ["20261126-080000-0000", rid]
    assert [r["created"] for r in data] == sorted((r["created"] for r in data), reverse=True)
    mine = next(r for r in data if r["run_id"] == rid)
    assert (
        mine["generations"] == 2 and mine["status"] == "finished" and mine["task"] == "parity_noise"
    )


def test_runs_in_an_empty_or_foreign_place(tmp_path: Path) -> None:
    empty = cli("runs", "--workspace", str(tmp_path / "none"))
    assert empty.returncode == 0 and "No runs" in empty.stdout
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign/file").write_text("x")
    bad = cli("runs", "--workspace", str(tmp_path / "foreign"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1 and "not a stop-tui workspace" in bad.stderr


def test_show_run_and_generation(ws: tuple[Path, str]) -> None:
    root, rid = ws
    wsarg = ("--workspace", str(root / "stop-runs"))
    out = cli("show", rid, *wsarg)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sum("│ adopted " in line for line in lines) == 2
    assert sum("│ candidate " in line for line in lines) == 4
    assert any("│ seed " in line for line in lines) and "best" in out.stdout
    gen = cli("show", rid, "1.1", *wsarg)
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.startswith("gen 1 candidate 1")
    assert "def improve_algorithm(initial_solution, utility, language_model):" in gen.stdout
    assert "# generation 1, candidate 1" in gen.stdout
    steps = json.loads(cli("show", rid, "--json", *wsarg).stdout)
    assert len(steps) == 7
    one = json.loads(cli("show", rid, "2", "--json", *wsarg).stdout)
    assert one["record"]["kind"] == "adopted" and one["record"]["decision"]["by"] == "alice"


def test_unknown_run_and_generation_are_one_line_errors(ws: tuple[Path, str]) -> None:
    root, rid = ws
    for args in (("show", "nope"), ("export", "nope", "--format", "csv"), ("show", rid, "9")):
        res = cli(*args, "--workspace", str(root / "stop-runs"))
        assert res.returncode == 2
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
        assert "stop-tui runs" in res.stderr or f"stop-tui show {rid}" in res.stderr


def test_export_scores(ws: tuple[Path, str], tmp_path: Path) -> None:
    root, rid = ws
    wsarg = ("--workspace", str(root / "stop-runs"))
    rows = json.loads(cli("export", rid, "--format", "json", *wsarg).stdout)
    assert len(rows) == 7 and {r["kind"] for r in rows} == {"seed", "candidate", "adopted"}
    target = tmp_path / "scores.csv"
    res = cli("export", rid, "--format", "csv", "-o", str(target), *wsarg)
    assert res.returncode == 0, res.stderr
    table = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(table) == 7 and "val_2" in table[0] and table[0]["model"] == "demo"


def test_bundle_export_and_import(ws: tuple[Path, str], tmp_path: Path) -> None:
    root, rid = ws
    bundle = tmp_path / "run.bundle"
    res = cli("export", rid, "--bundle", str(bundle), "--workspace", str(root / "stop-runs"))
    assert res.returncode == 0, res.stderr
    other = tmp_path / "other"
    imp = cli("import", str(bundle), "--workspace", str(other))
    assert imp.returncode == 0, imp.stderr
    assert f"imported run {rid} (7 improvers)" in imp.stdout
    assert RunStore(other).list_steps(rid) == RunStore(root / "stop-runs").list_steps(rid)
    bad = cli("import", str(tmp_path / "missing.bundle"), "--workspace", str(other))
    assert bad.returncode == 2 and "no bundle file" in bad.stderr
