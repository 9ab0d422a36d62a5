"""A harmless attack on the language-model proxy (``stop-tui doctor --attacks``).

An improver in a real sandboxed child sends a prompt one character over the
per-request limit. It must get a ``BudgetExceeded`` (the parent's
``PromptTooLarge``) inside itself, the call must be flagged, and nothing may
reach the model: the backend here is the offline demo backend, counted.
"""

from __future__ import annotations

from stop_tui.engine.runner import ImproverCall, run_improver
from stop_tui.lm.budget import DEFAULT_MAX_PROMPT_CHARS, LanguageModel
from stop_tui.lm.demo import DemoBackend
from stop_tui.lm.types import ChatRequest, ChatResult
from stop_tui.sandbox.api import Limits, Sandbox
from stop_tui.sandbox.selftest import AttackResult

OVERSIZED = f"""
def improve_algorithm(initial_solution, utility, language_model):
    try:
        language_model.prompt("expert", "x" * {DEFAULT_MAX_PROMPT_CHARS + 1})
    except BudgetExceeded as exc:
        return "refused inside: " + str(exc)[:80]
    return "sent"
"""


class _Counting(DemoBackend):
    """The demo backend, counting the requests that reach it."""

    requests = 0

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.requests += 1
        return await super().complete(request)


async def oversized_prompt_attack(sandbox: Sandbox) -> AttackResult:
    backend = _Counting(failure_rate=0.0)
    lm = LanguageModel(backend, model="demo", budget=2, max_prompt_chars=DEFAULT_MAX_PROMPT_CHARS)

    async def utility(solution: object, use_sandbox: bool) -> float:
        return 0.0

    call = ImproverCall(
        source=OVERSIZED,
        initial_solution="",
        utility_text="",
        utility_budget=0,
        utility=utility,
        language_model=lm,
        limits=Limits(wall_time=60, cpu_time=30),
    )
    try:
        outcome = await run_improver(sandbox, call)
    finally:
        await backend.aclose()
    result = outcome.result or outcome.error or ""
    flagged = any(flag.code == "prompt-size" for flag in outcome.flags)
    blocked = result.startswith("refused inside") and flagged and backend.requests == 0
    detail = f"{result[:60]}; {backend.requests} request(s) reached the model"
    return AttackResult("send an over-large prompt through the LM proxy", blocked, detail)
