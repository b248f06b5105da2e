"""Chunks of a corpus: a document table cut into chunk tables, and grep over chunk groups.

The corpus text is the documents joined by a blank line (`SEPARATOR`); every offset here is a
character offset into that text. `cut_chunks` cuts it by characters, estimated tokens or whole
documents into one-row Arrow tables; `grep_chunks` is the pure function a grep task runs over a
group of consecutive chunks. pyarrow only: `view` builds the view on top, `store` the Ray glue.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rlm_ray.config import TOKEN_CHARS
from rlm_ray.errors import ConfigError

SEPARATOR = "\n\n"
"""Between two documents in the corpus text."""


GREP_OVERLAP_CHARS = 10_000
"""A match that crosses a chunk boundary is found when it is at most this long past it."""

MAX_MATCH_TEXT = 1_000
"""`Match.text` holds at most this many characters of the match (`end` is its true end)."""

TEXT_FIELDS = ("text", "content", "body", "document")
"""Columns tried, in order, as the document text of a table."""


# -- the driver's side: a document table into chunks ----------------------------------------------


def document_table(table: Any) -> pa.Table:
    """Check a table for a text column and documents; the index columns the corpus keeps."""
    if not isinstance(table, pa.Table):
        raise ConfigError(f"a corpus is made from a pyarrow.Table, got {type(table).__name__}")
    field = next((f for f in TEXT_FIELDS if f in table.column_names), None)
    if field is None:
        raise ConfigError(
            f"the table has no text column (tried {list(TEXT_FIELDS)}); "
            f"its columns are {table.column_names}"
        )
    if table.num_rows == 0:
        raise ConfigError("the corpus is empty: the table has no rows (no documents)")
    text = table.column(field)
    if not pa.types.is_string(text.type) and not pa.types.is_large_string(text.type):
        raise ConfigError(f"the text column `{field}` holds {text.type}, not strings")
    text = pc.fill_null(text.cast(pa.large_string()), "")
    lengths = pc.utf8_length(text).cast(pa.int64())
    if pc.sum(lengths).as_py() == 0:
        raise ConfigError(f"the corpus is empty: its {table.num_rows} documents have no text")
    rest = table.drop_columns([field])
    clash = {n: f"meta_{n}" for n in ("start", "length") if n in rest.column_names}
    if clash:  # the index's own columns
        rest = rest.rename_columns([clash.get(n, n) for n in rest.column_names])
    if "id" not in rest.column_names:
        rest = rest.append_column("id", pa.array(range(table.num_rows), pa.int64()))
    return rest.append_column("text", text).append_column("length", lengths)


def chunk_bounds(lengths: Sequence[int], chunk_by: str, chunk_size: int) -> list[int]:
    """Where chunks start in the corpus text, plus its end; see `RLMConfig.chunk_by`."""
    starts = document_starts(lengths)
    total = starts[-1] + lengths[-1]
    if chunk_by == "documents":
        bounds = [starts[i] for i in range(0, len(lengths), chunk_size)]
    else:
        step = chunk_size * (TOKEN_CHARS if chunk_by == "tokens" else 1)
        bounds = list(range(0, total, step))
    return [*bounds, total]


def document_starts(lengths: Sequence[int]) -> list[int]:
    starts, at = [], 0
    for n in lengths:
        starts.append(at)
        at += n + len(SEPARATOR)
    return starts


def cut_chunks(docs: pa.Table, chunk_by: str, chunk_size: int) -> tuple[pa.Table, Iterator]:
    """The document index (no text; `start` in the corpus text) and the chunk tables, made one
    at a time (so the driver holds one chunk's copy at once while it puts them)."""
    lengths = docs.column("length").to_pylist()
    starts = document_starts(lengths)
    index = docs.drop_columns(["text"]).append_column("start", pa.array(starts, pa.int64()))
    bounds = chunk_bounds(lengths, chunk_by, chunk_size)
    return index, chunk_tables(docs.column("text"), starts, bounds)


def chunk_tables(
    texts: Any, starts: Sequence[int], bounds: Sequence[int], more_after: bool = False
) -> Iterator[pa.Table]:
    """The chunks [bounds[k], bounds[k + 1]) cut from consecutive documents `texts` that start
    at `starts` in the corpus text and cover those bounds; `more_after`: documents follow them
    (so a separator follows the last one)."""
    for a, b in zip(bounds, bounds[1:]):
        first = bisect.bisect_right(starts, a) - 1
        last = bisect.bisect_left(starts, b)
        joined = SEPARATOR.join(texts.slice(first, last - first).to_pylist())
        if last < len(starts) or more_after:  # the chunk may end inside the separator
            joined += SEPARATOR
        piece = joined[a - starts[first] : b - starts[first]]
        yield pa.table({"text": pa.array([piece], pa.large_string())})


# -- grep: a pure function of one chunk group, run next to the chunks ------------------------------


def grep_chunks(
    pattern: str,
    flags: int,
    texts: Sequence[str],
    text_start: int,
    own_end: int,
    doc_starts: Sequence[int],
    doc_lengths: Sequence[int],
    lo: int,
    hi: int,
    limit: int,
) -> list[tuple[int, int, str]]:
    """Matches (global start, end, text) of `pattern` starting in [text_start, own_end).

    `texts` are consecutive chunks from `text_start`, the last one possibly a head of the next
    chunk (the overlap). Documents are searched one by one, so a match never spans two, and `^`
    and `$` match at a document's start and end; only [lo, hi) of the corpus text is searched.
    """
    regex = re.compile(pattern, flags)
    text = "".join(texts)
    end = text_start + len(text)
    out: list[tuple[int, int, str]] = []
    first = max(0, bisect.bisect_right(doc_starts, max(lo, text_start)) - 1)
    for i in range(first, len(doc_starts)):
        d0, d1 = doc_starts[i], doc_starts[i] + doc_lengths[i]
        a, b = max(d0, text_start, lo), min(d1, end, hi)
        if a >= own_end or a >= hi:
            break
        if a > b:
            continue
        for m in regex.finditer(text[a - text_start : b - text_start]):
            if a + m.start() >= own_end:
                break
            out.append((a + m.start(), a + m.end(), m.group()[:MAX_MATCH_TEXT]))
            if len(out) >= limit:
                return out
    return out


def grep_group(
    pattern: str,
    flags: int,
    tables: Sequence[pa.Table],
    own: int,
    own_span: tuple[int, int],
    doc_starts: Sequence[int],
    doc_lengths: Sequence[int],
    lo: int,
    hi: int,
    limit: int,
) -> list[tuple[int, int, str]]:
    """`grep_chunks` over consecutive chunk tables covering `own_span` of the corpus text: the
    first `own` are searched whole, the one after them (if given) only for matches that cross
    into it (its first `GREP_OVERLAP_CHARS`)."""
    texts = [chunk_text(t) for t in tables[:own]]
    texts += [chunk_text(t, 0, GREP_OVERLAP_CHARS) for t in tables[own:]]
    start, end = own_span
    return grep_chunks(pattern, flags, texts, start, end, doc_starts, doc_lengths, lo, hi, limit)


def chunk_text(table: pa.Table, start: int = 0, stop: int | None = None) -> str:
    """The text of a chunk table, or of [start, stop) of it: only that slice becomes a str."""
    column = table.column("text")
    if start == 0 and stop is None:
        return column[0].as_py()
    return pc.utf8_slice_codeunits(column, start=start, stop=stop)[0].as_py()


def chunks_between(bounds: Sequence[int], lo: int, hi: int) -> range:
    """The chunks that [lo, hi) touches."""
    if hi <= lo:
        return range(0)
    first = bisect.bisect_right(bounds, lo) - 1
    last = bisect.bisect_left(bounds, hi)
    return range(max(first, 0), min(last, len(bounds) - 1))


def read_range(
    bounds: Sequence[int], ks: Sequence[int], tables: Sequence[pa.Table], lo: int, hi: int
) -> str:
    """The text of [lo, hi) from the chunk tables `ks` it touches: only that slice is a str."""
    parts = [
        chunk_text(t, max(lo - bounds[k], 0), min(hi, bounds[k + 1]) - bounds[k])
        for k, t in zip(ks, tables)
    ]
    return "".join(parts)
