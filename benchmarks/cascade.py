"""Issue 29's guarantee check: do the cascades meet their stated targets, and how many records
does the oracle see? A scripted oracle of known noise (cascade_data.py), no model.

    python benchmarks/cascade.py filter --records 10000 --trials 100      # real proxy
    python benchmarks/cascade.py filter --records 1000000 --trials 100    # synthetic scores
    python benchmarks/cascade.py classify --records 10000 --trials 100
    python benchmarks/cascade.py count --records 10000 --error 0.03 --trials 100
    python benchmarks/cascade.py sizes                                    # where a cascade pays
    python benchmarks/cascade.py proxy                                    # the proxy itself
    python benchmarks/cascade.py floor           # the least the oracle could see, per signal

Each trial draws new records (seed = trial) and runs the cascade with that seed. Up to
`REAL_PROXY_MAX` records the real proxy (rlm_ray/cascade/proxy.py) is trained and scores every
record's text, end to end. Above it, training and scoring a million texts a trial is too slow
for two cores, so the scores are synthetic: each record's score is drawn from the scores the
real proxy gave records with the same oracle answer, in a pool of `POOL` records it was not
trained on (the cascade is unchanged; only `fit`/`score` are replaced). Prints one JSON line
per setting.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cascade_data as cd  # noqa: E402

from rlm_ray.cascade import (  # noqa: E402
    plan_classify,
    plan_count,
    plan_filter,
    proxy,
    stages,  # noqa: E402
)

REAL_PROXY_MAX = 100_000
POOL = 20_000


# -- records and proxies ---------------------------------------------------------------------------


@dataclass
class Setting:
    """What one trial runs on: the oracle's answers, and `fit`/`score` for the cascade."""

    answers: np.ndarray
    fit: Any
    score: Any

    def oracle(self, indices: np.ndarray) -> list:
        return self.answers[indices].tolist()


def real_setting(records: int, classes: int, seed: int, signal: float) -> Setting:
    data = cd.make_records(records, classes=classes, signal=signal, seed=seed)
    texts = data.texts

    def fit(indices: np.ndarray, labels: list) -> proxy.Proxy:
        return proxy.train([texts[i] for i in indices], labels)

    def score(p: proxy.Proxy, indices: np.ndarray) -> np.ndarray:
        return proxy.score(p, [texts[i] for i in indices])

    return Setting(data.answers, fit, score)


@dataclass(frozen=True)
class SyntheticProxy:
    classes: tuple
    scores: np.ndarray


_POOLS: dict[tuple, tuple[tuple, dict]] = {}


def score_pool(classes: int, trained_on: int, signal: float) -> tuple[tuple, dict]:
    """The real proxy's scores on `POOL` records it was not trained on, by oracle answer,
    trained on as many records as the cascade would train it on."""
    key = (classes, trained_on, signal)
    if key not in _POOLS:
        data = cd.make_records(POOL + trained_on, classes=classes, signal=signal, seed=999_999)
        p = proxy.train(data.texts[:trained_on], data.answers[:trained_on].tolist())
        scores, answers = proxy.score(p, data.texts[trained_on:]), data.answers[trained_on:]
        _POOLS[key] = (p.classes, {a: scores[answers == a] for a in p.classes})
    return _POOLS[key]


def synthetic_setting(records: int, classes: int, seed: int, signal: float) -> Setting:
    rng = np.random.default_rng(seed)
    said = cd.noisy(cd.true_classes(records, classes, rng), classes, cd.ORACLE_NOISE, rng)
    answers = cd.answer_values(said, classes)
    labels, pool = score_pool(classes, stages.train_size_for(records), signal)
    scores = np.empty((records,) + pool[labels[0]].shape[1:])
    for label in labels:
        where = np.flatnonzero(answers == label)
        scores[where] = pool[label][rng.integers(0, len(pool[label]), size=len(where))]
    synthetic = SyntheticProxy(labels, scores)
    return Setting(answers, lambda indices, got: synthetic, lambda p, indices: p.scores[indices])


def setting(records: int, classes: int, seed: int, args: argparse.Namespace) -> Setting:
    build = real_setting if records <= REAL_PROXY_MAX else synthetic_setting
    return build(records, classes, seed, args.signal)


# -- the checks ------------------------------------------------------------------------------------


def filter_trial(records: int, seed: int, args: argparse.Namespace) -> dict:
    s = setting(records, 2, seed, args)
    result = plan_filter(
        records,
        s.oracle,
        s.fit,
        s.score,
        recall=args.recall,
        precision=args.precision,
        confidence=args.confidence,
        seed=seed,
        min_records=args.min_records,
    )
    kept, truth = result.values, s.answers.astype(bool)
    recall = (kept & truth).sum() / max(truth.sum(), 1)
    precision = (kept & truth).sum() / max(kept.sum(), 1)
    return {
        "recall": float(recall),
        "precision": float(precision),
        "met": bool(recall >= args.recall and precision >= args.precision),
        **_costs(result.report),
    }


def classify_trial(records: int, seed: int, args: argparse.Namespace) -> dict:
    s = setting(records, len(cd.LABELS), seed, args)
    result = plan_classify(
        records,
        s.oracle,
        s.fit,
        s.score,
        accuracy=args.accuracy,
        confidence=args.confidence,
        seed=seed,
        min_records=args.min_records,
    )
    accuracy = float((result.values == s.answers).mean())
    return {"accuracy": accuracy, "met": accuracy >= args.accuracy, **_costs(result.report)}


def count_trial(records: int, seed: int, args: argparse.Namespace) -> dict:
    s = setting(records, 2, seed, args)
    result = plan_count(
        records,
        s.oracle,
        s.fit,
        s.score,
        error=args.error,
        confidence=args.confidence,
        seed=seed,
        min_records=args.min_records,
    )
    truth, got = int(s.answers.sum()), result.count
    return {
        "met": bool(got.low <= truth <= got.high),
        "half_width_share": got.half_width / records,
        "miss_share": abs(got.estimate - truth) / records,
        **_costs(result.report),
    }


def _costs(report: Any) -> dict:
    return {
        "oracle_share": report.oracle_share,
        "exact": report.exact,
        "calls": report.oracle_calls,
    }


TRIALS = {"filter": filter_trial, "classify": classify_trial, "count": count_trial}


def run_trials(kind: str, records: int, args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    rows = [
        TRIALS[kind](records, seed, args)
        for seed in range(args.first_seed, args.first_seed + args.trials)
    ]
    summary = {
        "check": kind,
        "records": records,
        "signal": args.signal,
        "trials": len(rows),
        "met_share": float(np.mean([r["met"] for r in rows])),
        "oracle_share_mean": float(np.mean([r["oracle_share"] for r in rows])),
        "oracle_share_max": float(np.max([r["oracle_share"] for r in rows])),
        "exact_trials": int(sum(r["exact"] for r in rows)),
        "proxy": "real" if records <= REAL_PROXY_MAX else "synthetic (real proxy's score pool)",
        "seconds_per_trial": round((time.perf_counter() - started) / len(rows), 3),
    }
    for key in ("recall", "precision", "accuracy", "half_width_share", "miss_share"):
        if key in rows[0]:
            values = [r[key] for r in rows]
            summary[f"{key}_mean"] = float(np.mean(values))
            summary[f"{key}_min" if key != "half_width_share" else f"{key}_max"] = float(
                np.min(values) if key != "half_width_share" else np.max(values)
            )
    stages = {
        k: float(np.mean([r["calls"].get(k, 0) for r in rows]))
        for k in ("train", "validate", "band", "exact")
    }
    summary["oracle_calls_mean"] = stages
    return summary


def proxy_check(args: argparse.Namespace) -> None:
    """Training and scoring time, pickled size and ranking quality of the real proxy."""
    from sklearn.metrics import roc_auc_score

    for classes in (2, len(cd.LABELS)):
        data = cd.make_records(10_000 + 2_000, classes=classes, seed=7)
        held = data.texts[2_000:]
        for n in (200, 500, 1_000, 2_000):
            started = time.perf_counter()
            p = proxy.train(data.texts[:n], data.answers[:n].tolist())
            train_s = time.perf_counter() - started
            started = time.perf_counter()
            scores = proxy.score(p, held)
            score_s = time.perf_counter() - started
            truth = data.answers[2_000:]
            if classes == 2:
                quality = {"auc": float(roc_auc_score(truth.astype(bool), scores))}
            else:
                picked = np.array(p.classes, dtype=object)[scores.argmax(axis=1)]
                quality = {"accuracy": float((picked == truth).mean())}
            print(
                json.dumps(
                    {
                        "check": "proxy",
                        "classes": classes,
                        "train_records": n,
                        "train_s": round(train_s, 3),
                        "score_10k_s": round(score_s, 3),
                        "pickle_bytes": len(pickle.dumps(p)),
                        **quality,
                    }
                ),
                flush=True,
            )


def solver_check() -> None:
    """Why SGD: scikit-learn's LogisticRegression solvers against the proxy's SGDClassifier on
    the same hashed features of 500 training records (filter records, AUC on 10,000 others)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    data = cd.make_records(10_500, seed=7)
    train, held = proxy.features(data.texts[:500]), proxy.features(data.texts[500:])
    labels, truth = data.answers[:500], data.answers[500:]
    for solver in ("lbfgs", "liblinear", "saga"):
        model = LogisticRegression(C=4.0, class_weight="balanced", solver=solver, max_iter=200)
        started = time.perf_counter()
        model.fit(train, labels)
        seconds = time.perf_counter() - started
        auc = roc_auc_score(truth, model.predict_proba(held)[:, 1])
        print(
            json.dumps(
                {"check": "solver", "solver": solver, "train_s": round(seconds, 3), "auc": auc}
            )
        )
    started = time.perf_counter()
    p = proxy.train(data.texts[:500], labels.tolist())
    seconds = time.perf_counter() - started  # features included, unlike the rows above
    auc = roc_auc_score(truth, proxy.score(p, data.texts[500:]))
    print(
        json.dumps(
            {
                "check": "solver",
                "solver": "sgd (proxy.train, with features)",
                "train_s": round(seconds, 3),
                "auc": auc,
            }
        )
    )


def floor_check() -> None:
    """The least the oracle could see between the thresholds if they were set knowing every
    oracle answer: `reject_below` at the positives' 10 % score quantile (recall 0.9),
    `accept_from` at the lowest score that keeps precision at 0.9; on `POOL` records scored by a
    proxy trained on 2,000 others (what the cascade trains on at a million records)."""
    for signal in (0.3, 0.2, 0.15):
        data = cd.make_records(POOL + 2_000, signal=signal, seed=999_999)
        p = proxy.train(data.texts[:2_000], data.answers[:2_000].tolist())
        scores, answers = proxy.score(p, data.texts[2_000:]), data.answers[2_000:]
        positives = np.sort(scores[answers])
        low = positives[int(0.1 * len(positives))]
        found = int((scores[answers] >= low).sum())
        negatives = np.sort(scores[~answers])[::-1]
        allowed = int(found * (1 - 0.9) / 0.9)  # false positives precision 0.9 allows
        high = np.nextafter(negatives[allowed], 2.0) if allowed < len(negatives) else low
        band = float(((scores >= low) & (scores < high)).mean())
        no_class_word = (1 - signal) ** cd.WORDS
        print(
            json.dumps(
                {
                    "check": "floor",
                    "signal": signal,
                    "band_share": round(band, 4),
                    "no_class_word_share": round(no_class_word, 4),
                }
            ),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("check", choices=[*TRIALS, "sizes", "proxy", "floor"])
    parser.add_argument("--records", type=int, nargs="+", default=[10_000])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--recall", type=float, default=0.9)
    parser.add_argument("--precision", type=float, default=0.9)
    parser.add_argument("--accuracy", type=float, default=0.9)
    parser.add_argument("--error", type=float, default=0.02)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument(
        "--signal", type=float, default=cd.SIGNAL, help="share of class words (lower: harder)"
    )
    parser.add_argument("--min-records", type=int, default=stages.MIN_RECORDS)
    args = parser.parse_args()
    if args.check == "floor":
        return floor_check()
    if args.check == "proxy":
        solver_check()
        return proxy_check(args)
    if args.check == "sizes":
        args.min_records = 1
        for records in (1_000, 2_000, 5_000, 10_000, 20_000, 50_000):
            print(json.dumps(run_trials("filter", records, args)), flush=True)
        return None
    for records in args.records:
        print(json.dumps(run_trials(args.check, records, args)), flush=True)
    return None


if __name__ == "__main__":
    main()
