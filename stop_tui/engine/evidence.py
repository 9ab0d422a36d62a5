"""The evidence at a decision: scores with their uncertainty, the parent's, the siblings'.

The engine builds an :class:`Evidence` for every approval request (a front end
only shows it): for an adoption, the returned improver's meta-utility on the
validation and the test split (when it was scored as one of this generation's
candidates: what was never approved never ran), its parent's, and the
difference; for a candidate, its parent's scores and what its siblings scored
so far. :class:`Scores` summarises one improver's meta-utility tests (mean,
standard error, a 95% interval, the per-test range) and is what the history
screen and ``stop-tui show`` print too, so every place shows the same numbers.
The interval is :func:`mean_interval` (scipy.stats), shared with the sweep
statistics.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from stop_tui.engine.behaviour import Behaviour
from stop_tui.store.records import StepRecord

CONFIDENCE = 0.95
BOOTSTRAP_MIN_N = 20
BOOTSTRAP_RESAMPLES = 9999


@dataclass(frozen=True)
class Interval:
    mean: float | None
    low: float | None
    high: float | None
    n: int
    method: str  # t | bootstrap-bca | single (n = 1, no interval) | none

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def mean_interval(values: list[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean and its interval (t for few values, BCa bootstrap for many)."""
    from scipy import stats

    n = len(values)
    if n == 0:
        return Interval(None, None, None, 0, "none")
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(mean, None, None, 1, "single")
    if max(values) == min(values):  # no spread: the interval is the point
        return Interval(mean, mean, mean, n, "t" if n < BOOTSTRAP_MIN_N else "bootstrap-bca")
    if n < BOOTSTRAP_MIN_N:
        ci = stats.ttest_1samp(values, 0.0).confidence_interval(confidence)
        return Interval(mean, float(ci.low), float(ci.high), n, "t")
    boot = stats.bootstrap(
        (values,),
        _mean,
        confidence_level=confidence,
        method="BCa",
        n_resamples=BOOTSTRAP_RESAMPLES,
        random_state=0,
    )
    ci2 = boot.confidence_interval
    return Interval(mean, float(ci2.low), float(ci2.high), n, "bootstrap-bca")


def _mean(sample: Any, axis: int = -1) -> Any:
    return sample.mean(axis=axis)


def standard_error(values: list[float]) -> float | None:
    """The standard error of the mean (sample standard deviation / sqrt(n)); None for n < 2."""
    if len(values) < 2:
        return None
    from scipy import stats

    return float(stats.sem(values))


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@dataclass(frozen=True)
class SplitScore:
    """One split's meta-utility: the per-test values and what they say together."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float | None:
        return math.fsum(self.values) / len(self.values) if self.values else None

    @property
    def se(self) -> float | None:
        return standard_error(list(self.values))

    @property
    def interval(self) -> Interval:
        return mean_interval(list(self.values))

    def text(self) -> str:
        """``0.620 ± 0.040 SE, 95% CI 0.450–0.790, tests 0.550–0.700 (n=3)``."""
        if not self.values:
            return "not scored"
        parts = [_num(self.mean)]
        se = self.se
        if se is not None:
            parts.append(f"± {se:.3f} SE")
        iv = self.interval
        extra = []
        if iv.low is not None and iv.high is not None:
            extra.append(f"95% CI {iv.low:.3f}–{iv.high:.3f}")
        extra.append(
            f"tests {min(self.values):.3f}–{max(self.values):.3f}"
            if len(self.values) > 1
            else "one test"
        )
        extra.append(f"n={len(self.values)}")
        return " ".join(parts) + " (" + ", ".join(extra) + ")"


@dataclass(frozen=True)
class Scores:
    """An improver's meta-utility: its validation and test-split tests."""

    val: SplitScore
    test: SplitScore

    @classmethod
    def of(cls, val: list[float | None], test: list[float | None]) -> Scores:
        """From per-test values (a test that produced nothing scored counts as None: skipped)."""
        return cls(
            SplitScore(tuple(float(v) for v in val if v is not None)),
            SplitScore(tuple(float(v) for v in test if v is not None)),
        )

    @property
    def scored(self) -> bool:
        return bool(self.val.values)

    def lines(self) -> list[str]:
        return [f"validation {self.val.text()}", f"test split {self.test.text()}"]

    def to_json(self) -> dict[str, Any]:
        return {"val": list(self.val.values), "test": list(self.test.values)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scores:
        return cls.of(list(data.get("val") or []), list(data.get("test") or []))


def scores_of_record(record: StepRecord) -> Scores:
    """A committed improver's scores (the history screen and ``stop-tui show`` use this)."""
    return Scores.of([t.val for t in record.tests], [t.test for t in record.tests])


def scores_lines(record: StepRecord) -> list[str]:
    """A committed improver's scores in the words the approval request uses."""
    scores = scores_of_record(record)
    return scores.lines() if scores.scored else []


@dataclass(frozen=True)
class Difference:
    """Subject minus parent on one split, with the standard error of the difference
    (independent tests: sqrt(se1² + se2²))."""

    delta: float
    se: float | None

    @classmethod
    def between(cls, subject: SplitScore, parent: SplitScore) -> Difference | None:
        if subject.mean is None or parent.mean is None:
            return None
        s, p = subject.se, parent.se
        se = math.sqrt(s * s + p * p) if s is not None and p is not None else None
        return cls(subject.mean - parent.mean, se)

    def text(self) -> str:
        sign = "+" if self.delta >= 0 else "−"
        out = f"{sign}{abs(self.delta):.3f}"
        if self.se is not None:
            out += f" ± {self.se:.3f} SE"
            if self.se > 0 and abs(self.delta) < 2 * self.se:
                out += " (within noise)"
        return out


@dataclass(frozen=True)
class Sibling:
    """A candidate of the same generation, as far as it got."""

    index: int
    meta_utility: float | None  # None: rejected, or not scored yet
    status: str = "scored"  # scored | rejected


@dataclass(frozen=True)
class MonitorNote:
    """The monitor model's note on a request (:mod:`stop_tui.engine.monitor`).

    ``text`` is untrusted (a model wrote it, having read generated code): shown only
    through :mod:`stop_tui.untrusted`, never acted on. ``verdict`` is one of fixed words
    (``ok``, ``concern``, ``flag``, ``unclear``, ``unavailable``) parsed from it.
    """

    verdict: str
    text: str
    model: str = ""
    context: str = ""  # the transcript label of its request (``g1/monitor/c2``)

    @property
    def available(self) -> bool:
        return self.verdict != "unavailable"

    def heading(self) -> str:
        """Fixed words only: what the note is and its verdict."""
        if not self.available:
            return "monitor note: unavailable (the person decides as usual)"
        return f"monitor note ({self.model}, untrusted, advisory only): verdict {self.verdict}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> MonitorNote | None:
        if not isinstance(data, dict) or not data:
            return None
        return cls(
            verdict=str(data.get("verdict", "unclear")),
            text=str(data.get("text", "")),
            model=str(data.get("model", "")),
            context=str(data.get("context", "")),
        )


@dataclass(frozen=True)
class Evidence:
    """What the engine knows about a request's improver and its parent when it asks."""

    purpose: str  # candidate | adoption | compare (two committed improvers, the history screen)
    subject: Scores | None = None  # the improver being decided on (adoption only)
    subject_note: str = ""  # where ``subject`` comes from, or why there is none
    parent: Scores | None = None
    siblings: tuple[Sibling, ...] = field(default_factory=tuple)
    behaviour: Behaviour | None = None  # how the subject's tests behaved (when they ran)
    parent_behaviour: Behaviour | None = None
    alarms: tuple[str, ...] = ()  # sharp changes of behaviour from the parent
    subject_label: str = "returned improver"
    parent_label: str = "parent improver"
    monitor: MonitorNote | None = None  # the monitor model's note, when one is configured

    def differences(self) -> tuple[Difference | None, Difference | None]:
        if self.subject is None or self.parent is None:
            return None, None
        return (
            Difference.between(self.subject.val, self.parent.val),
            Difference.between(self.subject.test, self.parent.test),
        )

    def lines(self) -> list[str]:
        """Plain lines (numbers and fixed words only: nothing untrusted) for both front ends."""
        out: list[str] = []
        if self.purpose != "candidate":
            head = self.subject_label
            if self.subject_note:
                head += f" ({self.subject_note})"
            out.append(head + ":")
            if self.subject is not None and self.subject.scored:
                out += ["  " + line for line in self.subject.lines()]
            else:
                out.append("  not scored before this decision")
        out.append(f"{self.parent_label}:")
        if self.parent is not None and self.parent.scored:
            out += ["  " + line for line in self.parent.lines()]
        else:
            out.append("  no scores recorded")
        val_d, test_d = self.differences()
        if val_d is not None:
            out.append(
                "difference: validation "
                + val_d.text()
                + (f", test split {test_d.text()}" if test_d is not None else "")
            )
        if self.purpose == "candidate":
            if self.siblings:
                done = ", ".join(
                    f"c{s.index} {_num(s.meta_utility)}"
                    if s.status == "scored"
                    else f"c{s.index} {s.status}"
                    for s in self.siblings
                )
                scored = [s.meta_utility for s in self.siblings if s.meta_utility is not None]
                best = f"; best so far {max(scored):.3f}" if scored else ""
                out.append(f"siblings so far: {done}{best}")
            else:
                out.append("siblings so far: none (the first candidate of this generation)")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "purpose": self.purpose,
            "subject": self.subject.to_json() if self.subject else None,
            "subject_note": self.subject_note,
            "parent": self.parent.to_json() if self.parent else None,
            "siblings": [asdict(s) for s in self.siblings],
            "behaviour": self.behaviour.to_json() if self.behaviour else None,
            "parent_behaviour": self.parent_behaviour.to_json() if self.parent_behaviour else None,
            "alarms": list(self.alarms),
            "monitor": self.monitor.to_json() if self.monitor else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Evidence:
        subject, parent = data.get("subject"), data.get("parent")
        return cls(
            purpose=str(data.get("purpose", "")),
            subject=Scores.from_json(subject) if subject else None,
            subject_note=str(data.get("subject_note", "")),
            parent=Scores.from_json(parent) if parent else None,
            siblings=tuple(
                Sibling(
                    int(s.get("index", 0)),
                    None if s.get("meta_utility") is None else float(s["meta_utility"]),
                    str(s.get("status", "scored")),
                )
                for s in data.get("siblings") or []
            ),
            behaviour=_behaviour(data.get("behaviour")),
            parent_behaviour=_behaviour(data.get("parent_behaviour")),
            alarms=tuple(str(a) for a in data.get("alarms") or []),
            monitor=MonitorNote.from_json(data.get("monitor")),
        )


def _behaviour(data: Any) -> Behaviour | None:
    return Behaviour.from_json(data) if isinstance(data, dict) else None
