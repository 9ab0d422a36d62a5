"""Run one improver in the sandbox, answering its utility and LM calls.

The improver runs in an isolated child (the sandbox's ``improver`` job). Its
``utility`` and ``language_model`` are proxies: every call is an rpc that
arrives here, in the parent, where the budgets are counted and enforced and
where solutions are scored in fresh children of their own. Whatever the
improver returns is only a string to us; the caller re-scores it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from stop_tui.engine.audit import Flag
from stop_tui.lm.budget import LanguageModel
from stop_tui.lm.types import BudgetExceeded, FatalLMError, LMError
from stop_tui.sandbox.api import Limits, RpcFailure, Sandbox

UtilityFn = Callable[[Any, bool], Awaitable[float]]


class RunAborted(Exception):
    """The whole run must stop (fatal LM error, a run-wide cap reached)."""


@dataclass
class ImproverOutcome:
    result: str | None
    error: str | None
    stdout: str = ""
    stderr: str = ""
    limit: str | None = None
    flags: list[Flag] = field(default_factory=list)
    utility_calls: int = 0
    lm_calls: int = 0
    seconds: float = 0.0


@dataclass
class ImproverCall:
    """What one improver run may do, and the parent-side objects it talks to."""

    source: str
    initial_solution: str
    utility_text: str
    utility_budget: int
    utility: UtilityFn
    language_model: LanguageModel
    limits: Limits
    rng_seed: int = 0
    on_abort: Callable[[BaseException], None] | None = None


async def run_improver(sandbox: Sandbox, call: ImproverCall) -> ImproverOutcome:
    flags: list[Flag] = []
    seen: set[tuple[str, str]] = set()
    uses = 0
    lm = call.language_model

    def flag(category: str, code: str, message: str) -> None:
        if (category, code) not in seen:
            seen.add((category, code))
            flags.append(Flag(category, code, message))

    async def handler(method: str, params: dict[str, Any]) -> Any:
        nonlocal uses
        if method == "utility":
            use_sandbox = params.get("use_sandbox", True)
            if use_sandbox is not True:
                flag(
                    "sandbox",
                    "use-sandbox",
                    "called the utility with use_sandbox switched off (it stayed isolated)",
                )
            if uses >= call.utility_budget:
                flag("budget", "over-utility", "called the utility past its budget")
                raise RpcFailure(
                    "BudgetExceeded",
                    f"the utility budget of {call.utility_budget} calls is used up",
                )
            uses += 1
            return await call.utility(params.get("solution"), bool(use_sandbox))
        if method in ("lm.prompt", "lm.batch_prompt"):
            try:
                if method == "lm.prompt":
                    return await lm.prompt(
                        params.get("expertise"),  # type: ignore[arg-type]
                        params.get("message"),  # type: ignore[arg-type]
                        params.get("n_responses", 1),
                        params.get("temperature", 0.7),
                    )
                return await lm.batch_prompt(
                    params.get("expertise"),  # type: ignore[arg-type]
                    params.get("messages"),  # type: ignore[arg-type]
                    params.get("temperature", 0.7),
                )
            except BudgetExceeded as exc:
                if exc.scope == "run":
                    _abort(call, exc)
                flag("budget", "over-lm", f"called the language model past its budget ({exc.kind})")
                raise RpcFailure("BudgetExceeded", str(exc)) from exc
            except FatalLMError as exc:
                _abort(call, exc)
                raise RpcFailure("LanguageModelError", str(exc)) from exc
            except LMError as exc:
                raise RpcFailure("LanguageModelError", str(exc)) from exc
            except (TypeError, ValueError) as exc:
                raise RpcFailure("TypeError", str(exc)) from exc
        raise RpcFailure("RpcError", f"unknown call {method!r}")

    started = time.perf_counter()
    payload = {
        "source": call.source,
        "initial_solution": call.initial_solution,
        "utility": {"str": call.utility_text, "budget": call.utility_budget},
        "language_model": {
            "budget": lm.budget,
            "max_responses_per_call": lm.max_responses_per_call,
        },
        "rng_seed": call.rng_seed,
    }
    child = await sandbox.spawn("improver", payload, call.limits)
    async with child:
        reply = await child.serve(handler, timeout=call.limits.wall_time)
    info = child.exit_info
    outcome = ImproverOutcome(
        result=None,
        error=None,
        stdout=info.stdout if info else "",
        stderr=info.stderr if info else "",
        limit=info.limit if info else None,
        flags=flags,
        utility_calls=uses,
        lm_calls=lm.calls_used,
        seconds=time.perf_counter() - started,
    )
    message = reply.message
    if message is None:
        what = info.summary if info else "ended without an answer"
        outcome.error = f"the improver {what}"
        if info is not None and info.limit:
            flag(
                "runtime", f"limit-{info.limit}", f"was stopped by the sandbox ({info.limit} limit)"
            )
    elif "result" in message and isinstance(message["result"], str):
        outcome.result = message["result"]
    else:
        outcome.error = str(message.get("error", "the improver returned no string"))[:500]
    if info is not None and info.error:
        flag("runtime", "sandbox", info.error[:200])
    return outcome


def _abort(call: ImproverCall, exc: BaseException) -> None:
    if call.on_abort is not None:
        call.on_abort(exc)
