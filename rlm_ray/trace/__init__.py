"""Traces: a run's call tree on disk, and the views that show it.

    file.py      one record per RLM call, as JSONL (or Parquet, through `parquet.py`)
    parquet.py   the records as Parquet, with a written-out schema (pyarrow)
    summary.py   what the views show: labels and the fan-out timeline lanes (pure)
    view.py      the terminal tree (rich)
    html.py      one self-contained HTML page

This package re-exports `file`'s names (standard library only); the others are imported by name.
"""

from rlm_ray.trace.file import FORMATS, check_trace_path, read_trace, trace_records, write_trace

__all__ = ["FORMATS", "check_trace_path", "read_trace", "trace_records", "write_trace"]
