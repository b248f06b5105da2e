"""How right the record operators are, and how fast, by records per model call.

    python benchmarks/operator_accuracy.py --model local --records 60 --seeds 7 --batch 10 1
    python benchmarks/operator_accuracy.py --model openai/NAME --api-base URL --batch 40 1

Messages are the quality benchmark's (benchmarks/quality_tasks.py, dev seeds: every message
distinct, its label known). For each batch size (`max_batch_items`) it runs
`rlm_ray.ops.classify` with the five labels and their meanings, and `rlm_ray.ops.filter` once
per label with a condition in plain words ("praises a product or the service", ...), and
prints one JSON line per run: items right (classify), true and false positives and misses
(filter), seconds, model calls and tokens. Each run starts its own local model server (when the
model is a local one), so the first run's time includes that start.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_tasks as qt  # noqa: E402

MEANINGS = {
    "complaint": "the writer is unhappy about a problem",
    "praise": "happy with a product or the service",
    "question": "asks for information",
    "suggestion": "proposes an improvement",
    "cancellation": "wants an order stopped",
}
CONDITIONS = {
    "complaint": "complains about a problem",
    "praise": "praises a product or the service",
    "question": "asks for information",
    "suggestion": "proposes an improvement",
    "cancellation": "wants an order cancelled",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local")
    parser.add_argument("--api-base")
    parser.add_argument("--api-key")
    parser.add_argument("--records", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7])
    parser.add_argument("--batch", type=int, nargs="+", default=[10, 1])
    parser.add_argument("--ops", nargs="+", default=["classify", "filter"])
    parser.add_argument("--slots", type=int, default=1, help="server slots of a local model")
    args = parser.parse_args(argv)
    from rlm_ray import ops

    settings = {"model": args.model}
    if args.api_base:
        settings["api_base"] = args.api_base
    if args.api_key:
        settings["api_key"] = args.api_key
    if args.slots != 1:
        settings["local_server_slots"] = args.slots
    for seed in args.seeds:
        rng = random.Random(seed)
        data = qt.make_records(rng, args.records, max(5, args.records // 8), qt._dates())
        items = [r.line() for r in data]
        for batch in args.batch:
            row = {"records": len(items), "seed": seed, "batch": batch, "slots": args.slots}
            if "classify" in args.ops:
                started = time.time()
                got = ops.classify(items, MEANINGS, max_batch_items=batch, **settings)
                wrong = Counter((r.label, v) for r, v in zip(data, got) if v != r.label)
                print(json.dumps({
                    **row, "op": "classify",
                    "right": sum(v == r.label for r, v in zip(data, got)),
                    "seconds": round(time.time() - started, 1), "calls": got.usage.calls,
                    "input_tokens": got.usage.input_tokens,
                    "output_tokens": got.usage.output_tokens,
                    "confusions": [f"{a}->{b} x{n}" for (a, b), n in wrong.most_common(4)],
                }), flush=True)  # fmt: skip
            if "filter" in args.ops:
                for label, condition in CONDITIONS.items():
                    started = time.time()
                    kept = set(ops.filter(condition, items, max_batch_items=batch, **settings))
                    hits = [line in kept for line in items]
                    truth = [r.label == label for r in data]
                    print(json.dumps({
                        **row, "op": "filter", "condition": condition, "truth": sum(truth),
                        "kept": sum(hits), "true_pos": sum(h and t for h, t in zip(hits, truth)),
                        "false_pos": sum(h and not t for h, t in zip(hits, truth)),
                        "missed": sum(t and not h for h, t in zip(hits, truth)),
                        "seconds": round(time.time() - started, 1),
                    }), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
