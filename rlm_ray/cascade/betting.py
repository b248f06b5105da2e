"""Confidence bounds for the mean of bounded, independent draws, by betting (numpy only).

The cascade's thresholds and counts both come down to one question about a population mean μ,
seen through importance-weighted draws z_1..z_n that are independent with E[z_t] = μ and lie in
a known range [lo, hi]: is μ below (or above) a value m, with confidence 1 - α?

We answer it as a bettor would (Waudby-Smith & Ramdas, "Estimating means of bounded random
variables by betting", JRSS-B 2024): start with capital 1, bet a share λ_t of it on each draw
against the hypothesis, and reject the hypothesis once the capital reaches 1/α:

    certify μ < m:   K_n = Π_t (1 + λ_t (m - z_t)),   0 <= λ_t <= c / (hi - m)
    certify μ > m:   K_n = Π_t (1 + λ_t (z_t - m)),   0 <= λ_t <= c / (m - lo)

If the hypothesis holds (μ >= m, resp. μ <= m), each factor has mean <= 1 whatever λ_t was, as
long as λ_t depends only on earlier draws; K is then a non-negative supermartingale and Ville's
inequality gives P(K ever reaches 1/α) <= α. No normal approximation, no minimum sample size;
and the bound stays valid if the caller decides from the data to draw more (count.py does).

The bets are the "predictable plug-in" of the paper: λ_t = sqrt(2 ln(1/α) / (n σ̂²_{t-1})),
with σ̂² the variance of the earlier draws (shrunk toward the worst case at the start), capped
at c = 1/2 of what keeps the capital non-negative. Near the boundary this needs about
2 ln(1/α) σ²/(μ - m)² draws, what a one-sided z-test with z = sqrt(2 ln(1/α)) would (2.72
instead of 1.96 at α = 0.025): the price of a bound that holds without approximation.
"""

from __future__ import annotations

import numpy as np

BET_CAP = 0.5
"""c above: the largest share of the capital-preserving bet taken on one draw."""


def certify_below(
    z: np.ndarray, m: float, hi: float, alpha: float, planned: int | None = None
) -> np.ndarray:
    """Whether each row of draws `z` (shape (rows, n) or (n,)) shows its mean is below `m`
    with confidence 1 - `alpha`; `hi` bounds every draw from above. Rows are separate tests.
    `planned`: the number of draws the bets are sized for, fixed before drawing (default: as
    many as there are; pass it when more draws may follow on what these showed)."""
    return log_capital(m - np.atleast_2d(z), hi - m, alpha, planned) >= np.log(1.0 / alpha)


def certify_above(
    z: np.ndarray, m: float, lo: float, alpha: float, planned: int | None = None
) -> np.ndarray:
    """Whether each row of `z` shows its mean is above `m` with confidence 1 - `alpha`."""
    return log_capital(np.atleast_2d(z) - m, m - lo, alpha, planned) >= np.log(1.0 / alpha)


def log_capital(
    gain: np.ndarray, span: float, alpha: float, planned: int | None = None
) -> np.ndarray:
    """ln K_n per row for per-draw gains `gain` (z - m or m - z, each >= -`span`)."""
    gain = np.atleast_2d(np.asarray(gain, dtype=float))
    if gain.shape[1] == 0 or span <= 0:
        return np.zeros(gain.shape[0])
    bets = _plugin_bets(gain, span, alpha, planned or gain.shape[1])
    return np.log1p(np.minimum(bets, BET_CAP / span) * gain).sum(axis=1)


def interval(
    y: np.ndarray, lo: float, hi: float, confidence: float, planned: int | None = None
) -> tuple[float, float]:
    """A confidence interval for the mean of draws `y`, each in [lo, hi]: the values m that
    neither one-sided test (each at (1 - confidence) / 2) rejects. The capital is monotone in
    m, so each end is found by bisection."""
    alpha = (1.0 - confidence) / 2
    y = np.asarray(y, dtype=float)

    def rejected_low(m: float) -> bool:  # "μ <= m" rejected: m is too low
        return bool(m < hi and certify_above(y, m, lo, alpha, planned)[0])

    def rejected_high(m: float) -> bool:  # "μ >= m" rejected: m is too high
        return bool(m > lo and certify_below(y, m, hi, alpha, planned)[0])

    return _bisect(rejected_low, lo, hi, low_end=True), _bisect(rejected_high, lo, hi, False)


def _plugin_bets(gain: np.ndarray, span: float, alpha: float, planned: int) -> np.ndarray:
    """λ_t from draws 1..t-1 only (predictable): sqrt(2 ln(1/α) / (n σ̂²_{t-1})), n planned."""
    n = gain.shape[1]
    prior_var = span**2 / 4  # the largest variance a draw in a range of width ~span can have
    count = np.arange(n, dtype=float)  # draws before t
    sums = np.cumsum(gain, axis=1) - gain
    squares = np.cumsum(gain * gain, axis=1) - gain * gain
    mean = np.divide(sums, count, out=np.zeros_like(sums), where=count > 0)
    spread = np.maximum(squares - count * mean * mean, 0.0)
    variance = (prior_var + spread) / (count + 1)
    return np.sqrt(2 * np.log(1.0 / alpha) / (planned * np.maximum(variance, 1e-12)))


def _bisect(rejected, lo: float, hi: float, low_end: bool, steps: int = 60) -> float:
    """The boundary between rejected and kept values of m in [lo, hi]: for the low end the
    rejected values lie below it, for the high end above it."""
    inside, outside = (hi, lo) if low_end else (lo, hi)
    for _ in range(steps):
        middle = (inside + outside) / 2
        if rejected(middle):
            outside = middle
        else:
            inside = middle
    return inside
