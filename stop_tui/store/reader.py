"""Reading runs: the run list, a run's steps, records, sources, transcripts, diffs.

Reads need no lock. The bulk readers parse commit trailers from ONE ``git log``
or ``for-each-ref``; blobs come in ONE ``git cat-file --batch``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from stop_tui.errors import UserError
from stop_tui.store.integrity import parse_trailers
from stop_tui.store.layout import SHOW_RUNS_HINT, branch_ref, check_run_id, run_ref
from stop_tui.store.lock import RunLock, read_holder
from stop_tui.store.messages import parse_int, parse_num, split_flags
from stop_tui.store.records import KINDS, RunConfig, RunInfo, RunState, StepInfo, StepRecord
from stop_tui.store.workspace import Workspace


class RunReader(Workspace):
    """A workspace's runs, read-only."""

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
                    generations=parse_int(tip.get("Stop-Generation")) or 0,
                    best_meta_utility=parse_num(b_tr.get("Stop-Meta-Utility")),
                    best_commit=b_sha,
                    cost=parse_num(st.get("Stop-Cost")),
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
                    generation=parse_int(tr.get("Stop-Generation")) or 0,
                    kind=tr.get("Stop-Kind", ""),
                    candidate=parse_int(tr.get("Stop-Candidate")),
                    summary=subject,
                    meta_utility=parse_num(tr.get("Stop-Meta-Utility")),
                    test_utility=parse_num(tr.get("Stop-Test-Utility")),
                    decision=tr.get("Stop-Decision", "none"),
                    flags=split_flags(tr.get("Stop-Flags")),
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

    def blob(self, commit: str, path: str) -> bytes:
        (data,) = self.git.cat_batch([f"{commit}:{path}"])
        if data is None:
            raise UserError(f"no {path} in commit {commit!r}", hint=SHOW_RUNS_HINT)
        return data

    def get_source(self, commit: str) -> str:
        return self.blob(commit, "improver.py").decode()

    def get_record(self, commit: str) -> StepRecord:
        return StepRecord.from_json(json.loads(self.blob(commit, "record.json")))

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
        return RunConfig.from_json(json.loads(self.blob(branch_ref(run_id), "run.json")))

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
