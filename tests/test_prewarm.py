"""REPL workers started ahead of a deep run's children (`runtime/idle_workers.py`): a call gets
a worker whose process is up, the children get the pre-started ones, unused ones go."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from types import SimpleNamespace

import psutil
import pytest
import ray
from helpers import wait_for

from rlm_ray.config import RLMConfig
from rlm_ray.runtime.idle_workers import MAX_WARM_CHILDREN, IdleWorkers, children_to_warm
from rlm_ray.testing import Reply, by_marker, code, turns

# -- which worker, how many: bookkeeping, in-process -----------------------------------------


def test_children_to_warm_never_exceeds_what_the_run_can_use():
    deep = RLMConfig(max_depth=2)
    assert children_to_warm(RLMConfig(max_depth=1), 2, 8) == 0  # no child ever
    assert children_to_warm(deep, 2, 8) == 4  # two per CPU
    assert children_to_warm(deep, 64, 8) == 7  # the pool's slots, less the root's
    assert children_to_warm(RLMConfig(max_depth=2, max_sub_calls=2), 2, 8) == 2
    assert children_to_warm(RLMConfig(max_depth=2, max_concurrent_calls=1), 2, 8) == 1
    assert children_to_warm(deep, 1000, 10_000) == MAX_WARM_CHILDREN


class _Starting:
    """An actor handle whose `__ray_ready__` answers when the test says its process is up."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.up: concurrent.futures.Future = concurrent.futures.Future()
        self.__ray_ready__ = SimpleNamespace(remote=lambda: SimpleNamespace(future=self._up))

    def _up(self) -> concurrent.futures.Future:
        return self.up


def test_a_call_gets_a_worker_that_is_up_before_an_older_one_still_starting():
    idle = IdleWorkers(kill=lambda worker: None)
    old, new = _Starting("old"), _Starting("new")
    idle.started("n", old)
    idle.started("n", new, spare=True)
    new.up.set_result(None)
    assert idle.take("n") is new
    assert idle.take("n") is old  # none up: the one started first
    assert idle.take("n") is None


def test_unused_spares_go_after_the_keep_time_and_no_other_worker_does():
    killed: list = []

    async def scenario() -> None:
        idle = IdleWorkers(kill=killed.append, keep_s=0.05)
        used, spare, kept = _Starting("used"), _Starting("spare"), _Starting("kept")
        idle.started("n", used, spare=True)
        idle.started("n", spare, spare=True)
        idle.put("n", kept)  # back from a call
        used.up.set_result(None)
        taken = idle.take("n")  # the up one: a spare no longer once used
        idle.hold_spares()
        idle.release_spares_later()
        idle.hold_spares()  # a deep run began within the keep time: nothing goes
        await asyncio.sleep(0.1)
        assert killed == []
        idle.put("n", taken)
        idle.release_spares_later()
        await asyncio.sleep(0.1)
        assert idle.count("n") == 2

    asyncio.run(scenario())
    assert [worker.name for worker in killed] == ["spare"]


# -- real workers ----------------------------------------------------------------------------


def _repl_workers() -> dict[str, dict]:
    """Live REPL worker actors of this test session's Ray, by actor id."""
    return {
        actor_id: actor
        for actor_id, actor in ray.state.actors().items()
        if actor["ActorClassName"] == "REPLWorker" and actor["State"] != "DEAD"
    }


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.ray
def test_unused_prewarmed_workers_are_released_and_their_processes_end(ray_session):
    from rlm_ray.runtime.pool import RemotePool

    # subtle: the keep time must outlast the workers' start on a loaded machine (at load 15,
    # 10 s was too short: every worker was released before its process came up)
    pool = RemotePool.options(num_cpus=0, max_concurrency=100).remote(8, None, spare_keep_s=20.0)
    try:
        before = set(_repl_workers())
        ray.get(pool.prewarm.remote(RLMConfig(max_depth=2), True))  # a run that never comes
        wanted = children_to_warm(RLMConfig(max_depth=2), ray.cluster_resources()["CPU"], 8) + 1
        assert ray.get(pool.stats.remote())["spares"] == wanted
        spares = set(_repl_workers()) - before
        assert len(spares) == wanted
        seen: dict[str, psutil.Process] = {}  # their processes, as they come up

        def all_gone() -> bool:
            actors = ray.state.actors()
            for actor_id in spares:
                pid = actors[actor_id]["Pid"]
                if pid and actor_id not in seen and actors[actor_id]["State"] == "ALIVE":
                    seen[actor_id] = psutil.Process(pid)
            return all(actors[i]["State"] == "DEAD" for i in spares)

        wait_for(all_gone, 120, "the unused workers to be released")
        assert seen, "no pre-started worker came up within its keep time"
        wait_for(lambda: not any(_alive(p) for p in seen.values()), 60, "their processes to end")
        assert ray.get(pool.stats.remote())["idle"] == 0
    finally:
        ray.kill(pool)


def _deep_script() -> object:
    root = turns(
        Reply(content=code("rs = [recursive_llm(f'KID {i}', 'c') for i in range(2)]"), delay_s=2),
        "FINAL(done)",
    )
    return by_marker({"KID": "FINAL(kid)"}, default=root)


@pytest.mark.ray
def test_a_deep_runs_root_gets_the_warm_worker_and_its_children_the_prewarmed_ones(
    make_rlm, model_server
):
    from rlm_ray import runtime

    # a pool of its own (the runtime key includes repl_memory_mb): no idle workers from others
    model_server.reply = turns("FINAL(ok)")
    shallow = make_rlm(max_depth=1, repl_memory_mb=1997)
    warm_pid = shallow.completion("q", "ctx").trace.pid  # its worker is idle in the pool now
    pool = runtime.get_runtime(shallow.config).pool
    assert ray.get(pool.stats.remote())["idle"] == 1

    model_server.reply = _deep_script()
    deep = make_rlm(max_depth=2, repl_memory_mb=1997)
    before = model_server.request_count
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(result=deep.completion("q", "ctx")))
    thread.start()
    try:
        wait_for(lambda: model_server.request_count > before, 60, "the root's first turn")
        existing = set(_repl_workers())  # before any child is asked for
    finally:
        thread.join(120)
    trace = box["result"].trace
    assert box["result"].answer == "done"
    assert trace.pid == warm_pid  # not a worker still starting for the children
    children = [call for call in trace.walk() if call.depth == 1]
    assert len(children) == 2
    assert {child.actor_id for child in children} <= existing


# -- a deep RLM's workers before its first run (the first deep run after a shallow one) ---------


def _pool_stats(rlm) -> dict:
    from rlm_ray import runtime

    return ray.get(runtime.get_runtime(rlm.config).pool.stats.remote())


def _wanted(rlm) -> int:
    capacity = _pool_stats(rlm)["capacity"]
    return children_to_warm(rlm.config, ray.cluster_resources()["CPU"], capacity)


@pytest.mark.ray
def test_a_runtime_started_by_a_shallow_run_starts_the_workers_of_a_deep_rlm_made_before(
    make_rlm, model_server
):
    # a pool of its own (the runtime key includes repl_memory_mb): started by `shallow` below
    deep = make_rlm(max_depth=2, repl_memory_mb=1995)
    shallow = make_rlm(max_depth=1, repl_memory_mb=1995)
    model_server.reply = turns("FINAL(ok)")
    assert shallow.completion("q", "ctx").answer == "ok"
    wanted = _wanted(deep)
    # for `deep`; `shallow`'s root may have taken one whose process came up before its own
    # warm worker's (a loaded machine), so one fewer may be left
    assert wanted and _pool_stats(shallow)["spares"] >= wanted - 1

    existing = set(_repl_workers())  # before the deep run begins
    model_server.reply = _deep_script()
    result = deep.completion("q", "ctx")
    assert result.answer == "done"
    children = [call for call in result.trace.walk() if call.depth == 1]
    assert len(children) == 2
    assert {child.actor_id for child in children} <= existing


@pytest.mark.ray
def test_a_deep_rlm_made_while_its_runtime_is_up_has_its_workers_started_at_once(
    make_rlm, model_server
):
    model_server.reply = turns("FINAL(ok)")
    shallow = make_rlm(max_depth=1, repl_memory_mb=1993)
    assert shallow.completion("q", "ctx").answer == "ok"
    assert _pool_stats(shallow)["spares"] == 0  # a depth-1 run starts none

    deep = make_rlm(max_depth=2, repl_memory_mb=1993)  # no run of it yet
    wanted = _wanted(deep)
    wait_for(lambda: _pool_stats(deep)["spares"] >= wanted, 60, "the deep RLM's children's workers")


def test_deep_rlms_are_remembered_while_they_live_and_shallow_ones_never():
    import gc

    from rlm_ray import RLM
    from rlm_ray.front import deep_rlms

    deep = RLM("openai/x", max_depth=3, repl_memory_mb=1991)  # no runtime has these settings
    shallow = RLM("openai/x", max_depth=1, repl_memory_mb=1991)
    assert deep.config in deep_rlms.configs()
    assert shallow.config not in deep_rlms.configs()
    del deep
    gc.collect()
    assert not [c for c in deep_rlms.configs() if c.repl_memory_mb == 1991]
