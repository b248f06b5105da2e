"""Object-store benchmark: a corpus handed to many sub-calls is stored once, not once per call.

    python benchmarks/corpus_store.py                      # 1 GiB corpus, 64 child RLMs
    python benchmarks/corpus_store.py --kind llm           # 64 llm_query calls, 1 MiB slice each
    python benchmarks/corpus_store.py --mb 64 --calls 16   # a quick run

Builds a synthetic corpus in memory (ASCII documents of ~100 KB), loads it with
`rlm_ray.load` (chunks put once, by the driver), then runs one RLM whose root cuts the corpus
into `--calls` slices and hands one to each sub-call: `recursive_llm('...', slice)` (a child RLM
whose `context` is a view of the slice; it answers from `len(context)`, its documents and a
`grep` over its slice) or `llm_query([instruction, slice])` (the gateway reads the slice and
sends it to the model). The model is the scripted server on 127.0.0.1.

Object-store usage (plasma) is sampled every 0.2 s through Ray's memory summary during the run;
the result is its peak over the corpus size. Target (issue 3): <= 1.1 x for a 1 GB corpus and
64 sub-calls (no per-call copies).
"""

from __future__ import annotations

import argparse
import os
import re
import threading
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pyarrow as pa
import ray
from ray._private.internal_api import memory_summary

import rlm_ray
from rlm_ray.testing import ScriptedServer, by_marker, code, turns

DOC_CHARS = 100_000

ROOT_RLM = """
pieces = context.chunks(len(context) // {calls} + 1)
answers = [recursive_llm('CHILD: how long is your context?', p) for p in pieces]
print(len(answers), sum(int(a.split()[0]) for a in answers))
FINAL(sum(int(a.split()[0]) for a in answers))
"""
CHILD = "FINAL(f'{len(context)} {len(context.documents)} {len(context.grep(\"needle\"))}')"
ROOT_LLM = """
step = len(context) // {calls}
pieces = [context[i * step : i * step + {slice_chars}] for i in range({calls})]
answers = [llm_query(['LEAF: how long is this text?', p]) for p in pieces]
FINAL(sum(int(a) for a in answers))
"""


def make_table(mb: int) -> pa.Table:
    words = "alpha beta gamma delta corpus arrow object store handle slice ".split()
    base = " ".join(words[i % len(words)] for i in range(DOC_CHARS // 6))[:DOC_CHARS]
    n = max(1, mb * 2**20 // DOC_CHARS)
    texts = [f"doc {i} needle " + base for i in range(n)]
    return pa.table({"text": pa.array(texts, pa.large_string())})


def plasma_mib(address: str) -> float:
    summary = memory_summary(address=address, stats_only=True)
    used = re.search(r"Plasma memory usage (\d+) MiB", summary)
    spilled = re.search(r"Spilled (\d+) MiB", summary)
    return float(used.group(1) if used else 0) + float(spilled.group(1) if spilled else 0)


class Sampler(threading.Thread):
    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address, self.peak, self.stop = address, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, plasma_mib(self.address))
            self.stop.wait(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="corpus size in MiB")
    parser.add_argument("--calls", type=int, default=64, help="sub-calls, one slice each")
    parser.add_argument("--kind", choices=["rlm", "llm"], default="rlm")
    parser.add_argument("--slice-chars", type=int, default=2**20, help="--kind llm: per call")
    parser.add_argument("--chunk-size", type=int, default=200_000)
    args = parser.parse_args()

    ray.init(
        address="local",  # never attach to another Ray on this machine
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=int(max(3 * 2**30, args.mb * 2**20 * 2.5)),
    )
    address = ray.get_runtime_context().gcs_address
    t0 = time.time()
    table = make_table(args.mb)
    corpus_mib = table.column("text").nbytes / 2**20
    t1 = time.time()
    corpus = rlm_ray.load(table, chunk_size=args.chunk_size)
    del table
    t2 = time.time()
    loaded = plasma_mib(address)
    print(
        f"corpus {corpus_mib:,.0f} MiB, {len(corpus.documents):,} documents, "
        f"{len(corpus.chunks()):,} chunks; built in {t1 - t0:.1f} s, loaded in {t2 - t1:.1f} s; "
        f"object store after load: {loaded:,.0f} MiB"
    )

    root = ROOT_RLM if args.kind == "rlm" else ROOT_LLM
    reply = by_marker(
        {
            "CHILD:": turns(code(CHILD)),
            "LEAF:": lambda r: str(len(r.first_user)),
        },
        default=turns(code(root.format(calls=args.calls, slice_chars=args.slice_chars))),
    )
    with ScriptedServer(reply) as server:
        rlm = rlm_ray.RLM(
            "openai/scripted",
            api_base=server.url,
            api_key="x",
            max_depth=2 if args.kind == "rlm" else 1,
            max_time_s=1800,
            cell_timeout_s=1200,
        )
        rlm.completion("warm up", "ctx")  # start the gateways and the pool: not measured
        sampler = Sampler(address)
        sampler.start()
        started = time.time()
        result = rlm.completion("How long is the corpus?", corpus)
        elapsed = time.time() - started
        sampler.stop.set()
        sampler.join()
    peak = max(sampler.peak, loaded)
    expected = len(corpus) if args.kind == "rlm" else None
    print(
        f"{args.calls} {args.kind} sub-calls in {elapsed:.1f} s; answer {result.answer}"
        + (f" (expected {expected})" if expected else "")
    )
    print(
        f"object store peak {peak:,.0f} MiB = {peak / corpus_mib:.3f} x the corpus "
        f"({corpus_mib:,.0f} MiB); target <= 1.1 x"
    )


if __name__ == "__main__":
    main()
