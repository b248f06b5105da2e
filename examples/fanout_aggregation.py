"""Fan-out aggregation: classify 2,000 reviews with parallel sub-calls and count the positive ones.

The root model splits the records into chunks and classifies every chunk with one list
comprehension of `llm_query` calls: rlm-ray sends them all at once (the scripted server reports
how many were in flight together). Offline by default (a scripted model on 127.0.0.1 with 100 ms
latency per call); pass --model/--api-base for a real model.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rlm_ray import RLM  # noqa: E402
from rlm_ray.testing import Request, ScriptedServer, code  # noqa: E402

QUERY = "How many of these product reviews are positive?"
POSITIVE = ["love it", "works great", "excellent value", "would buy again"]
NEGATIVE = ["broke after a week", "waste of money", "does not work", "very disappointed"]


def make_reviews(n: int, seed: int = 3) -> tuple[list[str], int]:
    rng = random.Random(seed)
    reviews, positive = [], 0
    for i in range(n):
        good = rng.random() < 0.37
        positive += good
        phrase = rng.choice(POSITIVE if good else NEGATIVE)
        reviews.append(f"review {i}: {phrase}, said customer {rng.randrange(10**5)}")
    return reviews, positive


ROOT_TURN_1 = code(
    """print(len(context), context[:3])
chunks = ['\\n'.join(context[i:i + 50]) for i in range(0, len(context), 50)]
counts = [int(llm_query(f"Count the POSITIVE reviews below. Reply with one integer.\\n{c}")) for c in chunks]
total = sum(counts)
print(len(chunks), 'chunks, total positive:', total)
FINAL(total)"""
)


def scripted_model(request: Request) -> str:
    """The root writes the fan-out; the sub-model 'classifies' by the phrases it sees."""
    if request.last_user.startswith("Count the POSITIVE reviews"):
        text = request.last_user
        return str(sum(len(re.findall(re.escape(p), text)) for p in POSITIVE))
    return "I will classify the reviews in parallel chunks.\n" + ROOT_TURN_1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--api-base", default=None)
    parser.add_argument("--reviews", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=100.0, help="scripted model latency")
    args = parser.parse_args()

    reviews, truth = make_reviews(args.reviews)
    server = None
    if args.model is None:
        server = ScriptedServer(scripted_model, latency_s=args.latency_ms / 1000).start()
        args.model, args.api_base = "openai/scripted-demo", server.url
    try:
        rlm = RLM(
            args.model, api_base=args.api_base, api_key=os.environ.get("OPENAI_API_KEY", "sk-local")
        )
        started = time.time()
        result = rlm.completion(QUERY, reviews)
        elapsed = time.time() - started
    finally:
        if server is not None:
            server.stop()
    print(f"truth: {truth} positive of {len(reviews)}", file=sys.stderr)
    peak = f", peak {server.peak_concurrency} calls in flight" if server else ""
    print(
        f"answer: {result.answer} ({result.usage.calls} model calls{peak}; "
        f"run {result.timings['run_s']:.2f} s, {elapsed:.1f} s with start-up)",
        file=sys.stderr,
    )
    print(result.answer)
    return 0 if result.answer.strip() == str(truth) else 1


if __name__ == "__main__":
    raise SystemExit(main())
