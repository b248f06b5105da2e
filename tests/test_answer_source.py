"""Where an answer the model typed came from (`rlm_ray/core/answer_source.py`): the code whose
value, after the run, is that answer. Runs in this process (`helpers.local_completion`: the real REPL,
sandbox and turn loop, a scripted model, no Ray); `test_program.py` replays such programs over
Ray and HTTP."""

from __future__ import annotations

import pytest
from helpers import local_completion

from rlm_ray.testing import code, records, turns

QUERY = "How many messages are questions?"
MESSAGES = [
    f"{text} #{i}"
    for i, text in enumerate(["where is my parcel"] * 8 + ["thanks!"] * 9 + ["how do I?"] * 13)
]
CLASSIFY = "labels = llm_classify(context, ['QUESTION', 'PRAISE', 'DELIVERY'])\n"


def kind_of(task: str, item: str) -> str:
    return "DELIVERY" if "parcel" in item else "PRAISE" if "thanks" in item else "QUESTION"


def traced(cell: str, final: str, query: str = QUERY) -> str | None:
    """The `answer_code` of a run whose one cell is `cell` and whose model then types `final`."""
    result, _ = local_completion(
        records(kind_of, default=turns(code(cell), final)), query, MESSAGES
    )
    return result.trace.answer_code


@pytest.mark.parametrize(
    "cell, final, expected",
    [
        # the issue's: a Counter printed, not kept in a variable
        (
            "import collections\n" + CLASSIFY + "print(len(context), 'messages:', "
            "collections.Counter(labels))",
            "FINAL(13)",
            "collections.Counter(labels)['QUESTION']",
        ),
        # an f-string's field
        (
            CLASSIFY
            + "counts = collections.Counter(labels)\nprint(f'{len(labels)} in all: {counts}')",
            "FINAL(13)",
            "counts['QUESTION']",
        ),
        # printed in a loop: the loop variables are no source, the dict they come from is
        (
            CLASSIFY + "counts = {}\nfor l in labels:\n    counts[l] = counts.get(l, 0) + 1\n"
            "for k, v in counts.items():\n    print(k, v)",
            "FINAL(13)",
            "counts['QUESTION']",
        ),
        ("hits = [m for m in context if 'how' in m]\nprint(len(hits))", "FINAL(13)", "len(hits)"),
        (
            "import re\nm = re.search(r'parcel #(\\d+)', '\\n'.join(context))\nprint(m.group(0))",
            "FINAL(0)",
            "m.group(1)",
        ),
        ("share = 13 / 30\nprint(f'{share:.2f}')", "FINAL(0.43)", "f'{share:.2f}'"),
        ("top = sorted(context)[:3]\nprint(top)", "FINAL(how do I? #17)", "top[0]"),
        # a key is no value; a value no cell showed was not read; printed text is no value
        (
            "import collections\n" + CLASSIFY + "print(collections.Counter(labels))",
            "FINAL(QUESTION)",
            None,
        ),
        ("n = 13\nprint('done')", "FINAL(13)", None),
        ("print('there are', 13, 'questions')", "FINAL(13)", None),
    ],
)
def test_a_typed_answer_is_traced_to_the_value_it_was_read_from(cell, final, expected):
    assert traced(cell, final) == expected


def test_a_tie_between_dict_keys_is_settled_by_the_query_or_not_at_all():
    counts = "counts = {'QUESTION': 13, 'PRAISE': 13, 'DELIVERY': 4}\nprint(counts)"
    assert traced(counts, "FINAL(13)") == "counts['QUESTION']"  # the query says "questions"
    assert traced(counts, "FINAL(13)", query="How many of the most common kind?") is None


def test_only_pure_code_is_evaluated_to_trace_an_answer():
    """Tracing evaluates what cells printed: a print of a sub-call or a mutation is not
    evaluated again (no model call, no change to the REPL)."""
    cell = "xs = [13, 1]\nprint(llm_query('again'))\nprint(xs.pop(0))"
    result, fake = local_completion(turns(code(cell), "FINAL(13)"), QUERY, "ctx")
    assert result.trace.answer_code is None
    assert len(fake.requests) == 3  # two root turns and the one sub-call: none made again


def test_the_search_looks_at_a_bounded_part_of_a_big_value():
    """Model-made data can be huge: the search opens at most 10,000 items of a container and
    50,000 values in all, so a value far inside one is not found (and nothing hangs)."""
    cell = "big = {i: str(i) for i in range(300_000)}\nprint(len(big), big)"
    assert traced(cell, "FINAL(299999)") is None  # shown at the end of the (cut) output
    assert traced(cell, "FINAL(300000)") == "len(big)"


def test_a_function_of_the_model_called_while_tracing_asks_no_model():
    """An expression can be pure by its form and still call a method the model wrote, which
    makes a sub-call: while an answer is traced, any sub-call fails, and that source is
    skipped."""
    cell = (
        "class Asker:\n    def get(self, x):\n        return llm_query(x)\n"
        "a = Asker()\nxs = ['q1', 'q2']\nprint(max(xs, key=a.get))"
    )
    result, fake = local_completion(turns(code(cell), "FINAL(q1)"), QUERY, "ctx")
    assert result.trace.answer_code == "xs[0]"  # not `max(xs, key=a.get)`
    assert len(fake.requests) == 2 + 2  # two root turns, the cell's two sub-calls: no more
