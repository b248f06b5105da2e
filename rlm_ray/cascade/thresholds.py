"""Thresholds on proxy scores that meet recall, precision or accuracy targets with a stated
confidence (numpy only; the estimator and its assumptions are in docs/cascades.md).

A filter cascade decides each record by its proxy score s:

    s <  reject_below             -> False, without asking the oracle
    s >= accept_from              -> True, without asking the oracle
    in between                    -> the oracle's answer

so, relative to the oracle's answers O, recall depends on `reject_below` only (every positive at
or above it is found) and the false positives come only from `accept_from`. Each threshold is
the last of a fixed sequence of candidates (safest first) whose risk a test certifies: the
"fixed-sequence" procedure, whose chance of certifying any threshold that misses its target is
at most the one test's α, because risk grows along the sequence (Bauer 1991; Angelopoulos et
al. 2021, "Learn then Test"). Each test is betting.py's, on importance-weighted draws
(sampling.py): the per-draw quantity z has population mean <= 0 exactly when the target holds.

    recall     z = w O (1[s < τ] - (1 - R))              mean <= 0  <=>  recall(τ) >= R
    precision  z = w ((1 - O) 1[s >= τ] - k O),  k = R (1 - P) / P
               mean <= 0  <=>  false positives <= k * positives; with recall >= R that gives
               precision >= P (R = 1 when no recall target: every positive is then found)
    accuracy   z = w (1[c >= τ and proxy label != O] - (1 - A)),  c the proxy's confidence

With both filter targets the failure probability δ = 1 - confidence is split in two halves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rlm_ray.cascade import betting
from rlm_ray.cascade.sampling import Draws

GRID_POINTS = 400
"""Candidate thresholds: quantiles of all records' scores, so one step moves at most 1/400 of
the records between the proxy and the oracle; the sequence may be long at no statistical cost
(only the first failed test matters), only numpy time (400 x draws)."""


@dataclass(frozen=True)
class Target:
    """A target the cascade was held to, and what the validation sample says of it.

    `estimate` is the importance-weighted estimate (over all records, as the thresholds decide
    them; nan without positives in the sample); `guaranteed` the value that holds with the
    stated confidence: the target, or 1.0 when the oracle decides that side alone."""

    name: str  # "recall" | "precision" | "accuracy"
    target: float
    estimate: float
    guaranteed: float


BLOCK = 25
"""Candidates tested together (numpy time and memory: BLOCK x draws per array)."""


def candidates(scores: np.ndarray, points: int = GRID_POINTS) -> np.ndarray:
    """Distinct quantiles of the records' scores, ascending, above the smallest score."""
    grid = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, points + 1)))
    return grid[grid > scores.min()]


def recall_threshold(
    scores: np.ndarray, positive: np.ndarray, draws: Draws, target: float, alpha: float
) -> float:
    """The highest `reject_below` certified to keep recall >= `target` (-inf: reject none).

    `positive`: the oracle's answer per draw (bool, in draw order)."""
    grid = candidates(scores)  # ascending: rejecting more is riskier
    s, o, w = scores[draws.index], positive.astype(float), draws.weight

    def z(taus: np.ndarray) -> np.ndarray:
        return w * o * ((s[None, :] < taus[:, None]) - (1.0 - target))

    return _last_certified(grid, z, draws.max_weight * target, alpha, default=-np.inf)


def precision_threshold(
    scores: np.ndarray,
    positive: np.ndarray,
    draws: Draws,
    target: float,
    alpha: float,
    recall_target: float = 1.0,
) -> float:
    """The lowest `accept_from` certified to keep precision >= `target` (inf: accept none),
    given that recall >= `recall_target` (1.0 when the oracle finds every positive)."""
    grid = candidates(scores)[::-1]  # descending: accepting more is riskier
    s, o, w = scores[draws.index], positive.astype(float), draws.weight
    k = recall_target * (1.0 - target) / target

    def z(taus: np.ndarray) -> np.ndarray:
        return w * ((1.0 - o) * (s[None, :] >= taus[:, None]) - k * o)

    return _last_certified(grid, z, draws.max_weight, alpha, default=np.inf)


def accuracy_threshold(
    confidence: np.ndarray, wrong: np.ndarray, draws: Draws, target: float, alpha: float
) -> float:
    """The lowest confidence from which the proxy's label is kept with accuracy >= `target`
    (inf: keep none). `wrong`: per draw, whether the proxy's label differs from the oracle's."""
    grid = candidates(confidence)[::-1]
    c, e, w = confidence[draws.index], wrong.astype(float), draws.weight

    def z(taus: np.ndarray) -> np.ndarray:
        return w * (e * (c[None, :] >= taus[:, None]) - (1.0 - target))

    return _last_certified(grid, z, draws.max_weight * target, alpha, default=np.inf)


def _last_certified(
    grid: np.ndarray,
    z: Callable[[np.ndarray], np.ndarray],
    hi: float,
    alpha: float,
    default: float,
) -> float:
    """The fixed sequence: the candidate before the first one whose draws `z(candidates)` do
    not certify a mean below 0 (`hi` bounds the draws). Tested a block at a time: the tests
    after the first failure do not matter."""
    for start in range(0, len(grid), BLOCK):
        passed = betting.certify_below(z(grid[start : start + BLOCK]), 0.0, hi, alpha)
        if not passed.all():
            last = start + int(np.argmin(passed)) - 1
            return float(grid[last]) if last >= 0 else default
    return float(grid[-1]) if len(grid) else default


# -- what the sample says of the chosen thresholds ------------------------------------------------


def filter_estimates(
    scores: np.ndarray, positive: np.ndarray, draws: Draws, reject_below: float, accept_from: float
) -> tuple[float, float]:
    """(recall, precision) estimated from the weighted draws for these thresholds, before the
    oracle answers the records between them (which only raises both)."""
    s, o, w = scores[draws.index], positive.astype(float), draws.weight
    found = w * o * (s >= min(reject_below, accept_from))
    false = w * (1.0 - o) * (s >= accept_from)
    positives = (w * o).sum()
    recall = found.sum() / positives if positives > 0 else float("nan")
    kept = found.sum() + false.sum()
    precision = found.sum() / kept if kept > 0 else float("nan")
    return float(recall), float(precision)


def accuracy_estimate(
    confidence: np.ndarray, wrong: np.ndarray, draws: Draws, accept_from: float
) -> float:
    """Accuracy estimated from the draws: 1 - the share of records the proxy labels wrong."""
    c, e, w = confidence[draws.index], wrong.astype(float), draws.weight
    return float(1.0 - (w * e * (c >= accept_from)).mean())
