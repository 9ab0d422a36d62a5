"""Checking a run's history end to end: ``stop-tui verify``, ``import``, ``resume``, ``replay``.

:func:`read_history` reads every commit a run's refs reach with a handful of bulk git
reads (never trusting what it reads: objects of the wrong type, missing files, huge
blobs and unparsable records are problems, not exceptions); :func:`check_history` finds
every problem, grouped by check (layout, records, sources, decisions, transcripts,
history, refs, signatures). ``verify_run`` turns them into a report; ``check_import``
and ``check_resumable`` refuse a bundle or a resume at the first problem, in one line.

Runs recorded before source hashes existed have none in their records: their sources,
decisions and transcripts are reported as unverifiable (not failed) by ``verify``;
``import`` refuses them (a bundle cannot prove it was not stripped of its hashes).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from stop_tui.errors import UserError
from stop_tui.store.gitcmd import Git
from stop_tui.store.integrity import (
    SOLUTION_LIMIT,
    STATE_LIMIT,
    STEP_FILES,
    TREE_MODE,
    CommitObject,
    Problem,
    StepContent,
    check_layout,
    check_step,
    parse_step,
    parse_trailers,
    parse_tree,
    short,
)
from stop_tui.store.workspace import Workspace

CHECKS = (
    "layout",
    "records",
    "sources",
    "decisions",
    "transcripts",
    "history",
    "refs",
    "signatures",
)
LEGACY = "unverifiable: recorded before source hashes"
CANDIDATE_REF_RE = re.compile(r"candidates/(\d+)/(\d+)")


@dataclass
class History:
    run_id: str
    refs: dict[str, str]
    steps: dict[str, StepContent] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    state: CommitObject | None = None

    def label(self, sha: str) -> str:
        step = self.steps.get(sha)
        return step.label() if step else f"commit {sha[:10]}"

    def add(self, check: str, sha: str | None, text: str) -> None:
        self.problems.append((check, f"{self.label(sha)}: {text}" if sha else text))


def _branch(run_id: str) -> str:
    return f"refs/heads/stop/{run_id}"


def read_history(git: Git, run_id: str, refs: dict[str, str]) -> History:
    """Read every commit ``refs`` (a run's refs: name -> sha) reach. Problems found while
    reading (wrong object types, merges, bad trees) are collected in ``history.problems``."""
    h = History(run_id, dict(refs))
    prefix = f"refs/stop/{run_id}/"
    state_ref = prefix + "state"
    for ref in sorted(refs):
        if ref == _branch(run_id) or ref in (prefix + "best", state_ref):
            continue
        if not (ref.startswith(prefix) and CANDIDATE_REF_RE.fullmatch(ref[len(prefix) :])):
            h.add("refs", None, f"{ref} is not a ref a run has")
    kinds = dict(zip(refs, git.cat_check(refs.values()), strict=True))
    for ref, info in kinds.items():
        if info is None or info[0] != "commit":
            h.add("refs", None, f"{ref} points at {info[0] if info else 'a missing object'}")
    tips = [
        sha
        for ref, sha in refs.items()
        if ref != state_ref and (kinds[ref] or ("",))[0] == "commit"
    ]
    if _branch(run_id) not in refs:
        h.add("refs", None, f"the run has no branch {_branch(run_id)}")
    if refs.get(state_ref) and (kinds[state_ref] or ("",))[0] == "commit":
        _read_state(git, h, refs[state_ref])
    if not tips:
        return h
    shas = git.out(["rev-list", *sorted(set(tips))]).split()
    commits = [
        CommitObject.parse(sha, data) if data is not None else None
        for sha, data in zip(shas, git.cat_batch(shas), strict=True)
    ]
    by_sha = {c.sha: c for c in commits if c is not None}
    trees = dict(zip(by_sha, git.cat_batch(c.tree for c in by_sha.values()), strict=True))
    contents: dict[str, StepContent] = {}
    sub_trees: dict[str, str] = {}
    for sha, commit in by_sha.items():
        if len(commit.parents) > 1:
            h.add("history", sha, f"is a merge of {len(commit.parents)} commits")
        data = trees[sha]
        if data is None:
            h.add("layout", sha, "its tree is missing")
            continue
        paths: dict[str, tuple[str, str]] = {}
        try:
            for mode, name, obj in parse_tree(data):
                paths[name] = (mode, obj)
        except (ValueError, IndexError):
            h.add("layout", sha, "its tree does not parse")
            continue
        contents[sha] = StepContent(commit, paths, {})
        if "solutions" in paths and paths["solutions"][0] == TREE_MODE:
            sub_trees[sha] = paths["solutions"][1]
    for sha, data in zip(sub_trees, git.cat_batch(sub_trees.values()), strict=True):
        try:
            for mode, name, obj in parse_tree(data or b""):
                contents[sha].paths[f"solutions/{name}"] = (mode, obj)
        except (ValueError, IndexError):
            h.add("layout", sha, "its solutions tree does not parse")
    # Sizes first, then only the blobs within their limits.
    wanted = [
        (sha, path, obj)
        for sha, c in contents.items()
        for path, (mode, obj) in c.paths.items()
        if mode != TREE_MODE and mode != "160000"
    ]
    infos = git.cat_check(obj for _, _, obj in wanted)
    to_read = []
    for (sha, path, obj), info in zip(wanted, infos, strict=True):
        if info is None:
            h.add("layout", sha, f"{path} is missing from the repository")
            continue
        contents[sha].sizes[path] = info[1]
        limit = STEP_FILES.get(path, SOLUTION_LIMIT)
        if info[0] == "blob" and info[1] <= limit:
            to_read.append((sha, path, obj))
    for (sha, path, _), blob in zip(
        to_read, git.cat_batch(obj for _, _, obj in to_read), strict=True
    ):
        if blob is not None:
            contents[sha].blobs[path] = blob
    h.steps = contents
    return h


def _read_state(git: Git, h: History, sha: str) -> None:
    (data,) = git.cat_batch([sha])
    if data is None:
        return
    commit = CommitObject.parse(sha, data)
    h.state = commit
    where = f"the state commit {sha[:10]}"
    if commit.parents:
        h.add("refs", None, f"{where} has parents")
    tr = parse_trailers(commit.message)
    if tr.get("Stop-Run") != h.run_id or tr.get("Stop-Kind") != "state":
        h.add("refs", None, f"{where} is not this run's state")
    (tree,) = git.cat_batch([commit.tree])
    try:
        entries = parse_tree(tree or b"")
    except (ValueError, IndexError):
        entries = []
    if [(m, n) for m, n, _ in entries] != [("100644", "state.json")]:
        h.add("refs", None, f"{where} must hold state.json only, as a plain file")
        return
    (info,) = git.cat_check([entries[0][2]])
    if info is None or info[1] > STATE_LIMIT:
        h.add("refs", None, f"{where}: state.json is missing or over {STATE_LIMIT} bytes")
        return
    (blob,) = git.cat_batch([entries[0][2]])
    try:
        if not isinstance(json.loads(blob or b""), dict):
            raise ValueError
    except ValueError:
        h.add("refs", None, f"{where}: state.json does not parse")


@dataclass
class Summary:
    """What :func:`check_history` found besides problems (for the report's ok lines)."""

    steps: int = 0
    hashed: int = 0
    decisions: int = 0
    candidates: int = 0
    generations: int = 0
    signed: dict[str, str] = field(default_factory=dict)  # decision commit -> status
    legacy: bool = False


def check_history(h: History) -> Summary:
    """Check everything read into ``h``; problems are appended to ``h.problems``."""
    s = Summary()
    run_id = h.run_id
    for sha, content in h.steps.items():
        for text in check_layout(content):
            h.add("layout", sha, text)
        if any(name not in content.blobs for name in ("record.json", "run.json")):
            continue
        for text in parse_step(content):
            h.add("records", sha, text)
    parsed = {sha: c for sha, c in h.steps.items() if c.record is not None and c.config}
    s.steps = len(h.steps)
    s.hashed = sum(1 for c in parsed.values() if c.record and c.record.source_sha256)
    s.legacy = bool(parsed) and s.hashed == 0
    for sha, content in parsed.items():
        rec = content.record
        assert rec is not None
        for check, text in check_step(content, run_id):
            h.add(check, sha, text)
        if not rec.source_sha256 and not s.legacy:
            h.add("sources", sha, "its record has no source sha256, unlike the rest of the run")
        if rec.decision is not None:
            s.decisions += 1
    configs = {json.dumps(c.config.to_json(), sort_keys=True) for c in parsed.values() if c.config}
    if len(configs) > 1:
        h.add("records", None, "the run's commits disagree about its run.json")
    _check_chain(h, parsed, s)
    return s


def _check_chain(h: History, parsed: dict[str, StepContent], s: Summary) -> None:
    run_id, refs = h.run_id, h.refs
    on_branch: list[str] = []
    sha = refs.get(_branch(run_id))
    while sha is not None and sha in h.steps:
        on_branch.append(sha)
        parents = h.steps[sha].commit.parents
        sha = parents[0] if parents else None
    branch_set = set(on_branch)
    for child, parent in zip(on_branch, [*on_branch[1:], None], strict=True):
        c = parsed.get(child)
        if c is None or c.record is None:
            continue
        rec = c.record
        if rec.kind == "candidate":
            h.add("history", child, "a candidate on the run's branch")
            continue
        p = parsed.get(parent) if parent else None
        if parent is None:
            if rec.kind != "seed":
                h.add("history", child, f"the branch starts with a {rec.kind} commit, not the seed")
            continue
        if p is None or p.record is None:
            continue
        want = p.record.generation + (0 if rec.kind == "seed" else 1)
        if rec.generation != want or (rec.kind == "seed" and p.record.kind != "seed"):
            h.add(
                "history",
                child,
                f"follows {p.label()} on the branch; generations must go 0, 1, 2, ... in order",
            )
    s.generations = max(
        (c.record.generation for c in parsed.values() if c.record and c.commit.sha in branch_set),
        default=0,
    )
    candidates: set[str] = set()
    prefix = f"refs/stop/{run_id}/"
    for ref, sha in refs.items():
        m = CANDIDATE_REF_RE.fullmatch(ref[len(prefix) :]) if ref.startswith(prefix) else None
        if m is None or sha not in h.steps:
            continue
        candidates.add(sha)
        c = parsed.get(sha)
        if c is None or c.record is None:
            continue
        rec = c.record
        gen, index = int(m.group(1)), int(m.group(2))
        if rec.kind != "candidate" or rec.generation != gen or rec.candidate != index:
            h.add(
                "refs",
                sha,
                f"{ref} points at a {rec.kind} commit that is not candidate {gen}/{index}",
            )
        parents = c.commit.parents
        p = parsed.get(parents[0]) if parents else None
        if not parents or parents[0] not in branch_set:
            h.add("history", sha, "its parent is not an improver on the run's branch")
        elif p is not None and p.record is not None and p.record.generation != gen - 1:
            h.add("history", sha, f"generated by {p.label()}, not by generation {gen - 1}")
    s.candidates = len(candidates)
    for sha in h.steps:
        if sha not in branch_set and sha not in candidates:
            h.add("history", sha, "is reachable from the run's refs but not part of its history")
    for sha, c in parsed.items():
        adopting = c.record
        if adopting is None or not adopting.adopted_from:
            continue
        src = parsed.get(adopting.adopted_from)
        if adopting.adopted_from not in candidates or (
            src is not None
            and src.record is not None
            and src.record.generation != adopting.generation
        ):
            h.add(
                "history",
                sha,
                f"adopted from {adopting.adopted_from[:10]}, not a candidate of its generation",
            )
    best = refs.get(prefix + "best")
    if best is not None and best not in branch_set:
        h.add("refs", None, f"best points at {best[:10]}, which is not on the run's branch")


# ----------------------------------------------------------------------------- signatures


def check_signatures(git: Git, h: History, s: Summary, signing_args: list[str]) -> None:
    """``git verify-commit`` for every decision commit that carries a signature."""
    for sha, c in h.steps.items():
        if c.record is None or c.record.decision is None:
            continue
        if not c.commit.signed:
            s.signed[sha] = "unsigned"
            continue
        proc = git.run([*signing_args, "verify-commit", sha], check=False)
        if proc.returncode == 0:
            s.signed[sha] = "good"
        else:
            s.signed[sha] = "BAD"
            why = proc.stderr.decode(errors="replace").strip().splitlines()
            h.add("signatures", sha, "bad signature" + (f" ({why[-1][:120]})" if why else ""))
    # Whoever rewrites history cannot sign it again with the user's key: where the user's
    # git signs commits (or another decision of the run is signed), unsigned is a failure.
    statuses = set(s.signed.values())
    if "unsigned" in statuses and ("good" in statuses or signing_args):
        reason = "git is configured to sign commits" if signing_args else "others are signed"
        for sha, status in s.signed.items():
            if status == "unsigned":
                h.add("signatures", sha, f"decision commit unsigned, while {reason}")


# ----------------------------------------------------------------------------- report


@dataclass
class CheckLine:
    name: str
    status: str  # ok | FAIL | n/a
    detail: str
    problems: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    run_id: str
    checks: list[CheckLine]

    @property
    def ok(self) -> bool:
        return all(c.status != "FAIL" for c in self.checks)

    def lines(self) -> list[str]:
        out = []
        for c in self.checks:
            out.append(f"{c.status:<5} {c.name}: {c.detail}")
            out += [f"      {p}" for p in c.problems]
        failed = sum(c.status == "FAIL" for c in self.checks)
        passed = sum(c.status == "ok" for c in self.checks)
        other = len(self.checks) - failed - passed
        out.append(
            f"summary: run {self.run_id}: {len(self.checks)} checks, {passed} passed, "
            f"{failed} failed" + (f", {other} unverifiable" if other else "")
        )
        return out


def verify_run(store: Workspace, run_id: str) -> VerifyReport:
    """Check a run of ``store`` end to end."""
    store.require_run(run_id)
    h = read_history(store.git, run_id, store.run_refs(run_id))
    s = check_history(h)
    signing = store.signing_args()
    check_signatures(store.git, h, s, signing)
    by_check: dict[str, list[str]] = {name: [] for name in CHECKS}
    for check, text in h.problems:
        by_check[check].append(text)
    n_sig = len(s.signed)
    good = sum(v == "good" for v in s.signed.values())
    ok_detail = {
        "layout": f"{s.steps} commits hold exactly a run's files (no symlinks, submodules, "
        "executables or paths outside the layout; sizes within limits)",
        "records": f"{s.steps} records parse and agree with their commits' trailers",
        "sources": f"{s.hashed} improver.py files match the sha256 their records name",
        "decisions": f"{s.decisions} decisions bind to the sha256 of the sources they decided",
        "transcripts": f"{s.steps} transcripts parse; their sha256 and usage match the records",
        "history": f"parents form the run's chain ({s.generations} generations, "
        f"{s.candidates} candidates), nothing dangling",
        "refs": "branch, candidates, best and state point into the run's history",
        "signatures": (
            f"{good} of {n_sig} decision commits signed, every signature good"
            if good
            else f"{n_sig} decision commits unsigned"
            + ("" if signing else " (git is not configured to sign commits)")
        ),
    }
    checks = []
    for name in CHECKS:
        problems = by_check[name]
        if problems:
            checks.append(CheckLine(name, "FAIL", f"{len(problems)} problem(s)", problems))
        elif s.legacy and name in ("sources", "decisions", "transcripts"):
            checks.append(CheckLine(name, "n/a", LEGACY))
        else:
            checks.append(CheckLine(name, "ok", ok_detail[name]))
    return VerifyReport(run_id, checks)


def check_import(git: Git, bundle: Path, run_id: str, refs: dict[str, str]) -> None:
    """Refuse (one line) a bundle whose run ``run_id`` (its incoming ``refs``) has any
    problem, or was recorded before source hashes."""
    h = read_history(git, run_id, refs)
    s = check_history(h)
    if not h.problems and s.legacy:
        h.problems.append(("sources", f"{LEGACY}; import cannot check it"))
    if h.problems:
        # Refs first: a ref pointing outside the run is the cause of what follows from it.
        check, text = sorted(h.problems, key=lambda p: p[0] != "refs")[0]
        more = f" (and {len(h.problems) - 1} more)" if len(h.problems) > 1 else ""
        raise UserError(
            f"{bundle.name} refused, nothing imported: run {run_id}: {text} [{check}]{more}",
            hint="import bundles written by 'stop-tui export RUN --bundle FILE' unchanged",
        )


def check_resumable(store: Workspace, run_id: str, *, doing: str = "resumed") -> None:
    """Refuse to continue (or replay) a run whose history has a forged step (one line)."""
    h = read_history(store.git, run_id, store.run_refs(run_id))
    check_history(h)
    forged = [p for p in h.problems if p[0] != "signatures"]
    if forged:
        check, text = forged[0]
        raise UserError(
            f"run {run_id} cannot be {doing}: {text} [{check}]",
            hint=f"see 'stop-tui verify {run_id}'; only a run whose history verifies is {doing}",
        )


__all__ = [
    "LEGACY",
    "History",
    "VerifyReport",
    "check_history",
    "check_import",
    "check_resumable",
    "read_history",
    "short",
    "verify_run",
]
