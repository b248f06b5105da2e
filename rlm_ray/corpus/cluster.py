"""A corpus read on the cluster with Ray Data: the files are read, decoded and cut into chunks by
tasks on the nodes, and the driver keeps only the manifest.

    read_on_cluster(listing)   Ray Data reads the listed files (its read tasks, spread over the
                               nodes, each file parsed by `ingest.file_documents`: the same
                               documents the driver's reader makes); as each block arrives, in
                               corpus order, a small task returns its document index (no text)
                               and, once the chunk bounds over it are known, a cut task placed
                               next to its blocks (Ray schedules a task where most of its
                               arguments' bytes are) cuts the chunks there

Every object is owned by the driver (it submitted the tasks): a chunk lost with its node is
made again by Ray's lineage reconstruction (the cut task re-run, its blocks re-read by Ray Data's
read task if they are gone too). The driver never holds text: chunks are packed into objects of
at least `MIN_OBJECT_CHARS`, above the size Ray would return inline to the driver.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import ray
from ray.data.datasource import FileBasedDatasource

from rlm_ray.config import TOKEN_CHARS
from rlm_ray.corpus.chunks import SEPARATOR, chunk_bounds, chunk_tables, document_starts
from rlm_ray.corpus.ingest import IngestReport, file_documents
from rlm_ray.corpus.source import Listing, empty_message, explain
from rlm_ray.corpus.store import stored_corpus
from rlm_ray.corpus.view import Corpus
from rlm_ray.errors import ConfigError

MIN_OBJECT_CHARS = 128 * 1024
"""Chunks are packed into objects of at least this many characters (bytes >= characters), so none
is under Ray's 100 KiB limit for returning a task's value inline to its caller, the driver."""

# per row: "" a document, "replaced" one decoded with replacement; "binary" a file skipped,
# "error" a file that failed to parse (its text the message): rows that are no document
_STATUS = "_rlm_status"
_INDEX_LOOKAHEAD = 4  # blocks whose index tasks run ahead of the one the driver waits for


def read_on_cluster(
    listing: Listing, text_field: str | None, chunk_by: str, chunk_size: int
) -> tuple[Corpus, IngestReport]:
    """Read, decode and cut the listed files on the cluster; the corpus and what was read."""
    cutter = _Cutter(chunk_by, chunk_size)
    try:
        with _quiet_ordered_reads():
            _stream(listing, text_field, cutter)
        return cutter.finish(listing), cutter.report
    except Exception as exc:
        cutter.drop()  # nothing of a failed load stays in the object store
        error = _config_error(exc, listing)
        if error is exc:
            raise
    finally:
        # subtle: Ray Data's plan holds its small objects (the file list, the read function)
        # in reference cycles; collected now, they leave the object store with the load
        gc.collect()
    # subtle: raised outside the handler, so that the error does not keep the original one
    # (as its context), whose traceback's frames hold the blocks read so far
    raise error


@contextlib.contextmanager
def _quiet_ordered_reads() -> Iterator[None]:
    """Ray Data's settings for this read only: blocks in the listing's order (corpus order), no
    progress bars or info logs (the CLI owns the terminal); the user's are restored after."""
    from ray.data import DataContext

    context = DataContext.get_current()
    saved = (context.enable_progress_bars, context.execution_options.preserve_order)
    context.enable_progress_bars, context.execution_options.preserve_order = False, True
    logger = logging.getLogger("ray.data")
    level, logger.level = logger.level, logging.WARNING
    try:
        yield
    finally:
        context.enable_progress_bars, context.execution_options.preserve_order = saved
        logger.setLevel(level)


def _stream(listing: Listing, text_field: str | None, cutter: _Cutter) -> None:
    datasource = _CorpusFiles(listing, text_field)
    pending: deque = deque()
    try:
        dataset = ray.data.read_datasource(datasource)
        # subtle: a file that fails to parse is a marked row, not a failed read task (Ray 2.60's
        # executor, failed, keeps references to its tasks); after it the rest is only drained
        for bundle in dataset.iter_internal_ref_bundles():
            for block_ref in bundle.block_refs if cutter.error is None else ():
                pending.append((block_ref, _index_task.remote(block_ref)))
            while len(pending) > _INDEX_LOOKAHEAD or (pending and cutter.error is not None):
                cutter.add(*_fetched(pending.popleft()))
        while pending:
            cutter.add(*_fetched(pending.popleft()))
    finally:
        pending.clear()


def _fetched(entry: tuple) -> tuple:
    block_ref, index_ref = entry
    return block_ref, ray.get(index_ref)


class _CorpusFiles(FileBasedDatasource):
    """The listed files as Ray Data read tasks: each file one stream, parsed as the driver's
    reader parses it."""

    def __init__(self, listing: Listing, text_field: str | None) -> None:
        super().__init__(list(listing.paths), filesystem=listing.filesystem)
        self._how = {p: (n, f) for p, n, f in zip(listing.paths, listing.names, listing.formats)}
        self._text_field = text_field

    def _read_stream(self, f: Any, path: str) -> Iterator[pa.Table]:
        name, fmt = self._how.get(path) or self._how.get(path.lstrip("/"), (path, "text"))
        report = IngestReport()
        try:
            table = file_documents(f.read_buffer(), name, fmt, self._text_field, report)
        except ConfigError as exc:  # said as a marked row (its text the message)
            yield _marked(name, "error", " ".join(str(exc).split()))
            return
        if table.num_rows == 0 and report.skipped_binary:  # still said, as a marked row
            yield _marked(name, "binary")
            return
        if table.num_rows == 0:  # an empty JSONL, CSV or Parquet file: nothing to add
            return
        status = "replaced" if report.replaced_decoding else ""
        yield table.append_column(_STATUS, pa.array([status] * table.num_rows, pa.string()))


def _marked(name: str, status: str, text: str | None = None) -> pa.Table:
    """One row that says a file gave no documents (skipped as binary, or failed: `text`)."""
    return pa.table(
        {
            "source": [name],
            "text": pa.array([text], pa.large_string()),
            _STATUS: pa.array([status], pa.string()),
        }
    )


def _documents(block: pa.Table) -> pa.Table:
    """The block's documents (the marked rows dropped), without the status column."""
    kept = block.filter(pc.is_in(block[_STATUS], pa.array(["", "replaced"])))
    return kept.drop_columns([_STATUS])


def _block_index(block: pa.Table) -> tuple[pa.Table, list[str], list[str], str | None]:
    """A block's document index (its columns but the text, plus `length`), the files it
    skipped as binary and decoded with replacement, and the first file's error if any."""
    status = block[_STATUS]
    failed = block.filter(pc.equal(status, "error"))["text"].to_pylist()
    skipped = block.filter(pc.equal(status, "binary"))["source"].to_pylist()
    replaced = pc.unique(block.filter(pc.equal(status, "replaced"))["source"]).to_pylist()
    docs = _documents(block)
    clash = {n: f"meta_{n}" for n in ("start", "length") if n in docs.column_names}
    if clash:  # the index's own columns, renamed as `chunks.document_table` renames them
        docs = docs.rename_columns([clash.get(n, n) for n in docs.column_names])
    text = docs["text"].cast(pa.large_string()).fill_null("")
    lengths = pc.utf8_length(text).cast(pa.int64())
    index = docs.drop_columns(["text"]).append_column("length", lengths)
    return index, skipped, replaced, (failed[0] if failed else None)


_index_task: Any = ray.remote(_block_index)


def _cut(plan: tuple, *blocks: pa.Table) -> tuple:
    """Chunks [bounds[0], bounds[-1]) from consecutive blocks, packed `rows_per_object` per
    object; the last value is the number of characters cut (small: the driver checks it)."""
    starts, bounds, more_after, rows_per_object = plan
    docs = [_documents(b) for b in blocks]
    texts = pa.chunked_array(
        [c for d in docs for c in d["text"].cast(pa.large_string()).fill_null("").chunks],
        pa.large_string(),
    )
    chunks = list(chunk_tables(texts, starts, bounds, more_after))
    objects, at = [], 0
    for n in rows_per_object:
        objects.append(pa.concat_tables(chunks[at : at + n]))
        at += n
    return (*objects, bounds[-1] - bounds[0])


@dataclass
class _Block:
    ref: Any
    starts: list[int]  # global starts of its documents in the corpus text
    end: int  # where the next block's first document starts


@dataclass
class _Cutter:
    """Blocks in, in corpus order; cut tasks out, as soon as the chunk bounds over them are
    final. Holds a block only until every chunk that reads it is submitted."""

    chunk_by: str
    chunk_size: int
    report: IngestReport = field(default_factory=IngestReport)
    pieces: list[pa.Table] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    blocks: deque[_Block] = field(default_factory=deque)
    bounds: list[int] = field(default_factory=lambda: [0])  # final bounds so far
    cut_to: int = 0  # chunks [0, cut_to) are submitted
    objects: list = field(default_factory=list)
    object_starts: list[int] = field(default_factory=list)
    checks: list = field(default_factory=list)
    next_start: int = 0
    error: str | None = None  # the first file that failed to parse, as its message

    def add(self, block_ref: Any, indexed: tuple) -> None:
        piece, skipped, replaced, failed = indexed
        if failed is not None or self.error is not None:
            self.error = self.error or failed
            self.drop()  # a failed load keeps nothing; the rest of the stream is drained
            return
        self.report.skipped_binary += skipped
        self.report.replaced_decoding += [r for r in replaced if r not in self._replaced()]
        lengths = piece["length"].to_pylist()
        starts = [self.next_start + s for s in document_starts(lengths)]
        self.next_start += sum(lengths) + len(SEPARATOR) * len(lengths)
        self.pieces.append(piece)
        self.lengths += lengths
        if lengths:
            self.blocks.append(_Block(block_ref, starts, self.next_start))
            self._extend_bounds()
            self._cut(final=False)

    def _replaced(self) -> set[str]:
        return set(self.report.replaced_decoding)

    def _extend_bounds(self) -> None:
        """Bounds strictly before the end of the last document seen are final."""
        text_end = self.next_start - len(SEPARATOR)
        if self.chunk_by == "documents":
            starts = self.blocks[-1].starts
            first_doc = len(self.lengths) - len(starts)
            for i, start in enumerate(starts):
                if (first_doc + i) % self.chunk_size == 0 and start > self.bounds[-1]:
                    self.bounds.append(start)
            return
        step = self.chunk_size * (TOKEN_CHARS if self.chunk_by == "tokens" else 1)
        self.bounds += range(self.bounds[-1] + step, text_end, step)

    def _cut(self, final: bool) -> None:
        """Submit cut tasks for the chunks whose bounds are final, packed into objects."""
        last = len(self.bounds) - 1
        groups = _packing(self.bounds, self.cut_to, last, final)
        if not groups:
            return
        upto = self.cut_to + sum(groups)
        bounds = self.bounds[self.cut_to : upto + 1]
        needed = [b for b in self.blocks if b.end > bounds[0] and b.starts[0] < bounds[-1]]
        starts = [s for b in needed for s in b.starts]
        more_after = not final or needed[-1] is not self.blocks[-1]
        plan = (starts, bounds, more_after, groups)
        task = _cut_task.options(num_returns=len(groups) + 1)
        *objects, check = task.remote(plan, *(b.ref for b in needed))
        self.object_starts += [self.cut_to + sum(groups[:i]) for i in range(len(groups))]
        self.objects += objects
        self.checks.append(check)
        self.cut_to = upto
        while self.blocks and self.blocks[0].end <= self.bounds[self.cut_to]:
            self.blocks.popleft()  # every chunk reading it is submitted

    def finish(self, listing: Listing) -> Corpus:
        if self.error is not None:
            raise ConfigError(self.error)
        self.report.sources = len(listing.paths)
        self.report.documents = len(self.lengths)
        self.report.total_chars = sum(self.lengths)
        if self.report.total_chars == 0:
            raise ConfigError(empty_message(self.report, listing))
        final = chunk_bounds(self.lengths, self.chunk_by, self.chunk_size)
        assert final[: len(self.bounds)] == self.bounds, "chunk bounds cut early changed"
        self.bounds = final
        self._cut(final=True)
        cut = sum(ray.get(self.checks))  # a failed cut task raises here
        assert cut == final[-1], (cut, final[-1])
        index = _index(self.pieces, self.lengths)
        return stored_corpus(self.objects, final, self.object_starts, index)

    def drop(self) -> None:
        for held in (self.blocks, self.objects, self.checks, self.pieces):
            held.clear()


def _packing(bounds: list[int], first: int, last: int, final: bool) -> list[int]:
    """Chunks per object for chunks [first, last): consecutive chunks until an object holds at
    least `MIN_OBJECT_CHARS`. Unless `final`, an unfilled last object waits for more chunks."""
    groups, count, chars = [], 0, 0
    for k in range(first, last):
        count, chars = count + 1, chars + bounds[k + 1] - bounds[k]
        if chars >= MIN_OBJECT_CHARS:
            groups.append(count)
            count, chars = 0, 0
    if count and final:
        groups.append(count)
    return groups


def _index(pieces: list[pa.Table], lengths: list[int]) -> pa.Table:
    """The document index the driver's path makes (`chunks.cut_chunks`): id, the other columns,
    length, start."""
    index = pa.concat_tables([p for p in pieces if p.num_rows], promote_options="default")
    if "id" not in index.column_names:
        index = index.add_column(0, "id", pa.array(range(index.num_rows), pa.int64()))
    starts = pa.array(document_starts(lengths), pa.int64())
    return index.append_column("start", starts)


_cut_task: Any = ray.remote(_cut)


def _config_error(exc: Exception, listing: Listing) -> Exception:
    """A usage mistake found on the cluster (a file that is not what its name says, a file the
    credentials may list but not read) as one `ConfigError` naming the corpus; machinery
    failures stay what they are."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ray.exceptions.RayTaskError):  # also a ConfigError: its text is a
            seen = seen.cause  # traceback; the error raised in the task is its cause
            continue
        if isinstance(seen, ConfigError):
            return ConfigError(" ".join(str(seen).split()))
        if isinstance(seen, OSError) and (reason := explain(seen, known_only=True)):
            return ConfigError(f"corpus {listing.source}: {reason}")
        seen = getattr(seen, "cause", None) or seen.__cause__
    return exc
