"""Live progress: the driver polls counters from the gateways and the pool; `on_progress` gets
snapshots whose counts only grow and whose last one matches the run's usage."""

from __future__ import annotations

import io
import threading
import time
from types import SimpleNamespace

import pytest
import ray

from rlm_ray import ConfigError, DepthProgress, Progress, runtime
from rlm_ray.progress import RunCounters, merge
from rlm_ray.testing import by_marker, code, turns
from rlm_ray.types import LLMReply


def test_merge_adds_the_counters_of_every_actor():
    gateway_a, gateway_b, pool = RunCounters(), RunCounters(), RunCounters()
    gateway_a.call_started(0)
    gateway_a.call_ended(0, LLMReply("x", "m", input_tokens=10, output_tokens=2, cost_usd=0.5))
    gateway_b.call_started(1)
    gateway_b.call_started(1)
    gateway_b.call_ended(1, LLMReply("y", "m", input_tokens=3, output_tokens=1, cached=True))
    gateway_b.call_started(1)
    gateway_b.call_ended(1, None)  # failed
    pool.rlm_started(0)
    snapshot = merge("run", 1.5, [gateway_a, gateway_b, pool], finished=False)
    assert snapshot.depths == (
        DepthProgress(0, rlm_in_flight=1, rlm_done=0, in_flight=0, done=1),
        DepthProgress(1, rlm_in_flight=0, rlm_done=0, in_flight=1, done=2),
    )
    assert (snapshot.calls, snapshot.in_flight, snapshot.cached_calls) == (3, 1, 1)
    assert (snapshot.failed_calls, snapshot.input_tokens, snapshot.output_tokens) == (1, 13, 3)
    assert snapshot.cost_usd == 0.5
    assert snapshot.summary() == (
        "3 model calls, 1 cached, 1 failed (depth 0: 0/1 RLM, 1/1 model; depth 1: 2/3 model); "
        "13 tokens in, 3 out; $0.5000; 1.5 s"
    )


def test_on_progress_must_be_callable(make_rlm):
    with pytest.raises(ConfigError, match="`on_progress` must be callable"):
        make_rlm(on_progress="print")


def tree_script(children: int, leaves: int):
    """The root starts `children` child RLMs; each makes `leaves` llm_query calls, then answers."""
    child = turns(
        code(f"rs = [llm_query(f'LEAF {{i}}') for i in range({leaves})]\nn = sum(map(int, rs))"),
        "FINAL_VAR(n)",
    )
    root = turns(
        code(f"rs = [recursive_llm(f'CHILD {{i}}', 'c') for i in range({children})]\nprint(rs)"),
        "FINAL(done)",
    )
    return by_marker({"LEAF": "1", "CHILD": child}, default=root)


@pytest.mark.ray
def test_snapshots_grow_and_the_last_one_has_the_final_counts(make_rlm, model_server):
    model_server.reply = tree_script(children=1, leaves=3)
    model_server.latency_s = 0.3  # 5 model calls in sequence: several polls
    snapshots: list[Progress] = []
    threads = set()

    def on_progress(snapshot: Progress) -> None:
        if not snapshot.stage:  # the start-up's: test_start_up_names_each_stage_it_waits_for
            threads.add(threading.get_ident())
            snapshots.append(snapshot)

    rlm = make_rlm(max_depth=2, on_progress=on_progress)
    result = rlm.completion("q", "ctx")
    assert result.answer == "done"

    assert len(snapshots) >= 3, snapshots
    assert [s.finished for s in snapshots] == [False] * (len(snapshots) - 1) + [True]
    assert len({s.run_id for s in snapshots}) == 1 and len(threads) == 1
    for before, after in zip(snapshots, snapshots[1:]):
        assert after.elapsed_s >= before.elapsed_s
        assert after.calls >= before.calls and after.input_tokens >= before.input_tokens
        done_before = {d.depth: (d.done, d.rlm_done) for d in before.depths}
        for d in after.depths:
            old_done, old_rlm_done = done_before.get(d.depth, (0, 0))
            assert d.done >= old_done and d.rlm_done >= old_rlm_done

    final = snapshots[-1]
    assert final.depths == (
        DepthProgress(0, rlm_in_flight=0, rlm_done=1, in_flight=0, done=2),  # root turns
        DepthProgress(1, rlm_in_flight=0, rlm_done=1, in_flight=0, done=2),  # child turns
        DepthProgress(2, rlm_in_flight=0, rlm_done=0, in_flight=0, done=3),  # leaves
    )
    usage = result.usage
    assert final.calls == usage.calls == model_server.request_count == 7
    assert (final.input_tokens, final.output_tokens) == (usage.input_tokens, usage.output_tokens)
    assert final.cost_usd == usage.cost_usd
    assert final.cached_calls == final.failed_calls == final.in_flight == 0
    # Something was seen in flight before the end: the snapshots are live, not replayed.
    assert any(s.in_flight or any(d.rlm_in_flight for d in s.depths) for s in snapshots[:-1])


@pytest.mark.ray
def test_a_failing_callback_stops_the_run_and_raises(make_rlm, model_server):
    fan = code("rs = [llm_query(f'LEAF {i}') for i in range(4)]\nprint(rs)")
    model_server.reply = by_marker({"LEAF": "1"}, default=turns(fan, fan, fan, "FINAL(done)"))
    model_server.latency_s = 1.0  # 4 root turns + 12 leaves, ~7 s if the run went on

    def on_progress(snapshot: Progress) -> None:
        raise RuntimeError("display broke")

    rlm = make_rlm(on_progress=on_progress)
    with pytest.raises(RuntimeError, match="display broke"):
        rlm.completion("q", "ctx")
    # The tree was cancelled: the pool empties and the script's 16 calls are never all made.
    pool = runtime.get_runtime(rlm.config).pool
    deadline = time.monotonic() + 60
    while ray.get(pool.stats.remote())["running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.get(pool.stats.remote())["running"] == 0
    assert model_server.request_count < 16
    # The pool is still usable: the next run (no callback) answers.
    model_server.latency_s = 0.0
    model_server.reply = turns("FINAL(ok)")
    assert make_rlm().completion("q", "ctx").answer == "ok"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_the_cli_display_draws_on_a_terminal_and_sums_up_anywhere(terminal):
    from rlm_ray.cli.progress_display import ProgressDisplay

    stream = _Terminal() if terminal else io.StringIO()
    gateway = RunCounters()
    gateway.call_started(0)
    with ProgressDisplay(stream) as display:
        display.update(merge("run", 0.3, [gateway], finished=False))
        gateway.call_ended(0, LLMReply("x", "m", input_tokens=1200, output_tokens=30))
        display.update(merge("run", 0.6, [gateway], finished=True))
    text = stream.getvalue()
    summary = "rlm-ray: 1 model calls (depth 0: 1/1 model); 1,200 tokens in, 30 out; $0.0000; 0.6 s"
    assert text.rstrip("\n").endswith(summary)
    if terminal:  # the live table, redrawn: the in-flight call, then the done one
        assert "model calls done" in text and "0 model calls" in text and "1,200 tokens in" in text
    else:  # a pipe gets the summary line only
        assert text == summary + "\n"


def test_merge_says_what_the_servers_work_on_and_what_waits():
    """Calls in flight at a model server that says which slots it works on (llama.cpp's
    `/slots`) are running or queued by its word; calls the gateways hold are queued too."""
    gateway_a, gateway_b = RunCounters(), RunCounters()
    for _ in range(3):
        gateway_a.call_started(1, "http://a/v1")
    gateway_b.call_started(1, "http://a/v1")
    gateway_b.call_started(1, "http://b/v1")  # a server that does not say
    gateway_a.held[1] = 2
    gateway_a.server_busy = {"http://a/v1": 1}
    snapshot = merge("run", 1.0, [gateway_a, gateway_b], finished=False)
    assert (snapshot.in_flight, snapshot.running, snapshot.queued) == (5, 1, 2 + 3)
    assert snapshot.depths[0].held == 2
    assert merge("run", 1.0, [gateway_b], finished=False).running is None


@pytest.mark.ray
def test_a_server_with_fewer_slots_than_calls_shows_them_queued(make_rlm, model_server):
    """Issue 30: 6 sub-calls sent at once to a server with one slot ran one at a time, but the
    progress said 6 in flight and the trace "at most 6 sub-calls in parallel". Now the live
    snapshots say 1 running and the rest queued (the server's `/slots`), and the trace counts
    what ran at once by the server's own timings."""
    from rlm_ray.trace import summary as ts
    from rlm_ray.trace.file import trace_records

    fan = code("rs = [llm_query(f'LEAF {i}') for i in range(6)]\nprint(len(rs))")
    model_server.reply = by_marker({"LEAF": "1"}, default=turns(fan, "FINAL(done)"))
    model_server.slots, model_server.latency_s = 1, 1.0
    snapshots: list[Progress] = []
    result = make_rlm(on_progress=snapshots.append).completion("q", "ctx")
    assert result.answer == "done" and model_server.peak_processing == 1
    live = [s for s in snapshots if not s.stage and not s.finished]
    assert all(s.running in (None, 0, 1) for s in live), [s.running for s in live]
    assert any(s.running == 1 and s.queued >= 2 for s in live), [
        (s.in_flight, s.running, s.queued) for s in live
    ]
    records = list(trace_records(result.trace))
    line = ts.timeline(records)
    assert line.server_timed and line.peak_running_subcalls == 1
    assert line.peak_parallel_subcalls > 1  # sent together, queued at the server
    assert "at most 1 sub-call(s) running at once" in ts.summary(records)
    leaves = [s for it in result.trace.iterations for c in it.cells for s in c.subcalls]
    assert len(leaves) == 6 and all(s.server_s is not None for s in leaves)


@pytest.mark.ray
def test_start_up_names_each_stage_it_waits_for(make_rlm, model_server, monkeypatch):
    """Issue 30: while the local model server started (20-50 s) the live view said "0 model
    calls". `on_progress` now hears each start-up stage, in order, before the run's counts."""
    import functools

    from rlm_ray.front import settings as settings_module
    from rlm_ray.runtime import model_servers

    # (defined here, so that Ray ships the class by value: workers cannot import this module)
    class FakeModelServer:
        """Stands in for `model_servers.ModelServer` (no model files, no llama.cpp); the
        "server" is the scripted one."""

        def __init__(self, name, settings, url="") -> None:
            self.url = url

        def prepare(self) -> None:
            pass

        def start(self) -> str:
            return self.url

        def warm_prefix(self, messages) -> str:
            return "saved"

        def stop(self) -> None:
            pass

    monkeypatch.setattr(settings_module, "find_parts", lambda spec: None)  # no model files
    monkeypatch.setattr(settings_module, "check_xllamacpp", lambda spec: None)
    fake = ray.remote(FakeModelServer)
    monkeypatch.setattr(
        model_servers,
        "_RemoteServer",
        SimpleNamespace(
            options=lambda **kw: SimpleNamespace(
                remote=functools.partial(fake.remote, url=model_server.url)
            )
        ),
    )
    model_server.reply = turns("FINAL(42)")
    snapshots: list[Progress] = []
    rlm = make_rlm(model="local", api_base=None, on_progress=snapshots.append)
    assert rlm.completion("q", "ctx").answer == "42"
    stages = [s.stage for s in snapshots if s.stage]
    assert list(dict.fromkeys(stages)) == [
        "starting Ray",
        "storing the context",
        "assembling the model",
        "loading the model server",
        "warming the prompt prefix",
    ]
    first_run = next(i for i, s in enumerate(snapshots) if not s.stage)
    assert all(not s.stage for s in snapshots[first_run:])  # stages come before the run
    assert (
        "starting: loading the model server"
        in Progress("", 1.0, stage="loading the model server").summary()
    )
