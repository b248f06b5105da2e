"""Tools with declared trust, end to end: model code calls functions marked with
`@rlm_ray.tool(effects=...)`, which run as Ray tasks outside the sandbox.

The tools are defined here, at module level, so they reach the Ray workers the way a user's
tools do (cloudpickle by reference, this module imported on the worker). A `write` tool writes a
file: whether the file exists says whether it really ran. The model is the scripted server.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import rlm_ray
from rlm_ray import ConfigError, LimitExceededError, ToolCall
from rlm_ray.testing import code, turns
from rlm_ray.tooling.gate import ToolRefused, authorize
from rlm_ray.tooling.shown import prompt_section
from rlm_ray.tools import tool_settings

pytestmark = pytest.mark.ray


@rlm_ray.tool
def add(a: int, b: int = 1) -> int:
    """Add two numbers."""
    return a + b


@rlm_ray.tool(effects="read")
def lookup(key: str) -> dict:
    """Look a key up in the catalogue."""
    return {"key": key, "price": len(key) * 10, "tags": ["x", "y"]}


@rlm_ray.tool(effects="write")
def save(path: str, text: str) -> str:
    """Write text to a file."""
    Path(path).write_text(text)
    return "saved"


@rlm_ray.tool(effects="none")
def boom(why: str) -> None:
    raise ValueError(f"cannot do {why}")


@rlm_ray.tool(effects="none")
def where() -> int:
    import os

    return os.getpid()


def _run(make_rlm, model_server, src: str, **kw) -> rlm_ray.Result:
    model_server.reply = turns(code(src), "FINAL(fell through)")
    return make_rlm(**kw).completion("q", "ctx")


def _tool_subcalls(result: rlm_ray.Result) -> list:
    return [
        sub
        for it in result.trace.iterations
        for cell in it.cells
        for sub in cell.subcalls
        if sub.kind == "tool"
    ]


def test_none_and_read_tools_run_outside_the_repl_and_are_traced(make_rlm, model_server):
    src = """
    sums = [add(i, 10) for i in range(4)]
    item = lookup("abc")
    assert isinstance(item, dict) and type(sums[0]) is int
    FINAL(f"{sums} {item['price']} {item['tags']} {where() != repl_pid}")
    """
    model_server.reply = turns(code("import math\nrepl_pid = 0"), code(src), "FINAL(x)")
    result = make_rlm(tools=[add, lookup, where]).completion("q", "ctx")
    assert result.answer == "[10, 11, 12, 13] 30 ['x', 'y'] True"
    assert result.usage.tool_calls == 6
    tools = _tool_subcalls(result)
    assert [t.tool for t in tools] == ["add"] * 4 + ["lookup", "where"]
    first = next(t for t in tools if t.arguments == '{"a": 0, "b": 10}')  # fan-out: any order
    assert (first.effects, first.decision, first.error) == ("none", "none", None)
    assert first.result_preview == "10"
    assert tools[4].effects == "read" and tools[4].decision == "read"
    assert '"price": 30' in tools[4].result_preview
    assert all(t.pid and t.node_id and t.duration_s >= 0 for t in tools)
    assert tools[5].pid == int(tools[5].result_preview)  # it ran in a task's process


def test_the_tool_runs_in_another_process_than_the_repl(make_rlm, model_server):
    result = _run(make_rlm, model_server, "FINAL(where())", tools=[where])
    assert int(result.answer) != result.trace.pid


def test_write_tool_runs_with_allow_effects(make_rlm, model_server, tmp_path):
    target = tmp_path / "out.txt"
    result = _run(
        make_rlm,
        model_server,
        f"FINAL(save({str(target)!r}, 'hello'))",
        tools=[save],
        allow_effects=True,
    )
    assert result.answer == "saved" and target.read_text() == "hello"
    (call,) = _tool_subcalls(result)
    assert (call.effects, call.decision) == ("write", "allow_effects")


def test_a_replay_runs_write_tools_only_when_allowed_again(make_rlm, model_server, tmp_path):
    # The recorded run was allowed to write; its program must ask again (program/replay.py).
    recorded, first, second = (tmp_path / name for name in ("rec.txt", "first.txt", "second.txt"))
    model_server.reply = turns(code("FINAL(save(context, 'hello'))"), "FINAL(fell through)")
    rlm = make_rlm(tools=[save], allow_effects=True)
    result = rlm.completion("q", str(recorded))  # the cell writes to the path it is given
    assert result.answer == "saved" and recorded.read_text() == "hello"
    with pytest.raises(rlm_ray.ProgramError, match="was refused") as refused:
        result.program.run(str(first))
    assert refused.value.cell == 0
    assert not first.exists()
    again = result.program.run(str(second), allow_effects=True)
    assert again.answer == "saved" and second.read_text() == "hello"


def test_write_tool_refused_by_default_and_the_run_goes_on(make_rlm, model_server, tmp_path):
    target = tmp_path / "out.txt"
    src = f"""
    try:
        save({str(target)!r}, 'hello')
    except SubCallError as e:
        FINAL(f"refused: {{e}}")
    """
    result = _run(make_rlm, model_server, src, tools=[save])
    assert result.answer.startswith("refused: tool `save` (effects='write') was refused")
    assert "allow_effects=True" in result.answer
    assert not target.exists()
    assert result.usage.tool_calls == 0  # refused calls do not run
    (call,) = _tool_subcalls(result)
    assert call.error and call.decision == ""


def test_write_tool_approved_on_the_driver(make_rlm, model_server, tmp_path):
    target = tmp_path / "out.txt"
    seen: list[ToolCall] = []  # approve runs in this process: it may keep state

    def approve(call: ToolCall) -> bool:
        seen.append(call)
        return call.arguments["text"] == "ok to write"

    src = f"""
    r1 = save({str(target)!r}, 'ok to write')
    try:
        r2 = save({str(target)!r}, 'not this')
    except SubCallError as e:
        r2 = str(e)
    FINAL(f"{{r1}} | {{r2}}")
    """
    result = _run(make_rlm, model_server, src, tools=[save, add], approve=approve)
    assert result.answer.startswith("saved | tool `save` (effects='write') was refused")
    assert "approve() said no" in result.answer
    assert target.read_text() == "ok to write"
    assert [(c.name, c.effects, c.arguments["text"]) for c in seen] == [
        ("save", "write", "ok to write"),
        ("save", "write", "not this"),
    ]
    assert seen[0]["name"] == "save" and seen[0].depth == 0
    decisions = [t.decision for t in _tool_subcalls(result)]
    assert decisions == ["approved", ""]


def test_approve_returning_false_refuses_even_with_allow_effects(make_rlm, model_server, tmp_path):
    target = tmp_path / "out.txt"
    src = f"""
    try:
        save({str(target)!r}, 'x')
    except SubCallError as e:
        FINAL(str(e))
    """
    result = _run(
        make_rlm, model_server, src, tools=[save], allow_effects=True, approve=lambda c: False
    )
    assert "approve() said no" in result.answer and not target.exists()


def test_none_tools_are_not_asked_about(make_rlm, model_server):
    asked: list[ToolCall] = []
    result = _run(make_rlm, model_server, "FINAL(add(2, 3))", tools=[add], approve=asked.append)
    assert result.answer == "5" and asked == []


def test_wrong_arguments_are_an_error_naming_the_tool_and_its_signature(make_rlm, model_server):
    src = """
    errors = []
    for call in (lambda: add(), lambda: add(1, 2, 3), lambda: add(1, c=2)):
        try:
            call()
        except TypeError as e:
            errors.append(str(e))
    FINAL(" || ".join(errors))
    """
    result = _run(make_rlm, model_server, src, tools=[add])
    missing, extra, unknown = result.answer.split(" || ")
    assert missing == "add(a: int, b: int = 1) -> int: missing a required argument: 'a'"
    assert extra.startswith("add(a: int, b: int = 1) -> int: too many positional arguments")
    assert "unexpected keyword argument 'c'" in unknown
    assert _tool_subcalls(result) == []  # nothing was sent


def test_a_tool_that_raises_is_an_error_in_model_code_and_the_run_goes_on(make_rlm, model_server):
    model_server.reply = turns(
        code("boom('the thing')"),
        code("try:\n    boom('x')\nexcept SubCallError as e:\n    FINAL(f'caught {e}')"),
    )
    result = make_rlm(tools=[boom]).completion("q", "ctx")
    assert result.answer == "caught tool `boom` failed: ValueError: cannot do x"
    first_cell = result.trace.iterations[0].cells[0]
    assert "tool `boom` failed: ValueError: cannot do the thing" in first_cell.error
    assert "Traceback" not in first_cell.error.split("SubCallError", 1)[1]  # no host frames
    assert result.usage.tool_calls == 2


@pytest.mark.parametrize(
    "argument",
    [
        "Thing()",  # an object of a class defined in the cell
        "helper",  # a function defined in the cell
        "[1, {'k': Thing()}]",  # nested
        "{Thing(): 1}",
        "MyStr('abc')",  # a builtin subclass whose methods the model wrote
    ],
)
def test_a_cell_object_cannot_be_smuggled_out_through_a_tool(make_rlm, model_server, argument):
    src = f"""
    class Thing:
        pass
    class MyStr(str):
        def __eq__(self, other):
            return True
    def helper():
        return 1
    try:
        lookup({argument})
    except TypeError as e:
        FINAL(str(e))
    """
    result = _run(make_rlm, model_server, src, tools=[lookup])
    assert result.answer.startswith("lookup: argument `key`")
    assert "must be plain data" in result.answer or "dict keys must be" in result.answer
    assert _tool_subcalls(result) == []


def test_max_sub_calls_counts_tool_calls(make_rlm, model_server):
    src = "rs = [add(i) for i in range(6)]\nFINAL(sum(rs))"
    with pytest.raises(LimitExceededError) as err:
        _run(make_rlm, model_server, src, tools=[add], max_sub_calls=3)
    assert (err.value.limit, err.value.value) == ("max_sub_calls", 3)
    ran = [t for t in _tool_subcalls_of(err.value.trace) if not t.error]
    assert len(ran) == 3


def _tool_subcalls_of(trace) -> list:
    return [s for it in trace.iterations for c in it.cells for s in c.subcalls if s.kind == "tool"]


def test_the_prompt_lists_the_tools_with_signatures_and_docstrings(make_rlm, model_server):
    _run(make_rlm, model_server, "FINAL(1)", tools=[add, lookup, save])
    system = model_server.requests[0].system
    assert "- `add(a: int, b: int = 1) -> int` (effects: none): Add two numbers." in system
    assert "- `lookup(key: str) -> dict` (effects: read): Look a key up" in system
    assert "- `save(path: str, text: str) -> str` (effects: write)" in system
    _run(make_rlm, model_server, "FINAL(1)", prompt="small", tools=[add])
    assert "`add(a: int, b: int = 1) -> int`" in model_server.requests[-1].system
    _run(make_rlm, model_server, "FINAL(1)")
    assert "Tools:" not in model_server.requests[-1].system  # none without tools


def test_tool_calls_in_trace_files_and_views(make_rlm, model_server, tmp_path):
    from rlm_ray.trace import summary as ts
    from rlm_ray.trace.file import read_trace, write_trace
    from rlm_ray.trace.html import write_html
    from rlm_ray.trace.view import print_trace

    src = "r = lookup('sk-test is my key')\ntry:\n    boom('it')\nexcept SubCallError:\n    pass\nFINAL(1)"
    result = _run(make_rlm, model_server, src, tools=[lookup, boom])
    for suffix in ("jsonl", "parquet"):
        path = tmp_path / f"run.{suffix}"
        write_trace(result.trace, path)
        records = read_trace(path)
        subs = list(ts.subcalls_of(records[0]))
        assert [s["tool"] for s in subs] == ["lookup", "boom"]
        assert subs[0]["effects"] == "read" and "***" in subs[0]["arguments"]  # key masked
        assert "sk-test" not in path.read_bytes().decode("utf-8", "replace")
        assert subs[1]["error"] == "ValueError: cannot do it"
        write_html(records, tmp_path / "run.html")
        print_trace(records)
    assert "tool lookup · effects read · read" in ts.subcall_label(subs[0])


@pytest.mark.parametrize(
    "tools, kwargs, message",
    [
        ([lambda x: x], {}, "is not marked"),
        ([rlm_ray.tool(lambda x: x)], {}, "needs a Python identifier"),
        ([len], {}, "is not marked"),
        ([42], {}, "must be a function"),
        ([add, add], {}, "two tools are named 'add'"),
        ([add], {"allow_effects": "yes"}, "allow_effects"),
        ([add], {"approve": "always"}, "approve"),
        ("add", {}, "must be a list of functions"),
    ],
)
def test_bad_tools_are_config_errors_before_any_ray_work(tools, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        rlm_ray.RLM("openai/scripted", api_base="http://127.0.0.1:1", tools=tools, **kwargs)


def test_bad_effects_and_names_in_the_decorator():
    with pytest.raises(ConfigError, match="`effects` must be one of"):
        rlm_ray.tool(effects="delete")
    with pytest.raises(ConfigError, match="may not start with '_'"):
        rlm_ray.tool(name="_hidden")
    with pytest.raises(ConfigError, match="is taken in the REPL"):
        rlm_ray.tool(name="llm_query")

    @rlm_ray.tool
    def context():
        return 1

    with pytest.raises(ConfigError, match="is taken in the REPL"):
        tool_settings([context], False, None)

    @rlm_ray.tool
    def print(x):  # noqa: A001
        return x

    with pytest.raises(ConfigError, match="is taken in the REPL"):
        tool_settings([print], False, None)


def test_a_tool_that_cannot_be_pickled_is_a_config_error():
    lock = threading.Lock()

    @rlm_ray.tool
    def locked() -> int:
        with lock:
            return 1

    with pytest.raises(ConfigError, match="cannot be sent to Ray workers"):
        tool_settings([locked], False, None)


def test_a_closure_tool_is_shipped_by_value(make_rlm, model_server):
    factor = 7

    @rlm_ray.tool(name="times")
    def _times(x: int) -> int:
        """Multiply by the factor."""
        return x * factor

    result = _run(make_rlm, model_server, "FINAL(times(6))", tools=[_times])
    assert result.answer == "42"


# -- the gate itself, without Ray --------------------------------------------------------------
@pytest.mark.parametrize(
    "effects, allow, approve, expected",
    [
        ("none", False, None, "none"),
        ("read", False, None, "read"),
        ("write", True, None, "allow_effects"),
        ("write", False, lambda c: True, "approved"),
        ("write", True, lambda c: True, "approved"),
        ("write", False, None, ToolRefused),
        ("write", False, lambda c: False, ToolRefused),
        ("write", True, lambda c: False, ToolRefused),  # approve, when given, decides
        ("write", False, lambda c: "yes", ToolRefused),  # only True approves
    ],
)
def test_authorize(effects, allow, approve, expected):
    call = ToolCall("t", effects, {"x": 1})
    if expected is ToolRefused:
        with pytest.raises(ToolRefused):
            authorize(call, allow, approve)
    else:
        assert authorize(call, allow, approve) == expected


def test_prompt_section_is_empty_without_tools():
    assert prompt_section([]) == ""


@rlm_ray.tool(effects="read", timeout_s=1)
def slow(seconds: float) -> str:
    import time

    time.sleep(seconds)
    return "late"


def test_a_tool_past_its_timeout_is_an_error_and_the_run_goes_on(make_rlm, model_server):
    src = "try:\n    slow(30)\nexcept SubCallError as e:\n    FINAL(str(e))"
    result = _run(make_rlm, model_server, src, tools=[slow])
    assert result.answer == "tool `slow` failed: TimeoutError: the tool did not return within 1 s"


@rlm_ray.tool(effects="read", timeout_s=None)
def endless() -> str:
    import time

    time.sleep(600)
    return "never"


def test_the_run_deadline_stops_a_tool_call(make_rlm, model_server):
    with pytest.raises(LimitExceededError) as err:
        _run(make_rlm, model_server, "endless()", tools=[endless], max_time_s=5)
    assert err.value.limit == "max_time_s"


def test_an_approve_that_raises_stops_the_run_with_its_error(make_rlm, model_server, tmp_path):
    def approve(call: ToolCall) -> bool:
        raise RuntimeError("approval service down")

    with pytest.raises(RuntimeError, match="approval service down"):
        _run(
            make_rlm,
            model_server,
            f"save({str(tmp_path / 'x')!r}, 'y')",
            tools=[save],
            approve=approve,
        )
    assert not (tmp_path / "x").exists()


def test_child_rlms_get_the_tools_too(make_rlm, model_server):
    from rlm_ray.testing import by_marker

    model_server.reply = by_marker(
        {"KID": turns(code("FINAL(add(40, 2))"))},
        default=turns(code("FINAL(recursive_llm('KID task', 'c'))")),
    )
    result = make_rlm(tools=[add], max_depth=2).completion("q", "ctx")
    assert result.answer == "42" and result.usage.tool_calls == 1


# -- in-process (no Ray): the same REPL, gate and result copies on local threads ----------------
def test_trust_levels_in_process(tmp_path):
    from helpers import local_completion

    target = tmp_path / "out.txt"
    src = f"""
    out = [add(1, 2), lookup('ab')['price']]
    try:
        save({str(target)!r}, 'x')
    except SubCallError as e:
        out.append(str(e))
    FINAL(out)
    """
    result, _ = local_completion(turns(code(src)), tools=[add, lookup, save])
    assert result.answer.startswith("[3, 20, \"tool `save` (effects='write') was refused")
    assert not target.exists() and result.usage.tool_calls == 2
    result, _ = local_completion(turns(code(src)), tools=[add, lookup, save], allow_effects=True)
    assert result.answer == "[3, 20]" and target.read_text() == "x"
