"""The demo backend: an offline, deterministic, scripted stand-in for a language model.

It is NOT a language model. It recognises a few kinds of request by keywords
and answers with programs from a fixed library (``stop_tui.lm.demo.library``),
chosen by a seeded random draw under a fixed step rule (:func:`step_weight`):
usually the rung just above the strongest library program shown in the prompt,
rarely two rungs up, very rarely more. Every answer starts with a line saying
it is scripted.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time

from stop_tui.lm.demo.library import LibraryEntry, demo_improvers, demo_solutions
from stop_tui.lm.demo.monitor import scripted_note
from stop_tui.lm.demo.recognise import Recognition, recognise
from stop_tui.lm.types import ChatRequest, ChatResult

__all__ = [
    "DEMO_DISPLAY_NAME",
    "DEMO_LABEL",
    "DEMO_MODEL",
    "DemoBackend",
    "estimate_tokens",
    "step_weight",
]

DEMO_MODEL = "demo"
DEMO_DISPLAY_NAME = "demo (scripted, offline — not a language model)"
DEMO_LABEL = "Scripted demo answer (offline, not a language model)."

_SUPPORTED = (
    "improving a solution of one of the built-in tasks (parity_noise, parity_noiseless, "
    "three_sat, maxcut, str_grid_dist, modified_quadratic_assignment) or improving an "
    "improver (a program defining improve_algorithm)"
)


def estimate_tokens(text: str) -> int:
    """A rough token count: about four characters per token."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


# The demo's step rule: weight of a proposal ``gap`` rungs away from the prompt's level.
STEP_UP = 0.60  # the next rung
STEP_SAME = 0.14  # the rung shown (another program of the same strength)
STEP_DOWN = 0.10  # all weaker rungs together, shared equally
STEP_JUMP = 0.12  # two rungs up
STEP_LEAP = 0.02  # three rungs up; each further rung half as likely again (0.04 in all)


def step_weight(gap: int, weaker: int = 1) -> float:
    """The weight of a library entry ``gap`` rungs above the level shown in the prompt.

    ``weaker`` is how many rungs lie below that level (they share ``STEP_DOWN``).
    At temperature 0.7 the weights of a long ladder sum to 1, so they are the
    probabilities of proposing each step; where rungs are missing (at the ends of
    a ladder) the draw renormalises over the rungs that exist.
    """
    if gap < 0:
        return STEP_DOWN / max(weaker, 1)
    if gap == 0:
        return STEP_SAME
    if gap == 1:
        return STEP_UP
    if gap == 2:
        return STEP_JUMP
    return STEP_LEAP * 0.5 ** (gap - 3)


def _break_syntax(source: str, entry_point: str) -> str:
    """Drop the colon that ends the entry point's ``def`` header: a SyntaxError."""
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"def {entry_point}("))
    for i in range(start, len(lines)):
        if lines[i].rstrip().endswith(":"):
            lines[i] = lines[i].rstrip()[:-1]
            break
    return "\n".join(lines) + "\n"


def _break_runtime(source: str, entry_point: str) -> str:
    """Use an undefined name first thing in the entry point: a NameError when it runs."""
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"def {entry_point}("))
    header_end = next(i for i in range(start, len(lines)) if lines[i].rstrip().endswith(":"))
    lines.insert(
        header_end + 1, "    warm_start = previous_best_result[0]  # reuse the last answer"
    )
    return "\n".join(lines) + "\n"


class DemoBackend:
    """Scripted, offline answers; see the module docstring. Implements ``Backend``.

    The answer to a request depends only on ``seed``, the request's content
    (:meth:`ChatRequest.key`), how many times that same request was made
    before on this backend, and the index of the sample within the request;
    never on the order or concurrency of other requests.
    """

    name = DEMO_MODEL
    model = DEMO_MODEL
    display_name = DEMO_DISPLAY_NAME

    def __init__(
        self,
        seed: int = 0,
        failure_rate: float = 0.1,
        no_code_rate: float = 0.05,
        latency: float = 0.0,
        *,
        hostile_rate: float = 0.04,
    ) -> None:
        for label, rate in (
            ("failure_rate", failure_rate),
            ("no_code_rate", no_code_rate),
            ("hostile_rate", hostile_rate),
        ):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{label} must be between 0 and 1, got {rate!r}")
        if failure_rate + no_code_rate > 1.0:
            raise ValueError("failure_rate + no_code_rate must not exceed 1")
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency!r}")
        self.seed = seed
        self.failure_rate = failure_rate
        self.no_code_rate = no_code_rate
        self.latency = latency
        self.hostile_rate = hostile_rate
        self._occurrences: dict[str, int] = {}

    async def complete(self, request: ChatRequest) -> ChatResult:
        # Taken before any await, so concurrent calls cannot change each other's index.
        occurrence = self._occurrences.get(request.slot(), 0)
        return await self.complete_as(request, occurrence)

    async def complete_as(self, request: ChatRequest, occurrence: int) -> ChatResult:
        """Answer ``request`` as its ``occurrence``-th repeat. A resumed run serves the
        earlier repeats from its transcript (they never reach this backend), so the
        recorder passes the run's occurrence number and the answer is the one an
        uninterrupted run would have got."""
        started = time.perf_counter()
        key = request.slot()
        self._occurrences[key] = max(self._occurrences.get(key, 0), occurrence + 1)
        recognition = recognise(request.system, request.user)
        texts = [
            self._answer(recognition, request, _rng(self.seed, key, occurrence, index))
            for index in range(request.n)
        ]
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        return ChatResult(
            texts=texts,
            prompt_tokens=estimate_tokens(request.system) + estimate_tokens(request.user),
            completion_tokens=sum(estimate_tokens(t) for t in texts),
            usage_estimated=True,
            latency=time.perf_counter() - started,
            retries=0,
            cost=0.0,
        )

    async def aclose(self) -> None:
        return None

    # -- choosing and wrapping an answer -------------------------------------------------

    def _answer(self, recognition: Recognition, request: ChatRequest, rng: random.Random) -> str:
        if recognition.kind == "monitor":
            return scripted_note(request.user)
        if recognition.kind == "other":
            return (
                f"{DEMO_LABEL}\nThe demo backend only answers requests about {_SUPPORTED}. "
                "This request is neither, so there is no code here. Choose a real language "
                "model for anything else."
            )
        entry = self.choose(recognition, request.temperature, rng)
        roll = rng.random()
        if roll < self.no_code_rate:
            return (
                f"{DEMO_LABEL}\nIdea: {entry.description}. "
                "I would start from there; no code this time."
            )
        source = entry.source
        if roll < self.no_code_rate + self.failure_rate:
            if rng.random() < 0.5:
                source = _break_syntax(source, entry.entry_point)
            else:
                source = _break_runtime(source, entry.entry_point)
        return f"{DEMO_LABEL}\nIdea: {entry.description}.\n\n```python\n{source.rstrip()}\n```\n"

    def choose(
        self, recognition: Recognition, temperature: float, rng: random.Random
    ) -> LibraryEntry:
        """Pick a library entry: usually one rung above the prompt's current level.

        The rules (docs/demo-model.md, "How it chooses"): the level *k* is
        the rung of the strongest library program shown in the prompt (rank 0
        when none is). Each rung's weight depends only on its distance from *k*
        (:func:`step_weight`): the next rung most often, the same rung or a
        weaker one sometimes, two rungs up rarely, more than two very rarely.
        Temperatures below 0.7 sharpen these weights (greedier: even fewer
        jumps), above 0.7 flatten them. For an improver request the ladder is the
        honest improvers, and a hostile one comes up at ``hostile_rate`` first.
        """
        if recognition.kind == "improver":
            entries = demo_improvers(include_hostile=False)
            hostile = [e for e in demo_improvers() if e.hostile]
            if hostile and rng.random() < self.hostile_rate:
                return rng.choice(hostile)
        else:
            entries = demo_solutions(recognition.task or "")
        base = max(recognition.level, 0)
        weaker = sum(1 for e in entries if e.strength < base)
        sharpness = 0.7 / max(temperature, 0.05)
        weights = [step_weight(e.strength - base, weaker) ** sharpness for e in entries]
        return rng.choices(entries, weights=weights, k=1)[0]
