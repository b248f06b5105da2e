"""`local_corpus`: a `Corpus` whose chunks are held in this process, for tests without Ray.

`local_corpus` cuts a table into chunks here and serves a `Corpus` over them (`LocalChunks`,
which records the chunks read: what tests observe); the runtime's chunks live in the object
store instead (`rlm_ray.corpus.store`). Both are trusted chunk sources (`corpus.trust_source`):
a view refuses any other. pyarrow only; imported by name, not through `rlm_ray.testing`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from rlm_ray.config import check_chunking
from rlm_ray.corpus import Corpus, trust_source
from rlm_ray.corpus.chunks import (
    chunk_bounds,
    chunks_between,
    cut_chunks,
    document_table,
    grep_group,
)


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
        for k in chunks_between(self.bounds, lo, hi):  # one chunk at a time, as `store.grep`'s
            own = self._chunks[k : k + 2]  # tasks over small corpora: it and the next one's head
            b0, b1 = self.bounds[k], self.bounds[k + 1]
            out += grep_group(pattern, flags, own, 1, (b0, b1), starts, lengths, lo, hi, limit)
            if len(out) >= limit:
                break
        return out[:limit]


def local_corpus(table: Any, chunk_by: str = "chars", chunk_size: int = 200_000) -> Corpus:
    """A `Corpus` served from this process: no Ray."""
    check_chunking(chunk_by, chunk_size)
    index, chunks = cut_chunks(document_table(table), chunk_by, chunk_size)
    lengths = index.column("length").to_pylist()
    bounds = chunk_bounds(lengths, chunk_by, chunk_size)
    return Corpus(LocalChunks(index, list(chunks), bounds))
