"""Forging a run's history the way an attacker with write access to the repository would:
with git plumbing (hash-object, mktree, commit-tree, update-ref), never through the store.

:func:`rewrite` re-creates a run's commits with one of them edited (files replaced, removed,
added with any mode; record fields changed; message changed; parents changed) and every
descendant re-parented, then moves every ref of the run to the rewritten history, so that
the forgery is as consistent as the attacker wants it to be.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from typing import Any

from stop_tui.store import RunStore
from stop_tui.store.gitcmd import base_env
from stop_tui.store.records import sha256_hex

#: New content, removal, or (mode, content); (160000, commit id) makes a submodule entry.
FileEdit = bytes | None | tuple[str, bytes]


def git(store: RunStore, *args: str, input: bytes | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], input=input, capture_output=True, env=base_env(store.git_dir), check=True
    )
    return proc.stdout.decode()


def blob(store: RunStore, data: bytes) -> str:
    return git(store, "hash-object", "-w", "--stdin", input=data).strip()


def tree_entries(store: RunStore, tree: str) -> list[tuple[str, str, str, str]]:
    out = []
    for line in git(store, "ls-tree", tree).splitlines():
        meta, name = line.split("\t", 1)
        mode, kind, sha = meta.split()
        out.append((mode, kind, sha, name))
    return out


def make_tree(store: RunStore, entries: list[tuple[str, str, str, str]]) -> str:
    text = "".join(f"{m} {k} {s}\t{n}\n" for m, k, s, n in entries)
    return git(store, "mktree", "--missing", input=text.encode()).strip()


def commit(store: RunStore, tree: str, parents: list[str], message: str) -> str:
    args = ["commit-tree", "--no-gpg-sign", tree]
    for p in parents:
        args += ["-p", p]
    return git(store, *args, "-F", "-", input=message.encode()).strip()


def edit_trailer(message: str, key: str, value: str | None) -> str:
    """Set (or remove, value None) one ``Stop-*`` trailer of a commit message."""
    lines = [line for line in message.splitlines() if not line.startswith(f"{key}: ")]
    if value is not None:
        lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


def trailer(message: str, key: str) -> str | None:
    m = re.search(rf"^{re.escape(key)}: (.*)$", message, re.M)
    return m.group(1) if m else None


def run_commits(store: RunStore, run_id: str) -> list[str]:
    """The run's step commits, each after its parent and every candidate of a generation
    before that generation's adopted commit (so that adopted_from can be remapped)."""
    refs = {r: s for r, s in store.run_refs(run_id).items() if not r.endswith("/state")}
    order = git(store, "rev-list", "--topo-order", "--reverse", *set(refs.values())).split()
    records = store.get_records(order)

    def key(i: int) -> tuple[int, int, int]:
        rec = records[i]
        gen = rec.generation if rec else 0
        return (gen, 0 if rec and rec.kind == "candidate" else 1, i)

    return [order[i] for i in sorted(range(len(order)), key=key)]


def rewrite(
    store: RunStore,
    run_id: str,
    target: str | set[str],
    *,
    files: dict[str, FileEdit] | None = None,
    record: Callable[[dict[str, Any]], None] | None = None,
    message: Callable[[str], str] | None = None,
    parents: list[str] | None = None,
    rehash: bool = False,
) -> dict[str, str]:
    """Rewrite ``target`` (one commit or a set, each edited alike; descendants re-parented);
    return old -> new commit ids.

    ``rehash=True`` makes the forgery consistent: the record's source hash, its decision's
    hashes and the trailers follow the forged improver.py."""
    targets = {target} if isinstance(target, str) else target
    mapping: dict[str, str] = {}
    for sha in run_commits(store, run_id):
        raw = git(store, "cat-file", "commit", sha)
        head, _, msg = raw.partition("\n\n")
        old_parents = [line.split()[1] for line in head.splitlines() if line.startswith("parent ")]
        tree = next(line.split()[1] for line in head.splitlines() if line.startswith("tree "))
        new_parents = [mapping.get(p, p) for p in old_parents]
        entries = tree_entries(store, tree)
        rec_sha = next(s for m, k, s, n in entries if n == "record.json")
        rec = json.loads(git(store, "cat-file", "blob", rec_sha))
        changed = new_parents != old_parents
        if rec.get("adopted_from") in mapping:
            rec["adopted_from"] = mapping[rec["adopted_from"]]
            msg = edit_trailer(msg, "Stop-Adopted-From", rec["adopted_from"])
            changed = True
        if sha in targets:
            changed = True
            if parents is not None:
                new_parents = parents
            by_name = {n: (m, k, s) for m, k, s, n in entries}
            for name, edit in (files or {}).items():
                if edit is None:
                    by_name.pop(name, None)
                elif isinstance(edit, tuple) and edit[0] == "160000":  # a submodule
                    by_name[name] = (edit[0], "commit", edit[1].decode())
                elif isinstance(edit, tuple):
                    by_name[name] = (edit[0], "blob", blob(store, edit[1]))
                else:
                    by_name[name] = ("100644", "blob", blob(store, edit))
            if record is not None:
                record(rec)
            if rehash and "improver.py" in by_name:
                source = git(store, "cat-file", "blob", by_name["improver.py"][2]).encode()
                digest = sha256_hex(source)
                rec["source_sha256"] = digest
                if "proposed_hash" in rec.get("extra", {}):
                    rec["extra"]["proposed_hash"] = digest
                msg = edit_trailer(msg, "Stop-Source-SHA256", digest)
                if rec.get("decision"):
                    rec["decision"]["source_sha256"] = digest
                    rec["decision"]["approved_sha256"] = digest
                    msg = edit_trailer(msg, "Stop-Decision-SHA256", digest)
            entries = [(m, k, s, n) for n, (m, k, s) in sorted(by_name.items())]
            if message is not None:
                msg = message(msg)
        if not changed:
            continue
        new_rec = (json.dumps(rec, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
        if any(n == "record.json" for *_, n in entries):
            entries = [
                (m, k, blob(store, new_rec) if n == "record.json" else s, n)
                for m, k, s, n in entries
            ]
        mapping[sha] = commit(store, make_tree(store, entries), new_parents, msg)
    for ref, sha in store.run_refs(run_id).items():
        if sha in mapping:
            git(store, "update-ref", ref, mapping[sha])
    return mapping


def set_score(meta: float) -> Callable[[dict[str, Any]], None]:
    def edit(rec: dict[str, Any]) -> None:
        rec["meta_utility"] = meta

    return edit
