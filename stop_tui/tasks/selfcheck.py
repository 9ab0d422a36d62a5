"""Harmless attacks on decoding a child's output (``stop-tui doctor --attacks``).

A solution in a real sandboxed child swaps the guest's encoder so that its
replies arrive forged on the wire: an array of an impossible shape, an object
dtype, a line that is not JSON, a reply with extra keys. Each must come back as
a flagged score of 0 for every instance, never an exception in the parent.
"""

from __future__ import annotations

from stop_tui.sandbox.api import Sandbox
from stop_tui.sandbox.selftest import AttackResult
from stop_tui.tasks.evaluate import evaluate
from stop_tui.tasks.registry import get_task

_ENCODER = 'codec = sys.modules["stop_tui.sandbox.codec"]\n'
FORGERIES = {
    "reply with an impossible array shape": _ENCODER
    + 'codec.encode = lambda v: {"__ndarray__": "", "dtype": "<f8",'
    ' "shape": [2**40, 2**40, 0], "encoding": "base64"}',
    "reply with a forged dtype": _ENCODER
    + 'codec.encode = lambda v: {"__ndarray__": "AAAA", "dtype": "|O",'
    ' "shape": [1], "encoding": "base64"}',
    "reply that is not JSON": _ENCODER + 'codec.dumps_message = lambda m: b"{not json\\n"',
    "reply with extra keys": _ENCODER
    + "real = codec.dumps_message\n"
    + 'codec.dumps_message = lambda m: real({**m, "score": 1.0})',
}


def _solution(forgery: str) -> str:
    body = "\n".join("    " + line for line in forgery.splitlines())
    return f"import sys\n\ndef algorithm(*args):\n{body}\n    return [0] * 20\n"


async def malformed_output_attacks(sandbox: Sandbox) -> list[AttackResult]:
    """Each forgery evaluated on ``parity_noise``'s validation split."""
    task = get_task("parity_noise")
    results = []
    for name, forgery in FORGERIES.items():
        try:
            result = await evaluate(task, _solution(forgery), "val", sandbox)
        except Exception as exc:  # the parent raised: exactly what must never happen
            results.append(AttackResult(name, False, f"the parent raised {type(exc).__name__}"))
            continue
        flagged = all(r.flag for r in result.instances)
        blocked = flagged and result.score == 0.0
        detail = f"score {result.score:.2f}, flags {', '.join(result.flags) or 'none'}"
        results.append(AttackResult(name, blocked, detail))
    return results
