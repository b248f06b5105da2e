"""Corpora read on a multi-node Ray with Ray Data (`rlm_ray/corpus/cluster.py`): the chunks spread
over the nodes, the same corpus as the driver's reader makes, sub-calls rendered where their
chunks are, a node holding chunks really removed during a fan-out over them, and s3:// read over
real HTTP from a local S3-compatible server (moto, started here on 127.0.0.1).

The cluster is conftest's `shared_cluster`, as for tests/test_multinode.py.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import threading

import pyarrow as pa
import pytest
import ray
from helpers import AWS_ENV, cli_env, forget_runtimes, free_port, run_cli, trace_sums, wait_for

import rlm_ray
from rlm_ray import RLM, ConfigError
from rlm_ray.testing import Reply, by_marker, code, turns

pytestmark = pytest.mark.slow

SETTINGS = dict(max_depth=1, max_repl_actors_per_node=2, num_gateways=1, max_retries=2)
CHUNK = 150_000  # characters: one chunk per object (above the packing threshold)


@pytest.fixture(scope="module")
def cluster(shared_cluster):
    """conftest's cluster, whose nodes have the test S3 credentials (`AWS_ENV`) in their
    environment; this driver has them too while the module runs."""
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    try:
        yield shared_cluster
    finally:
        forget_runtimes()  # this module's pool and gateways go: the next module starts its own
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def write_shards(folder, shards: int = 12, docs: int = 40, seed: int = 7) -> int:
    """JSONL shards of generated documents; returns how many hold the word "needle"."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    needles = 0
    for s in range(shards):
        with (folder / f"part-{s:03d}.jsonl").open("w") as f:
            for d in range(docs):
                words = [rng.choice(("harbor", "gate", "crane", "tide")) for _ in range(800)]
                if rng.random() < 0.3:
                    words[rng.randrange(800)] = "needle"
                    needles += 1
                f.write(json.dumps({"text": f"doc {s}-{d} " + " ".join(words), "shard": s}))
                f.write("\n")
    return needles


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_shards(folder)


def chunk_nodes(corpus) -> dict[str, set[str]]:
    """For each chunk object of a corpus: the nodes holding a copy."""
    from rlm_ray.corpus import store

    refs = store.view_objects(corpus)
    where = ray.experimental.get_object_locations(refs)
    return {ref.hex(): set(where[ref]["node_ids"]) for ref in refs}


def test_a_corpus_read_on_the_cluster_is_spread_and_the_same_as_the_drivers(cluster, shards):
    folder, _ = shards
    source = str(folder / "*.jsonl")
    mine = rlm_ray.load(source, chunk_size=CHUNK, distributed=True)
    theirs = rlm_ray.load(source, chunk_size=CHUNK, distributed=False)
    assert str(mine) == str(theirs) and mine._source.bounds == theirs._source.bounds
    assert mine._source.index().equals(theirs._source.index())
    assert mine.documents[41].source == f"{folder}/part-001.jsonl:2"
    assert [m.offset for m in mine.grep("needle")] == [m.offset for m in theirs.grep("needle")]
    # The chunks were made where their files were read: on more than one node.
    holders = {node for nodes in chunk_nodes(mine).values() for node in nodes}
    assert len(holders) >= 2, holders


def test_a_directory_read_on_the_cluster_is_the_drivers_corpus(cluster, tmp_path):
    """Nested folders (a folder's files before its subfolders), a binary file skipped, hidden
    files and folders left out, non-UTF-8 decoded with replacement; chunks by documents."""
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / "z.md").write_text("zeta " * 500)
    (tmp_path / "a.txt").write_text("alpha " * 900)
    (tmp_path / "b" / "deep" / "x.py").write_text("x = 1\n" * 300)
    (tmp_path / "b" / "c.txt").write_bytes(b"caf\xe9 " * 200)
    (tmp_path / "b" / "blob.txt").write_bytes(b"\x00\x01" * 100)
    (tmp_path / ".git" / "HEAD.txt").write_text("hidden")
    (tmp_path / ".env.txt").write_text("hidden")
    for chunking in ({"chunk_size": 1000}, {"chunk_by": "documents", "chunk_size": 2}):
        mine = rlm_ray.load(tmp_path, distributed=True, **chunking)
        theirs = rlm_ray.load(tmp_path, distributed=False, **chunking)
        assert str(mine) == str(theirs) and mine._source.bounds == theirs._source.bounds
        assert mine._source.index().equals(theirs._source.index())
    assert [d.source for d in mine.documents] == [
        str(tmp_path / n) for n in ("a.txt", "z.md", "b/c.txt", "b/deep/x.py")
    ]


COUNT = """
counts = [llm_query(['COUNT', c]) for c in context.chunks()]
FINAL(sum(int(x) for x in counts))
"""


def count_needles(request) -> str:
    return str(request.last_user.count("needle"))


def llm_subcalls(trace) -> list:
    return [
        sub
        for call in trace.walk()
        for it in call.iterations
        for cell in it.cells
        for sub in cell.subcalls
        if sub.kind == "llm"
    ]


def gateway_nodes(rlm) -> set[str]:
    from rlm_ray import runtime

    return set(ray.get([g.node_id.remote() for g in runtime.get_runtime(rlm.config).gateways]))


@pytest.mark.parametrize("locality", [True, False])
def test_a_fan_out_over_the_chunks_is_rendered_where_they_are(
    cluster, shards, model_server, locality
):
    folder, needles = shards
    corpus = rlm_ray.load(str(folder / "*.jsonl"), chunk_size=CHUNK, distributed=True)
    model_server.reply = by_marker({"COUNT": count_needles}, default=turns(code(COUNT)))
    rlm = RLM(
        "openai/scripted",
        api_base=model_server.url,
        api_key="sk-test",
        chunk_locality=locality,
        **SETTINGS,
    )
    placed = list(chunk_nodes(corpus).values())  # where each chunk was made, before the run
    result = rlm.completion("How many needles?", corpus)
    assert result.answer == str(needles)
    subs = llm_subcalls(result.trace)
    assert len(subs) == len(placed) and all(s.chunks_local is not None for s in subs)
    served = gateway_nodes(rlm)  # Ray 2.60 may leave a node without its gateway
    if locality:  # a chunk on a node with a gateway was rendered there: nothing moved
        near = [s for s in subs if placed[chunk_of(s)] & served]
        assert near and all(s.node_id in placed[chunk_of(s)] for s in near)
        assert all(s.chunks_local and s.chunk_bytes_pulled == 0 for s in near)
    else:  # round robin: some prompts were rendered away from their chunks, which moved
        assert any(not s.chunks_local and s.chunk_bytes_pulled > 0 for s in subs)


def chunk_of(sub) -> int:
    """The chunk a COUNT sub-call's prompt held (its preview names the view's range)."""
    start = re.search(r"<corpus \[([\d,]+):", sub.prompt_preview).group(1)
    return int(start.replace(",", "")) // CHUNK


def test_a_node_holding_chunks_removed_during_a_fan_out_still_gives_the_right_answer(
    cluster, tmp_path, model_server
):
    """The corpus is read with chunks on every node; the worker node holding most of them (not
    the driver's) is removed while the fan-out's sub-calls wait on the model. The lost chunks
    are made again by Ray's lineage reconstruction (the cut task re-run, its blocks re-read by
    Ray Data's read task) and the answer is right. A new node takes the lost one's place."""
    needles = write_shards(tmp_path / "c", shards=16, seed=11)
    corpus = rlm_ray.load(str(tmp_path / "c" / "*.jsonl"), chunk_size=CHUNK, distributed=True)
    only = [nodes.pop() for nodes in chunk_nodes(corpus).values() if len(nodes) == 1]
    spared = {driver_node(), cluster.head_node.node_id}
    workers = [n for n in cluster.list_all_nodes() if n.node_id not in spared]
    doomed = max(workers, key=lambda n: only.count(n.node_id))
    assert only.count(doomed.node_id), "no chunk was made on a node that can be removed"
    model_server.reply = by_marker(
        {"COUNT": lambda r: Reply(count_needles(r), delay_s=2.0)}, default=turns(code(COUNT))
    )
    rlm = RLM("openai/scripted", api_base=model_server.url, api_key="sk-test", **SETTINGS)
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(result=rlm.completion("q", corpus)))
    thread.start()
    counted = lambda: sum(r.first_user.startswith("COUNT") for r in model_server.requests)  # noqa: E731
    wait_for(lambda: counted() >= 4, what="the fan-out's first sub-calls")
    cluster.remove_node(doomed, allow_graceful=False)
    try:
        thread.join(240)
        gone = lambda: not any(n["Alive"] for n in ray.nodes() if n["NodeID"] == doomed.node_id)  # noqa: E731
        wait_for(gone, timeout_s=60, what="the cluster to see the removed node dead")
    finally:
        cluster.add_node(num_cpus=1, object_store_memory=150 * 2**20, env_vars=AWS_ENV)
        cluster.wait_for_nodes()
    assert "result" in box, "the run did not finish"
    result = box["result"]
    assert result.answer == str(needles)
    usage = result.usage
    assert (usage.calls, usage.input_tokens, usage.output_tokens) == trace_sums(result.trace)
    # every chunk is readable again (made anew on the nodes left)
    assert str(corpus) == str(rlm_ray.load(str(tmp_path / "c" / "*.jsonl"), chunk_size=CHUNK))


def driver_node() -> str:
    return ray.get_runtime_context().get_node_id()


# -- bad input: one line, naming the source, nothing left in the object store ------------------


def stored_objects() -> int:
    """Objects in the cluster's object stores (named: other Rays may run on this machine)."""
    from ray._private.internal_api import memory_summary

    stats = memory_summary(ray.get_runtime_context().gcs_address, stats_only=True)
    return int(re.search(r"Plasma memory usage \d+ MiB, (\d+) objects", stats).group(1))


@pytest.mark.parametrize(
    "files, message",
    [
        ({"a.bin.txt": b"\x00\x01\x02" * 1000}, "empty corpus: no text in"),
        ({"a.jsonl": b"", "b.jsonl": b""}, "empty corpus: no text in"),
        ({"a.jsonl": b'{"text": "fine"}\n', "b.jsonl": b"not json at all\n"}, "as JSONL"),
    ],
    ids=["not text", "zero documents", "broken JSONL"],
)
def test_bad_files_read_on_the_cluster_fail_in_one_line_and_leave_nothing(
    cluster, tmp_path, files, message
):
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    pattern = "*.txt" if "a.bin.txt" in files else "*.jsonl"
    before = stored_objects()
    with pytest.raises(ConfigError) as err:
        rlm_ray.load(str(tmp_path / pattern), distributed=True)
    text = str(err.value)
    assert message in text and str(tmp_path) in text and "\n" not in text, text
    wait_for(lambda: stored_objects() <= before, what="the failed load's objects to be freed")


# -- s3:// over real HTTP, from a local S3-compatible server -----------------------------------


@pytest.fixture(scope="module")
def s3(cluster, shards):
    """moto's S3 server on 127.0.0.1, a bucket holding the shards, and the endpoint query."""
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **AWS_ENV},
    )
    try:
        wait_for(lambda: _listening(port), timeout_s=60, what="the S3 server")
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}")
        client.create_bucket(Bucket="corpora")
        folder, _ = shards
        for path in sorted(folder.glob("*.jsonl")):
            client.upload_file(str(path), "corpora", f"shards/{path.name}")
        yield port, client
    finally:
        server.terminate()
        server.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def endpoint(port: int) -> str:
    return f"endpoint_override=127.0.0.1:{port}&scheme=http"


def test_an_s3_corpus_loads_over_http_and_equals_the_local_one(cluster, shards, s3):
    port, _ = s3
    folder, _ = shards
    remote = rlm_ray.load(f"s3://corpora/shards/*.jsonl?{endpoint(port)}", chunk_size=CHUNK)
    local = rlm_ray.load(str(folder / "*.jsonl"), chunk_size=CHUNK)
    assert str(remote) == str(local) and remote._source.bounds == local._source.bounds
    assert remote.documents[0].source == "s3://corpora/shards/part-000.jsonl:1"


def test_the_cli_runs_over_an_s3_corpus_and_keeps_credentials_out_of_the_trace(
    cluster, shards, s3, model_server, tmp_path
):
    port, _ = s3
    _, needles = shards
    model_server.reply = by_marker({"COUNT": count_needles}, default=turns(code(COUNT)))
    trace = tmp_path / "run.jsonl"
    out = run_cli(
        "run",
        *("--model", "openai/scripted", "--api-base", model_server.url, "--api-key", "k"),
        *("--context", f"s3://corpora/shards/*.jsonl?{endpoint(port)}", "--query", "q"),
        *("--chunk-size", str(CHUNK), "--address", cluster.address, "--trace", str(trace)),
        "--quiet",
        env=cli_env(**AWS_ENV),
        timeout_s=240,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{needles}\n"
    written = trace.read_text()
    assert AWS_ENV["AWS_SECRET_ACCESS_KEY"] not in written
    assert AWS_ENV["AWS_ACCESS_KEY_ID"] not in written


@pytest.mark.parametrize("case", ["missing bucket", "unreachable", "permission denied"])
def test_bad_s3_sources_fail_in_one_line_naming_them(cluster, s3, case, monkeypatch):
    port, client = s3
    source = f"s3://corpora/shards/?{endpoint(port)}"
    expected = {
        "missing bucket": "does not exist",
        "unreachable": "cannot reach",
        "permission denied": "permission denied",
    }[case]
    if case == "missing bucket":
        source = f"s3://no-such-bucket/x/?{endpoint(port)}"
    elif case == "unreachable":
        source = f"s3://corpora/shards/?{endpoint(free_port())}"
    else:  # a user with no permission, and the server now checking every request's signer
        iam = _iam(port)
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        _set_auth(port, "0")
    try:
        with pytest.raises(ConfigError) as err:
            rlm_ray.load(source)
    finally:
        if case == "permission denied":
            _set_auth(port, "inf")
    text = str(err.value)
    assert expected in text and source.split("?")[0] in text and "\n" not in text, text


def _iam(port: int):
    import boto3

    return boto3.client("iam", endpoint_url=f"http://127.0.0.1:{port}")


def _set_auth(port: int, count: str) -> None:
    """moto: after `count` more requests, every request must be signed by a known user."""
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/moto-api/reset-auth",
        data=count.encode(),
        headers={"Content-Type": "application/octet-stream"},  # not a form: read as the body
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).read()


def test_a_table_loads_as_before(cluster):
    corpus = rlm_ray.load(pa.table({"text": ["a" * 2000, "b" * 3000]}), chunk_size=1000)
    assert len(corpus) == 5002 and len(corpus.chunks()) == 6
