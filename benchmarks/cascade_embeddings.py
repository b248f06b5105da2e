"""A cascade's proxy on embeddings against its n-gram proxy, on the quality benchmark's records,
with the local model's llama.cpp server as the embedding model (docs/cascades.md, "Embeddings").

    python benchmarks/cascade_embeddings.py --records 1500 --held-out 500
    python benchmarks/cascade_embeddings.py --speed-only 64    # embedding against the oracle

Starts `python -m rlm_ray.local.local_model serve ... --embeddings` (mean pooling; `--slots` inputs
embedded at once, 512 tokens each) on a free port,
embeds the records through rlm-ray's own embedding call (`rlm_ray.models.embeddings.aembed`, the lean
path, `BATCH_RECORDS` a call, one call at a time), and times it. Then, for 100 / 200 / 500 / 1,000
training records, trains the proxy three ways (n-grams as shipped; embeddings alone; both) on
the records' true labels (what a perfect oracle would answer) and scores the held-out records:
a filter's AUC (complaint or not) and a classifier's top-label accuracy (five labels). Prints
one JSON line per measurement, with the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import quality_tasks as qt  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from rlm_ray.cascade import proxy  # noqa: E402
from rlm_ray.local.local_model import LOCAL_MODELS, model_path  # noqa: E402
from rlm_ray.models import embeddings, openai_http  # noqa: E402
from rlm_ray.models.llm import LLMRequest  # noqa: E402

SIZES = (100, 200, 500, 1_000)


def load() -> str:
    return " ".join(os.getloadavg().__repr__().strip("()").split(", "))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(name: str, threads: int, slots: int) -> tuple[subprocess.Popen, str]:
    spec, port = LOCAL_MODELS[name], free_port()
    argv = [sys.executable, "-m", "rlm_ray.local.local_model", "serve", str(model_path(spec))]
    argv += ["--name", spec.served_name, "--port", str(port), "--threads", str(threads)]
    argv += ["--slots", str(slots), "--ctx-per-slot", "512", "--parent", str(os.getpid())]
    argv += ["--embeddings"]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return server, url + "/v1"
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the embedding server did not start")


async def embed_all(url: str, model: str, texts: list[str]) -> tuple[np.ndarray, int]:
    template = LLMRequest(f"openai/{model}", [], api_base=url, api_key="local", timeout_s=3600)
    rows, tokens = [], 0
    for a in range(0, len(texts), embeddings.BATCH_RECORDS):
        request = embeddings.batch_request(template, texts[a : a + embeddings.BATCH_RECORDS])
        reply = await embeddings.aembed(request)
        vectors, reply = embeddings.split(reply)
        rows.append(vectors)
        tokens += reply.input_tokens
        print(f"embedded {a + len(vectors)} of {len(texts)}", file=sys.stderr, flush=True)
    await openai_http.aclose()
    return np.concatenate(rows), tokens


def chat_works(url: str, model: str) -> bool:
    """Whether the server started with embeddings still answers a chat request."""
    body = {"model": model, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}
    request = urllib.request.Request(
        url + "/chat/completions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return bool(json.loads(r.read())["choices"][0]["message"]["content"])
    except Exception as exc:
        print(json.dumps({"chat_error": str(exc)[:200]}), flush=True)
        return False


def oracle_seconds(url: str, model: str, texts: list[str]) -> tuple[float, int]:
    """The local oracle's seconds for `texts`: `llm_classify`'s own batches (the local model's
    batch size, its label meanings), each one chat call made as the local sub-model's are."""
    from operator_accuracy import MEANINGS

    from rlm_ray import record_ops

    op = record_ops.classify_op(list(MEANINGS), list(MEANINGS.values()))
    calls = 0

    def ask(prompts: list) -> list[str]:
        nonlocal calls
        answers = []
        for prompt in prompts:
            calls += 1
            body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
            body.update(temperature=0.0, max_tokens=1024)
            request = urllib.request.Request(
                url + "/chat/completions", json.dumps(body).encode(),
                {"Content-Type": "application/json"},
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=600) as r:
                answers.append(json.loads(r.read())["choices"][0]["message"]["content"])
        return answers

    started = time.perf_counter()
    record_ops.run(op, texts, texts, ask, window_tokens=4096,
                   max_items=record_ops.batch_items_for("local"))  # fmt: skip
    return time.perf_counter() - started, calls


def quality(texts, vectors, labels, n: int, held: int, how: str) -> dict:
    train_texts, test_texts = texts[:n], texts[-held:]
    train_vectors = None if how == "ngrams" else vectors[:n]
    test_vectors = None if how == "ngrams" else vectors[-held:]
    only = how == "embeddings"
    is_complaint = [label == "complaint" for label in labels]
    started = time.perf_counter()
    yes_no = proxy.train(train_texts, is_complaint[:n], train_vectors, ngrams=not only)
    trained_s = time.perf_counter() - started
    auc = roc_auc_score(is_complaint[-held:], proxy.score(yes_no, test_texts, test_vectors))
    five = proxy.train(train_texts, labels[:n], train_vectors, ngrams=not only)
    picked = proxy.score(five, test_texts, test_vectors).argmax(axis=1)
    right = np.mean([five.classes[i] == label for i, label in zip(picked, labels[-held:])])
    return {"proxy": how, "train": n, "auc": round(float(auc), 4), "accuracy": float(right),
            "filter_train_s": round(trained_s, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_500)
    parser.add_argument("--held-out", type=int, default=500)
    parser.add_argument("--seed", type=int, default=100_002)
    parser.add_argument("--model", default="local")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slots", type=int, default=1, help="inputs the server embeds at once")
    parser.add_argument(
        "--speed-only", type=int, default=0,
        help="embed this many records, then ask the local oracle about as many (same server, "
        "same load): seconds a record each way; no proxy quality",
    )  # fmt: skip
    args = parser.parse_args()
    rng = random.Random(args.seed)
    records = qt.make_records(rng, args.records, max(5, args.records // 8), qt._dates())
    texts, labels = [r.line() for r in records], [r.label for r in records]
    served = LOCAL_MODELS[args.model].served_name
    if args.speed_only:
        texts = texts[: args.speed_only]
    server, url = start_server(args.model, args.threads, args.slots)
    try:
        print(json.dumps({"chat_with_embeddings_on": chat_works(url, served)}), flush=True)
        before, started = load(), time.perf_counter()
        vectors, tokens = asyncio.run(embed_all(url, served, texts))
        seconds = time.perf_counter() - started
        if args.speed_only:
            asked_s, calls = oracle_seconds(url, served, texts)
            print(json.dumps({"oracle_records": len(texts), "oracle_calls": calls,
                              "oracle_seconds": round(asked_s, 1),
                              "oracle_per_record_s": round(asked_s / len(texts), 4),
                              "load_after_oracle": load()}), flush=True)  # fmt: skip
    finally:
        server.kill()
        server.wait()
    print(json.dumps({"embedded": len(texts), "seconds": round(seconds, 1),
                      "per_record_s": round(seconds / len(texts), 4), "tokens": tokens,
                      "dimensions": int(vectors.shape[1]), "slots": args.slots,
                      "load_before": before,
                      "load_after": load()}), flush=True)  # fmt: skip
    for n in SIZES:
        if n + args.held_out > len(texts):
            continue
        for how in ("ngrams", "embeddings", "both"):
            print(json.dumps(quality(texts, vectors, labels, n, args.held_out, how)), flush=True)


if __name__ == "__main__":
    main()
