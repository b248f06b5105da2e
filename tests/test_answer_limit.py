"""`max_answer_chars`: an answer longer than the limit never leaves the REPL's process, and the
driver refuses one too; the model is told in its cell while it has turns left.

Over the scripted server on Ray; the driver's own check is also tried on its own.
"""

from __future__ import annotations

import pytest

from rlm_ray import ConfigError, LimitExceededError
from rlm_ray.config import RLMConfig
from rlm_ray.core.call import cap_answer
from rlm_ray.testing import code, turns
from rlm_ray.types import CallResult, CallTrace, Usage

pytestmark = pytest.mark.ray


def test_a_final_over_the_limit_is_refused_in_its_cell_and_the_model_answers_again(
    make_rlm, model_server
):
    model_server.reply = turns(code("big = 'x' * 5000\nFINAL(big)"), code("FINAL(big[:10])"))
    result = make_rlm(max_answer_chars=1000).completion("q", "ctx")
    assert result.answer == "x" * 10
    told = model_server.requests[-1].last_user
    assert (
        "FINAL(...) was not accepted: the answer is 5,000 characters, over the limit of 1,000 "
        "(`max_answer_chars`)" in told
    )
    first = result.trace.iterations[0].cells[0]
    assert first.error and not first.final


def test_an_answer_over_the_limit_with_no_turn_left_ends_the_run(make_rlm, model_server):
    model_server.reply = turns(code("print('working')"), "y" * 5000)  # the last word: too long
    with pytest.raises(LimitExceededError) as stopped:
        make_rlm(max_answer_chars=1000, max_iterations=1).completion("q", "ctx")
    assert (stopped.value.limit, stopped.value.value) == ("max_answer_chars", 1000)
    assert stopped.value.trace is not None and stopped.value.trace.answer is None


def test_the_driver_accepts_no_answer_or_partial_answer_over_the_limit():
    config = RLMConfig(max_answer_chars=100)
    long = CallResult("z" * 101, Usage(), CallTrace("c", 0, "m", "q", answer="z" * 101))
    refused = cap_answer(long, config)
    assert refused.answer == "" and refused.trace.answer is None
    assert isinstance(refused.error, LimitExceededError)
    assert refused.error.limit == "max_answer_chars"
    stopped = LimitExceededError("max_time_s", 5, partial_answer="p" * 101)
    cap_answer(CallResult("", Usage(), CallTrace("c", 0, "m", "q"), error=stopped), config)
    assert stopped.partial_answer is None
    fine = CallResult("z" * 100, Usage(), CallTrace("c", 0, "m", "q"))
    assert cap_answer(fine, config) is fine
    with pytest.raises(ConfigError, match="max_answer_chars"):
        RLMConfig(max_answer_chars=10)
