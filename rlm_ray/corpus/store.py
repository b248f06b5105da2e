"""A corpus in the Ray object store: chunks put once by the driver, read by handle everywhere.

    put_corpus(table)   the driver cuts the table into chunks and puts each one once (Arrow:
                        readers map it zero-copy), plus the document index and a manifest
    RayChunks           the `ChunkSource` of a `Corpus`: pickles as two handles, so a view
                        travels to sub-calls as (handles + offsets), never as text
    grep                one Ray task per group of chunks, with the chunks as top-level
                        arguments (Ray schedules a task near its arguments); only matches return

The driver owns every object (it called `ray.put`), so a loaded corpus lives as long as the
driver holds its `Corpus`, and serves any number of `completion()` calls without a reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import ray

from rlm_ray.config import check_chunking
from rlm_ray.corpus.chunks import (
    GREP_OVERLAP_CHARS,
    chunk_bounds,
    chunk_text,
    chunks_between,
    cut_chunks,
    document_table,
    grep_chunks,
    read_range,
)
from rlm_ray.corpus.view import Corpus, check_read_size, trust_source

MAX_GREP_TASKS = 64
"""A grep over more chunks than this runs as this many tasks, each over consecutive chunks."""

GREP_TASK_CPUS = 1.0  # regex work is CPU-bound; whole CPUs also reuse warm workers
_WAIT_SLICE_S = 0.2


def put_corpus(table: Any, chunk_by: str = "chars", chunk_size: int = 200_000) -> Corpus:
    """Cut a document table into chunks and put each into the object store once."""
    check_chunking(chunk_by, chunk_size)
    index, chunks = cut_chunks(document_table(table), chunk_by, chunk_size)
    bounds = chunk_bounds(index.column("length").to_pylist(), chunk_by, chunk_size)
    chunk_refs = [ray.put(chunk) for chunk in chunks]
    manifest_ref = ray.put((chunk_refs, bounds))
    return Corpus(RayChunks(manifest_ref, ray.put(index), len(chunk_refs), bounds[-1]))


@trust_source
class RayChunks:
    """Chunks in the object store. Pickles as its two handles and two ints; each process reads
    the manifest and the index once (zero-copy) and a chunk only when a view touches it."""

    def __init__(self, manifest_ref: Any, index_ref: Any, num_chunks: int, total: int) -> None:
        self._manifest_ref, self._index_ref = manifest_ref, index_ref
        self._num_chunks, self._total = num_chunks, total
        self._loaded: tuple[list, tuple[int, ...]] | None = None
        self._index: pa.Table | None = None
        self._columns: dict[str, list[int]] = {}

    def __reduce__(self) -> tuple:
        args = (self._manifest_ref, self._index_ref, self._num_chunks, self._total)
        return (RayChunks, args)

    async def aread(self, lo: int, hi: int) -> str:
        """The text of [lo, hi), awaited (for async actors, where `ray.get` would block)."""
        check_read_size(hi - lo)
        if self._loaded is None:
            refs, bounds = await self._manifest_ref
            self._loaded = (refs, tuple(bounds))
        ks = list(chunks_between(self.bounds, lo, hi))
        tables = await asyncio.gather(*self.refs(ks))
        return read_range(self.bounds, ks, tables, lo, hi)

    def _manifest(self) -> tuple[list, tuple[int, ...]]:
        if self._loaded is None:
            refs, bounds = ray.get(self._manifest_ref)
            self._loaded = (refs, tuple(bounds))
        return self._loaded

    @property
    def bounds(self) -> tuple[int, ...]:
        return self._manifest()[1]

    def refs(self, indices: Sequence[int]) -> list:
        chunk_refs = self._manifest()[0]
        return [chunk_refs[k] for k in indices]

    def tables(self, indices: Sequence[int]) -> list[pa.Table]:
        return ray.get(self.refs(indices)) if indices else []

    def index(self) -> pa.Table:
        if self._index is None:
            self._index = ray.get(self._index_ref)
        return self._index

    def column(self, name: str) -> list[int]:
        if name not in self._columns:
            self._columns[name] = self.index().column(name).to_pylist()
        return self._columns[name]

    def grep(self, pattern: str, flags: int, lo: int, hi: int, limit: int) -> list[tuple]:
        ks = list(chunks_between(self.bounds, lo, hi))
        size = max(1, -(-len(ks) // MAX_GREP_TASKS))
        task = _grep_task.options(num_cpus=GREP_TASK_CPUS)
        refs = []
        for g in range(0, len(ks), size):
            group = ks[g : g + size]
            nxt = group[-1] + 1
            overlap = self.refs([nxt]) if nxt < self._num_chunks else []
            b0, b1 = self.bounds[group[0]], self.bounds[group[-1] + 1]
            args = (pattern, flags, b0, b1, lo, hi, limit, len(group))
            refs.append(task.remote(args, self._index_ref, *self.refs(group), *overlap))
        return [m for found in _get_all(refs) for m in found]

    def __repr__(self) -> str:
        return f"<corpus chunks: {self._num_chunks} in the object store, {self._total:,} chars>"


def _grep_group(args: tuple, index: pa.Table, *tables: pa.Table) -> list[tuple]:
    pattern, flags, b0, b1, lo, hi, limit, own = args
    texts = [chunk_text(t) for t in tables[:own]]
    texts += [chunk_text(t, 0, GREP_OVERLAP_CHARS) for t in tables[own:]]
    starts = index.column("start").to_pylist()
    lengths = index.column("length").to_pylist()
    return grep_chunks(pattern, flags, texts, b0, b1, starts, lengths, lo, hi, limit)


_grep_task: Any = ray.remote(_grep_group)


def corpus_id(view: Corpus) -> str:
    """The object-store id of the corpus a view reads (its manifest), for traces."""
    source = view._source
    return source._manifest_ref.hex() if isinstance(source, RayChunks) else ""


async def render(prompt: str | list) -> str:
    """The text of a prompt made by `corpus.prompt_parts`, its views read by awaiting their
    chunks (in a gateway: an async actor)."""
    if isinstance(prompt, str):
        return prompt
    texts = []
    for part in prompt:
        if isinstance(part, Corpus) and isinstance(part._source, RayChunks):
            texts.append(await part._source.aread(part._start, part._stop))
        else:
            texts.append(str(part))
    return "".join(texts)


def _get_all(refs: list) -> list:
    """`ray.get` in short slices, so a cell timeout can land; on any interruption the grep
    tasks are killed (a runaway regex must not outlive its cell)."""
    try:
        waiting = list(refs)
        while waiting:
            _, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=_WAIT_SLICE_S)
        return ray.get(refs)
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
