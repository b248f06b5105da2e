"""A multi-node Ray on this machine (`ray.cluster_utils.Cluster`: a head and worker raylets, each
with its own CPUs, object store and a resource naming it): placement, locality, the CLI against
the cluster, and faults really caused (a node removed mid-run, the driver killed).

The cluster is conftest's `shared_cluster` (tests/test_corpus_cluster.py runs on it too): its tests
run after every other, so the session's local Ray is not needed again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest
import ray
from helpers import cli_env, forget_runtimes, run_cli, trace_sums, wait_for

from rlm_ray import RLM
from rlm_ray.testing import Reply, by_marker, code, turns

pytestmark = pytest.mark.slow

# One pool and gateway set for the whole module: small slots so calls spill over nodes.
SETTINGS = dict(max_depth=3, max_repl_actors_per_node=3, num_gateways=1, max_retries=2)


@pytest.fixture(scope="module")
def cluster(shared_cluster):
    yield shared_cluster
    forget_runtimes()  # this module's pool and gateways go: the next module starts its own


@pytest.fixture
def rlm(cluster, model_server):
    return RLM("openai/scripted", api_base=model_server.url, api_key="sk-test", **SETTINGS)


def driver_node_id() -> str:
    """The node this test process is attached to (on one machine, not necessarily the head):
    its object store holds what the driver puts."""
    return _ray().get_runtime_context().get_node_id()


def actor_node(cluster, handle) -> str:
    from ray.util.state import get_actor

    return get_actor(handle._actor_id.hex(), address=cluster.address).node_id


def leaf_nodes(trace) -> set[str]:
    return {
        sub.node_id
        for call in trace.walk()
        for it in call.iterations
        for cell in it.cells
        for sub in cell.subcalls
        if sub.kind == "llm"
    }


def test_calls_spread_over_nodes_and_read_the_drivers_context_across_nodes(
    cluster, rlm, model_server
):
    """The driver's context sits in its node's object store; children on other nodes read it by
    handle (the same object id) and answer from its content."""
    child = turns(
        code("rs = [llm_query(f'LEAF {i}') for i in range(3)]\nFINAL(context[-6:] + rs[0])")
    )
    model_server.reply = by_marker(
        # a slow leaf keeps each child in its slot until all six have one, even under load
        {"LEAF": Reply(content="!", delay_s=2.0), "CHILD": child},
        default=turns(
            code("rs = [recursive_llm(f'CHILD {i}', context) for i in range(6)]\nFINAL(rs)")
        ),
    )
    context = "x" * 300_000 + "TAIL42"
    result = rlm.completion("q", context)
    assert result.answer == str(["TAIL42!"] * 6)
    calls = list(result.trace.walk())
    assert len(calls) == 7
    assert {c.context_id for c in calls} == {result.trace.context_id} != {""}
    home = driver_node_id()
    assert result.trace.node_id == home  # the root runs where its context is
    # The pool (the run's bookkeeping) lives beside the driver, never on a node that may go.
    assert actor_node(cluster, _pool(rlm)) == home
    # That node has 3 slots for 7 calls: the others run elsewhere (a node that has read the
    # context holds a copy too, so it is preferred next: not every node need be used).
    remote = [c for c in calls[1:] if c.node_id != home]
    assert len(remote) >= 4 and all(c.answer == "TAIL42!" for c in remote)
    # The gateways' model calls: every leaf names the node of the gateway that served it. (Not
    # asserted to be several: Ray 2.60 may place the soft-affinity gateways on one node.)
    nodes = {n["NodeID"] for n in ray.nodes()}
    assert leaf_nodes(result.trace) and leaf_nodes(result.trace) <= nodes


def test_a_sub_call_runs_on_the_node_that_holds_its_chunk(cluster, rlm, model_server):
    """A child cuts a 200 KB chunk (put in *its* node's object store) for a grandchild: the
    grandchild is placed on that node, although another node is idler."""
    middle = turns(
        code("big = 'y' * 200_000 + 'END'\nFINAL(recursive_llm('GRAND', big))"),
    )
    grand = turns(code("FINAL(str(len(context)) + context[-3:])"))
    model_server.reply = by_marker(
        {"MIDDLE": middle, "GRAND": grand},
        default=turns(code("FINAL(recursive_llm('MIDDLE', 'small'))")),
    )
    result = rlm.completion("q", "ctx")
    assert result.answer == "200003END"
    root, mid, leaf = list(result.trace.walk())
    assert leaf.context_id and leaf.context_id not in (root.context_id, mid.context_id)
    assert mid.node_id != root.node_id  # the least busy node: the root holds a slot on its node
    assert leaf.node_id == mid.node_id  # locality beat "least busy" (the third node was idle)


def test_cli_address_runs_on_the_cluster(cluster, model_server, tmp_path):
    model_server.reply = by_marker(
        {"LEAF": "1"},
        default=turns(code("rs = [llm_query(f'LEAF {i}') for i in range(12)]\nFINAL(len(rs))")),
    )
    (tmp_path / "ctx.txt").write_text("some context")
    trace = tmp_path / "trace.jsonl"
    base = ["--model", "openai/scripted", "--api-base", model_server.url, "--api-key", "k"]
    out = run_cli(
        "run",
        *base,
        *("--context", str(tmp_path / "ctx.txt"), "--query", "q"),
        *("--address", cluster.address, "--trace", str(trace)),
        timeout_s=240,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "12\n"
    root = json.loads(trace.read_text().splitlines()[0])
    nodes = {n["NodeID"] for n in _ray().nodes()}
    assert root["node_id"] in nodes
    subs = root["iterations"][0]["cells"][0]["subcalls"]
    assert {s["node_id"] for s in subs} <= nodes and len({s["node_id"] for s in subs}) >= 2


def _ray():
    import ray

    return ray


def test_removing_a_worker_node_mid_run_still_gives_the_right_answer(cluster, rlm, model_server):
    """A third worker node joins; children run on it; it is removed while they wait on their
    model calls. Their REPLs are re-created elsewhere (the model told), the lost gateway's calls
    are re-sent, and the answer is right."""
    ray = _ray()
    doomed = cluster.add_node(num_cpus=1, resources={"rlm_node_w3": 1})
    cluster.wait_for_nodes()
    child = by_marker(
        {},
        default=lambda r: (
            code("FINAL(int(llm_query('LEAF')) + 1)")
            if r.turn == 0 or "REPL LOST" in r.last_user
            else "FINAL(not told)"
        ),
    )
    model_server.reply = by_marker(
        {"LEAF": Reply("1", delay_s=2.0), "CHILD": child},
        default=turns(
            code(
                "rs = [recursive_llm(f'CHILD {i}', f'c{i}') for i in range(6)]\nFINAL(sum(int(r) for r in rs))"
            )
        ),
    )
    box: dict = {}
    snapshots: list = []
    rlm.on_progress = snapshots.append  # what the CLI's summary line is made from
    thread = threading.Thread(target=lambda: box.update(result=rlm.completion("q", "ctx")))
    thread.start()
    leaves = lambda: sum(r.first_user == "LEAF" for r in model_server.requests)  # noqa: E731
    wait_for(lambda: leaves() >= 6, what="every child to wait on its model call")
    busy = ray.get(_pool(rlm).stats.remote())["nodes"]
    assert busy[doomed.node_id]["busy"] >= 1, busy  # something really runs on the doomed node
    started = time.monotonic()
    cluster.remove_node(doomed, allow_graceful=False)
    thread.join(180)
    recovered_s = time.monotonic() - started
    # The tests after this one must not meet a node the cluster still believes alive.
    gone = lambda: not any(n["Alive"] for n in ray.nodes() if n["NodeID"] == doomed.node_id)  # noqa: E731
    wait_for(gone, timeout_s=60, what="the cluster to see the removed node dead")
    assert "result" in box, "the run did not finish"
    result = box["result"]
    assert result.answer == "12"
    lost = [c for c in result.trace.walk() if c.repl_restarts]
    assert lost and all(c.node_id != doomed.node_id for c in lost)
    assert any("REPL LOST" in r.last_user for r in model_server.requests)
    # Counters kept on the lost node are gone; the usage and the last snapshot equal the trace.
    usage, final = result.usage, snapshots[-1]
    assert (usage.calls, usage.input_tokens, usage.output_tokens) == trace_sums(result.trace)
    assert final.finished and (final.calls, final.input_tokens, final.output_tokens) == (
        usage.calls,
        usage.input_tokens,
        usage.output_tokens,
    )
    print(f"recovered from the node loss in {recovered_s:.1f} s")


def _pool(rlm):
    from rlm_ray import runtime

    return runtime.get_runtime(rlm.config).pool


DRIVER = """
import sys, time
from rlm_ray import RLM
rlm = RLM("openai/scripted", api_base=sys.argv[2], api_key="k", max_depth=2,
          max_repl_actors_per_node=3, num_gateways=1, address=sys.argv[1])
rlm.completion("q", "ctx")
"""


def test_a_killed_driver_leaves_no_actor_of_its_run_alive(cluster, model_server, tmp_path):
    from ray.util.state import list_actors

    model_server.reply = by_marker(
        {"LEAF": Reply("1", delay_s=60.0), "CHILD": turns(code("FINAL(llm_query('LEAF'))"))},
        default=turns(code("rs = [recursive_llm(f'CHILD {i}', 'c') for i in range(3)]\nFINAL(rs)")),
    )
    log = tmp_path / "driver.log"
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, cluster.address, model_server.url],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    try:
        leaves = lambda: sum(r.first_user == "LEAF" for r in model_server.requests)  # noqa: E731
        try:
            wait_for(lambda: leaves() >= 3, timeout_s=120, what="the driver's run's leaves")
        except AssertionError as exc:  # say what the driver was doing
            raise AssertionError(f"{exc}; driver stderr:\n{log.read_text()[-3000:]}") from None
        mine = _ray().get_runtime_context().get_job_id()
        rlm_classes = {"LLMGateway", "REPLPool", "REPLWorker"}

        def alive_of_other_jobs():
            actors = list_actors(
                address=cluster.address, filters=[("state", "=", "ALIVE")], limit=1000
            )
            return [a for a in actors if a.job_id != mine and a.class_name in rlm_classes]

        before = alive_of_other_jobs()
        assert {a.class_name for a in before} == rlm_classes, before
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    wait_for(lambda: not alive_of_other_jobs(), timeout_s=60, what="the run's actors to go")
