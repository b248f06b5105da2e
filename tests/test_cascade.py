"""Cascades' statistics (rlm_ray/cascade/): targets met at the stated confidence, counts whose
interval covers the truth, the exact-scan fallbacks, bad arguments, determinism by seed.

The oracle is a scripted function of known noise and the proxy's scores are synthetic (a noisy
function of the oracle's answer), so these run in milliseconds; tests/test_cascade_proxy.py
runs the real hashed n-gram proxy end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import run_python

from rlm_ray.cascade import (
    CannotTrain,
    betting,
    plan_classify,
    plan_count,
    plan_filter,
)

LABELS = ("billing", "access", "hardware")


class Scripted:
    """Oracle answers fixed per record, a synthetic proxy whose scores separate them with
    `separation` (0: no better than chance), and a log of what the oracle was asked."""

    def __init__(self, records: int, seed: int, separation: float = 3.0, classes: int = 2):
        rng = np.random.default_rng(10_000 + seed)
        if classes == 2:
            self.answers = rng.random(records) < 0.3
            sign = np.where(self.answers, 1.0, -1.0)
            self.scores = 1 / (1 + np.exp(-(separation * sign + rng.normal(0, 1.5, records))))
        else:
            codes = rng.choice(classes, size=records, p=[0.5, 0.3, 0.2])
            self.answers = np.array(LABELS, dtype=object)[codes]
            logits = rng.normal(0, 1.5, (records, classes))
            logits[np.arange(records), codes] += separation
            self.scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        self.classes = tuple(LABELS[:classes]) if classes > 2 else (False, True)
        self.asked: list[int] = []

    def oracle(self, indices: np.ndarray) -> list:
        self.asked += [int(i) for i in indices]
        return self.answers[indices].tolist()

    def fit(self, indices: np.ndarray, labels: list) -> Scripted:
        if len(set(labels)) < 2:
            raise CannotTrain("one answer only")
        return self

    def score(self, proxy: Scripted, indices: np.ndarray) -> np.ndarray:
        return self.scores[indices]


SMALL = {"min_records": 1, "train_size": 200, "sample_size": 800}


def _filter(s: Scripted, records: int, seed: int, **kw):
    kw = {**SMALL, "recall": 0.9, "precision": 0.9, **kw}
    return plan_filter(records, s.oracle, s.fit, s.score, seed=seed, **kw)


def test_filter_meets_recall_and_precision_in_most_trials():
    met, shares = 0, []
    for seed in range(20):
        s = Scripted(2_000, seed)
        result = _filter(s, 2_000, seed)
        kept, truth = result.values, s.answers
        recall = (kept & truth).sum() / truth.sum()
        precision = (kept & truth).sum() / kept.sum()
        met += recall >= 0.9 and precision >= 0.9
        shares.append(result.report.oracle_share)
    assert met >= 17  # the target is >= 19 of 20 on average (confidence 0.95)
    assert np.mean(shares) < 0.8  # and the proxy decided a good share of the records


def test_every_record_the_oracle_saw_keeps_its_answer_and_stages_add_up():
    s = Scripted(3_000, 1)
    result = _filter(s, 3_000, 1)
    asked = np.array(sorted(set(s.asked)))
    assert len(s.asked) == len(asked)  # each record asked once
    assert (result.values[asked] == s.answers[asked]).all()
    report = result.report
    assert report.oracle_seen == len(asked)
    assert set(report.oracle_calls) == {"train", "validate", "band"}
    assert report.proxy_decided == 3_000 - len(asked)
    low, high = report.thresholds["reject_below"], report.thresholds["accept_from"]
    undecided = (s.scores >= low) & (s.scores < high)
    assert np.isin(np.flatnonzero(undecided), asked).all()  # the band went to the oracle
    assert "oracle saw" in report.summary() and "recall >= 0.9" in report.summary()
    assert 0.5 < report.agreement <= 1.0


def test_a_target_not_given_is_exact_on_its_side():
    s = Scripted(3_000, 2)
    only_recall = _filter(s, 3_000, 2, precision=None)
    assert only_recall.report.thresholds["accept_from"] == math.inf
    kept = only_recall.values
    assert not (kept & ~s.answers).any()  # every kept record is one the oracle said yes to
    assert only_recall.report.targets[1].guaranteed == 1.0
    only_precision = _filter(Scripted(3_000, 2), 3_000, 2, recall=None)
    assert only_precision.report.thresholds["reject_below"] == -math.inf
    assert (only_precision.values[s.answers]).all()  # every positive found


def test_classify_meets_accuracy_in_most_trials():
    met = 0
    for seed in range(20):
        s = Scripted(2_000, seed, classes=3)
        result = plan_classify(2_000, s.oracle, s.fit, s.score, accuracy=0.9, seed=seed, **SMALL)
        met += (result.values == s.answers).mean() >= 0.9
        assert not result.report.exact
    assert met >= 17


def test_count_interval_covers_the_truth_in_most_trials():
    covered, widths = 0, []
    for seed in range(20):
        s = Scripted(5_000, seed)
        result = plan_count(
            5_000, s.oracle, s.fit, s.score, error=0.05, seed=seed, min_records=1, train_size=200
        )
        got, truth = result.count, int(s.answers.sum())
        covered += got.low <= truth <= got.high
        widths.append(got.half_width)
        assert not result.report.exact
        assert got.low <= got.estimate <= got.high
    assert covered >= 18
    assert max(widths) <= 0.05 * 5_000  # the half-width asked for


def test_count_too_precise_for_a_sample_is_counted_exactly():
    s = Scripted(2_000, 3)
    result = plan_count(2_000, s.oracle, s.fit, s.score, error=0.001, min_records=1)
    assert result.count.low == result.count.high == int(s.answers.sum())
    assert "exact count" in result.report.reason
    assert result.report.oracle_seen == 2_000


def test_a_proxy_that_cannot_train_means_an_exact_scan():
    s = Scripted(2_000, 4)
    s.answers[:] = False  # the oracle says no to everything
    result = _filter(s, 2_000, 4)
    assert "could not be trained" in result.report.reason
    assert result.report.exact and result.report.oracle_seen == 2_000
    assert not result.values.any()


def test_a_proxy_that_cannot_separate_means_an_exact_scan():
    s = Scripted(3_000, 5, separation=0.0)
    result = _filter(s, 3_000, 5)
    assert "could not separate" in result.report.reason
    assert (result.values == s.answers).all()
    assert result.report.oracle_calls["exact"] > 0


def test_few_records_are_scanned_exactly_by_default():
    s = Scripted(300, 6)
    result = plan_filter(300, s.oracle, s.fit, s.score, recall=0.9)
    assert "fewer than" in result.report.reason
    assert (result.values == s.answers).all()


def test_same_seed_same_result_other_seed_other_sample():
    first, again, other = (Scripted(3_000, 7) for _ in range(3))
    a, b, c = (_filter(x, 3_000, seed) for x, seed in ((first, 11), (again, 11), (other, 12)))
    assert (a.values == b.values).all() and a.report == b.report
    assert first.asked == again.asked
    assert first.asked != other.asked


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"recall": 0.0}, "`recall` must be a number in (0, 1]"),
        ({"recall": 1.5}, "`recall` must be a number in (0, 1]"),
        ({"precision": float("nan")}, "`precision` must be"),
        ({"precision": True}, "`precision` must be"),
        ({"recall": None, "precision": None}, "give `recall`, `precision` or both"),
        ({"confidence": 1.0}, "`confidence` must be a number in (0, 1)"),
        ({"confidence": 0}, "`confidence` must be"),
        ({"sample_size": 2_001}, "`sample_size` (2,001) is larger than the number of records"),
        ({"train_size": 5_000}, "`train_size` (5,000) is larger"),
        ({"train_size": 0}, "`train_size` must be a whole number >= 1"),
    ],
)
def test_bad_filter_arguments_are_clear_errors(kw, message):
    s = Scripted(2_000, 0)
    with pytest.raises(ValueError) as caught:
        _filter(s, 2_000, 0, **kw)
    assert message in str(caught.value)
    assert s.asked == []  # nothing was asked before the check


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: plan_classify(100, s.oracle, s.fit, s.score, accuracy=1.2), "`accuracy`"),
        (lambda s: plan_count(100, s.oracle, s.fit, s.score, error=0), "`error` must be"),
        (lambda s: plan_count(100, s.oracle, s.fit, s.score, error=0.7), "`error` must be"),
        (lambda s: plan_count(0, s.oracle, s.fit, s.score), "`records` must be"),
    ],
)
def test_bad_classify_and_count_arguments_are_clear_errors(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(Scripted(100, 0))


def test_betting_interval_covers_a_bernoulli_mean():
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(40):
        draws = (rng.random(400) < 0.2).astype(float)
        low, high = betting.interval(draws, 0.0, 1.0, 0.95)
        covered += low <= 0.2 <= high
        assert low <= draws.mean() <= high
    assert covered >= 37


def test_betting_certifies_only_what_the_draws_show():
    rng = np.random.default_rng(1)
    low_mean = rng.random(2_000) * 0.6  # mean 0.3
    assert betting.certify_below(low_mean, 0.4, 1.0, 0.05)[0]
    assert not betting.certify_below(low_mean, 0.29, 1.0, 0.05)[0]
    assert not betting.certify_below(low_mean[:3], 0.4, 1.0, 0.05)[0]  # too few draws


def test_the_statistics_load_without_scikit_learn_ray_or_litellm():
    probe = (
        "import sys, rlm_ray.cascade\n"
        "print(*(m for m in ('sklearn', 'ray', 'litellm') if m in sys.modules))"
    )
    out = run_python("-c", probe, timeout_s=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == []
