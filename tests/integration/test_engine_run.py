"""End-to-end runs with the demo model: real sandboxed children, a real git store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from stop_tui.engine.events import GenerationFinished, MetaUtilityEvaluated, RunFinished
from stop_tui.engine.replay import load_recorded, replay
from stop_tui.lm.demo import demo_improvers
from stop_tui.lm.replay import ReplayBackend
from stop_tui.sandbox.api import Sandbox
from tests.support.engine import memory_run, small_config, store_run

pytestmark = [pytest.mark.timeout(600)]

# The reference implementation's seed improver, in its spelling: it must run unchanged.
REFERENCE_STYLE = '''
from helpers import extract_code

def improve_algorithm(initial_solution, utility, language_model):
    """Improves a solution according to a utility function."""
    expertise = "You are an expert computer science researcher and programmer."
    message = f"""Improve the following solution:
```python
{initial_solution}
```

You will be evaluated based on this score function:
```python
{utility.str}
```

You must return an improved solution. First, propose an idea, then implement it."""
    n_messages = min(language_model.max_responses_per_call, utility.budget)
    new_solutions = language_model.batch_prompt(expertise, [message] * n_messages, temperature=0.7)
    new_solutions = extract_code(new_solutions)
    best_solution = max(new_solutions, key=utility)
    return best_solution
'''


def git(workspace: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(workspace), *args], capture_output=True, text=True, check=True
    ).stdout


async def test_three_generations_are_committed_and_replay_exactly(tmp_path: Path) -> None:
    config = small_config(generations=3, seed=7)
    workspace = tmp_path / "runs"
    async with Sandbox() as sandbox:
        run, store, backend = store_run(sandbox, config, workspace)
        status = await run.run()
        await backend.aclose()
        assert status == "finished", [e.to_dict() for e in run.bus.history if "error" in e.kind]
        finished = [e for e in run.bus.history if isinstance(e, GenerationFinished)]
        assert [e.generation for e in finished] == [1, 2, 3]
        assert isinstance(run.bus.history[-1], RunFinished)

        run_id = config.run_id
        steps = store.list_steps(run_id)
        kinds = [s.kind for s in steps]
        assert kinds.count("seed") == 2  # created, then scored (generation 0)
        assert sum(k in ("adopted", "kept") for k in kinds) == 3
        assert kinds.count("candidate") >= 3
        log = git(workspace, "log", "--format=%s", f"stop/{run_id}").splitlines()
        assert len(log) == 5 and log[-1].startswith("gen 0")
        scored_seed = [s for s in steps if s.kind == "seed" and s.meta_utility is not None]
        record = store.get_record(scored_seed[0].commit)
        assert len(record.tests) == config.meta_utility_tests
        assert all(0.0 <= t.val <= 1.0 for t in record.tests if t.val is not None)
        transcript = store.get_transcript(steps[-1].commit)
        assert transcript and all("context" in line for line in transcript)
        candidate = next(s for s in steps if s.kind == "candidate")
        shown = git(workspace, "show", f"{candidate.commit}:record.json")
        assert json.loads(shown)["kind"] == "candidate"
        assert "Stop-Kind: candidate" in git(
            workspace, "log", "-1", "--format=%B", candidate.commit
        )

        report = await replay(store, run_id, sandbox=sandbox)
        assert report.ok, report.divergence
        evaluated = [e for e in run.bus.history if isinstance(e, MetaUtilityEvaluated)]
        assert len(report.steps) == len(evaluated)

        recorded = load_recorded(store, run_id)
        tampered = [dict(line) for line in recorded.transcript]
        first_meta = next(i for i, line in enumerate(tampered) if "/meta" in line["context"])
        tampered[first_meta]["texts"] = [
            "Scripted demo answer.\n```python\ndef improve_algorithm(s, u, lm):\n    return s\n```"
        ] * len(tampered[first_meta]["texts"])
        bad = await replay(store, run_id, sandbox=sandbox, backend=ReplayBackend(tampered))
        assert not bad.ok and bad.divergence


async def test_reference_style_and_evolved_improvers_run_unchanged() -> None:
    config = small_config(meta_utility_tests=2, utility_budget=4, max_responses_per_call=4)
    async with Sandbox() as sandbox:
        run, _ = memory_run(sandbox, config)
        reference = await run.meta_utility(REFERENCE_STYLE, 1, 0, "g1/c0")
        assert all(t.error is None for t in reference.tests), [t.error for t in reference.tests]
        assert reference.meta_utility > 0.0
        evolved = next(e for e in demo_improvers() if e.name != "seed" and not e.hostile)
        result = await run.meta_utility(evolved.source, 1, 1, "g1/c1")
        assert all(t.error is None for t in result.tests), [t.error for t in result.tests]
        assert result.meta_utility > 0.0
