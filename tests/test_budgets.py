"""Tree-wide budgets and cluster-wide rate limits, end to end against the scripted server.

A budget is enforced before work is dispatched: a refused call never reaches the model server,
so the server's request log is the ground truth for what the run spent.

The rules themselves (what is refused when, how long a call waits) are unit-tested with a fake
clock in test_budget.py (`Ledger`) and test_rate_limit.py (`RateLimiter`); the tests here show
what only a run over Ray shows: every call of the tree, in REPL workers and gateways, asks the
one admission actor and obeys it.
"""

from __future__ import annotations

import re
import time

import pytest

from rlm_ray import ConfigError, LimitExceededError, LLMError
from rlm_ray.testing import Reply, by_marker, code, turns

pytestmark = pytest.mark.ray


def _leaves(server) -> int:
    return sum(1 for r in server.requests if r.first_user.startswith("LEAF"))


def test_max_sub_calls_refuses_the_next_call_and_keeps_the_partial_answer(make_rlm, model_server):
    model_server.reply = by_marker(
        {"LEAF": "1"},
        default=turns(
            code(
                "answer['content'] = 'counted so far: 0'\n"
                "rs = [int(llm_query(f'LEAF {i}')) for i in range(10)]\nFINAL(sum(rs))"
            ),
            "FINAL(never reached)",
        ),
    )
    with pytest.raises(LimitExceededError) as err:
        make_rlm(max_sub_calls=4).completion("q", "ctx")
    assert (err.value.limit, err.value.value) == ("max_sub_calls", 4)
    assert err.value.partial_answer == "counted so far: 0"
    assert _leaves(model_server) == 4  # the other six were refused before reaching the model
    roots = [r for r in model_server.requests if not r.first_user.startswith("LEAF")]
    assert len(roots) == 1  # the run stopped instead of asking the model again


def test_children_share_the_tree_budget(make_rlm, model_server):
    """Each child gets what remains: children and leaves at every depth draw on one budget."""
    model_server.reply = by_marker(
        {
            "LEAF": "1",
            "KID": turns(
                code("rs = [int(llm_query(f'LEAF {i}')) for i in range(3)]\nFINAL(sum(rs))")
            ),
        },
        default=turns(code("rs = [recursive_llm(f'KID {i}', 'c') for i in range(3)]\nFINAL(rs)")),
    )
    with pytest.raises(LimitExceededError) as err:
        make_rlm(max_depth=2, max_sub_calls=7).completion("q", "ctx")
    assert err.value.limit == "max_sub_calls"
    kids = {m.group() for r in model_server.requests if (m := re.search(r"KID \d", r.first_user))}
    # 3 children + 9 leaves were asked for; 7 admitted in all (an admitted child may still be
    # stopped before its first model turn reaches the server)
    assert 1 <= len(kids) and len(kids) + _leaves(model_server) <= 7
    assert _leaves(model_server) <= 7 - len(kids)


def test_budget_is_per_run(make_rlm, model_server):
    model_server.reply = by_marker(
        {"LEAF": "1"},
        default=turns(code("rs = [int(llm_query(f'LEAF {i}')) for i in range(3)]\nFINAL(sum(rs))")),
    )
    rlm = make_rlm(max_sub_calls=3)
    assert rlm.completion("q", "ctx").answer == "3"
    assert rlm.completion("q", "ctx").answer == "3"  # the first run's spending is not carried over


def test_max_total_tokens_stops_a_run_that_keeps_going(make_rlm, model_server):
    model_server.reply = turns(*[code(f"x = {i}\nprint('word ' * 50)") for i in range(20)])
    with pytest.raises(LimitExceededError) as err:
        make_rlm(max_total_tokens=3000, max_iterations=20).completion("q", "ctx")
    assert (err.value.limit, err.value.value) == ("max_total_tokens", 3000)
    assert err.value.partial_answer  # the last reply
    spent = sum(len(r.text) // 4 for r in model_server.requests)  # roughly what the server charged
    assert 2 <= len(model_server.requests) < 20
    assert spent < 3000 * 2


def test_max_cost_usd_with_a_priced_model(make_rlm, model_server):
    """litellm prices gpt-4o-mini from its bundled map; the scripted server plays it."""
    model_server.reply = by_marker(
        {"LEAF": Reply(content="x " * 400)},
        default=turns(code("rs = [llm_query(f'LEAF {i}') for i in range(5)]\nprint(len(rs))")),
    )
    rlm = make_rlm(model="openai/gpt-4o-mini", max_cost_usd=1e-9, max_concurrent_calls=1)
    with pytest.raises(LimitExceededError) as err:
        rlm.completion("q", "ctx")
    assert err.value.limit == "max_cost_usd"
    # The root turn cost more than the budget: nothing after it was dispatched.
    assert len(model_server.requests) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_sub_calls": -1}, "max_sub_calls"),
        ({"max_total_tokens": 0}, "max_total_tokens"),
        ({"max_cost_usd": 0}, "max_cost_usd"),
        ({"max_cost_usd": "1"}, "amount in USD"),
        ({"requests_per_minute": 0}, "requests_per_minute"),
        ({"tokens_per_minute": 1.5}, "tokens_per_minute"),
        ({"rate_limits": {"m": {"rpm": 1}}}, "rate_limits"),
        ({"rate_limits": {"m": {"requests_per_minute": -5}}}, "rate_limits['m']"),
        ({"rate_limits": [1]}, "rate_limits"),
    ],
)
def test_bad_budget_settings(kwargs, message):
    from rlm_ray import RLM

    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        RLM("openai/scripted", **kwargs)


def _fanout(n: int) -> object:
    return by_marker(
        {"LEAF": "1"},
        default=turns(
            code(
                f"rs = [llm_query(f'LEAF {{i}}') for i in range({n})]\n"
                "ok = 0\nfor r in rs:\n    try:\n        ok += int(r)\n    except Exception:\n"
                "        pass\nFINAL(ok)"
            )
        ),
    )


def test_without_a_rate_limit_a_wide_fanout_meets_429s(make_rlm, model_server):
    """The control for the next test: the server really rejects a burst."""
    model_server.reply = _fanout(20)
    model_server.max_requests_per_s = 10
    try:
        assert int(make_rlm(max_retries=0).completion("q", "ctx").answer) < 20
    except LLMError as exc:  # the root's next turn met a 429 too
        assert exc.status_code == 429
    assert model_server.rate_limited > 0


def test_rate_limit_spreads_a_wide_fanout_below_the_provider_limit(make_rlm, model_server):
    # 5 a second, with a burst of one second's worth: at most 10 in any second, the server's cap.
    # 12 requests (the root turn and 11 leaves) are more than the cap: sent at once, some would
    # meet a 429 (the test above); paced, they take (12 - 5) / 5 s.
    model_server.reply = _fanout(11)
    model_server.max_requests_per_s = 10
    started = time.monotonic()
    result = make_rlm(max_retries=0, requests_per_minute=300).completion("q", "ctx")
    elapsed = time.monotonic() - started
    assert model_server.rate_limited == 0
    assert result.answer == "11"
    assert elapsed >= (12 - 5) / 5 * 0.9


def test_tokens_per_minute_paces_calls_by_their_prompts(make_rlm, model_server):
    # 60000 tokens/min: a bucket of 1000 tokens refilled at 1000 a second. The root turn (~800
    # tokens: the system prompt) fits; each leaf prompt is ~1000 estimated tokens, so the two
    # leaves are sent ~1 s apart, and the second ~1.5 s after the start or later. Without the
    # gateways passing each prompt's estimate, nothing would wait.
    model_server.reply = by_marker(
        {"LEAF": "1"},
        default=turns(
            code(
                "rs = [int(llm_query(f'LEAF {i} ' + 'y' * 4000)) for i in range(2)]\nFINAL(sum(rs))"
            )
        ),
    )
    started = time.monotonic()
    result = make_rlm(tokens_per_minute=60_000, requests_per_minute=None).completion("q", "ctx")
    assert result.answer == "2"
    assert time.monotonic() - started >= 1.5 * 0.9


def test_cli_budget_flag_reports_the_limit_and_the_partial_answer(
    model_server, tmp_path, ray_session, capsys
):
    """`main` in this process, on the session's Ray (a new driver would start its own pool and
    gateways: ~30 s); test_cli.py runs the command as a child process."""
    from rlm_ray.cli import main

    model_server.reply = by_marker(
        {"LEAF": "1"},
        default=turns(
            code(
                "answer['content'] = 'two so far'\n"
                "rs = [int(llm_query(f'LEAF {i}')) for i in range(5)]\nFINAL(sum(rs))"
            )
        ),
    )
    (tmp_path / "ctx.txt").write_text("ctx")
    args = ["--model", "openai/scripted", "--api-base", model_server.url, "--api-key", "sk-t"]
    args += ["--context", str(tmp_path / "ctx.txt"), "--query", "q", "--max-sub-calls", "2"]
    exit_code = main(["run", *args])
    out = capsys.readouterr()
    assert exit_code == 1, out.err
    assert out.out == ""  # a partial answer is not the answer
    assert "`max_sub_calls` (2)" in out.err and "partial answer: two so far" in out.err
    assert _leaves(model_server) == 2
