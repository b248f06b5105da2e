"""Approximate record operators end to end (issue 29): `llm_filter` / `llm_classify` /
`llm_count` from model code and `rlm_ray.ops` from Python, over Ray and litellm to the scripted
server. The scripted sub-model (the oracle) answers each record by a pure function of its text
(`testing.records`), so what it was asked shows in the requests the server saw: the training
sample, the validation draws, the records between the thresholds, or every record (a fallback).
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
import ray
from helpers import wait_for

import rlm_ray
from rlm_ray import ops
from rlm_ray.testing import code, records, turns

pytestmark = pytest.mark.ray

PROBLEMS = ("broken", "leaking", "cracked", "scratched", "missing parts")
FINE = ("lovely", "spotless", "quick to fit", "sturdy", "quiet")
THINGS = ("kettle", "lamp", "chair", "drill", "tent", "bike", "desk", "fan")
CONDITION = "the review reports a problem"
APPROX = {"min_records": 1_000}  # the tests' records are fewer than a hosted run's 5,000


def reviews(n: int) -> list[str]:
    """`n` distinct reviews, about one in three reporting a problem."""
    out = []
    for i in range(n):
        words = PROBLEMS if i % 3 == 0 else FINE
        word = words[(i // 3) % len(words)]
        out.append(
            f"review {i}: the {THINGS[i % len(THINGS)]} is {word} (order {i * 7919 % 10007})"
        )
    return out


def has_problem(item: str) -> bool:
    return any(word in item for word in PROBLEMS)


def oracle(task: str, item: str) -> str:
    """The scripted sub-model: a pure function of the record's text."""
    if task.startswith("Labels") or task.startswith("Classify"):
        return "PROBLEM" if has_problem(item) else "FINE"
    return "yes" if has_problem(item) else "no"


def says_no(task: str, item: str) -> str:
    return "no"  # one answer only: no proxy can be trained on it


def coin(task: str, item: str) -> str:
    """Answers no proxy can learn: a hash of the text."""
    return "yes" if hashlib.sha256(item.encode()).digest()[0] % 2 else "no"


def asked_items(server, since: int = 0) -> list[str]:
    """Every record the server was asked about (from request `since` on), in the order asked:
    batch prompts number their items "[k] ...", a batch of one asks "Item: ..." alone."""
    items = []
    for request in server.requests[since:]:
        prompt = request.first_user
        if prompt.startswith("Item: ") and "\n\nQuestion: " in prompt:
            items.append(prompt[len("Item: ") :].split("\n\nQuestion: ", 1)[0])
        elif "\n\nItems:\n" in prompt:
            body = prompt.split("\n\nItems:\n", 1)[1].split("\n\nReply with exactly ", 1)[0]
            items += [line.split("] ", 1)[1] for line in body.splitlines() if line[:1] == "["]
    return items


def settings(server, **kw):
    return {"model": "openai/scripted", "api_base": server.url, "api_key": "sk-test", **kw}


def test_ops_filter_cascade_asks_a_sample_and_meets_its_targets(ray_session, model_server):
    model_server.reply = records(oracle)
    items = reviews(3_000)
    kept = ops.filter(
        CONDITION, items, recall=0.9, precision=0.9, approximate=APPROX, **settings(model_server)
    )
    truth = [r for r in items if has_problem(r)]
    found = set(kept.values) & set(truth)
    assert len(found) >= 0.9 * len(truth) and len(found) >= 0.9 * len(kept.values)
    assert kept.values == [r for r in items if r in set(kept.values)]  # in order
    asked = asked_items(model_server)
    report = kept.report
    assert len(asked) == len(set(asked)) == report.oracle_seen < len(items)  # each asked once
    assert report.proxy_decided == len(items) - len(asked) > 0 and not report.exact
    assert report.oracle_calls["train"] > 0 and report.oracle_calls["validate"] > 0
    assert report.agreement > 0.9 and report.confidence == 0.95
    assert set(report.thresholds) == {"reject_below", "accept_from"}
    assert {t.name for t in report.targets} == {"recall", "precision"}
    assert kept.usage.proxy_decided == report.proxy_decided
    assert kept.usage.calls == len(model_server.requests)  # the oracle's batches, nothing else


def test_ops_classify_and_count_cascades(ray_session, model_server):
    model_server.reply = records(oracle)
    items = reviews(2_400)
    args = settings(model_server, approximate=APPROX)
    labels = ops.classify(items, ["PROBLEM", "FINE"], accuracy=0.9, **args)
    right = sum(label == oracle("Labels", r) for label, r in zip(labels.values, items))
    assert right >= 0.9 * len(items) and labels.report.proxy_decided > 0
    counted = ops.count(CONDITION, items, error=0.05, **args)
    truth = sum(has_problem(r) for r in items)
    assert counted.low <= truth <= counted.high and counted.low <= counted.count <= counted.high
    assert counted.high - counted.low <= 2 * 0.05 * len(items) + 2 and not counted.exact
    assert counted.report.oracle_seen < len(items)
    before = len(model_server.requests)
    exact = ops.count(CONDITION, items, error=0, **args)  # the exact count, asked of every record
    assert exact.count == exact.low == exact.high == truth and exact.exact
    assert exact.report is None and len(asked_items(model_server, before)) == len(items)


@pytest.mark.parametrize(
    "answer, reason",
    [(says_no, "could not be trained"), (coin, "could not separate")],
)
def test_a_proxy_that_cannot_decide_falls_back_to_the_exact_scan(
    ray_session, model_server, answer, reason
):
    model_server.reply = records(answer)
    items = reviews(1_500)
    kept = ops.filter(
        CONDITION, items, recall=0.9, precision=0.9, approximate=APPROX, **settings(model_server)
    )
    assert kept.values == [r for r in items if answer("Condition", r) == "yes"]  # exact
    assert reason in kept.report.reason and kept.report.exact
    asked = asked_items(model_server)
    assert sorted(asked) == sorted(items)  # every record, each once
    assert kept.usage.proxy_decided == 0


def test_fewer_records_than_the_threshold_are_scanned_exactly(ray_session, model_server):
    model_server.reply = records(oracle)
    items = reviews(300)
    kept = ops.filter(CONDITION, items, recall=0.9, **settings(model_server))  # hosted: 5,000
    assert kept.values == [r for r in items if has_problem(r)]
    assert "fewer than 5,000" in kept.report.reason and kept.report.oracle_seen == 300


def test_a_cascade_replays_from_the_cache_with_no_model_call(ray_session, model_server, tmp_path):
    model_server.reply = records(oracle)
    items = reviews(2_000)
    args = settings(model_server, approximate=APPROX, cache_dir=str(tmp_path / "cache"))
    first = ops.filter(CONDITION, items, recall=0.9, precision=0.9, **args)
    calls = len(model_server.requests)
    second = ops.filter(CONDITION, items, recall=0.9, precision=0.9, **args)
    assert len(model_server.requests) == calls  # the same samples, answered by the cache
    assert second.values == first.values and second.report == first.report
    assert second.usage.cached_calls == second.usage.calls == first.usage.calls


def test_a_budget_stops_a_cascade(ray_session, model_server):
    model_server.reply = records(oracle)
    with pytest.raises(rlm_ray.LimitExceededError) as info:
        ops.filter(
            CONDITION,
            reviews(2_000),
            recall=0.9,
            approximate=APPROX,
            **settings(model_server, max_sub_calls=3),
        )
    assert info.value.limit == "max_sub_calls"
    assert len(model_server.requests) <= 3


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s: ops.filter("c", ["a"], recall=1.5, **s), "`recall` must be a number in (0, 1]"),
        (lambda s: ops.filter("c", ["a"], precision=0, **s), "`precision` must be"),
        (lambda s: ops.classify(["a"], ["X", "Y"], accuracy=-1, **s), "`accuracy` must be"),
        (lambda s: ops.count("c", ["a"], error=0.7, **s), "`error` must be a number in [0, 0.5]"),
        (lambda s: ops.count("c", ["a"], error=0.1, confidence=1, **s), "`confidence` must be"),
        (lambda s: ops.filter("c", ["a"], approximate={"recal": 0.9}, **s), "unknown key"),
        (lambda s: ops.filter("c", ["a"], approximate="yes", **s), "`approximate` must be"),
    ],
)
def test_bad_targets_are_config_errors_before_any_model_call(model_server, call, message):
    with pytest.raises(rlm_ray.ConfigError) as info:
        call(settings(model_server))
    assert message in str(info.value)
    assert model_server.requests == []


def test_an_rlm_with_bad_approximate_is_refused():
    with pytest.raises(rlm_ray.ConfigError, match="`approximate`: `recall` must be"):
        rlm_ray.RLM("openai/x", api_base="http://127.0.0.1:9/v1", approximate={"recall": 2})


# -- from model code -------------------------------------------------------------------------------


def test_the_models_approximate_operators_report_in_cell_trace_usage_and_progress(
    make_rlm, model_server
):
    root = """
    hits = llm_filter("the review reports a problem", context, recall=0.9, precision=0.9)
    n = llm_count("the review reports a problem", context, error=0.05)
    FINAL(f"{len(hits)} {n} {n.low} {n.high} {n.exact}")
    """
    model_server.reply = records(oracle, default=turns(code(root), "FINAL(unused)"))
    # subtle: each oracle round must outlast two progress polls (0.25 s apart) on an idle
    # machine too: at 0.05 s both operators' labelling stages fell between polls (CI, idle)
    model_server.latency_s = 0.6
    items = reviews(2_400)
    snapshots = []
    result = make_rlm(approximate=APPROX, on_progress=snapshots.append).completion("q", items)
    kept, n, low, high, exact = result.answer.split()
    truth = sum(has_problem(r) for r in items)
    assert int(low) <= truth <= int(high) and exact == "False"
    assert int(kept) >= 0.9 * truth
    cell = result.trace.iterations[0].cells[0]
    assert [c.operator for c in cell.cascades] == ["llm_filter", "llm_count"]
    assert "[llm_filter] cascade: oracle saw" in cell.output
    assert "[llm_count] count " in cell.output and cell.cascades[1].count[1] == int(low)
    assert result.usage.proxy_decided == sum(c.proxy_decided for c in cell.cascades) > 0
    assert cell.cascades[0].oracle_calls["train"] > 0 and cell.cascades[0].agreement > 0.9
    stages = {line for s in snapshots for line in s.stages}
    # polled every 0.25 s: each operator's stages show, but not every stage of each is caught
    assert any(line.startswith("llm_filter: ") for line in stages), stages
    assert any(" the sub-model labels " in line for line in stages), stages
    assert snapshots[-1].finished and snapshots[-1].stages == ()


def test_an_approximate_run_tells_the_model_and_defaults_its_operators(make_rlm, model_server):
    root = """
    hits = llm_filter("the review reports a problem", context)
    exact = llm_filter("the review reports a problem", context, recall=1, precision=1)
    FINAL(f"{len(hits)} {len(exact)}")
    """
    model_server.reply = records(oracle, default=turns(code(root), "FINAL(unused)"))
    items = reviews(2_000)
    result = make_rlm(approximate={"min_records": 1_000}).completion("q", items)
    approximate, exact = map(int, result.answer.split())
    assert exact == sum(has_problem(r) for r in items) and approximate >= 0.9 * exact
    cell = result.trace.iterations[0].cells[0]
    assert len(cell.cascades) == 1  # targets of 1: exact, no cascade
    system = model_server.requests[0].body["messages"][0]["content"]
    assert "Approximate record operators are allowed in this run" in system
    assert "llm_count(condition, items) -> int" in system


def test_a_bad_target_from_model_code_is_an_error_in_its_cell(make_rlm, model_server):
    root = """
    try:
        llm_filter("x", ["a", "b"], recall=1.5)
    except ValueError as exc:
        print("refused:", exc)
    """
    model_server.reply = records(oracle, default=turns(code(root), "FINAL(done)"))
    result = make_rlm().completion("q", "ctx")
    output = result.trace.iterations[0].cells[0].output
    assert "refused: llm_filter: `recall` must be a number in (0, 1]" in output
    assert asked_items(model_server) == []


def test_cancelling_a_run_stops_its_cascade(make_rlm, model_server):
    from rlm_ray import runtime

    root = 'hits = llm_filter("the review reports a problem", context, recall=0.9)\nFINAL(1)'
    model_server.reply = records(oracle, default=turns(code(root), "FINAL(unused)"))
    model_server.latency_s = 0.5
    rlm = make_rlm(approximate=APPROX, max_concurrent_calls=4)

    async def cancel_during_the_cascade():
        task = asyncio.ensure_future(rlm.acompletion("q", reviews(2_000)))
        while len(asked_items(model_server)) < 40:
            await asyncio.sleep(0.1)
            assert not task.done(), task
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(cancel_during_the_cascade(), timeout=120))
    rt = runtime.get_runtime(rlm.config)

    def idle():
        stats = ray.get(rt.pool.stats.remote())
        return not stats["running"] and not any(
            ray.get([g.in_flight.remote() for g in rt.gateways])
        )

    wait_for(idle, 30, "the pool and the gateways to be idle")
    requests = model_server.request_count
    time.sleep(1.0)
    assert model_server.request_count == requests  # the cascade asks nothing more
    assert len(asked_items(model_server)) < 2_000


def test_a_corpus_is_scored_by_chunk_where_its_documents_are_read(ray_session, model_server):
    import pyarrow as pa

    from rlm_ray.runtime import proxy_tasks

    model_server.reply = records(oracle)
    items = reviews(1_500)
    corpus = rlm_ray.load(pa.table({"text": items}), chunk_by="documents", chunk_size=400)
    documents = list(corpus.documents)
    assert len(proxy_tasks.groups_of(documents)) == 4  # one scoring task per stored chunk
    kept = ops.filter(
        CONDITION, corpus, recall=0.9, precision=0.9, approximate=APPROX, **settings(model_server)
    )
    texts = [str(doc) for doc in kept.values]
    found = sum(has_problem(t) for t in texts)
    assert found >= 0.9 * sum(has_problem(r) for r in items) and found >= 0.9 * len(texts)
    assert kept.report.proxy_decided > 0 and kept.report.oracle_seen == len(
        asked_items(model_server)
    )


def test_a_cascade_in_a_trace_file_reads_back_the_same_from_jsonl_and_parquet(tmp_path):
    import io

    from rich.console import Console

    from rlm_ray.core.repl import REPLSession, REPLSettings
    from rlm_ray.operators.approximate import Approximate
    from rlm_ray.testing import FakeLLM
    from rlm_ray.testing.thread_backend import ThreadBackend
    from rlm_ray.trace.file import read_trace, write_trace
    from rlm_ray.trace.view import print_trace
    from rlm_ray.types import CallTrace, IterationTrace

    targets = Approximate(recall=0.9, precision=0.9, error=0.05, min_records=1_000)
    settings = REPLSettings(can_recurse=False, approximate=targets)
    repl = REPLSession(reviews(1_500), ThreadBackend(FakeLLM(records(oracle))), "fake", settings)
    cell = repl.run("n = llm_count('x', context)\nh = llm_filter('x', context)").trace
    repl.close()
    assert cell.error is None and len(cell.cascades) == 2
    root = CallTrace("c1", 0, "m", "q", iterations=[IterationTrace(0, "r", cells=[cell])])
    write_trace(root, tmp_path / "t.jsonl")
    write_trace(root, tmp_path / "t.parquet")
    jsonl, parquet = read_trace(tmp_path / "t.jsonl"), read_trace(tmp_path / "t.parquet")
    written = jsonl[0]["iterations"][0]["cells"][0]["cascades"]
    assert written == parquet[0]["iterations"][0]["cells"][0]["cascades"]
    assert [c["operator"] for c in written] == ["llm_count", "llm_filter"]
    low, high = written[0]["count"][1:]
    assert low <= high and set(written[1]["oracle_calls"]) == {"train", "validate", "band", "exact"}
    shown = io.StringIO()
    print_trace(jsonl, Console(file=shown, width=400))
    assert "[llm_count] count " in shown.getvalue()  # `rlm-ray trace` shows each line
