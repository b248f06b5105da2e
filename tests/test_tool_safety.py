"""Tools under attack, on Ray: a `write` tool never runs twice for one call of the model, the
tool host trusts nothing the REPL says about a tool's effects, and tools that hang cannot pile
up threads in it.

The tools are defined here, at module level, and shipped to the tool hosts by value, as a
user's are. A `write` tool appends a line to a file: the lines on disk count its real runs.
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import ray
from helpers import wait_for

import rlm_ray
from rlm_ray import ToolCall
from rlm_ray.runtime.tool_host import RemoteToolHost, approvals_actor, serve
from rlm_ray.testing import code
from rlm_ray.tooling.pickling import freeze

pytestmark = pytest.mark.ray


@rlm_ray.tool(effects="write")
def append_line(path: str, line: str) -> str:
    """Append one line to a file."""
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")
    return f"appended {line}"


@rlm_ray.tool(effects="read", timeout_s=1)
def hang(folder: str) -> str:
    """Leave a mark, then wait until the test releases every call."""
    import time
    import uuid

    open(os.path.join(folder, f"started-{uuid.uuid4().hex}"), "w").close()
    while not os.path.exists(os.path.join(folder, "release")):
        time.sleep(0.05)
    return "released"


def by_question(answers: dict):
    """Root and child calls answer by their question (the text after the last "Query:" of the
    first message: a follow-up's history quotes earlier questions); by turn for a list."""

    def reply(request):
        replies = answers[request.first_user.rsplit("Query:", 1)[-1].strip()]
        return replies if isinstance(replies, str) else replies[min(request.turn, len(replies) - 1)]

    return reply


def last_root_prompt(model_server) -> str:
    return [r for r in model_server.requests if r.system][-1].first_user


# -- a rebuilt session REPL answers tool calls from their record ------------------------------------
@pytest.mark.parametrize("gate", ["approve", "allow_effects"])
def test_a_rebuilt_session_repl_never_runs_a_write_tool_again(
    make_rlm, model_server, tmp_path, gate
):
    log = tmp_path / "log.txt"
    model_server.reply = by_question(
        {
            "Q-ONE": [code("done = append_line(context, 'one')"), "FINAL(ok)"],
            "Q-TWO": code("FINAL(done + ' / still there')"),
        }
    )
    asked: list[ToolCall] = []  # approve runs on the driver: this list sees every question

    def approve(call: ToolCall) -> bool:
        asked.append(call)
        return True

    gates = {"approve": approve} if gate == "approve" else {"allow_effects": True}
    # the call cache is on: cells that made sub-calls are re-run when the REPL is rebuilt
    rlm = make_rlm(tools=[append_line], cache_dir=str(tmp_path / "cache"), **gates)
    with rlm.session(str(log)) as s:
        first = s.completion("Q-ONE")
        os.kill(first.trace.pid, signal.SIGKILL)  # the REPL's process, as the OOM killer would
        second = s.completion("Q-TWO")
    assert log.read_text() == "one\n"  # the tool ran once: for the model's one call
    assert second.answer == "appended one / still there"
    told = last_root_prompt(model_server)
    assert "REPL RESTORED" in told and "No variable was lost" in told
    assert len(asked) == (1 if gate == "approve" else 0)
    assert second.usage.tool_calls == 0  # answered from the record, not run


def test_a_cell_whose_child_called_a_write_tool_is_not_rerun(make_rlm, model_server, tmp_path):
    log = tmp_path / "log.txt"
    model_server.reply = by_question(
        {
            "Q-ONE": [code("kid = recursive_llm('KID', context)"), "FINAL(ok)"],
            "KID": code("FINAL(append_line(context, 'kid'))"),
            "Q-TWO": "FINAL(ok)",
        }
    )
    rlm = make_rlm(
        tools=[append_line], allow_effects=True, max_depth=2, cache_dir=str(tmp_path / "cache")
    )
    with rlm.session(str(log)) as s:
        first = s.completion("Q-ONE")
        os.kill(first.trace.pid, signal.SIGKILL)
        s.completion("Q-TWO")
    assert log.read_text() == "kid\n"
    assert "These variables are LOST (compute them again if you need them): kid" in (
        last_root_prompt(model_server)
    )


# -- the tool host, called at its entry point as a REPL process would ------------------------------
def _call_host(host, tool, call: ToolCall, run_id: str = "run", approvals=None):
    """`ToolHost.run` as `RayBackend.start_tool` sends it (no budget, no write permission)."""
    functions_ref = ray.put(freeze({call.name: tool}))
    return host.run.remote(functions_ref, call, run_id, False, None, approvals, [])


def test_a_write_tool_sent_as_read_still_needs_approval(ray_session, tmp_path):
    log = tmp_path / "log.txt"
    forged = ToolCall("append_line", "read", {"path": str(log), "line": "forged"})
    host = RemoteToolHost.options(max_concurrency=4).remote()
    try:
        refused = ray.get(_call_host(host, append_line, forged))
        assert refused.refused and "(effects='write') was refused" in refused.error
        assert not log.exists()

        asked: list[ToolCall] = []
        actor = approvals_actor()

        async def ask_once():
            def approve(call: ToolCall) -> bool:
                asked.append(call)
                return True

            sent = _call_host(host, append_line, forged, "run-2", approvals=actor)
            return await serve(actor, "run-2", approve, lambda: asyncio.wrap_future(sent.future()))

        approved = asyncio.run(ask_once())
    finally:
        ray.kill(host)
    assert [call.effects for call in asked] == ["write"]  # approve() sees the real effects
    assert approved.decision == "approved" and log.read_text() == "forged\n"


def test_tools_that_hang_cannot_pile_up_threads_in_the_tool_host(ray_session, tmp_path):
    host = RemoteToolHost.options(max_concurrency=32).remote(max_threads=3)
    call = ToolCall("hang", "read", {"folder": str(tmp_path)})
    started = lambda: len(list(tmp_path.glob("started-*")))  # noqa: E731
    try:
        first = ray.get([_call_host(host, hang, call) for _ in range(8)])
        again = ray.get([_call_host(host, hang, call) for _ in range(4)])
        assert started() == 3  # 12 calls, 3 threads: each stuck tool keeps its own
        timed_out = [r for r in first if r.error.startswith("TimeoutError")]
        assert len(timed_out) == 3 and all(r.ran for r in timed_out)
        busy = [r for r in first + again if not r.error.startswith("TimeoutError")]
        assert len(busy) == 9
        assert all(not r.ran and "all 3 tool threads of its host are held" in r.error for r in busy)
        (tmp_path / "release").touch()  # the stuck tools return and give their threads back
        wait_for(lambda: ray.get(_call_host(host, hang, call)).value == "released")
    finally:
        (tmp_path / "release").touch()
        ray.kill(host)
