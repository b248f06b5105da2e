"""The local model on a fixed task set: plain model call vs RLM without sub-calls vs RLM with them.

    pip install -e ".[local]"
    python benchmarks/local_model.py                      # all tasks x all modes, markdown table
    python benchmarks/local_model.py --tasks needle-10k --modes rlm

Tasks (deterministic data, seeded):
  needle-10k / needle-100k / needle-500k  one sentence with a code in ~10K/100K/500K characters
  count-100 / count-400                   how many of 100/400 customer messages are complaints
Modes:
  plain    one model call over query + whole context (`max_depth=0`); fails when the context
           does not fit the 16k-token window
  rlm-code the REPL, prompt "small-code": code only, no sub-calls
  rlm      the REPL, prompt "small": code and `llm_query` fan-out
An answer is right when the only number in it is the expected one (plain calls answer in a
sentence). Every run gets `--max-time` seconds (the target: 180); a run over it, or with an error, counts as
wrong. Model: `--model local` (Qwen2.5-Coder-1.5B) at temperature 0, `--slots` server slots.
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
from rlm_ray.errors import RLMError  # noqa: E402

COMPLAINTS = [
    "My order arrived broken and nobody answers my emails.",
    "I was charged twice for the same ticket and I am furious.",
    "The delivery is three weeks late and support keeps ignoring me.",
    "The jacket fell apart after one wash, this is unacceptable.",
    "Your app deleted all my saved notes and I want a refund.",
    "The hotel room was dirty and the staff were rude to us.",
    "I have been on hold for two hours, terrible service.",
    "The replacement part you sent is the wrong size again.",
]
OTHERS = [
    "Thanks, the delivery was quick and the product works great.",
    "Could you tell me your opening hours on Sunday?",
    "I love the new colours in the spring collection.",
    "The staff at the Lyon store were very friendly and helpful.",
    "Do you ship to Canada?",
    "Great service, I will order again.",
    "What sizes does the blue coat come in?",
    "Is the garden centre open on public holidays?",
]
WORDS = (
    "the river town market harbor spring winter council bridge mill farmer lantern road season "
    "festival baker school"
).split()


def needle_task(chars: int) -> tuple[str, str, str]:
    rng = random.Random(chars)
    code = str(rng.randrange(10_000, 100_000))
    sentences: list[str] = []
    size = 0
    while size < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + "."
        sentences.append(sentence)
        size += len(sentence) + 1
    sentences.insert(
        rng.randrange(len(sentences)), f"The secret code for the north gate is {code}."
    )
    return "What is the secret code for the north gate?", " ".join(sentences), code


def count_task(records: int) -> tuple[str, list[str], str]:
    rng = random.Random(records)
    complaints = records // 4 + rng.randrange(records // 10)
    items = [rng.choice(COMPLAINTS) for _ in range(complaints)]
    items += [rng.choice(OTHERS) for _ in range(records - complaints)]
    rng.shuffle(items)
    return "How many messages are complaints?", items, str(complaints)


TASKS = {
    "needle-10k": lambda: needle_task(10_000),
    "needle-100k": lambda: needle_task(100_000),
    "needle-500k": lambda: needle_task(500_000),
    "count-100": lambda: count_task(100),
    "count-400": lambda: count_task(400),
}
MODES = {
    "plain": {"max_depth": 0},
    "rlm-code": {"prompt": "small-code"},
    "rlm": {"prompt": "small"},
}


def is_right(answer: str, expected: str) -> bool:
    """The answer names exactly one number, the expected one: "27" and "There are 27
    complaints." are right, "27 of 100" is not."""
    return re.findall(r"\d+", answer) == [expected]


def run(task: str, mode: str, args: argparse.Namespace) -> dict:
    query, context, expected = TASKS[task]()
    rlm = RLM(
        args.model,
        max_iterations=6,
        max_time_s=args.max_time,
        local_server_slots=args.slots,
        **MODES[mode],
    )
    started = time.time()
    try:
        result = rlm.completion(query, context)
        answer, calls = result.answer.strip(), result.usage.calls
        subcalls = sum(len(cell.subcalls) for it in result.trace.iterations for cell in it.cells)
    except RLMError as exc:
        answer, calls, subcalls = f"error: {type(exc).__name__}", 0, 0
    wall = time.time() - started
    return {
        "task": task,
        "mode": mode,
        "right": is_right(answer, expected),
        "answer": answer if len(answer) <= 40 else answer[:18] + " … " + answer[-18:],
        "expected": expected,
        "wall_s": wall,
        "calls": calls,
        "subcalls": subcalls,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    parser.add_argument("--max-time", type=float, default=180.0)
    parser.add_argument("--slots", type=int, default=1)
    args = parser.parse_args()
    rows = []
    print("| task | mode | right | answer (expected) | wall s | model calls | sub-calls |")
    print("|---|---|---|---|---|---|---|")
    for mode in args.modes:
        for task in args.tasks:
            row = run(task, mode, args)
            rows.append(row)
            print(
                f"| {row['task']} | {row['mode']} | {'yes' if row['right'] else 'no'} | "
                f"{row['answer']} ({row['expected']}) | {row['wall_s']:.1f} | {row['calls']} | "
                f"{row['subcalls']} |",
                flush=True,
            )
    for mode in args.modes:
        mine = [r for r in rows if r["mode"] == mode]
        right = sum(r["right"] for r in mine)
        print(f"{mode}: {right}/{len(mine)} right", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
