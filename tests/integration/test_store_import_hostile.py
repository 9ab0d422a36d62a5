"""``import`` checks every incoming commit before moving any ref: hostile bundles, written
with git plumbing as an attacker would, are refused in one line and nothing moves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from stop_tui.cli import main
from stop_tui.errors import UserError
from stop_tui.store import RunStore, StepRecord
from stop_tui.store.synthetic import build_run
from tests.integration.test_store_verify import FORGED, steps_by
from tests.support.forge import edit_trailer, git, rewrite

Forge = Callable[[RunStore, str, dict[str, str]], None]


def files(target: str = "c1.1", **edits: object) -> Forge:
    """Replace files of one step (``improver_py`` names improver.py)."""
    changes = {k.replace("_", "."): v for k, v in edits.items()}

    def forge(store: RunStore, rid: str, c: dict[str, str]) -> None:
        rewrite(store, rid, c[target], files=changes)  # type: ignore[arg-type]

    return forge


def reorder(store: RunStore, rid: str, c: dict[str, str]) -> None:
    """Generation 2 directly on the seed, generation 1 on top of it."""
    g2 = rewrite(store, rid, c["g2"], parents=[c["seed"]])[c["g2"]]
    g1 = rewrite(store, rid, c["g1"], parents=[g2])[c["g1"]]
    git(store, "update-ref", f"refs/heads/stop/{rid}", g1)


def wrong_trailer(store: RunStore, rid: str, c: dict[str, str]) -> None:
    rewrite(store, rid, c["c2.0"], message=lambda m: edit_trailer(m, "Stop-Generation", "7"))


def best_outside(store: RunStore, rid: str, c: dict[str, str]) -> None:
    other = build_run(store, generations=1, candidates=1, seed=9)
    git(
        store,
        "update-ref",
        f"refs/stop/{rid}/best",
        store.run_refs(other)[f"refs/heads/stop/{other}"],
    )


def extra_ref(store: RunStore, rid: str, c: dict[str, str]) -> None:
    git(store, "update-ref", f"refs/stop/{rid}/hooks/post-import", c["g1"])


def candidate_ref_at_adopted(store: RunStore, rid: str, c: dict[str, str]) -> None:
    git(store, "update-ref", f"refs/stop/{rid}/candidates/2/0", c["g2"])


HOSTILE: dict[str, tuple[Forge, str]] = {
    "forged source": (files(improver_py=FORGED.encode()), "improver.py sha256"),
    "forged adopted source": (
        files(target="g1", improver_py=FORGED.encode()),
        "gen 1 (adopted)",
    ),
    "missing record": (files(record_json=None), "missing record.json"),
    "missing transcript": (files(transcript_jsonl=None), "missing transcript.jsonl"),
    "extra file": (files(**{"evil_sh": b"rm -rf ~\n"}), "unexpected path 'evil.sh'"),
    "symlink": (files(improver_py=("120000", b"/etc/passwd")), "improver.py is a symlink"),
    "executable": (files(improver_py=("100755", FORGED.encode())), "improver.py is executable"),
    "submodule": (files(lib=("160000", b"1" * 40)), "unexpected path 'lib'"),
    "huge blob": (files(improver_py=b"#" * (16 * 2**20 + 1)), "over the 16777216-byte limit"),
    "wrong trailer": (wrong_trailer, "trailer Stop-Generation says '7'"),
    "reordered history": (reorder, "generations must go 0, 1, 2"),
    "best outside the run": (best_outside, "best points at"),
    "extra ref": (extra_ref, "hooks/post-import is not a ref a run has"),
    "candidate ref at an adopted commit": (candidate_ref_at_adopted, "candidates/2/0 points at"),
}


def all_refs(store: RunStore) -> str:
    return git(store, "for-each-ref") if store.exists else ""


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_bundles_are_refused_and_nothing_moves(tmp_path: Path, name: str) -> None:
    forge, expected = HOSTILE[name]
    a = RunStore(tmp_path / "a", create=True)
    rid = build_run(a, generations=2, candidates=2)
    forge(a, rid, steps_by(a, rid))
    bundle = a.export_bundle(rid, tmp_path / "hostile.bundle")
    b = RunStore(tmp_path / "b", create=True)
    with pytest.raises(UserError) as err:
        b.import_bundle(bundle)
    line = err.value.line()
    assert line.startswith(f"hostile.bundle refused, nothing imported: run {rid}: "), line
    assert expected in line and "\n" not in line
    assert all_refs(b) == ""
    assert b.list_runs() == []


def test_the_cli_refuses_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = RunStore(tmp_path / "a", create=True)
    rid = build_run(a, generations=1, candidates=1)
    rewrite(a, rid, steps_by(a, rid)["c1.0"], files={"improver.py": FORGED.encode()})
    bundle = a.export_bundle(rid, tmp_path / "x.bundle")
    assert main(["import", str(bundle), "--workspace", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused, nothing imported" in err


def test_a_continuation_lacking_a_runs_files_is_refused(tmp_path: Path) -> None:
    a = RunStore(tmp_path / "a", create=True)
    rid = build_run(a, generations=1, candidates=1)
    b = RunStore(tmp_path / "b", create=True)
    b.import_bundle(a.export_bundle(rid, tmp_path / "1.bundle"))
    before = all_refs(b)
    with a.open_run(rid) as w:
        w.commit_step(StepRecord(2, "candidate", "next"), FORGED)
    c = steps_by(a, rid)
    rewrite(a, rid, c["c2.0"], files={"record.json": None, "run.json": None})
    with pytest.raises(UserError, match=r"missing (run|record)\.json"):
        b.import_bundle(a.export_bundle(rid, tmp_path / "2.bundle"))
    assert all_refs(b) == before


def test_an_honest_continuation_still_imports(tmp_path: Path) -> None:
    a = RunStore(tmp_path / "a", create=True)
    rid = build_run(a, generations=1, candidates=1)
    b = RunStore(tmp_path / "b", create=True)
    b.import_bundle(a.export_bundle(rid, tmp_path / "1.bundle"))
    with a.open_run(rid) as w:
        build_run(a, generations=1, candidates=2, writer=w)
    assert b.import_bundle(a.export_bundle(rid, tmp_path / "2.bundle")) == [rid]
    assert b.list_steps(rid) == a.list_steps(rid)
