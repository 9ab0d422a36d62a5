"""The gate's requests on the workspace's answer board: one claim per request, answer
files read as untrusted input, nothing left answerable once a request is decided."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from stop_tui.engine.approval import ApprovalRequest, Decision, Gate, Policy, Purpose, SharedAnswers
from stop_tui.store.answers import AnswerBoard
from stop_tui.store.lock import RunLock
from stop_tui.store.records import sha256_hex

SOURCE = "def improve_algorithm(s, u, lm):\n    return s\n"


def request() -> ApprovalRequest:
    return ApprovalRequest("run-1", 1, 0, Purpose.CANDIDATE, SOURCE, "parent", (), {"tests": 2})


def answer(board: AnswerBoard, published: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data = {
        "run_id": "run-1",
        "request_id": published["request_id"],
        "session": board.session,
        "source_sha256": sha256_hex(SOURCE),
        "action": "approved",
        "reason": "fine",
        "by": "carol",
        "via": "answer",
        "pid": 7,
        "tty": "/dev/pts/9",
        "host": "h",
        **changes,
    }
    return {k: v for k, v in data.items() if v is not None}


async def ask(tmp_path: Path, write: Any) -> tuple[Decision, AnswerBoard, ApprovalRequest]:
    """Ask one request; ``write(board, published)`` answers it as another process would."""
    gate = Gate(Policy.EVERY_CANDIDATE)
    board = AnswerBoard(tmp_path, "run-1")
    shared = SharedAnswers(gate, board, poll=0.01)
    req = request()
    asking = asyncio.ensure_future(gate.ask(req))
    watching = asyncio.ensure_future(shared.watch())
    while req.request_id not in shared.offered:
        await asyncio.sleep(0.01)
    write(board, shared.offered[req.request_id][1])
    try:
        decision = await asyncio.wait_for(asking, 60)
    finally:
        watching.cancel()
    return decision, board, req


async def test_a_remote_answer_decides_and_the_terminal_then_loses(tmp_path: Path) -> None:
    def write(board: AnswerBoard, published: dict[str, Any]) -> None:
        assert board.claim(published["request_id"], board.session, answer(board, published)) is None

    with RunLock(tmp_path, "run-1"):
        decision, board, req = await ask(tmp_path, write)
        assert decision.action == "approved" and decision.reason == "fine"
        assert decision.by == "carol (stop-tui answer, pid 7, /dev/pts/9 on h)"
        assert not board.request_path(req.request_id).exists()  # no longer offered
        # The terminal answering late is told who won, and changes nothing.
        assert not req.reject("too late", by="dave")
        assert req.lost_to == "approved by carol (stop-tui answer, pid 7, /dev/pts/9 on h)"


async def test_hostile_answer_files_fail_closed(tmp_path: Path) -> None:
    cases: list[dict[str, Any] | bytes] = [
        {"source_sha256": sha256_hex("other source")},  # another candidate's hash
        {"action": "edited"},  # another process cannot hand in a source
        {"action": "approve; rm -rf"},
        {"session": "0" * 16},
        b"\x00not json",
        b"[" * 100_000,  # deeply nested
    ]
    for case in cases:

        def write(board: AnswerBoard, published: dict[str, Any], case: Any = case) -> None:
            path = board.answer_path(published["request_id"], board.session)
            if isinstance(case, bytes):
                path.write_bytes(case)
            else:
                path.write_text(json.dumps({"format": 1, **answer(board, published, **case)}))

        decision, _board, _req = await ask(tmp_path, write)
        assert decision.action == "rejected" and decision.by == "gate", case
        assert decision.reason.startswith("unusable answer file"), case


async def test_an_identity_cannot_forge_lines_or_markup(tmp_path: Path) -> None:
    def write(board: AnswerBoard, published: dict[str, Any]) -> None:
        hostile = answer(board, published, by="eve\nStop-Decision: approved by root [bold]x")
        board.claim(published["request_id"], board.session, hostile)

    decision, _board, _req = await ask(tmp_path, write)
    assert "\n" not in decision.by and "[" not in decision.by and " by root" not in decision.by


async def test_one_claim_per_request(tmp_path: Path) -> None:
    board = AnswerBoard(tmp_path, "run-1")
    first = {"action": "approved", "by": "a"}
    assert board.claim("req-1", "s", first) is None
    assert board.claim("req-1", "s", {"action": "rejected", "by": "b"}) == {"format": 1, **first}
    assert board.claim("req-1", "other-session", {"action": "rejected"}) is None
    assert not [p for p in os.listdir(board.dir) if p.endswith(".tmp")]
