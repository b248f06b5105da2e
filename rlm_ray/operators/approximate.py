"""When a record operator may answer by a cascade, and to which targets (docs/cascades.md).

    RLM(..., approximate=True)          operator calls without targets of their own use
                                        `DEFAULT` (recall, precision and accuracy 0.9, counts
                                        within 2 % of the records, at confidence 0.95)
    RLM(..., approximate={"recall": 0.95, "confidence": 0.99})    other defaults
    RLM(..., approximate={"embedding_model": "openai/text-embedding-3-small"})
                                        the proxy also learns from the records' embeddings
                                        (rlm_ray/models/embeddings.py; without: n-grams only)
    RLM(..., approximate=False)         exact operators (asked about every record)
    RLM(...)                            `None`: by sub-model (`by_model`)

    llm_filter(c, items, recall=0.9)    a call's own targets win over the run's; a target of 1
    llm_count(c, items, error=0)        (0 for `error`) is exact: every record asked

Standard library only: `RLMConfig` checks `approximate=` at construction, before any Ray work.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from rlm_ray.errors import ConfigError
from rlm_ray.local.local_model import is_local

TARGETS = {"filter": ("recall", "precision"), "classify": ("accuracy",), "count": ("error",)}
"""The targets each operator takes (`map` takes none: it is always exact)."""


@dataclass(frozen=True)
class Approximate:
    """Targets for a cascade: each holds with probability `confidence`, relative to the
    sub-model's own answers (what an exact scan would have said). None: that side is exact."""

    recall: float | None = None
    precision: float | None = None
    accuracy: float | None = None
    error: float | None = None
    """A count's interval half-width, as a share of the records (0.02: plus or minus 2 %)."""
    confidence: float = 0.95
    min_records: int | None = None
    """The fewest distinct records a cascade runs on (fewer: exact); None: the sub-model's."""
    embedding_model: str | None = None
    """A model whose embeddings of the records the proxy learns from, with their n-grams
    (docs/cascades.md, "Embeddings"); None: n-grams only. Set by the run, never by model code."""

    def for_operator(self, kind: str) -> Approximate | None:
        """These targets as one operator uses them; None when all of them are exact."""
        names = TARGETS.get(kind, ())
        exact = {"error": 0.0}
        if all(getattr(self, n) in (None, exact.get(n, 1.0)) for n in names):
            return None
        return self


DEFAULT = Approximate(recall=0.9, precision=0.9, accuracy=0.9, error=0.02)


def setting(value: Any) -> Approximate | bool | None:
    """`approximate=` checked: None, True, False, or an `Approximate` made from a dict of
    `DEFAULT`'s fields (the rest keep `DEFAULT`'s values). Raises `ConfigError`."""
    if value is None or isinstance(value, (bool, Approximate)):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(
            "`approximate` must be True, False, None or a dict of targets (keys: "
            f"{', '.join(_NAMES)}), got {value!r}"
        )
    unknown = sorted(set(value) - set(_NAMES))
    if unknown:
        raise ConfigError(f"`approximate`: unknown key(s) {unknown}; known: {list(_NAMES)}")
    try:
        return check(replace(DEFAULT, **value))
    except ValueError as exc:
        raise ConfigError(f"`approximate`: {exc}") from None


def embedding_model(value: Approximate | bool | None) -> str | None:
    """The embedding model a run's `approximate=` setting configures (None: none)."""
    return value.embedding_model if isinstance(value, Approximate) else None


def by_model(value: Approximate | bool | None, sub_model: str) -> Approximate | None:
    """What a run's operators default to: `setting`'s value, with None decided by the
    sub-model (`LOCAL_DEFAULT` for rlm-ray's own local models, else exact)."""
    if value is None:
        return LOCAL_DEFAULT if is_local(sub_model) else None
    if value is True:
        return DEFAULT
    return value or None


LOCAL_DEFAULT: Approximate | None = None
"""What a run whose sub-model is rlm-ray's own local model defaults to (docs/benchmarks.md,
"Cascades with the local model"): exact. A cascade's samples cost about as many calls as the
300- and 3,000-record scans it would replace (see there)."""


def for_call(
    kind: str, run: Approximate | None, fn: str, **given: float | None
) -> Approximate | None:
    """The targets of one operator call: its own (`given`, with the run's `confidence` and
    `min_records` unless given), else the run's; None for an exact call. Raises `ValueError`
    naming `fn` for a bad target."""
    asked: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    base = run or DEFAULT
    if any(name in asked for name in TARGETS.get(kind, ())):
        targets = Approximate(
            confidence=base.confidence,
            min_records=base.min_records,
            embedding_model=base.embedding_model,
        )
    elif run is not None:
        targets = run
    else:
        return None
    try:
        targets = check(replace(targets, **asked))
    except ValueError as exc:
        raise ValueError(f"{fn}: {exc}") from None
    return targets.for_operator(kind)


def check(targets: Approximate) -> Approximate:
    """`targets`, if every value is allowed; else `ValueError` naming the first bad one."""
    for name in ("recall", "precision", "accuracy"):
        value = getattr(targets, name)
        if value is not None and not (_number(value) and 0.0 < value <= 1.0):
            raise ValueError(f"`{name}` must be a number in (0, 1] (e.g. 0.9), got {value!r}")
    error = targets.error
    if error is not None and not (_number(error) and 0.0 <= error <= 0.5):
        raise ValueError(
            "`error` must be a number in [0, 0.5]: the interval's half-width as a share of the "
            f"records (0.01 = plus or minus 1 % of them; 0 = an exact count), got {error!r}"
        )
    confidence = targets.confidence
    if not (_number(confidence) and 0.0 < confidence < 1.0):
        raise ValueError(f"`confidence` must be a number in (0, 1) (e.g. 0.95), got {confidence!r}")
    low = targets.min_records
    if low is not None and (isinstance(low, bool) or not isinstance(low, int) or low < 1):
        raise ValueError(f"`min_records` must be a whole number >= 1, got {low!r}")
    model = targets.embedding_model
    if model is not None and not (isinstance(model, str) and model.strip()):
        raise ValueError(
            "`embedding_model` must be a model string (e.g. 'openai/text-embedding-3-small'), "
            f"got {model!r}"
        )
    return targets


_NAMES = tuple(f.name for f in fields(Approximate))


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
