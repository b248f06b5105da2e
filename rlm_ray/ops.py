"""Semantic record operators from plain Python, outside any RLM: `map`, `filter`, `classify`,
`count`.

    from rlm_ray import ops
    kinds = ops.classify(tickets, ["billing", "access", "hardware"], model="openai/gpt-4o-mini")
    kinds.values, kinds.usage.calls, kinds.usage.cost_usd
    late = ops.count("the parcel came late", tickets, model=..., error=0.01)   # an estimate
    late.count, late.low, late.high, late.report.summary()

The same operators the REPL gives the model (`llm_map`, `llm_filter`, `llm_classify`;
record_ops.py): many records per model call, batches sized from the model's window, answers
parsed per record, unparsed batches split and asked again, identical records asked once. The
batches are model calls through the runtime's gateways on Ray (local Ray is started if none is
running, as `RLM` does), so `cache_dir`, the budgets (`max_sub_calls`, `max_total_tokens`,
`max_cost_usd`, `max_time_s`) and the rate limits work as in an RLM run.

Items: a list of str, a str (its non-empty lines), a corpus from `rlm_ray.load` or a
pyarrow.Table or path (`rlm_ray.load` reads it; one record per document: documents travel as
handles and are read where the model call is made).

Approximate answers (docs/cascades.md): `filter(..., recall=, precision=)`, `classify(...,
accuracy=)` and `count(..., error=)`, each with `confidence=` (default 0.95), run as a cascade
over many records: the model labels a sample, a cheap proxy learned from those answers decides
the records it is sure of (scored in parallel Ray tasks), and the targets hold with that
probability relative to the model's own answers. `report` says what the model saw. A target of
1 (`error=0`) is exact; `approximate=True` (or a dict of targets) makes the targets the default.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlm_ray.errors import ConfigError
from rlm_ray.front.blocking import run_blocking
from rlm_ray.front.inputs import check_context
from rlm_ray.front.settings import RunSettings, run_settings
from rlm_ray.operators import approximate, record_ops
from rlm_ray.rlm import load
from rlm_ray.types import Usage

__all__ = ["OpCount", "OpResult", "classify", "count", "filter", "map"]


@dataclass
class OpResult:
    """An operator's `values` (map: one answer per item; filter: the items kept; classify: one
    label per item, or "unknown"), what it spent (`usage`: calls, tokens, cost), its
    `warnings` (items cut to fit the window, items that never got a usable answer, a large
    share of "unknown" labels) and, for classify, how many items are `unknown`."""

    values: list[Any]
    usage: Usage
    warnings: list[str] = field(default_factory=list)
    report: Any = None
    """An approximate call's `cascade.CascadeReport` (records the model saw per stage, the
    proxy's agreement, thresholds, targets; `.summary()`); None for an exact call."""
    unknown: int = 0
    """classify: the items whose label is "unknown" (none fitted, or no answer named one)."""

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: Any) -> Any:
        return self.values[index]


def map(instruction: str, items: Any, *, model: str, **settings: Any) -> OpResult:
    """One answer (str) per item, in order: `instruction` applied to each item separately.

    `settings`: `api_base`, `api_key`, `llm_kwargs` (temperature, max_tokens, ...), `address`,
    `cache_dir`, `max_batch_items` (default 40) and the limits of `RLMConfig` (`max_sub_calls`,
    `max_total_tokens`, `max_cost_usd`, `max_time_s`, `requests_per_minute`,
    `context_window_tokens`, ...).
    """
    return _result(
        *_run(record_ops.map_op(_task("map", "instruction", instruction)), items, model, settings)
    )


def filter(
    condition: str,
    items: Any,
    *,
    model: str,
    recall: float | None = None,
    precision: float | None = None,
    confidence: float | None = None,
    **settings: Any,
) -> OpResult:
    """The items for which `condition` holds (the original items, in order). With `recall`
    and/or `precision` (in (0, 1]), a cascade whose kept items meet them with probability
    `confidence` (default 0.95), relative to the model's own answers. `settings`: as for
    `map`, and `approximate`."""
    op = record_ops.filter_op(_task("filter", "condition", condition))
    given = {"recall": recall, "precision": precision, "confidence": confidence}
    return _result(*_run(op, items, model, settings, given))


def classify(
    items: Any,
    labels: Sequence[str],
    *,
    model: str,
    accuracy: float | None = None,
    confidence: float | None = None,
    **settings: Any,
) -> OpResult:
    """One of `labels` per item, in order, or "unknown" when none fits (or no usable answer
    came back). With `accuracy` (in (0, 1]), a cascade whose labels agree with the model's on
    at least that share of the items, with probability `confidence`. `settings`: as for
    `filter`."""
    from rlm_ray.subcall_kinds.arguments import labels_arg

    try:
        op = record_ops.classify_op(*labels_arg(labels))
    except (TypeError, ValueError) as exc:
        raise _config_error(str(exc).replace("llm_classify", "ops.classify")) from None
    given = {"accuracy": accuracy, "confidence": confidence}
    return _result(*_run(op, items, model, settings, given))


@dataclass
class OpCount:
    """How many items meet a condition: `count` (the estimate, rounded), its interval `low`
    to `high` at `confidence` (an exact count: low == high == count, `exact`), the `usage`,
    `warnings` and, for an estimate, the cascade's `report`."""

    count: int
    low: int
    high: int
    confidence: float
    usage: Usage
    warnings: list[str] = field(default_factory=list)
    report: Any = None

    @property
    def exact(self) -> bool:
        return self.low == self.high

    def __int__(self) -> int:
        return self.count


def count(
    condition: str,
    items: Any,
    *,
    model: str,
    error: float | None = None,
    confidence: float | None = None,
    **settings: Any,
) -> OpCount:
    """How many items meet `condition`. Exact (every item asked) unless `error` > 0: the
    interval's half-width as a share of the items (0.01: plus or minus 1 %), which the
    interval meets with probability `confidence` (default 0.95), relative to the model's own
    answers. `error=0` counts exactly in a run whose `approximate=` would estimate.
    `settings`: as for `filter`."""
    op = record_ops.filter_op(_task("count", "condition", condition))
    given = {"error": error, "confidence": confidence}
    outcome, usage, cascaded = _run(op, items, model, settings, given, "count")
    if cascaded is None or cascaded.count is None:  # exact: every item asked
        kept = len(outcome.values)
        return OpCount(kept, kept, kept, 1.0, usage, outcome.warnings)
    c = cascaded.count
    estimate = min(c.high, max(c.low, round(c.estimate)))
    return OpCount(estimate, c.low, c.high, c.confidence, usage, outcome.warnings, cascaded.report)


# -- running -------------------------------------------------------------------------------------


def _run(
    op: record_ops.Operator,
    items: Any,
    model: str,
    settings: dict[str, Any],
    given: dict[str, float | None] | None = None,
    kind: str | None = None,
) -> tuple[record_ops.Outcome, Usage, Any]:
    """The operator run on Ray: (its outcome, the usage, its `cascades.Cascaded` or None)."""
    kind = kind or op.kind
    max_items = settings.pop("max_batch_items", record_ops.batch_items_for(model))
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
        raise _config_error(f"`max_batch_items` must be a positive int, got {max_items!r}")
    llm_kwargs = settings.pop("llm_kwargs", None)
    foreign = sorted(_RLM_ONLY & set(settings))
    if foreign:
        raise _config_error(f"{foreign} are settings of an RLM, not of rlm_ray.ops.{op.kind}")
    checked = run_settings(model, sub_llm_kwargs=llm_kwargs, llm_kwargs=llm_kwargs, **settings)
    targets = _targets(kind, checked, given or {})
    records = _records(items, op, checked)
    from rlm_ray.runtime import Launcher

    launcher = Launcher(checked)
    count = kind == "count"
    done, usage = run_blocking(
        lambda: launcher.run_operator(op, records, max_items, targets, count)
    )
    cascaded = None if targets is None or not records else done
    outcome = done if cascaded is None else done.outcome
    report = record_ops.unknown_report(outcome)  # a large share of "unknown": a warning too
    outcome.warnings += [line for line in report if line.startswith("warning: ")]
    for warning in outcome.warnings:
        warnings.warn(f"rlm_ray.ops.{kind}: {warning}", RuntimeWarning, stacklevel=4)
    return outcome, usage, cascaded


def _result(outcome: record_ops.Outcome, usage: Usage, cascaded: Any) -> OpResult:
    report = None if cascaded is None else cascaded.report
    return OpResult(outcome.values, usage, outcome.warnings, report, outcome.unknown)


def _targets(
    kind: str, settings: RunSettings, given: dict[str, float | None]
) -> approximate.Approximate | None:
    """The call's targets (its own, else the run's `approximate=`), checked before any Ray
    work; None for an exact call."""
    run = approximate.by_model(settings.config.approximate, settings.models.sub_model)
    try:
        return approximate.for_call(kind, run, f"ops.{kind}", **given)
    except ValueError as exc:
        raise _config_error(str(exc)) from None


# RLM arguments that mean nothing for an operator (its batches are plain model calls).
# (`models`: an operator's batches all go to `model`; no model code names one.)
_RLM_ONLY = {
    "sub_model",
    "sub_llm_kwargs",
    "models",
    "prompt",
    "on_progress",
    "max_depth",
    "max_iterations",
}


def _records(items: Any, op: record_ops.Operator, settings: RunSettings) -> list:
    from rlm_ray import corpus  # pyarrow: only when an operator runs

    fn = f"ops.{op.kind}"
    if isinstance(items, (os.PathLike, corpus.Corpus)) or _is_table(items):
        items = check_context(items)
        if not isinstance(items, corpus.Corpus):
            cfg = settings.config
            items = load(
                items, chunk_by=cfg.chunk_by, chunk_size=cfg.chunk_size, address=settings.address
            )
    try:
        return corpus.record_items(items, fn)
    except TypeError as exc:
        raise _config_error(str(exc)) from None


def _task(kind: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _config_error(f"ops.{kind}: `{name}` must be a non-empty str, got {value!r}")
    return value


def _config_error(message: str) -> ConfigError:
    return ConfigError(message)


def _is_table(value: Any) -> bool:
    return type(value).__module__.startswith("pyarrow") and type(value).__name__ == "Table"
