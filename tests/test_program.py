"""Programs: a recorded run replayed on new data on Ray, with no root-model calls.

End to end through litellm over HTTP to the scripted server: record a run with `RLM.completion`
(or `rlm-ray run --trace`), then replay `result.program` (or the trace file, or the saved
script) on new data of the same shape. Root-model turns are the requests whose first user
message holds the query (sub-calls carry only their own prompt), so "no root-model call" is
counted from the server's requests.
"""

from __future__ import annotations

import json

import pytest
from helpers import run_python

import rlm_ray
from rlm_ray import AnswerRule, Program, ProgramCell, ProgramError
from rlm_ray.cli import main
from rlm_ray.core.answer_source import candidates, is_pure, whole_token
from rlm_ray.program.script import code_literal
from rlm_ray.testing import by_marker, code, records, turns

pytestmark = pytest.mark.ray

NEEDLE_Q = "What is the code for the north gate?"
FIND = code("import re\nm = re.search(r'north gate is (\\d+)', context)\nprint(m.group(1))")


def typed_final(request) -> str:
    """The root model reads the printed number and types it: FINAL(58213)."""
    printed = request.last_user.split("Output of code block 1:\n")[1].split()[0]
    return f"FINAL({printed})"


def haystack(code_: str | None, filler: int = 400) -> str:
    hay = "hay straw " * filler
    needle = "" if code_ is None else f" The code for the north gate is {code_}. "
    return hay + needle + hay


def root_requests(server, query: str) -> list:
    return [r for r in server.requests if query in r.first_user]


@pytest.fixture
def needle_run(make_rlm, model_server):
    model_server.reply = turns(FIND, typed_final)
    rlm = make_rlm()
    result = rlm.completion(NEEDLE_Q, haystack("58213"))
    assert result.answer == "58213"
    return rlm, result


def test_replay_on_new_data_makes_no_root_model_call(needle_run, model_server):
    _, result = needle_run
    program = result.program
    assert isinstance(program, Program) and len(program.cells) == 1
    # the model typed 58213 after reading the output: the answer is the value it read
    assert program.answer == AnswerRule("value", cell=0, expression="m.group(1)", literal="58213")
    model_server.reset_stats()
    replayed = program.run(haystack("90417"))
    assert replayed.answer == "90417"
    assert root_requests(model_server, NEEDLE_Q) == []
    assert model_server.requests == []  # this program makes no sub-call either
    assert replayed.usage.calls == 0
    assert replayed.trace.finished_by == "program:value"
    cells = [c for it in replayed.trace.iterations for c in it.cells]
    assert [c.code for c in cells][1:] == ["FINAL(m.group(1))"]  # how the answer was taken
    assert cells[0].output.strip() == "90417"
    assert replayed.program == program  # the program that ran


REVIEWS_Q = "How many reviews are positive?"
COUNT_SCRIPT = by_marker(
    {"SENTIMENT:": lambda r: "positive" if "good" in r.first_user else "negative"},
    default=turns(
        code("print(contxt[:10])"),  # a typo: raises, and is left out of the program
        code(
            "labels = [llm_query('SENTIMENT: ' + r) for r in context]\n"
            "count = sum(1 for label in labels if label.strip() == 'positive')\n"
            "print(count)"
        ),
        "The count is printed above.\nFINAL_VAR(count)",
    ),
)


def test_replay_keeps_sub_calls_live_and_skips_failed_cells(make_rlm, model_server):
    model_server.reply = COUNT_SCRIPT
    reviews = ["good food", "bad service", "good price", "cold soup"]
    result = make_rlm().completion(REVIEWS_Q, reviews)
    assert result.answer == "2"
    program = result.program
    assert [c.turn for c in program.cells] == [1]  # the failed cell of turn 0 is left out
    assert len(program.skipped) == 1 and "NameError" in program.skipped[0]
    assert program.answer == AnswerRule("FINAL_VAR", name="count")

    model_server.reset_stats()
    new = ["good", "good", "good", "meh", "good", "bad"]
    replayed = program.run(new)
    assert replayed.answer == "4"
    assert root_requests(model_server, REVIEWS_Q) == []
    sub_calls = [r for r in model_server.requests if "SENTIMENT:" in r.first_user]
    assert len(sub_calls) == len(model_server.requests) == len(new)  # live, one per review
    assert replayed.usage.calls == len(new)


def test_recursive_llm_stays_a_live_child_rlm(make_rlm, model_server):
    query = "Find the gate code with a helper."
    model_server.reply = by_marker(
        {"CHILD find the code": turns(FIND, typed_final)},  # the child RLM's own turns
        default=turns(
            code("found = recursive_llm('CHILD find the code', context)\nprint(found)"),
            "FINAL_VAR(found)",
        ),
    )
    result = make_rlm(max_depth=2).completion(query, haystack("58213"))
    assert result.answer == "58213"
    assert result.program.max_depth == 2
    model_server.reset_stats()
    replayed = result.program.run(haystack("6502"))
    assert replayed.answer == "6502"
    assert root_requests(model_server, query) == []
    child_turns = [r for r in model_server.requests if "CHILD find the code" in r.first_user]
    assert len(child_turns) == len(model_server.requests) == 2  # the child's two turns, live
    (child,) = [c for c in replayed.trace.walk() if c.depth == 1]
    assert child.answer == "6502"


def test_a_cell_that_fails_on_new_data_names_the_cell(needle_run, model_server):
    _, result = needle_run
    model_server.reset_stats()
    with pytest.raises(ProgramError) as caught:
        result.program.run(haystack(None))  # no needle: m is None
    err = caught.value
    assert err.cell == 0
    assert "AttributeError" in err.error and "NoneType" in err.error
    assert "cell 0" in str(err) and "m.group(1)" in str(err)
    assert err.trace is not None  # what the replay did, as for any failed run
    assert model_server.requests == []


def test_final_in_a_cell_is_replayed_as_code(make_rlm, model_server):
    query = "Sum the numbers."
    model_server.reply = turns(code("total = sum(int(x) for x in context.split())\nFINAL(total)"))
    result = make_rlm().completion(query, "1 2 3")
    assert result.answer == "6"
    assert result.program.answer == AnswerRule("cell", cell=0)
    model_server.reset_stats()
    assert result.program.run("10 20 30 40").answer == "100"
    assert model_server.requests == []


LABELS_Q = "How many messages are questions?"


def kind_of(task: str, item: str) -> str:
    """The scripted sub-model's label of a message."""
    return "DELIVERY" if "parcel" in item else "PRAISE" if "thanks" in item else "QUESTION"


def typed_question_count(request) -> str:
    """The root model reads the printed Counter and types the count of questions."""
    printed = request.last_user.split("Output of code block 1:\n")[1]
    return "FINAL(" + printed.split("'QUESTION': ")[1].split(",")[0].split("}")[0] + ")"


COUNT_LABELS = records(
    kind_of,
    default=turns(
        code(
            "import collections\n"
            "labels = llm_classify(context, ['QUESTION', 'PRAISE', 'DELIVERY'])\n"
            "print(len(context), 'messages:', collections.Counter(labels))"
        ),
        typed_question_count,
    ),
)


def messages(questions: int, praise: int, delivery: int) -> list[str]:
    kinds = ["how do I reset it?"] * questions + ["thanks!"] * praise
    return [f"{m} (#{i})" for i, m in enumerate(kinds + ["where is my parcel?"] * delivery)]


def test_a_typed_count_is_replayed_as_the_value_it_was_read_from(
    make_rlm, model_server, tmp_path, ray_session
):
    """Issue 30: the model printed a `collections.Counter` and typed the count it read; the
    program replayed a pattern over the printed line, tied to the order the Counter printed
    its keys in, and failed on data whose counts order them differently ("this output has no
    match"). The answer is the value the code made: `Counter(labels)['QUESTION']`."""
    model_server.reply = COUNT_LABELS
    result = make_rlm().completion(LABELS_Q, messages(13, 9, 8))
    assert result.answer == "13"
    program = result.program
    expression = "collections.Counter(labels)['QUESTION']"
    assert program.answer == AnswerRule("value", cell=0, expression=expression, literal="13")
    assert expression in program.describe()
    new = messages(5, 12, 13)  # printed Counter({'DELIVERY': 13, 'PRAISE': 12, 'QUESTION': 5})
    model_server.reset_stats()
    assert program.run(new).answer == "5"
    assert root_requests(model_server, LABELS_Q) == []
    # the same through the saved script, in a process of its own
    script, data = program.save(tmp_path / "count.py"), tmp_path / "new.json"
    data.write_text(json.dumps(new))
    address = ray_session.get_runtime_context().gcs_address
    out = run_python(str(script), "--context", str(data), "--address", address, "--quiet")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "5\n"


def test_a_typed_answer_no_code_printed_is_not_replayed(make_rlm, model_server):
    query = "Which city?"
    model_server.reply = turns(code("print(len(context))"), "FINAL(Paris)")
    result = make_rlm().completion(query, "some text about a city")
    assert result.answer == "Paris"
    program = result.program
    assert program.answer.kind == "none" and not program.answer.computed
    assert "NOT computed by code" in program.answer.describe()
    model_server.reset_stats()
    with pytest.raises(ProgramError, match="NOT computed by code"):
        program.run("other text")
    assert model_server.requests == []  # refused before any work


def test_a_typed_answer_only_printed_text_holds_is_not_computed(make_rlm, model_server):
    """A number the model read inside printed text that no value of the code is (here, the
    repr of a match) is not an answer code computes: the program says so when it is made,
    rather than guess with a pattern over the text."""
    query = "What is the gate code?"
    find = code("import re\nprint(re.search(r'The code for the north gate is \\d+\\.', context))")
    model_server.reply = turns(find, "FINAL(58213)")
    result = make_rlm().completion(query, haystack("58213"))
    assert result.trace.answer_code is None
    rule = result.program.answer
    assert (rule.kind, rule.literal) == ("none", "58213") and not rule.computed
    assert "NOT computed by code" in result.program.describe()


def test_save_writes_a_script_that_runs(needle_run, model_server, tmp_path, ray_session):
    _, result = needle_run
    script = result.program.save(tmp_path / "p.py")
    text = script.read_text()
    assert "MODEL = 'openai/scripted'" in text and f"API_BASE = {model_server.url!r}" in text
    assert "re.search(r'north gate is (\\d+)', context)" in text  # the code as written
    new = tmp_path / "new.txt"
    new.write_text(haystack("31337"))
    address = ray_session.get_runtime_context().gcs_address
    model_server.reset_stats()
    out = run_python(str(script), "--context", str(new), "--address", address, "--quiet")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "31337\n"
    assert root_requests(model_server, NEEDLE_Q) == []


def test_cli_replay_from_a_trace_file(model_server, tmp_path, ray_session, capsys):
    model_server.reply = COUNT_SCRIPT
    recorded, new, trace = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "run.jsonl"
    recorded.write_text(json.dumps(["good", "bad", "good"]))
    new.write_text(json.dumps(["bad", "bad", "good", "bad", "bad"]))
    base = ["--model", "openai/scripted", "--api-base", model_server.url, "--api-key", "sk-test"]
    capsys.readouterr()
    assert (
        main(
            [
                "run",
                *base,
                "--context",
                str(recorded),
                "--query",
                REVIEWS_Q,
                "--trace",
                str(trace),
                "--quiet",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out == "2\n"
    model_server.reset_stats()
    assert main(["replay", str(trace), *base, "--context", str(new), "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer"] == "1" and out["usage"]["calls"] == 5
    assert root_requests(model_server, REVIEWS_Q) == []
    # the program of a trace file is the program of the run
    program = Program.from_file(trace)
    assert program.answer == AnswerRule("FINAL_VAR", name="count") and len(program.cells) == 1


def test_a_replay_summary_counts_the_calls_json_counts(model_server, tmp_path, capsys):
    """Issue 30: the summary line of a replay said "1 model calls" where `--json` said 0 (the
    recorded turn counted as a model call)."""
    from helpers import summary_numbers

    model_server.reply = turns(code("total = sum(int(x) for x in context.split())\nFINAL(total)"))
    base = ["--model", "openai/scripted", "--api-base", model_server.url, "--api-key", "sk-test"]
    recorded, new, trace = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "run.jsonl"
    recorded.write_text("1 2 3")
    new.write_text("10 20")
    run = ["run", *base, "--context", str(recorded), "--query", "Sum.", "--trace", str(trace)]
    assert main([*run, "--quiet"]) == 0
    capsys.readouterr()
    model_server.reset_stats()
    assert main(["replay", str(trace), *base, "--context", str(new), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["answer"] == "30" and json.loads(out)["usage"]["calls"] == 0
    (summary,) = [line for line in err.splitlines() if "model calls" in line]
    assert summary_numbers(summary) == (0, 0, 0), summary
    assert model_server.requests == []


def test_the_saved_script_says_how_to_run_it(tmp_path):
    program = Program("q", [ProgramCell("FINAL(1)")], AnswerRule("cell", cell=0), "m")
    text = program.save(tmp_path / "gate_code.py").read_text()
    assert "python gate_code.py --context NEW_DATA" in text
    assert "{" not in text.split('"""')[1]  # the docstring holds no template left unfilled


def test_cli_replay_failure_is_one_line(needle_run, model_server, tmp_path, capsys):
    _, result = needle_run
    from rlm_ray.trace.file import write_trace

    trace, new = tmp_path / "run.parquet", tmp_path / "new.txt"
    write_trace(result.trace, trace)
    assert Program.from_file(trace) == result.program
    new.write_text(haystack(None))
    capsys.readouterr()
    args = ["--api-base", model_server.url, "--api-key", "sk-test", "--quiet"]
    assert main(["replay", str(trace), "--context", str(new), *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "rlm-ray: error: cell 0 (from recorded turn 1) failed on this data" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_replay_refuses_bad_arguments_before_any_work(needle_run, model_server):
    rlm, result = needle_run
    with pytest.raises(rlm_ray.ConfigError, match="allow_effects"):
        result.program.run("x", allow_effects="yes")
    with pytest.raises(rlm_ray.ConfigError, match="rlm_ray.Program"):
        rlm.replay("print(1)", "x")


# -- pure parts: no Ray ----------------------------------------------------------------------------


def test_where_a_typed_answer_may_come_from():
    cells = [
        ("n = 1\nprint(n)", "1\n"),
        (
            "for k, v in d.items():\n    print(k, v)\nprint(f'{len(d)} keys, {t:.1f}', len(xs))",
            "a 42\n",
        ),
        ("print(42)", "42"),
    ]
    # the cells that showed 42, latest first; a constant and loop variables are no source
    shown = [c.source for c in candidates("42", cells)]
    assert shown == ["len(d)", "f'{t:.1f}'", "len(xs)", "d", "t", "xs"]
    assert whole_token("id 42; 421", "42") == 3 and whole_token("421 x42", "42") is None
    assert is_pure("collections.Counter(labels)['BROKEN']")
    assert is_pure("sorted(c, key=lambda k: -c[k])[0]") and is_pure("f'{x:.2f}'")
    for impure in ["llm_query('x')", "xs.pop()", "x.__class__", "(y := 1)", "print(1)"]:
        assert not is_pure(impure), impure
    with pytest.raises(ValueError, match="pure expression"):
        AnswerRule("value", expression="llm_query('again')")


def test_saved_code_reads_as_written():
    for source in ["print('a')", "x = r'\\d+'\nprint(x)", "s = '''q'''\nt = \"\"\"u\"\"\"", "a\\"]:
        literal = code_literal(source)
        assert eval(literal).strip("\n") == source
    assert code_literal("print(1)").startswith("r'''")


# Strings a query, a model's code or its typed answer may hold: each must come back exactly.
HOSTILE = [
    "a\x00b",  # NUL: a source file holding one does not parse
    "x\ud800y\udfff",  # lone surrogates: not writable as UTF-8
    "e\x1b[2Jf\x07\x08",  # terminal escapes and other control characters
    "q\r\nz\rw\x0b\x0c",  # line ends Python and str.splitlines read differently
    "l\u2028m\x85n\ufeff",
    "t'''u\"\"\"v",  # triple quotes of both kinds
    "back\\",  # a backslash at the end, and before a quote
    "\\'\\\"",
    "\\N{x} \\x00 {q}",  # escapes and braces, as text
]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_saved_program_gives_back_every_string_exactly(text, tmp_path):
    import runpy

    program = Program(
        query=f"how many {text}?",
        cells=[ProgramCell(f"x = 1  # {text}\ny = {text!r}"), ProgramCell(text.strip("\n"))],
        answer=AnswerRule("value", cell=0, expression=f"d[{text!r}]", literal=text),
        model=f"openai/{text}",
        sub_model=text,
        prompt=text,
        recorded_answer=text,
        skipped=(text,),
    )
    path = program.save(tmp_path / "p.py")
    assert runpy.run_path(str(path), run_name="saved")["PROGRAM"] == program


def test_a_program_pickles_without_its_rlm():
    import pickle

    program = Program("q", [ProgramCell("print(1)")], AnswerRule("cell", cell=0), "m")
    bound = program.bound(object())
    again = pickle.loads(pickle.dumps(bound))
    assert again == program and again._rlm is None and bound._rlm is not None


# -- the real local model (excluded by default: pytest -m real_model) ------------------------------


def gate_log(code_: str, seed: int, chars: int = 6_000) -> str:
    import random

    rng = random.Random(seed)
    words = "the river town market harbor spring winter council bridge mill farmer road".split()
    sentences: list[str] = []
    while sum(len(s) + 1 for s in sentences) < chars:
        sentences.append(" ".join(rng.choice(words) for _ in range(12)).capitalize() + ".")
    sentences.insert(
        rng.randrange(len(sentences)), f"The secret code for the north gate is {code_}."
    )
    return " ".join(sentences)


@pytest.mark.real_model
def test_real_model_needle_run_replays_on_new_data(ray_session):
    """The 1.5B model finds a needle by code; its program finds another needle, on another
    haystack, with no root-model turn (the usage is the program's sub-calls only, if any).
    If the model read the code inside printed text that no value of its code holds (the
    `small` prompt's search example prints a window of text around a match), the program
    must say so when it is made and refuse to run, rather than answer anything."""
    from rlm_ray import RLM

    rlm = RLM("local", max_iterations=5, max_time_s=600, local_server_slots=1)
    result = rlm.completion("What is the secret code for the north gate?", gate_log("58213", 7))
    for it in result.trace.iterations:
        print(f"--- turn {it.index}\n{it.response}")
    print(result.program.describe())
    assert result.answer.strip() == "58213"
    if not result.program.answer.computed:
        assert "NOT computed by code" in result.program.describe()
        with pytest.raises(ProgramError, match="NOT computed by code"):
            result.program.run(gate_log("40961", 11))
        return
    replayed = result.program.run(gate_log("40961", 11))
    assert replayed.answer.strip() == "40961"
    sub_calls = [s for it in replayed.trace.iterations for c in it.cells for s in c.subcalls]
    assert replayed.usage.calls == len(sub_calls)  # no root-model turn
    assert all(it.input_tokens == 0 for it in replayed.trace.iterations)


def record(
    response: str, cells: list[dict], finished_by: str, answer: str = "6", code_: str = ""
) -> list[dict]:
    iteration = {"index": 0, "response": response, "cells": cells}
    root = {"call_id": "r", "depth": 0, "query": "q", "model": "m", "iterations": [iteration]}
    ended = {"answer": answer, "finished_by": finished_by, "answer_code": code_}
    return [{**root, **ended, "parent_id": None}]


def test_answer_rules_from_trace_records():
    cell = {"code": "x = 6\nFINAL(x)", "output": "", "error": None, "subcalls": []}
    final = dict(cell, final=True)
    by_cell = Program.from_trace(record("```repl\nx = 6\nFINAL(x)\n```", [final], "FINAL"))
    assert by_cell.answer == AnswerRule("cell", cell=0)
    ready = dict(cell, code="answer['content'] = 6\nanswer['ready'] = True")
    assert Program.from_trace(record("...", [ready], "answer")).answer == AnswerRule("answer")
    printed = dict(cell, code="x = 6\nprint(x)", output="6\n", final=False)
    reply = "```repl\nx = 6\nprint(x)\n```\nFINAL(6)"
    typed = Program.from_trace(record(reply, [printed], "FINAL", code_="x"))
    assert typed.answer == AnswerRule("value", cell=0, expression="x", literal="6")
    untraced = Program.from_trace(record(reply, [printed], "FINAL"))
    assert untraced.answer == AnswerRule("none", literal="6")
    crafted = Program.from_trace(record(reply, [printed], "FINAL", code_="llm_query('x')"))
    assert crafted.answer.kind == "none"  # an answer code that is not pure: refused
    failed = dict(printed, error="NameError: name 'y' is not defined")
    none = Program.from_trace(record("FINAL(6)", [failed], "FINAL"))
    assert none.cells == () and none.answer.kind == "none" and "NameError" in none.skipped[0]
