"""The cascade's proxy (rlm_ray/cascade/proxy.py): hashed word and character n-grams and a linear
model, trained on an oracle's answers; and one cascade through it end to end."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import cascade_data  # noqa: E402

from rlm_ray.cascade import CannotTrain, plan_filter, proxy  # noqa: E402


@pytest.fixture(scope="module")
def records():
    return cascade_data.make_records(3_000, seed=3)


def test_filter_proxy_ranks_positives_above_negatives(records):
    p = proxy.train(records.texts[:400], records.answers[:400].tolist())
    scores = proxy.score(p, records.texts[400:])
    truth = records.answers[400:]
    assert scores.shape == (2_600,) and ((0 <= scores) & (scores <= 1)).all()
    assert p.classes == (False, True)
    assert scores[truth].mean() > scores[~truth].mean() + 0.3
    assert ((scores >= 0.5) == truth).mean() > 0.85


def test_classify_proxy_gives_a_probability_per_label():
    data = cascade_data.make_records(1_500, classes=4, seed=4)
    p = proxy.train(data.texts[:500], data.answers[:500].tolist())
    scores = proxy.score(p, data.texts[500:])
    assert scores.shape == (1_000, 4)
    assert np.allclose(scores.sum(axis=1), 1.0)
    picked = np.array(p.classes, dtype=object)[scores.argmax(axis=1)]
    assert (picked == data.answers[500:]).mean() > 0.6


def test_two_labels_that_are_not_yes_no_give_two_columns():
    texts = ["refund my invoice", "cannot log in", "invoice overcharged", "password reset fails"]
    p = proxy.train(texts * 5, ["billing", "access", "billing", "access"] * 5)
    scores = proxy.score(p, ["an invoice question", "login broken"])
    assert scores.shape == (2, 2) and p.classes == ("access", "billing")
    assert scores[0, 1] > 0.5 > scores[1, 1]


def test_proxy_pickles_small_and_scores_the_same(records):
    p = proxy.train(records.texts[:500], records.answers[:500].tolist())
    blob = pickle.dumps(p)
    assert len(blob) < 200_000
    again = pickle.loads(blob)
    assert np.array_equal(
        proxy.score(again, records.texts[:50]), proxy.score(p, records.texts[:50])
    )


def test_one_answer_only_cannot_train():
    with pytest.raises(CannotTrain, match="at least two different answers"):
        proxy.train(["a", "b", "c"], [True, True, True])
    with pytest.raises(CannotTrain):
        proxy.train([], [])


def test_same_sample_same_proxy(records):
    a = proxy.train(records.texts[:300], records.answers[:300].tolist())
    b = proxy.train(records.texts[:300], records.answers[:300].tolist())
    assert np.array_equal(proxy.score(a, records.texts[:100]), proxy.score(b, records.texts[:100]))


def test_filter_cascade_through_the_real_proxy(records):
    texts, answers = records.texts, records.answers
    asked: list[int] = []

    def oracle(indices):
        asked.extend(int(i) for i in indices)
        return answers[indices].tolist()

    result = plan_filter(
        3_000,
        oracle,
        lambda idx, labels: proxy.train([texts[i] for i in idx], labels),
        lambda p, idx: proxy.score(p, [texts[i] for i in idx]),
        recall=0.9,
        precision=0.9,
        min_records=1,
        train_size=300,
        sample_size=900,
    )
    kept = result.values
    assert not result.report.exact and result.report.proxy_decided > 600
    assert (kept & answers).sum() / answers.sum() >= 0.9
    assert (kept & answers).sum() / kept.sum() >= 0.9
    assert len(asked) == len(set(asked)) == result.report.oracle_seen


def test_a_proxy_learns_from_embeddings_what_the_words_do_not_say():
    rng = np.random.default_rng(5)
    answers = rng.random(1_200) < 0.3
    texts = [f"record {i} {rng.integers(10**9)}" for i in range(1_200)]  # no signal in words
    vectors = rng.normal(size=(1_200, 16)) + np.outer(answers, np.eye(16)[3]) * 1.5
    labels = answers.tolist()
    both = proxy.train(texts[:400], labels[:400], vectors[:400])
    alone = proxy.train(texts[:400], labels[:400], vectors[:400], ngrams=False)
    words = proxy.train(texts[:400], labels[:400])
    for p in (both, alone):
        scores = proxy.score(p, texts[400:], vectors[400:])
        assert ((scores >= 0.5) == answers[400:]).mean() > 0.75
    assert ((proxy.score(words, texts[400:]) >= 0.5) == answers[400:]).mean() < 0.75
    assert len(pickle.dumps(alone)) < 10_000  # no n-gram weights at all
    with pytest.raises(ValueError, match="pass `vectors`"):
        proxy.score(both, texts[400:])
