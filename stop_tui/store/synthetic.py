"""Synthetic runs for tests, benchmarks and front-end development.

``build_run`` drives the real writer API exactly as the engine would (seed,
candidates per generation, an adopted commit per generation, state), with
made-up but deterministic scores. Nothing here calls a language model.
"""

from __future__ import annotations

import random

from stop_tui.store.records import Decision, MetaTestScore, RunConfig, RunState, StepRecord
from stop_tui.store.store import RunStore, RunWriter

SEED_SOURCE = '''from helpers import extract_code


def improve_algorithm(initial_solution, utility, language_model):
    """Improves a solution according to a utility function."""
    expertise = "You are an expert computer science researcher and programmer."
    message = f"Improve the following solution:\\n{initial_solution}"
    new_solutions = language_model.batch_prompt(expertise, [message] * language_model.budget)
    new_solutions = extract_code(new_solutions)
    return max(new_solutions, key=utility)
'''


def improver_source(generation: int, candidate: int) -> str:
    lines = SEED_SOURCE.splitlines()
    extra = [
        f"    # generation {generation}, candidate {candidate}: try {generation + candidate} rounds"
    ]
    return "\n".join(lines[:-1] + extra + lines[-1:]) + "\n"


def step_record(
    rng: random.Random, generation: int, kind: str, candidate: int | None, n_tests: int = 3
) -> StepRecord:
    tests = [
        MetaTestScore(index=i, val=round(rng.random(), 4), test=round(rng.random(), 4))
        for i in range(n_tests)
    ]
    val = [t.val for t in tests if t.val is not None]
    tst = [t.test for t in tests if t.test is not None]
    return StepRecord(
        generation=generation,
        kind=kind,
        candidate=candidate,
        summary=f"variant {generation}.{candidate}"
        if kind == "candidate"
        else f"generation {generation}",
        meta_utility=round(sum(val) / len(val), 4),
        test_utility=round(sum(tst) / len(tst), 4),
        tests=tests,
        budget={"calls": 4, "prompt_tokens": 1200, "completion_tokens": 800, "cost": 0.01},
        flags=["uses-temperature"] if candidate == 1 else [],
    )


def build_run(
    store: RunStore,
    *,
    generations: int = 3,
    candidates: int = 2,
    run_id: str | None = None,
    seed: int = 0,
    task: str = "parity_noise",
    model: str = "demo",
    status: str = "finished",
    writer: RunWriter | None = None,
) -> str:
    """Write a complete synthetic run (or continue ``writer``'s run); return its id."""
    rng = random.Random(seed)
    own = writer is None
    if writer is None:
        writer = store.create_run(
            RunConfig(task=task, model=model, settings={"iterations": generations}),
            SEED_SOURCE,
            record=step_record(rng, 0, "seed", None),
            run_id=run_id,
        )
    try:
        start = writer.generation + 1
        for gen in range(start, start + generations):
            made = []
            for n in range(candidates):
                rec = step_record(rng, gen, "candidate", n)
                made.append(
                    (
                        writer.commit_step(
                            rec,
                            improver_source(gen, n),
                            solutions={
                                f"test-{i}.py": f"def algorithm():\n    return {i}\n"
                                for i in range(2)
                            },
                            transcript=[{"role": "user", "content": f"improve gen {gen}"}],
                        ),
                        rec,
                    )
                )
            pick = max(range(candidates), key=lambda i: made[i][1].meta_utility or 0.0)
            commit, rec = made[pick]
            rec.kind = "adopted"
            rec.adopted_from = commit
            rec.decision = Decision("approved", "alice", "2026-11-26T08:00:00Z", "better")
            writer.commit_step(
                rec,
                improver_source(gen, pick),
                state=RunState(status="running", generation=gen, budget={"cost": 0.01 * gen}),
            )
        writer.save_state(
            RunState(status=status, generation=writer.generation, budget={"cost": 0.5})
        )
        return writer.run_id
    finally:
        if own:
            writer.close()
