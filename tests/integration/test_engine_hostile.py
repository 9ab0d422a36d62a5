"""Hostile improvers: each is contained, scored fairly and flagged as expected.

Each runs as a candidate inside a real meta-utility evaluation (real sandboxed
children, the demo backend for the LM calls they make).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from stop_tui.engine.audit import audit_source
from stop_tui.engine.runner import ImproverCall, run_improver
from stop_tui.lm.budget import LanguageModel
from stop_tui.lm.demo import DemoBackend
from stop_tui.sandbox.api import Sandbox
from stop_tui.sandbox.limits import Limits
from tests.support.engine import memory_run, small_config

pytestmark = pytest.mark.timeout(180)

LOOPS = """
def improve_algorithm(initial_solution, utility, language_model):
    while True:
        pass
"""

OVER_UTILITY_BUDGET = """
def improve_algorithm(initial_solution, utility, language_model):
    best = initial_solution
    for _ in range(1000):
        utility(initial_solution)
    return best
"""

OWN_LANGUAGE_MODEL = """
from language_model import LanguageModel

def improve_algorithm(initial_solution, utility, language_model):
    mine = LanguageModel(budget=1000)
    return initial_solution
"""

RAISES_BUDGET = """
def improve_algorithm(initial_solution, utility, language_model):
    language_model.budget = 1000
    answers = []
    for _ in range(10):
        answers += language_model.prompt("expert", "improve " + initial_solution)
    return initial_solution
"""

SANDBOX_OFF = """
def improve_algorithm(initial_solution, utility, language_model):
    utility(initial_solution, use_sandbox=False)
    return initial_solution
"""

READS_HIDDEN = """
import glob

def improve_algorithm(initial_solution, utility, language_model):
    found = []
    for pattern in ["/work/**/evaluator.py", "/**/tasks/*/evaluator.py", "/root/**/evaluator.py"]:
        try:
            found += glob.glob(pattern, recursive=True)
        except Exception:
            pass
    for path in found:
        try:
            with open(path) as f:
                print("LEAKED", f.read()[:50])
        except Exception as exc:
            print("blocked", type(exc).__name__)
    print("FOUND", len(found))
    return initial_solution
"""

GARBAGE = """
def improve_algorithm(initial_solution, utility, language_model):
    return [1, 2, 3]
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox() as box:
        yield box


def lm(budget: int = 2) -> LanguageModel:
    return LanguageModel(DemoBackend(seed=1), model="demo", budget=budget, max_responses_per_call=3)


async def call(
    sandbox: Sandbox, source: str, *, budget: int = 3, wall: float = 20.0, cpu: float = 3.0
):  # type: ignore[no-untyped-def]
    used: list[object] = []

    async def utility(solution: object, use_sandbox: bool) -> float:
        used.append(solution)
        return 0.5

    outcome = await run_improver(
        sandbox,
        ImproverCall(
            source=source,
            initial_solution="def algorithm(a, b, c):\n    return [0] * 20\n",
            utility_text="utility text",
            utility_budget=budget,
            utility=utility,
            language_model=lm(),
            limits=Limits(wall_time=wall, cpu_time=cpu),
        ),
    )
    return outcome, used


@pytest.mark.asyncio(loop_scope="module")
async def test_an_endless_loop_is_stopped_by_a_limit(sandbox: Sandbox) -> None:
    outcome, _ = await call(sandbox, LOOPS, cpu=1.0)
    assert outcome.result is None
    assert outcome.limit in ("cpu", "wall", "timeout")
    assert any(f.code.startswith("limit-") for f in outcome.flags)


@pytest.mark.asyncio(loop_scope="module")
async def test_utility_calls_past_the_budget_are_refused_and_flagged(sandbox: Sandbox) -> None:
    outcome, used = await call(sandbox, OVER_UTILITY_BUDGET, budget=3)
    assert len(used) == 3  # the parent counted: no fourth evaluation happened
    assert outcome.result is None and "BudgetExceeded" in (outcome.error or "")
    assert any(f.code == "over-utility" for f in outcome.flags)


@pytest.mark.asyncio(loop_scope="module")
async def test_building_a_language_model_is_flagged_and_gets_nothing(sandbox: Sandbox) -> None:
    flags = audit_source(OWN_LANGUAGE_MODEL)
    assert any(f.category == "budget" and f.code == "new-lm" for f in flags)
    outcome, _ = await call(sandbox, OWN_LANGUAGE_MODEL)
    assert outcome.result is None  # there is no language_model module to import in the child
    assert "language_model" in (outcome.error or "")


@pytest.mark.asyncio(loop_scope="module")
async def test_raising_the_budget_in_the_child_changes_nothing(sandbox: Sandbox) -> None:
    assert any(f.code == "touch" for f in audit_source(RAISES_BUDGET))
    model = lm(budget=2)
    outcome = await run_improver(
        sandbox,
        ImproverCall(
            source=RAISES_BUDGET,
            initial_solution="x = 1\n",
            utility_text="u",
            utility_budget=3,
            utility=_zero,
            language_model=model,
            limits=Limits(wall_time=20, cpu_time=5),
        ),
    )
    assert model.calls_used == 2  # the parent's budget, not the child's attribute
    assert outcome.result is None and "BudgetExceeded" in (outcome.error or "")
    assert any(f.code == "over-lm" for f in outcome.flags)


async def _zero(solution: object, use_sandbox: bool) -> float:
    return 0.0


@pytest.mark.asyncio(loop_scope="module")
async def test_use_sandbox_false_is_flagged_and_still_isolated(sandbox: Sandbox) -> None:
    assert any(f.code == "use-sandbox" for f in audit_source(SANDBOX_OFF))
    outcome, used = await call(sandbox, SANDBOX_OFF)
    assert outcome.result is not None and len(used) == 1
    assert any(f.category == "sandbox" and f.code == "use-sandbox" for f in outcome.flags)


@pytest.mark.asyncio(loop_scope="module")
async def test_the_hidden_evaluators_are_out_of_reach(sandbox: Sandbox) -> None:
    outcome, _ = await call(sandbox, READS_HIDDEN, wall=30, cpu=10)
    assert outcome.result is not None, outcome.error
    assert "LEAKED" not in outcome.stdout
    assert "FOUND 0" in outcome.stdout  # the files are not even visible in the child


@pytest.mark.asyncio(loop_scope="module")
async def test_a_garbage_return_scores_zero_in_a_meta_utility(sandbox: Sandbox) -> None:
    run, _ = memory_run(sandbox, small_config())
    result = await run.meta_utility(GARBAGE, 1, 0, "g1/c0")
    assert result.meta_utility == 0.0
    assert all(t.solution is None and "not a string" in (t.error or "") for t in result.tests)
