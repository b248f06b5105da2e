"""`LocalChunks`: a corpus's chunks held in this process, for tests and use without Ray.

`local_corpus` cuts a table into chunks here and serves a `Corpus` over them; the runtime's
chunks live in the object store instead (`store.py`). Both are trusted chunk sources
(`view.trust_source`): a view refuses any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from rlm_ray.corpus.chunks import (
    GREP_OVERLAP_CHARS,
    chunk_bounds,
    chunk_text,
    chunks_between,
    cut_chunks,
    document_table,
    grep_chunks,
)
from rlm_ray.corpus.view import Corpus, trust_source


@trust_source
class LocalChunks:
    """Chunks held in this process (tests, and use without Ray)."""

    def __init__(self, index: pa.Table, chunks: list[pa.Table], bounds: Sequence[int]) -> None:
        self._index, self._chunks, self.bounds = index, chunks, tuple(bounds)
        self.fetched: list[int] = []  # chunk indices read, in order: what tests observe
        self._columns: dict[str, list[int]] = {}

    def tables(self, indices: Sequence[int]) -> list[pa.Table]:
        self.fetched.extend(indices)
        return [self._chunks[k] for k in indices]

    def index(self) -> pa.Table:
        return self._index

    def column(self, name: str) -> list[int]:
        if name not in self._columns:
            self._columns[name] = self._index.column(name).to_pylist()
        return self._columns[name]

    def grep(self, pattern: str, flags: int, lo: int, hi: int, limit: int) -> list[tuple]:
        starts, lengths = self.column("start"), self.column("length")
        out: list[tuple] = []
        for k in chunks_between(self.bounds, lo, hi):
            texts = [chunk_text(self._chunks[k])]
            if k + 1 < len(self._chunks):
                texts.append(chunk_text(self._chunks[k + 1], 0, GREP_OVERLAP_CHARS))
            b0, b1 = self.bounds[k], self.bounds[k + 1]
            out += grep_chunks(pattern, flags, texts, b0, b1, starts, lengths, lo, hi, limit)
            if len(out) >= limit:
                break
        return out[:limit]


def local_corpus(table: Any, chunk_by: str = "chars", chunk_size: int = 200_000) -> Corpus:
    """A `Corpus` served from this process: no Ray (tests, notebooks, small inputs)."""
    from rlm_ray.config import check_chunking

    check_chunking(chunk_by, chunk_size)
    index, chunks = cut_chunks(document_table(table), chunk_by, chunk_size)
    lengths = index.column("length").to_pylist()
    bounds = chunk_bounds(lengths, chunk_by, chunk_size)
    return Corpus(LocalChunks(index, list(chunks), bounds))
