"""Records with fields (rlm_ray/plans/records.py): every format a user's records come in, read
into named fields without a regex from the model."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from rlm_ray.plans.records import describe, document_record, parse, parse_text, record_lists
from rlm_ray.testing.local_corpus import local_corpus

PIPE = (
    "2026-03-04 | user 4997 | My blender arrived broken.\n"
    "2026-03-05 | user 1022 | Thanks, the kettle works great!\n"
    "2026-03-05 | user 4997 | Where is my order?"
)
EXPECTED_PIPE = [
    {"date": "2026-03-04", "user": "4997", "text": "My blender arrived broken."},
    {"date": "2026-03-05", "user": "1022", "text": "Thanks, the kettle works great!"},
    {"date": "2026-03-05", "user": "4997", "text": "Where is my order?"},
]


@pytest.mark.parametrize(
    "text, expected",
    [
        (PIPE, EXPECTED_PIPE),
        (  # a header line names the columns
            "day\tservice\tstatus\n2026-03-01\tauth\tall checks passing\n2026-03-08\tauth\tslow",
            [
                {"day": "2026-03-01", "service": "auth", "status": "all checks passing"},
                {"day": "2026-03-08", "service": "auth", "status": "slow"},
            ],
        ),
        (  # CSV with quotes and commas inside a field
            'date,speaker,note\n2026-03-02,Priya,"Atlas slips, again"\n2026-03-03,Tom,ok',
            [
                {"date": "2026-03-02", "speaker": "Priya", "note": "Atlas slips, again"},
                {"date": "2026-03-03", "speaker": "Tom", "note": "ok"},
            ],
        ),
        (  # key: value blocks, a value going on over two lines
            "id: INC-1\nservice: search\nsummary: slow\n  since noon\n\nid: INC-2\nservice: login\n"
            "summary: down",
            [
                {"id": "INC-1", "service": "search", "summary": "slow since noon"},
                {"id": "INC-2", "service": "login", "summary": "down"},
            ],
        ),
        (  # logfmt, quoted values with spaces and escapes
            'ts=2026-03-04T10:00:00Z host=web-01 msg="disk at 97% on /var"\n'
            'ts=2026-03-04T11:00:00Z host=db-02 msg="said \\"hi\\""',
            [
                {"ts": "2026-03-04T10:00:00Z", "host": "web-01", "msg": "disk at 97% on /var"},
                {"ts": "2026-03-04T11:00:00Z", "host": "db-02", "msg": 'said "hi"'},
            ],
        ),
        (  # JSON lines, numbers and nested values as text
            '{"reviewer": "kai_m", "stars": 2, "tags": ["a"]}\n{"reviewer": "omar_t", "stars": 5}',
            [
                {"reviewer": "kai_m", "stars": "2", "tags": '["a"]'},
                {"reviewer": "omar_t", "stars": "5"},
            ],
        ),
        (  # prose is one field: its commas are not columns
            "the lamp flickers, sadly\nlovely colour, fast delivery",
            [{"text": "the lamp flickers, sadly"}, {"text": "lovely colour, fast delivery"}],
        ),
    ],
)
def test_text_formats_become_records_with_named_fields(text, expected):
    assert parse_text(text) == expected


def test_a_headerless_column_is_named_for_the_word_its_values_start_with():
    text = "order 12246 | customer Gus Moreau | placed 2026-03-27\norder 59227 | customer Ana Lima | placed 2026-03-06"
    assert parse_text(text) == [
        {"order": "12246", "customer": "Gus Moreau", "placed": "2026-03-27"},
        {"order": "59227", "customer": "Ana Lima", "placed": "2026-03-06"},
    ]
    # handles, no common word: a name column beside the date and the text
    rows = parse_text("2026-03-04 | ana.lima | I was billed twice\n2026-03-05 | ben.okafor | hi")
    assert list(rows[0]) == ["date", "name", "text"]


def test_lists_dicts_and_corpora():
    assert parse(PIPE.splitlines()) == EXPECTED_PIPE  # a list of lines
    assert parse([{"a": 1, "b": None}]) == [{"a": "1", "b": ""}]  # a list of dicts
    assert record_lists({"orders": "order 1 | customer Ana\norder 2 | customer Bo", "n": 3}) == {
        "orders": [{"order": "1", "customer": "Ana"}, {"order": "2", "customer": "Bo"}]
    }
    table = pa.table(
        {
            "id": ["a", "b"],
            "text": [
                "Author: R. Adeyemi\nSite: Leeds\n\nThe site was down.",
                "Author: S. Larsen\nSite: Porto\n\nAll fine.",
            ],
            "team": ["x", "y"],
        }
    )
    corpus = local_corpus(table)
    assert parse(corpus) == [
        {"team": "x", "author": "R. Adeyemi", "site": "Leeds", "text": "The site was down."},
        {"team": "y", "author": "S. Larsen", "site": "Porto", "text": "All fine."},
    ]
    one_file = local_corpus(pa.table({"id": ["f"], "text": [PIPE]}))
    assert parse(one_file) == EXPECTED_PIPE  # a corpus of one document: its lines


def test_a_document_with_a_title_line_and_no_header_keeps_its_text():
    doc = "Ticket 00001\nFrom: user 9041\nDate: 2026-03-20\n\nCan I pick it up?\n\nThanks"
    assert document_record(doc, {}, "t/1.txt") == {
        "title": "Ticket 00001",
        "from": "user 9041",
        "date": "2026-03-20",
        "source": "t/1.txt",
        "text": "Can I pick it up?\n\nThanks",
    }
    assert document_record("Just a note: nothing here.", {})["text"] == "Just a note: nothing here."


def test_the_first_turn_names_the_fields_with_a_few_values():
    text = describe(record_lists(PIPE))
    assert text.startswith("Records found: 3 records, fields: date (2 values, e.g. '2026-03-05'")
    assert "user (2 values, e.g. '4997', '1022')" in text and "text (all different" in text
    two = describe(record_lists({"a": "x: 1\ny: 2\n\nx: 3\ny: 4", "b": json.dumps([{"k": "v"}])}))
    assert "`a`: 2 records, fields: x" in two and "`b`: 1 records, fields: k" in two
