"""Issue 10's own example, as a new user meets it: `rlm-ray run` over N distinct customer
messages, once as a text file (one per line) and once as a JSON list, asked a bare question
("How many of these messages complain about shipping?") that defines no labels.

    python benchmarks/count_check.py --records 60 300 --seeds 1 2 [--model local]
    python benchmarks/count_check.py --model openai/NAME --api-base URL --records 300

Every message is distinct (template x product x time phrase) and whether it complains about
shipping is known from its template; messages that mention delivery without complaining, and
complaints about other things, are in the mix so neither a keyword nor "is it a complaint"
gives the count. Nothing here was used to write a prompt: it is a check, not a dev set.
Prints one JSON line per run (answer, truth, score = 0.75^|error|, seconds) and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHIPPING_COMPLAINTS = (
    "My {product} arrived {when} in a crushed box; the courier clearly threw it around.",
    "The {product} I ordered {when} has still not been delivered.",
    "The delivery driver left my {product} at the wrong house {when}.",
    "Shipping for the {product} I ordered {when} took three weeks instead of three days.",
    "I paid for express delivery of the {product} {when} and it came a week late.",
    "The parcel with my {product} was lost in transit {when} and nobody helps me.",
    "Your courier dumped the {product} outside in the rain {when}; the box was soaked.",
    "Tracking for the {product} shipped {when} says delivered, but nothing came.",
)
OTHER_COMPLAINTS = (
    "The {product} I bought {when} broke after two uses.",
    "I was charged twice for the {product} I ordered {when}.",
    "The {product} I got {when} smells of chemicals and gives me a headache.",
    "Your hotline was rude when I called about the {product} {when}.",
    "The {product} I received {when} is much smaller than the photos showed.",
    "The {product} I bought {when} stopped working and the warranty form errors out.",
)
NOT_COMPLAINTS = (
    "Delivery of the {product} {when} was super quick, thank you!",
    "Can you ship the {product} I saw {when} to Canada?",
    "The courier who brought my {product} {when} was very friendly.",
    "How much does shipping cost for the {product} I looked at {when}?",
    "I love the {product} I bought {when}.",
    "Does the {product} I saw {when} come in blue?",
    "Please cancel the order for the {product} I placed {when}.",
    "It would be great if the {product} I bought {when} came with a case.",
)
PRODUCTS = (
    "kettle", "umbrella", "drill", "table lamp", "bike lock", "frying pan", "camera bag",
    "sofa cushion", "alarm clock", "water bottle", "keyboard", "sleeping bag", "mirror",
    "plant pot", "hair dryer", "chess set", "toolbox", "picnic basket", "scarf", "monitor",
)  # fmt: skip
WHEN = (
    "last Tuesday", "on Friday", "three days ago", "this week", "in April", "at the weekend",
    "two weeks ago", "before Easter",
)  # fmt: skip
QUERY = "How many of these messages complain about shipping or delivery?"


def messages(n: int, seed: int) -> tuple[list[str], int]:
    """`n` distinct messages in random order, and how many complain about shipping."""
    rng = random.Random(seed)
    groups = (SHIPPING_COMPLAINTS, OTHER_COMPLAINTS, NOT_COMPLAINTS)
    pool = [
        (template.format(product=p, when=w), group is SHIPPING_COMPLAINTS)
        for group in groups
        for template in group
        for p in PRODUCTS
        for w in WHEN
    ]
    shipping = [m for m in pool if m[1]]
    others = [m for m in pool if not m[1]]
    k = rng.randint(n // 6, n // 3)
    chosen = rng.sample(shipping, k) + rng.sample(others, n - k)
    rng.shuffle(chosen)
    return [text for text, _ in chosen], k


def parse_count(answer: str) -> int | None:
    numbers = re.findall(r"-?\d+", answer.replace(",", ""))
    return int(numbers[-1]) if numbers else None


def run_one(args: argparse.Namespace, n: int, seed: int, kind: str, workdir: Path) -> dict:
    texts, truth = messages(n, seed)
    path = workdir / f"messages-{n}-{seed}.{'json' if kind == 'json' else 'txt'}"
    path.write_text(json.dumps(texts) if kind == "json" else "\n".join(texts) + "\n")
    command = [sys.executable, "-m", "rlm_ray", "run", "--model", args.model, "--quiet"]
    command += ["--context", str(path), "--query", QUERY, "--json"]
    if args.api_base:
        command += ["--api-base", args.api_base]
    if args.sub_model:
        command += ["--sub-model", args.sub_model]
    command += ["--max-time", str(args.max_time)]
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    seconds = time.time() - started
    row = {"records": n, "seed": seed, "input": kind, "truth": truth, "seconds": round(seconds, 1)}
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["?"]
        return {**row, "answer": None, "score": 0.0, "error": tail[0][:300]}
    out = json.loads(done.stdout)
    got = parse_count(out["answer"])
    score = 0.0 if got is None else 0.75 ** abs(got - truth)
    tokens = out["usage"]["input_tokens"] + out["usage"]["output_tokens"]
    return {**row, "answer": out["answer"][:80], "score": round(score, 3), "tokens": tokens}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local")
    parser.add_argument("--sub-model")
    parser.add_argument("--api-base")
    parser.add_argument("--records", type=int, nargs="+", default=[60, 300])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--inputs", nargs="+", default=["txt", "json"], choices=["txt", "json"])
    parser.add_argument("--max-time", type=float, default=600.0)
    parser.add_argument("--out", help="append the JSON lines to this file too")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.records:
            for seed in args.seeds:
                for kind in args.inputs:
                    row = run_one(args, n, seed, kind, Path(tmp))
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if args.out:
                        with open(args.out, "a") as f:
                            f.write(json.dumps(row) + "\n")
    print("\n| records | input | runs | mean score | answers (truth) | mean s |")
    print("|---|---|---|---|---|---|")
    for n in args.records:
        for kind in args.inputs:
            sel = [r for r in rows if r["records"] == n and r["input"] == kind]
            shown = ", ".join(f"{r['answer']!s:.12} ({r['truth']})" for r in sel)
            mean_score = statistics.mean(r["score"] for r in sel)
            mean_s = statistics.mean(r["seconds"] for r in sel)
            print(f"| {n} | {kind} | {len(sel)} | {mean_score:.3f} | {shown} | {mean_s:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
