"""The git run store: every improver a commit, every run a branch.

See docs/git-store.md for the layout and how to browse it with plain git.
"""

from stop_tui.store.lock import RunLock
from stop_tui.store.records import (
    Decision,
    MetaTestScore,
    RunConfig,
    RunInfo,
    RunState,
    StepInfo,
    StepRecord,
)
from stop_tui.store.store import (
    DEFAULT_WORKSPACE,
    WORKSPACE_ENV,
    RunStore,
    RunWriter,
    branch_ref,
    candidate_ref,
    new_run_id,
    run_ref,
)

__all__ = [
    "DEFAULT_WORKSPACE",
    "WORKSPACE_ENV",
    "Decision",
    "MetaTestScore",
    "RunConfig",
    "RunInfo",
    "RunLock",
    "RunState",
    "RunStore",
    "RunWriter",
    "StepInfo",
    "StepRecord",
    "branch_ref",
    "candidate_ref",
    "new_run_id",
    "run_ref",
]
