"""Corpora read on the cluster (issue 28): load time, driver peak RSS, object-store bytes per node,
spill, and a 256-wide fan-out over the loaded corpus with and without chunk locality.

    python benchmarks/distributed_corpus.py                    # 0.5, 1, 2 and 5 GB
    python benchmarks/distributed_corpus.py --gb 0.5 --store-gb 1.5
    python benchmarks/distributed_corpus.py --switch           # driver vs cluster, small corpora

A local 3-node Ray (`ray.cluster_utils.Cluster`: a head and two worker raylets, one CPU each, as
the multi-node tests start) on this machine. Each corpus is written from a seed as 64 MB JSONL
shards under /tmp (deleted afterwards), then loaded by a fresh driver process (so its peak RSS
is the load's own) with `rlm_ray.load("DIR/*.jsonl")`; the same driver runs the fan-out: the
root's code sends 256 chunks (spread over the corpus) to `llm_query` and sums the answers, which
the scripted model server (no real LLM) gives by counting a word in the prompt. "Moved" is the
bytes of chunks rendered on a node that did not hold them (the trace's `chunk_bytes_pulled`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = "harbor gate crane tide ledger manifest berth cargo pilot anchor".split()
SHARD_BYTES = 64 << 20
FAN_OUT = 256


def write_corpus(folder: Path, gb: float, seed: int = 28) -> int:
    """JSONL shards of ~4 KB documents until `gb` GB are written; some hold the word "needle"."""
    rng = random.Random(seed)
    pool = [" ".join(rng.choices(WORDS, k=rng.randint(300, 1100))) for _ in range(2000)]
    folder.mkdir(parents=True, exist_ok=True)
    target, written, shard, i = int(gb * 1e9), 0, 0, 0
    while written < target:
        with (folder / f"part-{shard:05d}.jsonl").open("w") as f:
            size = 0
            while size < SHARD_BYTES and written + size < target:
                text = pool[rng.randrange(len(pool))]
                if i % 7 == 0:
                    text = f"needle {text}"
                size += f.write(json.dumps({"text": text, "n": i}) + "\n")
                i += 1
        written, shard = written + size, shard + 1
    return written


# -- the driver: one process per corpus -----------------------------------------------------------

ROOT = """
cs = context.chunks()
step = max(1, len(cs) // {n})
pick = cs[{offset}::step][:{n}]
counts = [llm_query(['COUNT', c]) for c in pick]
FINAL(sum(int(x) for x in counts))
"""


def driver(address: str, folder: str, distributed: str, fan_out: bool) -> None:
    import resource

    import ray

    import rlm_ray
    from rlm_ray import RLM
    from rlm_ray.corpus import store
    from rlm_ray.testing import ScriptedServer, by_marker, code, turns

    ray.init(address=address, log_to_driver=False)
    started = time.perf_counter()
    mode = {"auto": None, "cluster": True, "driver": False}[distributed]
    corpus = rlm_ray.load(f"{folder}/*.jsonl", distributed=mode)
    out: dict = {"load_s": time.perf_counter() - started, "chars": len(corpus)}
    out["rss_load_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["chunks"] = len(corpus._source.bounds) - 1
    out["by_node"] = _bytes_by_node(store.view_objects(corpus))
    out["spilled"] = _spilled(ray.get_runtime_context().gcs_address)
    print("RESULT " + json.dumps(out), flush=True)  # the load's, even if a fan-out fails
    if fan_out:
        count = lambda r: str(r.last_user.count("needle"))  # noqa: E731
        settings = dict(api_key="k", num_gateways=1, max_retries=1)
        with ScriptedServer(turns(code("FINAL(0)"))) as server:  # start the runtime first
            RLM("openai/scripted", api_base=server.url, **settings).completion("warm", corpus)
        for locality, offset in ((True, 0), (False, 1)):  # disjoint chunks: no copies reused
            root = turns(code(ROOT.format(n=FAN_OUT, offset=offset)))
            with ScriptedServer(by_marker({"COUNT": count}, default=root)) as server:
                rlm = RLM(
                    "openai/scripted", api_base=server.url, chunk_locality=locality, **settings
                )
                t0 = time.perf_counter()
                result = rlm.completion("How many needles?", corpus)
                elapsed = time.perf_counter() - t0
            subs = [
                s
                for call in result.trace.walk()
                for it in call.iterations
                for cell in it.cells
                for s in cell.subcalls
            ]
            step = max(1, out["chunks"] // FAN_OUT)
            picked = corpus.chunks()[offset::step][:FAN_OUT]
            key = "on" if locality else "off"
            out[f"fanout_{key}"] = {
                "s": elapsed,
                "calls": len(subs),
                "local": sum(bool(s.chunks_local) for s in subs),
                "moved_mb": sum(s.chunk_bytes_pulled for s in subs) / 2**20,
                "right": result.answer == str(sum(str(c).count("needle") for c in picked)),
            }
        out["rss_end_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def _bytes_by_node(refs: list) -> dict[str, float]:
    import ray

    where = ray.experimental.get_object_locations(refs)
    held: dict[str, float] = {}
    for info in where.values():
        for node in info.get("node_ids") or ():
            held[node[:8]] = held.get(node[:8], 0) + (info.get("object_size") or 0) / 2**20
    return held


def _spilled(address: str) -> str:
    from ray._private.internal_api import memory_summary

    text = memory_summary(address, stats_only=True)
    found = re.search(r"Spilled (\d+) MiB, (\d+) objects", text)
    return f"{found.group(1)} MiB ({found.group(2)} objects)" if found else "0 MiB"


# -- the harness: the cluster, the corpora, one driver each ---------------------------------------


def start_cluster(store_gb: float):
    import ray
    from ray.cluster_utils import Cluster

    args = {"num_cpus": 1, "object_store_memory": int(store_gb * 2**30)}
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "RAY_USAGE_STATS_ENABLED": "0"}
    cluster = Cluster(initialize_head=True, head_node_args={**args, "env_vars": env})
    for _ in range(2):
        cluster.add_node(**args, env_vars=env)
    cluster.wait_for_nodes()
    ray.shutdown()
    return cluster


def run_driver(address: str, folder: Path, distributed: str, fan_out: bool) -> dict:
    argv = [sys.executable, __file__, "--driver", address, str(folder), distributed]
    argv += ["--fan-out"] if fan_out else []
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"the driver failed:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    if done.returncode != 0:
        result["failed"] = (done.stderr.strip().splitlines() or ["?"])[-1]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, nargs="*", default=[0.5, 1, 2, 5])
    parser.add_argument("--store-gb", type=float, default=1.5, help="object store per node")
    parser.add_argument("--switch", action="store_true", help="driver vs cluster, small sizes")
    parser.add_argument("--no-fan-out", action="store_true")
    parser.add_argument("--driver", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--fan-out", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        return driver(*args.driver, fan_out=args.fan_out)
    cluster = start_cluster(args.store_gb)
    root = Path(tempfile.mkdtemp(prefix="rlm-dist-corpus-", dir="/tmp"))
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"3 nodes, 1 CPU and {args.store_gb} GiB of object store each", flush=True)
    try:
        sizes = [0.03, 0.1, 0.3] if args.switch else args.gb
        for gb in sizes:
            folder = root / f"{gb}gb"
            t0 = time.perf_counter()
            size = write_corpus(folder, gb)
            print(f"\n{size / 1e9:.2f} GB written in {time.perf_counter() - t0:.0f} s", flush=True)
            modes = ("driver", "cluster") if args.switch else ("cluster",)
            for mode in modes:
                fan = not (args.switch or args.no_fan_out)
                report(size, mode, run_driver(cluster.address, folder, mode, fan))
            shutil.rmtree(folder)
            print(f"load average now: {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        cluster.shutdown()


def report(size: int, mode: str, r: dict) -> None:
    mb_s = size / 1e6 / r["load_s"]
    nodes = ", ".join(f"{n} {mb:,.0f}" for n, mb in sorted(r["by_node"].items()))
    print(
        f"  {mode}: load {r['load_s']:.1f} s ({mb_s:,.0f} MB/s), driver peak RSS "
        f"{r['rss_load_mb']:,.0f} MB, {r['chunks']:,} chunks; MiB per node: {nodes}; "
        f"spilled {r['spilled']}"
    )
    for key in ("fanout_on", "fanout_off"):
        if key in r:
            f = r[key]
            print(
                f"  fan-out locality {key[7:]}: {f['calls']} calls in {f['s']:.1f} s, "
                f"{f['local']} rendered where their chunk was, {f['moved_mb']:,.1f} MiB moved, "
                f"answer {'right' if f['right'] else 'WRONG'}"
            )
    if "failed" in r:
        print(f"  the fan-out failed: {r['failed']}")
    if "rss_end_mb" in r:
        print(f"  driver peak RSS after the fan-outs: {r['rss_end_mb']:,.0f} MB")


if __name__ == "__main__":
    main()
