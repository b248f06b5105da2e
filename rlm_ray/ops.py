"""Semantic record operators from plain Python, outside any RLM: `map`, `filter`, `classify`.

    from rlm_ray import ops
    kinds = ops.classify(tickets, ["billing", "access", "hardware"], model="openai/gpt-4o-mini")
    kinds.values, kinds.usage.calls, kinds.usage.cost_usd

The same operators the REPL gives the model (`llm_map`, `llm_filter`, `llm_classify`;
record_ops.py): many records per model call, batches sized from the model's window, answers
parsed per record, unparsed batches split and asked again, identical records asked once. The
batches are model calls through the runtime's gateways on Ray (local Ray is started if none is
running, as `RLM` does), so `cache_dir`, the budgets (`max_sub_calls`, `max_total_tokens`,
`max_cost_usd`, `max_time_s`) and the rate limits work as in an RLM run.

Items: a list of str, a str (its non-empty lines), a corpus from `rlm_ray.load` or a
pyarrow.Table or path (`rlm_ray.load` reads it; one record per document: documents travel as
handles and are read where the model call is made).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlm_ray import record_ops
from rlm_ray.blocking import run_blocking
from rlm_ray.errors import ConfigError
from rlm_ray.inputs import check_context
from rlm_ray.rlm import load
from rlm_ray.settings import RunSettings, run_settings
from rlm_ray.types import Usage

__all__ = ["OpResult", "classify", "filter", "map"]


@dataclass
class OpResult:
    """An operator's `values` (map: one answer per item; filter: the items kept; classify: one
    label per item, or "unknown"), what it spent (`usage`: calls, tokens, cost) and its
    `warnings` (items cut to fit the window, items that never got a usable answer)."""

    values: list[Any]
    usage: Usage
    warnings: list[str] = field(default_factory=list)

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
    return _run(record_ops.map_op(_task("map", "instruction", instruction)), items, model, settings)


def filter(condition: str, items: Any, *, model: str, **settings: Any) -> OpResult:
    """The items for which `condition` holds (the original items, in order). `settings`: as
    for `map`."""
    return _run(
        record_ops.filter_op(_task("filter", "condition", condition)), items, model, settings
    )


def classify(items: Any, labels: Sequence[str], *, model: str, **settings: Any) -> OpResult:
    """One of `labels` per item, in order, or "unknown" when none fits (or no usable answer
    came back). `settings`: as for `map`."""
    from rlm_ray.repl import labels_arg

    try:
        op = record_ops.classify_op(*labels_arg(labels))
    except (TypeError, ValueError) as exc:
        raise _config_error(str(exc).replace("llm_classify", "ops.classify")) from None
    return _run(op, items, model, settings)


# -- running -------------------------------------------------------------------------------------


def _run(op: record_ops.Operator, items: Any, model: str, settings: dict[str, Any]) -> OpResult:
    max_items = settings.pop("max_batch_items", record_ops.batch_items_for(model))
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
        raise _config_error(f"`max_batch_items` must be a positive int, got {max_items!r}")
    llm_kwargs = settings.pop("llm_kwargs", None)
    foreign = sorted(_RLM_ONLY & set(settings))
    if foreign:
        raise _config_error(f"{foreign} are settings of an RLM, not of rlm_ray.ops.{op.kind}")
    checked = run_settings(model, sub_llm_kwargs=llm_kwargs, llm_kwargs=llm_kwargs, **settings)
    records = _records(items, op, checked)
    from rlm_ray.runtime import Launcher

    launcher = Launcher(checked)
    outcome, usage = run_blocking(lambda: launcher.run_operator(op, records, max_items))
    for warning in outcome.warnings:
        warnings.warn(f"rlm_ray.ops.{op.kind}: {warning}", RuntimeWarning, stacklevel=3)
    return OpResult(outcome.values, usage, outcome.warnings)


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
