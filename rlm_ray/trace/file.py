"""Trace files: a run's call tree on disk, one record per RLM call, as JSONL or Parquet.

A record is a `CallTrace` as a dict with `parent_id`; a child call inside a cell's `subcalls` is
replaced by its `child_id`, so the file streams and greps well. A file holds one call tree (`rlm-ray
run --trace`) or several one after another (`rlm-ray chat --trace`: one per question), each
starting with its root record (`parent_id` null). Every level (call, iteration,
cell, sub-call) carries `started_s` and `ended_s` (wall clock, `time.time()`). The fields are
described in docs/trace.md. JSONL and Parquet (`parquet.py`) hold the same records; the
format follows the file's extension. Secrets never get here: `RLM` masks them in the trace
before returning it (`redact.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlm_ray.errors import ConfigError
from rlm_ray.types import CallTrace

FORMATS = (".jsonl", ".parquet")
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "call_id": str,
    "depth": int,
    "started_s": (int, float),
    "iterations": list,
}


def trace_records(root: CallTrace) -> Iterator[dict[str, Any]]:
    """The flattened records of `root` and its descendants, parents first."""
    queue: list[tuple[CallTrace, str | None]] = [(root, None)]
    while queue:
        call, parent = queue.pop(0)
        yield _record(call, parent)
        queue.extend((child, call.call_id) for child in _children(call))


def _record(call: CallTrace, parent: str | None) -> dict[str, Any]:
    record = call.to_dict()
    record["parent_id"] = parent
    record["ended_s"] = call.started_s + call.duration_s
    for iteration in record["iterations"]:
        ended = iteration["started_s"] + iteration["llm_duration_s"]
        for cell in iteration["cells"]:
            cell["ended_s"] = cell["started_s"] + cell["duration_s"]
            ended = max(ended, cell["ended_s"])
            for sub in cell["subcalls"]:
                sub.pop("tool_record", None)  # a session's own record of what a tool returned
                child = sub.pop("child", None)
                sub["child_id"] = child["call_id"] if child else None
                sub["ended_s"] = sub["started_s"] + sub["duration_s"]
        iteration["ended_s"] = ended
    return record


def _children(call: CallTrace) -> Iterator[CallTrace]:
    for iteration in call.iterations:
        for cell in iteration.cells:
            for sub in cell.subcalls:
                if sub.child is not None:
                    yield sub.child


def write_trace(root: CallTrace, path: str | Path) -> int:
    """Write the trace of `root` as JSONL or Parquet (by extension); returns the calls written."""
    return write_traces([root], path)


def write_traces(roots: list[CallTrace], path: str | Path) -> int:
    """Write the call trees of `roots` (a session's questions, in order) into one file, each
    root's records after the one before; returns the calls written."""
    suffix = _suffix(path)
    records = [record for root in roots for record in trace_records(root)]
    if suffix == ".parquet":
        from rlm_ray.trace.parquet import write_parquet

        write_parquet(records, path)
    else:
        write_jsonl_records(records, path)
    return len(records)


def write_jsonl_records(records: list[dict[str, Any]], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")


def read_trace(path: str | Path) -> list[dict[str, Any]]:
    """The records of a trace file (JSONL or Parquet), checked to form call trees (see
    `check_records`)."""
    suffix = _suffix(path)
    if not Path(path).is_file():
        raise ConfigError(f"trace file {path}: no such file")
    if suffix == ".parquet":
        from rlm_ray.trace.parquet import read_parquet

        records = read_parquet(path)
    else:
        records = _read_jsonl(path)
    check_records(records, path)
    return records


def _read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    records = []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"trace file {path}: line {number} is not JSON ({exc.msg})"
                ) from None
    return records


def check_records(records: list[Any], path: str | Path) -> None:
    """Raise `ConfigError` unless `records` are the calls of one or more trees, each root
    followed by its descendants, parents first."""
    if not records:
        raise ConfigError(f"trace file {path}: no records in it")
    seen: set[str] = set()  # the calls of the current tree
    for number, record in enumerate(records, 1):
        where = f"trace file {path}: record {number}"
        if not isinstance(record, dict):
            raise ConfigError(f"{where} is not an object; is this an rlm-ray trace?")
        for name, kind in _REQUIRED.items():
            if not isinstance(record.get(name), kind):
                raise ConfigError(f"{where} has no valid `{name}`; is this an rlm-ray trace?")
        parent = record.get("parent_id")
        if parent is None:
            seen = set()  # a new tree begins
        elif parent not in seen:
            raise ConfigError(f"{where}: its parent {parent!r} does not come before it")
        seen.add(record["call_id"])


def trees(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The records of each call tree of a checked file, in order (root first in each)."""
    found: list[list[dict[str, Any]]] = []
    for record in records:
        if record.get("parent_id") is None:
            found.append([])
        found[-1].append(record)
    return found


def check_trace_path(path: str | Path) -> None:
    """Raise `ConfigError` unless a trace can be written to `path`."""
    _suffix(path)
    if not Path(path).parent.is_dir():
        raise ConfigError(f"trace file {path}: no such directory {Path(path).parent}")


def _suffix(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(
            f"trace file {path}: unknown format {suffix or '(no extension)'!r}; "
            f"use one of {', '.join(FORMATS)}"
        )
    return suffix
