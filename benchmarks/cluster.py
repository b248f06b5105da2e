"""Fan-out on a 1-node and on a multi-node local cluster, and recovery time after a node loss.

    python benchmarks/cluster.py                     # 1 and 3 nodes, all scenarios, --repeat 3
    python benchmarks/cluster.py --nodes 3 --repeat 5 leaf-64 children-4x16

Each cluster is a `ray.cluster_utils.Cluster` on this machine: a head and N-1 worker raylets,
each with its own object store (one CPU each; rlm-ray's actors reserve none). The fan-out
scenarios are those of benchmarks/fanout.py, run the same way (warm-up, then the median).

`node-loss` (N >= 2): a worker node joins; the root fans out 11 `recursive_llm` children (each
one leaf call) over 3 REPL slots per node, so with 3 nodes besides the joining one, at least 3
children must run on it (the others' 9 slots hold the root and 8 children); when every child
waits on its leaf, that node is removed: its worker processes, then its raylet, SIGKILLed. Reported: the wall time of the same run without a loss, the wall time with it, and
"recovery": from the kill to the answer, against the same span in the run without a loss.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import fanout  # noqa: E402
import psutil  # noqa: E402

from rlm_ray import RLM  # noqa: E402
from rlm_ray.testing import by_marker, code, turns  # noqa: E402

_CHILDREN = 11
# A child that lost its REPL is told so and sees the same reply again: it re-runs its one cell.
_CHILD = turns(code("FINAL(int(llm_query('LEAF')) + 1)"))
_ROOT = turns(
    code(
        f"rs = [recursive_llm(f'CHILD {{i}}', f'c{{i}}') for i in range({_CHILDREN})]"
        "\nFINAL(sum(int(r) for r in rs))"
    )
)
fanout.SCENARIOS["node-loss"] = dict(
    script=by_marker({"LEAF": "1", "CHILD": _CHILD}, default=_ROOT),
    latency=0.5,
    calls=1 + _CHILDREN * 2,
    critical=3,
    rlm={"max_depth": 2, "max_repl_actors_per_node": 3},
)
_LOSS_RLM = {"max_depth": 2, "max_repl_actors_per_node": 3}


def start_cluster(nodes: int):
    import ray
    from ray.cluster_utils import Cluster

    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    head = {
        "num_cpus": 2 if nodes == 1 else 1,
        "include_dashboard": False,
        "dashboard_port": 0,  # never the default 8265: another Ray on this host may hold it
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4},
        "env_vars": env,
    }
    cluster = Cluster(initialize_head=True, head_node_args=head)
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, runtime_env={"env_vars": env})
    return cluster


def node_loss(cluster, server: fanout.ServerProcess, repeat: int) -> dict:
    """Median wall time without and with a node loss, and the kill-to-answer span."""
    rlm = RLM("openai/bench", api_base=server.url, api_key="sk-bench", **_LOSS_RLM)
    server.call("set", "node-loss", 0.0)
    rlm.completion("warm-up", "ctx")
    plain, lossy, spans, plain_spans, restarts = [], [], [], [], []
    for _ in range(repeat):
        wall, span, _ = _timed_run(rlm, server, cluster, kill=False)
        plain.append(wall)
        plain_spans.append(span)
        wall, span, lost = _timed_run(rlm, server, cluster, kill=True)
        lossy.append(wall)
        spans.append(span)
        restarts.append(lost)
    return {
        "plain_s": statistics.median(plain),
        "lossy_s": statistics.median(lossy),
        "recovery_s": statistics.median(spans),
        "plain_span_s": statistics.median(plain_spans),
        "restarts": restarts,
    }


def _timed_run(
    rlm: RLM, server: fanout.ServerProcess, cluster, kill: bool
) -> tuple[float, float, int]:
    """(wall time, time from "every child waits on its leaf" to the answer, REPLs re-created)."""
    doomed = cluster.add_node(num_cpus=1) if kill else None
    cluster.wait_for_nodes()
    server.call("set", "node-loss", 0.5)
    box: dict = {}
    started = time.perf_counter()
    thread = threading.Thread(target=lambda: box.update(result=rlm.completion("q", "ctx")))
    thread.start()
    # the root's turn, then each child's turn and leaf
    while server.call("stats")[0] < 1 + 2 * _CHILDREN and thread.is_alive():
        time.sleep(0.02)
    mark = time.perf_counter()
    if doomed is not None:
        _kill_node(cluster, doomed)
    thread.join()
    done = time.perf_counter()
    assert box["result"].answer == str(2 * _CHILDREN), box
    restarts = sum(call.repl_restarts for call in box["result"].trace.walk())
    return done - started, done - mark, restarts


def _kill_node(cluster, node) -> None:
    """A machine vanishing: SIGKILL the node's worker processes, then its raylet. (A raylet
    killed alone leaves its workers running for a moment, long enough to finish a short call.)"""
    raylet = node.all_processes["raylet"][0].process.pid
    for proc in psutil.Process(raylet).children(recursive=True):
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    cluster.remove_node(node, allow_graceful=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gateways", type=int, default=2, help="gateway actors per node")
    parser.add_argument("scenarios", nargs="*", default=["leaf-64", "children-4x16", "node-loss"])
    args = parser.parse_args()
    import ray

    server = fanout.ServerProcess()  # before Ray starts: fork a process with no Ray threads
    rows: list[tuple[int, str, str]] = []
    try:
        for nodes in args.nodes:
            cluster = start_cluster(nodes)
            try:
                for name in args.scenarios:
                    if name == "node-loss":
                        if nodes >= 2:
                            r = node_loss(cluster, server, args.repeat)
                            rows.append((nodes, name, _loss_text(r)))
                        continue
                    (r,) = fanout.run(name, server, args.repeat, args.gateways)
                    rows.append((nodes, name, f"{r['wall_s']:.3f} s ({r['calls']} calls)"))
                    print(f"done {nodes} nodes {name}: {rows[-1][2]}", file=sys.stderr)
            finally:
                ray.shutdown()
                cluster.shutdown()
    finally:
        server.stop()
    print(f"load average before/after: {os.getloadavg()[0]:.1f} (1 min)")
    print("| nodes | scenario | result (median) |")
    print("|---|---|---|")
    for nodes, name, text in rows:
        print(f"| {nodes} | {name} | {text} |")
    return 0


def _loss_text(r: dict) -> str:
    return (
        f"no loss {r['plain_s']:.2f} s, node lost {r['lossy_s']:.2f} s; kill to answer "
        f"{r['recovery_s']:.2f} s (same span without a loss: {r['plain_span_s']:.2f} s); "
        f"REPLs re-created per lossy run: {r['restarts']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
