"""How right the 1.5B model labels one item a call, by the form of the prompt.

    python benchmarks/classify_forms.py --seeds 7 11 100007

Straight to a local llama.cpp server (one slot, temperature 0), no Ray, no runtime: for each
form, tests/test_real_model.py's 14 messages with two labels, then 60 distinct messages of the
quality benchmark (`make_records`, one seed each) with five labels and their meanings. Prints
one JSON line per (form, set): right answers, seconds, confusions. "runtime" is the form
`rlm_ray.operators.record_ops` sends today, parsed as the runtime parses it; the others are
the forms docs/benchmarks.md compares it with.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import quality_tasks as qt  # noqa: E402
from operator_accuracy import MEANINGS  # noqa: E402
from test_real_model import COMPLAINTS, OTHERS  # noqa: E402

TWO_LABELS = {
    "complaint": "the writer is unhappy about a problem",
    "other": "praise, thanks, a question",
}


def _sentence(meanings: dict[str, str]) -> str:
    return "; ".join(f"{label} ({text})" for label, text in meanings.items())


def runtime(item: str, meanings: dict[str, str]) -> str:
    from rlm_ray.operators import record_ops

    return record_ops.classify_op(list(meanings), list(meanings.values())).prompt([item])


def label_list(item: str, meanings: dict[str, str]) -> str:
    """The form before 2026-12-03: the labels as a list, "Item: ...", "Label:"."""
    listed = "\n".join(f"- {label}: {text}" for label, text in meanings.items())
    return (
        f"Labels:\n{listed}\nAnswer with the one label that fits the item below best, written "
        f"exactly as in the list; answer unknown if none fits.\n\nItem: {item}\nLabel:"
    )


def message(item: str, meanings: dict[str, str]) -> str:
    return (
        f"Classify the message below as one of: {_sentence(meanings)}.\n\nMessage: {item}\n"
        "Answer with the label only.\nLabel:"
    )


def with_unknown(item: str, meanings: dict[str, str]) -> str:
    return (
        f"Classify the text below as one of: {_sentence(meanings)}. If none fits, answer "
        f"unknown.\n\nText: {item}\nAnswer with the label only.\nLabel:"
    )


def cue_last(item: str, meanings: dict[str, str]) -> str:
    """The form of the morning of 2026-12-03: the answer's form said after the text."""
    return (
        f"Classify the text below as one of: {_sentence(meanings)}.\n\nText: {item}\n"
        "Answer with the label only.\nLabel:"
    )


def no_cue(item: str, meanings: dict[str, str]) -> str:
    """Nothing after the text: the fewest tokens a call for the server to read."""
    return runtime(item, meanings).removesuffix("\nLabel:")


FORMS = {
    "runtime": runtime,
    "cue-last": cue_last,
    "no-cue": no_cue,
    "label-list": label_list,
    "message": message,
    "unknown": with_unknown,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forms", nargs="+", choices=list(FORMS), default=list(FORMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[7])
    parser.add_argument("--records", type=int, default=60)
    args = parser.parse_args(argv)

    import httpx

    from rlm_ray.local.local_model import LOCAL_MODELS, LocalServer
    from rlm_ray.operators.record_ops import normalise_label

    sets = {
        "test-14": (
            [(t, "complaint") for t in COMPLAINTS] + [(t, "other") for t in OTHERS],
            TWO_LABELS,
        )
    }
    for seed in args.seeds:
        data = qt.make_records(
            random.Random(seed), args.records, max(5, args.records // 8), qt._dates()
        )
        sets[f"seed-{seed}"] = ([(r.line(), r.label) for r in data], MEANINGS)
    server = LocalServer(LOCAL_MODELS["local"], slots=1).start()
    try:
        with httpx.Client(timeout=120) as client:
            for form in args.forms:
                for name, (items, meanings) in sets.items():
                    started, right, wrong = time.time(), 0, Counter()
                    for item, truth in items:
                        body = {
                            "model": "local",
                            "messages": [{"role": "user", "content": FORMS[form](item, meanings)}],
                            "temperature": 0,
                            "max_tokens": 8,
                        }
                        reply = client.post(f"{server.api_base}/chat/completions", json=body)
                        text = reply.json()["choices"][0]["message"]["content"]
                        got = normalise_label(text, list(meanings), list(meanings.values()))
                        got = got if isinstance(got, str) else "(unparsed)"
                        right += got == truth
                        wrong.update([f"{truth}->{got}"] if got != truth else [])
                    print(json.dumps({
                        "form": form, "set": name, "right": right, "of": len(items),
                        "seconds": round(time.time() - started, 1),
                        "confusions": dict(wrong.most_common(4)),
                    }), flush=True)  # fmt: skip
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
