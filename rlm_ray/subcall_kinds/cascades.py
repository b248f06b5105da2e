"""Record operators as cascades (issue 29, docs/cascades.md): the plans of rlm_ray/cascade/ with
the operator's own batches as the oracle, and the proxy trained and scored by the backend.

    exact_op(op, records, calls, model, ...)               every record asked (record_ops.run)
    run_cascade(op, records, calls, model, targets, ...)   a sample asked, a proxy for the rest

The oracle is `exact_op` over the records a stage asks: its batches are sub-calls through
`SubCalls` like any other (call cache, budgets, rate limits, trace, cancellation). The proxy is
trained, and scores every record, where the backend runs work (`Backend.train_proxy` /
`score_proxy`: Ray tasks with the proxy passed by handle, a corpus's documents read inside
them). Plans run over the distinct records, as an exact scan asks identical records once; the
seed is fixed, so the same answers give the same samples and decisions (a replay agrees).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlm_ray import corpus
from rlm_ray.cascade import (
    MIN_RECORDS,
    CascadeReport,
    Interval,
    plan_classify,
    plan_count,
    plan_filter,
)
from rlm_ray.cascade.inputs import trainable
from rlm_ray.cascade.report import STAGES
from rlm_ray.core.futures import resolve
from rlm_ray.core.subcalls import SubCalls
from rlm_ray.errors import SubCallError
from rlm_ray.local.local_model import is_local
from rlm_ray.operators import record_ops
from rlm_ray.operators.approximate import Approximate
from rlm_ray.types import CascadeTrace

SEED = 0


@dataclass(frozen=True)
class Regime:
    """How large a cascade's samples are for one kind of oracle: the fewest distinct records
    it runs on, and its training and validation samples as (share of the records, least,
    most); None: the core's (rlm_ray/cascade/stages.py)."""

    min_records: int
    train: tuple[float, int, int] | None = None
    sample: tuple[float, int, int] | None = None

    def sizes(self, records: int) -> tuple[int | None, int | None]:
        return _size(self.train, records), _size(self.sample, records)


HOSTED = Regime(MIN_RECORDS)
"""A hosted sub-model answers a whole scan in one parallel round: a cascade's three rounds pay
only when it saves most calls, from about 5,000 records (docs/cascades.md)."""
LOCAL = Regime(1_000, train=(0.05, 150, 500), sample=(0.05, 150, 1_500))
"""rlm-ray's own local model answers one record at a time (~0.7 s each on two cores), so
time follows the oracle's calls and a cascade pays as soon as it saves calls: smaller samples,
from 1,000 records. Chosen on the quality benchmark's records by simulation (docs/benchmarks.md,
"Cascades with the local model"): at 3,000 records, 150 training answers and 150 validation
draws left the oracle the fewest records at accuracy 0.9, confidence 0.95."""


def regime(model: str) -> Regime:
    return LOCAL if is_local(model) else HOSTED


@dataclass
class Cascaded:
    """An approximate operator's outcome (one answer per record, as an exact scan's), its
    cascade's report, and for a count its interval."""

    outcome: record_ops.Outcome
    report: CascadeReport
    count: Interval | None = None


def exact_op(
    op: record_ops.Operator,
    records: list,
    calls: SubCalls,
    model: str | None,
    *,
    window_tokens: int,
    max_items: int = record_ops.MAX_BATCH_ITEMS,
) -> record_ops.Outcome:
    """A record operator whose batches are sub-calls: each round's batches all start through
    `calls` (cache, budgets, rate limits, trace, progress), then are resolved together."""

    def ask(batch_prompts: list) -> list[str]:
        started = [calls.llm(prompt, model) for prompt in batch_prompts]
        try:
            return [str(text) for text in resolve(started)]
        except SubCallError as exc:
            raise SubCallError(f"{op.fn}: {exc}") from None

    keys = [corpus.record_key(r) for r in records]
    return record_ops.run(op, records, keys, ask, window_tokens=window_tokens, max_items=max_items)


def run_cascade(
    op: record_ops.Operator,
    records: list,
    calls: SubCalls,
    model: str | None,
    targets: Approximate,
    *,
    fn: str,
    window_tokens: int,
    max_items: int = record_ops.MAX_BATCH_ITEMS,
    count: bool = False,
) -> Cascaded:
    """`op` over `records` by a cascade held to `targets` (`count`: a filter's count with an
    interval). `fn` names the operator in progress lines and in the trace."""
    firsts, where = record_ops.distinct([corpus.record_key(r) for r in records])
    distinct = [records[i] for i in firsts]
    oracle = _Oracle(op, distinct, calls, model, window_tokens, max_items)
    proxy = _Proxy(distinct, calls, fn, targets.embedding_model, oracle.warnings)
    plan = _plan_args(targets, model or calls.default_model, len(distinct))
    plan["on_stage"] = _stage_notes(calls, fn)
    n = len(distinct)
    interval = None
    try:
        if count:
            del plan["sample_size"]  # a count sizes its own draws from the interval asked for
            error = targets.error or 0.02
            counted = plan_count(n, oracle, proxy.fit, proxy.score, error=error, **plan)
            report, interval = counted.report, counted.count
            answers = np.zeros(n, dtype=bool)  # a count decides no record
        elif op.kind == "filter":
            recall, precision = targets.recall, targets.precision
            result = plan_filter(
                n, oracle, proxy.fit, proxy.score, recall=recall, precision=precision, **plan
            )
            report, answers = result.report, result.values
        else:
            accuracy = targets.accuracy or 1.0
            result = plan_classify(n, oracle, proxy.fit, proxy.score, accuracy=accuracy, **plan)
            report, answers = result.report, result.values
    finally:
        calls.note("")
    per_record = [_plain(answers[where[i]]) for i in range(len(records))]
    outcome = record_ops.Outcome(_values(op, records, per_record), oracle.warnings)
    outcome.answers = per_record
    if op.kind == "classify":
        outcome.unknown = outcome.values.count(record_ops.UNKNOWN)
    return Cascaded(outcome, report, interval)


def _plan_args(targets: Approximate, model: str, records: int) -> dict[str, Any]:
    chosen = regime(model)
    train_size, sample_size = chosen.sizes(records)
    low = targets.min_records if targets.min_records is not None else chosen.min_records
    return {
        "confidence": targets.confidence,
        "seed": SEED,
        "train_size": train_size,
        "sample_size": sample_size,
        "min_records": low,
    }


class _Oracle:
    """The oracle of a cascade: the exact operator over the records a stage asks about."""

    def __init__(self, op, records, calls, model, window_tokens, max_items) -> None:
        self.op, self.records, self.calls, self.model = op, records, calls, model
        self.window_tokens, self.max_items = window_tokens, max_items
        self.warnings: list[str] = []

    def __call__(self, indices: np.ndarray) -> list[Hashable]:
        asked = [self.records[i] for i in indices.tolist()]
        outcome = exact_op(
            self.op,
            asked,
            self.calls,
            self.model,
            window_tokens=self.window_tokens,
            max_items=self.max_items,
        )
        self.warnings += outcome.warnings
        return outcome.answers


@dataclass
class _Trained:
    """A proxy as the plans see it: its classes (for a classifier's score columns) and the
    backend's handle."""

    classes: tuple[Hashable, ...]
    handle: Any


class _Proxy:
    """`fit` and `score` for the plans, through the backend (`SubCalls.train_proxy`); with an
    `embedding_model`, on the records' embeddings too (embedded once, at the first `fit`: if
    that fails, the proxy reads n-grams alone and `warnings` gets one line saying why)."""

    def __init__(
        self, records: list, calls: SubCalls, fn: str, embedding_model: str | None, warnings: list
    ) -> None:
        self.records, self.calls, self.fn = records, calls, fn
        self.embedding_model, self.warnings = embedding_model, warnings
        self.embedded: Any = None

    def fit(self, indices: np.ndarray, labels: list) -> _Trained:
        classes = trainable(labels)  # one answer only: CannotTrain, the plan scans exactly
        self._embed()
        self.calls.note(f"{self.fn}: training the proxy on {len(indices):,} answers")
        chosen = [self.records[i] for i in indices.tolist()]
        vectors = self._rows(indices)
        return _Trained(classes, self.calls.train_proxy(chosen, list(labels), vectors))

    def score(self, trained: _Trained, indices: np.ndarray) -> np.ndarray:
        self.calls.note(f"{self.fn}: the proxy scores {len(indices):,} records")
        chosen = [self.records[i] for i in indices.tolist()]
        scores = self.calls.score_proxy(trained.handle, chosen, self._rows(indices))
        return np.asarray(scores, dtype=float)

    def _embed(self) -> None:
        model = self.embedding_model
        if model is None or self.embedded is not None:
            return
        self.calls.note(f"{self.fn}: embedding {len(self.records):,} records ({model})")
        try:
            self.embedded = self.calls.embed(self.records, model)
        except SubCallError as exc:  # a run limit (LimitExceededError) stops the cascade
            self.embedding_model = None
            self.warnings.append(f"{exc}; the proxy reads word and character n-grams only")

    def _rows(self, indices: np.ndarray) -> Any:
        return None if self.embedded is None else self.embedded.rows(indices.tolist())


_STAGE_TEXT = {
    "train": "the sub-model labels {n:,} records to train the proxy",
    "validate": "the sub-model labels {n:,} validation draws",
    "band": "the sub-model answers the {n:,} records the proxy is unsure of",
    "exact": "the sub-model answers {n:,} records (exact)",
}


def _stage_notes(calls: SubCalls, fn: str) -> Any:
    def on_stage(stage: str, records: int) -> None:
        calls.note(f"{fn}: " + _STAGE_TEXT.get(stage, stage + " {n:,}").format(n=records))

    return on_stage


def _values(op: record_ops.Operator, records: list, answers: list) -> list:
    if op.kind == "filter":
        return [record for record, keep in zip(records, answers) if keep]
    return answers


def _plain(value: Any) -> Any:
    """A numpy bool or str as the builtin it is (what crosses the REPL's boundary)."""
    return value.item() if isinstance(value, np.generic) else value


def _size(rule: tuple[float, int, int] | None, records: int) -> int | None:
    if rule is None:
        return None
    share, low, high = rule
    return min(records, int(min(high, max(low, share * records))))


_THRESHOLDS = ("reject_below", "accept_from")


def _finite(value: float | None) -> float | None:
    return value if value is not None and np.isfinite(value) else None


def prompt_note(targets: Approximate, model: str) -> str:
    """What the system prompt adds in a run whose operators default to a cascade (`model`:
    the sub-model)."""
    low = targets.min_records if targets.min_records is not None else regime(model).min_records
    held = [
        _held("llm_filter", ("recall", targets.recall), ("precision", targets.precision)),
        _held("llm_classify", ("accuracy", targets.accuracy)),
        f"llm_count's interval, at most ± {targets.error:.0%} of the items, holds the count"
        if targets.error
        else "",
    ]
    return (
        f"Approximate record operators are allowed in this run: over {low:,} or more distinct "
        "items, `llm_filter`, `llm_classify` and `llm_count` ask the sub-LLM about a sample, "
        "learn a cheap classifier from its answers and let it decide the items it is sure of, "
        "with far fewer sub-LLM calls. Relative to what the sub-LLM would have said about every "
        f"item, {'; '.join(h for h in held if h)}; each with probability "
        f"{targets.confidence:g}. `llm_count` then returns an int with `.low` and `.high` (its "
        "interval); each call prints what it did. Use them when an estimate answers the query "
        "(a share, an approximate count, the most common label); when every item must be "
        "right, pass `recall=1, precision=1` (llm_filter), `accuracy=1` (llm_classify) or "
        "`error=0` (llm_count). A call may set its own `recall=`, `precision=`, `accuracy=`, "
        "`error=` (the count's half-width as a share of the items) and `confidence=`."
    )


def _held(
    what: str, first: tuple[str, float | None], second: tuple[str, float | None] = ("", None)
) -> str:
    """ "llm_filter keeps recall >= 0.9 and precision >= 0.9" (only the targets given)."""
    kept = [f"{name} >= {value:g}" for name, value in (first, second) if value is not None]
    return f"{what} keeps {' and '.join(kept)}" if kept else ""


def cascade_trace(fn: str, report: CascadeReport, count: Interval | None = None) -> CascadeTrace:
    """The trace record of one approximate operator call."""
    return CascadeTrace(
        operator=fn,
        records=report.records,
        oracle_calls={stage: report.oracle_calls.get(stage, 0) for stage in STAGES},
        proxy_decided=report.proxy_decided,
        confidence=report.confidence,
        agreement=report.agreement,
        thresholds={name: _finite(report.thresholds.get(name)) for name in _THRESHOLDS},
        targets=[
            {
                "name": t.name,
                "target": t.target,
                "estimate": None if np.isnan(t.estimate) else float(t.estimate),
                "guaranteed": t.guaranteed,
            }
            for t in report.targets
        ],
        reason=report.reason,
        summary=summary(fn, report, count),
        count=None if count is None else [count.estimate, count.low, count.high],
    )


def summary(fn: str, report: CascadeReport, count: Interval | None = None) -> str:
    """The line the model's cell shows for one approximate operator call."""
    line = report.summary()
    if count is not None:
        shown = f"{count.low:,}..{count.high:,}" if count.low != count.high else "exact"
        line = f"count {round(count.estimate):,} ({shown}); {line}"
    return f"[{fn}] {line}"
