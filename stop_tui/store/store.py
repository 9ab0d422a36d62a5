"""The git run store: every improver is a commit, every run a branch.

Layout of a workspace (a git repository of its own, marked by
``stop-tui.workspace = 1`` in its ``.git/config``)::

    refs/heads/stop/<run-id>                      seed -> gen 1 -> gen 2 ... (adopted improvers)
    refs/stop/<run-id>/candidates/<gen>/<n>       every generated candidate (parent: its generator)
    refs/stop/<run-id>/best                       the best seed/adopted improver so far
    refs/stop/<run-id>/state                      a parentless commit holding state.json

Each improver commit's tree: ``improver.py``, ``run.json``, ``record.json``,
``transcript.jsonl`` and ``solutions/``. Commit messages carry ``Stop-*``
trailers, which is what the bulk readers parse.

Writes use plumbing only (``hash-object -w``, ``mktree``, ``commit-tree``) and
end with one ``update-ref --stdin`` transaction that names the old value of
every ref it moves (compare-and-swap): objects first, refs last. A process
killed at any instant leaves unreferenced objects at worst, which ``git fsck``
accepts and ``git gc`` eventually removes.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from stop_tui.errors import UserError
from stop_tui.store.gitcmd import Git, GitError, base_env, git_executable, user_signing_config
from stop_tui.store.integrity import (
    SOLUTION_NAME_RE,
    fill_hashes,
    fmt_num,
    one_line,
    parse_trailers,
    step_trailers,
)
from stop_tui.store.lock import RunLock, read_holder
from stop_tui.store.records import (
    KINDS,
    STATUSES,
    RunConfig,
    RunInfo,
    RunState,
    StepInfo,
    StepRecord,
    now_iso,
)

DEFAULT_WORKSPACE = "stop-runs"
WORKSPACE_ENV = "STOP_TUI_WORKSPACE"
MARKER_KEY = "stop-tui.workspace"
ZERO = "0" * 40
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
SHOW_RUNS_HINT = "see 'stop-tui runs' for the runs in this workspace"


def new_run_id(when: float | None = None) -> str:
    """A short, sortable, filename-safe run id: ``20261126-081500-ab12``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(when if when is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    if not RUN_ID_RE.match(run_id):
        raise UserError(
            f"bad run id {run_id!r}",
            hint="use letters, digits, '-' and '_' only (e.g. 20261126-081500-ab12)",
        )
    return run_id


def default_workspace() -> Path:
    return Path(os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE)


def branch_ref(run_id: str) -> str:
    return f"refs/heads/stop/{run_id}"


def run_ref(run_id: str, name: str) -> str:
    return f"refs/stop/{run_id}/{name}"


def candidate_ref(run_id: str, generation: int, index: int) -> str:
    return f"refs/stop/{run_id}/candidates/{generation}/{index}"


# ----------------------------------------------------------------------------- messages


_one_line = one_line
_fmt_num = fmt_num


def _parse_num(value: str | None) -> float | None:
    if value is None or value in ("", "none"):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _parse_int(value: str | None) -> int | None:
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
    summary = _one_line(rec.summary, 100) or ("seed improver" if rec.kind == "seed" else "improver")
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
        body.append(f"Decision: {_one_line(rec.decision.reason, 500)}")
    if rec.flags:
        body.append("Flags: " + "; ".join(_one_line(f, 200) for f in rec.flags))
    trailers = step_trailers(rec, task)
    parts = [commit_subject(rec, parent_meta)]
    if body:
        parts.append("\n".join(body))
    parts.append("\n".join(f"{k}: {v}" for k, v in trailers))
    return "\n\n".join(parts) + "\n"


def state_message(run_id: str, state: RunState, config: RunConfig) -> str:
    subject = f"state: {state.status}, generation {state.generation}"
    if state.message:
        subject += f": {_one_line(state.message, 120)}"
    trailers = [
        ("Stop-Run", run_id),
        ("Stop-Kind", "state"),
        ("Stop-Status", state.status),
        ("Stop-Generation", str(state.generation)),
        ("Stop-Task", _one_line(config.task, 120) or "none"),
        ("Stop-Model", _one_line(config.model, 120) or "none"),
        ("Stop-Cost", _fmt_num(_opt_cost(state.budget))),
        ("Stop-Created", config.created or "none"),
    ]
    return subject + "\n\n" + "\n".join(f"{k}: {v}" for k, v in trailers) + "\n"


def _opt_cost(budget: Mapping[str, Any]) -> float | None:
    cost = budget.get("cost")
    try:
        return None if cost is None else float(cost)
    except (TypeError, ValueError):
        return None


def _split_flags(value: str | None) -> list[str]:
    if not value or value == "none":
        return []
    return [f.strip() for f in value.split(",") if f.strip()]


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _transcript_bytes(transcript: str | bytes | Iterable[Mapping[str, Any]] | None) -> bytes:
    if transcript is None:
        return b""
    if isinstance(transcript, bytes):
        return transcript
    if isinstance(transcript, str):
        return transcript.encode()
    return "".join(
        json.dumps(dict(line), ensure_ascii=False) + "\n" for line in transcript
    ).encode()


# ----------------------------------------------------------------------------- the store


class RunStore:
    """A workspace of runs. Reads need no lock; writes go through :class:`RunWriter`.

    ``path`` defaults to ``$STOP_TUI_WORKSPACE`` or ``./stop-runs``. With
    ``create=True`` a missing or empty directory becomes a new workspace;
    otherwise a missing workspace reads as empty. A non-empty directory that is
    not a stop-tui workspace is refused (:class:`UserError`).
    """

    def __init__(self, path: str | Path | None = None, *, create: bool = False) -> None:
        self.path = Path(path) if path is not None else default_workspace()
        self.path = self.path.expanduser().absolute()
        self.git_dir = self.path / ".git"
        self.lock_dir = self.git_dir / "stop-locks"
        self._git: Git | None = None
        self._signing: list[str] | None = None
        if self._is_workspace():
            return
        if self.path.exists():
            if not self.path.is_dir():
                raise UserError(
                    f"{self.path} is a file, not a stop-tui workspace",
                    hint="pass --workspace with a directory",
                )
            if any(self.path.iterdir()):
                raise UserError(
                    f"{self.path} is not empty and is not a stop-tui workspace",
                    hint="choose an empty or new directory with --workspace",
                )
        if create:
            self._init()

    # -- workspace

    def _is_workspace(self) -> bool:
        if not (self.git_dir / "config").is_file() or not self.git_dir.is_dir():
            return False
        proc = Git(self.git_dir).run(["config", "--get", MARKER_KEY], check=False)
        return proc.returncode == 0 and proc.stdout.strip() == b"1"

    def _init(self) -> None:
        import subprocess

        self.path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [git_executable(), "init", "-q", "-b", "main", str(self.path)],
            capture_output=True,
            env=base_env(None),
            check=False,
        )
        if proc.returncode != 0:
            raise UserError(
                f"could not create a git repository in {self.path}: "
                + _one_line(proc.stderr.decode(errors="replace")),
                hint="check the directory's permissions",
            )
        git = Git(self.git_dir)
        git.run(["config", MARKER_KEY, "1"])
        git.run(["config", "gc.auto", "0"])  # never repack behind a writer's back
        self.lock_dir.mkdir(exist_ok=True)

    def signing_args(self) -> list[str]:
        """``-c`` arguments with the user's commit-signing settings ([] when not signing)."""
        if self._signing is None:
            self._signing = user_signing_config()
        return self._signing

    @property
    def exists(self) -> bool:
        return self.git_dir.is_dir()

    @property
    def git(self) -> Git:
        if self._git is None:
            if not self.exists:
                raise UserError(f"no stop-tui workspace at {self.path}", hint=SHOW_RUNS_HINT)
            self._git = Git(self.git_dir)
        return self._git

    def ensure_created(self) -> None:
        if not self.exists:
            self._init()

    # -- writing

    def create_run(
        self,
        config: RunConfig,
        seed_source: str,
        *,
        record: StepRecord | None = None,
        solutions: Mapping[str, str] | None = None,
        transcript: str | bytes | Iterable[Mapping[str, Any]] | None = None,
        run_id: str | None = None,
        command: str | None = None,
    ) -> RunWriter:
        """Start a run: its first commit holds run.json and the seed improver.

        Returns a :class:`RunWriter` that holds the run's lock (close it when done).
        """
        self.ensure_created()
        run_id = check_run_id(run_id or new_run_id())
        if self.git.rev(branch_ref(run_id)):
            raise UserError(f"run {run_id} already exists", hint=SHOW_RUNS_HINT)
        config = RunConfig.from_json(config.to_json())
        config.run_id = run_id
        config.created = config.created or now_iso()
        lock = RunLock(self.lock_dir, run_id, command).acquire()
        try:
            if self.git.rev(branch_ref(run_id)):  # created while we waited for the lock
                raise UserError(f"run {run_id} already exists", hint=SHOW_RUNS_HINT)
            writer = RunWriter(self, run_id, lock, config=config)
            rec = record or StepRecord(generation=0, kind="seed", summary="seed improver")
            rec.kind, rec.generation = "seed", 0
            writer._write(
                rec,
                seed_source,
                solutions=solutions,
                transcript=transcript,
                parent=None,
                state=RunState(status="running", generation=0, phase="created"),
            )
        except BaseException:
            lock.release()
            raise
        return writer

    def open_run(self, run_id: str, *, command: str | None = None) -> RunWriter:
        """Lock an existing run for writing (to resume it or change its status)."""
        self.require_run(run_id)
        lock = RunLock(self.lock_dir, run_id, command).acquire()
        try:
            return RunWriter(self, run_id, lock)
        except BaseException:
            lock.release()
            raise

    # -- reading

    def has_run(self, run_id: str) -> bool:
        return (
            self.exists
            and bool(RUN_ID_RE.match(run_id))
            and self.git.rev(branch_ref(run_id)) is not None
        )

    def require_run(self, run_id: str) -> None:
        if not self.has_run(run_id):
            raise UserError(f"unknown run {run_id!r} in {self.path}", hint=SHOW_RUNS_HINT)

    def list_runs(self) -> list[RunInfo]:
        """All runs, newest first, from ONE ``git for-each-ref``."""
        if not self.exists:
            return []
        fmt = "%(refname)%1f%(objectname)%1f%(creatordate:iso-strict)%1f%(trailers:only,unfold)%1e"
        out = self.git.out(
            ["for-each-ref", f"--format={fmt}", "refs/heads/stop/", "refs/stop/*/best",
             "refs/stop/*/state"]
        )  # fmt: skip
        branches: dict[str, tuple[str, str, dict[str, str]]] = {}
        best: dict[str, tuple[str, dict[str, str]]] = {}
        state: dict[str, dict[str, str]] = {}
        for rec in out.split("\x1e"):
            rec = rec.strip("\n")
            if not rec:
                continue
            ref, sha, date, trailers_text = rec.split("\x1f")
            trailers = parse_trailers(trailers_text)
            if ref.startswith("refs/heads/stop/"):
                branches[ref[len("refs/heads/stop/") :]] = (sha, date, trailers)
            else:
                _, _, rid, name = ref.split("/", 3)
                if name == "best":
                    best[rid] = (sha, trailers)
                elif name == "state":
                    state[rid] = trailers
        runs = []
        for rid, (sha, date, tip) in branches.items():
            st = state.get(rid, {})
            b_sha, b_tr = best.get(rid, (None, {}))
            runs.append(
                RunInfo(
                    run_id=rid,
                    task=st.get("Stop-Task") or tip.get("Stop-Task", ""),
                    model=st.get("Stop-Model") or tip.get("Stop-Model", ""),
                    status=self._live_status(rid, st.get("Stop-Status", "unknown")),
                    generations=_parse_int(tip.get("Stop-Generation")) or 0,
                    best_meta_utility=_parse_num(b_tr.get("Stop-Meta-Utility")),
                    best_commit=b_sha,
                    cost=_parse_num(st.get("Stop-Cost")),
                    created=st.get("Stop-Created") or date,
                    head=sha,
                )
            )
        runs.sort(key=lambda r: (r.created, r.run_id), reverse=True)
        return runs

    def _live_status(self, run_id: str, status: str) -> str:
        """A run saved as running whose writer is gone was interrupted (killed or crashed):
        say so, so that people know to resume it."""
        if status != "running":
            return status
        holder = read_holder(self.lock_dir / f"{run_id}.lock")
        if holder is None or RunLock._holder_dead(holder):
            return "interrupted"
        return status

    def list_steps(self, run_id: str) -> list[StepInfo]:
        """Every improver commit of a run (seed, candidates, adopted) from ONE ``git log``.

        Sorted by generation, then seed/adopted before candidates, then candidate index.
        """
        check_run_id(run_id)
        if not self.exists:
            raise UserError(f"unknown run {run_id!r} in {self.path}", hint=SHOW_RUNS_HINT)
        fmt = "%H%x1f%P%x1f%cI%x1f%s%x1f%D%x1f%(trailers:only,unfold)%x1e"
        out = self.git.out(
            [
                "log",
                "--ignore-missing",
                "--decorate=full",
                f"--decorate-refs={branch_ref(run_id)}",
                f"--decorate-refs=refs/stop/{run_id}/",
                "--date-order",
                f"--format={fmt}",
                branch_ref(run_id),
                f"--glob=refs/stop/{run_id}/candidates",
                "--",
            ]
        )
        steps: list[StepInfo] = []
        position: dict[str, int] = {}
        for rec in out.split("\x1e"):
            rec = rec.strip("\n")
            if not rec:
                continue
            sha, parents, date, subject, deco, trailers_text = rec.split("\x1f")
            position[sha] = len(position)  # children before parents (--date-order)
            tr = parse_trailers(trailers_text)
            if tr.get("Stop-Run") != run_id or tr.get("Stop-Kind") not in KINDS:
                continue
            refs = [r.strip() for r in deco.replace("HEAD -> ", "").split(",") if r.strip()]
            refs = [r[len("tag: ") :] if r.startswith("tag: ") else r for r in refs]
            steps.append(
                StepInfo(
                    commit=sha,
                    parent=parents.split()[0] if parents.strip() else None,
                    run_id=run_id,
                    generation=_parse_int(tr.get("Stop-Generation")) or 0,
                    kind=tr.get("Stop-Kind", ""),
                    candidate=_parse_int(tr.get("Stop-Candidate")),
                    summary=subject,
                    meta_utility=_parse_num(tr.get("Stop-Meta-Utility")),
                    test_utility=_parse_num(tr.get("Stop-Test-Utility")),
                    decision=tr.get("Stop-Decision", "none"),
                    flags=_split_flags(tr.get("Stop-Flags")),
                    model=tr.get("Stop-Model", ""),
                    date=date,
                    refs=refs,
                    adopted_from=tr.get("Stop-Adopted-From"),
                )
            )
        if not steps:
            raise UserError(f"unknown run {run_id!r} in {self.path}", hint=SHOW_RUNS_HINT)
        adopted_sources = {s.adopted_from for s in steps if s.adopted_from}
        order = {"seed": 0, "adopted": 1, "kept": 1, "candidate": 2}
        for s in steps:
            s.adopted = s.commit in adopted_sources
        steps.sort(
            key=lambda s: (
                s.generation,
                order.get(s.kind, 3),
                s.candidate or 0,
                -position[s.commit],
            )
        )
        return steps

    def _blob(self, commit: str, path: str) -> bytes:
        (data,) = self.git.cat_batch([f"{commit}:{path}"])
        if data is None:
            raise UserError(f"no {path} in commit {commit!r}", hint=SHOW_RUNS_HINT)
        return data

    def get_source(self, commit: str) -> str:
        return self._blob(commit, "improver.py").decode()

    def get_record(self, commit: str) -> StepRecord:
        return StepRecord.from_json(json.loads(self._blob(commit, "record.json")))

    def get_records(self, commits: Iterable[str]) -> list[StepRecord | None]:
        """Many records in ONE ``git cat-file --batch``."""
        blobs = self.git.cat_batch(f"{c}:record.json" for c in commits)
        return [None if b is None else StepRecord.from_json(json.loads(b)) for b in blobs]

    def get_transcript(self, commit: str) -> list[dict[str, Any]]:
        return self.get_transcripts([commit])[0]

    def get_transcripts(self, commits: Iterable[str]) -> list[list[dict[str, Any]]]:
        """Many steps' transcripts in ONE ``git cat-file --batch``."""
        blobs = self.git.cat_batch(f"{c}:transcript.jsonl" for c in commits)
        return [
            [json.loads(line) for line in (b or b"").decode().splitlines() if line.strip()]
            for b in blobs
        ]

    def get_solutions(self, commit: str) -> dict[str, str]:
        proc = self.git.run(["ls-tree", "-z", "--name-only", f"{commit}:solutions"], check=False)
        names = [n for n in proc.stdout.decode().split("\0") if n] if proc.returncode == 0 else []
        blobs = self.git.cat_batch(f"{commit}:solutions/{n}" for n in names)
        return {n: (b or b"").decode() for n, b in zip(names, blobs, strict=True)}

    def get_config(self, run_id: str) -> RunConfig:
        self.require_run(run_id)
        return RunConfig.from_json(json.loads(self._blob(branch_ref(run_id), "run.json")))

    def get_state(self, run_id: str) -> RunState | None:
        check_run_id(run_id)
        if not self.exists:
            return None
        (data,) = self.git.cat_batch([f"{run_ref(run_id, 'state')}:state.json"])
        return None if data is None else RunState.from_json(json.loads(data))

    def diff(self, a: str, b: str) -> str:
        """Unified diff of improver.py between two commits."""
        for c in (a, b):
            if self.git.rev(f"{c}^{{commit}}") is None:
                raise UserError(f"unknown commit {c!r}", hint=SHOW_RUNS_HINT)
        return self.git.out(["diff", "--no-color", "--no-ext-diff", a, b, "--", "improver.py"])

    def best(self, run_id: str) -> StepInfo | None:
        """The best seed/adopted improver so far (``refs/stop/<run-id>/best``)."""
        sha = self.git.rev(run_ref(run_id, "best")) if self.exists else None
        if sha is None:
            self.require_run(run_id)
            return None
        for s in self.list_steps(run_id):
            if s.commit == sha:
                return s
        return None

    def resolve(self, run_id: str, spec: str) -> str:
        """A commit of the run from ``spec``: ``3`` (generation), ``3.1`` or ``3/1`` (candidate
        1 of generation 3), ``best``, ``head`` or a commit id."""
        self.require_run(run_id)
        spec = spec.strip()
        if spec in ("best", "head", "tip"):
            ref = run_ref(run_id, "best") if spec == "best" else branch_ref(run_id)
            sha = self.git.rev(ref)
            if sha:
                return sha
        m = re.fullmatch(r"(\d+)(?:[./](\d+))?", spec)
        if m:
            gen, cand = int(m.group(1)), m.group(2)
            steps = self.list_steps(run_id)
            if cand is None:
                matches = [s for s in steps if s.generation == gen and s.kind != "candidate"]
            else:
                matches = [
                    s
                    for s in steps
                    if s.generation == gen and s.kind == "candidate" and s.candidate == int(cand)
                ]
            if matches:
                return matches[-1].commit
            # An abbreviated commit id can be all digits: try it as one before giving up.
            digits_only_sha = cand is None and len(spec) >= 4 and self.git.rev(f"{spec}^{{commit}}")
            if not digits_only_sha:
                raise UserError(
                    f"run {run_id} has no generation {spec}",
                    hint=f"see 'stop-tui show {run_id}' for its generations",
                )
        if re.fullmatch(r"[0-9a-fA-F]{4,40}", spec):
            sha = self.git.rev(f"{spec}^{{commit}}")
            if sha:
                return sha
        raise UserError(
            f"no generation or commit {spec!r} in run {run_id}",
            hint=f"see 'stop-tui show {run_id}' for its generations",
        )

    # -- export / import

    def export_scores(self, run_id: str, format: str = "json") -> str:
        """Scores of every improver of a run as JSON (a list of rows) or CSV."""
        if format not in ("json", "csv"):
            raise UserError(f"unknown export format {format!r}", hint="use json or csv")
        steps = self.list_steps(run_id)
        records = self.get_records(s.commit for s in steps)
        rows: list[dict[str, Any]] = []
        for s, rec in zip(steps, records, strict=True):
            rows.append(
                {
                    "run_id": run_id,
                    "generation": s.generation,
                    "kind": s.kind,
                    "candidate": s.candidate,
                    "commit": s.commit,
                    "parent": s.parent,
                    "meta_utility_val": rec.meta_utility if rec else s.meta_utility,
                    "meta_utility_test": rec.test_utility if rec else s.test_utility,
                    "tests": [t.to_json() for t in rec.tests] if rec else [],
                    "decision": s.decision,
                    "adopted": s.adopted,
                    "flags": rec.flags if rec else s.flags,
                    "model": s.model,
                    "cost": _opt_cost(rec.budget) if rec else None,
                }
            )
        if format == "json":
            return json.dumps(rows, indent=2) + "\n"
        n_tests = max((len(r["tests"]) for r in rows), default=0)
        buf = io.StringIO()
        header = [
            "run_id", "generation", "kind", "candidate", "commit", "parent",
            "meta_utility_val", "meta_utility_test",
            *[f"val_{i}" for i in range(n_tests)], *[f"test_{i}" for i in range(n_tests)],
            "decision", "adopted", "flags", "model", "cost",
        ]  # fmt: skip
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)

        def cell(v: Any) -> Any:
            return "" if v is None else v

        for r in rows:
            tests = r["tests"] + [{}] * (n_tests - len(r["tests"]))
            w.writerow(
                [cell(r[k]) for k in header[:8]]
                + [cell(t.get("val")) for t in tests]
                + [cell(t.get("test")) for t in tests]
                + [r["decision"], r["adopted"], "; ".join(r["flags"]), r["model"], cell(r["cost"])]
            )
        return buf.getvalue()

    def run_refs(self, run_id: str) -> dict[str, str]:
        out = self.git.out(
            ["for-each-ref", "--format=%(refname) %(objectname)", branch_ref(run_id),
             f"refs/stop/{run_id}/"]
        )  # fmt: skip
        refs = {}
        for line in out.splitlines():
            name, sha = line.split(" ")
            if name == branch_ref(run_id) or name.startswith(f"refs/stop/{run_id}/"):
                refs[name] = sha
        return refs

    def export_bundle(self, run_id: str, path: str | Path) -> Path:
        """Write a git bundle holding the run's branch and all its refs."""
        self.require_run(run_id)
        refs = self.run_refs(run_id)
        target = Path(path).expanduser().absolute()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        self.git.run(
            ["bundle", "create", "-q", str(tmp), "--stdin"],
            input="".join(f"{r}\n" for r in sorted(refs)).encode(),
        )
        os.replace(tmp, target)
        return target

    def import_bundle(self, path: str | Path, *, command: str | None = None) -> list[str]:
        """Fetch the runs in a bundle into this workspace, refs preserved.

        A run that already exists here is updated only if the bundle continues
        it (fast-forward, same candidates); different history is refused.
        Returns the run ids imported.
        """
        bundle = Path(path).expanduser().absolute()
        if not bundle.is_file():
            raise UserError(f"no bundle file {bundle}", hint="pass the path of a .bundle file")
        self.ensure_created()
        proc = self.git.run(["bundle", "list-heads", str(bundle)], check=False)
        if proc.returncode != 0:
            raise UserError(f"{bundle} is not a git bundle", hint="export one with --bundle FILE")
        incoming: dict[str, dict[str, str]] = {}
        for line in proc.stdout.decode().splitlines():
            sha, ref = line.split(" ", 1)
            m = re.fullmatch(r"refs/heads/stop/([^/]+)|refs/stop/([^/]+)/.+", ref)
            rid = (m.group(1) or m.group(2)) if m else None
            if not rid or not RUN_ID_RE.match(rid):
                raise UserError(
                    f"{bundle} holds {ref}, which is not a stop-tui run ref",
                    hint="import bundles made by 'stop-tui export RUN --bundle FILE'",
                )
            incoming.setdefault(rid, {})[ref] = sha
        if not incoming:
            raise UserError(f"{bundle} holds no runs", hint="export one with --bundle FILE")
        for rid, refs in incoming.items():
            if branch_ref(rid) not in refs:
                raise UserError(
                    f"{bundle} holds refs of run {rid} but not its branch",
                    hint="export whole runs with 'stop-tui export RUN --bundle FILE'",
                )
        locks = [RunLock(self.lock_dir, rid, command).acquire() for rid in sorted(incoming)]
        try:
            unb = self.git.run(["bundle", "unbundle", str(bundle)], check=False)
            if unb.returncode != 0:
                raise UserError(
                    f"could not read {bundle}: " + _one_line(unb.stderr.decode(errors="replace")),
                    hint="export the run again",
                )
            # Every incoming commit is checked before any ref moves (the unbundled objects
            # stay unreferenced when the bundle is refused).
            from stop_tui.store.verify import check_import

            for rid, refs in sorted(incoming.items()):
                check_import(self.git, bundle, rid, refs)
            updates: list[tuple[str, str, str]] = []
            for rid, refs in sorted(incoming.items()):
                updates += self._plan_import(rid, refs)
            if updates:
                self._update_refs(updates)
        finally:
            for lock in locks:
                lock.release()
        return sorted(incoming)

    def _plan_import(self, rid: str, refs: dict[str, str]) -> list[tuple[str, str, str]]:
        local = self.run_refs(rid)
        refuse = UserError(
            f"run {rid} already exists in {self.path} with different history",
            hint="import into another workspace with --workspace DIR",
        )
        branch = branch_ref(rid)
        mine, theirs = local.get(branch), refs[branch]
        if mine is None or mine == theirs:
            take_all = mine is None
        elif self._is_ancestor(mine, theirs):
            take_all = True
        elif self._is_ancestor(theirs, mine):
            take_all = False
        else:
            raise refuse
        updates: list[tuple[str, str, str]] = []
        for ref, sha in sorted(refs.items()):
            old = local.get(ref)
            if old == sha:
                continue
            if ref == branch:
                if take_all:
                    updates.append((ref, sha, old or ZERO))
            elif "/candidates/" in ref:
                if old is not None:
                    raise refuse
                updates.append((ref, sha, ZERO))
            elif old is None or take_all:  # best, state: follow the newer history
                updates.append((ref, sha, old or ZERO))
        return updates

    def _is_ancestor(self, a: str, b: str) -> bool:
        return self.git.run(["merge-base", "--is-ancestor", a, b], check=False).returncode == 0

    def _update_refs(self, updates: Iterable[tuple[str, str, str]]) -> None:
        lines = ["start"] + [f"update {ref} {new} {old}" for ref, new, old in updates]
        lines += ["prepare", "commit"]
        self.git.run(["update-ref", "--stdin"], input=("\n".join(lines) + "\n").encode())


class RunWriter:
    """Writes one run while holding its lock. Obtain with :meth:`RunStore.create_run`
    or :meth:`RunStore.open_run`; ``close()`` (or ``with``) releases the lock."""

    def __init__(
        self, store: RunStore, run_id: str, lock: RunLock, *, config: RunConfig | None = None
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.lock = lock
        self.git = store.git
        self._clean_stale_ref_locks()
        self._refs: dict[str, str] = store.run_refs(run_id)
        self._meta: dict[str, float | None] = {}
        self.config = config or RunConfig.from_json(
            json.loads(store._blob(branch_ref(run_id), "run.json"))
        )
        self._config_blob: bytes = _json_bytes(self.config.to_json())
        tr = self._trailers(
            [r for r in (self.tip, self._refs.get(run_ref(run_id, "best"))) if r is not None]
        )
        for sha, t in tr.items():
            self._meta[sha] = _parse_num(t.get("Stop-Meta-Utility"))
        tip_tr = tr.get(self.tip or "", {})
        self._tip_generation = _parse_int(tip_tr.get("Stop-Generation")) or 0

    @property
    def tmp_dir(self) -> Path:
        return self.store.git_dir / "stop-tmp" / self.run_id

    def _clean_stale_ref_locks(self) -> None:
        """Remove ``*.lock`` files a killed git left on this run's refs, and a killed writer's
        scratch files (we hold the run lock, so nobody else is using either)."""
        if self.tmp_dir.is_dir():
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
        gd = self.store.git_dir
        stale = [gd / "refs/heads/stop" / f"{self.run_id}.lock"]
        run_dir = gd / "refs/stop" / self.run_id
        if run_dir.is_dir():
            stale += list(run_dir.rglob("*.lock"))
        for p in stale:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def _trailers(self, commits: list[str]) -> dict[str, dict[str, str]]:
        if not commits:
            return {}
        out = self.git.out(
            ["log", "--no-walk=unsorted", "--format=%H%x1f%(trailers:only,unfold)%x1e", *commits]
        )
        res = {}
        for rec in out.split("\x1e"):
            rec = rec.strip("\n")
            if rec:
                sha, text = rec.split("\x1f")
                res[sha] = parse_trailers(text)
        return res

    @property
    def tip(self) -> str | None:
        return self._refs.get(branch_ref(self.run_id))

    @property
    def generation(self) -> int:
        """The generation of the branch tip (0 = the seed)."""
        return self._tip_generation

    def next_candidate_index(self, generation: int) -> int:
        prefix = f"refs/stop/{self.run_id}/candidates/{generation}/"
        used = [int(r[len(prefix) :]) for r in self._refs if r.startswith(prefix)]
        return max(used, default=-1) + 1

    # -- public writes

    def commit_step(
        self,
        record: StepRecord,
        source: str,
        *,
        solutions: Mapping[str, str] | None = None,
        transcript: str | bytes | Iterable[Mapping[str, Any]] | None = None,
        parent: str | None = None,
        state: RunState | None = None,
    ) -> str:
        """Commit one improver and return its commit id.

        - ``kind="candidate"``: parent = the improver that generated it (default: the
          branch tip); kept under ``refs/stop/<run>/candidates/<gen>/<n>`` (``n`` is
          ``record.candidate`` or the next free index). The branch does not move.
        - ``kind="adopted"``: ``generation`` must be the tip's plus one; the branch moves.
        - ``kind="kept"``: likewise, for a generation that kept the previous improver
          (same ``improver.py``; the record says why).
        - ``kind="seed"``: generation 0 again (e.g. the seed's evaluation); the branch moves.

        The best ref follows automatically when a seed/adopted improver beats it.
        ``state``, when given, is saved in the same ref transaction.
        """
        self._check_held()
        rec = StepRecord.from_json(record.to_json())
        if rec.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {rec.kind!r}")
        if rec.kind in ("adopted", "kept") and rec.generation != self.generation + 1:
            raise ValueError(
                f"adopted generation {rec.generation} does not follow the tip's {self.generation}"
            )
        if rec.kind == "seed" and (rec.generation != 0 or self.generation != 0):
            raise ValueError("a seed commit is generation 0 on a branch still at generation 0")
        if rec.kind == "candidate":
            if parent is None:
                parent = self.tip
            elif self.git.rev(f"{parent}^{{commit}}") is None:
                raise ValueError(f"unknown parent commit {parent}")
        else:
            parent = self.tip
        return self._write(
            rec, source, solutions=solutions, transcript=transcript, parent=parent, state=state
        )

    def save_state(self, state: RunState) -> str:
        """Save the run's status and resume data (``refs/stop/<run>/state``)."""
        self._check_held()
        if state.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {state.status!r}")
        (blob,) = self._hash_blobs([self._state_bytes(state)])
        commit, ref = self._state_commit(blob, state)
        self._apply([ref])
        return commit

    def set_best(self, commit: str) -> None:
        """Point the run's best ref at a commit of the run (e.g. after a human's choice)."""
        self._check_held()
        sha = self.git.rev(f"{commit}^{{commit}}")
        if sha is None:
            raise ValueError(f"unknown commit {commit}")
        self._apply([(run_ref(self.run_id, "best"), sha)])

    def close(self) -> None:
        self.lock.release()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals

    def _check_held(self) -> None:
        if not self.lock.held:
            raise RuntimeError(f"the writer of run {self.run_id} is closed")

    def _state_bytes(self, state: RunState) -> bytes:
        data = state.to_json()
        data["updated"] = now_iso()
        return _json_bytes(data)

    def _state_commit(self, blob: str, state: RunState) -> tuple[str, tuple[str, str]]:
        tree = self.git.line(["mktree"], input=f"100644 blob {blob}\tstate.json\n".encode())
        msg = state_message(self.run_id, state, self.config)
        commit = self.git.line(
            ["commit-tree", "--no-gpg-sign", tree, "-F", "-"], input=msg.encode()
        )
        return commit, (run_ref(self.run_id, "state"), commit)

    def _hash_blobs(self, contents: list[bytes]) -> list[str]:
        """Write blobs with ONE ``hash-object -w --stdin-paths``, staged in this run's own
        scratch directory (``.git/stop-tmp/<run-id>``, emptied whenever the lock is taken)."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        try:
            for i, data in enumerate(contents):
                p = self.tmp_dir / f"b{i}"
                p.write_bytes(data)
                paths.append(p)
            out = self.git.out(
                ["hash-object", "-w", "--no-filters", "--stdin-paths"],
                input="".join(f"{p}\n" for p in paths).encode(),
            )
        finally:
            for p in paths:
                p.unlink(missing_ok=True)
        shas = out.split()
        if len(shas) != len(contents):
            raise RuntimeError(
                f"git hash-object returned {len(shas)} ids for {len(contents)} blobs"
            )
        return shas

    def _parent_meta(self, parent: str | None) -> float | None:
        if parent is None:
            return None
        if parent not in self._meta:
            tr = self._trailers([parent]).get(parent, {})
            self._meta[parent] = _parse_num(tr.get("Stop-Meta-Utility"))
        return self._meta[parent]

    def _write(
        self,
        rec: StepRecord,
        source: str,
        *,
        solutions: Mapping[str, str] | None,
        transcript: str | bytes | Iterable[Mapping[str, Any]] | None,
        parent: str | None,
        state: RunState | None,
    ) -> str:
        rec.run_id = self.run_id
        rec.model = rec.model or self.config.model
        rec.created = rec.created or now_iso()
        if rec.decision is not None and not rec.decision.at:
            rec.decision.at = rec.created
        if rec.kind == "candidate" and rec.candidate is None:
            rec.candidate = self.next_candidate_index(rec.generation)
        if rec.kind == "candidate":
            cref = candidate_ref(self.run_id, rec.generation, int(rec.candidate or 0))
            if cref in self._refs:
                raise ValueError(f"candidate {rec.generation}/{rec.candidate} already exists")
        sols = dict(solutions or {})
        for name in sols:
            if not SOLUTION_NAME_RE.match(name):
                raise ValueError(f"bad solution file name {name!r}")
        source_bytes, transcript_data = source.encode(), _transcript_bytes(transcript)
        fill_hashes(rec, source_bytes, transcript_data, {n: t.encode() for n, t in sols.items()})
        files: list[tuple[str, bytes]] = [
            ("improver.py", source_bytes),
            ("run.json", self._config_blob),
            ("record.json", _json_bytes(rec.to_json())),
            ("transcript.jsonl", transcript_data),
        ]
        contents = [data for _, data in files] + [s.encode() for s in sols.values()]
        if state is not None:
            contents.append(self._state_bytes(state))
        shas = self._hash_blobs(contents)
        entries = [
            f"100644 blob {sha}\t{name}" for (name, _), sha in zip(files, shas, strict=False)
        ]
        if sols:
            sol_shas = shas[len(files) : len(files) + len(sols)]
            sol_lines = "".join(
                f"100644 blob {sha}\t{name}\n"
                for name, sha in sorted(zip(sols, sol_shas, strict=True))
            )
            sol_tree = self.git.line(["mktree"], input=sol_lines.encode())
            entries.append(f"040000 tree {sol_tree}\tsolutions")
        tree = self.git.line(["mktree"], input=("\n".join(entries) + "\n").encode())
        msg = commit_message(rec, self.config.task, self._parent_meta(parent))
        # A decision commit is signed when the user's git is configured to sign commits.
        signing = self.store.signing_args() if rec.decision is not None else []
        args = [*signing, "commit-tree", "-S" if signing else "--no-gpg-sign", tree]
        if parent:
            args += ["-p", parent]
        try:
            commit = self.git.line([*args, "-F", "-"], input=msg.encode())
        except GitError as exc:
            if not signing:
                raise
            raise UserError(
                f"could not sign the decision commit of run {self.run_id}: "
                + _one_line(exc.stderr, 160),
                hint="fix git's signing setup (user.signingkey, gpg.format) "
                "or set commit.gpgsign=false",
            ) from exc

        updates: list[tuple[str, str]] = []
        if rec.kind == "candidate":
            updates.append(
                (candidate_ref(self.run_id, rec.generation, int(rec.candidate or 0)), commit)
            )
        else:
            updates.append((branch_ref(self.run_id), commit))
            best_ref = run_ref(self.run_id, "best")
            best = self._refs.get(best_ref)
            best_meta = self._meta.get(best) if best else None
            if best is None or (
                rec.meta_utility is not None and (best_meta is None or rec.meta_utility > best_meta)
            ):
                updates.append((best_ref, commit))
        if state is not None:
            _, state_update = self._state_commit(shas[-1], state)
            updates.append(state_update)
        self._apply(updates)
        self._meta[commit] = rec.meta_utility
        if rec.kind != "candidate":
            self._tip_generation = rec.generation
        return commit

    def _apply(self, updates: list[tuple[str, str]]) -> None:
        """One ref transaction; each ref must still hold the value we last saw (CAS)."""
        try:
            self.store._update_refs((ref, new, self._refs.get(ref, ZERO)) for ref, new in updates)
        except GitError as exc:
            raise RuntimeError(
                f"run {self.run_id} changed under us or its refs are locked: {exc.stderr}"
            ) from exc
        for ref, new in updates:
            self._refs[ref] = new
