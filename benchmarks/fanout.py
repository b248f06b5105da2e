"""Fan-out benchmark: wall time, model calls and peak concurrency against the scripted server.

    python benchmarks/fanout.py            # all scenarios, markdown table on stdout
    python benchmarks/fanout.py --repeat 5

Scenarios (latency injected by the server on every request, root turns included):
  leaf-64      two root turns; the first fans out 64 `llm_query` calls (critical path 3 x latency)
  leaf-64-seq  the same with `max_concurrent_calls=1`: the sequential baseline
  children-4x16  four `recursive_llm` children (max_depth=2), each fanning out 16 leaf calls and
               answering on its second turn; the root answers on its second turn (5 x latency)
  tree-3x8     max_depth=3, fan-out 8 at every level: 73 REPL calls and 512 leaf calls, 0 ms
  overhead-1024  1024 leaf calls at 0 ms latency: end-to-end cost per leaf call
  leaf-1024    1024 leaf calls at 250 ms latency, cap 256 in flight (4 waves: critical path
               2 root turns + 4 x latency); compare with `litellm_floor.py --latency-ms 250`
  children-64  64 `recursive_llm` children at once (max_depth=2), each fanning out 4 leaf
               calls: live REPL processes stay at the pool's cap, no deadlock

Besides wall time the table shows the peak number of live REPL calls, the peak extra memory
(RSS of the driver and every Ray worker process, sampled every 50 ms, over the level before the
measured run) and the gateways' CPU time per model call (user + system time of the gateway
actors' processes over the measured run, divided by its model calls).

Every scenario runs once to warm the pools, then `--repeat` times; the table shows the median.
`--progress on` passes an `on_progress` callback (the driver polls the run's counters);
`--progress both` alternates runs without and with it, in one session, and prints both rows.
`--floor` runs the client's floor after every measured run of a leaf scenario: a bare
`litellm.acompletion` loop (benchmarks/litellm_floor.py, its own process, no Ray) making the
same leaf calls at the same cap against the same server, so both see the same machine load;
the table adds its median and the median of the per-pair ratios. The RLM's wall time includes
its two root turns (2 x latency on the critical path), the floor's does not.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import psutil  # noqa: E402  (comes with ray[default])
import ray  # noqa: E402

from rlm_ray import RLM, runtime  # noqa: E402
from rlm_ray.testing import ScriptedServer, by_marker, code, turns  # noqa: E402


def leaf_script(n: int):
    fan = code(
        f"rs = [llm_query(f'LEAF {{i}}') for i in range({n})]\nprint(sum(int(r) for r in rs))"
    )
    return by_marker({"LEAF": "1"}, default=turns(fan, "FINAL(done)"))


def children_script(children: int, leaves: int):
    child = turns(
        code(
            f"rs = [llm_query(f'LEAF {{i}}') for i in range({leaves})]\ntotal = sum(int(r) for r in rs)"
        ),
        "FINAL_VAR(total)",
    )
    root = turns(
        code(
            f"rs = [recursive_llm(f'CHILD {{i}}', f'part {{i}}') for i in range({children})]\nprint(rs)"
        ),
        "FINAL(done)",
    )
    return by_marker({"LEAF": "1", "CHILD": child}, default=root)


def tree_script(width: int):
    """max_depth=3: the root and each depth-1 child fan out `width` children; depth 2 fans out
    `width` leaf calls. Every call answers on its first turn."""

    def level(child: str) -> str:
        return code(f"rs = [{child} for i in range({width})]\nFINAL(sum(int(r) for r in rs))")

    return by_marker(
        {
            "LEAF": "1",
            "LEVEL-2": turns(level("llm_query(f'LEAF {i}')")),
            "LEVEL-1": turns(level("recursive_llm(f'LEVEL-2 {i}', f'c{i}')")),
        },
        default=turns(level("recursive_llm(f'LEVEL-1 {i}', f'c{i}')")),
    )


SCENARIOS = {
    "leaf-64": dict(script=leaf_script(64), latency=0.25, calls=66, critical=3, rlm={}, leaves=64),
    "leaf-64-seq": dict(
        script=leaf_script(64), latency=0.25, calls=66, critical=66, rlm={"max_concurrent_calls": 1}
    ),
    "children-4x16": dict(
        script=children_script(4, 16),
        latency=0.25,
        calls=2 + 4 * 2 + 64,
        critical=5,
        rlm={"max_depth": 2},
    ),
    "tree-3x8": dict(
        script=tree_script(8), latency=0.0, calls=73 + 512, critical=0, rlm={"max_depth": 3}
    ),
    "overhead-1024": dict(
        script=leaf_script(1024), latency=0.0, calls=1026, critical=0, rlm={}, leaves=1024
    ),
    "leaf-1024": dict(
        script=leaf_script(1024), latency=0.25, calls=1026, critical=6, rlm={}, leaves=1024
    ),
    "children-64": dict(
        script=children_script(64, 4),
        latency=0.25,
        calls=2 + 64 * 2 + 64 * 4,
        critical=5,
        rlm={"max_depth": 2},
    ),
}


class MemorySampler:
    """Peak RSS of this driver and every Ray worker process, over the level at the start."""

    def __enter__(self) -> MemorySampler:
        self._stop = threading.Event()
        self.baseline = self.peak = _ray_rss_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _ray_rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_extra_mb(self) -> float:
        return self.peak - self.baseline


def _ray_rss_mb() -> float:
    total = psutil.Process().memory_info().rss
    for proc in psutil.process_iter(["name", "cmdline", "memory_info"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if proc.info["memory_info"] and ("ray::" in (proc.info["name"] or "") or "ray::" in cmd):
            total += proc.info["memory_info"].rss
    return total / 2**20


class ServerProcess:
    """The scripted model in its own process, as a real model server would be: its CPU time
    does not compete with the driver's GIL. Commands go over a pipe."""

    def __init__(self) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._proc = multiprocessing.get_context("fork").Process(
            target=_serve, args=(child,), daemon=True
        )
        self._proc.start()
        self.url = self._conn.recv()

    def call(self, *command):
        self._conn.send(command)
        return self._conn.recv()

    def stop(self) -> None:
        self.call("stop")
        self._proc.join(5)


def _serve(conn) -> None:
    with ScriptedServer(leaf_script(1)) as server:
        conn.send(server.url)
        while True:
            command, *args = conn.recv()
            if command == "stop":
                conn.send(None)
                return
            if command == "set":
                server.reply = SCENARIOS[args[0]]["script"]
                server.latency_s = args[1]
                server.reset_stats()
            conn.send((server.request_count, server.peak_concurrency))


def bare_litellm_s(url: str, calls: int, concurrency: int) -> float:
    """Wall time of the floor: the bare litellm loop in its own process, against `url`."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "litellm_floor.py")
    argv = [sys.executable, script, "--url", url, "--calls", str(calls)]
    out = subprocess.run(
        [*argv, "--concurrency", str(concurrency)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    return float(out.split(" calls in ")[1].split(" s")[0])


def run(
    name: str,
    server: ServerProcess,
    repeat: int,
    gateways: int,
    modes: list[bool] | None = None,
    floor: bool = False,
) -> list:
    """Rows of `name`, one per progress mode (default: without progress only)."""
    modes = modes or [False]
    spec = SCENARIOS[name]
    server.call("set", name, 0.0)
    snapshots: list = []
    rlms = {
        progress: RLM(
            "openai/bench",
            api_base=server.url,
            api_key="sk-bench",
            num_gateways=gateways,
            on_progress=snapshots.append if progress else None,
            **spec["rlm"],
        )
        for progress in modes
    }
    rlms[modes[0]].completion("warm-up", "ctx")  # starts Ray and the pools; not measured
    rt = runtime.get_runtime(rlms[modes[0]].config)
    pool = rt.pool
    gateway_procs = [
        psutil.Process(pid) for pid in ray.get([g.__ray_call__.remote(_pid) for g in rt.gateways])
    ]
    gateway_cpu: dict[bool, list[float]] = {m: [] for m in modes}
    walls: dict[bool, list[float]] = {m: [] for m in modes}
    peaks: dict[bool, list[int]] = {m: [] for m in modes}
    repls: dict[bool, list[int]] = {m: [] for m in modes}
    rss: dict[bool, list[float]] = {m: [] for m in modes}
    floors: dict[bool, list[float]] = {m: [] for m in modes}
    floor = floor and "leaves" in spec
    for _ in range(repeat):
        for progress, rlm in rlms.items():  # alternated: both modes see the same load
            server.call("set", name, spec["latency"])
            snapshots.clear()
            ray.get(pool.stats.remote(reset_peak=True))
            cpu = _cpu_s(gateway_procs)
            with MemorySampler() as memory:
                started = time.perf_counter()
                result = rlm.completion("q", "ctx")
                walls[progress].append(time.perf_counter() - started)
            gateway_cpu[progress].append((_cpu_s(gateway_procs) - cpu) / spec["calls"])
            rss[progress].append(memory.peak_extra_mb)
            repls[progress].append(ray.get(pool.stats.remote())["peak_held"])
            count, peak = server.call("stats")
            peaks[progress].append(peak)
            assert result.usage.calls == spec["calls"] == count, (name, result.usage.calls, count)
            if progress:
                assert snapshots[-1].finished and snapshots[-1].calls == count
            if floor:
                cap = rlm.config.max_concurrent_calls
                floors[progress].append(bare_litellm_s(server.url, spec["leaves"], cap))
    rows = []
    for progress in modes:
        wall = statistics.median(walls[progress])
        rows.append(
            {
                "scenario": name + (" +progress" if progress else ""),
                "wall_s": wall,
                "calls": spec["calls"],
                "peak": max(peaks[progress]),
                "repl": max(repls[progress]),
                "rss_mb": max(rss[progress]),
                "critical_s": spec["critical"] * spec["latency"],
                "per_call_ms": 1000 * wall / spec["calls"],
                "walls": walls[progress],
                "gateway_cpu_ms": 1000 * statistics.median(gateway_cpu[progress]),
                "floor_s": statistics.median(floors[progress]) if floor else None,
                "ratio": statistics.median(w / f for w, f in zip(walls[progress], floors[progress]))
                if floor
                else None,
            }
        )
    return rows


def _pid(_actor) -> int:
    return os.getpid()


def _cpu_s(processes: list) -> float:
    """User + system CPU seconds of `processes` so far."""
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gateways", type=int, default=2, help="gateway actors per node")
    parser.add_argument("--progress", choices=["off", "on", "both"], default="off")
    parser.add_argument(
        "--floor", action="store_true", help="run the bare-litellm floor after each leaf run"
    )
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    args = parser.parse_args()
    rows = []
    server = ServerProcess()  # before Ray starts: fork a process with no Ray threads
    try:
        modes = {"off": [False], "on": [True], "both": [False, True]}[args.progress]
        for name in args.scenarios:
            for row in run(name, server, args.repeat, args.gateways, modes, args.floor):
                rows.append(row)
                walls = ", ".join(f"{w:.2f}" for w in row["walls"])
                print(f"done {row['scenario']}: {row['wall_s']:.3f} s ({walls})", file=sys.stderr)
    finally:
        server.stop()
    print(
        "| scenario | wall (median) | model calls | peak in flight | critical path | per call "
        "| peak REPL calls | peak extra RSS | gateway CPU/call | bare-litellm floor | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        floor = "—" if r["floor_s"] is None else f"{r['floor_s']:.3f} s"
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f} ×"
        print(
            f"| {r['scenario']} | {r['wall_s']:.3f} s | {r['calls']} | {r['peak']} | "
            f"{r['critical_s']:.2f} s | {r['per_call_ms']:.2f} ms | {r['repl']} | "
            f"{r['rss_mb']:.0f} MB | {r['gateway_cpu_ms']:.2f} ms | {floor} | {ratio} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
