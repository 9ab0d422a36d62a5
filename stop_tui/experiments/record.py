"""A sweep in the workspace's git: ``refs/stop-sweeps/<sweep-id>``.

The ref points at a commit whose tree holds ``sweep.toml`` (the file as given),
``sweep.json`` (id, name, software version, the checked spec and every cell with
its run id) and ``runs.txt`` (one line per cell: run id, branch, cell key), so
plain ``git show refs/stop-sweeps/<id>:runs.txt`` lists the runs of a sweep.
Each cell is an ordinary run with its own ``stop/<run-id>`` branch. Updates (the
sweep's status) are new commits on top; the record is written before any cell
starts, so a killed sweep always knows every cell's run id.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from stop_tui import __version__
from stop_tui.errors import UserError
from stop_tui.experiments.grid import Cell, expand, run_id_for
from stop_tui.experiments.spec import SweepSpec, parse_sweep
from stop_tui.store.store import RunStore

REF_PREFIX = "refs/stop-sweeps/"
SWEEP_ID_RE = re.compile(r"^sweep-[A-Za-z0-9_-]{1,60}$")


def new_sweep_id() -> str:
    return "sweep-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def is_sweep_id(name: str) -> bool:
    return bool(SWEEP_ID_RE.match(name))


@dataclass
class CellEntry:
    cell: Cell
    run_id: str


@dataclass
class SweepRecord:
    sweep_id: str
    spec: SweepSpec
    text: str
    cells: list[CellEntry]
    created: str = ""
    software_version: str = __version__
    status: str = "created"  # created | running | finished | interrupted
    info: dict[str, Any] = field(default_factory=dict)  # e.g. peak concurrency

    @classmethod
    def new(cls, spec: SweepSpec, text: str, sweep_id: str | None = None) -> SweepRecord:
        sid = sweep_id or new_sweep_id()
        cells = [CellEntry(c, run_id_for(sid, i, c)) for i, c in enumerate(expand(spec))]
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return cls(sid, spec, text, cells, created)

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep_id": self.sweep_id,
            "name": self.spec.name,
            "created": self.created,
            "software_version": self.software_version,
            "status": self.status,
            "info": self.info,
            "spec": self.spec.to_toml_dict(),
            "cells": [
                {**e.cell.to_json(), "key": e.cell.key, "run_id": e.run_id} for e in self.cells
            ],
        }

    def runs_text(self) -> str:
        return "".join(f"{e.run_id}\tstop/{e.run_id}\t{e.cell.key}\n" for e in self.cells)


def _blob(store: RunStore, data: bytes) -> str:
    return store.git.line(["hash-object", "-w", "--stdin"], input=data)


def save(store: RunStore, record: SweepRecord, message: str) -> str:
    """Write the record as a new commit on its ref (parent: the previous one)."""
    files = {
        "sweep.toml": record.text.encode(),
        "sweep.json": (json.dumps(record.to_json(), indent=2) + "\n").encode(),
        "runs.txt": record.runs_text().encode(),
    }
    entries = "".join(
        f"100644 blob {_blob(store, data)}\t{name}\n" for name, data in sorted(files.items())
    )
    tree = store.git.line(["mktree"], input=entries.encode())
    ref = REF_PREFIX + record.sweep_id
    old = store.git.rev(ref)
    args = ["commit-tree", "--no-gpg-sign", tree]
    if old:
        args += ["-p", old]
    commit = store.git.line(args, input=f"sweep {record.sweep_id}: {message}\n".encode())
    store.git.run(["update-ref", ref, commit, old or ""])
    return commit


def load(store: RunStore, sweep_id: str) -> SweepRecord:
    ref = REF_PREFIX + sweep_id
    if not is_sweep_id(sweep_id) or not store.exists or store.git.rev(ref) is None:
        raise UserError(
            f"unknown sweep {sweep_id!r} in {store.path}",
            hint="see 'stop-tui sweeps' for the sweeps in this workspace",
        )
    raw_json, raw_text = store.git.cat_batch([f"{ref}:sweep.json", f"{ref}:sweep.toml"])
    assert raw_json is not None and raw_text is not None
    data = json.loads(raw_json)
    text = raw_text.decode()
    spec = parse_sweep(text, f"{ref}:sweep.toml")
    cells = [
        CellEntry(
            Cell(c["task"], c["model"], c["variant"], int(c["seed"]), dict(c["overrides"])),
            c["run_id"],
        )
        for c in data["cells"]
    ]
    return SweepRecord(
        sweep_id,
        spec,
        text,
        cells,
        data.get("created", ""),
        data.get("software_version", ""),
        data.get("status", ""),
        dict(data.get("info") or {}),
    )


def list_sweeps(store: RunStore) -> list[SweepRecord]:
    """Every sweep of the workspace, newest first."""
    if not store.exists:
        return []
    out = store.git.out(["for-each-ref", "--format=%(refname)", REF_PREFIX])
    ids = [line.removeprefix(REF_PREFIX) for line in out.splitlines() if line.strip()]
    records = [load(store, sid) for sid in ids]
    return sorted(records, key=lambda r: r.created, reverse=True)
