"""Writing a run's call tree to disk: one JSON line per RLM call, children linked by id.

Each line is a `CallTrace` with `parent_id`; a child call inside a cell's `subcalls` is replaced by
its `child_id`, so the file streams and greps well. Secrets never get here: traces hold model
names, prompts, code and outputs, not settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlm_ray.types import CallTrace


def trace_records(root: CallTrace) -> Iterator[dict[str, Any]]:
    """The flattened records of `root` and its descendants, parents first."""
    stack: list[tuple[CallTrace, str | None]] = [(root, None)]
    while stack:
        call, parent = stack.pop(0)
        record = call.to_dict()
        record["parent_id"] = parent
        for iteration in record["iterations"]:
            for cell in iteration["cells"]:
                for sub in cell["subcalls"]:
                    child = sub.pop("child", None)
                    sub["child_id"] = child["call_id"] if child else None
        for child in _children(call):
            stack.append((child, call.call_id))
        yield record


def _children(call: CallTrace) -> Iterator[CallTrace]:
    for iteration in call.iterations:
        for cell in iteration.cells:
            for sub in cell.subcalls:
                if sub.child is not None:
                    yield sub.child


def write_jsonl(root: CallTrace, path: str | Path) -> int:
    """Write the trace of `root` as JSONL; returns the number of calls written."""
    n = 0
    with open(path, "w", encoding="utf-8") as out:
        for record in trace_records(root):
            out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            n += 1
    return n
