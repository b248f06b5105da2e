"""rlm-ray's filter cascade next to LOTUS's (`sem_filter` with `cascade_args`) on the same records
and the same model server: the local 1.5B model, served once by rlm-ray's `LocalServer`.

    python -m venv /tmp/lotus-venv && /tmp/lotus-venv/bin/pip install lotus-ai   # never a dependency
    python benchmarks/lotus_side_by_side.py --records 300 --lotus-python /tmp/lotus-venv/bin/python

The records are the quality benchmark's customer messages (benchmarks/quality_tasks.py, a
held-out seed); the condition is one of its labels in its own words; the score is the count of
kept records against the truth (0.75^|error|, as the harness scores counts). Both sides are held
to recall and precision 0.9 at confidence 0.95 (LOTUS: failure probability 0.05). LOTUS's proxy
is a helper model's yes/no probability (`ProxyModel.HELPER_LM`): here the same server, as no
second local model is installed; rlm-ray's is its hashed n-gram proxy, with `min_records`
lowered to the records so its cascade runs. One JSON line per system: time, model calls,
records kept, truth, score.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_tasks as qt  # noqa: E402

LABEL = "complaint"
CONDITION = "the message is a complaint (unhappy about something that went wrong)"

LOTUS_SCRIPT = r"""
import json, sys, time
import pandas as pd
import lotus
from lotus.models import LM
from lotus.types import CascadeArgs, ProxyModel
args = json.loads(sys.argv[1])
import lotus.models.lm as lotus_lm
calls = [0]
_batch = lotus_lm.batch_completion
def counted(*a, **kw):  # LOTUS keeps no call count: count the requests it sends
    messages = kw.get("messages", a[1] if len(a) > 1 else [])
    calls[0] += len(messages)
    return _batch(*a, **kw)
lotus_lm.batch_completion = counted
lm = LM(model=args["model"], api_base=args["api_base"], api_key="x", temperature=0.0,
        max_tokens=8)
lotus.settings.configure(lm=lm, helper_lm=lm)
df = pd.DataFrame({"message": args["records"]})
cascade = CascadeArgs(recall_target=0.9, precision_target=0.9, sampling_percentage=0.2,
                      failure_probability=0.05, proxy_model=ProxyModel.HELPER_LM)
started = time.time()
kept, stats = df.sem_filter("{message}: " + args["condition"], cascade_args=cascade,
                            return_stats=True)
print(json.dumps({"time_s": time.time() - started, "kept": len(kept),
                  "calls": calls[0],
                  "stats": {k: v for k, v in stats.items() if isinstance(v, (int, float, str))}}))
"""


def records(n: int) -> tuple[list[str], int]:
    rng = random.Random(100_777)
    data = qt.make_records(rng, n, max(5, n // 8), [f"2026-03-{d:02d}" for d in range(1, 15)])
    return [r.line() for r in data], sum(r.label == LABEL for r in data)


def ours(texts: list[str], api_base: str, served: str) -> dict:
    from rlm_ray import ops

    started = time.time()
    kept = ops.filter(
        CONDITION,
        texts,
        model=f"openai/{served}",
        api_base=api_base,
        api_key="x",
        llm_kwargs={"temperature": 0.0, "max_tokens": 1024},
        max_batch_items=1,
        recall=0.9,
        precision=0.9,
        approximate={"min_records": 1},
        max_concurrent_calls=2,
    )
    return {
        "time_s": time.time() - started,
        "kept": len(kept.values),
        "calls": kept.usage.calls,
        "report": kept.report.summary(),
    }


def theirs(python: str, texts: list[str], api_base: str, served: str) -> dict:
    payload = {
        "model": f"openai/{served}",
        "api_base": api_base,
        "records": texts,
        "condition": CONDITION,
    }
    done = subprocess.run(
        [python, "-c", LOTUS_SCRIPT, json.dumps(payload)], capture_output=True, text=True
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--lotus-python", default="/tmp/lotus-venv/bin/python")
    parser.add_argument("--systems", nargs="+", default=["rlm-ray", "lotus"])
    args = parser.parse_args()
    from rlm_ray.local.local_model import LOCAL_MODELS, LocalServer

    texts, truth = records(args.records)
    spec = LOCAL_MODELS["local"]
    with LocalServer(spec, slots=1) as server:
        for system in args.systems:
            if system == "rlm-ray":
                row = ours(texts, server.api_base, spec.served_name)
            else:
                row = theirs(args.lotus_python, texts, server.api_base, spec.served_name)
            kept = row.get("kept")
            score = None if kept is None else round(0.75 ** abs(kept - truth), 3)
            print(json.dumps({"system": system, "records": args.records, "truth": truth,
                              "score": score, **row}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
