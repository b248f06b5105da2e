"""Values a query names literally (an id, a date, a quoted phrase) that only some records hold:
a small root model is told to keep those records before it asks a model about each.

"How many messages from user 2013 are complaints?" over 300 records needs the labels of the 14
records of user 2013, not of all 300; a 1.5B root model labels all 300 (minutes on a CPU) unless
the first turn tells it, with the line of code that does it for the context's type (`hint`).

The values are the query's tokens holding a digit (with the word before them when the records
hold that phrase, "user 2013"; a bare number of one or two digits is a quantity, not a value)
and its quoted phrases; a value is named only if some records hold it but not most. A query
that may mean other records than those holding the value ("or", "not", "before", ... in its
sentence) gets no hint, and only one value is named, so the line never keeps too few records.
Records are a str's lines or a list's str items; a corpus is not read for this.
"""

from __future__ import annotations

import re
from typing import Any

MIN_RECORDS = 20  # fewer records are cheap to ask about one by one
MAX_SCAN_CHARS = 20_000_000  # the scan is linear in the context; past this, no hint
MAX_QUERY_CHARS = 2_000
"""How much of a query is read for routing (here and `prompts.approach`). subtle: a child's
query is its parent model's text, read outside any clock: each term is looked for in the
query's sentences and in every record, so the work grows with terms x length."""
MAX_TERMS = 10  # values tried, most specific first: each costs a scan of the records
# words after which the records holding a value may not be the ones the query is about
_WIDENING = re.compile(
    r"\b(or|not|no|nor|except|excluding|other|besides|without|before|after|since|until|"
    r"between|than|outside|beyond)\b|n't\b",
    re.IGNORECASE,
)

_QUOTED = re.compile(r"(?<!\w)[\"']([^\"'\n]{2,60})[\"'](?!\w)")
_TOKEN = re.compile(r"\S+")
_SENTENCE = re.compile(r"(?<=[.?!])\s+")
_STRIP = ".,;:!?()[]{}<>\"'`"


def records_of(context: Any) -> list[str] | None:
    """The context as records (a str's lines, a list's items) if it is all text, else None."""
    if isinstance(context, str):
        return context.splitlines() if len(context) <= MAX_SCAN_CHARS else None
    if isinstance(context, (list, tuple)) and all(isinstance(r, str) for r in context):
        return list(context) if sum(map(len, context)) <= MAX_SCAN_CHARS else None
    return None


def literal_terms(query: str) -> list[str]:
    """The query's quoted phrases, then its tokens holding a digit, each with the word before it
    as a second candidate ("user 2013" before "2013"): most specific first, no repeats."""
    query = query[:MAX_QUERY_CHARS]
    terms = [m.group(1).strip() for m in _QUOTED.finditer(query)]
    words = [w.strip(_STRIP) for w in _TOKEN.findall(query)]
    for i, word in enumerate(words):
        if word.endswith("'s"):
            word = word[:-2]
        if not any(c.isdigit() for c in word):
            continue
        if i > 0 and words[i - 1].isalpha():
            terms.append(f"{words[i - 1]} {word}")
        if not (word.isdigit() and len(word) < 3):
            terms.append(word)
    return list(dict.fromkeys(t for t in terms if t))


def narrowing_term(query: str, records: list[str]) -> tuple[str, int] | None:
    """The first value of `query` (most specific first) that some records hold but at most half
    of them, with how many hold it; None if there is none or the query may mean others."""
    if len(records) < MIN_RECORDS:
        return None
    query = query[:MAX_QUERY_CHARS]
    sentences = _SENTENCE.split(query)
    for term in literal_terms(query)[:MAX_TERMS]:
        if any(_WIDENING.search(s) for s in sentences if term in s):
            return None
        count = sum(term in r for r in records)
        if 0 < count <= len(records) // 2:
            return term, count
    return None


def hint(query: str, context: Any) -> str:
    """A sentence naming the value the query names that only some records hold, with the line
    of code that keeps those records; "" when there is none (or the context is not records)."""
    records = records_of(context)
    found = None if records is None else narrowing_term(query, records)
    if records is None or found is None:
        return ""
    term, count = found
    source = "context.splitlines()" if isinstance(context, str) else "context"
    return hint_text(term, count, len(records), source)


def hint_text(term: str, count: int, total: int, source: str) -> str:
    """The hint's sentence (also the prompt's worked example's, so the two read alike)."""
    return (
        f"The query names {term!r}: {count} of {total} records hold it. Keep only those "
        f"records first, then work on them: records = [r for r in {source} if {term!r} in r]\n"
    )
