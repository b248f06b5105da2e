"""Cold-start benchmark: what a user meets first, a fresh process per run.

    python benchmarks/cold_start.py                      # every case, 3 fresh processes each
    python benchmarks/cold_start.py --repeat 5 cli-cluster api-leaf-64
    python benchmarks/cold_start.py --address HOST:PORT  # use a running cluster (else one is
                                                         # started with `ray start --head --block`)

The model is `rlm_ray.testing.ScriptedServer` in its own process, 250 ms on every request (root
turns included), as in `fanout.py`. Cases (each run is a new Python process):

  cli-cluster     `rlm-ray run --address <running cluster> --json --quiet`, the leaf-64 job
  cli-local       the same without an address: the command starts (and stops) a local Ray
  api-leaf-64     Python API: `RLM(...)` then `completion` of the leaf-64 job (64 `llm_query` in
                  one comprehension), the first run of the process (Ray connect and runtime
                  start included), then `--warm-runs` more runs in the same process
  api-4x16        the same for children-4x16 (max_depth=2: 4 `recursive_llm` children, 16 leaves
                  each)
  api-leaf-64-w, api-4x16-w   the same after one small warm-up run (the root answers at once):
                  the first fan-out of a process whose runtime is up
  api-4x16-d1     the first depth-2 run after a depth-1 run: the small warm-up run is made by
                  an `RLM` with max_depth=1, then an `RLM(max_depth=2)` made before it (at the
                  process's start, as the others) runs children-4x16
  api-4x16-d1-late   the same with the `RLM(max_depth=2)` made after the depth-1 run, right
                  before its own first run

CLI columns: wall time of the process (spawn to exit), time until the answer is on stdout, the
run itself (`timings.run_s` of `--json`) and what start-up adds (answer time - run). API
columns: the first run, the median warm run of the same processes, their ratio, and the
process's start-up pieces (import, `RLM(...)`, Ray connect inside the first run).
The table shows medians over `--repeat` processes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
LATENCY_S = 0.25


def _scripts() -> Any:
    """One reply function for every case, told apart by markers in the query."""
    sys.path.insert(0, HERE)
    from fanout import children_script, leaf_script

    from rlm_ray.testing import by_marker

    children = children_script(4, 16)
    return by_marker(
        {"WARMUP": "FINAL(ok)", "SHAPE-KIDS-4x16": children, "CHILD": children},
        default=leaf_script(64),  # the leaf-64 root and every leaf call
    )


SHAPES = {
    "leaf-64": {"query": "SHAPE-WIDE-64", "calls": 66, "rlm": {}},
    "4x16": {"query": "SHAPE-KIDS-4x16", "calls": 74, "rlm": {"max_depth": 2}},
}
API_CASES = {  # case: (shape, warm-up run first: none, by the same RLM, by a max_depth=1 RLM)
    "api-leaf-64": ("leaf-64", "none"),
    "api-4x16": ("4x16", "none"),
    "api-leaf-64-w": ("leaf-64", "same"),
    "api-4x16-w": ("4x16", "same"),
    "api-4x16-d1": ("4x16", "depth-1"),
    "api-4x16-d1-late": ("4x16", "depth-1-late"),
}
CASES = ["cli-cluster", "cli-local", *API_CASES]


# --------------------------------------------------------------------------- the model server


def _serve(conn) -> None:
    from rlm_ray.testing import ScriptedServer

    with ScriptedServer(_scripts(), latency_s=LATENCY_S) as server:
        conn.send(server.url)
        conn.recv()  # until told to stop


class ServerProcess:
    def __init__(self) -> None:
        self._conn, child = multiprocessing.Pipe()
        ctx = multiprocessing.get_context("fork")
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self._proc.start()
        self.url = self._conn.recv()

    def stop(self) -> None:
        self._conn.send("stop")
        self._proc.join(5)


# --------------------------------------------------------------------------- a cluster


class HeadNode:
    """`ray start --head --block` on ports of its own; stopped by ending that process (never
    `ray stop`, which would stop every Ray on the machine)."""

    def __init__(self, port: int) -> None:
        self.temp_dir = tempfile.mkdtemp(prefix="rlm_cold_")
        ports = {
            "--port": port,
            "--node-manager-port": port + 1,
            "--object-manager-port": port + 2,
            "--ray-client-server-port": port + 3,
            "--metrics-export-port": port + 4,
            "--dashboard-agent-listen-port": port + 5,
            "--dashboard-agent-grpc-port": port + 6,
            "--runtime-env-agent-port": port + 7,
            "--min-worker-port": port + 100,
            "--max-worker-port": port + 400,
        }
        # `ray start` run by this interpreter: the cluster's workers import this checkout
        ray = [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]
        argv = [*ray, "start", "--head", "--block", "--num-cpus=2", "--include-dashboard=false"]
        argv += [f"{k}={v}" for k, v in ports.items()]
        argv += [f"--temp-dir={self.temp_dir}", "--disable-usage-stats"]
        # subtle: `ray start` turns token auth on when ~/.ray/auth_token exists (a local Ray
        # started by `ray.init()` leaves one), and a driver without RAY_AUTH_MODE then fails
        env = {**_env(), "RAY_AUTH_MODE": "disabled"}
        self._proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        self.address = f"127.0.0.1:{port}"
        self._wait_up()

    def _wait_up(self) -> None:
        probe = "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False)"
        for _ in range(120):
            done = subprocess.run(
                [sys.executable, "-c", probe, self.address], env=_env(), capture_output=True
            )
            if done.returncode == 0:
                return
            time.sleep(1)
        raise RuntimeError(f"the head node at {self.address} did not come up")

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", RAY_USAGE_STATS_ENABLED="0")
    return env


# --------------------------------------------------------------------------- the cases


def run_cli(url: str, address: str | None, context: str) -> dict[str, float]:
    argv = [sys.executable, "-m", "rlm_ray", "run", "--model", "openai/bench"]
    argv += ["--api-base", url, "--api-key", "sk-bench", "--context", context]
    argv += ["--query", SHAPES["leaf-64"]["query"], "--json", "--quiet"]
    if address:
        argv += ["--address", address]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    assert proc.stdout is not None
    line = proc.stdout.readline()
    answered = time.perf_counter() - started
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # the driver's own CPU time, from the kernel
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"rlm-ray run failed ({proc.returncode}): {err.decode()[-2000:]}")
    out = json.loads(line)
    assert out["usage"]["calls"] == SHAPES["leaf-64"]["calls"], out["usage"]
    run_s = out["timings"]["run_s"]
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "wall_s": wall,
        "answer_s": answered,
        "run_s": run_s,
        "added_s": answered - run_s,
        "driver_cpu_s": cpu,
    }


def run_api(case: str, url: str, address: str, warm_runs: int) -> dict[str, Any]:
    shape, warmup = API_CASES[case]
    argv = [sys.executable, os.path.abspath(__file__), "--child", shape, url, address]
    argv += [str(warm_runs), warmup]
    done = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{case} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(shape: str, url: str, address: str, warm_runs: int, warmup: str) -> None:
    """One fresh process of an API case: times printed as one JSON line."""
    t0 = time.perf_counter()
    from rlm_ray import RLM

    imported = time.perf_counter()
    spec = SHAPES[shape]
    where = {"api_base": url, "api_key": "sk-bench", "address": address}
    late = warmup == "depth-1-late"  # the RLM made only after the warm-up (its runtime up)
    rlm = RLM("openai/bench", **where, **({} if late else spec["rlm"]))
    built = time.perf_counter()
    out: dict[str, Any] = {"import_s": imported - t0, "rlm_s": built - imported}
    if warmup != "none":
        started = time.perf_counter()
        (rlm if warmup == "same" or late else RLM("openai/bench", **where)).completion(
            "WARMUP", "ctx"
        )
        out["warmup_s"] = time.perf_counter() - started
    if late:
        rlm = RLM("openai/bench", **where, **spec["rlm"])
    walls = []
    for i in range(1 + warm_runs):
        started = time.perf_counter()
        result = rlm.completion(spec["query"], "ctx")
        walls.append(time.perf_counter() - started)
        assert result.usage.calls == spec["calls"], (shape, result.usage.calls)
        if i == 0:
            out["first_startup_s"] = result.timings["startup_s"]
            out["driver_cpu_s"] = time.process_time()  # the driver's CPU up to its first answer
    out["first_s"] = walls[0]
    out["warm_s"] = statistics.median(walls[1:]) if warm_runs else None
    print(json.dumps(out), flush=True)


# --------------------------------------------------------------------------- the table


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        shape, url, address, warm_runs, warmup = sys.argv[2:7]
        child(shape, url, address, int(warm_runs), warmup)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per case")
    parser.add_argument("--warm-runs", type=int, default=3, help="warm runs per API process")
    parser.add_argument("--address", help="a running Ray cluster (default: start one)")
    parser.add_argument("--port", type=int, default=6520, help="GCS port of the started head")
    parser.add_argument("cases", nargs="*", default=CASES, help=f"of {CASES}")
    args = parser.parse_args()
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {CASES}")
    server = ServerProcess()  # before any Ray: a forked process with no Ray threads
    head = None
    context = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
    context.write("ctx\n")
    context.close()
    results: dict[str, list[dict]] = {case: [] for case in args.cases}
    loads = [_load()]
    try:
        address = args.address
        if address is None and any(c != "cli-local" for c in args.cases):
            head = HeadNode(args.port)
            address = head.address
        for rep in range(args.repeat):  # cases interleaved: each sees the same load over time
            for case in args.cases:
                if case.startswith("cli"):
                    where = address if case == "cli-cluster" else None
                    row = run_cli(server.url, where, context.name)
                else:
                    row = run_api(case, server.url, address, args.warm_runs)
                results[case].append(row)
                shown = {k: round(v, 2) for k, v in row.items() if isinstance(v, float)}
                print(f"rep {rep + 1} {case}: {shown}  load {_load()}", file=sys.stderr)
            loads.append(_load())
    finally:
        os.unlink(context.name)
        if head is not None:
            head.stop()
        server.stop()
    _print_tables(results, args, loads)
    return 0


def _print_tables(results: dict[str, list[dict]], args, loads: list[str]) -> None:
    cli = {c: rows for c, rows in results.items() if c.startswith("cli") and rows}
    api = {c: rows for c, rows in results.items() if c.startswith("api") and rows}
    print(f"load average (1, 5, 15 min) before and after each round: {' | '.join(loads)}")
    print(f"medians of {args.repeat} fresh processes; model latency {LATENCY_S * 1000:.0f} ms\n")
    if cli:
        print(
            "| CLI one-shot (leaf-64 job) | process wall | answer on stdout | run "
            "| start-up adds | driver CPU |"
        )
        print("|---|---|---|---|---|---|")
        keys = ("wall_s", "answer_s", "run_s", "added_s", "driver_cpu_s")
        for case, rows in cli.items():
            cells = [_median(rows, k) for k in keys]
            print(f"| {case} | " + " | ".join(f"{v:.2f} s" for v in cells) + " |")
        print()
    if api:
        print(
            "| Python API | first run | warm run | first / warm | import | RLM(...) "
            "| start-up in first run | small warm-up | driver CPU to first answer |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for case, rows in api.items():
            first, warm = _median(rows, "first_s"), _median(rows, "warm_s")
            warmup = "—" if "warmup_s" not in rows[0] else f"{_median(rows, 'warmup_s'):.2f} s"
            print(
                f"| {case} | {first:.2f} s | {warm:.2f} s | {first / warm:.2f} × | "
                f"{_median(rows, 'import_s'):.2f} s | {_median(rows, 'rlm_s'):.2f} s | "
                f"{_median(rows, 'first_startup_s'):.2f} s | {warmup} | "
                f"{_median(rows, 'driver_cpu_s'):.2f} s |"
            )


if __name__ == "__main__":
    raise SystemExit(main())
