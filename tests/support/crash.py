"""Helpers for the crash-safety tests: a demo-model HTTP endpoint, process trees,
kill triggers, ``git fsck`` and transcript bookkeeping.

Everything here is real: the endpoint is :class:`tests.support.openai_server.OpenAIServer`
on 127.0.0.1 answering with the demo library, runs are ``python -m stop_tui``
subprocesses, processes are found in ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stop_tui.lm.demo import DemoBackend
from stop_tui.lm.types import ChatRequest
from stop_tui.settings_shape import DEFAULT_MAX_TOKENS
from tests.support.openai_server import OpenAIServer

ROOT = Path(__file__).resolve().parents[2]
ZYGOTE_MARKER = "stop_tui.sandbox.guest.zygote"
MODEL = "crash-model"
# Git plumbing the run store uses to write a step (reads are rev-parse/log/cat-file).
GIT_WRITES = ("hash-object", "mktree", "commit-tree", "update-ref")


# ----------------------------------------------------------------- the endpoint


def body_request(body: dict[str, Any]) -> ChatRequest:
    """The :class:`ChatRequest` an OpenAI chat body carries (its content, no context).

    The improvers of these runs never name a response limit: the backend sends the
    run's (the default), recorded beside the request (``max_tokens_sent``), not in its
    content key; a body with any other limit keeps it in the request."""
    system = user = ""
    for message in body.get("messages", []):
        if message.get("role") == "system":
            system = str(message.get("content", ""))
        elif message.get("role") == "user":
            user = str(message.get("content", ""))
    return ChatRequest(
        model=str(body.get("model", "")),
        system=system,
        user=user,
        n=int(body.get("n") or 1),
        temperature=float(body.get("temperature", 1.0)),
        max_tokens=None if sent_limit(body) == DEFAULT_MAX_TOKENS else sent_limit(body),
    )


def sent_limit(body: dict[str, Any]) -> int | None:
    value = body.get("max_tokens", body.get("max_completion_tokens"))
    return None if value is None else int(value)


def demo_responder(body: dict[str, Any], seq: int) -> list[str]:
    """Demo-library answers as a pure function of the request content.

    A fresh :class:`DemoBackend` per request (so the occurrence is always 0): the
    server cannot see the run's context labels, and the answers must not depend on
    the order requests arrive in, or a killed-and-resumed run could not be compared
    with a clean one. Hostile improvers are left out (they only cost CPU time here).
    """
    demo = DemoBackend(seed=0, failure_rate=0.1, no_code_rate=0.05, hostile_rate=0.0)
    return asyncio.run(demo.complete(body_request(body))).texts


def demo_server(delay: float) -> OpenAIServer:
    """A started endpoint serving :data:`MODEL` with demo answers after ``delay`` s."""
    server = OpenAIServer(models=[MODEL], responder=demo_responder, delay=delay).start()
    # A killed client resets its connections: expected here, not worth a traceback.
    assert server._httpd is not None
    server._httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    return server


def received_keys(server: OpenAIServer, start: int = 0) -> list[str]:
    """Content keys of the chat requests the server received, in order, from ``start``."""
    return [body_request(body).key() for body in server.chat_requests()[start:]]


def run_env(home: Path, base_url: str) -> dict[str, str]:
    """The environment of a run subprocess: no inherited stop-tui/OpenAI settings, a
    private config directory, the test endpoint (``resume`` has no --base-url: the
    endpoint comes from the environment or stop.toml), a test key and a price for the
    test model."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STOP_TUI_", "OPENAI_", "AZURE_OPENAI_", "GIT_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        OPENAI_API_KEY="test",
        OPENAI_BASE_URL=base_url,
        STOP_TUI_PRICES=json.dumps({MODEL: [1.0, 2.0]}),
        XDG_CONFIG_HOME=str(home / "config"),
        HOME=str(home),
        COLUMNS="200",
    )
    return env


# ----------------------------------------------------------------- processes


def children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with (
                contextlib.suppress(OSError),
                open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh,
            ):
                out += [int(c) for c in fh.read().split()]
    return out


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (walks ``/proc/<pid>/task/*/children``)."""
    found: list[int] = []
    todo = children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children(child)
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None  # a zombie is dead
    return int(fields[19])


def identities(pids: list[int]) -> set[tuple[int, int]]:
    """(pid, start time) of the live ones: tells a reused pid apart."""
    out = set()
    for pid in pids:
        started = start_time(pid)
        if started is not None:
            out.add((pid, started))
    return out


def still_alive(ids: set[tuple[int, int]]) -> set[tuple[int, int]]:
    return {(pid, st) for pid, st in ids if start_time(pid) == st}


def zygote_processes() -> set[tuple[int, int]]:
    """Sandbox processes (bwrap, zygote, supervisors, jobs) started from this checkout."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            line = cmdline(int(name))
            if ZYGOTE_MARKER in line and str(ROOT) in line:
                pids.append(int(name))
    return identities(pids)


def wait_gone(ids: set[tuple[int, int]], timeout: float = 5.0) -> set[tuple[int, int]]:
    deadline = time.monotonic() + timeout
    left = still_alive(ids)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = still_alive(left)
    return left


# ----------------------------------------------------------------- the store


def git_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}


def fsck(ws: Path) -> subprocess.CompletedProcess[str]:
    """``git fsck --full --strict`` (dangling objects are allowed: a killed writer
    leaves blobs no commit names yet)."""
    return subprocess.run(
        ["git", "fsck", "--full", "--strict"],
        cwd=ws,
        capture_output=True,
        text=True,
        env=git_env(),
        check=False,
    )


def fsck_problems(ws: Path) -> str:
    """'' when fsck is clean, else what it said."""
    proc = fsck(ws)
    noise = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.strip() and not line.startswith(("dangling ", "Checking ", "notice:"))
    ]
    if proc.returncode != 0 or noise:
        return f"git fsck exit {proc.returncode}: " + "\n".join(noise)
    return ""


def run_ids(ws: Path) -> list[str]:
    heads = ws / ".git" / "refs" / "heads" / "stop"
    found = {p.name for p in heads.iterdir()} if heads.is_dir() else set()
    packed = ws / ".git" / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            name = line.partition(" ")[2]
            if name.startswith("refs/heads/stop/"):
                found.add(name.removeprefix("refs/heads/stop/"))
    return sorted(n for n in found if not n.endswith(".lock"))


def work_transcript(ws: Path, run_id: str) -> Path:
    return ws / ".git" / "stop-work" / f"{run_id}.jsonl"


def transcript_lines(path: Path) -> list[dict[str, Any]]:
    """Complete lines of a work transcript (a torn last line is skipped)."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    out = []
    for line in raw[: raw.rfind(b"\n") + 1].splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def ok_keys(lines: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(line["key"]) for line in lines if line.get("ok"))


def newline_count(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return fh.read().count(b"\n")
    except OSError:
        return 0


# ----------------------------------------------------------------- one attempt


@dataclass
class Trigger:
    """When to SIGKILL an attempt: ``kind`` and a threshold counted from its start.

    * ``lm``: the ``n``-th request of this attempt reached the server (it is in flight);
    * ``recorded``: the ``n``-th new line landed in the run's work transcript (a
      response was just fsynced, the engine has not used it yet);
    * ``commit``: the ``n``-th git plumbing write (``hash-object``, ``mktree``,
      ``commit-tree``, ``update-ref``) was seen running under the run;
    * ``eval``: the ``n``-th poll that saw sandbox jobs running and no LM request
      in flight (an improver waiting on its utility, or a solution being scored);
    * ``time``: ``seconds`` after the start.
    """

    kind: str
    n: int = 1
    seconds: float = 0.0

    def __str__(self) -> str:
        return f"time {self.seconds:.2f}s" if self.kind == "time" else f"{self.kind} #{self.n}"


@dataclass
class Attempt:
    argv: list[str]
    trigger: Trigger | None
    killed: bool = False
    returncode: int | None = None
    seconds: float = 0.0
    requests: list[str] = field(default_factory=list)  # content keys received meanwhile
    in_flight_at_kill: int = 0
    git_at_kill: list[str] = field(default_factory=list)
    jobs_at_kill: int = 0
    tree_at_kill: set[tuple[int, int]] = field(default_factory=set)
    output: str = ""

    @property
    def landed(self) -> str:
        """What the run was doing when it died."""
        if not self.killed:
            return "finished"
        if self.git_at_kill:
            return "commit"
        if self.in_flight_at_kill:
            return "lm"
        if self.jobs_at_kill:
            return "eval"
        return "other"


class Poller:
    """Watches one run process for trigger events."""

    def __init__(self, proc: subprocess.Popen[str], server: OpenAIServer, ws: Path) -> None:
        self.proc = proc
        self.server = server
        self.ws = ws
        self.base_requests = server.count()
        self.base_lines = self._lines()
        self.git_seen: set[int] = set()
        self.last_git: list[str] = []  # the git writes the last poll saw
        self.eval_polls = 0
        self.started = time.monotonic()
        self.tree: set[tuple[int, int]] = set()  # the run's processes at the last observe()
        self.jobs = 0  # processes under the zygote at the last observe()
        self._zygote: int | None = None

    def observe(self) -> None:
        """Note the run's process tree (cheap: ``/proc`` children lists, no cmdlines
        once the zygote is known)."""
        tree = descendants(self.proc.pid)
        self.tree = identities(tree)
        if self._zygote not in tree:
            self._zygote = next((p for p in tree if ZYGOTE_MARKER in cmdline(p)), None)
        self.jobs = len(descendants(self._zygote)) if self._zygote is not None else 0

    def _lines(self) -> int:
        work = self.ws / ".git" / "stop-work"
        if not work.is_dir():
            return 0
        return sum(newline_count(p) for p in work.glob("*.jsonl"))

    def git_writes(self) -> list[str]:
        out = []
        for pid in children(self.proc.pid):
            line = cmdline(pid)
            is_git = line.startswith("git") or "/git " in line
            if is_git and any(f" {w}" in line for w in GIT_WRITES):
                self.git_seen.add(pid)
                out.append(line.strip()[:80])
        return out

    def fired(self, trigger: Trigger) -> bool:
        if trigger.kind == "time":
            return time.monotonic() - self.started >= trigger.seconds
        if trigger.kind == "lm":
            return self.server.count() - self.base_requests >= trigger.n
        if trigger.kind == "recorded":
            return self._lines() - self.base_lines >= trigger.n
        if trigger.kind == "commit":
            self.last_git = self.git_writes()
            return len(self.git_seen) >= trigger.n
        if trigger.kind == "eval":
            if self.server.in_flight_now() == 0 and self.jobs > 0:
                self.eval_polls += 1
            return self.eval_polls >= trigger.n
        raise ValueError(trigger.kind)


def run_attempt(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    server: OpenAIServer,
    ws: Path,
    trigger: Trigger | None,
    timeout: float = 120.0,
    poll: float = 0.002,
) -> Attempt:
    """Start ``python -m stop_tui *argv`` in its own session; SIGKILL its process group
    when ``trigger`` fires (or let it finish). Returns what happened."""
    attempt = Attempt(argv=argv, trigger=trigger)
    base = server.count()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stop_tui", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    poller = Poller(proc, server, ws)
    try:
        while proc.poll() is None:
            if time.monotonic() - started > timeout:
                raise AssertionError(f"stop-tui {' '.join(argv)} ran for more than {timeout}s")
            poller.observe()
            if trigger is not None and poller.fired(trigger):
                attempt.in_flight_at_kill = server.in_flight_now()
                # A commit trigger fired on a git write it saw running: kill at once, in
                # the middle of the step's write sequence.
                git = poller.last_git if trigger.kind == "commit" else poller.git_writes()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                attempt.killed = True
                attempt.git_at_kill = git
                attempt.tree_at_kill = poller.tree  # observed just before the kill
                attempt.jobs_at_kill = poller.jobs
                break
            time.sleep(poll)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    attempt.output = out
    attempt.returncode = proc.returncode
    attempt.seconds = time.monotonic() - started
    attempt.requests = received_keys(server, base)
    return attempt


def steps_summary(ws: Path, run_id: str) -> list[tuple[int, str, int | None, float | None]]:
    """(generation, kind, candidate, meta-utility) of every step of a run, sorted."""
    from stop_tui.store.store import RunStore

    store = RunStore(ws)
    rows = [(s.generation, s.kind, s.candidate, s.meta_utility) for s in store.list_steps(run_id)]
    return sorted(rows, key=lambda r: (r[0], r[1], -1 if r[2] is None else r[2], str(r[3])))


def step_transcripts(ws: Path, run_id: str) -> dict[str, list[tuple[str, str, int, bool]]]:
    """Per step, the LM requests its commit carries: (context, key, occurrence, ok)."""
    from stop_tui.store.store import RunStore

    store = RunStore(ws)
    out = {}
    for step in store.list_steps(run_id):
        lines = store.get_transcript(step.commit)
        out[f"{step.generation}/{step.kind}/{step.candidate}"] = sorted(
            (str(x.get("context")), str(x["key"]), int(x["occurrence"]), bool(x.get("ok")))
            for x in lines
        )
    return out
