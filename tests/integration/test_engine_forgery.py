"""Forged history against a real run (demo model, real sandbox, real git store): replay
and resume refuse forged steps, replay reproduces every source and compares it with the
committed one, and recorded decisions are matched by the full sha256 of their source."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import shutil
from pathlib import Path

import pytest

from stop_tui.cli import main
from stop_tui.engine.approval import ApprovalRequest, Decision, Gate, Policy, Purpose
from stop_tui.engine.meta_utility import source_hash
from stop_tui.engine.recorder import StoreRecorder
from stop_tui.engine.replay import RecordedRun, ReplayReport, load_recorded, replay
from stop_tui.engine.session import seed_improver
from stop_tui.errors import UserError
from stop_tui.sandbox.api import Sandbox
from stop_tui.store import RunStore
from stop_tui.store.records import sha256_hex
from stop_tui.store.verify import verify_run
from tests.integration.test_store_verify import make_legacy, steps_by
from tests.support.engine import small_config, store_run
from tests.support.forge import rewrite

pytestmark = [pytest.mark.timeout(600)]

# A working improver (so that a run continuing from it would really run it).
FORGED = '''from helpers import extract_code


def improve_algorithm(initial_solution, utility, language_model):
    """Returns the solution unchanged (and would do anything else it liked)."""
    return initial_solution
'''


async def replay_checked(
    store: RunStore, rid: str, recorded: RecordedRun | None = None
) -> ReplayReport:
    """Replay; again (at most three times) when it diverged on a *score* first. Scores can
    differ for reasons of load on a busy machine (an evaluation hitting its time limit; the
    same happens before this change, see test_engine_run), and such a divergence stops the
    replay before the step a test forged. A score divergence never satisfies a forgery
    test's assertions, so retrying cannot make one pass."""
    for _ in range(3):
        async with Sandbox() as sandbox:
            report = await replay(store, rid, sandbox=sandbox, recorded=copy.deepcopy(recorded))
        if report.divergence is None or "recorded meta-utility" not in report.divergence:
            return report
    pytest.skip(f"every replay diverged on a score first (load): {report.divergence}")


class RejectCandidates(Gate):
    """Candidates rejected (never evaluated), adoptions approved: the run's only
    evaluations are the seed's and the adopted improver's, so replays of the forgeries
    below reach the forged step without first meeting a score that differs for reasons of
    load (an evaluation hitting its time limit on a busy machine)."""

    def automatic(self, request: ApprovalRequest) -> Decision | None:
        if request.purpose is Purpose.CANDIDATE:
            return Decision.reject("policy:test", "not evaluated in this test")
        return Decision.approve("policy:test")


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workspace = tmp_path_factory.mktemp("forgery") / "runs"
    config = small_config(generations=1, meta_utility_tests=1, seed=7)

    async def record() -> str:
        async with Sandbox() as sandbox:
            gate = RejectCandidates(Policy.AUTO)
            run, _store, backend = store_run(sandbox, config, workspace, gate=gate)
            status = await run.run()
            await backend.aclose()
            return status

    assert asyncio.run(record()) == "finished"
    return workspace, config.run_id


@pytest.fixture
def run(recorded_run: tuple[Path, str], tmp_path: Path) -> tuple[RunStore, str]:
    workspace, rid = recorded_run
    shutil.copytree(workspace, tmp_path / "runs", symlinks=True)
    return RunStore(tmp_path / "runs"), rid


def test_identity_is_the_full_sha256() -> None:
    assert source_hash("x = 1\n") == sha256_hex("x = 1\n") and len(source_hash("")) == 64


async def test_an_honest_run_replays_with_every_source_reproduced(
    run: tuple[RunStore, str],
) -> None:
    store, rid = run
    assert verify_run(store, rid).ok
    steps = store.list_steps(rid)
    report = await replay_checked(store, rid)
    assert report.ok, report.divergence
    distinct = {(s.kind == "candidate", s.generation, s.candidate) for s in steps}
    assert report.sources_matched == len(distinct) and not report.legacy


def test_a_replaced_adopted_source_is_refused_by_replay_and_resume(
    run: tuple[RunStore, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's example: the adopted improver's source replaced in the store, its record
    and transcript kept. Replay used to say "every score matches"; resume would have run it."""
    store, rid = run
    target = steps_by(store, rid)["g1"]
    rewrite(store, rid, target, files={"improver.py": FORGED.encode()})
    with pytest.raises(UserError, match=r"cannot be replayed: gen 1 \((adopted|kept)\)"):
        load_recorded(store, rid)
    assert main(["replay", rid, "--workspace", str(store.path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "improver.py sha256" in err
    config = small_config(generations=2, meta_utility_tests=1, seed=7).replace(run_id=rid)
    with pytest.raises(UserError, match=r"cannot be resumed: gen 1"):
        StoreRecorder(store, seed_improver(), resume=True).start(config)
    argv = ["resume", rid, "--headless", "--generations", "2", "--workspace", str(store.path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be resumed" in err


async def test_a_consistent_forgery_passes_verify_but_not_replay(
    run: tuple[RunStore, str],
) -> None:
    """The forger also rewrites the record's hashes, the decision's and the trailers: the
    history is self-consistent (only signatures could tell), but the replay reproduces the
    source the model really wrote, which is not the committed one."""
    store, rid = run
    target = steps_by(store, rid)["g1"]
    rewrite(store, rid, target, files={"improver.py": FORGED.encode()}, rehash=True)
    assert verify_run(store, rid).ok
    report = await replay_checked(store, rid)
    assert not report.ok
    assert report.divergence is not None
    # The recorded adoption decision names the forged source: refused before it could run.
    assert report.divergence.startswith("gen 1: the recorded adoption decision (approved) ")
    assert report.divergence.endswith("refused")
    assert f"names source sha256 {sha256_hex(FORGED)[:16]}…" in report.divergence


async def test_a_consistently_forged_candidate_is_caught_by_replay(
    run: tuple[RunStore, str],
) -> None:
    store, rid = run
    c = steps_by(store, rid)
    target = c["c1.0"]
    rewrite(store, rid, target, files={"improver.py": FORGED.encode()}, rehash=True)
    report = await replay_checked(store, rid)
    assert not report.ok and report.divergence is not None
    assert report.divergence.startswith(
        "gen 1 candidate 0: the recorded candidate decision (rejected)"
    )
    assert f"names source sha256 {sha256_hex(FORGED)[:16]}…" in report.divergence


async def test_replay_compares_reproduced_sources_with_committed_ones(
    run: tuple[RunStore, str],
) -> None:
    """The forger swaps a candidate's code and rewrites its record's hash, but leaves its
    decision naming the source the model really proposed: every decision matches, and the
    replay still fails because the source it reproduces is not the committed one."""
    store, rid = run
    target = steps_by(store, rid)["c1.0"]
    honest = store.get_record(target).decision
    assert honest is not None
    rewrite(store, rid, target, files={"improver.py": FORGED.encode()}, rehash=True)
    recorded = load_recorded(store, rid)
    for key in [k for k in recorded.decisions if k[2] == sha256_hex(FORGED)]:
        recorded.decisions[(key[0], key[1], honest.source_sha256)] = [
            dataclasses.replace(d, source_sha256=honest.source_sha256)
            for d in recorded.decisions.pop(key)
        ]
    for position, d in list(recorded.decisions_at.items()):
        if d.source_sha256 == sha256_hex(FORGED):
            recorded.decisions_at[position] = dataclasses.replace(
                d, source_sha256=honest.source_sha256
            )
    report = await replay_checked(store, rid, recorded)
    assert not report.ok and report.divergence is not None
    assert report.divergence.startswith("gen 1 candidate 0: the replay reproduced source sha256 ")
    assert f"the committed source is {sha256_hex(FORGED)[:16]}…" in report.divergence


async def test_a_decision_for_a_source_with_the_same_64_bit_prefix_is_refused(
    run: tuple[RunStore, str],
) -> None:
    """No 64-bit prefix collision can be computed here, so one is constructed: the recorded
    decision for candidate 1/0 is made to name a digest sharing the first 16 hex digits of
    the source the replay proposes. Truncated identities would match; full ones do not, and
    the replay refuses the decision instead of applying it to another source."""
    store, rid = run
    recorded = load_recorded(store, rid)
    key = next(k for k in recorded.decisions if k[0] == 1 and k[1] == "candidate")
    real = key[2]
    collided = real[:16] + ("f" if real[16] != "f" else "e") + real[17:]
    assert collided[:16] == real[:16] and collided != real
    decisions = recorded.decisions.pop(key)
    decision = decisions[0]
    recorded.decisions[(1, "candidate", collided)] = [
        dataclasses.replace(d, source_sha256=collided) for d in decisions
    ]
    for position, d in list(recorded.decisions_at.items()):
        if d.source_sha256 == real:
            recorded.decisions_at[position] = dataclasses.replace(decision, source_sha256=collided)
    report = await replay_checked(store, rid, recorded)
    assert not report.ok and report.divergence is not None
    assert f"names source sha256 {collided[:16]}…, the replay proposed {real[:16]}…" in (
        report.divergence
    )
    assert report.divergence.endswith("refused")


async def test_a_run_recorded_before_hashes_replays_as_unverifiable(
    run: tuple[RunStore, str],
) -> None:
    store, rid = run
    make_legacy(store, rid)
    report = await replay_checked(store, rid)
    assert report.ok, report.divergence
    assert report.legacy  # decisions matched by position; sources still reproduced
    assert report.sources_matched > 0
