"""Answering a headless run's approval request from a second process (``stop-tui answer``).

Real processes throughout: the run is ``stop-tui run --headless --approve ask`` with
the demo (scripted) model and a pseudo-terminal as its stdin; every answer is a
``stop-tui answer`` process. Whoever answers first decides; the run's store records
exactly that decision with who gave it.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from stop_tui.store.records import Decision, sha256_hex
from stop_tui.store.store import RunStore

pytestmark = [pytest.mark.timeout(400)]

ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "--model", "demo", "--generations", "1", "--meta-utility-tests", "2",
    "--meta-utility-budget", "3", "--utility-budget", "3", "--lm-budget", "2",
    "--max-responses-per-call", "3",
]  # fmt: skip


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STOP_TUI_", "OPENAI_"))}
    return {**clean, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stop_tui", *args],
        capture_output=True, text=True, cwd=cwd, env=env(), stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


def answer_proc(cwd: Path, run_id: str, rid: str, verdict: str, sha: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stop_tui", "answer", run_id, rid, verdict, "--sha256", sha],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env(),
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


class LiveRun:
    """A headless run waiting on ``--approve ask``, its stdin a terminal we can type at."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.cwd = cwd
        master, slave = pty.openpty()
        self.master = master
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stop_tui", *args, "--headless", "--approve", "ask"],
            cwd=cwd, env=env(), stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        out = self.proc.stdout
        self.reader = threading.Thread(target=lambda: self.lines.extend(out), daemon=True)
        self.reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def pending(self, run_id: str | None = None) -> list[dict[str, Any]]:
        result = cli("pending", *([run_id] if run_id else []), "--json", cwd=self.cwd)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def next_request(self, seen: set[str] = frozenset()) -> dict[str, Any] | None:  # type: ignore[assignment]
        """The next live request not in ``seen``; None once the run has ended."""
        while self.proc.poll() is None:
            live = [r for r in self.pending() if r["live"] and r["request_id"] not in seen]
            if live:
                return live[0]
            time.sleep(0.2)
        return None

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def reject_the_rest(self, seen: set[str]) -> int:
        """Answer every further request with reject (from here) until the run ends."""
        while (request := self.next_request(seen)) is not None:
            seen.add(request["request_id"])
            cli("answer", request["run_id"], request["request_id"], "reject",
                "--sha256", request["source_sha256"], cwd=self.cwd)  # fmt: skip
        return self.wait()

    def wait(self) -> int:
        code = self.proc.wait(timeout=300)
        self.reader.join(timeout=10)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.wait()


def decision_of(cwd: Path, request: dict[str, Any]) -> Decision:
    """The decision the store recorded for the candidate a request asked about."""
    store = RunStore(cwd / "stop-runs")
    (step,) = [
        s
        for s in store.list_steps(request["run_id"])
        if s.kind == "candidate"
        and (s.generation, s.candidate) == (request["generation"], request["index"])
    ]
    decision = store.get_record(step.commit).decision
    assert decision is not None
    return decision


def one_line_error(result: subprocess.CompletedProcess[str] | tuple[int, str]) -> str:
    code, err = (result.returncode, result.stderr) if not isinstance(result, tuple) else result
    assert code != 0 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_request_is_answered_from_a_second_terminal(tmp_path: Path) -> None:
    run = LiveRun(tmp_path, "run", *SMALL)
    try:
        request = run.next_request()
        assert request is not None and request["index"] == 0, run.output
        run_id, rid, sha = request["run_id"], request["request_id"], request["source_sha256"]
        # The second terminal sees exactly what will run, and the line that decides it.
        shown = cli("pending", run_id, rid, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert f"source sha256 {sha}" in shown.stdout and "def improve_algorithm" in shown.stdout
        assert f"stop-tui answer {run_id} {rid} approve|reject --sha256 {sha}" in shown.stdout
        source = json.loads(cli("pending", run_id, rid, "--json", cwd=tmp_path).stdout)["source"]
        assert sha256_hex(source) == sha
        # An answer naming another source is refused, and the request stays open.
        wrong = cli("answer", run_id, rid, "approve", "--sha256", sha256_hex("x"), cwd=tmp_path)
        assert "is about source" in one_line_error(wrong)
        assert cli("answer", run_id, rid, "maybe", "--sha256", sha, cwd=tmp_path).returncode == 2
        assert [r["request_id"] for r in run.pending(run_id) if r["live"]] == [rid]
        answered = cli(
            "answer", run_id, rid, "approve", "--sha256", sha, "--note", "read it", cwd=tmp_path
        )
        assert answered.returncode == 0, answered.stderr
        assert "the run took the answer" in answered.stdout
        again = cli("answer", run_id, rid, "reject", "--sha256", sha, cwd=tmp_path)
        assert "was already approved by" in one_line_error(again)
        assert run.reject_the_rest({rid}) == 0, run.output
    finally:
        run.kill()
    decision = decision_of(tmp_path, request)
    assert decision.action == "approved" and decision.reason == "read it"
    assert "(stop-tui answer, pid " in decision.by and decision.source_sha256 == sha
    assert f"{rid} was answered elsewhere" in run.output  # the local prompt stood down


def test_answers_race_and_exactly_one_decides(tmp_path: Path) -> None:
    run = LiveRun(tmp_path, "run", *SMALL)
    seen: set[str] = set()
    try:
        # Two remote answers at once: one wins, the other is told who did.
        first = run.next_request()
        assert first is not None, run.output
        seen.add(first["request_id"])
        args = (tmp_path, first["run_id"], first["request_id"])
        racers = [answer_proc(*args, v, first["source_sha256"]) for v in ("approve", "reject")]
        results = [(p.wait(timeout=120), *p.communicate()) for p in racers]
        winners = [i for i, (code, _, _) in enumerate(results) if code == 0]
        assert len(winners) == 1, results
        loser = results[1 - winners[0]]
        assert "was already" in one_line_error((loser[0], loser[2]))
        first_won = ("approved", "rejected")[winners[0]]
        # The run's own terminal against a remote answer, on the next request.
        second = run.next_request(seen)
        assert second is not None, run.output
        seen.add(second["request_id"])
        remote = answer_proc(
            tmp_path, second["run_id"], second["request_id"], "reject", second["source_sha256"]
        )
        run.type("a\n")
        code, out, err = remote.wait(timeout=120), *remote.communicate()
        assert run.reject_the_rest(seen) == 0, run.output
    finally:
        run.kill()
    decision = decision_of(tmp_path, first)
    assert decision.action == first_won and "(stop-tui answer, pid " in decision.by
    decision = decision_of(tmp_path, second)
    if code == 0:  # the remote answer won: the terminal's was not recorded
        assert decision.action == "rejected" and "(stop-tui answer" in decision.by
    else:  # the terminal won: the remote answerer is told so, in one line
        assert "was already approved by" in one_line_error((code, err)), out
        assert decision.action == "approved" and "stop-tui answer" not in decision.by
    assert decision.source_sha256 == second["source_sha256"]


def test_a_killed_runs_request_is_stale_and_cleaned_on_resume(tmp_path: Path) -> None:
    run = LiveRun(tmp_path, "run", *SMALL)
    try:
        request = run.next_request()
        assert request is not None, run.output
    finally:
        run.kill()
    run_id, rid, sha = request["run_id"], request["request_id"], request["source_sha256"]
    (left,) = run.pending(run_id)
    assert left["request_id"] == rid and not left["live"]
    listed = cli("pending", run_id, cwd=tmp_path)
    assert "stale" in listed.stdout and "answer:" not in listed.stdout
    refused = cli("answer", run_id, rid, "approve", "--sha256", sha, cwd=tmp_path)
    assert "is stale" in one_line_error(refused) and "resume" in refused.stderr
    pending_dir = tmp_path / "stop-runs" / ".git" / "stop-locks" / f"{run_id}.pending"
    assert not list(pending_dir.glob("*.answer.json"))  # the refusal wrote nothing
    old = {p.name: p.read_text() for p in pending_dir.glob("*.request.json")}
    resumed = LiveRun(tmp_path, "resume", run_id)
    try:
        fresh = resumed.next_request()
        assert fresh is not None, resumed.output
        # Only the new session's requests are offered: the killed one's file is gone.
        assert all(r["live"] for r in resumed.pending(run_id))
        for name, text in old.items():
            path = pending_dir / name
            assert not path.exists() or path.read_text() != text
    finally:
        resumed.kill()
