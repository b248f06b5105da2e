"""The turn loop without Ray: a fake model and a fake REPL."""

import pytest

from rlm_ray.core.loop import LoopSettings, Resume, fit_to_window, run_loop
from rlm_ray.core.turns import CellReport
from rlm_ray.errors import ContextWindowError, LimitExceededError
from rlm_ray.testing import FakeLLM, code, turns
from rlm_ray.types import CallTrace, CellTrace, Usage


class FakeREPL:
    """Runs nothing: 'raise' in code fails, 'final:X' ends with X, else echoes the code."""

    def __init__(self, variables=None):
        self.variables = variables or {}
        self.ran = []
        self.ready = None

    def run(self, source):
        self.ran.append(source)
        if source.startswith("final:"):
            return CellReport(CellTrace(source, ""), final=source[6:], finished_by="FINAL")
        if source == "ready":
            self.ready = "from answer dict"
        error = "ValueError: boom" if "raise" in source else None
        output = "" if "silent" in source else f"ran {source}"
        return CellReport(CellTrace(source, output, error=error))

    def lookup(self, name):
        return self.variables.get(name)

    def ready_answer(self):
        return self.ready

    def describe(self, name):
        return None


def settings(**kw):
    kw.setdefault("query", "What is it?")
    kw.setdefault("system", "SYSTEM")
    kw.setdefault("max_iterations", 5)
    kw.setdefault("context_window_tokens", 100_000)
    return LoopSettings(**kw)


def run(fake, repl=None, **kw):
    repl = repl or FakeREPL()
    trace = CallTrace("c", 0, "fake", "q")
    usage = Usage()
    answer = run_loop(lambda m: fake(m), repl, settings(**kw), trace, usage)
    return answer, trace, usage, repl


def test_query_verbatim_in_first_request_and_final_in_code_ends_run():
    fake = FakeLLM(turns(code("x = 1"), code("final:done")))
    answer, trace, usage, repl = run(fake, query="Count the <odd> things!")
    assert answer == "done" and trace.finished_by == "FINAL"
    first = fake.requests[0].messages
    assert first[0] == {"role": "system", "content": "SYSTEM"}
    assert "Count the <odd> things!" in first[1]["content"]
    assert usage.calls == 2 and len(trace.iterations) == 2


def test_output_fed_back_and_blocks_run_in_order():
    fake = FakeLLM(turns(code("a") + "\n" + code("b"), "FINAL(ok)"))
    answer, _, _, repl = run(fake)
    assert repl.ran == ["a", "b"]
    feedback = fake.requests[1].last_user
    assert feedback.index("ran a") < feedback.index("ran b")


def test_text_final_only_after_code_ran_and_not_after_error():
    fake = FakeLLM(turns(code("raise") + "\nFINAL(too early)", "FINAL(later)"))
    answer, *_ = run(fake)
    assert answer == "later"
    assert "ValueError: boom" in fake.requests[1].last_user


def test_final_var_text_undefined_is_fed_back():
    fake = FakeLLM(turns("FINAL_VAR(missing)", "FINAL_VAR(found)"))
    answer, trace, *_ = run(fake, repl=FakeREPL({"found": "value!"}))
    assert answer == "value!" and trace.finished_by == "FINAL_VAR"
    assert "no variable `missing`" in fake.requests[1].last_user


def test_answer_dict_ready_ends_run():
    answer, trace, *_ = run(FakeLLM(turns(code("ready"))))
    assert answer == "from answer dict" and trace.finished_by == "answer"


def test_reply_without_code_or_final_is_told_so():
    fake = FakeLLM(turns("I think...", "FINAL(x)"))
    run(fake)
    assert "no ```repl code block" in fake.requests[1].last_user


def test_max_iterations_then_one_final_call_is_the_answer():
    fake = FakeLLM(
        lambda r: "FINAL(last word)" if "used all your iterations" in r.last_user else code("x")
    )
    answer, trace, usage, _ = run(fake, max_iterations=3)
    assert answer == "last word" and trace.finished_by == "max_iterations"
    assert usage.calls == 4
    last = fake.requests[-1].last_user
    assert "ran x" in last and "Continue using" not in last  # the last output, then the ask


def test_max_iterations_reply_without_final_is_the_answer():
    fake = FakeLLM(
        lambda r: "plain answer" if "used all your iterations" in r.last_user else code("x")
    )
    answer, *_ = run(fake, max_iterations=1)
    assert answer == "plain answer"


def test_deadline_checked_before_each_turn():
    def expired():
        raise LimitExceededError("max_time_s", 1)

    with pytest.raises(LimitExceededError) as err:
        run(FakeLLM(turns(code("x"))), check_limits=expired)
    assert err.value.limit == "max_time_s"


def test_old_outputs_are_trimmed_to_fit():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "query"}]
    for i in range(10):
        msgs += [
            {"role": "assistant", "content": f"reply {i}"},
            {"role": "user", "content": "o" * 3000},
        ]
    fitted = fit_to_window(msgs, window_tokens=4000, reserve=1000)
    assert fitted[1]["content"] == "query" and fitted[-1]["content"] == "o" * 3000
    assert any("trimmed" in m["content"] for m in fitted)
    assert sum(len(m["content"]) for m in fitted) < sum(len(m["content"]) for m in msgs)


def test_conversation_that_cannot_fit_is_a_clear_error():
    msgs = [{"role": "system", "content": "s" * 30_000}, {"role": "user", "content": "q"}]
    with pytest.raises(ContextWindowError, match="window is 4,000 tokens"):
        fit_to_window(msgs, window_tokens=4000, reserve=1000)


def test_checkpoint_after_each_reply_and_resume_from_it_with_a_notice():
    saved = []
    fake = FakeLLM(turns(code("x = 1"), code("y = 2"), code("final:done")))
    kw = dict(checkpoint=lambda messages, index: saved.append((list(messages), index)))
    answer, _, _, _ = run(fake, **kw)
    assert answer == "done" and [i for _, i in saved] == [0, 1, 2]
    assert saved[1][0][-1] == {"role": "assistant", "content": code("y = 2")}

    # The REPL was lost while the reply of turn 1 ran: go on from that checkpoint.
    messages, index = saved[1]
    fresh = FakeLLM(lambda r: code("final:resumed") if "LOST-NOTICE" in r.last_user else "no")
    trace = CallTrace("c", 0, "fake", "q")
    resume = Resume(messages, index + 1, "LOST-NOTICE")
    answer = run_loop(lambda m: fresh(m), FakeREPL(), settings(), trace, Usage(), resume)
    assert answer == "resumed"
    sent = fresh.requests[0].messages
    assert sent[: len(messages)] == messages and len(sent) == len(messages) + 1
    assert "LOST-NOTICE" in sent[-1]["content"] and "iteration 3 of 5" in sent[-1]["content"]
    assert [it.index for it in trace.iterations] == [2]


def test_after_failed_code_the_error_turn_asks_for_a_fix():
    fake = FakeLLM(turns(code("raise"), code("fine"), "FINAL(ok)"))
    run(fake, next_turn="GO ON: {query}", error_turn="FIX IT: {query}")
    assert fake.requests[1].last_user.endswith("FIX IT: What is it?")
    assert "ValueError: boom" in fake.requests[1].last_user
    assert fake.requests[2].last_user.endswith("GO ON: What is it?")


def test_after_code_that_printed_nothing_the_empty_turn_says_nothing_is_known():
    fake = FakeLLM(turns(code("silent search"), code("fine"), code("silent raise"), "FINAL(ok)"))
    run(fake, next_turn="GO ON: {query}", error_turn="FIX IT: {query}", empty_turn="EMPTY: {query}")
    assert "(no output)" in fake.requests[1].last_user
    assert fake.requests[1].last_user.endswith("EMPTY: What is it?")
    assert fake.requests[2].last_user.endswith("GO ON: What is it?")
    assert fake.requests[3].last_user.endswith("FIX IT: What is it?")  # an error comes first


def test_without_an_error_turn_a_failed_turn_gets_the_next_turn():
    fake = FakeLLM(turns(code("raise"), "FINAL(ok)"))
    run(fake, next_turn="GO ON: {query}")
    assert fake.requests[1].last_user.endswith("GO ON: What is it?")


class TypedREPL(FakeREPL):
    """A FakeREPL that can describe its variables (the stuck-loop guard asks)."""

    def describe(self, name):
        return {"context": "list (60 items) of str", "lines": "list (3 items) of str"}.get(name)

    def run(self, source):
        if "finditer" not in source:
            return super().run(source)
        self.ran.append(source)
        error = "Traceback (most recent call last):\nTypeError: expected string, got 'list'"
        return CellReport(CellTrace(source, "", error=error))


STUCK_CODE = "import re\nfor m in re.finditer('x', context):\n    print(lines, m)"


def test_the_same_failing_code_twice_gets_a_plain_notice_with_the_types():
    fake = FakeLLM(turns(code(STUCK_CODE), code(STUCK_CODE), code("final:ok")))
    repl = TypedREPL()
    repl.variables["lines"] = str(["a line of the log"] * 3)
    answer, _, _, _ = run(fake, repl=repl)
    assert answer == "ok"
    # the first failure is an ordinary error, with the type of the context it tripped on
    assert "STUCK" not in fake.requests[1].last_user
    assert "(`context` is a list (60 items) of str.)" in fake.requests[1].last_user
    notice = fake.requests[2].last_user
    assert "STUCK: The same code failed again with the same error as before: TypeError" in notice
    # the start of each value but the context's
    start = "['a line of the log', 'a line of the log', 'a line of the log']"
    assert (
        f"`context` is a list (60 items) of str; `lines` is a list (3 items) of str, starting {start}."
        in notice
    )
    assert "`re`" not in notice and "`m`" not in notice  # only values the REPL holds


def test_the_turn_after_a_stuck_notice_is_asked_with_sampling_and_the_next_is_not():
    fake = FakeLLM(turns(code(STUCK_CODE), code(STUCK_CODE), code("x = 1"), code("final:ok")))
    hot = []

    def resample(messages):
        hot.append(len(fake.requests))
        return fake(messages, temperature=0.7)

    answer, trace, _, _ = run(fake, repl=TypedREPL(), resample_llm=resample)
    assert answer == "ok" and len(trace.iterations) == 4
    assert hot == [2]  # only the turn that reads the STUCK notice
    assert "STUCK" in fake.requests[2].last_user
    assert [r.body.get("temperature") for r in fake.requests] == [None, None, 0.7, None]


def test_other_code_with_the_same_error_is_noticed_too_and_other_errors_are_not():
    other = "for m in re.finditer('y', context): pass"
    fake = FakeLLM(turns(code(STUCK_CODE), code("raise"), code(other), code("final:ok")))
    run(fake, repl=TypedREPL())
    assert "STUCK" not in fake.requests[2].last_user  # a different error (ValueError: boom)
    assert "STUCK: Your code failed again with the same error" in fake.requests[3].last_user
