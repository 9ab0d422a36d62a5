"""``stop-tui pending [RUN] [REQUEST]``: the approval requests live runs wait on.

A run in the app, or started with ``--headless --approve ask``, publishes each
request it waits on in the workspace (:mod:`stop_tui.store.answers`). This lists them, or shows
one as the run's terminal shows it (diff, audit, scores, allowances; every
untrusted text through the one sanitiser), with the ``stop-tui answer`` line
that decides it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from stop_tui.cli.store_view import add_workspace_option, console, open_store
from stop_tui.errors import UserError
from stop_tui.store.answers import REQUEST_ID_RE, AnswerBoard, Published, describe_answer
from stop_tui.store.records import sha256_hex
from stop_tui.store.store import RunStore
from stop_tui.untrusted import rich_text

STALE = "stale: the process that asked it is no longer running (resume the run to be asked again)"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "pending",
        help="list the approval requests live runs wait on, or show one",
        description="List the approval requests that runs started with --headless --approve "
        "ask wait on, or show one with its diff, audit and scores; answer it with "
        "'stop-tui answer'.",
    )
    parser.add_argument("run_id", metavar="RUN", nargs="?", default=None)
    parser.add_argument("request_id", metavar="REQUEST", nargs="?", default=None)
    add_workspace_option(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=handle)


def board_of(store: RunStore, run_id: str) -> AnswerBoard:
    store.require_run(run_id)
    return AnswerBoard(store.lock_dir, run_id)


def check_request_id(request_id: str) -> str:
    if not REQUEST_ID_RE.match(request_id):
        raise UserError(
            f"bad request id {request_id!r}",
            hint="request ids look like req-3: see 'stop-tui pending'",
        )
    return request_id


def answer_line(store: RunStore, run_id: str, pub: Published) -> str:
    return (
        f"stop-tui answer {run_id} {pub.request_id} approve|reject --sha256 {pub.sha256} "
        f"--workspace {store.path}"
    )


def what(pub: Published) -> str:
    index = pub.data.get("index")
    kind = f"candidate {index}" if isinstance(index, int) else "adoption"
    return f"generation {pub.data.get('generation')}, {kind}"


def as_json(run_id: str, pub: Published) -> dict[str, Any]:
    keys = ("request_id", "generation", "index", "purpose", "source_sha256", "flags", "published")
    return {"run_id": run_id, **{k: pub.data.get(k) for k in keys}, "live": pub.live}


def handle(args: argparse.Namespace) -> int:
    store = open_store(args)
    if args.run_id is None:
        runs = sorted(
            p.name.removesuffix(".pending") for p in store.lock_dir.glob("*.pending") if p.is_dir()
        )
        runs = [r for r in runs if store.has_run(r)]
    else:
        runs = [args.run_id]
    if args.request_id is not None:
        assert args.run_id is not None
        return show_one(store, args.run_id, check_request_id(args.request_id), args.json)
    found = [(run_id, pub) for run_id in runs for pub in board_of(store, run_id).requests()]
    if args.json:
        print(json.dumps([as_json(run_id, pub) for run_id, pub in found], indent=2))
        return 0
    out = console()
    if not found:
        where = f"run {args.run_id}" if args.run_id else "no run"
        out.print(rich_text(f"{where} waits on an approval in {store.path}"))
        return 0
    for run_id, pub in found:
        flags = len(pub.lines("flags"))
        out.print(
            rich_text(
                f"{run_id} {pub.request_id}: {what(pub)}, source sha256 {pub.sha256}, "
                f"{flags} audit flag{'s' if flags != 1 else ''}"
            )
        )
        if pub.live:
            out.print(rich_text(f"  see it: stop-tui pending {run_id} {pub.request_id}", "dim"))
            out.print(rich_text("  answer: " + answer_line(store, run_id, pub), "dim"))
        else:
            out.print(rich_text("  " + STALE, "yellow"))
    return 0


def find(store: RunStore, run_id: str, request_id: str) -> tuple[AnswerBoard, Published]:
    """A published request whose source is exactly the one it names, or one error line."""
    board = board_of(store, run_id)
    pub = board.request(request_id)
    if pub is None:
        earlier = board.answers_to(request_id)
        if earlier:
            raise UserError(
                f"request {request_id} of run {run_id} was already {describe_answer(earlier)}",
                hint="your answer was not recorded",
            )
        raise UserError(
            f"run {run_id} has no pending request {request_id} (answered, withdrawn or never asked)",
            hint=f"see 'stop-tui pending {run_id}'",
        )
    if sha256_hex(pub.text("source")) != pub.sha256:
        raise UserError(
            f"request {request_id} of run {run_id} is damaged: its source does not match its hash",
            hint="answer it at the run's terminal",
        )
    return board, pub


def show_one(store: RunStore, run_id: str, request_id: str, as_json_: bool) -> int:
    from stop_tui.cli.headless import show_request
    from stop_tui.engine.approval import ApprovalRequest, Purpose

    _board, pub = find(store, run_id, request_id)
    if as_json_:
        data = {**as_json(run_id, pub), "source": pub.text("source")}
        data["parent_source"] = pub.text("parent_source")
        print(json.dumps(data, indent=2))
        return 0
    purpose = Purpose.ADOPTION if pub.data.get("purpose") == "adoption" else Purpose.CANDIDATE
    index = pub.data.get("index")
    generation = pub.data.get("generation")
    allowances = pub.data.get("allowances")
    request = ApprovalRequest(
        run_id=run_id,
        generation=generation if isinstance(generation, int) else -1,
        index=index if isinstance(index, int) else None,
        purpose=purpose,
        source=pub.text("source"),
        parent_source=pub.text("parent_source"),
        flags=tuple(pub.lines("flags")),
        allowances=dict(allowances) if isinstance(allowances, dict) else {},
        request_id=pub.request_id,
    )
    out = console()
    show_request(out, request, label=f"{run_id} {pub.request_id}")
    review = pub.lines("review")
    if review:
        out.print(rich_text("scores and behaviour:", "bold"))
        for line in review:
            out.print(rich_text("  " + line))
    out.print(rich_text(f"source sha256 {pub.sha256}"))
    if pub.live:
        out.print(rich_text("answer: " + answer_line(store, run_id, pub), "bold"))
    else:
        out.print(rich_text(STALE, "yellow"))
    return 0
