"""The improver job with a fake rpc handler, and the guest helpers."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from stop_tui.sandbox import Limits, RpcFailure, Sandbox
from stop_tui.sandbox.guest.helpers import extract_code
from stop_tui.sandbox.layers import probe

needs_stack = pytest.mark.skipif(
    not probe().full, reason="the full isolation stack is not available"
)

IMPROVER = textwrap.dedent(
    '''
    from helpers import extract_code

    def improve_algorithm(initial_solution, utility, language_model):
        """Ask twice, keep the best candidate by utility."""
        info = f"budget={utility.budget} lm={language_model.budget}/{language_model.max_responses_per_call}"
        one = language_model.prompt("expert", "improve:\\n" + initial_solution, n_responses=2)
        many = language_model.batch_prompt("expert", ["a", "b"], temperature=0.3)
        candidates = [c for c in extract_code(one + many) if c]
        best = max(candidates, key=lambda c: utility(c))
        unsandboxed = utility(best, use_sandbox=False)
        return best + f"\\n# {info} {utility.str[:10]} {unsandboxed}"
    '''
)


class FakeParent:
    def __init__(self, lm_budget: int = 10) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.lm_budget = lm_budget

    async def __call__(self, method: str, params: dict[str, Any]) -> Any:
        self.calls.append((method, params))
        if method.startswith("lm."):
            if self.lm_budget <= 0:
                raise RpcFailure("BudgetExceeded", "language model budget of 2 calls used up")
            self.lm_budget -= 1
        if method == "lm.prompt":
            n = params["n_responses"]
            return [f"idea {i}\n```python\ndef algorithm():\n    return {i}\n```" for i in range(n)]
        if method == "lm.batch_prompt":
            return [f"```\ndef algorithm():\n    return '{m}'\n```" for m in params["messages"]]
        if method == "utility":
            return float(len(params["solution"])) + (0.5 if params["use_sandbox"] else 0.0)
        if method == "crash":
            raise KeyError("/secret/path/evaluator.py hidden seed 1234")
        raise RpcFailure("UnknownMethod", method)


def payload(source: str) -> dict[str, Any]:
    return {
        "source": source,
        "initial_solution": "def algorithm():\n    return 0\n",
        "utility": {"str": "def utility(algorithm_str): ...", "budget": 5},
        "language_model": {"budget": 4, "max_responses_per_call": 6},
    }


@pytest.fixture
async def sandbox() -> Any:
    async with Sandbox() as sb:
        yield sb


@needs_stack
async def test_improver_talks_to_the_parent_through_rpcs(sandbox: Sandbox) -> None:
    parent = FakeParent()
    async with await sandbox.spawn("improver", payload(IMPROVER), Limits()) as child:
        reply = await child.serve(parent, timeout=30)
    assert reply.message is not None and "result" in reply.message, reply
    result = reply.message["result"]
    assert result.startswith("def algorithm():\n    return 'a'")  # longest code wins utility
    best = result.split("\n#")[0]
    assert "budget=5 lm=4/6 def utilit" in result and result.endswith(f" {float(len(best))}")
    methods = [method for method, _ in parent.calls]
    assert methods[:2] == ["lm.prompt", "lm.batch_prompt"]
    assert methods.count("utility") == 5
    assert parent.calls[0][1] == {
        "expertise": "expert",
        "message": "improve:\ndef algorithm():\n    return 0\n",
        "n_responses": 2,
        "temperature": 0.7,
    }
    assert parent.calls[-1] == (
        "utility",
        {"solution": result.split("\n#")[0], "use_sandbox": False},
    )


@needs_stack
async def test_budget_exceeded_raises_in_the_guest(sandbox: Sandbox) -> None:
    source = textwrap.dedent(
        """
        def improve_algorithm(initial_solution, utility, language_model):
            n = 0
            try:
                while True:
                    language_model.prompt("e", "m")
                    n += 1
            except BudgetExceeded as exc:
                return f"stopped after {n}: {type(exc).__name__}: {exc}"
        """
    )
    async with await sandbox.spawn("improver", payload(source)) as child:
        reply = await child.serve(FakeParent(lm_budget=2), timeout=30)
    assert reply.message == {
        "result": "stopped after 2: BudgetExceeded: language model budget of 2 calls used up"
    }


@needs_stack
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def improve_algorithm(s, u, lm):\n    return 42\n", "improve_algorithm returned int"),
        ("def improve_algorithm(s, u, lm):\n    raise ValueError('nope')\n", "ValueError: nope"),
        ("x = 1\n", "NameError"),
        ("def improve_algorithm(s, u, lm):\n    return u.foo\n", "AttributeError"),
    ],
)
async def test_improver_failures_are_errors(sandbox: Sandbox, source: str, expected: str) -> None:
    async with await sandbox.spawn("improver", payload(source)) as child:
        reply = await child.serve(FakeParent(), timeout=30)
    assert reply.message is not None and reply.message["error"].startswith(expected), reply


@needs_stack
async def test_unknown_rpc_errors_become_rpc_error(sandbox: Sandbox) -> None:
    source = textwrap.dedent(
        """
        def improve_algorithm(s, utility, lm):
            try:
                utility._rpc.call("filesystem.delete", {"path": "/"})
            except RpcError as exc:
                return f"{type(exc).__name__}: {exc}"
        """
    )
    async with await sandbox.spawn("improver", payload(source)) as child:
        reply = await child.serve(FakeParent(), timeout=30)
    assert reply.message == {"result": "RpcError: UnknownMethod: filesystem.delete"}


@needs_stack
async def test_serve_times_out_and_kills(sandbox: Sandbox) -> None:
    source = "import time\ndef improve_algorithm(s, u, lm):\n    time.sleep(60)\n"
    async with await sandbox.spawn("improver", payload(source)) as child:
        reply = await child.serve(FakeParent(), timeout=0.5)
        assert reply.timed_out and reply.message is None
    assert child.exit_info is not None and child.exit_info.limit == "timeout"


# ------------------------------------------------------------------ helpers


def test_extract_code_takes_the_largest_block() -> None:
    text = "intro\n```python\nshort()\n```\nmiddle\n```python\ndef longer():\n    return 1\n```\n"
    assert extract_code(text) == "def longer():\n    return 1"


def test_extract_code_bare_fences_nesting_and_lists() -> None:
    assert extract_code("```\nplain = 1\n```") == "plain = 1"
    nested = "```python\nouter = 1\n```text\ninner\n```\nafter = 2\n```\n"
    assert extract_code(nested) == "outer = 1\n```text\ninner\n```\nafter = 2"
    assert extract_code("no code here") is None
    assert extract_code("```python\nnever closed") is None
    assert extract_code(["```py\na\n```", "none"]) == ["a", None]


@needs_stack
async def test_handler_crashes_do_not_leak_details(sandbox: Sandbox) -> None:
    source = textwrap.dedent(
        """
        def improve_algorithm(s, utility, lm):
            try:
                utility._rpc.call("crash", {})
            except RpcError as exc:
                return f"{type(exc).__name__}: {exc}"
        """
    )
    async with await sandbox.spawn("improver", payload(source)) as child:
        reply = await child.serve(FakeParent(), timeout=30)
    assert reply.message == {"result": "RpcError: the parent could not answer 'crash'"}
