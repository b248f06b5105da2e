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
from rlm_ray.answer_rule import from_output, literal_rule
from rlm_ray.cli import main
from rlm_ray.program.script import code_literal
from rlm_ray.testing import by_marker, code, turns

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
    # the model typed 58213 after reading the output: the answer is read where it came from
    assert program.answer == AnswerRule("output", cell=0, literal="58213")
    model_server.reset_stats()
    replayed = program.run(haystack("90417"))
    assert replayed.answer == "90417"
    assert root_requests(model_server, NEEDLE_Q) == []
    assert model_server.requests == []  # this program makes no sub-call either
    assert replayed.usage.calls == 0
    assert replayed.trace.finished_by == "program:output"
    assert [c.output.strip() for it in replayed.trace.iterations for c in it.cells] == ["90417"]
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


def test_a_typed_answer_inside_printed_text_is_read_by_a_pattern(make_rlm, model_server):
    query = "What is the gate code?"
    find = code("import re\nprint(re.search(r'The code for the north gate is \\d+\\.', context))")
    model_server.reply = turns(find, "FINAL(58213)")
    result = make_rlm().completion(query, haystack("58213"))
    rule = result.program.answer
    assert (rule.kind, rule.cell, rule.literal) == ("output", 0, "58213")
    assert rule.pattern is not None  # span=(4001, 4037) in the match's repr changes with the data
    model_server.reset_stats()
    assert result.program.run(haystack("77", filler=100)).answer == "77"
    assert root_requests(model_server, query) == []


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


def test_literal_rule_finds_where_a_typed_answer_came_from():
    assert literal_rule("42", [(0, "10\n"), (1, "42\n")]) == AnswerRule("output", 1, literal="42")
    rule = literal_rule("42", [(0, "found 42 items; id 7")])
    assert from_output(rule, "found 1234 items; id 9") == "1234"
    with pytest.raises(ProgramError, match="no match"):
        from_output(rule, "nothing here")
    with pytest.raises(ProgramError, match="2 different matches"):
        from_output(rule, "found 1 items; id 1\nfound 2 items; id 2")
    assert literal_rule("4", [(0, "42\n")]).kind == "none"  # inside a longer number: no
    word = literal_rule("Paris", [(0, "capital: Paris")])
    assert from_output(word, "capital: Rome") == "Rome"


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
        answer=AnswerRule("output", cell=0, pattern=text, literal=text),
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
    haystack, with no root-model turn (the usage is the program's sub-calls only, if any)."""
    from rlm_ray import RLM

    rlm = RLM("local", max_iterations=5, max_time_s=600, local_server_slots=1)
    result = rlm.completion("What is the secret code for the north gate?", gate_log("58213", 7))
    for it in result.trace.iterations:
        print(f"--- turn {it.index}\n{it.response}")
    print(result.program.describe())
    assert result.answer.strip() == "58213"
    assert result.program.answer.computed, result.program.describe()
    replayed = result.program.run(gate_log("40961", 11))
    assert replayed.answer.strip() == "40961"
    sub_calls = [s for it in replayed.trace.iterations for c in it.cells for s in c.subcalls]
    assert replayed.usage.calls == len(sub_calls)  # no root-model turn
    assert all(it.input_tokens == 0 for it in replayed.trace.iterations)


def record(response: str, cells: list[dict], finished_by: str, answer: str = "6") -> list[dict]:
    iteration = {"index": 0, "response": response, "cells": cells}
    root = {"call_id": "r", "depth": 0, "query": "q", "model": "m", "iterations": [iteration]}
    return [{**root, "answer": answer, "finished_by": finished_by, "parent_id": None}]


def test_answer_rules_from_trace_records():
    cell = {"code": "x = 6\nFINAL(x)", "output": "", "error": None, "subcalls": []}
    final = dict(cell, final=True)
    by_cell = Program.from_trace(record("```repl\nx = 6\nFINAL(x)\n```", [final], "FINAL"))
    assert by_cell.answer == AnswerRule("cell", cell=0)
    ready = dict(cell, code="answer['content'] = 6\nanswer['ready'] = True")
    assert Program.from_trace(record("...", [ready], "answer")).answer == AnswerRule("answer")
    printed = dict(cell, code="print(6)", output="6\n", final=False)
    typed = Program.from_trace(record("```repl\nprint(6)\n```\nFINAL(6)", [printed], "FINAL"))
    assert typed.answer == AnswerRule("output", cell=0, literal="6")
    failed = dict(printed, error="NameError: name 'y' is not defined")
    none = Program.from_trace(record("FINAL(6)", [failed], "FINAL"))
    assert none.cells == () and none.answer.kind == "none" and "NameError" in none.skipped[0]
