"""Crash safety of whole runs: SIGKILL ``stop-tui run``/``resume`` at many moments.

A chain of attempts on one run, each a real ``python -m stop_tui`` subprocess
talking to a real OpenAI-compatible endpoint on 127.0.0.1 (demo-library answers,
a small delay per request so kills land while requests are in flight). Every
attempt but the last is SIGKILLed (its whole process group) once, at a moment
chosen by an event: a request reaching the server, a response landing in the
work transcript, a git write running, sandbox jobs running with no request out,
or a time. After each kill: ``git fsck --full --strict`` is clean and every
process of the run (bwrap, zygote, supervisors, jobs) is gone. ``resume`` then
continues until the run finishes, and the finished run must equal a clean run
with the same seed: the same steps and scores, the same LM requests (as a
multiset of request contents), plus only the requests that were in flight at a
kill; a response recorded before a kill is never bought again; ``stop-tui
replay`` (offline) reproduces every score.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from stop_tui.settings_shape import DEFAULT_MAX_TOKENS
from stop_tui.store.store import RunStore
from tests.support.crash import (
    MODEL,
    Attempt,
    Trigger,
    demo_server,
    fsck_problems,
    ok_keys,
    run_attempt,
    run_env,
    run_ids,
    sent_limit,
    step_transcripts,
    steps_summary,
    transcript_lines,
    wait_gone,
    work_transcript,
    zygote_processes,
)

RUN_FLAGS = [
    "--generations",
    "5",  # long enough to be killed 20 times even with fast evaluations
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
    "--seed",
    "7",
    "--model",
    MODEL,
]
DELAY = 0.08  # seconds per LM request at the server

# One kill per attempt; the chain cycles through these (the first attempt is `run`).
TRIGGERS = [
    Trigger("lm", 2),
    Trigger("time", seconds=0.3),
    Trigger("recorded", 2),
    Trigger("commit", 3),
    Trigger("eval", 3),
    Trigger("time", seconds=1.2),
    Trigger("lm", 4),
    Trigger("recorded", 1),
    Trigger("eval", 40),
    Trigger("time", seconds=0.8),
    Trigger("commit", 5),
    Trigger("time", seconds=2.0),
    Trigger("lm", 1),
    Trigger("recorded", 5),
    Trigger("commit", 1),
    Trigger("eval", 1),
    Trigger("time", seconds=0.6),
    Trigger("lm", 6),
    Trigger("recorded", 3),
    Trigger("eval", 15),
    Trigger("commit", 8),
    Trigger("time", seconds=1.6),
    Trigger("lm", 3),
    Trigger("commit", 2),
    Trigger("eval", 8),
    Trigger("recorded", 4),
]
MIN_KILLS = 20
MAX_IN_FLIGHT = 8  # the endpoint's default max_concurrency: requests open at once
MAX_ATTEMPTS = 60


def _argv(command: str, ws: Path, base_url: str, run_id: str | None) -> list[str]:
    common = ["--headless", "--workspace", str(ws), "--approve", "auto"]
    if command == "run":
        return ["run", *common, *RUN_FLAGS, "--base-url", base_url]
    assert run_id is not None
    return ["resume", run_id, *common]


def _after_kill(attempt: Attempt, ws: Path, baseline: set[tuple[int, int]]) -> None:
    left = wait_gone(attempt.tree_at_kill)
    assert not left, f"processes of the killed run survived ({attempt.trigger}): {sorted(left)}"
    stray = wait_gone(zygote_processes() - baseline)
    assert not stray, f"sandbox processes survived the kill ({attempt.trigger}): {sorted(stray)}"
    problems = fsck_problems(ws)
    assert not problems, f"after a kill at {attempt.trigger}: {problems}"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_anywhere_then_resume_finishes_the_same_run(tmp_path: Path) -> None:
    baseline = zygote_processes()
    server = demo_server(DELAY)
    env = run_env(tmp_path, server.base_url)
    try:
        # -- a clean run: the reference
        clean_ws = tmp_path / "clean"
        clean = run_attempt(
            _argv("run", clean_ws, server.base_url, None),
            cwd=tmp_path,
            env=env,
            server=server,
            ws=clean_ws,
            trigger=None,
        )
        assert clean.returncode == 0, clean.output
        (clean_id,) = run_ids(clean_ws)
        clean_lines = transcript_lines(work_transcript(clean_ws, clean_id))
        clean_requests = Counter(clean.requests)
        # The server's content keys are the transcript's keys: one request, one record.
        assert ok_keys(clean_lines) == clean_requests
        # ... and what was sent beyond the content (the run's per-response limit) is recorded.
        assert {sent_limit(body) for body in server.chat_requests()} == {DEFAULT_MAX_TOKENS}
        assert {line.get("max_tokens_sent") for line in clean_lines if line.get("ok")} == {
            DEFAULT_MAX_TOKENS
        }
        assert len(clean.requests) >= 10, "the run is too small to kill it at many moments"
        clean_steps = steps_summary(clean_ws, clean_id)
        clean_step_lm = step_transcripts(clean_ws, clean_id)

        # -- the chain: run, killed; resume, killed; ... ; resume to the end
        ws = tmp_path / "crash"
        run_id: str | None = None
        attempts: list[Attempt] = []
        wasted: Counter[str] = Counter()  # requests whose response was never recorded
        recorded_before: Counter[str] = Counter()
        seen_lines: list[dict[str, object]] = []
        chain_start = time.monotonic()
        while True:
            assert len(attempts) < MAX_ATTEMPTS, "the run never finished"
            done = sum(a.killed for a in attempts)
            trigger = TRIGGERS[done % len(TRIGGERS)] if done < MIN_KILLS else None
            command = "run" if run_id is None else "resume"
            attempt = run_attempt(
                _argv(command, ws, server.base_url, run_id),
                cwd=tmp_path,
                env=env,
                server=server,
                ws=ws,
                trigger=trigger,
            )
            attempts.append(attempt)
            print(
                f"  {attempt.argv[0]:6} {attempt.trigger!s:14} -> {attempt.landed:8} "
                f"{attempt.seconds:5.2f}s {len(attempt.requests)} requests"
            )
            if run_id is None:
                ids = run_ids(ws)
                assert len(ids) <= 1, ids
                run_id = ids[0] if ids else None
            if attempt.killed:
                _after_kill(attempt, ws, baseline)
            else:
                assert attempt.returncode == 0, attempt.output
            if run_id is None:
                assert not attempt.requests, "LM requests before the run existed"
                continue
            lines = transcript_lines(work_transcript(ws, run_id))
            # The transcript only grows: what was recorded stays as it was.
            assert lines[: len(seen_lines)] == seen_lines
            added = ok_keys(lines[len(seen_lines) :])
            sent = Counter(attempt.requests)
            # A response recorded before this attempt is served from the transcript, never
            # bought again: per request content, the attempt sends at most what the run
            # still needs (the clean run's count minus what is recorded already).
            resent = sent - (clean_requests - recorded_before)
            assert not resent, f"recorded requests sent again by {attempt.argv[0]}: {resent}"
            # Every request sent now is recorded now, or was lost in flight at the kill.
            assert not (added - sent), "a transcript line without a request at the server"
            lost = sent - added
            assert sum(lost.values()) <= MAX_IN_FLIGHT, lost
            assert attempt.killed or not lost
            wasted += lost
            recorded_before += added
            seen_lines = lines
            if not attempt.killed:
                break
        chain_seconds = time.monotonic() - chain_start
    finally:
        server.stop()

    kills = [a for a in attempts if a.killed]
    assert len(kills) >= MIN_KILLS
    landed = Counter(a.landed for a in kills)
    assert landed["lm"] and landed["eval"] and landed["commit"], landed

    assert run_id is not None
    final_lines = transcript_lines(work_transcript(ws, run_id))
    # Exactly the clean run's requests were answered and recorded, each once ...
    assert ok_keys(final_lines) == clean_requests
    slots = Counter((line.get("context"), line["key"], line["occurrence"]) for line in final_lines)
    assert max(slots.values()) == 1, "a request slot recorded twice"
    # ... and the server saw those plus only the ones in flight at a kill.
    chain_requests = Counter(k for a in attempts for k in a.requests)
    assert chain_requests == clean_requests + wasted

    # The same run: every step and score equals the clean run's.
    assert steps_summary(ws, run_id) == clean_steps
    # ... and every step's commit carries the same LM requests as the clean run's.
    assert step_transcripts(ws, run_id) == clean_step_lm
    state = RunStore(ws).get_state(run_id)
    assert state is not None and (state.status, state.generation) == (
        "finished",
        int(RUN_FLAGS[RUN_FLAGS.index("--generations") + 1]),
    )
    assert not fsck_problems(ws)

    # Offline replay (the server is stopped) reproduces every score.
    replay = subprocess.run(
        [sys.executable, "-m", "stop_tui", "replay", run_id, "--workspace", str(ws)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "every score matches" in replay.stdout

    print(
        f"\ncrash chain: {len(kills)} kills ({dict(landed)}), {len(attempts)} attempts, "
        f"{chain_seconds:.1f}s; clean run {clean.seconds:.1f}s, "
        f"{sum(clean_requests.values())} requests; chain sent {sum(chain_requests.values())} "
        f"({sum(wasted.values())} lost in flight)"
    )


def _lock_holder(ws: Path, run_id: str) -> dict[str, object]:
    path = ws / ".git" / "stop-locks" / f"{run_id}.lock"
    try:
        text = path.read_text()
        return dict(json.loads(text)) if text.strip() else {}
    except (OSError, ValueError):
        return {}


def _wait_for(predicate: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not predicate():
        assert proc.poll() is None, f"exited before {what}: {proc.communicate()[0]}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.01)


def _start(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stop_tui", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


DEMO = ["--model", "demo", "--demo-latency", "0.5"]  # slow requests: the holder stays busy


@pytest.mark.slow
def test_a_second_process_never_writes_a_run_that_another_holds(tmp_path: Path) -> None:
    env = run_env(tmp_path, "http://127.0.0.1:9/v1")
    del env["OPENAI_BASE_URL"], env["OPENAI_API_KEY"]
    ws = tmp_path / "ws"
    small = RUN_FLAGS[: RUN_FLAGS.index("--model")]
    first = _start(
        ["run", "--headless", "--workspace", str(ws), "--approve", "auto", *small, *DEMO],
        tmp_path,
        env,
    )
    try:
        _wait_for(lambda: bool(run_ids(ws)), first, "the run's first commit")
    finally:
        _kill(first)
    (run_id,) = run_ids(ws)
    resume = ["resume", run_id, "--headless", "--workspace", str(ws), "--approve", "auto"]

    holder = _start(resume, tmp_path, env)
    try:
        _wait_for(lambda: _lock_holder(ws, run_id).get("pid") == holder.pid, holder, "the lock")
        second = subprocess.run(
            [sys.executable, "-m", "stop_tui", *resume],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert holder.poll() is None, "the holder ended before the second process tried"
    finally:
        _kill(holder)
    assert second.returncode != 0
    assert second.stdout.strip() == ""
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    line = lines[0]
    assert f"run {run_id} is in use by pid {holder.pid} on {socket.gethostname()}" in line
    assert "(resume)" in line and "Traceback" not in line
    print(f"\nrefused: {line}")
    assert not fsck_problems(ws)

    # A dead holder's lock is taken over: the next resume gets the run.
    third = _start(resume, tmp_path, env)
    try:
        _wait_for(lambda: _lock_holder(ws, run_id).get("pid") == third.pid, third, "the lock")
    finally:
        _kill(third)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_run_wide_cap_holds_across_crashes(tmp_path: Path) -> None:
    """--max-calls caps the requests of the whole run, not of each process: a run
    killed and resumed stops where the clean run stops, having bought no more."""
    server = demo_server(0.05)
    env = run_env(tmp_path, server.base_url)
    cap = ["--max-calls", "12"]
    try:
        clean_ws = tmp_path / "clean"
        clean = run_attempt(
            _argv("run", clean_ws, server.base_url, None) + cap,
            cwd=tmp_path,
            env=env,
            server=server,
            ws=clean_ws,
            trigger=None,
        )
        assert "run budget reached" in clean.output, clean.output
        assert len(clean.requests) == 12
        (clean_id,) = run_ids(clean_ws)

        ws = tmp_path / "crash"
        run_id: str | None = None
        attempts: list[Attempt] = []
        lost = 0
        recorded = 0
        for trigger in (Trigger("recorded", 8), Trigger("recorded", 2), None):
            if run_id is None:
                argv = _argv("run", ws, server.base_url, None) + cap
            else:
                argv = _argv("resume", ws, server.base_url, run_id)
            attempt = run_attempt(
                argv, cwd=tmp_path, env=env, server=server, ws=ws, trigger=trigger
            )
            attempts.append(attempt)
            run_id = run_id or run_ids(ws)[0]
            now = sum(ok_keys(transcript_lines(work_transcript(ws, run_id))).values())
            added, recorded = now - recorded, now
            assert added <= len(attempt.requests)
            lost += len(attempt.requests) - added  # sent, never answered and recorded
            assert len(attempt.requests) - added <= (MAX_IN_FLIGHT if attempt.killed else 0)
    finally:
        server.stop()
    assert [a.killed for a in attempts] == [True, True, False]
    assert run_id is not None and "run budget reached" in attempts[-1].output
    # The cap's worth of requests was recorded, as in the clean run; the server saw
    # those plus only what the kills cut off in flight.
    assert recorded == 12
    assert sum(len(a.requests) for a in attempts) == 12 + lost
    assert steps_summary(ws, run_id) == steps_summary(clean_ws, clean_id)
