"""A corpus in the Ray object store: chunks put once by the driver, read by handle everywhere.

    put_corpus(table)   the driver cuts the table into chunks and puts each one once (Arrow:
                        readers map it zero-copy), plus the document index and a manifest
                        (`cluster.read_on_cluster` makes the same from tasks on the nodes)
    RayChunks           the `ChunkSource` of a `Corpus`: pickles as two handles, so a view
                        travels to sub-calls as (handles + offsets), never as text
    grep                one Ray task per group of chunks, with the chunks as top-level
                        arguments (Ray schedules a task near its arguments); only matches return

The driver owns every object (it called `ray.put`, or submitted the tasks that made them), so a
loaded corpus lives as long as the driver holds its `Corpus`, and serves any number of
`completion()` calls without a reload.

The manifest is (object refs, chunk bounds, object starts): object j holds chunks
object_starts[j] .. object_starts[j + 1] - 1, one row each (None: one chunk per object). Chunks
cut by tasks are packed so no object is small enough for Ray to return it inline to the driver.
"""

from __future__ import annotations

import asyncio
import bisect
import weakref
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import ray

from rlm_ray.config import check_chunking
from rlm_ray.corpus.chunks import (
    chunk_bounds,
    chunks_between,
    cut_chunks,
    document_table,
    grep_group,
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
    return stored_corpus(chunk_refs, bounds, None, index)


def stored_corpus(
    object_refs: list, bounds: Sequence[int], object_starts: Sequence[int] | None, index: pa.Table
) -> Corpus:
    """The `Corpus` of chunks already in the object store (the manifest and index put here)."""
    manifest_ref = ray.put((object_refs, list(bounds), object_starts))
    return Corpus(RayChunks(manifest_ref, ray.put(index), len(bounds) - 1, bounds[-1]))


@trust_source
class RayChunks:
    """Chunks in the object store. Pickles as its two handles and two ints; each process reads
    the manifest and the index once (zero-copy) and a chunk only when a view touches it."""

    def __init__(self, manifest_ref: Any, index_ref: Any, num_chunks: int, total: int) -> None:
        self._manifest_ref, self._index_ref = manifest_ref, index_ref
        self._num_chunks, self._total = num_chunks, total
        self._loaded: _Manifest | None = None
        self._index: pa.Table | None = None
        self._columns: dict[str, list[int]] = {}

    def __reduce__(self) -> tuple:
        args = (self._manifest_ref, self._index_ref, self._num_chunks, self._total)
        return (RayChunks, args)

    async def aread(self, lo: int, hi: int) -> str:
        """The text of [lo, hi), awaited (for async actors, where `ray.get` would block)."""
        check_read_size(hi - lo)
        if self._loaded is None:
            self._loaded = _MANIFESTS.get(self._manifest_ref.hex()) or _remember(
                self._manifest_ref, await self._manifest_ref
            )
        ks = list(chunks_between(self.bounds, lo, hi))
        refs, rows = self._loaded.locate(ks)
        objects = await asyncio.gather(*refs)
        return read_range(self.bounds, ks, _rows(objects, rows), lo, hi)

    def _manifest(self) -> _Manifest:
        if self._loaded is None:
            self._loaded = _MANIFESTS.get(self._manifest_ref.hex()) or _remember(
                self._manifest_ref, ray.get(self._manifest_ref)
            )
        return self._loaded

    @property
    def bounds(self) -> tuple[int, ...]:
        return self._manifest().bounds

    def refs(self, indices: Sequence[int]) -> list:
        """The objects that hold chunks `indices` (each once, in order)."""
        return self._manifest().locate(indices)[0]

    def tables(self, indices: Sequence[int]) -> list[pa.Table]:
        if not indices:
            return []
        refs, rows = self._manifest().locate(indices)
        return _rows(ray.get(refs), rows)

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
            own = group + ([nxt] if nxt < self._num_chunks else [])
            objects, rows = self._manifest().locate(own)
            b0, b1 = self.bounds[group[0]], self.bounds[group[-1] + 1]
            args = (pattern, flags, b0, b1, lo, hi, limit, len(group), rows)
            refs.append(task.remote(args, self._index_ref, *objects))
        return [m for found in _get_all(refs) for m in found]

    def __repr__(self) -> str:
        return f"<corpus chunks: {self._num_chunks} in the object store, {self._total:,} chars>"


class _Manifest:
    """Where each chunk is: (object refs, bounds, object starts) as stored."""

    def __init__(self, refs: list, bounds: Sequence[int], starts: Sequence[int] | None) -> None:
        self.objects, self.bounds = refs, tuple(bounds)
        self._starts = None if starts is None else list(starts)

    def locate(self, ks: Sequence[int]) -> tuple[list, list[tuple[int, int]]]:
        """The objects holding chunks `ks` (each once) and, per chunk, (object, row)."""
        if self._starts is None:
            return [self.objects[k] for k in ks], [(i, 0) for i in range(len(ks))]
        at: dict[int, int] = {}
        rows = []
        for k in ks:
            j = bisect.bisect_right(self._starts, k) - 1
            rows.append((at.setdefault(j, len(at)), k - self._starts[j]))
        return [self.objects[j] for j in at], rows


# subtle: every prompt a gateway renders brings its own copy of a view (unpickled), and a large
# corpus's manifest holds tens of thousands of handles: the views alive in a process share one
# manifest, which goes with the last of them (weak values: a corpus is never kept alive here).
_MANIFESTS: weakref.WeakValueDictionary[str, _Manifest] = weakref.WeakValueDictionary()


def _remember(manifest_ref: Any, stored: tuple) -> _Manifest:
    manifest = _Manifest(*stored)
    _MANIFESTS[manifest_ref.hex()] = manifest
    return manifest


def _rows(objects: Sequence[pa.Table], rows: Sequence[tuple[int, int]]) -> list[pa.Table]:
    """One table per chunk: row `r` of object `i` (a zero-copy slice)."""
    return [objects[i].slice(r, 1) for i, r in rows]


def _grep_group(args: tuple, index: pa.Table, *objects: pa.Table) -> list[tuple]:
    pattern, flags, b0, b1, lo, hi, limit, own, rows = args
    starts = index.column("start").to_pylist()
    lengths = index.column("length").to_pylist()
    tables = _rows(objects, rows)
    return grep_group(pattern, flags, tables, own, (b0, b1), starts, lengths, lo, hi, limit)


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


# -- locality: where the chunks a prompt or a view reads are ----------------------------------------

MAX_LOCATED_OBJECTS = 64
"""A view over more chunk objects than this is placed by its first this many."""


def view_objects(view: Corpus) -> list:
    """The object refs holding the chunks a view reads (none for a view not in the store)."""
    source = view._source
    if not isinstance(source, RayChunks):
        return []
    return source.refs(chunks_between(source.bounds, view._start, view._stop))


def prompt_objects(prompt: str | list) -> list:
    """The object refs the corpus views of a prompt (`view.prompt_parts`) read."""
    if isinstance(prompt, str):
        return []
    return [ref for part in prompt if isinstance(part, Corpus) for ref in view_objects(part)]


def bytes_by_node(refs: list, known: dict | None = None) -> dict[str, int]:
    """Bytes of `refs` each node holds (a copy in its object store); {} if unknown. `known`:
    locations already looked up (`locations`), asked again only for the refs it lacks."""
    where = dict(known or {})
    missing = [ref for ref in refs if ref not in where]
    where.update(locations(missing))
    held: dict[str, int] = {}
    for ref in refs:
        nodes, size = where.get(ref, ((), 0))
        for node in nodes:
            held[node] = held.get(node, 0) + (size or 1)
    return held


def locations(refs: list) -> dict[Any, tuple[tuple[str, ...], int]]:
    """For each ref: (the nodes holding a copy, its size), in one lookup; {} if unknown."""
    if not refs:
        return {}
    try:
        where = ray.experimental.get_object_locations(refs, timeout_ms=2000)
    except Exception:  # locality is a preference: without it the call still runs
        return {}
    return {
        ref: (tuple(info.get("node_ids") or ()), info.get("object_size") or 0)
        for ref, info in where.items()
    }


def pulled_bytes(refs: list, node_id: str) -> int:
    """Bytes of `refs` that `node_id` does not hold: what reading them there moves to it."""
    if not refs:
        return 0
    try:
        where = ray.experimental.get_object_locations(refs, timeout_ms=1000)
    except Exception:
        return 0
    return sum(
        info.get("object_size") or 0
        for info in where.values()
        if node_id not in (info.get("node_ids") or ())
    )
