"""The first turn of the small prompts points out the records a query names literally."""

from __future__ import annotations

import pytest

from rlm_ray.prompting import narrowing, prompts

USERS = (2013, 4521, 7777, 1203)
RECORDS = [
    f"2026-03-{i % 14 + 1:02d} | user {USERS[i % 4]} | message number {i}" for i in range(300)
]


@pytest.mark.parametrize(
    "query, term, count",
    [
        ("How many messages from user 2013 have the label complaint?", "user 2013", 75),
        ("For user 2013 only: how many of their messages are praise?", "user 2013", 75),
        ("What did user 4521's messages say?", "user 4521", 75),
        ("On 2026-03-05, how many messages were questions?", "2026-03-05", 22),
        ('Count the messages that quote "number 17".', "number 17", 11),
    ],
)
def test_a_value_some_records_hold_is_named_with_its_count(query, term, count):
    assert narrowing.narrowing_term(query, RECORDS) == (term, count)
    hint = narrowing.hint(query, "\n".join(RECORDS))
    assert f"{term!r}: {count} of 300 records hold it" in hint


@pytest.mark.parametrize(
    "query",
    [
        "How many messages are complaints?",  # names no value
        "Which users wrote at least 2 complaints?",  # a quantity, not a value
        "How many messages are from 2026?",  # every record holds it
        "How many messages from user 9999?",  # no record holds it
        "How many messages not from user 2013?",  # the others are meant
        "How many messages from user 2013 or user 4521?",
        "How many messages were sent before 2026-03-05?",
    ],
)
def test_no_hint_where_keeping_the_named_records_would_be_wrong(query):
    assert narrowing.narrowing_term(query, RECORDS) is None
    assert narrowing.hint(query, RECORDS) == ""


def test_the_hinted_code_keeps_exactly_the_counted_records_for_a_str_and_a_list():
    query = "Count the praise messages written by user 7777."
    for context in ("\n".join(RECORDS), list(RECORDS)):
        code = narrowing.hint(query, context).split("work on them: ", 1)[1]
        scope = {"context": context}
        exec(code, scope)
        assert scope["records"] == [r for r in RECORDS if "user 7777" in r]


def test_few_records_or_no_text_records_get_no_hint():
    query = "How many messages from user 2013?"
    assert narrowing.hint(query, RECORDS[:10]) == ""
    assert narrowing.hint(query, [{"user": 2013}] * 40) == ""
    assert narrowing.hint(query, 12345) == ""


def test_the_small_prompts_first_turn_carries_the_hint_and_the_paper_prompt_does_not():
    query = "How many messages from user 2013 have the label complaint?"
    small = prompts.first_turn(prompts.SMALL, RECORDS, query).format(query=query)
    assert "'user 2013': 75 of 300 records hold it" in small
    assert small.index(query) < small.index("75 of 300")
    plain = prompts.first_turn(prompts.SMALL, RECORDS, "How many are complaints?")
    assert "records hold it" not in plain.format(query="q")
    paper = prompts.first_turn(prompts.PAPER, RECORDS, query).format(query=query)
    assert "records hold it" not in paper


def test_an_or_in_another_sentence_does_not_stop_the_hint():
    query = (
        "Each message is praise (happy with a product or the service) or not. "
        "How many messages from user 1203 are praise?"
    )
    assert narrowing.narrowing_term(query, RECORDS) == ("user 1203", 75)
