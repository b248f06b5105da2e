"""Fan-out is parallel without the model asking; depth rules; the deep tree completes.

The scripted server counts peak concurrent requests: with 0.6 s latency, 32 leaf calls that are
all in flight together finish in well under the 19.2 s a sequential RLM would take. What a call
does with its children's answers (order, depth rules, a child's context) is tested in this
process (`helpers.local_completion`); where they run, in parallel and by handle, over Ray.
"""

from __future__ import annotations

import time

import pytest
import ray
from helpers import local_completion

from rlm_ray.testing import Reply, by_marker, code, turns

N = 32
# long enough that a loaded 2-core machine gets all 32 calls out before the first returns
LATENCY = 0.6

FANOUT_FORMS = {
    "comprehension": "rs = [llm_query(f'LEAF {i}') for i in range(32)]",
    "comprehension_with_int": "rs = [int(llm_query(f'LEAF {i}')) for i in range(32)]",
    "loop_append": "rs = []\nfor i in range(32):\n    rs.append(llm_query(f'LEAF {i}'))",
    "batched": "rs = llm_query_batched([f'LEAF {i}' for i in range(32)])",
    "generator_in_sum": "rs = [sum(int(llm_query(f'LEAF {i}')) for i in range(32))] * 32",
    "recursive_at_depth_limit": "rs = [recursive_llm(f'LEAF {i}', c) for i, c in enumerate(['x'] * 32)]",
    "helper_function": (
        "def ask(i):\n    return int(llm_query(f'LEAF {i}'))\nrs = [ask(i) for i in range(32)]"
    ),
}


@pytest.mark.ray
@pytest.mark.parametrize("form", sorted(FANOUT_FORMS))
def test_fanout_forms_are_in_flight_together(make_rlm, model_server, form):
    model_server.reply = by_marker(
        {"LEAF": "1"},
        default=turns(code(FANOUT_FORMS[form] + "\nFINAL(len(rs))")),
    )
    rlm = make_rlm()
    rlm.completion("warm up", "ctx")  # new HTTP connections and litellm's first calls: not measured
    model_server.latency_s = LATENCY
    model_server.reset_stats()
    result = rlm.completion("q", "ctx")
    elapsed = result.timings["run_s"]
    assert result.answer == "32"
    assert model_server.peak_concurrency >= N
    assert elapsed < N * LATENCY / 2, f"{elapsed:.2f}s is not parallel"


def test_comprehension_keeps_order_and_raises_first_error():
    reply = by_marker(
        {"NUM": lambda r: r.last_user.split()[-1]},
        default=turns(
            code(
                "rs = [int(llm_query(f'NUM {i}')) for i in range(20)]\nprint(rs == list(range(20)))\n"
                "try:\n    bad = [int(llm_query(f'NUM x{i}')) for i in range(5)]\n"
                "except ValueError as e:\n    print('first error:', e)"
            ),
            lambda r: (
                "FINAL(ok)" if "True" in r.last_user and "'x0'" in r.last_user else "FINAL(bad)"
            ),
        ),
    )
    assert local_completion(reply)[0].answer == "ok"


@pytest.mark.ray
def test_cap_on_calls_in_flight(make_rlm, model_server):
    model_server.reply = by_marker(
        {"LEAF": "1"}, default=turns(code(FANOUT_FORMS["batched"] + "\nFINAL(len(rs))"))
    )
    model_server.latency_s = 0.1
    leftover = model_server.in_flight  # an earlier test's requests still running (shared server)
    assert make_rlm(max_concurrent_calls=8).completion("q", "ctx").answer == "32"
    assert 8 <= model_server.peak_concurrency <= 8 + leftover


def test_depth_1_recursive_llm_is_one_plain_call():
    reply = by_marker(
        {
            "CHILD-Q": lambda r: (
                "plain" if len(r.messages) == 1 and "CHILD-CTX" in r.last_user else "repl"
            )
        },
        default=turns(code("FINAL(recursive_llm('CHILD-Q', 'CHILD-CTX'))")),
    )
    assert local_completion(reply, max_depth=1)[0].answer == "plain"


def test_depth_2_child_gets_its_own_repl_and_context():
    child = turns(code("FINAL(f'child saw {len(context)} chars: {context}')"))
    reply = by_marker(
        {"CHILD-Q": child},
        default=turns(code("FINAL(recursive_llm('CHILD-Q', 'abcdef'))")),
    )
    result, fake = local_completion(reply, max_depth=2)
    assert result.answer == "child saw 6 chars: abcdef"
    child_requests = [r for r in fake.requests if r.has("CHILD-Q")]
    assert child_requests[0].system and "str with 6 total characters" in child_requests[0].system
    calls = list(result.trace.walk())
    assert [c.depth for c in calls] == [0, 1]


def test_child_without_context_gets_the_prompt_as_context():
    reply = by_marker(
        {"SELF-CTX": turns(code("FINAL(context)"))},
        default=turns(code("FINAL(rlm_query('SELF-CTX prompt'))")),
    )
    assert local_completion(reply, max_depth=2)[0].answer == "SELF-CTX prompt"


@pytest.mark.ray
def test_rlm_query_batched_children_run_in_parallel(make_rlm, model_server):
    model_server.reply = by_marker(
        {"KID": turns(code("FINAL(context.upper())"))},
        default=turns(
            code(
                "rs = rlm_query_batched(['KID 1', 'KID 2', 'KID 3'], ['a', 'b', 'c'])\nFINAL(''.join(rs))"
            )
        ),
    )
    assert make_rlm(max_depth=2).completion("q", "ctx").answer == "ABC"


@pytest.mark.ray
@pytest.mark.slow
def test_depth_3_fanout_8_tree_completes(make_rlm, model_server):
    """73 REPL calls and 512 leaf calls on a 2-CPU machine, with admission control."""
    leaf_sum = "rs = [llm_query(f'LEAF {i}') for i in range(8)]\nFINAL(sum(int(r) for r in rs))"
    model_server.reply = by_marker(
        {
            "LEAF": "1",
            "LEVEL-2": turns(code(leaf_sum)),
            "LEVEL-1": turns(
                code(
                    "rs = [recursive_llm(f'LEVEL-2 {i}', f'c{i}') for i in range(8)]\nFINAL(sum(int(r) for r in rs))"
                )
            ),
        },
        default=turns(
            code(
                "rs = [recursive_llm(f'LEVEL-1 {i}', f'c{i}') for i in range(8)]\nFINAL(sum(int(r) for r in rs))"
            )
        ),
    )
    result = make_rlm(max_depth=3).completion("ROOT", "ctx")
    assert result.answer == "512"
    calls = list(result.trace.walk())
    assert len(calls) == 73
    assert sorted({c.depth for c in calls}) == [0, 1, 2]
    assert result.usage.calls == 73 + 512 == model_server.request_count


@pytest.mark.ray
def test_context_travels_by_handle(make_rlm, model_server):
    """The whole context goes to a child as the driver's handle; a big new piece as a new handle."""
    model_server.reply = by_marker(
        {"KID": turns(code("FINAL(len(context))"))},
        default=turns(
            code(
                "a = recursive_llm('KID whole', context)\n"
                "b = recursive_llm('KID big piece', context[:150000])\n"
                "c = recursive_llm('KID small piece', context[:5])\n"
                "FINAL(f'{a},{b},{c}')"
            )
        ),
    )
    result = make_rlm(max_depth=2).completion("q", "x" * 200_000)
    assert result.answer == "200000,150000,5"
    root, whole, big, small = sorted(result.trace.walk(), key=lambda c: c.call_id)
    by_query = {c.query: c for c in (whole, big, small)}
    assert root.context_id and by_query["KID whole"].context_id == root.context_id
    assert by_query["KID big piece"].context_id not in ("", root.context_id)
    assert by_query["KID small piece"].context_id == ""


@pytest.mark.ray
def test_cancelling_a_run_stops_its_whole_tree(make_rlm, model_server):
    """After the caller cancels, no call of the run is left running or sending requests."""
    import asyncio

    from rlm_ray import runtime

    model_server.reply = by_marker(
        {
            "LEAF": Reply(content="1", delay_s=6.0),
            "KID": turns(
                code("rs = [int(llm_query(f'LEAF {i}')) for i in range(4)]\nFINAL(sum(rs))")
            ),
        },
        default=turns(code("rs = [recursive_llm(f'KID {i}', 'c') for i in range(3)]\nFINAL(rs)")),
    )
    rlm = make_rlm(max_depth=2)

    async def cancel_midway():
        task = asyncio.ensure_future(rlm.acompletion("q", "ctx"))
        await asyncio.sleep(3.0)  # children admitted, their leaves in flight (6 s each)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    pool = runtime.get_runtime(rlm.config).pool
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stats = ray.get(pool.stats.remote())
        if not stats["held"] and not stats["running"]:
            break
        time.sleep(0.2)
    assert stats["held"] == {} and stats["running"] == 0, stats
    requests = model_server.request_count
    time.sleep(1.5)
    assert model_server.request_count == requests  # nothing of the run still calls the model


@pytest.mark.ray
def test_failed_child_keeps_its_usage_and_trace(make_rlm, model_server):
    model_server.reply = by_marker(
        {
            "LEAF": "1",
            "KID": turns(
                code("r = llm_query('LEAF a')\nprint(r)"), Reply(status=500, content="down")
            ),
        },
        default=turns(
            code(
                "try:\n    r = str(recursive_llm('KID x', 'c'))\n"
                "except SubCallError as e:\n    FINAL('child failed: ' + str(e)[:40])"
            )
        ),
    )
    result = make_rlm(max_depth=2, max_retries=0).completion("q", "ctx")
    assert result.answer.startswith("child failed: rlm sub-call failed")
    root, child = list(result.trace.walk())
    assert child.error and "LLMError" in child.error
    assert len(child.iterations) == 1 and child.iterations[0].cells[0].subcalls[0].kind == "llm"
    assert result.usage.calls == 3  # root turn, the child's first turn, its leaf
