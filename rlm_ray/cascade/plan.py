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
Deterministic for a given seed. `on_stage(stage, records)`, if given, is told before each
stage's new oracle calls (the operators show it in the progress display).
"""

from __future__ import annotations

import numpy as np

from rlm_ray.cascade import count as counting
from rlm_ray.cascade import sampling, stages, thresholds
from rlm_ray.cascade.inputs import check_error, check_target
from rlm_ray.cascade.report import CascadeResult, CountResult
from rlm_ray.cascade.stages import MIN_RECORDS, Fit, OnStage, Oracle, Score

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
    on_stage: OnStage | None = None,
) -> CascadeResult:
    """Which records meet the oracle's condition (a bool array), with recall >= `recall` and
    precision >= `precision` relative to the oracle's answers, both together with probability
    >= `confidence`. A target not given is exact: the oracle decides that side alone."""
    check_target("recall", recall)
    check_target("precision", precision)
    if recall is None and precision is None:
        raise ValueError("plan_filter: give `recall`, `precision` or both (or run it exactly)")
    stages.check_run(records, confidence, train_size, sample_size)
    answers = stages.Answers(oracle, records, on_stage)
    rng = np.random.default_rng(seed)
    trained = stages.train_proxy(answers, fit, score, rng, train_size, min_records)
    if isinstance(trained, str):
        return _exact_filter(answers, confidence, trained)
    proxy, scores = trained
    draws = sampling.draw(
        sampling.design(sampling.filter_relevance(scores)),
        stages.sample_size(records, sample_size),
        rng,
    )
    positive = np.array(answers.ask(draws.index, "validate"), dtype=bool)
    low, high = _filter_thresholds(scores, positive, draws, recall, precision, confidence)
    band = answers.unasked(np.flatnonzero((scores >= low) & (scores < high)))
    if answers.share_if(len(band)) >= stages.FULL_SCAN_SHARE:
        return _exact_filter(answers, confidence, stages.no_separation(len(band), records))
    answers.ask(band, "band")
    est_recall, est_precision = thresholds.filter_estimates(scores, positive, draws, low, high)
    targets = (  # a side the proxy decides nothing on is exact
        _target("recall", recall, est_recall, decided=low > -np.inf),
        _target("precision", precision, est_precision, decided=high < np.inf),
    )
    report = answers.report(
        confidence,
        agreement=stages.agreement((scores[draws.index] >= 0.5) == positive, draws.weight),
        thresholds={"reject_below": float(low), "accept_from": float(high)},
        targets=targets,
    )
    return CascadeResult(answers.overlay(scores >= high), report)


def _filter_thresholds(
    scores: np.ndarray,
    positive: np.ndarray,
    draws: sampling.Draws,
    recall: float | None,
    precision: float | None,
    confidence: float,
) -> tuple[float, float]:
    """(reject_below, accept_from); with both targets each test gets half of 1 - confidence."""
    delta = 1.0 - confidence
    alpha = delta / 2 if recall is not None and precision is not None else delta
    low = -np.inf
    if recall is not None:
        low = thresholds.recall_threshold(scores, positive, draws, recall, alpha)
    high = np.inf
    if precision is not None:
        high = thresholds.precision_threshold(
            scores, positive, draws, precision, alpha, recall if recall is not None else 1.0
        )
    return low, high


def _target(name: str, asked: float | None, estimate: float, decided: bool) -> thresholds.Target:
    """A target as reported: exact (1.0) unless asked for and the proxy decided records."""
    held = asked if asked is not None and decided else 1.0
    return thresholds.Target(name, asked if asked is not None else 1.0, estimate, held)


def _exact_filter(answers: stages.Answers, confidence: float, reason: str) -> CascadeResult:
    values = np.array(stages.ask_rest(answers), dtype=bool)
    return CascadeResult(values, stages.exact_report(answers, confidence, reason))


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
    on_stage: OnStage | None = None,
) -> CascadeResult:
    """One label per record (an object array), agreeing with the oracle's on >= `accuracy` of
    the records with probability >= `confidence`."""
    check_target("accuracy", accuracy)
    if accuracy is None:
        raise ValueError("plan_classify: `accuracy` is required (or run it exactly)")
    stages.check_run(records, confidence, train_size, sample_size)
    answers = stages.Answers(oracle, records, on_stage)
    rng = np.random.default_rng(seed)
    trained = stages.train_proxy(answers, fit, score, rng, train_size, min_records)
    if isinstance(trained, str):
        return _exact_classify(answers, confidence, trained)
    proxy, scores = trained
    classes = np.array(list(proxy.classes) + [None], dtype=object)[:-1]
    label, sure = classes[scores.argmax(axis=1)], scores.max(axis=1)
    draws = sampling.draw(
        sampling.design(sampling.doubt_relevance(sure)),
        stages.sample_size(records, sample_size),
        rng,
    )
    oracle_label = np.array(answers.ask(draws.index, "validate") + [None], dtype=object)[:-1]
    wrong = label[draws.index] != oracle_label
    cut = thresholds.accuracy_threshold(sure, wrong, draws, accuracy, 1.0 - confidence)
    band = answers.unasked(np.flatnonzero(sure < cut))
    if answers.share_if(len(band)) >= stages.FULL_SCAN_SHARE:
        return _exact_classify(answers, confidence, stages.no_separation(len(band), records))
    answers.ask(band, "band")
    estimate = thresholds.accuracy_estimate(sure, wrong, draws, cut)
    report = answers.report(
        confidence,
        agreement=stages.agreement(~wrong, draws.weight),
        thresholds={"accept_from": float(cut)},
        targets=(_target("accuracy", accuracy, estimate, decided=cut < np.inf),),
    )
    return CascadeResult(answers.overlay(label.copy()), report)


def _exact_classify(answers: stages.Answers, confidence: float, reason: str) -> CascadeResult:
    values = np.array(stages.ask_rest(answers) + [None], dtype=object)[:-1]
    return CascadeResult(values, stages.exact_report(answers, confidence, reason))


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
    on_stage: OnStage | None = None,
) -> CountResult:
    """How many records the oracle says yes to, within ± `error` x records (the half-width
    asked for) with probability >= `confidence`; the interval is what the sample supports."""
    check_error(error)
    stages.check_run(records, confidence, train_size, None)
    answers = stages.Answers(oracle, records, on_stage)
    rng = np.random.default_rng(seed)
    trained = stages.train_proxy(answers, fit, score, rng, train_size, min_records)
    if isinstance(trained, str):
        return _exact_count(answers, confidence, trained)
    _, scores = trained
    strata = counting.stratify(scores)
    planned = counting.planned_draws(strata, scores, error, confidence)
    if answers.share_if(planned) >= stages.FULL_SCAN_SHARE:
        return _exact_count(answers, confidence, stages.too_many_draws(planned, records))
    draws, interval = _count_rounds(answers, strata, planned, error, confidence, rng)
    if interval is None:
        return _exact_count(answers, confidence, stages.too_many_draws(len(draws.index), records))
    yes = np.array(answers.ask(draws.index, "validate"), dtype=bool)
    agreement = stages.agreement((scores[draws.index] >= 0.5) == yes, draws.weight)
    return CountResult(interval, answers.report(confidence, agreement, {}, ()))


def _count_rounds(answers, strata, planned, error, confidence, rng):
    """Draw, label, and draw more (TOP_UP of the draws so far) until the interval is within
    `error`; (draws, None) if the oracle would see `stages.FULL_SCAN_SHARE` of the records first."""
    draws = counting.draw(strata, planned, rng)
    while True:
        yes = np.array(answers.ask(draws.index, "validate"), dtype=bool)
        interval = counting.interval(yes, draws, answers.records, confidence, planned)
        if interval.half_width <= error * answers.records:
            return draws, interval
        more = int(np.ceil(counting.TOP_UP * len(draws.index)))
        if answers.share_if(more) >= stages.FULL_SCAN_SHARE:
            return draws, None
        extra = counting.draw(strata, more, rng)
        draws = sampling.Draws(
            np.concatenate([draws.index, extra.index]),
            np.concatenate([draws.weight, extra.weight]),
            draws.max_weight,
        )


def _exact_count(answers: stages.Answers, confidence: float, reason: str) -> CountResult:
    total = int(sum(bool(a) for a in stages.ask_rest(answers)))
    interval = counting.Interval(float(total), total, total, confidence)
    return CountResult(interval, stages.exact_report(answers, confidence, reason))
