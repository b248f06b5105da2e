"""Issue 10's own example, as a new user meets it: `rlm-ray run` over N distinct customer
messages, once as a text file (one per line) and once as a JSON list, asked a bare question
("How many of these messages complain about shipping?") that defines no labels.

    python benchmarks/count_check.py --records 60 300 --seeds 1 2 [--model local]
    python benchmarks/count_check.py --model openai/NAME --api-base URL --records 300
    python benchmarks/count_check.py --topic noise crash --records 60 --seeds 1 2   # dev

Every message is distinct (template x subject x time phrase) and whether it counts is known
from its template; messages that mention the topic without complaining about it, and
complaints about other things, are in the mix so neither a keyword nor "is it a complaint"
gives the count. The `shipping` topic (the default) is the check: nothing here was tuned on
it. The `noise` (hotel reviews) and `crash` (app reviews) topics are the development set for
label-less counts: tune prompts on those, then report `shipping`.
Prints one JSON line per run (answer, truth, score = 0.75^|error|, seconds) and a table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SHIPPING_COMPLAINTS = (
    "My {x} arrived {when} in a crushed box; the courier clearly threw it around.",
    "The {x} I ordered {when} has still not been delivered.",
    "The delivery driver left my {x} at the wrong house {when}.",
    "Shipping for the {x} I ordered {when} took three weeks instead of three days.",
    "I paid for express delivery of the {x} {when} and it came a week late.",
    "The parcel with my {x} was lost in transit {when} and nobody helps me.",
    "Your courier dumped the {x} outside in the rain {when}; the box was soaked.",
    "Tracking for the {x} shipped {when} says delivered, but nothing came.",
)
OTHER_COMPLAINTS = (
    "The {x} I bought {when} broke after two uses.",
    "I was charged twice for the {x} I ordered {when}.",
    "The {x} I got {when} smells of chemicals and gives me a headache.",
    "Your hotline was rude when I called about the {x} {when}.",
    "The {x} I received {when} is much smaller than the photos showed.",
    "The {x} I bought {when} stopped working and the warranty form errors out.",
)
NOT_COMPLAINTS = (
    "Delivery of the {x} {when} was super quick, thank you!",
    "Can you ship the {x} I saw {when} to Canada?",
    "The courier who brought my {x} {when} was very friendly.",
    "How much does shipping cost for the {x} I looked at {when}?",
    "I love the {x} I bought {when}.",
    "Does the {x} I saw {when} come in blue?",
    "Please cancel the order for the {x} I placed {when}.",
    "It would be great if the {x} I bought {when} came with a case.",
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


@dataclass(frozen=True)
class Topic:
    query: str
    hits: tuple[str, ...]  # templates of the messages the query counts
    misses: tuple[str, ...]  # other complaints, and messages that mention the topic
    subjects: tuple[str, ...]  # fills {x}
    whens: tuple[str, ...]  # fills {when}


NOISE_COMPLAINTS = (
    "Our {x} was next to the lift and the noise kept us awake {when}.",
    "Loud music from the bar under the {x} went on until 3 am {when}.",
    "The walls of the {x} are paper thin; we heard every word next door {when}.",
    "Construction work outside the {x} started at 7 am {when}, so much banging.",
    "We could not sleep in the {x} {when} because of the traffic roaring past.",
    "The air conditioner in the {x} rattled loudly all night {when}.",
)
NOISE_MISSES = (
    "The {x} was dirty when we arrived {when}; hair in the sink.",
    "Breakfast near the {x} {when} was cold and overpriced.",
    "The wifi in the {x} did not work at all {when}.",
    "Staff were rude when we checked into the {x} {when}.",
    "We were charged for the minibar in the {x} {when} although we used nothing.",
    "The {x} was wonderfully quiet {when}; we slept like babies.",
    "Despite the busy street, the {x} we had {when} was silent thanks to good windows.",
    "We stayed in the {x} {when}; is the one on the top floor as peaceful?",
    "The {x} we had {when} had a great view of the harbour.",
    "Lovely breakfast and a spotless {x} {when}.",
    "Can we book the same {x} as {when} for next year?",
)
ROOMS = (
    "double room", "suite", "twin room", "attic room", "family room", "room 214",
    "sea-view room", "single room", "corner room", "garden room",
)  # fmt: skip
STAY_WHENS = (
    "last night", "in March", "over the weekend", "during our honeymoon", "on our last trip",
    "in August", "at New Year", "for two nights",
)  # fmt: skip
CRASH_REPORTS = (
    "The app crashes every time I open the {x} {when}.",
    "Tapping the {x} {when} closes the whole app instantly.",
    "Lost my work twice: the app shut down in the {x} {when}.",
    "The {x} keeps force-closing the app {when}.",
    "The app dies with a black screen whenever I touch the {x} {when}.",
    "The {x} freezes and then the app quits {when}.",
)
CRASH_MISSES = (
    "The {x} is full of ads {when}; so annoying.",
    "The {x} drains my battery {when}.",
    "Why is the {x} behind a paywall {when}? Too expensive.",
    "The {x} is so slow to load {when}, it takes a minute.",
    "The text in the {x} is too small to read {when}.",
    "The {x} used to crash, but {when} it works perfectly. Thanks!",
    "I read that the {x} crashes {when}, but I never had a problem.",
    "Love the new {x} {when}, five stars.",
    "Could you add dark mode to the {x}? I use it {when}.",
    "The {x} works great {when}.",
)
FEATURES = (
    "photo editor", "checkout screen", "map view", "login page", "settings menu",
    "video player", "search bar", "chat tab", "calendar widget", "upload button",
)  # fmt: skip
APP_WHENS = (
    "since the last update", "on my Pixel", "on my iPad", "every morning", "after version 4.2",
    "on Android 14", "when offline", "on my old iPhone",
)  # fmt: skip
TOPICS = {
    "shipping": Topic(
        "How many of these messages complain about shipping or delivery?",
        SHIPPING_COMPLAINTS, OTHER_COMPLAINTS + NOT_COMPLAINTS, PRODUCTS, WHEN,
    ),
    "noise": Topic(
        "How many of these hotel reviews complain about noise?",
        NOISE_COMPLAINTS, NOISE_MISSES, ROOMS, STAY_WHENS,
    ),
    "crash": Topic(
        "How many of these reviews report that the app crashes?",
        CRASH_REPORTS, CRASH_MISSES, FEATURES, APP_WHENS,
    ),
}  # fmt: skip
QUERY = TOPICS["shipping"].query


def messages(n: int, seed: int, topic: str = "shipping") -> tuple[list[str], int]:
    """`n` distinct messages in random order, and how many the topic's query counts."""
    rng = random.Random(seed)
    t = TOPICS[topic]
    pool = [
        (template.format(x=x, when=w), group is t.hits)
        for group in (t.hits, t.misses)
        for template in group
        for x in t.subjects
        for w in t.whens
    ]
    hits = [m for m in pool if m[1]]
    others = [m for m in pool if not m[1]]
    k = rng.randint(n // 6, n // 3)
    chosen = rng.sample(hits, k) + rng.sample(others, n - k)
    rng.shuffle(chosen)
    return [text for text, _ in chosen], k


def parse_count(answer: str) -> int | None:
    numbers = re.findall(r"-?\d+", answer.replace(",", ""))
    return int(numbers[-1]) if numbers else None


def run_one(
    args: argparse.Namespace, topic: str, n: int, seed: int, kind: str, workdir: Path
) -> dict:
    texts, truth = messages(n, seed, topic)
    path = workdir / f"{topic}-{n}-{seed}.{'json' if kind == 'json' else 'txt'}"
    path.write_text(json.dumps(texts) if kind == "json" else "\n".join(texts) + "\n")
    command = [sys.executable, "-m", "rlm_ray", "run", "--model", args.model, "--quiet"]
    command += ["--context", str(path), "--query", TOPICS[topic].query, "--json"]
    if args.api_base:
        command += ["--api-base", args.api_base]
    if args.sub_model:
        command += ["--sub-model", args.sub_model]
    command += ["--max-time", str(args.max_time)]
    if args.traces:
        Path(args.traces).mkdir(parents=True, exist_ok=True)
        command += ["--trace", str(Path(args.traces) / f"{path.stem}-{kind}.jsonl")]
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    seconds = time.time() - started
    row = {"topic": topic, "records": n, "seed": seed, "input": kind, "truth": truth}
    row["seconds"] = round(seconds, 1)
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
    parser.add_argument("--topic", nargs="+", default=["shipping"], choices=sorted(TOPICS))
    parser.add_argument("--records", type=int, nargs="+", default=[60, 300])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--inputs", nargs="+", default=["txt", "json"], choices=["txt", "json"])
    parser.add_argument("--max-time", type=float, default=600.0)
    parser.add_argument("--out", help="append the JSON lines to this file too")
    parser.add_argument("--traces", metavar="DIR", help="write each run's trace to DIR")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for topic, n, seed, kind in itertools.product(
            args.topic, args.records, args.seeds, args.inputs
        ):
            row = run_one(args, topic, n, seed, kind, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
    print("\n| topic | records | input | runs | mean score | answers (truth) | mean s |")
    print("|---|---|---|---|---|---|---|")
    for topic, n, kind in itertools.product(args.topic, args.records, args.inputs):
        sel = [r for r in rows if (r["topic"], r["records"], r["input"]) == (topic, n, kind)]
        shown = ", ".join(f"{r['answer']!s:.12} ({r['truth']})" for r in sel)
        mean_score = statistics.mean(r["score"] for r in sel)
        mean_s = statistics.mean(r["seconds"] for r in sel)
        print(
            f"| {topic} | {n} | {kind} | {len(sel)} | {mean_score:.3f} | {shown} | {mean_s:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
