"""Host code that reads model-made data outside any clock does bounded work, whatever it reads.

Each test feeds one piece of such host code the input that used to keep a CPU busy for minutes
(issue 25, item 2): a context cheap to ship but huge to print, a query of 400,000 brackets, a
crafted trace file, 100,000 parallel sub-calls. Each runs in a child process that must finish
within a generous guard (a regex holds the GIL, so a thread could not be timed out); nothing
here times the work itself.
"""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest
from helpers import run_python

GUARD_S = 60.0  # far above the bounded work (well under a second each), far below the old


def finishes(source: str) -> str:
    """Run `source` (dedented) in a child Python; its stdout, or fail if it did not end within
    GUARD_S."""
    source = textwrap.dedent(source)
    try:
        done = run_python("-c", source, timeout_s=GUARD_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {GUARD_S:g} s:\n{source}")
    assert done.returncode == 0, done.stderr
    return done.stdout


# A 1 MB string shared 880,000 times: a few MB to hold and ship, 88 GB to print.
HUGE_CONTEXT = "big = 'x' * 10**6\nctx = [['x']] * 1000 + [[big] * 100 for _ in range(8800)]\n"


def test_a_child_context_huge_to_print_is_described_and_previewed():
    out = finishes(
        HUGE_CONTEXT
        + textwrap.dedent(
            """
            from rlm_ray.prompting import prompts
            print(prompts.describe_context(ctx))
            print(prompts.first_turn(prompts.SMALL, ctx, "q"))
            """
        )
    )
    assert "Your context is a list of 9,800 chunks" in out
    assert "[1000] " not in out and "The first items:\n[0] \"['x']\"" in out


def test_a_query_of_400000_brackets_gets_its_first_turn_advice_in_bounded_work():
    out = finishes(
        """
        from rlm_ray.prompting import prompts, small_prompt
        brackets = "how many " + "(" * 400_000
        print(prompts.approach(brackets) == small_prompt.APPROACH_FILTER)
        print(repr(prompts.first_turn(prompts.SMALL, ["rec 1", "rec 2"], brackets)[:40]))
        """
    )
    assert out.splitlines()[0] == "True"


def test_a_query_naming_100000_values_is_narrowed_in_bounded_work():
    out = finishes(
        """
        from rlm_ray.prompting import narrowing
        records = [f"record {i} says hello" for i in range(1000)]
        terms = "how many records from " + " ".join(f"u{i}." for i in range(100_000))
        print(repr(narrowing.hint(terms, records)))
        print(repr(narrowing.hint("how many records from u7 and u12?", records)))
        """
    )
    assert out.splitlines()[0] == "''"


def test_a_crafted_trace_file_becomes_a_program_in_bounded_work(tmp_path):
    literal = "-" * 500_000 + "y"
    record = {
        "call_id": "run",
        "depth": 0,
        "started_s": 0.0,
        "query": "q",
        "model": "m",
        "finished_by": "FINAL",
        "answer": literal,
        "answer_code": "x",
        "iterations": [
            {
                "index": 0,
                "response": f"```repl\nprint(1)\n```\nFINAL({literal})",
                "cells": [{"code": "print(1)", "output": "-" * 1_000_000 + "x", "error": None}],
            }
        ],
    }
    trace = tmp_path / "crafted.jsonl"
    trace.write_text(json.dumps(record) + "\n")
    out = finishes(
        f"""
        from rlm_ray import Program
        print(Program.from_file({str(trace)!r}).answer)
        """
    )
    # the literal is not in the output as a token: no cell showed it
    assert out.strip().startswith("AnswerRule(kind='value', cell=None, name='', expression='x'")


def test_a_whole_token_is_still_found_after_many_that_are_not():
    from rlm_ray.core.answer_source import candidates, whole_token

    assert whole_token("a42 42b 42", "42") == 8
    assert whole_token("x-42-y", "42") == 2 and whole_token("_42", "42") is None
    assert [c.source for c in candidates("42", [("print(n)", "id=42x total 42")])] == ["n"]


def test_where_a_typed_answer_was_shown_is_found_in_long_outputs_in_bounded_work():
    out = finishes(
        """
        from rlm_ray.core.answer_source import candidates
        cells = [("print(city)", "capital: " * 200_000), ("print(town)", "-P" * 500_000 + " Paris")]
        print([c.source for c in candidates("Paris", cells)])
        print(candidates("P" * 400_000, [("print(x)", "P" * 1_000_000 + "Q")]))
        """
    )
    assert out.splitlines() == ["['town']", "[]"]


def test_the_timeline_of_100000_parallel_subcalls_is_drawn_in_bounded_work():
    out = finishes(
        """
        from rlm_ray.trace import summary
        n = 100_000
        subcalls = [
            {"kind": "llm", "started_s": 0.0, "ended_s": 1.0 + i, "duration_s": 1.0 + i,
             "input_tokens": 1, "output_tokens": 1, "pid": 7, "actor_id": "g", "node_id": "n"}
            for i in range(n)
        ]
        root = {"call_id": "run", "depth": 0, "started_s": 0.0, "ended_s": n + 1.0,
                "node_id": "n", "actor_id": "w", "pid": 6,
                "iterations": [{"cells": [{"subcalls": subcalls}]}]}
        line = summary.timeline([root])
        print(line.peak_parallel_subcalls, max(lane.rows for node in line.nodes for lane in node.lanes))
        """
    )
    assert out.split() == ["100000", "100000"]


def test_timeline_rows_are_still_first_fit():
    from rlm_ray.trace import summary

    spans = [(0, 2), (0, 5), (1, 3), (2, 4), (3, 9), (5, 6)]
    subcalls = [
        {
            "kind": "llm",
            "started_s": a,
            "ended_s": b,
            "duration_s": b - a,
            "input_tokens": 1,
            "output_tokens": 1,
            "pid": 7,
            "actor_id": "g",
            "node_id": "n",
        }
        for a, b in spans
    ]
    root = {
        "call_id": "run",
        "depth": 0,
        "started_s": 0.0,
        "ended_s": 9.0,
        "node_id": "n",
        "actor_id": "w",
        "pid": 6,
        "iterations": [{"cells": [{"subcalls": subcalls}]}],
    }
    (node,) = summary.timeline([root]).nodes
    gateway = next(lane for lane in node.lanes if lane.key == "g")
    rows = {(bar.start, bar.end): bar.row for bar in gateway.bars}
    assert rows == {(0, 2): 0, (0, 5): 1, (1, 3): 2, (2, 4): 0, (3, 9): 2, (5, 6): 0}
    assert gateway.rows == 3


def test_a_variable_of_20_million_items_is_described_from_its_start():
    from rlm_ray.core.repl import describe_value

    assert describe_value([0] * 20_000_000 + ["x"]) == (
        "list (20,000,001 items) of int (in the first 10,000)"
    )
    assert describe_value([0, "x"]) == "list (2 items) of mixed types (int, str)"
