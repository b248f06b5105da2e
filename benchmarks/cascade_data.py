"""Records of known noise for the cascade benchmark and tests (no model needed).

Each record has a true class. Its text is `WORDS` words; each word is, with probability
`signal`, one of its class's own words, else one of the words all classes share. So a record
with no class word at all (probability (1 - signal)^WORDS) cannot be told apart by any proxy.
The scripted oracle answers from the true class, but gets `oracle_noise` of the records wrong
(a random other answer, fixed per record): a proxy cannot learn those, and the cascade's
guarantee is relative to the oracle's answers, wrong ones included.

    data = make_records(10_000, classes=2, seed=1)    # a filter: answers True / False
    data.texts, data.answers, data.oracle(indices)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORDS = 10
SIGNAL = 0.3
ORACLE_NOISE = 0.02
PREVALENCE = 0.3  # share of positives, for a filter
CLASS_SHARES = (0.4, 0.3, 0.2, 0.1)  # for a four-class classify
SHARED_WORDS = 400
CLASS_WORDS = 60
LABELS = ("billing", "access", "hardware", "other")

_SYLLABLES = "ka ri to ne su mo la pe vi do zu ha fe gi bo nu sa te yo mi".split()


@dataclass(frozen=True)
class Records:
    texts: list[str]
    truth: np.ndarray  # the true class index per record
    answers: np.ndarray  # what the scripted oracle answers per record (bool or label)

    def oracle(self, indices: np.ndarray) -> list:
        return self.answers[np.asarray(indices)].tolist()


def vocabulary(classes: int) -> tuple[list[str], list[list[str]]]:
    """(shared words, each class's words): fixed pseudo-words, the same in every run."""
    rng = np.random.default_rng(12345)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < SHARED_WORDS + classes * CLASS_WORDS:
        word = "".join(rng.choice(_SYLLABLES, size=rng.integers(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    shared = words[:SHARED_WORDS]
    own = [
        words[SHARED_WORDS + c * CLASS_WORDS : SHARED_WORDS + (c + 1) * CLASS_WORDS]
        for c in range(classes)
    ]
    return shared, own


def make_records(
    n: int,
    *,
    classes: int = 2,
    signal: float = SIGNAL,
    oracle_noise: float = ORACLE_NOISE,
    seed: int = 0,
) -> Records:
    """`n` records; `classes` = 2 is a filter (answers bool, `PREVALENCE` True), more is a
    classify over the first `classes` of `LABELS`."""
    rng = np.random.default_rng(seed)
    truth = true_classes(n, classes, rng)
    shared, own = vocabulary(classes)
    pick_own = rng.random((n, WORDS)) < signal
    shared_ids = rng.integers(0, len(shared), size=(n, WORDS))
    own_ids = rng.integers(0, CLASS_WORDS, size=(n, WORDS))
    table = np.array(shared + [w for ws in own for w in ws], dtype=object)
    ids = np.where(pick_own, len(shared) + truth[:, None] * CLASS_WORDS + own_ids, shared_ids)
    texts = [" ".join(row) for row in table[ids]]
    said = noisy(truth, classes, oracle_noise, rng)
    return Records(texts, truth, answer_values(said, classes))


def true_classes(n: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    if classes == 2:
        return (rng.random(n) < PREVALENCE).astype(int)
    shares = np.array(CLASS_SHARES[:classes]) / sum(CLASS_SHARES[:classes])
    return rng.choice(classes, size=n, p=shares)


def noisy(truth: np.ndarray, classes: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """The oracle's class: the true one, or for `noise` of the records another one."""
    wrong = rng.random(len(truth)) < noise
    shift = rng.integers(1, classes, size=len(truth))
    return np.where(wrong, (truth + shift) % classes, truth)


def answer_values(said: np.ndarray, classes: int) -> np.ndarray:
    if classes == 2:
        return said.astype(bool)
    return np.array(LABELS[:classes], dtype=object)[said]
