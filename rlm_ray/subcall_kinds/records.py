"""The record operators: `llm_map`, `llm_filter`, `llm_classify`, `llm_count`. Many records per
model call, in parallel (record_ops.py); `llm_filter`, `llm_classify` and `llm_count` answer by a
cascade when the call gives targets or the run is approximate (cascades.py, approximate.py)."""

from __future__ import annotations

from typing import Any

from rlm_ray import corpus
from rlm_ray.cascade.report import Count
from rlm_ray.core.futures import resolve
from rlm_ray.operators import approximate, record_ops
from rlm_ray.sandbox.boundary import plain
from rlm_ray.subcall_kinds import cascades
from rlm_ray.subcall_kinds.arguments import chosen_model, labels_arg, task_arg, window
from rlm_ray.subcall_kinds.declare import Host, PromptItem, SubCallKind


def llm_map(repl: Host, instruction: Any, items: Any, model: str | None = None) -> list[str]:
    """One answer per item, in order."""
    op = record_ops.map_op(task_arg("llm_map", "instruction", instruction))
    return _run(repl, op, items, model, None)


def llm_filter(
    repl: Host,
    condition: Any,
    items: Any,
    model: str | None = None,
    *,
    recall: float | None = None,
    precision: float | None = None,
    confidence: float | None = None,
) -> list:
    """The items for which `condition` holds, in order. With `recall` and/or `precision` (or
    in a run with `approximate=`), over many items: a cascade whose kept items meet them with
    probability `confidence`, relative to the sub-model's own answers."""
    op = record_ops.filter_op(task_arg("llm_filter", "condition", condition))
    targets = approximate.for_call(
        "filter", _run_targets(repl), "llm_filter", recall=recall, precision=precision,
        confidence=confidence,
    )  # fmt: skip
    return _run(repl, op, items, model, targets)


def llm_classify(
    repl: Host,
    items: Any,
    labels: Any,
    model: str | None = None,
    *,
    accuracy: float | None = None,
    confidence: float | None = None,
) -> list[str]:
    """One of `labels` per item, or "unknown". With `accuracy` (or in a run with
    `approximate=`), over many items: a cascade whose labels agree with the sub-model's on at
    least that share of the items, with probability `confidence`."""
    op = record_ops.classify_op(*labels_arg(labels))
    targets = approximate.for_call(
        "classify", _run_targets(repl), "llm_classify", accuracy=accuracy, confidence=confidence
    )
    return _run(repl, op, items, model, targets)


def llm_count(
    repl: Host,
    condition: Any,
    items: Any,
    model: str | None = None,
    *,
    error: float | None = None,
    confidence: float | None = None,
) -> Count:
    """How many items meet `condition`: an int with `.low`, `.high` (its interval at
    `.confidence`) and `.exact`. Exact (every item asked) unless `error` (the interval's
    half-width as a share of the items; 0: exact) or the run's `approximate=` asks for an
    estimate over many items."""
    op = record_ops.filter_op(task_arg("llm_count", "condition", condition))
    targets = approximate.for_call(
        "count", _run_targets(repl), "llm_count", error=error, confidence=confidence
    )
    model = chosen_model(repl, model)
    records = _records(op, items, "llm_count")
    if targets is None or not records:
        answers = _exact(repl, op, records, model).answers
        total = sum(1 for keep in answers if keep)
        return Count(total, total, total, 1.0)
    done = _cascade(repl, op, records, model, targets, "llm_count", count=True)
    interval = done.count
    assert interval is not None
    return Count(interval.estimate, interval.low, interval.high, interval.confidence)


# -- running -------------------------------------------------------------------------------------


def _run(
    repl: Host,
    op: record_ops.Operator,
    items: Any,
    model: Any,
    targets: approximate.Approximate | None,
) -> list:
    model = chosen_model(repl, model)
    records = _records(op, items, op.fn)
    if targets is None or not records:  # nothing to sample from: the exact path, which asks nothing
        outcome = _exact(repl, op, records, model)
    else:
        outcome = _cascade(repl, op, records, model, targets, op.fn).outcome
    if op.kind == "filter":
        return outcome.values
    return record_ops.RecordAnswers(outcome.values, records)


def _records(op: record_ops.Operator, items: Any, fn: str) -> list:
    records = corpus.record_items(resolve(items), fn)
    return plain(records, f"{fn}: `items`")  # what leaves the cell: exact data only


def _exact(
    repl: Host, op: record_ops.Operator, records: list, model: str | None
) -> record_ops.Outcome:
    outcome = cascades.exact_op(
        op, records, repl.subcalls, model, **_batching(repl, model)
    )  # fmt: skip
    _warn(repl, op.fn, outcome)
    return outcome


def _cascade(
    repl: Host,
    op: record_ops.Operator,
    records: list,
    model: str | None,
    targets: approximate.Approximate,
    fn: str,
    count: bool = False,
) -> cascades.Cascaded:
    done = cascades.run_cascade(
        op, records, repl.subcalls, model, targets, fn=fn, count=count, **_batching(repl, model)
    )
    _warn(repl, fn, done.outcome)
    trace = cascades.cascade_trace(fn, done.report, done.count)
    repl.subcalls.record_cascade(trace, done.report.proxy_decided)
    repl.show(trace.summary)
    return done


def _batching(repl: Host, model: str | None) -> dict[str, int]:
    name = model or repl.subcalls.default_model
    return {"window_tokens": window(repl, model), "max_items": record_ops.batch_items_for(name)}


def _warn(repl: Host, fn: str, outcome: record_ops.Outcome) -> None:
    """The operator's warnings, and how many items ended "unknown" (classify) in the cell."""
    for warning in outcome.warnings:
        repl.show(f"[{fn} warning] {warning}")
    for line in record_ops.unknown_report(outcome):
        repl.show(f"[{fn}] {line}")


def _run_targets(repl: Host) -> approximate.Approximate | None:
    return repl.settings.approximate


# -- the declarations ------------------------------------------------------------------------------

RECORDS = PromptItem(
    lead="Record operators, for questions about the meaning of many records (how many complain "
    "about X, which label is most common): ",
    tail=". `items` is a list of str, a str (its non-empty lines) or a corpus (its documents). "
    "They pack many items into each sub-LLM call, send the calls in parallel and ask identical "
    "items once: prefer them to regexes for semantic questions and to one `llm_query` per record.",
)
_BATCHES = ("start_llm",)
_CASCADE = ("start_llm", "train_proxy", "score_proxy")

LLM_MAP = SubCallKind(
    name="llm_map",
    call=llm_map,
    item=RECORDS,
    shown="`llm_map(instruction, items) -> list[str]` (one answer per item, in order)",
    sends=_BATCHES,
    traced=("llm",),
)
LLM_FILTER = SubCallKind(
    name="llm_filter",
    call=llm_filter,
    item=RECORDS,
    shown="`llm_filter(condition, items) -> list` (the items for which the condition holds, in "
    "order)",
    sends=_CASCADE,
    traced=("llm",),
)
LLM_CLASSIFY = SubCallKind(
    name="llm_classify",
    call=llm_classify,
    item=RECORDS,
    shown='`llm_classify(items, labels) -> list[str]` (one of `labels` per item, or "unknown"; '
    "`labels` may be a dict of label -> what it means)",
    sends=_CASCADE,
    traced=("llm",),
)
LLM_COUNT = SubCallKind(
    name="llm_count",
    call=llm_count,
    item=RECORDS,
    shown="`llm_count(condition, items) -> int` (how many items meet the condition)",
    sends=_CASCADE,
    traced=("llm",),
)
