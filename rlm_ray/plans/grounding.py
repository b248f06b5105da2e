"""What a plan's slots may hold, read from the records and the query, so that the schema can
leave the model no wrong choice to make.

On domains nobody tuned on, the 1.5B model's plans failed in their slots, not their shapes'
logic (docs/plans.md, the first held-out run): a condition read the key field (`host`) instead
of the message text; a value seen in the first turn's preview (`reviewer == 'eva_s'`, `stars
== '1'`) became an exact test the query never asked for; a condition was a record's text
copied whole. Each of those is a choice the records and the query already decide:

    text_fields(records)          the fields of free text: what a condition of meaning reads
    value_fields(records)         the fields of few, short values: what groups and exact tests use
    named_values(records, query)  {field: [values the query names]}: the only exact tests allowed
    query_words(query)            the runs of the query's words: what a condition may say
    copied_text(text, records)    a long slot value that is a record's text, not the query's
    key_fields(records, other)    the fields of `other` whose values `records` name: a join's key
    field_named(name, records)    the field of values a kind of name is ("host" -> `host`)
    names_two_dates(records, q)   whether the query names two dates of one field (a change)

The schema (plans/schema.py) turns these into enums. Pure: no Ray, no model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rlm_ray.plans.records import Record, fields, values

FREE_TEXT_MIN_CHARS = 15  # a field whose values average fewer characters is a value, not text
FREE_TEXT_MIN_WORDS = 3  # nor one of fewer words: a file's path, an id, a timestamp
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
_MONTHS = "january february march april may june july august september october november december"


def text_fields(records: Sequence[Record]) -> list[str]:
    """The fields of free text (most values different and long), in record order."""
    return [f for f in fields(records) if _is_free_text(records, f)]


def value_fields(records: Sequence[Record]) -> list[str]:
    """The fields that are not free text (a user, a date, a site), in record order."""
    return [f for f in fields(records) if not _is_free_text(records, f)]


def named_values(records: Sequence[Record], query: str) -> dict[str, list[str]]:
    """For each field of values, its values that `query` names: the value as a whole word
    in any case ("user 4997" names '4997'), or a date as "March 4" / "4 March" / "2026-03-04".
    Fields with none are left out."""
    folded = query.casefold()
    named: dict[str, list[str]] = {}
    for field in value_fields(records):
        hits = [v for v in values(records, field) if _names(folded, v)]
        if hits:
            named[field] = sorted(hits)
    return named


def names_two_dates(records: Sequence[Record], query: str) -> bool:
    """True when `query` names two or more dates that one field of the records holds: the
    two-condition question is then a change between those dates, not two kinds of record."""
    return any(
        len([v for v in found if _DATE.match(v)]) >= 2
        for found in named_values(records, query).values()
    )


MAX_RUN_WORDS = 8  # a condition longer than this is a clause, not a condition
MAX_QUERY_WORDS = 60  # spans of a longer query's first words only (the schema's size)


def query_words(query: str) -> list[str]:
    """Every run of 1 to `MAX_RUN_WORDS` consecutive words of the query (punctuation at the
    ends dropped), in order of first appearance: the only conditions a plan may state, so that
    a condition is in the query's words, never a record's text copied from the preview."""
    words = [w.strip(".,;:!?\"'()[]") for w in query.split()[:MAX_QUERY_WORDS]]
    runs: dict[str, None] = {}
    for start in range(len(words)):
        for end in range(start + 1, min(start + MAX_RUN_WORDS, len(words)) + 1):
            run = " ".join(w for w in words[start:end] if w)
            if run:
                runs[run] = None
    return list(runs)


def copied_text(text: str, records: Sequence[Record], query: str, min_words: int = 4) -> bool:
    """True when `text` (a condition, a label) is a record's own text of `min_words` words or
    more that the query does not contain: a value copied from the preview, not the query's."""
    folded = " ".join(text.casefold().split())
    if len(folded.split()) < min_words or folded in " ".join(query.casefold().split()):
        return False
    return any(
        folded in " ".join(r.get(f, "").casefold().split())
        for f in text_fields(records) or fields(records)
        for r in records
    )


MAX_RECORDS_MATCHED = 2_000  # a join's key is found on the first records of each list
_TOKEN = re.compile(r"[\w-]+(?:\.[\w-]+)*")  # an id: "A-1042", "web-01", "db.eu.example"


def key_fields(records: Sequence[Record], other: Sequence[Record]) -> list[str]:
    """The fields of `other` whose values the `records` name (in any field: a logfmt line's
    `host=`, a message's text), best first: the join key a plan may use. A field qualifies when
    it is named by at least half as many records as the best one; none named: every field."""
    texts = [record_words(r) for r in records[:MAX_RECORDS_MATCHED]]
    named: dict[str, int] = {}
    for field in fields(other[:MAX_RECORDS_MATCHED]):
        keys = [k for k in values(other[:MAX_RECORDS_MATCHED], field) if k.strip()]
        hits = sum(1 for words, text in texts if any(names_key(k, words, text) for k in keys))
        if hits:
            named[field] = hits
    if not named:
        return fields(other)
    best = max(named.values())
    return sorted((f for f, n in named.items() if 2 * n >= best), key=lambda f: -named[f])


def names_key(key: str, words: set[str], text: str) -> bool:
    """True when a record (its `words`: field values and id-like tokens; its `text`: every
    field) names `key`: as a whole value or token, or, for a key of several words, anywhere."""
    return key in words or (" " in key and key in text)


def record_words(record: Record) -> tuple[set[str], str]:
    """What `names_key` reads of a record: its values and their tokens, and its text."""
    text = " ".join(str(v) for v in record.values())
    return {str(v) for v in record.values()} | set(_TOKEN.findall(text)), text


def field_named(name: str, records: Sequence[Record]) -> str | None:
    """The field of values that `name` (a kind of name, from the query) is: the same word,
    in any case, singular or plural ("hosts" -> `host`); None if no field of values is."""
    folded = " ".join(name.casefold().split())
    for field in value_fields(records):
        own = field.casefold().replace("_", " ")
        if folded in (own, own + "s", own + "es"):
            return field
    return None


def _is_free_text(records: Sequence[Record], field: str) -> bool:
    counts = values(records, field)
    if not counts:
        return False
    # subtle: not "more than 10 values": a directory of 8 reports has 8 texts, and a field
    # of few distinct values is kept out by the length tests below
    many = len(counts) > max(1, len(records) // 2)
    total = sum(counts.values())
    chars = sum(len(v) * n for v, n in counts.items()) / total
    words = sum(len(v.split()) * n for v, n in counts.items()) / total
    return many and chars >= FREE_TEXT_MIN_CHARS and words >= FREE_TEXT_MIN_WORDS


def _names(folded_query: str, value: str) -> bool:
    value = value.strip()
    if not value or len(value) > 60:
        return False
    if re.search(rf"(?<!\w){re.escape(value.casefold())}(?!\w)", folded_query):
        return True
    date = _DATE.match(value)
    if date is None:
        return False
    month = _MONTHS.split()[int(date[2]) - 1] if 1 <= int(date[2]) <= 12 else ""
    day = str(int(date[3]))
    forms = (
        rf"{month[:3]}\w*\.?\s+{day}(?:st|nd|rd|th)?",
        rf"{day}(?:st|nd|rd|th)?\s+{month[:3]}\w*",
    )
    return bool(month) and any(re.search(rf"(?<!\w){f}(?!\w)", folded_query) for f in forms)
