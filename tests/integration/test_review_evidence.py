"""Scores at every decision: the engine sends each approval request the evidence a
reviewer needs (the subject's and the parent's meta-utility with their uncertainty, the
difference, the siblings so far), and `stop-tui show` prints the same numbers."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from scipy import stats

from stop_tui.engine.approval import ApprovalRequest, Gate, Policy, Purpose
from stop_tui.engine.evidence import Difference, Evidence, Scores, Sibling, SplitScore
from stop_tui.store.records import sha256_hex
from tests.support.engine import CountingSandbox, memory_run, small_config, store_run

pytestmark = [pytest.mark.timeout(300)]


def test_split_score_uses_the_standard_error_and_a_t_interval() -> None:
    values = (0.2, 0.5, 0.8, 0.6)
    split = SplitScore(values)
    assert split.mean == pytest.approx(0.525)
    assert split.se == pytest.approx(float(stats.sem(values)))
    iv = split.interval
    assert iv.method == "t" and iv.low is not None and iv.high is not None
    assert iv.low < 0.525 < iv.high
    text = split.text()
    assert "0.525" in text and "SE" in text and "95% CI" in text and "tests 0.200–0.800" in text
    one = SplitScore((0.4,))
    assert one.se is None and "one test" in one.text() and "SE" not in one.text()
    assert SplitScore(()).text() == "not scored"


def test_the_difference_carries_both_errors_and_says_when_it_is_noise() -> None:
    a, b = SplitScore((0.5, 0.7)), SplitScore((0.4, 0.5))
    diff = Difference.between(a, b)
    assert diff is not None
    assert diff.delta == pytest.approx(0.15)
    assert diff.se == pytest.approx(math.sqrt(0.1**2 + 0.05**2))
    assert "within noise" in diff.text()  # 0.15 < 2 × 0.112
    clear = Difference.between(SplitScore((0.9, 0.91)), SplitScore((0.1, 0.11)))
    assert clear is not None and "noise" not in clear.text() and clear.text().startswith("+")
    assert Difference.between(SplitScore(()), b) is None


def test_evidence_round_trips_and_names_what_is_missing() -> None:
    evidence = Evidence(
        purpose="candidate",
        parent=Scores.of([0.5, None, 0.7], [0.4, 0.6, None]),
        siblings=(Sibling(0, 0.25), Sibling(1, None, "rejected")),
    )
    assert Evidence.from_json(evidence.to_json()) == evidence
    lines = evidence.lines()
    assert "siblings so far: c0 0.250, c1 rejected; best so far 0.250" in lines
    assert any(line.startswith("  validation 0.600") for line in lines)
    adoption = Evidence(purpose="adoption", subject_note="not one of the candidates scored")
    assert "  not scored before this decision" in adoption.lines()
    assert "  no scores recorded" in adoption.lines()


async def _requests(config_changes: dict[str, object]) -> tuple[list[ApprovalRequest], object]:
    seen: list[ApprovalRequest] = []

    def answer(request: ApprovalRequest) -> None:
        seen.append(request)
        asyncio.get_running_loop().call_soon(request.approve)

    config = small_config(approval="every-candidate", **config_changes)
    async with CountingSandbox() as sandbox:
        run, recorder = memory_run(sandbox, config, gate=Gate(Policy.EVERY_CANDIDATE, answer))
        assert await run.run() == "finished"
    return seen, recorder


async def test_every_request_carries_the_scores_the_engine_measured() -> None:
    seen, recorder = await _requests({"meta_utility_budget": 3, "meta_utility_tests": 3})
    steps = recorder.steps  # type: ignore[attr-defined]
    seed = next(s for s in steps if s.kind == "seed").step
    seed_vals = tuple(t.val for t in seed.tests)
    candidates = [r for r in seen if r.purpose is Purpose.CANDIDATE]
    assert candidates, "the demo improver proposes candidates"
    scored = {s.index: s.step for s in steps if s.kind == "candidate"}
    for n, request in enumerate(candidates):
        evidence = request.evidence
        assert evidence is not None and evidence.purpose == "candidate"
        assert evidence.parent is not None and evidence.parent.val.values == seed_vals
        # Siblings: exactly the candidates of this generation decided before it.
        before = [c.index for c in candidates[:n]]
        assert [s.index for s in evidence.siblings] == before
        for sibling in evidence.siblings:
            assert sibling.meta_utility == pytest.approx(scored[sibling.index].meta_utility)
    adoption = [r for r in seen if r.purpose is Purpose.ADOPTION]
    assert len(adoption) == 1
    evidence = adoption[0].evidence
    assert evidence is not None and evidence.parent is not None
    assert evidence.parent.val.values == seed_vals
    same = [s for s in steps if s.kind == "candidate" and s.source == adoption[0].source]
    if same:  # the returned improver is one of the candidates: its scores are shown
        assert evidence.subject is not None
        assert evidence.subject.val.values == tuple(t.val for t in same[-1].step.tests)
        assert "candidate" in evidence.subject_note
        val_diff, _ = evidence.differences()
        assert val_diff is not None
        assert val_diff.delta == pytest.approx(
            math.fsum(evidence.subject.val.values) / len(evidence.subject.val.values)
            - math.fsum(seed_vals) / len(seed_vals)
        )
    else:  # never ran: says so rather than inventing a score
        assert evidence.subject is None and "runs only if you adopt it" in evidence.subject_note


async def test_a_resumed_run_finds_its_parents_scores_in_the_store(tmp_path: Path) -> None:
    """The parent was scored by an earlier process: the evidence comes from its commit."""
    config = small_config(approval="every-candidate", generations=1)
    seen: list[ApprovalRequest] = []

    def answer(request: ApprovalRequest) -> None:
        seen.append(request)
        asyncio.get_running_loop().call_soon(request.approve)

    async with CountingSandbox() as sandbox:
        run, store, _ = store_run(sandbox, config, tmp_path, gate=Gate(Policy.AUTO))
        assert await run.run() == "finished"
        more = small_config(approval="every-candidate", generations=2)
        run2, _, _ = store_run(sandbox, more, tmp_path, gate=Gate(Policy.EVERY_CANDIDATE, answer))
        assert await run2.run() == "finished"
    first = next(r for r in seen if r.generation == 2)
    assert first.evidence is not None and first.evidence.parent is not None
    digest = sha256_hex(first.parent_source)
    steps = store.list_steps(config.run_id)
    scored = [
        record
        for record in (store.get_record(s.commit) for s in steps)
        if record.kind in ("seed", "adopted") and record.source_sha256 == digest and record.tests
    ]
    assert scored, "the parent's scores are in the store"
    assert first.evidence.parent.val.values == tuple(t.val for t in scored[-1].tests)


async def test_the_request_forecasts_the_most_an_approved_improver_can_spend() -> None:
    seen, _ = await _requests({"meta_utility_tests": 2, "lm_budget": 3, "max_calls": 500})
    request = seen[0]
    assert request.allowances["at most, if approved"] == (
        "6 LM calls, 18 samples, 6 utility calls"  # 2 tests × 3 calls × 3 responses; 2 × 3
    )
    left = request.allowances["run caps left"]
    assert left.endswith(" calls") and 0 < int(left.split()[0]) < 500  # the seed spent some


async def test_show_prints_the_numbers_the_modal_shows(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from stop_tui.engine.evidence import scores_of_record

    config = small_config(approval="auto", meta_utility_tests=3)
    async with CountingSandbox() as sandbox:
        run, store, _ = store_run(sandbox, config, tmp_path, gate=Gate(Policy.AUTO))
        assert await run.run() == "finished"
    seed = next(
        s
        for s in store.list_steps(config.run_id)
        if s.kind == "seed" and s.meta_utility is not None
    )
    scores = scores_of_record(store.get_record(seed.commit))
    assert scores.scored
    expected = scores.lines()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOP_TUI_", "OPENAI_"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "stop_tui",
            "show",
            config.run_id,
            "0",
            "--workspace",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert shown.returncode == 0, shown.stderr
    for line in expected:
        assert line in shown.stdout, (line, shown.stdout)
    assert "SE" in shown.stdout and "95% CI" in shown.stdout
