"""The cheap proxy a cascade learns from the oracle's own answers: a linear model over hashed word
and character n-grams (the package's only scikit-learn import).

    proxy = train(texts, labels)          # the sub-model's answers for a sample of records
    scores = score(proxy, other_texts)    # a pure function: later one Ray task per chunk
    proxy = train(texts, labels, vectors) # also on the records' embeddings (one row each)
    scores = score(proxy, other_texts, other_vectors)

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
from dataclasses import dataclass, replace
from typing import Any

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
EMBEDDING_WEIGHT = 1.0
"""The embedding block's share of a record's feature norm beside the two n-gram blocks (each
of norm 1): its dimensions are standardised on the training sample, then scaled to this norm."""

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
    embedding: Standardise | None = None
    """Trained on embeddings too: how a vector is scaled, and its block's weight rows."""
    ngrams: bool = True
    """Reads the records' n-grams (False: embeddings only)."""

    @property
    def yes_no(self) -> bool:
        """A filter's proxy: its one score is the probability of True."""
        return len(self.classes) == 2 and all(c is False or c is True for c in self.classes)


@dataclass(frozen=True)
class Standardise:
    """An embedding block: the training vectors' per-dimension mean and spread, and the
    weight rows of the scaled dimensions (one per score column)."""

    center: np.ndarray
    spread: np.ndarray
    weights: np.ndarray | None = None

    @staticmethod
    def fit(vectors: np.ndarray) -> Standardise:
        spread = vectors.std(axis=0)
        return Standardise(vectors.mean(axis=0), np.where(spread > 1e-12, spread, 1.0))

    def block(self, vectors: np.ndarray) -> np.ndarray:
        scaled = (np.asarray(vectors, dtype=np.float64) - self.center) / self.spread
        return scaled * (EMBEDDING_WEIGHT / np.sqrt(scaled.shape[1]))


def features(texts: Sequence[str]) -> sparse.csr_matrix:
    """Hashed word 1-2-grams and character 3-5-grams of each text (first `MAX_CHARS`)."""
    clipped = [str(text)[:MAX_CHARS] for text in texts]
    return sparse.hstack([_WORDS.transform(clipped), _CHARS.transform(clipped)], format="csr")


def train(
    texts: Sequence[str],
    labels: Sequence[Hashable],
    vectors: np.ndarray | None = None,
    *,
    ngrams: bool = True,
) -> Proxy:
    """A proxy fitted to `labels` (the oracle's answers for `texts`); with `vectors` (one
    embedding per text), on them too (`ngrams=False`: on them alone).

    Raises `CannotTrain` if there are fewer than two distinct labels (or no texts)."""
    if len(texts) != len(labels) or (vectors is not None and len(vectors) != len(texts)):
        raise ValueError(f"train: {len(texts)} texts but {len(labels)} labels (or vectors)")
    classes = trainable(labels)
    codes = np.array([classes.index(label) for label in labels])
    embedding = None if vectors is None else Standardise.fit(np.asarray(vectors, np.float64))
    ngrams = ngrams or embedding is None
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
        model.fit(_matrix(texts, vectors, embedding, ngrams), codes)
    coef = np.asarray(model.coef_, dtype=np.float32)
    sparse_columns = 2 * N_FEATURES if ngrams else 0
    if embedding is not None:
        embedding = replace(embedding, weights=coef[:, sparse_columns:])
    return Proxy(
        classes,
        sparse.csr_matrix(coef[:, :sparse_columns]),
        np.asarray(model.intercept_, np.float32),
        embedding,
        ngrams,
    )


def _matrix(
    texts: Sequence[str], vectors: Any, embedding: Standardise | None, ngrams: bool
) -> sparse.csr_matrix:
    blocks = [features(texts)] if ngrams else []
    if embedding is not None:
        blocks.append(sparse.csr_matrix(embedding.block(vectors)))
    return sparse.hstack(blocks, format="csr")


def score(proxy: Proxy, texts: Sequence[str], vectors: np.ndarray | None = None) -> np.ndarray:
    """Scores for `texts` (and their `vectors`, for a proxy trained on embeddings): a filter's
    proxy gives shape (n,), the probability of True; a classifier's gives shape
    (n, len(proxy.classes)), each row summing to 1."""
    logits = np.zeros((len(texts), proxy.bias.shape[0])) + proxy.bias
    if proxy.ngrams:
        logits += np.asarray((features(texts) @ proxy.weights.T).todense())
    if proxy.embedding is not None:
        if vectors is None:
            raise ValueError("score: this proxy was trained on embeddings; pass `vectors`")
        assert proxy.embedding.weights is not None
        logits += proxy.embedding.block(vectors) @ proxy.embedding.weights.T.astype(np.float64)
    if len(proxy.classes) == 2:  # one weight row: the second class's log-odds
        second = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        return second if proxy.yes_no else np.column_stack([1.0 - second, second])
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
