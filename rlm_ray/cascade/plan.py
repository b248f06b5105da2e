"""Cascades as pure functions over injected callables: the oracle, the proxy's training and its
scoring, and a seed. No Ray, no model calls here: the operators pass callables that do those
(the oracle through `SubCalls`, scoring as parallel Ray tasks), and tests pass plain functions.

    plan_filter(records, oracle, fit, score, recall=0.9, precision=0.9)  -> CascadeResult
    plan_classify(records, oracle, fit, score, accuracy=0.9)             -> CascadeResult
    plan_count(records, oracle, fit, score, error=0.02)                   -> CountResult

Records are 0..records-1. `oracle(indices) -> answers` (bool for filter and count, a label for
classify) is asked each record at most once; `fit(indices, answers) -> proxy` trains a proxy
(raises `CannotTrain` when it cannot); `score(proxy, indices)` scores records (filter and count:
shape (n,), the probability of True; classify: shape (n, len(proxy.classes))).

The stages: a uniform training sample for the proxy; the proxy scores every record; an
independent importance-weighted validation sample (sampling.py) fixes the thresholds
(thresholds.py) or the count's interval (count.py); the oracle answers the records between the
thresholds. Every record the oracle answered keeps the oracle's answer. Whenever the cascade
cannot keep its promise cheaply (too few records, a proxy that cannot train, a proxy that cannot
separate the answers) the oracle answers every record, and the report says why.
Deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from rlm_ray.cascade import count as counting
from rlm_ray.cascade import sampling, thresholds
from rlm_ray.cascade.inputs import (
    CannotTrain,
    check_confidence,
    check_error,
    check_size,
    check_target,
)
from rlm_ray.cascade.report import CascadeReport, CascadeResult, CountResult

Oracle = Callable[[np.ndarray], Sequence[Hashable]]
Fit = Callable[[np.ndarray, list], Any]
Score = Callable[[Any, np.ndarray], np.ndarray]

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

    def __init__(self, oracle: Oracle, records: int) -> None:
        self.oracle, self.records = oracle, records
        self.known: dict[int, Hashable] = {}
        self.calls: dict[str, int] = {}
        self._asked = np.zeros(records, dtype=bool)

    def ask(self, indices: np.ndarray, stage: str) -> list[Hashable]:
        """The answers for `indices` (repeats allowed), asking the oracle only new records."""
        new = np.array(sorted({int(i) for i in indices} - self.known.keys()), dtype=np.int64)
        if len(new):
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

    def overlay(self, values: np.ndarray) -> np.ndarray:
        """`values` with every record the oracle answered set to its answer."""
        for i, answer in self.known.items():
            values[i] = answer
        return values


# -- filter ----------------------------------------------------------------------------------------


def plan_filter(
    records: int,
    oracle: Oracle,
    fit: Fit,
    score: Score,
    *,
    recall: float | None = None,
    precision: float | None = None,
    confidence: float = 0.95,
    seed: int = 0,
    train_size: int | None = None,
    sample_size: int | None = None,
    min_records: int = MIN_RECORDS,
) -> CascadeResult:
    """Which records meet the oracle's condition (a bool array), with recall >= `recall` and
    precision >= `precision` relative to the oracle's answers, both together with probability
    >= `confidence`. A target not given is exact: the oracle decides that side alone."""
    check_target("recall", recall)
    check_target("precision", precision)
    if recall is None and precision is None:
        raise ValueError("plan_filter: give `recall`, `precision` or both (or run it exactly)")
    _check_run(records, confidence, train_size, sample_size)
    answers = Answers(oracle, records)
    rng = np.random.default_rng(seed)
    trained = _train(answers, fit, score, rng, train_size, min_records)
    if isinstance(trained, str):
        return _exact_filter(answers, confidence, trained)
    proxy, scores = trained
    draws = sampling.draw(
        sampling.design(sampling.filter_relevance(scores)), _sample_size(records, sample_size), rng
    )
    positive = np.array(answers.ask(draws.index, "validate"), dtype=bool)
    delta = 1.0 - confidence
    alpha = delta / 2 if recall is not None and precision is not None else delta
    low = (
        -np.inf
        if recall is None
        else thresholds.recall_threshold(scores, positive, draws, recall, alpha)
    )
    high = (
        np.inf
        if precision is None
        else thresholds.precision_threshold(
            scores, positive, draws, precision, alpha, recall if recall is not None else 1.0
        )
    )
    band = answers.unasked(np.flatnonzero((scores >= low) & (scores < high)))
    if answers.share_if(len(band)) >= FULL_SCAN_SHARE:
        return _exact_filter(answers, confidence, _no_separation(len(band), records))
    answers.ask(band, "band")
    values = answers.overlay(scores >= high)
    est_recall, est_precision = thresholds.filter_estimates(scores, positive, draws, low, high)
    targets = [  # a side the proxy decides nothing on is exact
        thresholds.Target(
            "recall", recall or 1.0, est_recall, (recall or 1.0) if low > -np.inf else 1.0
        ),
        thresholds.Target(
            "precision",
            precision or 1.0,
            est_precision,
            (precision or 1.0) if high < np.inf else 1.0,
        ),
    ]
    agreement = _agreement((scores[draws.index] >= 0.5) == positive, draws.weight)
    return CascadeResult(
        values,
        CascadeReport(
            records=records,
            oracle_calls=dict(answers.calls),
            confidence=confidence,
            agreement=agreement,
            thresholds={"reject_below": float(low), "accept_from": float(high)},
            targets=tuple(targets),
            proxy_decided=records - len(answers.known),
        ),
    )


def _exact_filter(answers: Answers, confidence: float, reason: str) -> CascadeResult:
    values = np.array(_ask_rest(answers), dtype=bool)
    return CascadeResult(values, _exact_report(answers, confidence, reason))


# -- classify --------------------------------------------------------------------------------------


def plan_classify(
    records: int,
    oracle: Oracle,
    fit: Fit,
    score: Score,
    *,
    accuracy: float,
    confidence: float = 0.95,
    seed: int = 0,
    train_size: int | None = None,
    sample_size: int | None = None,
    min_records: int = MIN_RECORDS,
) -> CascadeResult:
    """One label per record (an object array), agreeing with the oracle's on >= `accuracy` of
    the records with probability >= `confidence`."""
    check_target("accuracy", accuracy)
    if accuracy is None:
        raise ValueError("plan_classify: `accuracy` is required (or run it exactly)")
    _check_run(records, confidence, train_size, sample_size)
    answers = Answers(oracle, records)
    rng = np.random.default_rng(seed)
    trained = _train(answers, fit, score, rng, train_size, min_records)
    if isinstance(trained, str):
        return _exact_classify(answers, confidence, trained)
    proxy, scores = trained
    classes = np.array(list(proxy.classes) + [None], dtype=object)[:-1]
    label, sure = classes[scores.argmax(axis=1)], scores.max(axis=1)
    draws = sampling.draw(
        sampling.design(sampling.doubt_relevance(sure)), _sample_size(records, sample_size), rng
    )
    oracle_label = np.array(answers.ask(draws.index, "validate") + [None], dtype=object)[:-1]
    wrong = label[draws.index] != oracle_label
    cut = thresholds.accuracy_threshold(sure, wrong, draws, accuracy, 1.0 - confidence)
    band = answers.unasked(np.flatnonzero(sure < cut))
    if answers.share_if(len(band)) >= FULL_SCAN_SHARE:
        return _exact_classify(answers, confidence, _no_separation(len(band), records))
    answers.ask(band, "band")
    values = answers.overlay(label.copy())
    estimate = thresholds.accuracy_estimate(sure, wrong, draws, cut)
    return CascadeResult(
        values,
        CascadeReport(
            records=records,
            oracle_calls=dict(answers.calls),
            confidence=confidence,
            agreement=_agreement(~wrong, draws.weight),
            thresholds={"accept_from": float(cut)},
            targets=(
                thresholds.Target(
                    "accuracy", accuracy, estimate, 1.0 if cut == np.inf else accuracy
                ),
            ),
            proxy_decided=records - len(answers.known),
        ),
    )


def _exact_classify(answers: Answers, confidence: float, reason: str) -> CascadeResult:
    values = np.array(_ask_rest(answers) + [None], dtype=object)[:-1]
    return CascadeResult(values, _exact_report(answers, confidence, reason))


# -- count -----------------------------------------------------------------------------------------


def plan_count(
    records: int,
    oracle: Oracle,
    fit: Fit,
    score: Score,
    *,
    error: float = 0.02,
    confidence: float = 0.95,
    seed: int = 0,
    train_size: int | None = None,
    min_records: int = MIN_RECORDS,
) -> CountResult:
    """How many records the oracle says yes to, within ± `error` x records (the half-width
    asked for) with probability >= `confidence`; the interval is what the sample supports."""
    check_error(error)
    _check_run(records, confidence, train_size, None)
    answers = Answers(oracle, records)
    rng = np.random.default_rng(seed)
    trained = _train(answers, fit, score, rng, train_size, min_records)
    if isinstance(trained, str):
        return _exact_count(answers, confidence, trained)
    _, scores = trained
    strata = counting.stratify(scores)
    planned = counting.planned_draws(strata, scores, error, confidence)
    if answers.share_if(planned) >= FULL_SCAN_SHARE:
        return _exact_count(answers, confidence, _too_many_draws(planned, records))
    draws, interval = _count_rounds(answers, strata, planned, error, confidence, rng)
    if interval is None:
        return _exact_count(answers, confidence, _too_many_draws(len(draws.index), records))
    yes = np.array(answers.ask(draws.index, "validate"), dtype=bool)
    report = CascadeReport(
        records=records,
        oracle_calls=dict(answers.calls),
        confidence=confidence,
        agreement=_agreement((scores[draws.index] >= 0.5) == yes, draws.weight),
        thresholds={},
        targets=(),
        proxy_decided=records - len(answers.known),
    )
    return CountResult(interval, report)


def _count_rounds(answers, strata, planned, error, confidence, rng):
    """Draw, label, and draw more (TOP_UP of the draws so far) until the interval is within
    `error`; (draws, None) if the oracle would see `FULL_SCAN_SHARE` of the records first."""
    draws = counting.draw(strata, planned, rng)
    while True:
        yes = np.array(answers.ask(draws.index, "validate"), dtype=bool)
        interval = counting.interval(yes, draws, answers.records, confidence, planned)
        if interval.half_width <= error * answers.records:
            return draws, interval
        more = int(np.ceil(counting.TOP_UP * len(draws.index)))
        if answers.share_if(more) >= FULL_SCAN_SHARE:
            return draws, None
        extra = counting.draw(strata, more, rng)
        draws = sampling.Draws(
            np.concatenate([draws.index, extra.index]),
            np.concatenate([draws.weight, extra.weight]),
            draws.max_weight,
        )


def _exact_count(answers: Answers, confidence: float, reason: str) -> CountResult:
    total = int(sum(bool(a) for a in _ask_rest(answers)))
    interval = counting.Interval(float(total), total, total, confidence)
    return CountResult(interval, _exact_report(answers, confidence, reason))


# -- shared stages -------------------------------------------------------------------------------


def _check_run(
    records: int, confidence: float, train_size: int | None, sample_size: int | None
) -> None:
    if isinstance(records, bool) or not isinstance(records, int) or records < 1:
        raise ValueError(f"`records` must be a whole number >= 1, got {records!r}")
    check_confidence(confidence)
    check_size("train_size", train_size, records)
    check_size("sample_size", sample_size, records)


def _train(
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


def _sample_size(records: int, asked: int | None) -> int:
    low, high = SAMPLE_RANGE
    return asked or int(min(high, max(low, SAMPLE_SHARE * records)))


def _ask_rest(answers: Answers) -> list[Hashable]:
    return answers.ask(np.arange(answers.records), "exact")


def _agreement(agrees: np.ndarray, weight: np.ndarray) -> float:
    """The share of all records on which the proxy agrees with the oracle, estimated from the
    weighted validation draws."""
    return float((weight * agrees).sum() / weight.sum())


def _no_separation(band: int, records: int) -> str:
    return (
        f"the proxy could not separate the answers: {band:,} of {records:,} records would "
        "still go to the oracle, so it answered all of them"
    )


def _too_many_draws(draws: int, records: int) -> str:
    return (
        f"the interval asked for needs about {draws:,} oracle answers of {records:,} "
        "records, so the oracle answered all of them (exact count)"
    )


def _exact_report(answers: Answers, confidence: float, reason: str) -> CascadeReport:
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
