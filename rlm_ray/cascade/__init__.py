"""Operator cascades with stated accuracy targets (issue 29): a proxy learned from the oracle's
own answers decides the records it is sure of, the oracle the rest, with recall, precision or
accuracy targets met with a stated probability, and counts with a confidence interval.

    plan.py        the orchestration, pure over injected callables (oracle, fit, score, seed)
    proxy.py       the proxy: hashed word and character n-grams + logistic regression (sklearn)
    sampling.py    importance-weighted validation draws by proxy score
    betting.py     finite-sample confidence bounds for bounded means
    thresholds.py  thresholds meeting recall / precision / accuracy targets
    count.py       stratified count estimate with its interval
    report.py      what a cascade reports: oracle calls per stage, agreement, thresholds, targets
    inputs.py      argument checks, and `CannotTrain`

This package imports neither Ray nor litellm; only proxy.py imports scikit-learn, and nothing
here imports proxy.py (the caller passes `fit`/`score`), so the statistics load without it.
The method, its assumptions and its measurements: docs/cascades.md.
"""

from rlm_ray.cascade.count import Interval
from rlm_ray.cascade.inputs import CannotTrain
from rlm_ray.cascade.plan import MIN_RECORDS, plan_classify, plan_count, plan_filter
from rlm_ray.cascade.report import CascadeReport, CascadeResult, CountResult
from rlm_ray.cascade.thresholds import Target

__all__ = [
    "MIN_RECORDS",
    "CannotTrain",
    "CascadeReport",
    "CascadeResult",
    "CountResult",
    "Interval",
    "Target",
    "plan_classify",
    "plan_count",
    "plan_filter",
]
