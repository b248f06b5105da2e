"""Importance sampling by proxy score (numpy only): which records the oracle labels to check the
proxy, and the weight each draw carries so that weighted averages estimate population means.

Draws are independent, with replacement, from a design q over the N records:

    q(x) = u / N + (1 - u) * r(x) / Σ r,      weight w(x) = 1 / (N q(x)) <= 1 / u

so for any per-record quantity f, E[w(x) f(x)] over a draw is exactly the population mean of f.
`r` puts more draws where the decision is made (SUPG, Kang et al. 2020, samples by √score for a
filter); the uniform share u ("defensive" importance sampling, Hesterberg 1995) keeps every
record drawable and every weight at most 1/u, which is what bounds the draws for betting.py.
A record drawn twice is labelled once (the caller's cache) but counts as two draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNIFORM_SHARE = 0.5
"""u above: half the draws uniform, so a weight is at most 2 (and the bets in betting.py stay
large) while half still go where the proxy says the positives (or the doubts) are."""


@dataclass(frozen=True)
class Draws:
    """Records drawn from a design: `index` (with repeats, in draw order) and `weight` of each
    draw, w = 1 / (N q); `max_weight` bounds them all."""

    index: np.ndarray
    weight: np.ndarray
    max_weight: float


def design(relevance: np.ndarray, uniform_share: float = UNIFORM_SHARE) -> np.ndarray:
    """q over the records for a non-negative `relevance` r (all zero: uniform)."""
    relevance = np.asarray(relevance, dtype=float)
    n = len(relevance)
    total = relevance.sum()
    if total <= 0:
        return np.full(n, 1.0 / n)
    return uniform_share / n + (1.0 - uniform_share) * relevance / total


def draw(q: np.ndarray, n: int, rng: np.random.Generator) -> Draws:
    """`n` independent draws from `q`, with their weights."""
    index = rng.choice(len(q), size=n, replace=True, p=q)
    weight = 1.0 / (len(q) * q[index])
    return Draws(index, weight, float(1.0 / (len(q) * q.min())))


def filter_relevance(scores: np.ndarray) -> np.ndarray:
    """√score, as SUPG: more draws among likely positives, where recall and precision are
    decided, without starving the low scores."""
    return np.sqrt(np.clip(scores, 0.0, 1.0))


def doubt_relevance(confidence: np.ndarray) -> np.ndarray:
    """1 - the proxy's confidence: more draws where a classifier's label is in doubt."""
    return np.clip(1.0 - confidence, 0.0, 1.0)
