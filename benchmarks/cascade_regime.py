"""How large a local-model cascade's samples should be: the quality benchmark's records
(benchmarks/quality_tasks.py, five labels), an oracle right on 96 % of them (the 1.5B model's
measured accuracy on these messages), the real proxy, no model server.

    python benchmarks/cascade_regime.py --records 300 3000 --seeds 5

For each (records, training sample, validation draws, accuracy target, confidence) it runs
`plan_classify` (what `llm_classify` runs with `approximate=`) once per seed and prints one JSON
line: the records the oracle saw (mean, most), the trials that fell back to the exact scan, the
cascade's agreement with the oracle (least), and how far its per-label counts are from the
truth (mean absolute error per label) next to the oracle's own. With the local model each
record the oracle sees is ~0.7 s (docs/benchmarks.md), so `seen` is the time.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_tasks as qt  # noqa: E402

from rlm_ray.cascade import plan_classify, proxy  # noqa: E402
from rlm_ray.subcall_kinds.cascades import LOCAL  # noqa: E402

NOISE = 0.04
GRID = {  # records -> (training sample, validation draws) pairs tried
    300: [(30, 60), (60, 60), (60, 100), (100, 150)],
    3_000: [(100, 150), (150, 150), (150, 250)],
}


def oracle_answers(records: list, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [r.label if rng.random() > NOISE else rng.choice(qt.LABELS) for r in records]


def trial(n: int, seed: int, train: int, sample: int, accuracy: float, confidence: float) -> dict:
    rng = random.Random(seed)
    data = qt.make_records(rng, n, max(5, n // 8), [f"2026-03-{d:02d}" for d in range(1, 15)])
    texts = [r.line() for r in data]
    said = oracle_answers(data, seed)
    result = plan_classify(
        n,
        lambda idx: [said[i] for i in idx],
        lambda idx, labels: proxy.train([texts[i] for i in idx], labels),
        lambda p, idx: proxy.score(p, [texts[i] for i in idx]),
        accuracy=accuracy,
        confidence=confidence,
        train_size=train,
        sample_size=sample,
        min_records=1,
        seed=seed,
    )
    truth = Counter(r.label for r in data)
    got, oracle = Counter(result.values.tolist()), Counter(said)
    return {
        "seen": result.report.oracle_seen,
        "exact": bool(result.report.reason),
        "agreement": float(np.mean([a == b for a, b in zip(result.values, said)])),
        "count_error": float(np.mean([abs(got[x] - truth[x]) for x in qt.LABELS])),
        "oracle_count_error": float(np.mean([abs(oracle[x] - truth[x]) for x in qt.LABELS])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[300, 3_000])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--accuracy", type=float, nargs="+", default=[0.9, 0.8])
    parser.add_argument("--confidence", type=float, nargs="+", default=[0.95, 0.9])
    args = parser.parse_args()
    for n in args.records:
        sizes = GRID.get(n, []) + [LOCAL.sizes(n)]  # the regime's own, last
        for train, sample in sizes:
            for accuracy in args.accuracy:
                for confidence in args.confidence:
                    runs = [
                        trial(n, s, train, sample, accuracy, confidence) for s in range(args.seeds)
                    ]
                    print(json.dumps(summary(n, train, sample, accuracy, confidence, runs)))


def summary(
    n: int, train: int, sample: int, accuracy: float, confidence: float, runs: list
) -> dict:
    return {
        "records": n,
        "train": train,
        "sample": sample,
        "accuracy": accuracy,
        "confidence": confidence,
        "seen_mean": round(float(np.mean([r["seen"] for r in runs])), 1),
        "seen_max": max(r["seen"] for r in runs),
        "exact_trials": sum(r["exact"] for r in runs),
        "agreement_min": round(min(r["agreement"] for r in runs), 3),
        "count_error": round(float(np.mean([r["count_error"] for r in runs])), 1),
        "oracle_count_error": round(float(np.mean([r["oracle_count_error"] for r in runs])), 1),
    }


if __name__ == "__main__":
    main()
