"""Runs leaving and entering a workspace: score tables (JSON, CSV) and git bundles.

An imported bundle is checked commit by commit (:func:`stop_tui.store.verify.check_import`)
before any ref moves; a run that already exists is only fast-forwarded.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Any

from stop_tui.errors import UserError
from stop_tui.store.integrity import one_line
from stop_tui.store.layout import RUN_ID_RE, ZERO, branch_ref
from stop_tui.store.lock import RunLock
from stop_tui.store.messages import opt_cost
from stop_tui.store.reader import RunReader
from stop_tui.store.verify import check_import


def export_scores(store: RunReader, run_id: str, format: str = "json") -> str:
    """Scores of every improver of a run as JSON (a list of rows) or CSV."""
    if format not in ("json", "csv"):
        raise UserError(f"unknown export format {format!r}", hint="use json or csv")
    steps = store.list_steps(run_id)
    records = store.get_records(s.commit for s in steps)
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
                "cost": opt_cost(rec.budget) if rec else None,
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


def export_bundle(store: RunReader, run_id: str, path: str | Path) -> Path:
    """Write a git bundle holding the run's branch and all its refs."""
    store.require_run(run_id)
    refs = store.run_refs(run_id)
    target = Path(path).expanduser().absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    store.git.run(
        ["bundle", "create", "-q", str(tmp), "--stdin"],
        input="".join(f"{r}\n" for r in sorted(refs)).encode(),
    )
    os.replace(tmp, target)
    return target


def import_bundle(store: RunReader, path: str | Path, *, command: str | None = None) -> list[str]:
    """Fetch the runs in a bundle into this workspace, refs preserved.

    A run that already exists here is updated only if the bundle continues
    it (fast-forward, same candidates); different history is refused.
    Returns the run ids imported.
    """
    bundle = Path(path).expanduser().absolute()
    if not bundle.is_file():
        raise UserError(f"no bundle file {bundle}", hint="pass the path of a .bundle file")
    store.ensure_created()
    proc = store.git.run(["bundle", "list-heads", str(bundle)], check=False)
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
    locks = [RunLock(store.lock_dir, rid, command).acquire() for rid in sorted(incoming)]
    try:
        unb = store.git.run(["bundle", "unbundle", str(bundle)], check=False)
        if unb.returncode != 0:
            raise UserError(
                f"could not read {bundle}: " + one_line(unb.stderr.decode(errors="replace")),
                hint="export the run again",
            )
        # Every incoming commit is checked before any ref moves (the unbundled objects
        # stay unreferenced when the bundle is refused).
        for rid, refs in sorted(incoming.items()):
            check_import(store.git, bundle, rid, refs)
        updates: list[tuple[str, str, str]] = []
        for rid, refs in sorted(incoming.items()):
            updates += _plan_import(store, rid, refs)
        if updates:
            store.update_refs(updates)
    finally:
        for lock in locks:
            lock.release()
    return sorted(incoming)


def _plan_import(store: RunReader, rid: str, refs: dict[str, str]) -> list[tuple[str, str, str]]:
    local = store.run_refs(rid)
    refuse = UserError(
        f"run {rid} already exists in {store.path} with different history",
        hint="import into another workspace with --workspace DIR",
    )
    branch = branch_ref(rid)
    mine, theirs = local.get(branch), refs[branch]
    if mine is None or mine == theirs:
        take_all = mine is None
    elif _is_ancestor(store, mine, theirs):
        take_all = True
    elif _is_ancestor(store, theirs, mine):
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


def _is_ancestor(store: RunReader, a: str, b: str) -> bool:
    return store.git.run(["merge-base", "--is-ancestor", a, b], check=False).returncode == 0
