"""A session's REPL between questions, in-process (no Ray): rebuilding a lost REPL from its
recorded cells, and the first turn of a follow-up question."""

from __future__ import annotations

import rlm_ray
from rlm_ray.core.repl import REPLSession, REPLSettings
from rlm_ray.core.session_repl import (
    MAX_HISTORY,
    Exchange,
    RecordedCell,
    SessionTurn,
    ToolReplay,
    follow_up_turn,
    record_cells,
    replay,
    variables,
)
from rlm_ray.testing import FakeLLM
from rlm_ray.testing.thread_backend import ThreadBackend
from rlm_ray.tools import ToolCall, ToolResult, tool_settings
from rlm_ray.types import CallTrace, CellTrace, IterationTrace, SubCallTrace


def new_repl(context="a b c"):
    fake = FakeLLM(lambda request: "7")
    backend = ThreadBackend(fake, default_model="fake")
    return REPLSession(context, backend, "fake", REPLSettings(can_recurse=False)), fake


def pure(src):
    return RecordedCell(src, made_subcalls=False)


def spends(src):
    return RecordedCell(src, made_subcalls=True)


def test_pure_cells_are_rerun_and_nothing_is_lost():
    repl, fake = new_repl()
    cells = (pure("words = context.split()"), pure("n = len(words)\nprint(n)"))
    restored = replay(repl, cells, {"words": "list (3 items) of str", "n": "int"}, subcalls=False)
    assert (restored.rerun, restored.skipped, restored.failed, restored.lost) == (2, 0, 0, ())
    assert variables(repl) == {"words": "list (3 items) of str", "n": "int"}
    assert "No variable was lost" in restored.notice()
    assert fake.calls == 0


def test_a_cell_with_subcalls_is_skipped_and_what_it_touched_is_lost():
    repl, fake = new_repl()
    cells = (
        pure("import re\nxs = []\nkeep = 1"),
        spends("xs.append(llm_query('p'))\nfound = re.findall('a', context)"),
        spends("def ask(t):\n    reply = llm_query(t)\n    return reply"),
        pure("total = len(xs)"),  # reads a value the skipped cell changed: skipped too
        pure("other = keep + len(re.findall('b', context))"),  # `re` was only used: rerun
    )
    expected = {"xs": "list (1 items) of str", "keep": "int", "found": "list (1 items) of str"}
    expected |= {"total": "int", "other": "int", "ask": "function"}
    restored = replay(repl, cells, expected, subcalls=False)
    assert (restored.rerun, restored.skipped) == (2, 3)
    assert set(restored.lost) == {"xs", "found", "total", "ask"}  # not `reply`: a local
    assert set(variables(repl)) == {"keep", "other"}  # `re`: there from the start
    assert "LOST" in restored.notice() and fake.calls == 0


def test_with_subcalls_allowed_every_cell_is_rerun():
    repl, fake = new_repl()
    cells = (spends("x = int(llm_query('p')) + 1"), pure("y = x * 2"))
    restored = replay(repl, cells, {"x": "int", "y": "int"}, subcalls=True)
    assert restored.lost == () and fake.calls == 1
    assert repl.lookup("y") == "16"


def test_a_cell_that_fails_on_replay_loses_its_names_and_answer_is_reset():
    repl, _ = new_repl()
    cells = (pure("z = 1 / 0"), pure("answer['content'] = 'x'\nanswer['ready'] = True"))
    restored = replay(repl, cells, {"z": "int"}, subcalls=False)
    assert restored.failed == 1 and restored.lost == ("z",)
    assert repl.sandbox.namespace["answer"] == {"content": "", "ready": False}


def test_a_value_rebuilt_differently_is_dropped_as_stale():
    repl, _ = new_repl()
    restored = replay(repl, (pure("xs = [1]"),), {"xs": "list (2 items) of int"}, subcalls=False)
    assert restored.lost == ("xs",) and "xs" not in variables(repl)


def test_the_first_question_keeps_the_usual_first_turn():
    assert follow_up_turn(SessionTurn("s"), {}, None) is None


def test_the_follow_up_turn_lists_variables_and_a_bounded_history():
    history = tuple(Exchange(f"question {i} {{x}}", "answer " * 500) for i in range(8))
    text = follow_up_turn(SessionTurn("s", history=history), {"d": "dict (2 items)"}, None)
    assert text is not None
    filled = text.format(query="NEW {braces}")
    assert filled.endswith("Query: NEW {braces}")
    assert "d: dict (2 items)" in filled and "question 7 {x}" in filled
    assert "question 2 {x}" not in filled and f"({8 - MAX_HISTORY} earlier" in filled
    assert len(filled) < 6000


def test_record_cells_keeps_the_cells_that_ran_without_error():
    trace = CallTrace("c", 0, "m", "q")
    ok = CellTrace("a = 1", "")
    sub = CellTrace("b = llm_query('x')", "", subcalls=[SubCallTrace("llm", "m", "x")])
    bad = CellTrace("c = 1 / 0", "", error="ZeroDivisionError")
    trace.iterations = [IterationTrace(0, "r", cells=[ok, sub, bad])]
    assert record_cells(trace) == [pure("a = 1"), spends("b = llm_query('x')")]
    assert record_cells(None) == []


@rlm_ray.tool(effects="write")
def append_line(path: str, line: str) -> str:
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")
    return f"appended {line}"


def test_replayed_tool_calls_get_their_record_and_no_tool_runs(tmp_path):
    log = str(tmp_path / "log.txt")
    settings, functions = tool_settings([append_line], allow_effects=True, approve=None)
    backend = ThreadBackend(FakeLLM(lambda r: "7"), tools=functions, allow_effects=True)
    tools = ToolReplay(backend)
    repl = REPLSession(log, tools, "fake", REPLSettings(can_recurse=False, tools=settings.specs))
    one = ToolCall("append_line", "write", {"path": log, "line": "one"})
    record = (one, ToolResult("appended one"))
    fan = tuple(
        (ToolCall("append_line", "write", {"path": log, "line": str(i)}), ToolResult(f"got {i}"))
        for i in range(8)
    )
    cells = (
        RecordedCell("a = append_line(context, 'one')", False, (record,)),
        RecordedCell("b = append_line(context, 'two')", False, ()),  # a call it never made
        RecordedCell("c = len(a)", False),
        RecordedCell("fan = [append_line(context, str(i)) for i in range(8)]", False, fan),
    )
    seen = {"a": "str (12 chars)", "b": "str (12 chars)", "c": "int"}
    seen["fan"] = "list (8 items) of str"
    restored = replay(repl, cells, seen, subcalls=False, tools=tools)
    assert repl.lookup("a") == "appended one" and repl.lookup("c") == "12"
    assert repl.lookup("fan") == str([f"got {i}" for i in range(8)])  # a fan-out, in order
    assert restored.failed == 1 and restored.lost == ("b",)
    assert not (tmp_path / "log.txt").exists()  # neither the recorded call ran nor the new one
    # without the recorded answers (no `tools`), a cell that called a tool is not re-run at all
    bare = REPLSession(log, backend, "fake", REPLSettings(can_recurse=False, tools=settings.specs))
    restored = replay(bare, cells[:1], {"a": "str (12 chars)"}, subcalls=True)
    assert restored.skipped == 1 and restored.lost == ("a",)
    # after the rebuild, the backend runs tool calls again as usual
    repl.run("d = append_line(context, 'three')")
    assert (tmp_path / "log.txt").read_text() == "three\n"


def test_a_cell_is_answerable_only_when_every_tool_call_under_it_was_recorded():
    call, result = ToolCall("t", "read", {}), ToolResult(1)
    own = SubCallTrace("tool", "", "t()", tool="t", tool_record=(call, result))
    unrecorded = SubCallTrace("tool", "", "t()", tool="t")
    child = CallTrace("c.0", 1, "m", "kid")
    child.iterations = [IterationTrace(0, "r", cells=[CellTrace("t()", "", subcalls=[own])])]
    by_child = SubCallTrace("rlm", "m", "kid", child=child)
    trace = CallTrace("c", 0, "m", "q")
    cells = [CellTrace(f"x{i} = 1", "", subcalls=[s]) for i, s in enumerate([own, unrecorded])]
    cells.append(CellTrace("x2 = 1", "", subcalls=[by_child]))
    trace.iterations = [IterationTrace(0, "r", cells=cells)]
    recorded = record_cells(trace)
    assert [(c.made_subcalls, c.tools_answerable) for c in recorded] == [
        (False, True),
        (False, False),
        (True, False),
    ]
    assert recorded[0].tool_calls == ((call, result),)
