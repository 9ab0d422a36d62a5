"""Writing one run while holding its lock: improver commits, state, the best ref.

Writes use plumbing only (``hash-object -w``, ``mktree``, ``commit-tree``) and
end with one ``update-ref --stdin`` transaction that names the old value of
every ref it moves (compare-and-swap): objects first, refs last. A process
killed at any instant leaves unreferenced objects at worst, which ``git fsck``
accepts and ``git gc`` eventually removes.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from stop_tui.errors import UserError
from stop_tui.store.gitcmd import GitError
from stop_tui.store.integrity import SOLUTION_NAME_RE, fill_hashes, one_line, parse_trailers
from stop_tui.store.layout import ZERO, branch_ref, candidate_ref, run_ref
from stop_tui.store.lock import RunLock
from stop_tui.store.messages import (
    commit_message,
    json_bytes,
    parse_int,
    parse_num,
    state_message,
    transcript_bytes,
)
from stop_tui.store.reader import RunReader
from stop_tui.store.records import KINDS, STATUSES, RunConfig, RunState, StepRecord, now_iso


class RunWriter:
    """Writes one run while holding its lock. Obtain with :meth:`RunStore.create_run`
    or :meth:`RunStore.open_run`; ``close()`` (or ``with``) releases the lock."""

    def __init__(
        self, store: RunReader, run_id: str, lock: RunLock, *, config: RunConfig | None = None
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.lock = lock
        self.git = store.git
        self._clean_stale_ref_locks()
        self._refs: dict[str, str] = store.run_refs(run_id)
        self._meta: dict[str, float | None] = {}
        self.config = config or RunConfig.from_json(
            json.loads(store.blob(branch_ref(run_id), "run.json"))
        )
        self._config_blob: bytes = json_bytes(self.config.to_json())
        tr = self._trailers(
            [r for r in (self.tip, self._refs.get(run_ref(run_id, "best"))) if r is not None]
        )
        for sha, t in tr.items():
            self._meta[sha] = parse_num(t.get("Stop-Meta-Utility"))
        tip_tr = tr.get(self.tip or "", {})
        self._tip_generation = parse_int(tip_tr.get("Stop-Generation")) or 0

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
        return json_bytes(data)

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
            self._meta[parent] = parse_num(tr.get("Stop-Meta-Utility"))
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
        source_bytes, transcript_data = source.encode(), transcript_bytes(transcript)
        fill_hashes(rec, source_bytes, transcript_data, {n: t.encode() for n, t in sols.items()})
        files: list[tuple[str, bytes]] = [
            ("improver.py", source_bytes),
            ("run.json", self._config_blob),
            ("record.json", json_bytes(rec.to_json())),
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
                + one_line(exc.stderr, 160),
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
            self.store.update_refs((ref, new, self._refs.get(ref, ZERO)) for ref, new in updates)
        except GitError as exc:
            raise RuntimeError(
                f"run {self.run_id} changed under us or its refs are locked: {exc.stderr}"
            ) from exc
        for ref, new in updates:
            self._refs[ref] = new
