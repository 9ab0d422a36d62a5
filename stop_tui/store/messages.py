"""The store's record format: commit messages, trailer values and the bytes of blobs.

Commit subjects and ``Stop-*`` trailers are what the bulk readers parse (one
``git log`` or ``for-each-ref`` instead of one blob per commit); ``record.json``,
``run.json`` and ``state.json`` are sorted, indented JSON; transcripts are JSON lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from stop_tui.store.integrity import fmt_num, one_line, step_trailers
from stop_tui.store.records import RunConfig, RunState, StepRecord


def parse_num(value: str | None) -> float | None:
    if value is None or value in ("", "none"):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def parse_int(value: str | None) -> int | None:
    if value is None or value in ("", "none"):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def commit_subject(rec: StepRecord, parent_meta: float | None) -> str:
    head = f"gen {rec.generation}"
    if rec.kind == "candidate":
        head += f" candidate {rec.candidate}"
    summary = one_line(rec.summary, 100) or ("seed improver" if rec.kind == "seed" else "improver")
    subject = f"{head}: {summary}"
    if rec.meta_utility is None:
        subject += ", not evaluated"
    else:
        subject += f", meta-utility {rec.meta_utility:.2f}"
        if parent_meta is not None and rec.kind != "seed":
            subject += f" ({rec.meta_utility - parent_meta:+.2f})"
    return subject


def commit_message(rec: StepRecord, task: str, parent_meta: float | None) -> str:
    body: list[str] = []
    if rec.decision and rec.decision.reason:
        body.append(f"Decision: {one_line(rec.decision.reason, 500)}")
    if rec.flags:
        body.append("Flags: " + "; ".join(one_line(f, 200) for f in rec.flags))
    trailers = step_trailers(rec, task)
    parts = [commit_subject(rec, parent_meta)]
    if body:
        parts.append("\n".join(body))
    parts.append("\n".join(f"{k}: {v}" for k, v in trailers))
    return "\n\n".join(parts) + "\n"


def state_message(run_id: str, state: RunState, config: RunConfig) -> str:
    subject = f"state: {state.status}, generation {state.generation}"
    if state.message:
        subject += f": {one_line(state.message, 120)}"
    trailers = [
        ("Stop-Run", run_id),
        ("Stop-Kind", "state"),
        ("Stop-Status", state.status),
        ("Stop-Generation", str(state.generation)),
        ("Stop-Task", one_line(config.task, 120) or "none"),
        ("Stop-Model", one_line(config.model, 120) or "none"),
        ("Stop-Cost", fmt_num(opt_cost(state.budget))),
        ("Stop-Created", config.created or "none"),
    ]
    return subject + "\n\n" + "\n".join(f"{k}: {v}" for k, v in trailers) + "\n"


def opt_cost(budget: Mapping[str, Any]) -> float | None:
    cost = budget.get("cost")
    try:
        return None if cost is None else float(cost)
    except (TypeError, ValueError):
        return None


def split_flags(value: str | None) -> list[str]:
    if not value or value == "none":
        return []
    return [f.strip() for f in value.split(",") if f.strip()]


def json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def transcript_bytes(transcript: str | bytes | Iterable[Mapping[str, Any]] | None) -> bytes:
    if transcript is None:
        return b""
    if isinstance(transcript, bytes):
        return transcript
    if isinstance(transcript, str):
        return transcript.encode()
    return "".join(
        json.dumps(dict(line), ensure_ascii=False) + "\n" for line in transcript
    ).encode()
