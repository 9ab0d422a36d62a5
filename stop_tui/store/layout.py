"""Where a run lives in a workspace: run ids, ref names and the workspace's defaults.

Every improver is a commit, every run a branch.

Layout of a workspace (a git repository of its own, marked by
``stop-tui.workspace = 1`` in its ``.git/config``)::

    refs/heads/stop/<run-id>                      seed -> gen 1 -> gen 2 ... (adopted improvers)
    refs/stop/<run-id>/candidates/<gen>/<n>       every generated candidate (parent: its generator)
    refs/stop/<run-id>/best                       the best seed/adopted improver so far
    refs/stop/<run-id>/state                      a parentless commit holding state.json

Each improver commit's tree: ``improver.py``, ``run.json``, ``record.json``,
``transcript.jsonl`` and ``solutions/``. Commit messages carry ``Stop-*``
trailers, which is what the bulk readers parse.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

from stop_tui.errors import UserError

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
