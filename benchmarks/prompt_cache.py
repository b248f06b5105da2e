"""What the saved prompt prefix (rlm_ray/local/prompt_cache.py) saves a run with the local model.

    python benchmarks/prompt_cache.py [--runs 2] [--records 60]

Every run starts its own llama.cpp server, as `rlm-ray run --model local` does. Three ways:
`off` (the prefix is not warmed: the root's first turn reads the system text and examples),
`first` (no saved prefix: it is read before the root's first turn and saved), `restored` (the
saved state is loaded; `--runs` times). The task: a label-less count over distinct hotel reviews
(benchmarks/count_check.py's `noise` development topic, seed 7). Deletes the saved prefixes in
the prompt cache directory first. Prints one JSON line per run and a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import count_check  # noqa: E402


def run(mode: str, records: int) -> dict:
    from rlm_ray import RLM
    from rlm_ray.runtime import Launcher

    texts, truth = count_check.messages(records, 7, "noise")
    warm = Launcher.warm_prefix
    if mode == "off":
        Launcher.warm_prefix = staticmethod(lambda servers, spec: None)  # type: ignore[method-assign]
    try:
        started = time.time()
        result = RLM("local").completion(count_check.TOPICS["noise"].query, "\n".join(texts))
    finally:
        Launcher.warm_prefix = warm  # type: ignore[method-assign]
    first = result.trace.iterations[0]
    return {
        "mode": mode,
        "answer": result.answer,
        "truth": truth,
        "startup_s": round(result.timings["startup_s"], 1),
        "first_turn_s": round(first.llm_duration_s, 1),
        "total_s": round(time.time() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="runs with the saved prefix")
    parser.add_argument("--records", type=int, default=60)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("ray", "urllib3", "httpx", "LiteLLM"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from rlm_ray.local import prompt_cache
    from rlm_ray.local.local_model import cache_dir

    prompt_cache.prune(cache_dir() / "prompt-cache", keep=0)
    rows = [run(mode, args.records) for mode in ["off", "first"] + ["restored"] * args.runs]
    for row in rows:
        print(json.dumps(row))
    print("\n| run | answer (truth) | start-up s | root's first turn s | total s |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['mode']} | {row['answer']} ({row['truth']}) | {row['startup_s']} | "
            f"{row['first_turn_s']} | {row['total_s']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
