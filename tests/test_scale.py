"""Fan-out at scale on this 2-CPU machine: bounded REPL processes, calls in flight up to the cap.

Speed is measured by `benchmarks/fanout.py` (leaf-1024, children-64), not asserted here.
"""

from __future__ import annotations

import pytest
import ray

from rlm_ray.testing import by_marker, code, turns

pytestmark = pytest.mark.ray


def test_1024_leaf_calls_from_one_comprehension_stay_under_the_cap(make_rlm, model_server):
    model_server.reply = by_marker(
        {"LEAF": "1"},
        default=turns(
            code("rs = [int(llm_query(f'LEAF {i}')) for i in range(1024)]\nFINAL(sum(rs))")
        ),
    )
    model_server.latency_s = 0.2  # long enough that the calls pile up to the cap, even under load
    # subtle: the server is shared by the session's tests; requests an earlier test left running
    # (an abandoned run's leaves, still sleeping) count in its peak until they end (CI saw 131).
    leftover = model_server.in_flight
    result = make_rlm(max_concurrent_calls=128).completion("q", "ctx")
    assert result.answer == "1024"
    assert result.usage.calls == 1025
    assert 32 <= model_server.peak_concurrency <= 128 + 1 + leftover  # + the waiting root turn


def test_64_concurrent_children_complete_with_bounded_repls(make_rlm, model_server):
    from rlm_ray import runtime

    model_server.reply = by_marker(
        {
            "LEAF": "1",
            "KID": turns(code("FINAL(int(llm_query('LEAF')) + 1)")),
        },
        default=turns(
            code("rs = [int(recursive_llm(f'KID {i}', 'c')) for i in range(64)]\nFINAL(sum(rs))")
        ),
    )
    rlm = make_rlm(max_depth=2)
    pool = runtime.get_runtime(rlm.config).pool
    ray.get(pool.stats.remote(reset_peak=True))
    result = rlm.completion("q", "ctx")
    assert result.answer == "128"
    stats = ray.get(pool.stats.remote())
    # one root plus at most (capacity - 1) children at once: admission control, no deadlock
    assert stats["peak_held"] <= stats["capacity"]
    assert len({c.call_id for c in result.trace.walk()}) == 65
