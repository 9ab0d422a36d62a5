"""What one commit of a run must hold, and the hashes and trailers the store writes for it.

The writer (``store.py``) and the checkers (``verify.py``: ``stop-tui verify``, ``import``,
``resume``, ``replay``) share these definitions, so that what is checked is exactly what is
written: the trailers of a step (:func:`step_trailers`), the hashes and usage filled into its
record (:func:`fill_hashes`), the files a step commit may hold and their size limits, and
:func:`check_step` (one commit's problems, given its parsed objects).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stop_tui.store.records import KINDS, Decision, RunConfig, StepRecord, sha256_hex
from stop_tui.untrusted import replace_hidden

MiB = 1 << 20
#: The files of a step commit and the largest size each may have (a returned improver
#: travels in one sandbox message of at most 16 MB; its record may carry it once more).
STEP_FILES: dict[str, int] = {
    "improver.py": 16 * MiB,
    "run.json": 1 * MiB,
    "record.json": 40 * MiB,
    "transcript.jsonl": 512 * MiB,
}
SOLUTION_LIMIT = 16 * MiB
STATE_LIMIT = 16 * MiB
SOLUTION_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
BLOB_MODE = "100644"
TREE_MODE = "40000"


# ----------------------------------------------------------------------------- trailers


def one_line(text: str, limit: int = 200) -> str:
    # commit text is printed raw by plain git: no control or invisible character in it
    line = replace_hidden(" ".join(str(text).split()))
    return line if len(line) <= limit else line[: limit - 1] + "…"


def fmt_num(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"


def flag_text(flag: str) -> str:
    return one_line(flag, 120).replace(",", ";")


def parse_trailers(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.startswith("Stop-"):
            out[key.strip()] = value.strip()
    return out


def step_trailers(rec: StepRecord, task: str) -> list[tuple[str, str]]:
    """The ``Stop-*`` trailers of a step commit, all derived from its record."""
    trailers = [
        ("Stop-Run", rec.run_id),
        ("Stop-Generation", str(rec.generation)),
        ("Stop-Kind", rec.kind),
        ("Stop-Candidate", "none" if rec.candidate is None else str(rec.candidate)),
        ("Stop-Meta-Utility", fmt_num(rec.meta_utility)),
        ("Stop-Test-Utility", fmt_num(rec.test_utility)),
        ("Stop-Decision", one_line(rec.decision.trailer(), 120) if rec.decision else "none"),
        ("Stop-Model", one_line(rec.model, 120) or "none"),
        ("Stop-Task", one_line(task, 120) or "none"),
        ("Stop-Flags", ", ".join(flag_text(f) for f in rec.flags) or "none"),
    ]
    if rec.adopted_from:
        trailers.append(("Stop-Adopted-From", rec.adopted_from))
    if rec.source_sha256:
        trailers.append(("Stop-Source-SHA256", rec.source_sha256))
    if rec.decision is not None and rec.decision.source_sha256:
        trailers.append(("Stop-Decision-SHA256", rec.decision.source_sha256))
    return trailers


# ----------------------------------------------------------------------------- hashes


def transcript_usage(data: bytes) -> dict[str, int]:
    """Line count and token usage of a transcript; ValueError on a line that is not a JSON
    object."""
    lines = prompt = completion = 0
    for n, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"transcript line {n} is not JSON") from exc
        if not isinstance(line, dict):
            raise ValueError(f"transcript line {n} is not a JSON object")
        lines += 1
        usage = line.get("usage") if line.get("ok", True) else None
        if isinstance(usage, dict):
            prompt += _int(usage.get("prompt_tokens"))
            completion += _int(usage.get("completion_tokens"))
    return {"lines": lines, "prompt_tokens": prompt, "completion_tokens": completion}


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def presented_source(rec: StepRecord, source: str) -> str:
    """The source a step's decision was about: what the reviewer was shown."""
    proposed = rec.extra.get("proposed_source")
    return proposed if isinstance(proposed, str) else source


def fill_hashes(
    rec: StepRecord, source: bytes, transcript: bytes, solutions: Mapping[str, bytes]
) -> None:
    """Write into ``rec`` the hashes of what its commit holds (the store does this for every
    step; whatever a caller put there is replaced), and bind its decision to the source it
    was about when the caller did not name one."""
    rec.source_sha256 = sha256_hex(source)
    rec.files = {"transcript.jsonl": sha256_hex(transcript)}
    rec.files.update({f"solutions/{n}": sha256_hex(b) for n, b in sorted(solutions.items())})
    rec.transcript_usage = transcript_usage(transcript)
    d = rec.decision
    if d is not None:
        if not d.source_sha256:
            d.source_sha256 = sha256_hex(presented_source(rec, source.decode()))
        if not d.approved_sha256 and decision_approves(d):
            d.approved_sha256 = rec.source_sha256 if d.edited else d.source_sha256


def decision_approves(d: Decision) -> bool:
    return d.action not in ("rejected", "pending", "none", "")


# ----------------------------------------------------------------------------- one commit


@dataclass
class TreeEntry:
    mode: str
    kind: str  # blob | tree | commit
    sha: str


def parse_tree(data: bytes) -> list[tuple[str, str, str]]:
    """A git tree object's entries as (mode, name, sha)."""
    out: list[tuple[str, str, str]] = []
    pos = 0
    while pos < len(data):
        sp = data.index(b" ", pos)
        nul = data.index(b"\0", sp)
        mode = data[pos:sp].decode()
        name = data[sp + 1 : nul].decode(errors="replace")
        sha = data[nul + 1 : nul + 21].hex()
        out.append((mode, name, sha))
        pos = nul + 21
    return out


@dataclass
class CommitObject:
    sha: str
    tree: str
    parents: list[str]
    message: str
    signed: bool

    @classmethod
    def parse(cls, sha: str, data: bytes) -> CommitObject:
        head, _, message = data.partition(b"\n\n")
        tree, parents, signed = "", [], False
        for line in head.split(b"\n"):
            key, _, value = line.partition(b" ")
            if key == b"tree":
                tree = value.decode()
            elif key == b"parent":
                parents.append(value.decode())
            elif key in (b"gpgsig", b"gpgsig-sha256"):
                signed = True
        return cls(sha, tree, parents, message.decode(errors="replace"), signed)


@dataclass
class StepContent:
    """What a step commit holds, read by the checker (``blobs`` by path)."""

    commit: CommitObject
    paths: dict[str, tuple[str, str]]  # path -> (mode, sha) of every entry, trees included
    sizes: dict[str, int]  # blob path -> size
    blobs: dict[str, bytes] = field(default_factory=dict)
    record: StepRecord | None = None
    config: RunConfig | None = None

    def label(self) -> str:
        rec = self.record
        short = self.commit.sha[:10]
        if rec is None:
            return f"commit {short}"
        where = "seed" if rec.generation == 0 else f"gen {rec.generation}"
        if rec.kind == "candidate":
            where += f" candidate {rec.candidate}"
        elif rec.kind in ("adopted", "kept"):
            where += f" ({rec.kind})"
        return f"{where} ({short})"


Problem = tuple[str, str]  # (check, one line)


def check_layout(content: StepContent) -> list[str]:
    """Only the run's files, as plain files: no symlinks, submodules, executables or paths
    outside the layout, every size within its limit."""
    problems: list[str] = []
    for path, (mode, _sha) in sorted(content.paths.items()):
        if path == "solutions":
            if mode != TREE_MODE:
                problems.append(f"solutions is not a directory (mode {mode})")
            continue
        head, _, name = path.partition("/")
        allowed = path in STEP_FILES or (head == "solutions" and SOLUTION_NAME_RE.match(name))
        if not allowed:
            problems.append(f"unexpected path {path!r}")
        elif mode != BLOB_MODE:
            what = {"120000": "a symlink", "160000": "a submodule", "100755": "executable"}
            problems.append(f"{path} is {what.get(mode, f'mode {mode}')}, not a plain file")
    for name in STEP_FILES:
        if name not in content.paths:
            problems.append(f"missing {name}")
    for path, size in content.sizes.items():
        limit = STEP_FILES.get(path, SOLUTION_LIMIT)
        if size > limit:
            problems.append(f"{path} is {size} bytes, over the {limit}-byte limit")
    return problems


def parse_step(content: StepContent) -> list[str]:
    """Parse record.json and run.json into ``content``; problems as lines."""
    problems: list[str] = []
    try:
        data = json.loads(content.blobs["record.json"])
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        content.record = StepRecord.from_json(data)
        if content.record.kind not in KINDS:
            raise ValueError(f"unknown kind {content.record.kind!r}")
    except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
        problems.append(f"record.json does not parse ({one_line(str(exc), 80)})")
    try:
        data = json.loads(content.blobs["run.json"])
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        content.config = RunConfig.from_json(data)
    except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
        problems.append(f"run.json does not parse ({one_line(str(exc), 80)})")
    return problems


def short(sha: str) -> str:
    return sha[:12] + "…" if len(sha) > 12 else sha or "none"


def check_step(content: StepContent, run_id: str) -> list[Problem]:
    """Every problem of one step commit whose layout is sound and whose record parsed:
    records vs trailers, sources vs hashes, decisions vs the sources they bind, transcripts
    vs their hashes and usage."""
    rec, config = content.record, content.config
    assert rec is not None and config is not None
    out: list[Problem] = []
    if rec.run_id != run_id or config.run_id != run_id:
        out.append(("records", f"belongs to run {rec.run_id or config.run_id!r}, not {run_id}"))
    actual = parse_trailers(content.commit.message)
    expected = dict(step_trailers(rec, config.task))
    for key in sorted(set(actual) | set(expected)):
        if actual.get(key) != expected.get(key):
            out.append(
                (
                    "records",
                    f"trailer {key} says {actual.get(key, 'nothing')!r}, "
                    f"its record {expected.get(key, 'nothing')!r}",
                )
            )
    source = content.blobs.get("improver.py", b"")
    if not rec.source_sha256:
        return out  # recorded before hashes: the caller says it is unverifiable
    got = sha256_hex(source)
    if got != rec.source_sha256:
        out.append(
            (
                "sources",
                f"improver.py sha256 {short(got)} does not match its record's "
                f"{short(rec.source_sha256)}",
            )
        )
    solutions = {p: b for p, b in content.blobs.items() if p.startswith("solutions/")}
    if set(rec.files) != {"transcript.jsonl", *solutions}:
        out.append(("sources", "its files differ from the ones its record lists"))
    for path, data in solutions.items():
        if rec.files.get(path) not in (None, sha256_hex(data)):
            out.append(("sources", f"{path} does not match its recorded sha256"))
    transcript = content.blobs.get("transcript.jsonl", b"")
    if rec.files.get("transcript.jsonl") != sha256_hex(transcript):
        out.append(("transcripts", "transcript.jsonl does not match its recorded sha256"))
    try:
        usage = transcript_usage(transcript)
        if usage != rec.transcript_usage:
            out.append(
                ("transcripts", f"transcript usage {usage} differs from its record's "
                 f"{rec.transcript_usage}")
            )  # fmt: skip
    except ValueError as exc:
        out.append(("transcripts", str(exc)))
    d = rec.decision
    if d is not None:
        text = source.decode(errors="replace")
        presented = sha256_hex(presented_source(rec, text))
        if d.source_sha256 != presented:
            out.append(
                (
                    "decisions",
                    f"its decision ({d.action}) names source {short(d.source_sha256)}, "
                    f"the source shown was {short(presented)}",
                )
            )
        if (
            decision_approves(d)
            and rec.kind in ("candidate", "adopted")
            and d.approved_sha256 != rec.source_sha256
        ):
            out.append(
                (
                    "decisions",
                    f"its decision approved {short(d.approved_sha256)}, "
                    f"the committed source is {short(rec.source_sha256)}",
                )
            )
    proposed_hash = rec.extra.get("proposed_hash")
    if isinstance(proposed_hash, str) and SHA256_RE.match(proposed_hash):
        text = source.decode(errors="replace")
        if proposed_hash != sha256_hex(presented_source(rec, text)):
            out.append(("sources", "its proposed_hash does not match the proposed source"))
    return out
