"""The cheap proxy a cascade learns from the oracle's own answers: a linear model over hashed word
and character n-grams (the package's only scikit-learn import).

    proxy = train(texts, labels)          # the sub-model's answers for a sample of records
    scores = score(proxy, other_texts)    # a pure function: later one Ray task per chunk

`train` raises `CannotTrain` when the sample holds one answer only: the caller then asks the
oracle about every record, never guesses. The hashing vectorizer keeps no vocabulary, so a
`Proxy` is the classifier's weights and its classes: it pickles small (tens or hundreds of kB)
and scores the same in any process. It never sees the question the oracle answered, only records and answers.

Scores: a filter's proxy (answers True/False) gives one column, the probability of True; a
classifier's proxy gives one column per class, in `proxy.classes` order. The probabilities
come from a logistic loss: "calibrated-ish" (right in rank, roughly right in level), which
is all the thresholds need; their guarantee never relies on calibration (docs/cascades.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import SGDClassifier

from rlm_ray.cascade.inputs import trainable

N_FEATURES = 2**18
"""Hash buckets per n-gram family. With a few hundred training records the n-grams seen number
in the thousands, so collisions are rare; the weights are stored as float32 sparse (only the
buckets a training text hit are non-zero): 61 kB for a filter trained on 500 records, 655 kB
for four labels on 2,000 (docs/benchmarks.md, "Cascades")."""
MAX_CHARS = 2_000
"""Characters of a record the proxy reads: the head of a long document is what it can learn
from cheaply, and it bounds the cost of scoring a million records."""
REGULARISATION = 1e-3
"""The linear model's L2 penalty (SGDClassifier's alpha): in an ad-hoc sweep on the cascade
benchmark's records, 1e-3 ranked best of 1e-5, 1e-4 and 1e-3 at 200 and 500 training records."""
EPOCHS = 50

_WORDS = HashingVectorizer(
    n_features=N_FEATURES,
    analyzer="word",
    ngram_range=(1, 2),
    alternate_sign=False,
    norm="l2",
    lowercase=True,
)
_CHARS = HashingVectorizer(
    n_features=N_FEATURES,
    analyzer="char_wb",
    ngram_range=(3, 5),
    alternate_sign=False,
    norm="l2",
    lowercase=True,
)


@dataclass(frozen=True)
class Proxy:
    """A trained proxy: `classes` are the oracle's answers it learned (a filter's are
    (False, True)), `weights` one row per score column (sparse, float32), `bias` per column."""

    classes: tuple[Hashable, ...]
    weights: sparse.csr_matrix
    bias: np.ndarray

    @property
    def yes_no(self) -> bool:
        """A filter's proxy: its one score is the probability of True."""
        return len(self.classes) == 2 and all(c is False or c is True for c in self.classes)


def features(texts: Sequence[str]) -> sparse.csr_matrix:
    """Hashed word 1-2-grams and character 3-5-grams of each text (first `MAX_CHARS`)."""
    clipped = [str(text)[:MAX_CHARS] for text in texts]
    return sparse.hstack([_WORDS.transform(clipped), _CHARS.transform(clipped)], format="csr")


def train(texts: Sequence[str], labels: Sequence[Hashable]) -> Proxy:
    """A proxy fitted to `labels` (the oracle's answers for `texts`).

    Raises `CannotTrain` if there are fewer than two distinct labels (or no texts)."""
    if len(texts) != len(labels):
        raise ValueError(f"train: {len(texts)} texts but {len(labels)} labels")
    classes = trainable(labels)
    codes = np.array([classes.index(label) for label in labels])
    # subtle: class_weight="balanced" so a rare answer still ranks; the thresholds are chosen
    # on the proxy's ranking, so its miscalibration costs oracle calls, never the guarantee.
    # Logistic loss by stochastic gradient: as good a ranking as LogisticRegression's solvers
    # here, in a tenth of the time (docs/cascades.md); random_state fixed: same sample, same proxy.
    model = SGDClassifier(
        loss="log_loss",
        alpha=REGULARISATION,
        class_weight="balanced",
        max_iter=EPOCHS,
        tol=1e-3,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # EPOCHS is plenty for ranking
        model.fit(features(texts), codes)
    coef = np.asarray(model.coef_, dtype=np.float32)
    return Proxy(classes, sparse.csr_matrix(coef), np.asarray(model.intercept_, np.float32))


def score(proxy: Proxy, texts: Sequence[str]) -> np.ndarray:
    """Scores for `texts`: a filter's proxy gives shape (n,), the probability of True; a
    classifier's gives shape (n, len(proxy.classes)), each row summing to 1."""
    logits = np.asarray((features(texts) @ proxy.weights.T).todense()) + proxy.bias
    if len(proxy.classes) == 2:  # one weight row: the second class's log-odds
        second = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        return second if proxy.yes_no else np.column_stack([1.0 - second, second])
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
