"""One RLM call in-process: `call.run_call` with `ThreadBackend` and `FakeLLM`, no Ray.

What a call does with its model and its REPL (the loop's contract) is tested here in
milliseconds; tests/test_repl_contract.py runs the same kinds of calls over Ray and HTTP.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from rlm_ray.config import ModelSettings, RLMConfig
from rlm_ray.core.call import run_call, shared_prefix
from rlm_ray.core.loop import Resume
from rlm_ray.core.spec import CallSpec, Checkpoint, Restart, Whereabouts
from rlm_ray.errors import LimitExceededError
from rlm_ray.testing import FakeLLM, Request, by_marker, code, turns
from rlm_ray.testing.thread_backend import ThreadBackend
from rlm_ray.types import Usage


def spec(depth: int = 0, deadline: float | None = None, **config) -> CallSpec:
    root = CallSpec.root(
        "What is the answer?",
        models=ModelSettings(model="fake", sub_model="fake"),
        config=RLMConfig(**{"max_depth": 1, "cell_timeout_s": 10, **config}),
        windows=(32_000, 32_000),
    )
    return dataclasses.replace(root, depth=depth, deadline=deadline)


def call(reply, context="some context", **kw):
    fake = FakeLLM(reply)
    backend = ThreadBackend(fake)
    return run_call(kw.pop("spec", None) or spec(), context, backend, **kw), fake


def test_a_final_in_code_ends_the_call():
    result, fake = call(turns(code("x = 6 * 7\nFINAL(x)")))
    assert result.error is None
    assert result.answer == "42"
    assert result.trace.finished_by == "FINAL"
    assert fake.calls == 1


def test_a_code_error_goes_back_to_the_model_as_text():
    def reply(request: Request) -> str:
        if "NameError" in request.last_user:
            return "FINAL(recovered)"
        return code("print(no_such_name)")

    result, fake = call(reply)
    assert result.answer == "recovered"
    assert fake.calls == 2
    first_cell = result.trace.iterations[0].cells[0]
    assert "NameError" in first_cell.error


def test_at_max_depth_a_call_is_one_plain_model_call():
    result, fake = call(lambda request: "plain answer", spec=spec(max_depth=0))
    assert result.answer == "plain answer"
    assert result.trace.finished_by == "plain"
    assert fake.calls == 1
    assert "some context" in fake.requests[0].last_user
    assert not fake.requests[0].system  # no REPL, no system prompt


def test_sub_calls_run_and_usage_adds_up():
    root = turns(code("parts = [llm_query(f'SUB {i}') for i in range(3)]\nFINAL('+'.join(parts))"))
    result, fake = call(by_marker({"SUB": lambda r: r.last_user.lower()}, default=root))
    assert result.answer == "sub 0+sub 1+sub 2"
    assert fake.calls == 4  # one root turn, three sub-calls
    assert result.usage.calls == 4
    assert result.trace.total_calls == 4
    usage, trace = result.usage, result.trace
    assert (usage.input_tokens, usage.output_tokens) == (
        trace.total_input_tokens,
        trace.total_output_tokens,
    )
    subcalls = trace.iterations[0].cells[0].subcalls
    assert [s.kind for s in subcalls] == ["llm"] * 3
    sub_tokens = sum(s.input_tokens + s.output_tokens for s in subcalls)
    assert 0 < sub_tokens < usage.input_tokens + usage.output_tokens  # the root turn is counted too


def test_a_refused_sub_call_stops_the_call_with_its_partial_answer():
    root = turns(code("answer['content'] = 'half done'"), code("r = llm_query('SUB')\nprint(r)"))

    def reply(request: Request) -> str:
        if request.last_user.startswith("SUB"):
            raise LimitExceededError("max_sub_calls", 0)
        return root(request)

    result, fake = call(reply)
    assert isinstance(result.error, LimitExceededError)
    assert result.error.limit == "max_sub_calls"
    assert result.error.partial_answer == "half done"
    assert result.answer == ""
    assert "LimitExceededError" in result.trace.error
    assert fake.calls == 3  # two root turns and the refused sub-call; no turn after the limit


def test_a_passed_deadline_stops_before_the_first_turn_with_no_partial_answer():
    result, fake = call(lambda r: "FINAL(x)", spec=spec(deadline=time.time() - 1))
    assert isinstance(result.error, LimitExceededError)
    assert result.error.limit == "max_time_s"
    assert result.error.partial_answer is None
    assert fake.calls == 0


def test_checkpoints_follow_each_reply_and_a_restart_resumes_from_one():
    saved: list[Checkpoint] = []
    script = turns(code("x = 1\nprint(x)"), code("FINAL(x)"))
    result, _ = call(script, checkpoint=saved.append)
    assert result.answer == "1"
    assert [c.index for c in saved] == sorted(c.index for c in saved) and saved
    # a new REPL takes over from the first checkpoint: `x` is gone, the model is told
    first = saved[0]
    restart = Restart(
        1, time.time(), Resume(first.messages, first.index + 1, "REPL LOST"), [], first.usage
    )

    def after_loss(request: Request) -> str:
        assert "REPL LOST" in request.text
        return "FINAL(started again)"

    result, fake = call(after_loss, restart=restart)
    assert result.answer == "started again"
    assert result.trace.repl_restarts == 1
    assert result.usage.calls == first.usage.calls + 1


def test_the_trace_says_where_the_call_ran():
    where = Whereabouts(node_id="node", actor_id="actor", pid=7, worker_id="worker")
    result, _ = call(turns("FINAL(here)"), where=where, context_id="ctx")
    trace = result.trace
    assert (trace.node_id, trace.actor_id, trace.pid, trace.worker_id) == (
        "node",
        "actor",
        7,
        "worker",
    )
    assert trace.context_id == "ctx"
    assert trace.duration_s >= 0


@pytest.mark.parametrize("max_depth", [1, 2])
def test_recursive_llm_is_a_child_call_only_below_max_depth(max_depth):
    child_calls = []

    def child(query, context, model):
        child_calls.append(query)
        sub = spec(depth=1, max_depth=max_depth)
        return run_call(sub, context, ThreadBackend(FakeLLM(lambda r: "FINAL(from child)")))

    root = turns(code("FINAL(recursive_llm('CHILD', 'piece'))"))
    fake = FakeLLM(by_marker({"CHILD": "plain reply"}, default=root))
    result = run_call(spec(max_depth=max_depth), "ctx", ThreadBackend(fake, rlm=child))
    if max_depth == 1:  # no child REPL: one plain model call
        assert result.answer == "plain reply" and not child_calls
    else:
        assert result.answer == "from child" and child_calls == ["CHILD"]
        assert result.usage.calls == 2
        assert isinstance(result.usage, Usage)


@pytest.mark.parametrize("context", ["one\ntwo\nthree", ["a", "b"]])
def test_the_shared_prefix_is_what_every_small_first_request_starts_with(context):
    """A local server keeps `shared_prefix` read between runs (prompt_cache.py): it must be the
    first messages of the root's real first request, whatever the context."""

    small = dataclasses.replace(
        spec(), models=ModelSettings(model="fake", sub_model="fake", prompt="small")
    )
    prefix = shared_prefix(small)
    assert prefix is not None and prefix[0]["role"] == "system" and len(prefix) > 1
    _, fake = call(turns(code("FINAL(1)")), context=context, spec=small)
    assert fake.requests[0].messages[: len(prefix)] == prefix
    assert fake.requests[0].messages[len(prefix)]["role"] == "user"  # the run's own turn


def test_a_prompt_that_describes_the_context_has_no_shared_prefix():

    assert shared_prefix(spec()) is None  # the paper prompt: the system text names the context
