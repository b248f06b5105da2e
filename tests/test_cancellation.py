"""Cancelling a run, from Python or with Ctrl-C in the CLI, leaves none of its work running."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
import ray
from helpers import start_cli, wait_for

from rlm_ray.testing import Reply, by_marker, code, turns

pytestmark = pytest.mark.ray

SLOW_TREE = by_marker(
    {
        "LEAF": Reply(content="1", delay_s=30.0),
        "KID": turns(code("rs = [int(llm_query(f'LEAF {i}')) for i in range(4)]\nFINAL(sum(rs))")),
    },
    default=turns(code("rs = [recursive_llm(f'KID {i}', 'c') for i in range(3)]\nFINAL(rs)")),
)


def _leaves_in_flight(server) -> int:
    return sum(1 for r in server.requests if r.first_user.startswith("LEAF"))


def test_cancel_from_python_leaves_no_call_of_the_run_anywhere(make_rlm, model_server):
    from rlm_ray import runtime

    model_server.reply = SLOW_TREE
    rlm = make_rlm(max_depth=2)

    async def cancel_when_leaves_are_in_flight():
        task = asyncio.ensure_future(rlm.acompletion("q", "ctx"))
        while _leaves_in_flight(model_server) < 4:
            await asyncio.sleep(0.1)
            assert not task.done(), task
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(cancel_when_leaves_are_in_flight(), timeout=120))
    rt = runtime.get_runtime(rlm.config)

    seen = {}

    def nothing_left():
        seen["pool"] = stats = ray.get(rt.pool.stats.remote())
        seen["gateways"] = calls = ray.get([g.in_flight.remote() for g in rt.gateways])
        return not stats["held"] and not stats["running"] and not any(calls)

    # (the server itself sleeps out the leaves' 30 s: a closed connection does not wake it)
    wait_for(nothing_left, 20, lambda: f"the pool and the gateways to be idle: {seen}")
    requests = model_server.request_count
    time.sleep(1.0)
    assert model_server.request_count == requests  # nothing of the run still calls the model


def test_ctrl_c_in_the_cli_stops_the_run_and_frees_its_actors(model_server, tmp_path, ray_session):
    model_server.reply = SLOW_TREE
    (tmp_path / "ctx.txt").write_text("some context")
    address = ray_session.get_runtime_context().gcs_address
    args = ["--model", "openai/scripted", "--api-base", model_server.url, "--api-key", "sk-t"]
    args += ["--context", str(tmp_path / "ctx.txt"), "--query", "q", "--max-depth", "2"]
    cli = start_cli("run", *args, "--address", address)
    try:
        wait_for(lambda: _leaves_in_flight(model_server) >= 4, 120, "leaf calls in flight")
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 130, err
    assert "interrupted" in err and out == ""

    job_ids = {j["JobID"] for j in ray.state.jobs() if j["IsDead"]}

    def actors_of_dead_drivers_alive():
        return [
            a for a in ray.state.actors().values() if a["JobID"] in job_ids and a["State"] != "DEAD"
        ]

    wait_for(lambda: not actors_of_dead_drivers_alive(), 30, "the CLI's actors to be freed")
    requests = model_server.request_count
    time.sleep(1.0)
    assert model_server.request_count == requests
