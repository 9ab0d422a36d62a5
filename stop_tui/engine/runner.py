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
from stop_tui.lm.types import BudgetExceeded, FatalLMError, InvalidLMRequest, LMError
from stop_tui.sandbox.api import Sandbox
from stop_tui.sandbox.limits import ExitInfo, Limits, Reply, RpcFailure
from stop_tui.tasks.evaluate import text_of

UtilityFn = Callable[[Any, bool], Awaitable[float]]

#: The largest source an improver may hand to its utility or return (characters).
#: A paper improver or solution is a few hundred lines (~10-20 kB); this leaves
#: room for ~5,000 lines while keeping giant strings out of evaluation children,
#: the approval screen and git.
MAX_SOURCE_CHARS = 256 * 1024


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
    cpu_seconds: float | None = None  # the child's CPU time, as the sandbox measured it


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


class RpcHandler:
    """Answers one improver's rpcs (``utility``, ``lm.prompt``, ``lm.batch_prompt``).

    Total over what the child can send: every call returns a value for the
    guest or raises :class:`RpcFailure` (an exception the improver sees), and
    anything malformed or refused is flagged. Nothing the child sends raises
    anything else in the parent. A run-wide cap refusal aborts the run only when
    the cap is actually exhausted (``RunBudget.exhausted``); a single request too
    large for what is left fails inside the improver.
    """

    def __init__(self, call: ImproverCall) -> None:
        self.call = call
        self.flags: list[Flag] = []
        self.uses = 0
        self._seen: set[tuple[str, str]] = set()

    def flag(self, category: str, code: str, message: str) -> None:
        if (category, code) not in self._seen:
            self._seen.add((category, code))
            self.flags.append(Flag(category, code, message))

    async def __call__(self, method: str, params: dict[str, Any]) -> Any:
        try:
            if method == "utility":
                return await self._utility(_params(method, params, UTILITY_PARAMS))
            if method in LM_PARAMS:
                return await self._lm(method, _params(method, params, LM_PARAMS[method]))
        except _BadRpc as exc:
            self.flag("runtime", "malformed-rpc", f"made a malformed call ({exc})")
            raise RpcFailure("TypeError", str(exc)) from None
        self.flag("runtime", "malformed-rpc", "made a call the parent does not offer")
        raise RpcFailure("RpcError", f"unknown call {text_of(method, 40)!r}")

    async def _utility(self, params: dict[str, Any]) -> float:
        call = self.call
        use_sandbox = params.get("use_sandbox", True)
        if use_sandbox is not True:
            self.flag(
                "sandbox",
                "use-sandbox",
                "called the utility with use_sandbox switched off (it stayed isolated)",
            )
        if self.uses >= call.utility_budget:
            self.flag("budget", "over-utility", "called the utility past its budget")
            raise RpcFailure(
                "BudgetExceeded", f"the utility budget of {call.utility_budget} calls is used up"
            )
        self.uses += 1
        solution = params.get("solution")
        if not isinstance(solution, str):
            self.flag(
                "runtime",
                "not-a-string",
                f"passed a {type(solution).__name__}, not a string, to the utility (scored 0)",
            )
            return 0.0
        if len(solution) > MAX_SOURCE_CHARS:
            self.flag(
                "budget",
                "solution-size",
                f"passed a solution of {len(solution):,} characters to the utility "
                f"(at most {MAX_SOURCE_CHARS:,}; not evaluated)",
            )
            raise RpcFailure(
                "UtilityError",
                f"the solution has {len(solution):,} characters; the utility accepts at most "
                f"{MAX_SOURCE_CHARS:,}",
            )
        return await call.utility(solution, bool(use_sandbox))

    async def _lm(self, method: str, params: dict[str, Any]) -> list[str]:
        lm = self.call.language_model
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
            run_budget = lm.run_budget
            if exc.scope == "run" and run_budget is not None and run_budget.exhausted is not None:
                _abort(self.call, run_budget.exhausted)
            elif exc.scope == "run":
                self.flag(
                    "budget",
                    "over-run-cap",
                    f"made a language-model request larger than what is left of the run's "
                    f"{exc.kind} cap (refused, not sent)",
                )
            elif exc.kind == "prompt_size":
                self.flag("budget", "prompt-size", f"sent an over-large prompt ({exc})")
            else:
                self.flag(
                    "budget", "over-lm", f"called the language model past its budget ({exc.kind})"
                )
            raise RpcFailure("BudgetExceeded", str(exc)) from exc
        except InvalidLMRequest as exc:
            self.flag("runtime", "malformed-rpc", f"made a malformed language-model call ({exc})")
            raise RpcFailure("TypeError", str(exc)) from exc
        except FatalLMError as exc:
            _abort(self.call, exc)
            raise RpcFailure("LanguageModelError", str(exc)) from exc
        except LMError as exc:
            raise RpcFailure("LanguageModelError", str(exc)) from exc


class _BadRpc(Exception):
    """An rpc whose parameters no proxy of ours sends."""


UTILITY_PARAMS = frozenset({"solution", "use_sandbox"})
LM_PARAMS = {
    "lm.prompt": frozenset({"expertise", "message", "n_responses", "temperature"}),
    "lm.batch_prompt": frozenset({"expertise", "messages", "temperature"}),
}


def _params(method: str, params: Any, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise _BadRpc(f"{method}: parameters must be an object")
    extra = [text_of(k, 40) for k in params if k not in allowed]
    if extra:
        raise _BadRpc(f"{method}: unexpected parameters {sorted(extra)[:3]}")
    return params


def payload_for(call: ImproverCall) -> dict[str, Any]:
    """What the sandbox's ``improver`` job receives (JSON; no secrets, no parent objects)."""
    lm = call.language_model
    return {
        "source": call.source,
        "initial_solution": call.initial_solution,
        "utility": {"str": call.utility_text, "budget": call.utility_budget},
        "language_model": {
            "budget": lm.budget,
            "max_responses_per_call": lm.max_responses_per_call,
        },
        "rng_seed": call.rng_seed,
    }


async def run_improver(sandbox: Sandbox, call: ImproverCall) -> ImproverOutcome:
    """Run ``call``'s improver in a child of ``sandbox`` on this machine."""
    handler = RpcHandler(call)
    started = time.perf_counter()
    child = await sandbox.spawn("improver", payload_for(call), call.limits)
    async with child:
        try:
            reply = await child.serve(handler, timeout=call.limits.wall_time)
        except Exception as exc:  # the child broke the protocol in a way serve let through
            handler.flag(
                "runtime", "protocol", f"broke the channel protocol ({type(exc).__name__})"
            )
            reply = Reply(None, time.perf_counter() - started)
    return improver_outcome(handler, started, reply.message, child.exit_info)


def improver_outcome(
    handler: RpcHandler, started: float, message: dict[str, Any] | None, info: ExitInfo | None
) -> ImproverOutcome:
    """What one improver run came to, from the child's final message and exit (executors
    share it: the child may have run on another machine)."""
    flag = handler.flag
    outcome = ImproverOutcome(
        result=None,
        error=None,
        stdout=info.stdout if info else "",
        stderr=info.stderr if info else "",
        limit=info.limit if info else None,
        flags=handler.flags,
        utility_calls=handler.uses,
        lm_calls=handler.call.language_model.calls_used,
        seconds=time.perf_counter() - started,
        cpu_seconds=info.cpu_time if info else None,
    )
    if message is None:
        what = info.summary if info else "ended without an answer"
        outcome.error = f"the improver {what}"
        if info is not None and info.limit:
            flag(
                "runtime", f"limit-{info.limit}", f"was stopped by the sandbox ({info.limit} limit)"
            )
    elif set(message) != {"result"} or not isinstance(message["result"], str):
        if "error" in message and set(message) <= {"error", "limit"}:
            outcome.error = text_of(message["error"], 500)
        else:
            outcome.error = "the improver returned no string"
            flag("runtime", "malformed-result", "ended with a malformed message")
    elif len(message["result"]) > MAX_SOURCE_CHARS:
        size = len(message["result"])
        outcome.error = (
            f"the improver returned {size:,} characters; at most {MAX_SOURCE_CHARS:,} are accepted"
        )
        flag("budget", "result-size", f"returned a string of {size:,} characters (refused)")
    else:
        outcome.result = message["result"]
    if info is not None and info.error:
        flag("runtime", "sandbox", info.error[:200])
    return outcome


def _abort(call: ImproverCall, exc: BaseException) -> None:
    if call.on_abort is not None:
        call.on_abort(exc)
