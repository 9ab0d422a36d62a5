"""A harmless attack on verified history (``stop-tui doctor --attacks``).

In a temporary workspace, a synthetic run (written through the real writer) has
its adopted improver's source replaced with git plumbing, the way an attacker
with write access to the repository would: same record, transcript, message
and parents, the branch moved to the forged commit. ``verify`` must fail it
and ``resume`` must refuse it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from stop_tui.errors import UserError
from stop_tui.sandbox.selftest import AttackResult
from stop_tui.store.store import RunStore, branch_ref
from stop_tui.store.synthetic import build_run
from stop_tui.store.verify import check_resumable, verify_run

FORGED = "def improve_algorithm(initial_solution, utility, language_model):\n    return 'pwned'\n"


def forge_adopted_source(store: RunStore, run_id: str) -> None:
    """Replace improver.py in the run's branch tip (its last adopted step)."""
    git, ref = store.git, branch_ref(run_id)
    tip = git.line(["rev-parse", ref])
    raw = git.out(["cat-file", "commit", tip])
    head, _, message = raw.partition("\n\n")
    parents = [line.split()[1] for line in head.splitlines() if line.startswith("parent ")]
    blob = git.line(["hash-object", "-w", "--stdin"], input=FORGED.encode())
    entries = []
    for line in git.out(["ls-tree", tip]).splitlines():
        meta, name = line.split("\t", 1)
        if name == "improver.py":
            mode, kind, _ = meta.split()
            meta = f"{mode} {kind} {blob}"
        entries.append(f"{meta}\t{name}\n")
    tree = git.line(["mktree"], input="".join(entries).encode())
    args = ["commit-tree", "--no-gpg-sign", tree]
    for parent in parents:
        args += ["-p", parent]
    forged = git.line([*args, "-F", "-"], input=message.encode())
    git.out(["update-ref", ref, forged, tip])


def forged_history_attacks() -> list[AttackResult]:
    with tempfile.TemporaryDirectory(prefix="stop-tui-selftest-") as folder:
        store = RunStore(Path(folder) / "ws", create=True)
        run_id = build_run(store, generations=1, candidates=1)
        honest = verify_run(store, run_id).ok
        forge_adopted_source(store, run_id)
        report = verify_run(store, run_id)
        failed = [c.name for c in report.checks if c.status == "FAIL"]
        try:
            check_resumable(store, run_id)
            refused = "resumed the forged run"
        except UserError as exc:
            refused = ""
            why = str(exc)
    verified = AttackResult(
        "replace an adopted source in git (verify)",
        honest and "sources" in failed,
        f"verify failed: {', '.join(failed)}" if failed else "verify passed the forgery",
    )
    resumed = AttackResult(
        "replace an adopted source in git (resume)",
        not refused,
        refused or f"refused: {why[:60]}",
    )
    return [verified, resumed]
