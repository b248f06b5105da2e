"""The lean model-call path (`rlm_ray/models/openai_http.py`): which calls take it, and that
its replies, costs and errors are litellm's. End to end through Ray, the fault tests (test_faults.py) run on
it: every RLM in the tests calls `openai/scripted` at the scripted server's `api_base`."""

from __future__ import annotations

import asyncio

import pytest

from rlm_ray.errors import LLMError
from rlm_ray.models import llm, openai_http
from rlm_ray.testing import Reply, ScriptedServer


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(lambda request: "hello there") as running:
        yield running


def complete(request: llm.LLMRequest):
    async def one():
        try:
            return await llm.acomplete(request)
        finally:
            await openai_http.aclose()

    return asyncio.run(one())


@pytest.mark.parametrize(
    "model, api_base, kwargs, lean",
    [
        ("openai/scripted", "http://127.0.0.1:1/v1", {"temperature": 0, "stop": ["x"]}, True),
        ("hosted_vllm/qwen", "http://127.0.0.1:1/v1", {"max_tokens": 5, "seed": 1}, True),
        ("openai/gpt-4o-mini", None, {}, False),  # the provider itself: litellm maps its params
        ("anthropic/claude-sonnet-4-5", "http://127.0.0.1:1", {}, False),
        ("openai/scripted", "http://127.0.0.1:1/v1", {"tools": [{"type": "function"}]}, False),
        ("openai/scripted", "http://127.0.0.1:1/v1", {"extra_headers": {"a": "b"}}, False),
    ],
)
def test_which_calls_take_the_lean_path(model, api_base, kwargs, lean):
    assert openai_http.is_lean(model, api_base, kwargs) is lean


def test_the_lean_path_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("RLM_RAY_LEAN_HTTP", "0")
    assert not openai_http.is_lean("openai/scripted", "http://127.0.0.1:1/v1", {})


def test_lean_and_litellm_replies_are_the_same_with_the_same_cost(server, monkeypatch):
    messages = [{"role": "user", "content": "count the words of this prompt " * 40}]
    request = llm.LLMRequest(
        "openai/gpt-4o-mini",
        messages,
        api_base=server.url,
        api_key="sk-test",
        kwargs={"temperature": 0.0, "max_tokens": 20},
    )
    lean = complete(request)
    monkeypatch.setenv("RLM_RAY_LEAN_HTTP", "0")
    full = complete(request)
    assert lean.text == full.text == "hello there"
    assert (lean.input_tokens, lean.output_tokens) == (full.input_tokens, full.output_tokens)
    assert lean.cost_usd == pytest.approx(full.cost_usd) and lean.cost_usd > 0
    sent = server.requests[-2:]
    assert sent[0].body == sent[1].body  # the same request body on the wire
    assert sent[0].model == "gpt-4o-mini" and sent[0].body["temperature"] == 0.0


def test_an_unpriced_model_costs_nothing(server):
    reply = complete(
        llm.LLMRequest("openai/scripted", [{"role": "user", "content": "hi"}], api_base=server.url)
    )
    assert (reply.text, reply.cost_usd, reply.attempts) == ("hello there", 0.0, 1)


def test_a_refused_key_is_not_retried_and_the_message_is_the_servers(server):
    server.reply = lambda request: Reply("Incorrect API key provided: sk-secret1234", status=401)
    request = llm.LLMRequest(
        "openai/scripted",
        [{"role": "user", "content": "hi"}],
        api_base=server.url,
        api_key="sk-secret1234",
        max_retries=3,
    )
    before = server.request_count
    try:
        with pytest.raises(LLMError) as caught:
            complete(request)
        sent = server.request_count - before
    finally:
        server.reset()
    error = caught.value
    assert sent == 1
    assert (error.status_code, error.attempts, error.kind) == (401, 1, "HTTP 401")
    assert "Incorrect API key provided" in str(error) and "sk-secret1234" not in str(error)
    assert server.url in str(error)
