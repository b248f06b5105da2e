"""Needle in a haystack: find one fact in a 2-million-character context the root model never reads.

Offline by default: a scripted model on 127.0.0.1 plays the root model (it writes real code that
runs in the sandbox on Ray) and the sub-model (it answers the question about the chunk it is
sent). Pass --model/--api-base to use a real model instead, e.g. Ollama:

    python examples/needle_haystack.py --model openai/qwen2.5-coder --api-base http://127.0.0.1:11434/v1
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

QUERY = "What is the secret access code mentioned in the document?"
WORDS = "the of and to in is was for on that with as by at from this be or an are it".split()


def make_haystack(chars: int, seed: int = 7) -> tuple[str, str]:
    """Random filler lines with one needle sentence in a random place."""
    rng = random.Random(seed)
    secret = f"{rng.randrange(10**6, 10**7)}"
    lines = []
    size = 0
    while size < chars:
        line = " ".join(rng.choice(WORDS) for _ in range(12))
        lines.append(line)
        size += len(line) + 1
    lines.insert(rng.randrange(len(lines)), f"Note: the secret access code is {secret}.")
    return "\n".join(lines), secret


ROOT_TURN_1 = code(
    """print(len(context), context[:200])
import re
hits = [m.start() for m in re.finditer(r'secret|access code', context)]
print('hits at', hits[:10])
windows = [context[max(0, h - 300):h + 300] for h in hits[:5]]
answers = [llm_query(f"Read this excerpt and reply with only the secret access code, or NONE.\\n\\n{w}") for w in windows]
print('sub-model answers:', answers)"""
)


def scripted_model(request: Request) -> str:
    """Plays both models: the root (by turn) and the sub-model (by what it was asked)."""
    if "reply with only the secret access code" in request.last_user:
        found = re.search(r"access code is (\d+)", request.last_user)
        return found.group(1) if found else "NONE"
    if request.turn == 0:
        return "Let me search the context for the code instead of reading it.\n" + ROOT_TURN_1
    codes = [c for c in re.findall(r"'(\d+|NONE)'", request.last_user) if c != "NONE"]
    return f"FINAL({codes[0]})" if codes else code("print(context[:1000])")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="litellm model (default: the scripted model)")
    parser.add_argument("--api-base", default=None)
    parser.add_argument("--chars", type=int, default=2_000_000, help="size of the haystack")
    args = parser.parse_args()

    haystack, secret = make_haystack(args.chars)
    server = None
    if args.model is None:
        server = ScriptedServer(scripted_model).start()
        args.model, args.api_base = "openai/scripted-demo", server.url
    try:
        rlm = RLM(
            args.model, api_base=args.api_base, api_key=os.environ.get("OPENAI_API_KEY", "sk-local")
        )
        started = time.time()
        result = rlm.completion(QUERY, haystack)
    finally:
        if server is not None:
            server.stop()
    print(f"context: {len(haystack):,} characters; the needle is {secret}", file=sys.stderr)
    print(
        f"answer: {result.answer}   ({'right' if secret in result.answer else 'WRONG'}; "
        f"{result.usage.calls} model calls, {len(result.trace.iterations)} root turns, "
        f"{time.time() - started:.1f} s including Ray start-up)",
        file=sys.stderr,
    )
    print(result.answer)
    return 0 if secret in result.answer else 1


if __name__ == "__main__":
    raise SystemExit(main())
