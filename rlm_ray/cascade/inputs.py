"""What a cascade accepts: the checks on its arguments (plain `ValueError`s naming the argument
and its allowed values, which the operators turn into `ConfigError` or a cell error), and
`CannotTrain`, the signal that a proxy cannot be learned and the oracle must answer every record.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any


class CannotTrain(ValueError):
    """The sample cannot train a proxy (one answer only, or no records): ask the oracle about
    every record instead, never guess."""


def check_target(name: str, value: float | None) -> None:
    """A recall, precision or accuracy target: None (not asked) or a number in (0, 1]."""
    if value is None:
        return
    if not _number(value) or not 0.0 < value <= 1.0:
        raise ValueError(f"`{name}` must be a number in (0, 1] (e.g. 0.9), got {value!r}")


def check_confidence(value: float) -> None:
    if not _number(value) or not 0.0 < value < 1.0:
        raise ValueError(f"`confidence` must be a number in (0, 1) (e.g. 0.95), got {value!r}")


def check_error(value: float) -> None:
    """A count's half-width as a share of the records: in (0, 0.5]."""
    if not _number(value) or not 0.0 < value <= 0.5:
        raise ValueError(
            f"`error` must be a number in (0, 0.5]: the interval's half-width as a share of "
            f"the records (0.01 = plus or minus 1 % of them), got {value!r}"
        )


def check_size(name: str, value: int | None, records: int) -> None:
    """A sample size: None (the default) or a whole number from 1 to the number of records."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a whole number >= 1, got {value!r}")
    if value > records:
        raise ValueError(
            f"`{name}` ({value:,}) is larger than the number of records ({records:,}); "
            "ask for a smaller sample, or run the exact operator"
        )


def answer_classes(labels: Sequence[Any]) -> tuple[Hashable, ...]:
    """The distinct answers a proxy learns, in a stable order: (False, True) for booleans,
    else sorted by repr (a proxy's score columns follow this order)."""
    distinct = set(labels)
    if distinct <= {False, True} and all(isinstance(x, bool) for x in distinct):
        return tuple(sorted(distinct))
    return tuple(sorted(distinct, key=repr))


def trainable(labels: Sequence[Any]) -> tuple[Hashable, ...]:
    """`answer_classes(labels)`, or `CannotTrain` if there are fewer than two."""
    classes = answer_classes(labels)
    if len(classes) < 2:
        given = "the answer " + repr(classes[0]) if classes else "no answer"
        raise CannotTrain(
            "the proxy needs at least two different answers to learn from; the oracle gave "
            f"{len(labels)} record(s) {given}"
        )
    return classes


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
