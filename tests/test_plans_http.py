"""Plans over HTTP: the plan schema reaches the server as `response_format` by both model-call
paths (the lean one and litellm), and a run with the `small` prompt goes plan -> compiled cell
-> answer end to end on Ray, with its program replayed on new data."""

from __future__ import annotations

import asyncio
import json

import pytest
from test_plans import DELIVERY, MESSAGES, SETS, kind, shape

from rlm_ray.models import llm, openai_http
from rlm_ray.plans.records import record_lists
from rlm_ray.plans.schema import response_format
from rlm_ray.testing import ScriptedServer, records

FORMAT = response_format(record_lists(MESSAGES))


def complete(request: llm.LLMRequest):
    async def one():
        try:
            return await llm.acomplete(request)
        finally:
            await openai_http.aclose()

    return asyncio.run(one())


@pytest.mark.parametrize("lean", ["1", "0"])
def test_both_model_call_paths_send_the_schema(lean, monkeypatch):
    monkeypatch.setenv("RLM_RAY_LEAN_HTTP", lean)
    with ScriptedServer(lambda request: '{"shape": "code"}') as server:
        request = llm.LLMRequest(
            "openai/scripted",
            [{"role": "user", "content": "plan"}],
            api_base=server.url,
            api_key="sk-test",
            kwargs={"temperature": 0, "response_format": FORMAT},
        )
        assert openai_http.is_lean(request.model, request.api_base, request.kwargs) is (lean == "1")
        assert complete(request).text == '{"shape": "code"}'
        [sent] = server.requests
    assert sent.body["response_format"] == FORMAT
    options = sent.body["response_format"]["json_schema"]["schema"]["anyOf"]
    both = next(o for o in options if o["properties"]["shape"]["enum"] == ["groups_with_both"])
    # the records' own fields of values: `text` is free text, even in a list of a few records
    assert both["properties"]["group_by"]["enum"] == ["date", "user"]
    assert options[-1]["properties"] == {"shape": {"type": "string", "enum": ["code"]}}


def reply_with(plan_json: dict):
    """The root model writes `plan_json` under the schema; the helper model labels by words."""
    helper = records(kind)

    def reply(request):
        if "response_format" in request.body:
            return json.dumps(plan_json)
        return helper(request)

    return reply


@pytest.mark.ray
def test_a_plan_runs_end_to_end_and_its_program_replays(make_rlm, model_server):
    model_server.reply = reply_with(SETS)
    rlm = make_rlm(prompt="small-plans")
    result = rlm.completion("Which users complained about billing and delivery?", MESSAGES)
    assert result.answer == "ana, cy"
    form, plan = [r for r in model_server.requests if "response_format" in r.body]
    # two root-model turns (the form, the plan); the rest were the helper's labels
    assert form.body["response_format"]["json_schema"]["name"] == "form"
    assert "Records found: 7 records, fields: date" in plan.messages[-1]["content"]
    assert result.usage.calls == len(model_server.requests)
    [cell] = result.trace.iterations[1].cells
    assert "llm_classify(" in cell.code and cell.subcalls  # the operator fanned out as usual
    model_server.reset_stats()
    replayed = result.program.run(MESSAGES + "\n2026-03-05 | user di | billed twice again")
    assert replayed.answer == "ana, cy, di"
    assert not any("response_format" in r.body for r in model_server.requests)


@pytest.mark.ray
def test_a_plan_with_a_bad_field_is_told_and_fixed_over_http(make_rlm, model_server):
    bad = shape("count_per_group", where={}, group_by="customer", **DELIVERY)
    helper = records(kind)

    def reply(request):
        if "response_format" not in request.body:
            return helper(request)
        told = request.last_user
        fixed = "no field 'customer'; their fields are date, user, text" in told
        return json.dumps(SETS if fixed else bad)

    model_server.reply = reply
    result = make_rlm(prompt="small-plans").completion("q", MESSAGES)
    # the form turn (it named the bad plan's shape), the bad plan, the fixed one
    assert result.answer == "ana, cy" and len(result.trace.iterations) == 3
