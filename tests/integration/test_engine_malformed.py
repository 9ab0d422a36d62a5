"""Malformed output and over-large requests inside a real run (real sandboxed
children, the demo model): each is contained and flagged where it happened, and
the run goes on; only an exhausted run-wide cap would end it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from stop_tui.config import load_settings
from stop_tui.engine.config import RunConfig
from stop_tui.engine.runner import MAX_SOURCE_CHARS, ImproverCall, run_improver
from stop_tui.engine.session import prepare_resume
from stop_tui.lm.budget import DEFAULT_MAX_PROMPT_CHARS, LanguageModel, RunBudget
from stop_tui.lm.demo import DemoBackend
from stop_tui.lm.types import ChatRequest, ChatResult
from stop_tui.sandbox.api import Limits, Sandbox
from tests.support.engine import memory_run, small_config, store_run

pytestmark = pytest.mark.timeout(600)

# A solution that forges its reply: an array of an impossible shape (the codec's
# encoder is swapped for one that writes whatever the solution likes).
FORGER = """
import sys

def algorithm(train_samples, train_parity, test_samples):
    codec = sys.modules["stop_tui.sandbox.codec"]
    codec.encode = lambda value: {
        "__ndarray__": "", "dtype": "<f8", "shape": [2**40, 2**40, 0], "encoding": "base64"
    }
    return [0] * 20
"""

RETURNS_FORGER = f"""
def improve_algorithm(initial_solution, utility, language_model):
    '''Returns a solution whose every output is malformed on the wire.'''
    return {FORGER!r}
"""

OVERSIZED_PROMPTS = """
def improve_algorithm(initial_solution, utility, language_model):
    '''Sends a prompt over the per-request limit, then one too large for the run cap.'''
    caught = []
    for size in (5_000_000, 60_000):
        try:
            language_model.prompt("expert", "x" * size)
        except BudgetExceeded as exc:
            caught.append(str(exc))
    print("CAUGHT", len(caught))
    return initial_solution
"""

HUGE_SOLUTION = f"""
def improve_algorithm(initial_solution, utility, language_model):
    '''Hands the utility a solution over the size limit.'''
    try:
        utility(initial_solution + "#" * {MAX_SOURCE_CHARS + 1})
    except UtilityError as exc:
        print("REFUSED", exc)
    return initial_solution
"""

HUGE_RESULT = f"""
def improve_algorithm(initial_solution, utility, language_model):
    '''Returns a string over the source limit.'''
    return initial_solution + "#" * {MAX_SOURCE_CHARS + 1}
"""

CANDIDATES = [RETURNS_FORGER, OVERSIZED_PROMPTS, HUGE_SOLUTION, HUGE_RESULT]

META = f"""
def improve_algorithm(initial_solution, utility, language_model):
    '''Proposes each hostile candidate once, keeps itself.'''
    for candidate in {CANDIDATES!r}:
        try:
            utility(candidate)
        except Exception:
            pass
    return initial_solution
"""


class CountingDemo(DemoBackend):
    """The demo model, remembering the size of every prompt it was sent."""

    def __init__(self) -> None:
        super().__init__(seed=0, failure_rate=0.0)
        self.prompt_chars: list[int] = []

    async def complete_as(self, request: ChatRequest, occurrence: int) -> ChatResult:
        self.prompt_chars.append(len(request.system) + len(request.user))
        return await super().complete_as(request, occurrence)

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.prompt_chars.append(len(request.system) + len(request.user))
        return await super().complete(request)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox() as box:
        yield box


@pytest.mark.asyncio(loop_scope="module")
async def test_hostile_candidates_are_flagged_and_the_run_finishes(sandbox: Sandbox) -> None:
    backend = CountingDemo()
    config = small_config(meta_utility_budget=len(CANDIDATES), max_tokens_total=12_000)
    run, recorder = memory_run(sandbox, config, backend=backend, seed=META)
    status = await run.run()
    assert status == "finished", recorder.message
    candidates = {s.index: s for s in recorder.steps if s.kind == "candidate"}
    assert sorted(candidates) == list(range(len(CANDIDATES)))

    def codes(index: int) -> set[str]:
        return {f.code for f in candidates[index].step.flags}

    forger = candidates[0].step
    assert "malformed" in codes(0) and forger.meta_utility == 0.0
    assert all(t.solution is not None and t.val == 0.0 for t in forger.tests)
    assert {"prompt-size", "over-run-cap"} <= codes(1)
    assert all("CAUGHT 2" in t.stdout for t in candidates[1].step.tests)
    assert "solution-size" in codes(2)
    assert all("REFUSED" in t.stdout for t in candidates[2].step.tests)
    assert "result-size" in codes(3)
    assert all(t.solution is None for t in candidates[3].step.tests)
    # Nothing over-large ever reached the model; the run's cap was never used up.
    assert all(size <= config.max_prompt_chars for size in backend.prompt_chars)  # type: ignore[operator]
    assert run.run_budget.exhausted is None


@pytest.mark.parametrize(
    "body",
    ['return "#" * 20_000_000', 'utility("#" * 50_000_000)\n    return initial_solution'],
    ids=["20 MB result", "50 MB solution"],
)
@pytest.mark.asyncio(loop_scope="module")
async def test_strings_past_the_message_limit_are_a_flagged_failure(
    sandbox: Sandbox, body: str
) -> None:
    source = f"""
def improve_algorithm(initial_solution, utility, language_model):
    {body}
"""
    outcome = await run_improver(
        sandbox,
        ImproverCall(
            source=source,
            initial_solution="x = 1\n",
            utility_text="u",
            utility_budget=1,
            utility=_zero,
            language_model=LanguageModel(DemoBackend(seed=0), model="demo", budget=1),
            limits=Limits(wall_time=30, cpu_time=10),
        ),
    )
    assert outcome.result is None and outcome.limit == "message"
    assert "limit-message" in {f.code for f in outcome.flags}


@pytest.mark.asyncio(loop_scope="module")
async def test_forged_rpcs_are_refused_inside_the_improver(sandbox: Sandbox) -> None:
    source = """
def improve_algorithm(initial_solution, utility, language_model):
    rpc = utility._rpc
    seen = []
    for method, params in [
        ("lm.prompt", {"expertise": "e", "message": 7}),
        ("lm.prompt", {"expertise": "e", "message": "m", "n_responses": "6"}),
        ("lm.prompt", {"expertise": "e", "message": "m", "temperature": float("nan")}),
        ("lm.batch_prompt", {"expertise": "e", "messages": ["m"] * 10_000}),
        ("utility", {"solution": 12}),
        ("utility", {"solution": "s", "extra": [1]}),
        ("shell", {}),
    ]:
        try:
            seen.append(repr(rpc.call(method, params)))
        except Exception as exc:
            seen.append(type(exc).__name__)
    print("SEEN", seen)
    return initial_solution
"""
    model = LanguageModel(DemoBackend(seed=0), model="demo", budget=2, run_budget=RunBudget())
    outcome = await run_improver(
        sandbox,
        ImproverCall(
            source=source,
            initial_solution="x = 1\n",
            utility_text="u",
            utility_budget=3,
            utility=_zero,
            language_model=model,
            limits=Limits(wall_time=30, cpu_time=10),
        ),
    )
    assert outcome.result == "x = 1\n", outcome.error
    expected = ["RpcError"] * 3 + ["BudgetExceeded", "0.0", "RpcError", "RpcError"]
    assert f"SEEN {expected!r}" in outcome.stdout
    assert {"malformed-rpc", "over-lm", "not-a-string"} <= {f.code for f in outcome.flags}
    assert model.calls_used == 0


async def _zero(solution: object, use_sandbox: bool) -> float:
    return 0.0


@pytest.mark.asyncio(loop_scope="module")
async def test_a_run_its_cap_ended_continues_once_the_cap_is_raised(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = small_config(max_calls=1)
    workspace = tmp_path / "runs"
    run, _, backend = store_run(sandbox, config, workspace)
    assert await run.run() == "failed"  # the one request allowed is used up
    await backend.aclose()
    assert run.run_budget.exhausted is not None and run.run_budget.exhausted.kind == "calls"
    settings = load_settings({"model": "demo", "workspace": workspace}, environ={}, cwd=tmp_path)
    same = prepare_resume(settings, config.run_id)
    assert same.run.config.max_calls == 1  # the saved cap holds unless raised
    await same.close()
    prepared = prepare_resume(settings, config.run_id, caps={"max_calls": None})
    try:
        assert prepared.run.config.max_calls is None
        assert await prepared.run.run() == "finished"
    finally:
        await prepared.close()


def test_a_run_saved_before_the_prompt_limit_replays_without_one() -> None:
    saved = small_config().to_dict()
    assert RunConfig.from_dict(saved).max_prompt_chars == DEFAULT_MAX_PROMPT_CHARS
    del saved["max_prompt_chars"]
    assert RunConfig.from_dict(saved).max_prompt_chars is None
