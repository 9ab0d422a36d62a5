"""Approval requests of a live run, published in the workspace so another process can answer.

A run that waits for a person writes each pending request to
``.git/stop-locks/<run-id>.pending/<request-id>.request.json`` (atomically: a
temporary file renamed into place) and removes it once the request is decided.
An answer is the file ``<request-id>.<session>.answer.json`` beside it, created with
``link(2)`` from a complete temporary file: the kernel lets exactly one creator
win, so the run's own terminal, a policy and any number of ``stop-tui answer``
processes race safely; whoever loses is told who won. Every decision of a run
with a board goes through this one claim, so a request is decided once.

A request names the session that asked it (a random token, the pid and its
start time): an answer must name that session and the SHA-256 of the exact
source being decided. A request whose run is no longer the run's lock holder
(killed, crashed, finished) is stale: it cannot be answered, and the next
session of the run removes it (:meth:`AnswerBoard.reset`).

Both files are read back as untrusted JSON: size-capped, type-checked, and a
malformed file is ignored (a request) or a refusal (an answer), never an
exception.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stop_tui.store.lock import RunLock, process_start, read_holder

FORMAT = 1
MAX_FILE_BYTES = 4 * 1024 * 1024  # a request carries the candidate and its parent's source
REQUEST_ID_RE = re.compile(r"^req-[0-9]{1,12}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
ACTIONS = ("approved", "rejected", "edited")
_SAFE = re.compile(r"[^A-Za-z0-9_.@/:+-]")


def safe_word(value: object, limit: int = 64) -> str:
    """An identity field (user, host, tty) reduced to plain filename-like characters."""
    return _SAFE.sub("?", str(value))[:limit] or "?"


def tty_name() -> str:
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            return os.ttyname(fd)
    return "no-tty"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_FILE_BYTES:
        return None
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class Published:
    """A request as another process reads it (fields checked; text still untrusted)."""

    data: dict[str, Any]
    live: bool  # the session that asked it still holds the run

    @property
    def request_id(self) -> str:
        return str(self.data["request_id"])

    @property
    def sha256(self) -> str:
        return str(self.data["source_sha256"])

    @property
    def session(self) -> str:
        return str(self.data["session"])

    def text(self, key: str) -> str:
        value = self.data.get(key)
        return value if isinstance(value, str) else ""

    def lines(self, key: str) -> list[str]:
        value = self.data.get(key)
        return [str(v) for v in value] if isinstance(value, list) else []


def check_request(data: dict[str, Any] | None, run_id: str) -> bool:
    if data is None or data.get("format") != FORMAT or data.get("run_id") != run_id:
        return False
    rid, sha = data.get("request_id"), data.get("source_sha256")
    return (
        isinstance(rid, str)
        and bool(REQUEST_ID_RE.match(rid))
        and isinstance(sha, str)
        and bool(SHA256_RE.match(sha))
        and isinstance(data.get("session"), str)
        and isinstance(data.get("pid"), int)
    )


def check_answer(data: dict[str, Any] | None, request: dict[str, Any]) -> str | None:
    """Why an answer file does not answer ``request`` (the published data), or None."""
    if data is None:
        return "the answer file is not readable JSON"
    if data.get("format") != FORMAT:
        return "the answer file has an unknown format"
    for key in ("run_id", "request_id", "session"):
        if data.get(key) != request.get(key):
            return f"the answer names another {key.replace('_', ' ')}"
    if data.get("source_sha256") != request.get("source_sha256"):
        return "the answer names another source"
    if data.get("action") not in ACTIONS:
        return "the answer's action is not approved or rejected"
    if not isinstance(data.get("reason", ""), str) or not isinstance(data.get("by", ""), str):
        return "the answer's fields have the wrong types"
    return None


class AnswerBoard:
    """The pending requests of one run and their answers (one directory under stop-locks)."""

    def __init__(self, lock_dir: Path, run_id: str) -> None:
        self.lock_dir = lock_dir
        self.run_id = run_id
        self.dir = lock_dir / f"{run_id}.pending"
        self.session = secrets.token_hex(8)

    def request_path(self, request_id: str) -> Path:
        return self.dir / f"{request_id}.request.json"

    def answer_path(self, request_id: str, session: str) -> Path:
        # Named by the session too: an answer to a killed session's request can never
        # take the claim of the next session's request of the same id.
        return self.dir / f"{request_id}.{safe_word(session, 32)}.answer.json"

    # -- the run's side

    def reset(self) -> None:
        """Remove every file a previous session left (call while holding the run's lock)."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def publish(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Write one request atomically; returns the data written."""
        pid = os.getpid()
        data = {
            "format": FORMAT,
            "run_id": self.run_id,
            "session": self.session,
            "pid": pid,
            "pid_start": process_start(pid),
            "host": socket.gethostname(),
            **fields,
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.request_path(str(data["request_id"]))
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        _write(tmp, data)
        os.replace(tmp, path)
        return data

    def withdraw(self, request_id: str) -> None:
        """The request is decided or abandoned: it is no longer offered (its answer stays,
        so a late answerer still loses the claim)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.request_path(request_id))

    def close(self) -> None:
        """The session ends: nothing of it stays answerable."""
        self.reset()

    # -- both sides

    def claim(self, request_id: str, session: str, answer: dict[str, Any]) -> dict[str, Any] | None:
        """Create the request's answer file with ``answer`` unless one exists.

        Returns None when this answer won, else the winner's answer as read (``{}`` when
        unreadable). Raises OSError when the directory cannot be written.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.answer_path(request_id, session)
        tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
        _write(tmp, {"format": FORMAT, **answer})
        try:
            os.link(tmp, final)  # atomic, and fails when the file exists: one winner
        except FileExistsError:
            return _read_json(final) or {}
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return None

    def answer(self, request_id: str, session: str) -> dict[str, Any] | None:
        """The answer that won the claim of a request, if any (``{}``: unreadable)."""
        path = self.answer_path(request_id, session)
        if not path.exists():
            return None
        return _read_json(path) or {}

    # -- the answerer's side

    def answers_to(self, request_id: str) -> dict[str, Any] | None:
        """The latest answer to a request of that id that is no longer offered (its
        session's answers stay until the session ends), if any."""
        found = []
        for path in self.dir.glob(f"{request_id}.*.answer.json"):
            with contextlib.suppress(OSError):  # the session ended meanwhile
                found.append((path.stat().st_mtime_ns, path))
        return (_read_json(max(found)[1]) or {}) if found else None

    def holder_alive(self, data: dict[str, Any]) -> bool:
        """Whether the process that published ``data`` still holds the run's lock."""
        holder = read_holder(self.lock_dir / f"{self.run_id}.lock")
        if not holder or RunLock._holder_dead(holder):
            return False
        return (
            holder.get("pid") == data.get("pid")
            and holder.get("host") == data.get("host")
            and holder.get("pid_start") == data.get("pid_start")
        )

    def requests(self) -> list[Published]:
        """Every readable request file, oldest id first, each marked live or stale."""
        if not self.dir.is_dir():
            return []
        found = []
        for path in self.dir.glob("req-*.request.json"):
            data = _read_json(path)
            if check_request(data, self.run_id):
                assert data is not None
                found.append(Published(data, self.holder_alive(data)))
        found.sort(key=lambda p: int(p.request_id.split("-")[1]))
        return found

    def request(self, request_id: str) -> Published | None:
        data = _read_json(self.request_path(request_id))
        if not check_request(data, self.run_id) or data is None:
            return None
        if data["request_id"] != request_id:
            return None
        return Published(data, self.holder_alive(data))


def _write(path: Path, data: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


def describe_answer(data: dict[str, Any]) -> str:
    """``approved by alice (stop-tui answer, pid 12, /dev/pts/3)`` from an answer file."""
    if not data:
        return "an unreadable answer"
    action = data.get("action") if data.get("action") in ACTIONS else "answered"
    return f"{action} by {decider(data)}"


def decider(data: dict[str, Any]) -> str:
    """Who answered, as the decision records it."""
    by = safe_word(data.get("by", "?"))
    via = data.get("via")
    if via == "answer":
        return (
            f"{by} (stop-tui answer, pid {safe_word(data.get('pid'), 12)}, "
            f"{safe_word(data.get('tty'))} on {safe_word(data.get('host'))})"
        )
    return by
