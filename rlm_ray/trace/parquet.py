"""Trace records as Parquet: one row per RLM call, iterations, cells and sub-calls nested.

The schema is written out (not inferred) so that a trace without, say, any sub-call still has
every column, and reading the file back gives the very records `file.trace_records` made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rlm_ray.errors import ConfigError

_str, _int, _float, _bool = pa.string(), pa.int64(), pa.float64(), pa.bool_()

SUBCALL = pa.struct(
    [
        ("kind", _str),
        ("model", _str),
        ("prompt_preview", _str),
        ("started_s", _float),
        ("ended_s", _float),
        ("duration_s", _float),
        ("run_started_s", _float),
        ("server_s", _float),
        ("node_id", _str),
        ("actor_id", _str),
        ("pid", _int),
        ("input_tokens", _int),
        ("output_tokens", _int),
        ("cost_usd", _float),
        ("error", _str),
        ("child_id", _str),
        ("tool", _str),
        ("effects", _str),
        ("arguments", _str),
        ("result_preview", _str),
        ("decision", _str),
        ("chunks_local", _bool),
        ("chunk_bytes_pulled", _int),
    ]
)
STAGES = pa.struct([(stage, _int) for stage in ("train", "validate", "band", "exact")])
TARGET = pa.struct(
    [("name", _str), ("target", _float), ("estimate", _float), ("guaranteed", _float)]
)
CASCADE = pa.struct(
    [
        ("operator", _str),
        ("records", _int),
        ("oracle_calls", STAGES),
        ("proxy_decided", _int),
        ("confidence", _float),
        ("agreement", _float),
        ("thresholds", pa.struct([("reject_below", _float), ("accept_from", _float)])),
        ("targets", pa.list_(TARGET)),
        ("reason", _str),
        ("summary", _str),
        ("count", pa.list_(_float)),
    ]
)
CELL = pa.struct(
    [
        ("code", _str),
        ("output", _str),
        ("error", _str),
        ("timed_out", _bool),
        ("started_s", _float),
        ("ended_s", _float),
        ("duration_s", _float),
        ("subcalls", pa.list_(SUBCALL)),
        ("final", _bool),
        ("cascades", pa.list_(CASCADE)),
    ]
)
ITERATION = pa.struct(
    [
        ("index", _int),
        ("response", _str),
        ("started_s", _float),
        ("ended_s", _float),
        ("llm_duration_s", _float),
        ("input_tokens", _int),
        ("output_tokens", _int),
        ("cost_usd", _float),
        ("cells", pa.list_(CELL)),
        ("replayed", _bool),
    ]
)
SCHEMA = pa.schema(
    [
        ("call_id", _str),
        ("parent_id", _str),
        ("depth", _int),
        ("model", _str),
        ("query", _str),
        ("started_s", _float),
        ("ended_s", _float),
        ("duration_s", _float),
        ("node_id", _str),
        ("worker_id", _str),
        ("actor_id", _str),
        ("pid", _int),
        ("context_id", _str),
        ("iterations", pa.list_(ITERATION)),
        ("answer", _str),
        ("finished_by", _str),
        ("answer_code", _str),
        ("error", _str),
        ("repl_restarts", _int),
        ("total_calls", _int),
        ("total_input_tokens", _int),
        ("total_output_tokens", _int),
        ("total_cost_usd", _float),
    ]
)


def write_parquet(records: list[dict[str, Any]], path: str | Path) -> None:
    pq.write_table(pa.Table.from_pylist(records, schema=SCHEMA), path)


def read_parquet(path: str | Path) -> list[dict[str, Any]]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"trace file {path}: not a readable Parquet file ({exc})") from None
    missing = [
        name for name in ("call_id", "depth", "iterations") if name not in table.schema.names
    ]
    if missing:
        raise ConfigError(f"trace file {path}: no column {missing}; is this an rlm-ray trace?")
    return table.to_pylist()
