"""How many records the oracle would say yes to, estimated from a sample stratified by proxy
score, with a confidence interval (numpy only; plan.py's `plan_count` drives it).

Strata are ranges of the proxy's score (quantiles, so equal numbers of records). The oracle
labels independent draws: a stratum h is chosen with probability π_h, then a record uniformly
inside it, so a draw's weight is w = (N_h / N) / π_h and E[w O] = (count) / N exactly (stratified
sampling with a random allocation). π_h follows Neyman's allocation, N_h sqrt(p_h (1 - p_h))
with p_h the proxy's mean score in the stratum, mixed half and half with the proportional
allocation N_h / N, so every weight is at most 2 (a wrong proxy costs draws, never validity).

The interval is betting.py's for the mean of w O in [0, max w], times N, rounded outward to
whole records. `error` is the half-width asked for, as a share of the number of records (0.01:
± 1 % of N): defined even when the count is zero, and the sample it needs does not depend on the
unknown count. The draws are planned from the proxy's own scores and topped up in rounds until
the interval is that narrow; the interval holds at whatever round the sampling stops
(betting.py: the bets never look ahead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlm_ray.cascade import betting
from rlm_ray.cascade.sampling import UNIFORM_SHARE, Draws

STRATA = 8
"""Score ranges. More strata separate sure records from doubtful ones more finely; past ~8
the proxy's scores on a few hundred training records do not rank finely enough to matter."""
TOP_UP = 0.5
"""Each further round draws this share of the draws so far."""
MIN_DRAWS = 200
"""A plan never starts below this: the variance the plan relies on is the proxy's guess."""


@dataclass(frozen=True)
class Strata:
    """Each record's stratum (`of`), the records per stratum (`sizes`) and the draw
    probabilities of the strata (`shares`, summing to 1)."""

    of: np.ndarray
    sizes: np.ndarray
    shares: np.ndarray

    def weights(self) -> np.ndarray:
        """w per stratum: (N_h / N) / π_h."""
        return (self.sizes / self.sizes.sum()) / self.shares


@dataclass(frozen=True)
class Interval:
    """A count with its interval: `estimate`, `low`, `high` (records), `confidence`."""

    estimate: float
    low: int
    high: int
    confidence: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def stratify(scores: np.ndarray, strata: int = STRATA) -> Strata:
    """Quantile strata of `scores` with Neyman allocation mixed with proportional allocation."""
    edges = np.unique(np.quantile(scores, np.linspace(0, 1, strata + 1))[1:-1])
    of = np.searchsorted(edges, scores, side="right")
    sizes = np.bincount(of, minlength=len(edges) + 1).astype(float)
    keep = sizes > 0
    of = np.cumsum(keep)[of] - 1  # renumber past empty strata
    sizes = sizes[keep]
    mean = np.bincount(of, weights=scores) / sizes
    spread = sizes * np.sqrt(np.clip(mean * (1 - mean), 0.0025, 0.25))
    proportional = sizes / sizes.sum()
    shares = UNIFORM_SHARE * proportional + (1 - UNIFORM_SHARE) * spread / spread.sum()
    return Strata(of, sizes, shares)


def draw(strata: Strata, n: int, rng: np.random.Generator) -> Draws:
    """`n` draws: a stratum by its share, then a record uniformly inside it."""
    chosen = rng.choice(len(strata.sizes), size=n, p=strata.shares)
    members = np.argsort(strata.of, kind="stable")
    starts = np.concatenate([[0], np.cumsum(strata.sizes)[:-1]]).astype(int)
    offsets = (rng.random(n) * strata.sizes[chosen]).astype(int)
    index = members[starts[chosen] + offsets]
    weights = strata.weights()
    return Draws(index, weights[chosen], float(weights.max()))


def planned_draws(strata: Strata, scores: np.ndarray, error: float, confidence: float) -> int:
    """Draws for a half-width of `error` (share of records) if the proxy's scores were the
    oracle's probabilities: the variance of w O times the betting test's 2 ln(2/δ) / error².
    What the proxy gets wrong, the rounds of `TOP_UP` make up."""
    p = np.clip(np.bincount(strata.of, weights=scores) / strata.sizes, 0.05, 0.95)
    w = strata.weights()
    mean = float((strata.shares * w * p).sum())
    variance = float((strata.shares * w * w * p).sum()) - mean**2
    need = 2 * math.log(2 / (1 - confidence)) * max(variance, 1e-4) / error**2
    return max(MIN_DRAWS, math.ceil(need))


def interval(
    yes: np.ndarray, draws: Draws, records: int, confidence: float, planned: int
) -> Interval:
    """The count (N times the mean of w O) and its interval, rounded outward to records."""
    y = draws.weight * yes.astype(float)
    low, high = betting.interval(y, 0.0, draws.max_weight, confidence, planned)
    return Interval(
        estimate=float(y.mean() * records),
        low=max(0, math.ceil(low * records - 1e-6)),
        high=min(records, math.floor(high * records + 1e-6)),
        confidence=confidence,
    )
