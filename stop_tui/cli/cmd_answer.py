"""``stop-tui answer RUN [REQUEST] approve|reject --sha256 HASH``: decide a live run's request.

The answer names the SHA-256 of the exact source it decides (``stop-tui pending``
shows it), so it cannot apply to another candidate. It is a claim on the request
(:mod:`stop_tui.store.answers`): the first answer wins, whether given here, at the
run's terminal or by another ``stop-tui answer``; a later one is one error line.
The decision the run records names who answered (user, pid, terminal, host).
"""

from __future__ import annotations

import argparse
import os
import socket
import time

from stop_tui.cli.cmd_pending import board_of, check_request_id, find
from stop_tui.cli.store_view import add_workspace_option, open_store
from stop_tui.errors import UserError
from stop_tui.store.answers import SHA256_RE, AnswerBoard, Published, describe_answer, tty_name
from stop_tui.store.records import now_iso
from stop_tui.store.store import RunStore
from stop_tui.untrusted import visible

ACTIONS = {"approve": "approved", "reject": "rejected"}
MAX_NOTE = 2000


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "answer",
        help="approve or reject a request a live run waits on (see 'stop-tui pending')",
        description="Answer an approval request of a run waiting for a person (in the app, "
        "or started with --headless --approve ask), from any terminal. The first answer "
        "wins; the run records who gave it.",
    )
    parser.add_argument("run_id", metavar="RUN")
    parser.add_argument(
        "words", metavar="[REQUEST] approve|reject", nargs="+", help="e.g. req-3 approve"
    )
    parser.add_argument(
        "--sha256",
        required=True,
        metavar="HASH",
        help="the SHA-256 of the source you decide, as 'stop-tui pending' shows it",
    )
    parser.add_argument("--note", default="", help="why (recorded with the decision)")
    parser.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for the run to take the answer (default 30)",
    )
    add_workspace_option(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if len(args.words) > 2 or args.words[-1] not in ACTIONS:
        raise UserError(
            f"expected [REQUEST] approve|reject, got {' '.join(args.words)!r}",
            hint="e.g. stop-tui answer RUN req-3 approve --sha256 HASH",
        )
    action = ACTIONS[args.words[-1]]
    sha = args.sha256.strip().lower()
    if not SHA256_RE.match(sha):
        raise UserError(
            "--sha256 must be the full 64-digit SHA-256 of the source you decide",
            hint=f"'stop-tui pending {args.run_id}' shows it",
        )
    if len(args.note) > MAX_NOTE:
        raise UserError(f"--note is longer than {MAX_NOTE} characters", hint="shorten it")
    store = open_store(args)
    if len(args.words) == 2:
        board, pub = find(store, args.run_id, check_request_id(args.words[0]))
    else:
        board, pub = only_request(store, args.run_id, sha)
    rid = pub.request_id
    if not pub.live:
        raise UserError(
            f"request {rid} of run {args.run_id} is stale: the process that asked it is "
            "no longer running",
            hint=f"resume the run ('stop-tui resume {args.run_id} --headless --approve ask'); "
            "it asks again",
        )
    if pub.sha256 != sha:
        raise UserError(
            f"request {rid} is about source {pub.sha256[:16]}…, not {sha[:16]}…",
            hint=f"look again with 'stop-tui pending {args.run_id} {rid}' and answer with "
            "the --sha256 it shows",
        )
    answer = {
        "run_id": args.run_id,
        "request_id": rid,
        "session": pub.session,
        "source_sha256": sha,
        "action": action,
        "reason": args.note,
        "by": identity(),
        "via": "answer",
        "pid": os.getpid(),
        "tty": tty_name(),
        "host": socket.gethostname(),
        "at": now_iso(),
    }
    winner = board.claim(rid, pub.session, answer)
    if winner is not None:
        raise UserError(
            f"request {rid} of run {args.run_id} was already {describe_answer(winner)}",
            hint="your answer was not recorded",
        )
    return taken(board, pub, args.run_id, action, args.wait)


def identity() -> str:
    from stop_tui.engine.approval import human_identity

    return human_identity()


def only_request(store: RunStore, run_id: str, sha: str) -> tuple[AnswerBoard, Published]:
    board = board_of(store, run_id)
    matches = [p for p in board.requests() if p.sha256 == sha]
    if not matches:
        raise UserError(
            f"no pending request of run {run_id} is about source {sha[:16]}…",
            hint=f"see 'stop-tui pending {run_id}'",
        )
    live = [p for p in matches if p.live] or matches
    if len(live) > 1:
        ids = ", ".join(p.request_id for p in live)
        raise UserError(
            f"requests {ids} of run {run_id} are about that source", hint="name the request"
        )
    return find(store, run_id, live[0].request_id)


def taken(board: AnswerBoard, pub: Published, run_id: str, action: str, wait: float) -> int:
    """Wait for the run to take the answer (it withdraws the request) and say so."""
    deadline = time.monotonic() + max(wait, 0.0)
    path = board.request_path(pub.request_id)
    while path.exists():
        if not board.holder_alive(pub.data) and path.exists():
            raise UserError(
                f"run {run_id} stopped before it took the answer to {pub.request_id}",
                hint=f"resume it ('stop-tui resume {run_id} --headless --approve ask'); it asks again",
            )
        if time.monotonic() >= deadline:
            print(
                visible(
                    f"{pub.request_id} of run {run_id}: {action} (recorded; the run has not "
                    "taken it yet)"
                )
            )
            return 0
        time.sleep(0.1)
    if board.answer(pub.request_id, pub.session) is None:  # the run's session has ended too
        print(
            visible(
                f"{pub.request_id} of run {run_id}: {action}; the run has ended since "
                f"(see 'stop-tui show {run_id}' for what it recorded)"
            )
        )
        return 0
    print(visible(f"{pub.request_id} of run {run_id}: {action}; the run took the answer"))
    return 0
