"""How long host code takes on the model-made inputs of issue 25 (item 2), outside any clock.

    python benchmarks/host_bounds.py [--items 5000] [--brackets 400000] [--line 1000000]

Times, in this process, the pieces that read a child's context and query for its first turn, a
trace file's typed answer and a session rebuild's variables: `prompts.describe_context` of
``[['x']] * 1000 + [['x' * 10**6] * 10] * ITEMS`` (one 1 MB string, shared), `prompts.approach`
of ``'how many ' + '(' * BRACKETS``, `answer_source.candidates` (where a typed answer was
shown; `answer_rule.literal_rule` before issue 30) of a LINE-character output line and a literal
half as long, and `repl.describe_value` of a 20 M-item list. Run it from
another checkout (``PYTHONPATH=OTHER``) to compare; give smaller sizes there, as the old code is
quadratic in them.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rlm_ray.core.answer_source import candidates  # noqa: E402
from rlm_ray.core.repl import describe_value  # noqa: E402
from rlm_ray.prompting import prompts  # noqa: E402


def timed(label: str, work: Callable[[], object]) -> None:
    started = time.perf_counter()
    work()
    print(f"{label}: {time.perf_counter() - started:.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--brackets", type=int, default=400_000)
    parser.add_argument("--line", type=int, default=1_000_000)
    args = parser.parse_args()
    big = "x" * 10**6
    context = [["x"]] * 1000 + [[big] * 10] * args.items
    timed(f"describe_context, {args.items:,} items", lambda: prompts.describe_context(context))
    query = "how many " + "(" * args.brackets
    timed(f"approach, {args.brackets:,} brackets", lambda: prompts.approach(query))
    literal, line = "-" * (args.line // 2) + "y", "-" * args.line + "x"
    shown = [("print(x)", line)]
    timed(f"candidates, a {args.line:,}-char line", lambda: candidates(literal, shown))
    values = [0] * 20_000_000
    timed("describe_value, 20 M items", lambda: describe_value(values))


if __name__ == "__main__":
    main()
