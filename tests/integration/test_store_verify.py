"""``stop-tui verify``: forged histories (made with git plumbing, as an attacker would) fail,
honest ones pass; decision commits are signed when the user's git signs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from stop_tui.cli import main
from stop_tui.errors import UserError
from stop_tui.store import Decision, RunConfig, RunStore, StepRecord
from stop_tui.store.synthetic import SEED_SOURCE, build_run, improver_source
from stop_tui.store.verify import LEGACY, check_resumable, verify_run
from tests.support.forge import edit_trailer, git, rewrite, run_commits, set_score

FORGED = "def improve_algorithm(initial_solution, utility, language_model):\n    return 'pwned'\n"


@pytest.fixture
def run(tmp_path: Path) -> tuple[RunStore, str]:
    store = RunStore(tmp_path / "ws", create=True)
    return store, build_run(store, generations=2, candidates=2)


def steps_by(store: RunStore, run_id: str) -> dict[str, str]:
    """'seed', 'g1', 'c1.0', ... -> commit."""
    out = {}
    for s in store.list_steps(run_id):
        if s.kind == "seed":
            out["seed"] = s.commit  # the scored (last) seed commit
        elif s.kind == "candidate":
            out[f"c{s.generation}.{s.candidate}"] = s.commit
        else:
            out[f"g{s.generation}"] = s.commit
    return out


def failed(store: RunStore, run_id: str) -> dict[str, list[str]]:
    report = verify_run(store, run_id)
    assert not report.ok
    return {c.name: c.problems for c in report.checks if c.status == "FAIL"}


def test_an_honest_run_verifies_and_the_cli_prints_one_line_per_check(
    run: tuple[RunStore, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store, rid = run
    assert verify_run(store, rid).ok
    assert main(["verify", rid, "--workspace", str(store.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = ["layout", "records", "sources", "decisions", "transcripts", "history", "refs"]
    for name, line in zip(names, lines, strict=False):
        assert line.startswith(f"ok    {name}: ")
    assert lines[-1] == f"summary: run {rid}: 8 checks, 8 passed, 0 failed"
    check_resumable(store, rid)  # no exception


def test_replaced_adopted_source_keeping_record_and_transcript(run: tuple[RunStore, str]) -> None:
    store, rid = run
    c = steps_by(store, rid)
    rewrite(store, rid, c["g1"], files={"improver.py": FORGED.encode()})
    problems = failed(store, rid)
    assert list(problems) == ["sources", "decisions"]
    assert problems["sources"][0].startswith("gen 1 (adopted) (")
    assert "improver.py sha256" in problems["sources"][0]
    with pytest.raises(UserError, match=r"cannot be resumed: gen 1 \(adopted\)"):
        check_resumable(store, rid)


def test_replaced_candidate_source(run: tuple[RunStore, str]) -> None:
    store, rid = run
    rewrite(store, rid, steps_by(store, rid)["c2.1"], files={"improver.py": FORGED.encode()})
    problems = failed(store, rid)
    assert list(problems) == ["sources"]
    assert problems["sources"][0].startswith("gen 2 candidate 1 (")


def test_a_record_whose_score_was_edited(run: tuple[RunStore, str]) -> None:
    store, rid = run
    rewrite(store, rid, steps_by(store, rid)["c1.0"], record=set_score(0.99))
    problems = failed(store, rid)
    assert list(problems) == ["records"]
    assert "trailer Stop-Meta-Utility says" in problems["records"][0]


def test_swapped_decisions_of_two_candidates(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "ws", create=True)
    writer = store.create_run(
        RunConfig("parity_noise", "demo"),
        SEED_SOURCE,
    )
    rid = writer.run_id
    for n, action in enumerate(("approved", "rejected")):
        writer.commit_step(
            StepRecord(1, "candidate", f"c{n}", decision=Decision(action, "alice")),
            improver_source(1, n),
        )
    writer.close()
    assert verify_run(store, rid).ok
    c = steps_by(store, rid)
    decisions = {k: store.get_record(c[k]).decision for k in ("c1.0", "c1.1")}

    def put(key: str):
        def edit(rec: dict) -> None:
            d = decisions[key]
            assert d is not None
            rec["decision"] = d.to_json()

        return edit

    def msg(key: str):
        d = decisions[key]
        assert d is not None
        return lambda m: edit_trailer(
            edit_trailer(m, "Stop-Decision", d.trailer()), "Stop-Decision-SHA256", d.source_sha256
        )

    rewrite(store, rid, c["c1.0"], record=put("c1.1"), message=msg("c1.1"))
    rewrite(store, rid, steps_by(store, rid)["c1.1"], record=put("c1.0"), message=msg("c1.0"))
    problems = failed(store, rid)
    assert list(problems) == ["decisions"]
    assert sorted({p.split(" (")[0] for p in problems["decisions"]}) == [
        "gen 1 candidate 0",
        "gen 1 candidate 1",
    ]
    assert sum("names source" in p for p in problems["decisions"]) == 2


def test_a_decision_bound_to_a_source_with_the_same_64_bit_prefix(
    run: tuple[RunStore, str],
) -> None:
    """A 64-bit prefix collision cannot be computed in a test, so it is constructed: the
    decision names a digest whose first 16 hex digits are the source's. Compared by their
    64-bit prefixes (as the approval identity was), the two would match; full digests do
    not."""
    store, rid = run
    target = steps_by(store, rid)["g2"]
    real = store.get_record(target).decision
    assert real is not None and len(real.source_sha256) == 64
    collided = real.source_sha256[:16] + ("0" * 48 if real.source_sha256[16] != "0" else "1" * 48)
    assert collided[:16] == real.source_sha256[:16] and collided != real.source_sha256

    def edit(rec: dict) -> None:
        rec["decision"]["source_sha256"] = collided

    rewrite(
        store,
        rid,
        target,
        record=edit,
        message=lambda m: edit_trailer(m, "Stop-Decision-SHA256", collided),
    )
    problems = failed(store, rid)
    assert list(problems) == ["decisions"]
    assert collided[:12] in problems["decisions"][0]


def test_a_deleted_transcript(run: tuple[RunStore, str]) -> None:
    store, rid = run
    rewrite(store, rid, steps_by(store, rid)["c1.1"], files={"transcript.jsonl": None})
    problems = failed(store, rid)
    assert "missing transcript.jsonl" in problems["layout"][0]
    assert "transcripts" in problems  # its recorded hash no longer matches anything


def test_an_edited_transcript(run: tuple[RunStore, str]) -> None:
    store, rid = run
    forged = json.dumps({"role": "user", "content": "x", "usage": {"prompt_tokens": 1}})
    rewrite(store, rid, steps_by(store, rid)["c1.1"], files={"transcript.jsonl": forged.encode()})
    assert "does not match its recorded sha256" in failed(store, rid)["transcripts"][0]


def test_history_rewritten_with_a_forged_parent(run: tuple[RunStore, str]) -> None:
    """Generation 2 re-parented onto the seed: generation 1 disappears from the branch."""
    store, rid = run
    c = steps_by(store, rid)
    rewrite(store, rid, c["g2"], parents=[c["seed"]])
    problems = failed(store, rid)
    assert any("generations must go 0, 1, 2" in p for p in problems["history"])
    assert check_resumable_fails(store, rid)


def test_a_candidate_reparented_outside_the_branch(run: tuple[RunStore, str]) -> None:
    store, rid = run
    c = steps_by(store, rid)
    rewrite(store, rid, c["c2.0"], parents=[c["c1.0"]])
    problems = failed(store, rid)
    assert any(
        "its parent is not an improver on the run's branch" in p for p in problems["history"]
    )


def test_best_pointing_outside_the_run(run: tuple[RunStore, str]) -> None:
    store, rid = run
    other = build_run(store, generations=1, candidates=1, seed=3)
    git(
        store,
        "update-ref",
        f"refs/stop/{rid}/best",
        store.run_refs(other)[f"refs/heads/stop/{other}"],
    )
    problems = failed(store, rid)
    assert any("best points at" in p for p in problems["refs"])


def check_resumable_fails(store: RunStore, rid: str) -> bool:
    try:
        check_resumable(store, rid)
    except UserError as exc:
        return "cannot be resumed" in exc.line()
    return False


def strip_hashes(rec: dict) -> None:
    for key in ("source_sha256", "files", "transcript_usage"):
        rec.pop(key, None)
    if rec.get("decision"):
        rec["decision"].pop("source_sha256", None)
        rec["decision"].pop("approved_sha256", None)


def make_legacy(store: RunStore, rid: str) -> None:
    """What a run recorded before source hashes looks like: no hashes in records or trailers."""
    rewrite(
        store,
        rid,
        set(run_commits(store, rid)),
        record=strip_hashes,
        message=lambda m: edit_trailer(
            edit_trailer(m, "Stop-Source-SHA256", None), "Stop-Decision-SHA256", None
        ),
    )


def test_a_run_recorded_before_hashes_is_unverifiable_not_failed(
    run: tuple[RunStore, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store, rid = run
    make_legacy(store, rid)
    assert store.get_record(store.resolve(rid, "head")).source_sha256 == ""
    report = verify_run(store, rid)
    assert report.ok
    status = {c.name: (c.status, c.detail) for c in report.checks}
    for name in ("sources", "decisions", "transcripts"):
        assert status[name] == ("n/a", LEGACY)
    assert main(["verify", rid, "--workspace", str(store.path)]) == 0
    assert "3 unverifiable" in capsys.readouterr().out
    check_resumable(store, rid)  # resumable, as before this change
    # A legacy run's bundle is refused: nothing proves it was not stripped of its hashes.
    bundle = store.export_bundle(rid, tmp_path / "legacy.bundle")
    with pytest.raises(UserError, match="recorded before source hashes"):
        RunStore(tmp_path / "other", create=True).import_bundle(bundle)


def test_stripping_the_hash_of_one_step_fails(run: tuple[RunStore, str]) -> None:
    store, rid = run
    rewrite(
        store,
        rid,
        steps_by(store, rid)["g1"],
        files={"improver.py": FORGED.encode()},
        record=strip_hashes,
        message=lambda m: edit_trailer(
            edit_trailer(m, "Stop-Source-SHA256", None), "Stop-Decision-SHA256", None
        ),
    )
    problems = failed(store, rid)
    assert any("no source sha256, unlike the rest" in p for p in problems["sources"])


# ----------------------------------------------------------------------------- signing


def ssh_signing_config(tmp_path: Path) -> dict[str, str]:
    key = tmp_path / "signing-key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@example", "-f", str(key)],
        check=True,
    )
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"alice@example {Path(str(key) + '.pub').read_text()}")
    config = tmp_path / "gitconfig"
    config.write_text(
        "[commit]\n\tgpgsign = true\n"
        f"[user]\n\tsigningkey = {key}\n"
        f'[gpg]\n\tformat = ssh\n[gpg "ssh"]\n\tallowedSignersFile = {allowed}\n'
    )
    return {"GIT_CONFIG_GLOBAL": str(config)}


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")
def test_decision_commits_are_signed_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for k, v in ssh_signing_config(tmp_path).items():
        monkeypatch.setenv(k, v)
    store = RunStore(tmp_path / "ws", create=True)
    rid = build_run(store, generations=2, candidates=1)
    c = steps_by(store, rid)
    raw = git(store, "cat-file", "commit", c["g1"])
    assert "gpgsig -----BEGIN SSH SIGNATURE-----" in raw
    assert "gpgsig" not in git(store, "cat-file", "commit", c["c1.0"])  # no decision: unsigned
    report = verify_run(store, rid)
    assert report.ok
    sig = next(ch for ch in report.checks if ch.name == "signatures")
    assert sig.detail == "2 of 2 decision commits signed, every signature good"
    assert main(["verify", rid, "--workspace", str(store.path)]) == 0
    assert "ok    signatures: 2 of 2" in capsys.readouterr().out

    # A signed commit whose message was changed keeps its (now wrong) signature: BAD.
    tip = c["g2"]
    head, _, msg = git(store, "cat-file", "commit", tip).partition("\n\n")
    tampered = head + "\n\n" + msg.replace("Decision: ", "Decision: (forged) ", 1)
    assert tampered != head + "\n\n" + msg
    bad = git(store, "hash-object", "-t", "commit", "-w", "--stdin", input=tampered.encode())
    git(store, "update-ref", f"refs/heads/stop/{rid}", bad.strip())
    git(store, "update-ref", f"refs/stop/{rid}/best", bad.strip())
    problems = failed(store, rid)
    assert list(problems) == ["signatures"]
    assert problems["signatures"][0].startswith("gen 2 (adopted) (")
    assert "bad signature" in problems["signatures"][0]


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")
def test_an_unsigned_decision_among_signed_ones_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in ssh_signing_config(tmp_path).items():
        monkeypatch.setenv(k, v)
    store = RunStore(tmp_path / "ws", create=True)
    rid = build_run(store, generations=2, candidates=1)
    rewrite(store, rid, steps_by(store, rid)["g1"], message=lambda m: m)  # re-made, unsigned
    problems = failed(store, rid)
    assert list(problems) == ["signatures"]
    # Both decision commits were re-made (g2 re-parented onto the forged g1): neither is
    # signed any more, which fails because the user's git signs commits.
    assert len(problems["signatures"]) == 2
    assert "unsigned, while git is configured to sign commits" in problems["signatures"][0]
