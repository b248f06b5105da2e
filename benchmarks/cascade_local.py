"""The local model's classify, exact and as a cascade, on the quality benchmark's held-out
aggregation tasks: the operator the `rlm` system's root model calls for them
(`llm_classify(records, {label: meaning})`), without the root model's own turns.

    python benchmarks/cascade_local.py --records 3000 --seeds 100002 100003 --exact-sample 60
    python benchmarks/cascade_local.py --records 300 --seeds 100033 --min-records 100 --exact

For each task: `rlm_ray.ops.classify(..., model="local", accuracy=0.9)` (the local regime:
docs/cascades.md), the task's answer computed from the labels as the root model's code does
(`collections.Counter`, "unknown" left out), its score by the harness's rule, the time, and what
the oracle saw. `--exact` also runs the exact scan of every record; `--exact-sample K` times the
exact scan of the first K records only, for the per-record rate (a full scan of 3,000 records
takes over half an hour). Each line notes the load average before and after.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_tasks as qt  # noqa: E402
from operator_accuracy import MEANINGS  # noqa: E402  (the labels as LABEL_HELP states them)


def answer(task: qt.Task, labels: list[str]) -> str:
    """The task's answer from the labels: a label's count, or the most or least common label
    ("unknown" left out). Count, most and least tasks only (not those for one user or date)."""
    counts = collections.Counter(x for x in labels if x != "unknown")
    kind = task.phrasing.split(".")[1]
    if kind == "count":
        question = task.query.split(qt.LABEL_HELP)[-1]
        return str(counts[next(x for x in qt.LABELS if x in question)])
    ranked = counts.most_common()
    return ranked[0][0] if kind == "most" else ranked[-1][0]


def load() -> str:
    return os.getloadavg()[0].__format__(".1f")


def run(task: qt.Task, records: list[str], **kw) -> dict:
    from rlm_ray import ops

    before = load()
    started = time.time()
    result = ops.classify(records, MEANINGS, model="local", **kw)
    row = {
        "time_s": round(time.time() - started, 1),
        "calls": result.usage.calls,
        "load": f"{before} -> {load()}",
    }
    if result.report is not None:
        row["report"] = result.report.summary()
    row["labels"] = list(result.values)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=3_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[100_002, 100_003])
    parser.add_argument("--min-records", type=int, default=None)
    parser.add_argument("--exact", action="store_true")
    parser.add_argument("--exact-sample", type=int, default=0)
    args = parser.parse_args()
    approx = {} if args.min_records is None else {"min_records": args.min_records}
    for seed in args.seeds:
        task = qt.oolong_task(args.records, seed, "heldout", "list")
        records = list(task.documents)
        runs = {"cascade": run(task, records, accuracy=0.9, approximate=approx or None)}
        if args.exact:
            runs["exact"] = run(task, records)
        if args.exact_sample:
            runs["exact-sample"] = run(task, records[: args.exact_sample])
        for name, row in runs.items():
            labels = row.pop("labels")
            if name != "exact-sample":
                row["answer"] = answer(task, labels)
                row["score"] = qt.score(task, row["answer"])
            else:
                row["s_per_record"] = round(row["time_s"] / args.exact_sample, 3)
            out = {"task": task.id, "expected": task.expected, "run": name, **row}
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
