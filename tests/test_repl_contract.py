"""The REPL contract: what a call does with its model and its REPL.

Each test scripts the model with a pure function of the request (see `rlm_ray.testing`). Most
run the call in this process (`helpers.local_completion`: the same call, REPL and loop, no Ray);
the tests marked `ray` at the end need Ray workers, the gateways and litellm over HTTP.
"""

from __future__ import annotations

import asyncio

import pytest
from helpers import local_completion

from rlm_ray.testing import Reply, by_marker, code, turns


def final_if(marker_in_feedback: str):
    """A 2nd-turn reply that says whether the 1st turn's output reached the model."""

    def reply(request):
        return "FINAL(seen)" if marker_in_feedback in request.last_user else "FINAL(missing)"

    return reply


@pytest.mark.parametrize(
    "context, expected",
    [
        ("hello world", "<class 'str'> 11"),
        (["a", "bb", "ccc"], "<class 'list'> 3"),
        ({"k1": "v", "k2": "w"}, "<class 'dict'> 2"),
    ],
)
def test_context_is_the_input_as_given(context, expected):
    reply = turns(code("FINAL(f'{type(context)} {len(context)}')"))
    assert local_completion(reply, "What type?", context)[0].answer == expected


def test_system_prompt_states_type_lengths_and_query_is_verbatim():
    _, fake = local_completion(turns("FINAL(x)"), "Find the <needle> please", ["abc", "defgh"])
    first = fake.requests[0]
    assert "list of 2 chunks with 8 total characters" in first.system
    assert "[3, 5]" in first.system
    assert "Find the <needle> please" in first.first_user


def test_print_output_is_fed_back_verbatim():
    reply = turns(code("print('out:', 6 * 7, 'µ<>')"), final_if("out: 42 µ<>"))
    assert local_completion(reply)[0].answer == "seen"


def test_long_output_is_truncated_head_and_tail():
    reply = turns(
        code("print('H' * 3000 + 'T' * 3000)"),
        lambda r: (
            "FINAL(ok)"
            if (
                "H" * 300 in r.last_user
                and "T" * 300 in r.last_user
                and "truncated" in r.last_user
                and len(r.last_user) < 3000
            )
            else "FINAL(bad)"
        ),
    )
    assert local_completion(reply, max_output_chars=1000)[0].answer == "ok"


def test_llm_query_batched_keeps_order():
    reply = by_marker(
        {"ECHO": lambda r: r.last_user.upper()},
        default=turns(
            code("rs = llm_query_batched(['ECHO a', 'ECHO b', 'ECHO c'])\nFINAL(','.join(rs))")
        ),
    )
    assert local_completion(reply)[0].answer == "ECHO A,ECHO B,ECHO C"


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("FINAL(6 * 7)", "42"),
        ("x = [1, 2]\nFINAL_VAR('x')", "[1, 2]"),
        ("answer['content'] = 'dict way'\nanswer['ready'] = True", "dict way"),
        ("answer = {'content': 'rebound', 'ready': True}", "rebound"),
    ],
)
def test_final_forms_in_code(cell, expected):
    assert local_completion(turns(code(cell)))[0].answer == expected


@pytest.mark.parametrize(
    "reply, expected",
    [
        (code("result = 'from var'") + "\nFINAL_VAR(result)", "from var"),
        (code("result = 'quoted'") + "\nFINAL_VAR('result')", "quoted"),
        ('Done.\nFINAL("literal answer")', "literal answer"),
    ],
)
def test_final_forms_in_text(reply, expected):
    assert local_completion(turns(reply))[0].answer == expected


def test_final_in_text_is_ignored_when_a_block_raised():
    reply = turns(
        code("1 / 0") + "\nFINAL(guess)",
        final_if("ZeroDivisionError"),
    )
    assert local_completion(reply)[0].answer == "seen"


def test_undefined_final_var_is_fed_back_and_run_goes_on():
    assert local_completion(turns("FINAL_VAR(nope)", final_if("nope")))[0].answer == "seen"


def test_all_blocks_run_in_order_and_state_persists():
    reply = turns(
        code("a = 1") + "\n" + code("b = a + 1\nprint('b is', b)"),
        code("FINAL(a + b)"),
    )
    assert local_completion(reply)[0].answer == "3"


@pytest.mark.parametrize("bad, shown", [("undefined_name", "NameError"), ("x = (", "SyntaxError")])
def test_errors_go_back_to_the_model_as_text(bad, shown):
    assert local_completion(turns(code(bad), final_if(shown)))[0].answer == "seen"


def test_show_vars_lists_variables():
    reply = turns(code("counts = {'a': 1}\nSHOW_VARS()"), final_if("counts"))
    assert local_completion(reply)[0].answer == "seen"


def test_failed_sub_call_raises_a_catchable_exception():
    reply = by_marker(
        {"BROKEN": Reply(status=500, content="server exploded")},
        default=turns(
            code(
                "try:\n    r = llm_query('BROKEN call')\n    FINAL('no error: ' + r)\n"
                "except SubCallError as e:\n    FINAL('caught: ' + str(e))"
            )
        ),
    )
    answer = local_completion(reply)[0].answer
    assert answer.startswith("caught: llm sub-call failed") and "server exploded" in answer


def test_max_iterations_then_final_answer_call():
    def reply(r):
        if "used all your iterations" in r.last_user:
            return "The answer is 7."
        return code("print('working')")

    result, fake = local_completion(reply, max_iterations=2)
    assert result.answer == "The answer is 7."
    assert result.trace.finished_by == "max_iterations"
    assert fake.calls == 3


def test_max_depth_0_is_one_plain_model_call():
    def reply(r):
        return "plain: " + str(len(r.messages)) + " " + r.last_user[-9:]

    result, fake = local_completion(reply, "the query", "the context", max_depth=0)
    assert result.answer == "plain: 1 e context"
    assert result.trace.finished_by == "plain" and fake.calls == 1


def test_a_final_value_that_cannot_be_computed_is_fed_back():
    reply = by_marker(
        {"BROKEN": Reply(status=500, content="down")},
        default=turns(
            code("answer = {'content': llm_query('BROKEN'), 'ready': True}"),
            code("x = 10 ** 5000\nFINAL(x)"),
            lambda r: (
                "FINAL(told)"
                if "not accepted" in r.text and "ValueError" in r.last_user
                else "FINAL(untold)"
            ),
        ),
    )
    assert local_completion(reply)[0].answer == "told"


def test_timeout_while_fanout_threads_wait_on_sub_calls():
    reply = by_marker(
        {"LEAF": Reply(content="1", delay_s=3.0)},
        default=turns(
            code(
                "def work(i):\n    if i == 0:\n        return int(llm_query('LEAF slow'))\n"
                "    while True:\n        pass\n"
                "rs = [work(i) for i in range(2)]"
            ),
            lambda r: "FINAL(recovered)" if "time limit" in r.last_user else "FINAL(no timeout)",
        ),
    )
    result, _ = local_completion(reply, cell_timeout_s=1.0)
    assert result.answer == "recovered"
    assert result.trace.iterations[0].cells[0].timed_out


# -- over Ray and HTTP: the gateways, litellm, the pool ------------------------------------------
@pytest.mark.ray
def test_llm_query_sends_the_prompt_verbatim_as_user_message(make_rlm, model_server):
    model_server.reply = by_marker(
        {"SUB-PROMPT": "sub says hi"},
        default=turns(code("r = llm_query('SUB-PROMPT: exactly this')\nFINAL(r)")),
    )
    result = make_rlm().completion("q", "ctx")
    assert result.answer == "sub says hi"
    sub = [r for r in model_server.requests if r.has("SUB-PROMPT")]
    assert [m for m in sub[0].messages] == [{"role": "user", "content": "SUB-PROMPT: exactly this"}]


@pytest.mark.ray
def test_usage_and_trace_cover_the_tree(make_rlm, model_server):
    model_server.reply = by_marker(
        {"LEAF": "1"},
        default=turns(
            code("rs = [llm_query(f'LEAF {i}') for i in range(3)]\nprint(rs)"), "FINAL(done)"
        ),
    )
    result = make_rlm().completion("q", "ctx")
    assert result.usage.calls == 5 == model_server.request_count
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert result.usage.by_model["openai/scripted"].calls == 5
    assert result.usage.cost_usd == 0.0  # unmapped names cost 0
    first = result.trace.iterations[0]
    assert first.cells[0].code.startswith("rs = ")
    assert [s.kind for s in first.cells[0].subcalls] == ["llm"] * 3
    assert "'1', '1', '1'" in first.cells[0].output
    assert result.trace.node_id and result.trace.duration_s > 0


@pytest.mark.ray
def test_acompletion_and_completion_inside_a_running_loop(make_rlm, model_server):
    model_server.reply = turns("FINAL(async ok)")
    rlm = make_rlm()

    async def main():
        a = await rlm.acompletion("q", "ctx")
        b = rlm.completion("q", "ctx")  # inside a running loop: runs on its own thread
        return a.answer, b.answer

    assert asyncio.run(main()) == ("async ok", "async ok")


@pytest.mark.ray
def test_second_rlm_with_same_settings_starts_warm(make_rlm, model_server):
    model_server.reply = turns("FINAL(x)")
    make_rlm().completion("q", "ctx")
    result = make_rlm().completion("q", "ctx")
    assert result.timings["startup_s"] < 1.0  # no new pool: starting one takes seconds


@pytest.mark.ray
def test_llm_kwargs_reach_the_provider_for_root_and_sub_calls(make_rlm, model_server):
    model_server.reply = by_marker(
        {"LEAF": "1"}, default=turns(code("r = llm_query('LEAF x')\nFINAL(r)"))
    )
    rlm = make_rlm(
        llm_kwargs={"temperature": 0, "seed": 7, "max_tokens": 300},
        sub_llm_kwargs={"temperature": 0.5, "stop": ["STOP"]},
    )
    assert rlm.completion("q", "ctx").answer == "1"
    root = next(r for r in model_server.requests if r.system)
    leaf = next(r for r in model_server.requests if not r.system)
    assert (root.body["temperature"], root.body["seed"], root.body["max_tokens"]) == (0, 7, 300)
    assert leaf.body["temperature"] == 0.5 and leaf.body["stop"] == ["STOP"]
    assert "seed" not in leaf.body


@pytest.mark.ray
def test_cost_comes_from_litellms_bundled_cost_map(make_rlm, model_server):
    model_server.reply = turns("FINAL(priced)")
    result = make_rlm(model="openai/gpt-4o-mini").completion("q", "ctx")
    assert result.answer == "priced"
    assert result.usage.cost_usd > 0
    assert result.usage.by_model["openai/gpt-4o-mini"].cost_usd == result.usage.cost_usd


@pytest.mark.ray
def test_transient_faults_on_root_turns_and_leaves_are_retried(make_rlm, model_server):
    """429 (Retry-After), 500, 502 with HTML, dropped connections, malformed JSON, timeouts."""
    model_server.reply = by_marker(
        {"LEAF": "1"},
        default=turns(
            code(
                "rs = [llm_query(f'LEAF {i}') for i in range(16)]\ntotal = sum(int(r) for r in rs)"
            ),
            "FINAL_VAR(total)",
        ),
    )
    model_server.fault_rate = 0.3
    model_server.timeout_fault_s = 3.0
    result = make_rlm(max_retries=8, request_timeout_s=1.0).completion("q", "ctx")
    assert result.answer == "16"
    assert model_server.faults_injected > 0
    assert model_server.request_count == result.usage.calls + model_server.faults_injected


@pytest.mark.ray
def test_a_stuck_model_at_temperature_0_is_asked_once_more_with_sampling(make_rlm, model_server):
    """The same failing code twice (a small model at temperature 0 would write it forever): the
    turn that reads the STUCK notice goes to the server with a temperature above 0, once."""
    stuck = code("labels = ['a', 'b']\nprint(labels['a'])")

    def reply(request):
        if "STUCK" in request.last_user:
            return code("labels = ['a', 'b']\nprint(labels.count('a'))")
        done = "Output" in request.last_user and "Error" not in request.last_user
        return "FINAL(1)" if done else stuck

    model_server.reply = reply
    result = make_rlm(llm_kwargs={"temperature": 0}).completion("q", "ctx")
    assert result.answer == "1"
    temperatures = [r.body.get("temperature") for r in model_server.requests]
    assert temperatures == [0, 0, 0.7, 0]
    # a model asked without temperature 0 is not resampled: it samples already
    model_server.reset()
    model_server.reply = reply
    assert make_rlm().completion("q", "ctx").answer == "1"
    assert [r.body.get("temperature") for r in model_server.requests] == [None] * 4
