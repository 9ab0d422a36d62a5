"""Helpers for the TUI tests: settings for a temp workspace, saved runs made
quickly with the real headless engine, and a pilot wait loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stop_tui.config import Settings, load_settings
from stop_tui.engine.approval import ApprovalRequest, Policy, Purpose
from stop_tui.engine.behaviour import Behaviour
from stop_tui.engine.evidence import Evidence, Scores
from stop_tui.engine.session import prepare_run, seed_improver
from tests.support.engine import SMALL as ENGINE_SMALL

SMALL: dict[str, Any] = {**ENGINE_SMALL, "model": "demo", "demo_failure_rate": 0.0, "seed": 1}


def settings_for(workspace: Path, **changes: Any) -> Settings:
    return load_settings(
        {**SMALL, "workspace": workspace, **changes}, environ={}, cwd=workspace.parent
    )


def make_saved_run(workspace: Path, run_id: str, **changes: Any) -> str:
    """A finished run in ``workspace`` (auto approval, serial: the same result every time)."""

    async def main() -> str:
        prepared = prepare_run(
            settings_for(workspace, **changes),
            default_policy=Policy.AUTO,
            run_id=run_id,
            serial=True,
        )
        try:
            status = await prepared.run.run()
        finally:
            await prepared.close()
        assert status == "finished"
        return run_id

    return asyncio.run(main())


async def wait_for(
    pilot: Any, condition: Callable[[], object], what: str, limit: float = 60.0
) -> None:
    """Let the app (``pilot``; None: the event loop) run until ``condition()`` holds
    (fails after ``limit`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await (asyncio.sleep(0.01) if pilot is None else pilot.pause(0.05))


SAVED = "20260101-000000-aaaa"
_shared: dict[str, Path] = {}


def shared_saved_run(base: Path) -> Path:
    """One finished two-generation run per test process (read-only for the tests)."""
    if "workspace" not in _shared:
        workspace = base / "ws"
        make_saved_run(workspace, SAVED, generations=2)
        _shared["workspace"] = workspace
    return _shared["workspace"]


def approval_request() -> ApprovalRequest:
    """A candidate asking to run, as the approval modal gets it (no engine behind it)."""
    parent = seed_improver()
    source = parent.replace("temperature=0.7", "temperature=1.0") + (
        "\n\nimport os  # a candidate that reaches for the operating system\n"
    )
    return ApprovalRequest(
        run_id=SAVED,
        generation=1,
        index=2,
        purpose=Purpose.CANDIDATE,
        source=source,
        parent_source=parent,
        flags=("escape/import: imports os (line 41)",),
        allowances={
            "meta-utility tests": 2,
            "language-model calls per run": 2,
            "utility calls per run": 3,
            "network": "none",
            "files": "a private scratch directory only",
        },
        request_id="req-snapshot",
    )


def adoption_request() -> ApprovalRequest:
    """The improver a generation returned, asking to be adopted, with the engine's scores."""
    parent = seed_improver()
    source = parent.replace("temperature=0.7", "temperature=0.9")
    return ApprovalRequest(
        run_id=SAVED,
        generation=2,
        index=None,
        purpose=Purpose.ADOPTION,
        source=source,
        parent_source=parent,
        flags=(),
        allowances={"meta-utility tests": 3, "language-model calls per run": 2, "network": "none"},
        evidence=Evidence(
            purpose="adoption",
            subject=Scores.of([0.62, 0.7, 0.58], [0.6, 0.66, 0.55]),
            subject_note="scored as candidate 1 of generation 2",
            parent=Scores.of([0.4, 0.45, 0.41], [0.38, 0.4, 0.44]),
            behaviour=Behaviour(
                tests=3,
                lm_requests=6,
                lm_samples=18,
                prompt_tokens=5400,
                completion_tokens=2100,
                lm_budget=2,
                utility_calls=9,
                utility_budget=3,
                wall_seconds=4.2,
                cpu_seconds=1.5,
                budget_refusals=3,
                prompts=["You are an expert. | How does the evaluator score this?"],
                suspect_prompts=["evaluator"],
            ),
            parent_behaviour=Behaviour(
                tests=3,
                lm_requests=3,
                lm_samples=9,
                prompt_tokens=2700,
                completion_tokens=1000,
                lm_budget=2,
                utility_calls=9,
                utility_budget=3,
                wall_seconds=3.9,
                cpu_seconds=1.2,
            ),
            alarms=(
                "was refused past its budget 3 times",
                "its prompts mention evaluator",
            ),
        ),
        request_id="req-adoption",
    )
