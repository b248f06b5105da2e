"""What a cascade tells its caller (and, through it, the trace, `usage`, the progress display and
the model's cell): how many records the oracle saw in each stage, how well the proxy agreed with
it, the thresholds, and each target with its estimate; or, for an exact scan, why."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlm_ray.cascade.count import Interval
from rlm_ray.cascade.thresholds import Target

STAGES = ("train", "validate", "band", "exact")
"""The oracle's stages, in order: the proxy's training sample, the validation draws, the records
between the thresholds; "exact" is the scan of every record not yet asked (a fallback)."""


@dataclass(frozen=True)
class CascadeReport:
    """One cascade's account of itself."""

    records: int
    """How many records the operator was over."""
    oracle_calls: dict[str, int]
    """Records the oracle answered, per stage (`STAGES`); each record is asked once."""
    confidence: float
    """The probability with which every target holds (relative to the oracle's answers)."""
    agreement: float | None
    """The share of records on which the proxy agrees with the oracle, estimated from the
    weighted validation draws; None when no proxy was used."""
    thresholds: dict[str, float]
    """Filter: `reject_below` (records scored below it are False unasked; -inf: none) and
    `accept_from` (scored at or above it are True unasked; inf: none). Classify: `accept_from`
    on the proxy's confidence. Count and exact scans: empty."""
    targets: tuple[Target, ...]
    """Each target: asked, estimated from the validation draws, and guaranteed."""
    proxy_decided: int
    """Records answered by the proxy alone, never seen by the oracle."""
    reason: str = ""
    """Why the oracle answered every record ("" when the cascade ran)."""

    @property
    def exact(self) -> bool:
        """Every answer is the oracle's."""
        return self.proxy_decided == 0

    @property
    def oracle_seen(self) -> int:
        return sum(self.oracle_calls.values())

    @property
    def oracle_share(self) -> float:
        return self.oracle_seen / self.records

    def summary(self) -> str:
        """One line for a cell's output or a progress line."""
        seen = f"oracle saw {self.oracle_seen:,} of {self.records:,} records"
        if self.reason:
            return f"exact: {seen} ({self.reason})"
        stages = ", ".join(f"{k} {v:,}" for k, v in self.oracle_calls.items() if v)
        held = "; ".join(_target_text(t) for t in self.targets)
        agreed = f"proxy agreed {self.agreement:.0%}" if self.agreement is not None else ""
        parts = [f"cascade: {seen} ({stages})", agreed, held]
        return "; ".join(p for p in parts if p) + f" at confidence {self.confidence:g}"


@dataclass(frozen=True)
class CascadeResult:
    """A filter's (bool per record) or a classifier's (label per record) answers, and the
    report."""

    values: np.ndarray
    report: CascadeReport


@dataclass(frozen=True)
class CountResult:
    """A count with its interval (exact: low == high == estimate), and the report."""

    count: Interval
    report: CascadeReport


def _target_text(target: Target) -> str:
    estimate = "n/a" if math.isnan(target.estimate) else f"{target.estimate:.3f}"
    if target.guaranteed >= 1.0:
        return f"{target.name} exact (oracle decides)"
    return f"{target.name} >= {target.guaranteed:g} (estimate {estimate})"


class Count(int):
    """What `llm_count` returns: an int (the estimate, rounded), with its interval `low` and
    `high` (whole records) at `confidence`, and `exact` (every record asked: low == high).

    It is an int wherever model code uses it (`print`, f-strings, arithmetic, `FINAL`), and
    crosses a process as the plain int it is (`__reduce__`; `sandbox.boundary.plain` copies it
    as one)."""

    _interval: tuple[int, int, float]

    def __new__(cls, estimate: float, low: int, high: int, confidence: float) -> Count:
        value = super().__new__(cls, min(high, max(low, round(estimate))))
        value._interval = (int(low), int(high), float(confidence))
        return value

    @property
    def low(self) -> int:
        return self._interval[0]

    @property
    def high(self) -> int:
        return self._interval[1]

    @property
    def confidence(self) -> float:
        return self._interval[2]

    @property
    def exact(self) -> bool:
        return self.low == self.high

    def __reduce__(self) -> tuple:
        return (int, (int(self),))
