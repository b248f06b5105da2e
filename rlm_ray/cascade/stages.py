"""The stages every cascade shares (numpy only): the oracle's answers so far, the checks on a
run's arguments, the proxy's training sample, sample sizes, and the exact-scan fallback."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from rlm_ray.cascade.inputs import CannotTrain, check_confidence, check_size
from rlm_ray.cascade.report import CascadeReport
from rlm_ray.cascade.thresholds import Target

Oracle = Callable[[np.ndarray], Sequence[Hashable]]
Fit = Callable[[np.ndarray, list], Any]
Score = Callable[[Any, np.ndarray], np.ndarray]
OnStage = Callable[[str, int], object]
"""Told (stage, records) before the oracle is asked about new records in a stage."""

MIN_RECORDS = 5_000
"""Below this many records a cascade is not worth it and the operator asks the oracle about
every record: its samples alone are a third of the records or more (docs/cascades.md,
"When a cascade pays", from `python benchmarks/cascade.py --sizes`)."""
TRAIN_SHARE = 0.002
TRAIN_RANGE = (500, 2_000)
"""Records the oracle labels to train the proxy (uniform, without replacement): 0.2 % of the
records, at least 500 and at most 2,000. At a million records 2,000 rather than 500 halved the
oracle's share (docs/cascades.md, "Sizes"); training on 2,000 takes well under a second."""
SAMPLE_SHARE = 0.01
SAMPLE_RANGE = (1_500, 10_000)
"""Validation draws: 1 % of the records, at least 1,500 and at most 10,000."""
FULL_SCAN_SHARE = 0.9
"""If the oracle would see this share of the records anyway, it answers all of them."""


class Answers:
    """The oracle's answers so far, each record asked once; what each stage cost."""

    def __init__(self, oracle: Oracle, records: int, on_stage: OnStage | None = None) -> None:
        self.oracle, self.records, self.on_stage = oracle, records, on_stage
        self.known: dict[int, Hashable] = {}
        self.calls: dict[str, int] = {}
        self._asked = np.zeros(records, dtype=bool)

    def ask(self, indices: np.ndarray, stage: str) -> list[Hashable]:
        """The answers for `indices` (repeats allowed), asking the oracle only new records."""
        new = np.array(sorted({int(i) for i in indices} - self.known.keys()), dtype=np.int64)
        if len(new):
            if self.on_stage is not None:
                self.on_stage(stage, len(new))
            got = list(self.oracle(new))
            if len(got) != len(new):
                raise RuntimeError(f"the oracle gave {len(got)} answers for {len(new)} records")
            self.known.update(zip(new.tolist(), got))
            self._asked[new] = True
        self.calls[stage] = self.calls.get(stage, 0) + len(new)
        return [self.known[int(i)] for i in indices]

    def unasked(self, indices: np.ndarray) -> np.ndarray:
        return indices[~self._asked[indices]]

    def share_if(self, more: int) -> float:
        return (len(self.known) + more) / self.records

    def report(
        self,
        confidence: float,
        agreement: float,
        thresholds: dict[str, float],
        targets: tuple[Target, ...],
    ) -> CascadeReport:
        """The account of a cascade that ran, with what the oracle was asked so far."""
        return CascadeReport(
            records=self.records,
            oracle_calls=dict(self.calls),
            confidence=confidence,
            agreement=agreement,
            thresholds=thresholds,
            targets=targets,
            proxy_decided=self.records - len(self.known),
        )

    def overlay(self, values: np.ndarray) -> np.ndarray:
        """`values` with every record the oracle answered set to its answer."""
        for i, answer in self.known.items():
            values[i] = answer
        return values


def check_run(
    records: int, confidence: float, train_size: int | None, sample_size: int | None
) -> None:
    if isinstance(records, bool) or not isinstance(records, int) or records < 1:
        raise ValueError(f"`records` must be a whole number >= 1, got {records!r}")
    check_confidence(confidence)
    check_size("train_size", train_size, records)
    check_size("sample_size", sample_size, records)


def train_proxy(
    answers: Answers,
    fit: Fit,
    score: Score,
    rng: np.random.Generator,
    size: int | None,
    min_records: int,
) -> tuple[Any, np.ndarray] | str:
    """(proxy, scores of every record), or why the oracle must answer every record."""
    if answers.records < min_records:
        return (
            f"{answers.records:,} records are fewer than {min_records:,}: below that a cascade "
            "costs about as many oracle calls as an exact scan"
        )
    size = size or min(train_size_for(answers.records), answers.records)
    chosen = np.sort(rng.choice(answers.records, size=size, replace=False))
    labels = answers.ask(chosen, "train")
    try:
        proxy = fit(chosen, labels)
    except CannotTrain as exc:
        return f"the proxy could not be trained: {exc}"
    return proxy, np.asarray(score(proxy, np.arange(answers.records)), dtype=float)


def train_size_for(records: int) -> int:
    """The default training sample for `records` records."""
    low, high = TRAIN_RANGE
    return int(min(high, max(low, TRAIN_SHARE * records)))


def sample_size(records: int, asked: int | None) -> int:
    low, high = SAMPLE_RANGE
    return asked or int(min(high, max(low, SAMPLE_SHARE * records)))


def ask_rest(answers: Answers) -> list[Hashable]:
    return answers.ask(np.arange(answers.records), "exact")


def agreement(agrees: np.ndarray, weight: np.ndarray) -> float:
    """The share of all records on which the proxy agrees with the oracle, estimated from the
    weighted validation draws."""
    return float((weight * agrees).sum() / weight.sum())


def no_separation(band: int, records: int) -> str:
    return (
        f"the proxy could not separate the answers: {band:,} of {records:,} records would "
        "still go to the oracle, so it answered all of them"
    )


def too_many_draws(draws: int, records: int) -> str:
    return (
        f"the interval asked for needs about {draws:,} oracle answers of {records:,} "
        "records, so the oracle answered all of them (exact count)"
    )


def exact_report(answers: Answers, confidence: float, reason: str) -> CascadeReport:
    return CascadeReport(
        records=answers.records,
        oracle_calls=dict(answers.calls),
        confidence=confidence,
        agreement=None,
        thresholds={},
        targets=(),
        proxy_decided=0,
        reason=reason,
    )
