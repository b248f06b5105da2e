"""`Corpus`: the view of a corpus that model code sees as `context`.

The corpus text is the documents joined by a blank line; every offset below is a character
offset into that text. The driver cuts it into chunks (`rlm_ray.corpus.chunks`) and puts each chunk
into the object store once (`rlm_ray.corpus.store`); a `ChunkSource` serves them back.

`Corpus` is a view over a range of the text. It behaves like text where that is cheap and like a
list of documents where text would not be: `len()` counts characters, indexing and slicing go by
character (a slice is another view, nothing is read), iteration yields documents, `.documents`
indexes them, `.chunks()` lists the stored chunks, `str()` reads the range, `.split()` and the
other `str` methods read it first, `.grep()` searches the whole range without reading it here.
Only the chunks a range touches are ever fetched, and only the range is turned into a Python str.

No Ray here: `store` holds the Ray glue; `rlm_ray.testing.local_corpus` serves tests without Ray.

subtle: a view's fields (`_source`, `_start`, `_stop`, a document's `_doc`) are behind ``_``
names because model code holds views and the sandbox refuses every ``_`` name; the corpus
package's own modules (`prompt_parts`, `records`, `store`) read them by design.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from rlm_ray.corpus.chunks import (
    chunks_between,
    read_range,
)

MAX_MATERIALISE_CHARS = 50_000_000
"""The most characters one view turns into a str at once; larger reads raise a clear error."""

_STR_METHODS = frozenset(
    "capitalize casefold center count endswith expandtabs find index isalnum isalpha isascii"
    " isdecimal isdigit isidentifier islower isnumeric isprintable isspace istitle isupper"
    " join ljust lower lstrip partition removeprefix removesuffix replace rfind rindex rjust"
    " rpartition rsplit rstrip splitlines startswith strip swapcase title translate upper"
    " zfill".split()
)  # not `format`/`format_map`: their field syntax walks attributes (a sandbox escape)


class Match(NamedTuple):
    """One `grep` match: the document index, the match's place in it and in the corpus text."""

    doc: int
    start: int
    end: int
    offset: int
    text: str


@dataclass(frozen=True)
class CorpusShape:
    """What the system prompt tells the model about a corpus (or a view of one)."""

    documents: int
    total_chars: int
    chunk_lengths: tuple[int, ...]
    document_lengths: tuple[int, ...]  # the first few only
    min_document_chars: int
    max_document_chars: int
    whole: bool  # the view covers the whole corpus


class ChunkSource(Protocol):
    """Serves a corpus's chunks and document index (locally, or from the Ray object store)."""

    @property
    def bounds(self) -> tuple[int, ...]:
        """Chunk k covers [bounds[k], bounds[k + 1]) of the corpus text."""

    def tables(self, indices: Sequence[int]) -> list[pa.Table]: ...

    def index(self) -> pa.Table: ...

    def column(self, name: str) -> list[int]:
        """An int column of the index as a list, cached (views stay a few ints each)."""

    def grep(self, pattern: str, flags: int, lo: int, hi: int, limit: int) -> list[tuple]: ...


_TRUSTED_SOURCES: set[type] = set()


def trust_source(cls: type) -> type:
    """Register a chunk source class of the runtime's (views refuse any other source)."""
    _TRUSTED_SOURCES.add(cls)
    return cls


def rebuild_view(view: Corpus) -> Corpus:
    """A fresh view with the same source and range, made from `view`'s fields only (see
    `boundary.plain`); `view` must be exactly a `Corpus` or a `Document`."""
    source, start, stop = view._source, view._start, view._stop
    if type(source) not in _TRUSTED_SOURCES or type(start) is not int or type(stop) is not int:
        raise TypeError("not a corpus view of the runtime's")
    if type(view) is Document:
        return Document(source, view._doc, start, stop)
    return Corpus(source, start, stop)


# -- the view ------------------------------------------------------------------------------------


class Corpus:
    """A view over characters [start, stop) of a corpus; `context` in the REPL.

    Text-like: `len()` (characters), `[i]` (a character), `[a:b]` (a view), `str()`, `+`, `in`,
    `.split()`, `.count()`, ... Document-like: iteration and `.documents` yield `Document`
    views. `.chunks(size=None)` lists chunk views; `.grep(pattern)` searches without reading.
    """

    __slots__ = ("_source", "_start", "_stop")

    def __init__(self, source: ChunkSource, start: int = 0, stop: int | None = None) -> None:
        if type(source) not in _TRUSTED_SOURCES:  # `type(context)(fake)` from model code
            raise TypeError("a corpus view can only be made by the runtime")
        total = source.bounds[-1]
        self._source = source
        self._start = max(0, min(start, total))
        self._stop = total if stop is None else max(self._start, min(stop, total))

    # -- text ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._stop - self._start

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            a, b, step = key.indices(len(self))
            if step != 1:
                raise ValueError("corpus slices take no step; use str(view)[::step] on a slice")
            return Corpus(self._source, self._start + a, self._start + max(a, b))
        if isinstance(key, bool) or not isinstance(key, int):
            raise TypeError(f"corpus indices are int or slice, not {type(key).__name__}")
        i = key + len(self) if key < 0 else key
        if not 0 <= i < len(self):
            raise IndexError("corpus index out of range")
        return self._read(self._start + i, self._start + i + 1)

    def __str__(self) -> str:
        return self._read(self._start, self._stop)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __repr__(self) -> str:
        if len(self) <= 10_000:
            return repr(str(self))
        shape = self.corpus_shape()
        return (
            f"<corpus view [{self._start:,}:{self._stop:,}]: {len(self):,} characters, "
            f"{shape.documents:,} documents>"
        )

    def __add__(self, other: Any) -> str:
        return str(self) + _as_text(other)

    def __radd__(self, other: Any) -> str:
        return _as_text(other) + str(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, Corpus)):
            return len(self) == len(other) and str(self) == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))

    def __contains__(self, item: Any) -> bool:
        needle = _as_text(item)
        if len(self) <= MAX_MATERIALISE_CHARS:
            return needle in str(self)
        return bool(self._source.grep(re.escape(needle), 0, self._start, self._stop, 1))

    def __getattr__(self, name: str) -> Any:
        # The other str methods work on the view's text; nothing private, no `format`.
        if name in _STR_METHODS:
            return getattr(str(self), name)
        raise AttributeError(f"'Corpus' object has no attribute {name!r}")

    def split(self, sep: str | None = None, maxsplit: int = -1) -> list[str]:
        """`str.split` of the view's text (read first: split a slice, not a huge corpus)."""
        return str(self).split(sep, maxsplit)

    # -- documents and chunks --------------------------------------------------------------
    def __iter__(self) -> Iterator[Document]:
        return iter(self.documents)

    @property
    def documents(self) -> Documents:
        """The documents this view touches (cut to the view at its two ends)."""
        starts = self._starts()
        first = max(0, bisect.bisect_right(starts, self._start) - 1)
        last = bisect.bisect_left(starts, self._stop) if self._stop > self._start else first
        return Documents(self, first, max(first, last))

    def chunks(self, size: int | None = None) -> list[Corpus]:
        """The stored chunks in this view (cut to it), or pieces of `size` characters."""
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"chunks(size): size must be a positive int, got {size!r}")
            return [self[i : i + size] for i in range(0, len(self), size)]
        bounds = self._source.bounds
        return [
            Corpus(self._source, max(bounds[k], self._start), min(bounds[k + 1], self._stop))
            for k in chunks_between(bounds, self._start, self._stop)
        ]

    def grep(self, pattern: str, flags: int = 0, max_matches: int = 1000) -> list[Match]:
        """Regex matches in this view, in order: `Match(doc, start, end, offset, text)`.

        Runs next to the chunks (in parallel on Ray); a match never spans two documents.
        `doc` indexes `context.documents`, `start`/`end` are offsets in that document,
        `offset` is the match's place in the corpus text (`context[m.offset:...]`).
        """
        if not isinstance(pattern, str):
            raise TypeError(f"grep: pattern must be a str, got {type(pattern).__name__}")
        re.compile(pattern, flags)  # a bad pattern fails here, as the model's own error
        if isinstance(max_matches, bool) or not isinstance(max_matches, int) or max_matches < 1:
            raise ValueError(f"grep: max_matches must be a positive int, got {max_matches!r}")
        found = self._source.grep(pattern, flags, self._start, self._stop, max_matches)
        starts = self._starts()
        matches = []
        for a, b, text in sorted(found)[:max_matches]:
            doc = bisect.bisect_right(starts, a) - 1
            matches.append(Match(doc, a - starts[doc], b - starts[doc], a - self._start, text))
        return matches

    def corpus_shape(self) -> CorpusShape:
        """Documents, characters, chunk lengths: what the system prompt states."""
        docs = self.documents
        inner = self._source.index().column("length").slice(docs._first + 1, max(0, len(docs) - 2))
        ends = [len(docs[0]), len(docs[-1])]  # the two ends may be cut by the view
        return CorpusShape(
            documents=len(docs),
            total_chars=len(self),
            chunk_lengths=tuple(len(c) for c in self.chunks()),
            document_lengths=tuple(len(d) for d in itertools.islice(docs, 20)),
            min_document_chars=min(ends + ([pc.min(inner).as_py()] if len(inner) else [])),
            max_document_chars=max(ends + ([pc.max(inner).as_py()] if len(inner) else [])),
            whole=len(self) == self._source.bounds[-1],
        )

    # -- internals -------------------------------------------------------------------------
    def _starts(self) -> list[int]:
        return self._source.column("start")

    def _read(self, lo: int, hi: int) -> str:
        check_read_size(hi - lo)
        ks = list(chunks_between(self._source.bounds, lo, hi))
        return read_range(self._source.bounds, ks, self._source.tables(ks), lo, hi)


def check_read_size(chars: int) -> None:
    if chars > MAX_MATERIALISE_CHARS:
        raise MemoryError(
            f"this corpus range is {chars:,} characters; at most {MAX_MATERIALISE_CHARS:,} are "
            "read into a str at once. Slice it, use .chunks() or .documents, .grep(), or pass "
            "the slice itself to llm_query"
        )


class Document(Corpus):
    """One document (cut to the view it came from): text-like, with `.id`, `.source` and
    `.metadata`; `.doc` is its place in `context.documents`."""

    __slots__ = ("_doc",)

    def __init__(self, source: ChunkSource, doc: int, start: int, stop: int) -> None:
        super().__init__(source, start, stop)
        self._doc = doc

    @property
    def doc(self) -> int:
        return self._doc

    @property
    def id(self) -> Any:
        return self._row().get("id")

    @property
    def source(self) -> Any:
        return self._row().get("source")

    @property
    def metadata(self) -> dict[str, Any]:
        row = self._row()
        return {k: v for k, v in row.items() if k not in ("id", "source", "start", "length")}

    def _row(self) -> dict[str, Any]:
        return self._source.index().slice(self._doc, 1).to_pylist()[0]

    def __repr__(self) -> str:
        return f"<document {self._doc} ({len(self):,} characters)>"


class Documents:
    """The documents of a view: `len()`, `[i]` (a `Document`), `[a:b]` (a view over them)."""

    __slots__ = ("_view", "_first", "_stop")

    def __init__(self, view: Corpus, first: int, stop: int) -> None:
        self._view, self._first, self._stop = view, first, stop

    def __len__(self) -> int:
        return self._stop - self._first

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            a, b, step = key.indices(len(self))
            if step != 1:
                raise ValueError("document slices take no step")
            if b <= a:
                return Corpus(self._view._source, self._view._start, self._view._start)
            return self._span(self._first + a, self._first + b - 1)
        if isinstance(key, bool) or not isinstance(key, int):
            raise TypeError(f"document indices are int or slice, not {type(key).__name__}")
        i = key + len(self) if key < 0 else key
        if not 0 <= i < len(self):
            raise IndexError("document index out of range")
        return self._document(self._first + i)

    def __iter__(self) -> Iterator[Document]:
        for i in range(self._first, self._stop):
            yield self._document(i)

    def __repr__(self) -> str:
        return f"<{len(self):,} documents>"

    def _document(self, i: int) -> Document:
        a, b = self._clip(i)
        return Document(self._view._source, i, a, b)

    def _span(self, first: int, last: int) -> Corpus:
        return Corpus(self._view._source, self._clip(first)[0], self._clip(last)[1])

    def _clip(self, i: int) -> tuple[int, int]:
        source = self._view._source
        start = source.column("start")[i]
        length = source.column("length")[i]
        return max(start, self._view._start), min(start + length, self._view._stop)


def _as_text(value: Any) -> str:
    if isinstance(value, (str, Corpus)):
        return str(value)
    raise TypeError(f"expected str or a corpus view, got {type(value).__name__}")
