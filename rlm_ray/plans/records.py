"""Records with fields: any context as lists of records (dicts of str) whose fields have names.

    record_lists(context)   {"records": [...]} , or one list per value of a dict context
    parse(value)            a str, a list or a corpus as records
    describe(lists)         the first turn's line: the fields found, with a few values each

What is read as what (no regex is asked of the model; the formats are found here):
- a JSON array of objects, or JSON lines: each object a record, its keys the fields;
- blocks of `key: value` lines separated by blank lines: each block a record;
- `key=value` log lines (logfmt): each line a record;
- delimited lines (tab, `|`, `;` or `,` as CSV), with a header line or without one: without
  one, a column is named for what it holds: `date` / `time`, the word every value starts with
  ("user 4997" is the field `user` with the value "4997"), `text` for the longest, `number`,
  `name`, then `field3`...;
- a list: its dicts as they are, its str items each as a line (or a block) of the above;
- a corpus: each document a record: its metadata columns, the `key: value` lines it opens
  with, its `source`, and the rest as `text` (a corpus of one document: that document's text).
Anything else is one record per line with the one field `text`. Pure: no Ray, no pyarrow.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

Record = dict[str, str]
DEFAULT_LIST = "records"
MAX_RECORDS_DESCRIBED = 2_000  # a corpus's first documents are enough to name its fields
_KEY_LINE = re.compile(r"^\s*([A-Za-z][\w .-]{0,30}?)\s*:\s+(.*)$")
_LOGFMT = re.compile(r'([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)')
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?Z?)?$")
_TIME = re.compile(r"^\d{1,2}:\d{2}(?::\d{2})?$")
_NUMBER = re.compile(r"^-?\d+(?:[.,]\d+)?$")
_PREFIXED = re.compile(r"^([A-Za-z]+)[ #:=]+(\S.*)$")
_HEADER_CELL = re.compile(r"^[A-Za-z_][A-Za-z_ .-]{0,30}$")  # a name: no digits
_DELIMITERS = ("\t", "|", ";", ",")


def record_lists(context: Any) -> dict[str, list[Record]]:
    """The record lists of a context: one per value of a dict context that holds records (by
    key), else the context itself as "records"."""
    if isinstance(context, dict):
        lists = {
            str(key): parse(value)
            for key, value in context.items()
            if isinstance(value, (str, list, tuple)) or _is_corpus(value)
        }
        if lists:
            return lists
        return {DEFAULT_LIST: [_record(context)]}
    return {DEFAULT_LIST: parse(context)}


def parse(value: Any, limit: int | None = None) -> list[Record]:
    """`value` (a str, a list or tuple, a corpus view) as records; at most `limit` of them."""
    if _is_corpus(value):
        return _corpus_records(value, limit)
    if isinstance(value, str):
        return parse_text(value)[:limit]
    if isinstance(value, (list, tuple)):
        return _list_records(value[:limit] if limit else value)
    if isinstance(value, dict):
        return [_record(value)]
    raise TypeError(f"records are read from a str, a list or a corpus, got {type(value).__name__}")


def fields(records: Sequence[Record]) -> list[str]:
    """The field names of `records`, in the order they first appear."""
    return list(dict.fromkeys(name for r in records for name in r))


def values(records: Sequence[Record], field: str) -> Counter:
    return Counter(r[field] for r in records if r.get(field, "") != "")


# -- text -----------------------------------------------------------------------------------------
def parse_text(text: str) -> list[Record]:
    """A text's records, in the first format that fits it (the module's docstring)."""
    stripped = text.strip()
    if not stripped:
        return []
    for reader in (_json_records, _block_records, _logfmt_records, _delimited_records):
        found = reader(stripped)
        if found is not None:
            return found
    return [{"text": line.strip()} for line in stripped.splitlines() if line.strip()]


def _json_records(text: str) -> list[Record] | None:
    if text[0] == "[":
        try:
            document = json.loads(text)
        except ValueError:
            return None
        if isinstance(document, list) and document and all(isinstance(x, dict) for x in document):
            return [_record(x) for x in document]
        return None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines[0].lstrip().startswith("{"):
        return None
    parsed = [_json_object(line) for line in lines]
    if sum(x is not None for x in parsed) < 0.9 * len(lines):
        return None
    return [_record(x) if x is not None else {"text": line} for x, line in zip(parsed, lines)]


def _json_object(line: str) -> dict | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _block_records(text: str) -> list[Record] | None:
    blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
    if len(blocks) < 2:
        return None
    keyed = [sum(bool(_KEY_LINE.match(line)) for line in b.splitlines()) for b in blocks]
    if sum(k >= 2 for k in keyed) < 0.8 * len(blocks):
        return None
    return [_key_values(b.splitlines())[0] for b in blocks]


def _key_values(lines: list[str]) -> tuple[Record, int]:
    """The `key: value` lines `lines` start with, as a record (a line without a key continues
    the value above it), and how many lines were read: up to a blank line or a line that
    continues nothing."""
    record: Record = {}
    last = None
    for n, line in enumerate(lines):
        match = _KEY_LINE.match(line)
        if match:
            last = _field_name(match[1], record)
            record[last] = match[2].strip()
        elif last is not None and line.strip():
            record[last] += " " + line.strip()
        else:
            return record, n
    return record, len(lines)


def _logfmt_records(text: str) -> list[Record] | None:
    lines = [line for line in text.splitlines() if line.strip()]
    pairs = [_LOGFMT.findall(line) for line in lines]
    if sum(len(p) >= 2 for p in pairs) < 0.8 * len(lines):
        return None
    records = []
    for line, found in zip(lines, pairs):
        record = {k: _unquote(v) for k, v in found}
        rest = _LOGFMT.sub("", line).strip()
        if rest:
            record.setdefault("text", rest)
        records.append(record)
    return records


def _unquote(value: str) -> str:
    if value.startswith('"'):
        try:
            return str(json.loads(value))
        except ValueError:
            return value.strip('"')
    return value


def _delimited_records(text: str) -> list[Record] | None:
    lines = [line for line in text.splitlines() if line.strip()]
    for delimiter in _DELIMITERS:
        rows = _split_rows(lines, delimiter)
        width = Counter(len(r) for r in rows).most_common(1)[0][0]
        if width < 2 or sum(len(r) == width for r in rows) < 0.9 * len(rows):
            continue
        rows = [_fit(r, width) for r in rows]
        # commas and semicolons are common in prose: only with a header line
        if delimiter in ",;" and not (len(rows) > 1 and _is_header(rows[0], rows[1:])):
            continue
        return _named_rows(rows)
    return None


def _split_rows(lines: list[str], delimiter: str) -> list[list[str]]:
    if delimiter == ",":
        return [[c.strip() for c in row] for row in csv.reader(io.StringIO("\n".join(lines)))]
    return [[c.strip() for c in line.split(delimiter)] for line in lines]


def _fit(row: list[str], width: int) -> list[str]:
    """A row with extra cells (the delimiter inside the text) joined into its last cell."""
    if len(row) <= width:
        return row + [""] * (width - len(row))
    return row[: width - 1] + [" ".join(row[width - 1 :])]


def _named_rows(rows: list[list[str]]) -> list[Record]:
    if len(rows) > 1 and _is_header(rows[0], rows[1:]):
        names: list[str] = []
        for cell in rows[0]:
            names.append(_field_name(cell, dict.fromkeys(names)))
        return [dict(zip(names, row)) for row in rows[1:]]
    names, cleaned = _column_names([list(column) for column in zip(*rows)])
    return [dict(zip(names, row)) for row in zip(*cleaned)]


def _is_header(first: list[str], rows: list[list[str]]) -> bool:
    """A first row of names: every cell a name (no digits), none of them a value of its column,
    and the data below holds digits where the first row has none, or the names are short (one
    or two words) and distinct."""
    if not all(_HEADER_CELL.match(cell) for cell in first):
        return False
    columns = list(zip(*rows))
    if any(cell in column for cell, column in zip(first, columns)):
        return False
    digits = any(
        sum(any(ch.isdigit() for ch in v) for v in column) >= len(column) / 2 for column in columns
    )
    names = all(len(cell.split()) <= 2 and len(cell) <= 30 for cell in first)
    return digits or (names and len(set(first)) == len(first))


def _column_names(columns: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """Names for the columns of a headerless table, and the columns with a common leading
    word taken off their values ("user 4997" -> field `user`, value "4997")."""
    names: list[str] = [""] * len(columns)
    taken: dict[str, None] = {}
    lengths = [sum(len(v) for v in c) / max(1, len(c)) for c in columns]
    # a common first word names a short field ("customer Ana Lima"), not prose ("The ...")
    words = [_common_word(c) if lengths[i] <= 40 else None for i, c in enumerate(columns)]
    plain = [i for i, c in enumerate(columns) if not words[i] and not _typed(c)]
    text = max(plain or range(len(columns)), key=lengths.__getitem__)
    for i, column in enumerate(columns):
        word = words[i]
        if word:
            names[i] = _field_name(word, taken)
            columns[i] = [_without_word(v) for v in column]
        elif all(_DATE.match(v) for v in column if v):
            names[i] = _field_name("date", taken)
        elif all(_TIME.match(v) for v in column if v):
            names[i] = _field_name("time", taken)
        elif i == text and (lengths[i] > 20 or sum(" " in v for v in column) >= len(column) / 2):
            names[i] = _field_name("text", taken)
        elif all(_NUMBER.match(v) for v in column if v):
            names[i] = _field_name("number", taken)
        taken.update({names[i]: None} if names[i] else {})
    for i, name in enumerate(names):
        if not name:
            names[i] = _field_name("name" if "name" not in taken else f"field{i + 1}", taken)
            taken[names[i]] = None
    return names, columns


def _typed(column: list[str]) -> bool:
    """A column of dates, times or numbers only."""
    return any(all(p.match(v) for v in column if v) for p in (_DATE, _TIME, _NUMBER))


def _without_word(value: str) -> str:
    match = _PREFIXED.match(value)
    return match[2] if match else value


def _common_word(column: list[str]) -> str | None:
    """The word every value of a column starts with ("user" of "user 4997"), if there is one
    and the values go on after it."""
    words: Counter[str] = Counter()
    for value in column:
        match = _PREFIXED.match(value)
        if match:
            words[match[1].lower()] += 1
    if not words:
        return None
    word, count = words.most_common(1)[0]
    return word if count >= 0.9 * len(column) and len(word) > 1 else None


def _field_name(raw: str, taken: dict[str, Any]) -> str:
    """A field name: lower case, words joined by "_"; a second "date" becomes "date_2"."""
    name = re.sub(r"[^a-z0-9]+", "_", raw.strip().lower()).strip("_") or "field"
    unique, n = name, 2
    while unique in taken:
        unique, n = f"{name}_{n}", n + 1
    return unique


# -- lists, dicts, corpora ------------------------------------------------------------------------
def _record(value: dict) -> Record:
    record: Record = {}
    for key, item in value.items():
        text = item if isinstance(item, str) else "" if item is None else json.dumps(item)
        record[_field_name(str(key), record)] = text
    return record


def _list_records(items: Sequence[Any]) -> list[Record]:
    if all(isinstance(item, dict) for item in items):
        return [_record(item) for item in items]
    texts = [str(item) for item in items]
    if any("\n" in t.strip() for t in texts):  # multi-line items: each a block or a text
        return [_key_values(t.strip().splitlines())[0] or {"text": t.strip()} for t in texts]
    return parse_text("\n".join(t.replace("\n", " ") for t in texts))


def _corpus_records(corpus: Any, limit: int | None) -> list[Record]:
    documents = corpus.documents
    if len(documents) == 1:
        return parse_text(str(documents[0]))[:limit]
    records = []
    for n, document in enumerate(documents):
        if limit is not None and n >= limit:
            break
        records.append(document_record(str(document), document.metadata, document.source))
    return records


def document_record(text: str, metadata: dict[str, Any], source: Any = None) -> Record:
    """One document as a record: its metadata, the `key: value` lines it opens with (after
    one title line, if it has one), `source`, and the rest as `text`."""
    record = _record({k: v for k, v in metadata.items() if k != "text"})
    lines = text.strip("\n").splitlines()
    title = lines[0] if lines and not _KEY_LINE.match(lines[0]) else None
    header, used = _key_values(lines[1:] if title is not None else lines)
    if len(header) < 2:  # not a header: the document is all text
        header, used, title = {}, 0, None
    skip = used + (1 if title is not None else 0)
    if title is not None:
        record["title"] = title.strip()
    for key, value in header.items():
        record[_field_name(key, record)] = value
    if source not in (None, ""):
        record.setdefault("source", str(source))
    record["text" if "text" not in record else _field_name("text", record)] = "\n".join(
        lines[skip:]
    ).strip()
    return record


def _is_corpus(value: Any) -> bool:
    return hasattr(type(value), "corpus_shape")


# -- what the first turn says ---------------------------------------------------------------------
def describe(lists: dict[str, list[Record]]) -> str:
    """The record lists found and their fields, each with a few values, for the first turn:
    ``60 records, fields: date (14 values, e.g. '2026-03-04'), user (...), text (...)``."""
    parts = []
    for name, records in lists.items():
        shown = ", ".join(_describe_field(records, f) for f in fields(records)[:12])
        head = (
            f"{len(records):,} records"
            if len(lists) == 1
            else f"`{name}`: {len(records):,} records"
        )
        parts.append(f"{head}, fields: {shown}" if records else f"{head}")
    return "Records found: " + "; ".join(parts) + "."


def _describe_field(records: Sequence[Record], field: str) -> str:
    counts = values(records, field)
    examples = [v if len(v) <= 40 else v[:37] + "..." for v, _ in counts.most_common(2)]
    shown = ", ".join(repr(v) for v in examples)
    many = "all different" if len(counts) == len(records) else f"{len(counts):,} values"
    return f"{field} ({many}, e.g. {shown})" if shown else f"{field} (empty)"
