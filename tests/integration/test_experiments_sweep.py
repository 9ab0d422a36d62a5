"""Sweeps end to end on the demo model: grouping in git, the concurrency limit, one
approval queue, sweep-wide caps, the report (its numbers match ``export``)."""

from __future__ import annotations

import csv
import io
import json
import struct
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from stop_tui.config import load_settings
from stop_tui.engine.events import RunFinished, RunStarted
from stop_tui.experiments.controller import SweepController
from stop_tui.experiments.record import SweepRecord, save
from stop_tui.experiments.spec import parse_sweep
from stop_tui.store.store import RunStore
from tests.support.sweep import cli, in_force_from_export, sweep_text

pytestmark = pytest.mark.slow


def controller_for(tmp_path: Path, text: str) -> SweepController:
    store = RunStore(tmp_path / "ws", create=True)
    record = SweepRecord.new(parse_sweep(text), text)
    save(store, record, "created")
    return SweepController(
        record, store, lambda overrides: load_settings(overrides, None, environ={})
    )


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_headless_sweep_is_grouped_in_git_and_its_report_matches_export(tmp_path: Path) -> None:
    (tmp_path / "grid.toml").write_text(sweep_text(["parity_noise", "three_sat"], [0, 1]))
    result = cli("sweep", "grid.toml", "--headless", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "peak concurrency 2" in result.stdout
    (sweep,) = json.loads(cli("sweeps", "--json", cwd=tmp_path).stdout)
    sweep_id = sweep["sweep_id"]
    run_ids = [c["run_id"] for c in sweep["cells"]]
    assert len(run_ids) == 4 and sweep["status"] == "finished"
    assert sweep["info"]["peak_concurrency"] == 2
    # Plain git shows the grouping: the sweep's ref lists the runs, each an ordinary branch.
    ws = tmp_path / "stop-runs"
    listed = cli("runs", "--json", cwd=tmp_path)
    assert {r["run_id"] for r in json.loads(listed.stdout)} == set(run_ids)
    import subprocess

    shown = subprocess.run(
        ["git", "show", f"refs/stop-sweeps/{sweep_id}:runs.txt"],
        cwd=ws, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert [line.split("\t")[0] for line in shown.splitlines()] == run_ids
    assert all(f"stop/{r}" in shown for r in run_ids)
    spec_text = subprocess.run(
        ["git", "show", f"refs/stop-sweeps/{sweep_id}:sweep.toml"],
        cwd=ws, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert spec_text == (tmp_path / "grid.toml").read_text()

    summary = cli("show", sweep_id, cwd=tmp_path)
    assert summary.returncode == 0 and "val-test gap" in summary.stdout

    report = cli("report", sweep_id, "--out", "rep", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    out = tmp_path / "rep"
    for stem in ("curve", "curve-test"):
        width, height = png_size(out / f"{stem}.png")
        assert width > 300 and height > 200
        root = ET.parse(out / f"{stem}.svg").getroot()
        assert root.tag.endswith("svg")
    data = json.loads((out / "report.json").read_text())
    # Every cell's numbers are the ones `stop-tui export` prints for its run.
    for c in data["cells"]:
        exported = json.loads(cli("export", c["run_id"], cwd=tmp_path).stdout)
        expected = in_force_from_export(exported)
        assert {int(k): v for k, v in c["val"].items()} == expected
        assert c["status"] == "finished" and c["software_version"]
        assert c["settings"]["seed"] == c["seed"] and c["settings"]["model"] == "demo"
        assert any("demo" in e for e in c["endpoints"])
    # The curve's means are the means of those numbers.
    for row in data["curve"]:
        vals = [
            c["val"][str(row["generation"])]
            for c in data["cells"]
            if c["task"] == row["task"] and str(row["generation"]) in c["val"]
        ]
        assert row["n"] == len(vals) == 2
        assert row["val_mean"] == pytest.approx(sum(vals) / len(vals))
    curve_csv = list(csv.DictReader(io.StringIO((out / "curve.csv").read_text())))
    assert len(curve_csv) == len(data["curve"]) == 2 * 3
    assert float(curve_csv[0]["val_mean"]) == pytest.approx(data["curve"][0]["val_mean"])
    md = (out / "summary.md").read_text()
    assert "![curve.png](curve.png)" in md and "improved >= threshold" in md


async def test_cells_share_one_approval_queue_and_respect_the_concurrency_limit(
    tmp_path: Path,
) -> None:
    from stop_tui.cli.sweep_view import drive

    text = sweep_text(["parity_noise"], [0, 1, 2], generations=1, concurrency=2)
    controller = controller_for(
        tmp_path, text.replace('models = ["demo"]', 'models = ["demo"]\napproval = "ask"')
    )
    running: set[str] = set()
    peak = 0

    def watch(event: Any) -> None:
        nonlocal peak
        if isinstance(event, RunStarted):
            running.add(event.run_id)
            peak = max(peak, len(running))
        elif isinstance(event, RunFinished):
            running.discard(event.run_id)

    controller.bus.on(watch)
    spans: list[int] = []

    def answer(candidate: bool, cancel: threading.Event) -> str:
        # The first answer waits until two cells wait in the one queue at once.
        deadline = time.monotonic() + (60 if not spans else 0)
        while True:
            runs = {item.run_id for item in list(controller.queue.pending)}
            if len(runs) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        spans.append(len(runs))
        return "a"

    out = io.StringIO()
    result, _ = await drive(controller, Console(file=out, width=200), ask=True, read=answer)
    assert result.ok, result.outcomes
    assert peak == 2 and result.peak_concurrency == 2
    assert spans[0] == 2
    asked = controller.queue.asked
    assert {item.run_id for item in asked} == {e.run_id for e in controller.record.cells}
    assert all(not item.request.pending for item in asked)
    text_out = out.getvalue()
    for e in controller.record.cells:  # each request labelled with its cell and run
        assert f"approval: {e.cell.key} ({e.run_id}): generation" in text_out


async def test_a_cells_request_is_answered_from_another_terminal(tmp_path: Path) -> None:
    """Every cell's requests are published like a single run's: `stop-tui answer` from a
    second terminal decides one, the sweep's prompt stands down (what the person had not
    yet typed is never applied), and the cell's record names the other terminal."""
    from stop_tui.cli.sweep_view import drive

    text = sweep_text(["parity_noise"], [0, 1], generations=1, concurrency=2)
    controller = controller_for(
        tmp_path, text.replace('models = ["demo"]', 'models = ["demo"]\napproval = "ask"')
    )
    workspace = str(controller.store.path)
    answered: list[dict[str, Any]] = []
    stood_down = threading.Event()

    def answer(candidate: bool, cancel: threading.Event) -> str:
        if not answered:  # the first request: decided by a second terminal meanwhile
            listed = json.loads(
                cli("pending", "--json", "--workspace", workspace, cwd=tmp_path).stdout
            )
            # the first asked (ids count up in the order asked): the one the prompt shows
            live = [r for r in listed if r["live"]]
            request = min(live, key=lambda r: int(r["request_id"].rpartition("-")[2]))
            done = cli(
                "answer", request["run_id"], request["request_id"], "reject",
                "--sha256", request["source_sha256"], "--note", "from the other terminal",
                "--workspace", workspace, cwd=tmp_path,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            answered.append(request)
            if cancel.wait(30):  # the person typed nothing yet: the prompt gives up
                stood_down.set()
                return ""
        return "a"

    out = io.StringIO()
    result, _ = await drive(controller, Console(file=out, width=200), ask=True, read=answer)
    assert result.ok, result.outcomes
    (request,) = answered
    assert stood_down.is_set() and "was answered elsewhere" in out.getvalue()
    steps = controller.store.list_steps(request["run_id"])
    decisions = [controller.store.get_record(s.commit).decision for s in steps]
    (theirs,) = [d for d in decisions if d is not None and d.reason == "from the other terminal"]
    assert theirs.action == "rejected" and "(stop-tui answer, pid " in theirs.by
    assert theirs.source_sha256 == request["source_sha256"]
    assert not list(controller.store.lock_dir.glob("*.pending/*.request.json"))  # none left


async def test_sweep_caps_stop_cells_cleanly_and_are_counted(tmp_path: Path) -> None:
    from stop_tui.experiments.results import collect
    from stop_tui.experiments.stats import compute
    from tests.support.crash import transcript_lines, work_transcript

    text = sweep_text(["parity_noise"], [0, 1], extra="[caps]\nmax_calls = 5\n")
    controller = controller_for(tmp_path, text)
    result = await controller.run()
    assert not result.ok
    assert [o.status for o in result.outcomes] == ["failed", "failed"]
    assert all("sweep's cap of 5" in o.message for o in result.outcomes), result.outcomes
    assert controller.budget.calls_used <= 5
    ws = controller.store.path
    sent = sum(
        len(transcript_lines(work_transcript(ws, e.run_id))) for e in controller.record.cells
    )
    assert sent <= 5
    cells = collect(controller.store, controller.record)
    (group,) = compute(cells, 2).groups
    assert (group.cells, group.failed, group.finished) == (2, 2, 0)


def test_headless_approve_ask_answers_both_runs_at_one_terminal(tmp_path: Path) -> None:
    import os
    import pty
    import subprocess
    import sys

    from tests.support.sweep import clean_env

    (tmp_path / "grid.toml").write_text(sweep_text(["parity_noise"], [0, 1], generations=1))
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stop_tui", "sweep", "grid.toml", "--headless", "--approve", "ask"],
        cwd=tmp_path, env=clean_env(), stdin=slave, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.close(slave)
    stop = threading.Event()

    def feed() -> None:  # a person pressing "a" + Enter at every question
        while not stop.wait(0.2):
            try:
                os.write(master, b"a\n")
            except OSError:
                return

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        out, err = proc.communicate(timeout=400)
    finally:
        stop.set()
        os.close(master)
    assert proc.returncode == 0, out + err
    (sweep,) = json.loads(cli("sweeps", "--json", cwd=tmp_path).stdout)
    for c in sweep["cells"]:
        assert f"approval: {c['key']} ({c['run_id']}): generation" in out
        decisions = [
            r["decision"] for r in json.loads(cli("export", c["run_id"], cwd=tmp_path).stdout)
        ]
        assert any(d.startswith("approved by") and "policy" not in d for d in decisions), decisions


async def test_transfer_of_the_best_improver_with_repeats(tmp_path: Path) -> None:
    from stop_tui.experiments.report import numbers, write_report
    from stop_tui.experiments.results import collect
    from stop_tui.experiments.stats import compute
    from stop_tui.experiments.transfer import transfer_best

    text = sweep_text(["parity_noise"], [0, 1], generations=1)
    text += '\n[transfer]\ntasks = ["parity_noiseless"]\nrepeats = 2\n'
    controller = controller_for(tmp_path, text)
    assert (await controller.run()).ok
    cells = collect(controller.store, controller.record)
    rows = await transfer_best(controller.store, controller.record, cells, controller.settings_for)
    (row,) = rows
    best = max(cells, key=lambda c: c.val[1])
    assert row["model"] == "demo" and row["improver_from"] == best.key
    assert row["improver_commit"] == controller.store.best(best.run_id).commit  # type: ignore[union-attr]
    assert row["task"] == "parity_noiseless" and row["repeats"] == 2
    assert len(row["improver_values"]) == len(row["seed_improver_values"]) == 2
    stats = compute(cells, 1)
    written = write_report(tmp_path / "rep", numbers(controller.record, cells, stats, rows))
    assert tmp_path / "rep" / "transfer.svg" in written
    assert png_size(tmp_path / "rep" / "transfer.png")[0] > 200
    ET.parse(tmp_path / "rep" / "transfer.svg")


async def test_a_cell_that_cannot_start_is_counted_and_shown_not_dropped(tmp_path: Path) -> None:
    from stop_tui.experiments.report import numbers, summary_markdown
    from stop_tui.experiments.results import collect
    from stop_tui.experiments.stats import compute

    text = sweep_text(["parity_noise"], [0], generations=1)
    text = text.replace('models = ["demo"]', 'models = ["demo", "no-such-model"]')
    controller = controller_for(tmp_path, text)  # no endpoint, no key: the second cannot start
    result = await controller.run()
    assert [o.status for o in result.outcomes] == ["finished", "error"]
    assert "no API key" in result.outcomes[1].message
    cells = collect(controller.store, controller.record)
    assert [c.status for c in cells] == ["finished", "error"]
    stats = compute(cells, 1)
    broken = next(g for g in stats.groups if g.model == "no-such-model")
    assert (broken.cells, broken.failed, broken.finished, broken.final) == (1, 1, 0, None)
    md = summary_markdown(numbers(controller.record, cells, stats), [])
    assert "| parity_noise/no-such-model/base/s0 |" in md and "| error |" in md
