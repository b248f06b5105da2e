"""Loading a corpus, the one way in: `load_corpus` (`rlm_ray.load` and the CLI call it).

    a pyarrow.Table              cut and put by the driver (`store.put_corpus`)
    a small local corpus         read here (`ingest`, `source.read_listing`), cut and put by
                                 the driver: no start-up, and fast below `DRIVER_READ_MAX_BYTES`
    a large or remote corpus     read, decoded and cut on the cluster with Ray Data
                                 (`cluster.read_on_cluster`); the driver keeps the manifest

Both ways give the same `Corpus`: the same text, chunks, documents and index. Every usage
mistake (a missing path, an unreachable URI, no such bucket, permission denied, a file that is
not text, no documents) is a one-line `ConfigError` naming the source, before any model call;
a failed load leaves nothing in the object store.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from rlm_ray.config import check_chunking
from rlm_ray.corpus.ingest import IngestReport, read_corpus
from rlm_ray.corpus.source import Listing, is_glob, list_source
from rlm_ray.corpus.view import Corpus
from rlm_ray.errors import ConfigError

DRIVER_READ_MAX_BYTES = 256 << 20
"""A local corpus of fewer bytes is read by the driver; a larger one (and any remote one) on
the cluster. Measured in docs/benchmarks.md ("Corpora on the cluster"): below this the driver
reads faster than Ray Data starts, and its peak memory (~3x the corpus) stays under 1 GB."""


def load_corpus(
    source: Any,
    *,
    chunk_by: str = "chars",
    chunk_size: int = 200_000,
    address: str | None = None,
    distributed: bool | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    text_field: str | None = None,
) -> tuple[Corpus, IngestReport | None]:
    """A corpus in the object store and what was read (None for a table).

    `distributed`: read on the cluster (True), in the driver (False), or by size (None)."""
    check_chunking(chunk_by, chunk_size)
    if isinstance(source, pa.Table):
        return _put_table(source, chunk_by, chunk_size, address), None
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(
            f"a corpus is loaded from a URI, a path or a pyarrow.Table, got {type(source).__name__}"
        )
    listing = list_source(os.fspath(source), include, exclude)
    if distributed is None:
        distributed = listing.remote or listing.total_bytes >= DRIVER_READ_MAX_BYTES
    if not distributed:
        table, report = _read_here(source, listing, include, exclude, text_field)
        return _put_table(table, chunk_by, chunk_size, address), report
    from rlm_ray.corpus.cluster import read_on_cluster

    _ensure_ray(address)
    return read_on_cluster(listing, text_field, chunk_by, chunk_size)


def _read_here(
    source: Any,
    listing: Listing,
    include: Sequence[str],
    exclude: Sequence[str],
    text_field: str | None,
) -> tuple[pa.Table, IngestReport]:
    if listing.remote or is_glob(str(source)):
        from rlm_ray.corpus.source import read_listing

        return read_listing(listing, text_field)
    options: dict[str, Any] = {"include": include, "exclude": exclude, "text_field": text_field}
    return read_corpus(Path(source), **options)


def _put_table(table: pa.Table, chunk_by: str, chunk_size: int, address: str | None) -> Corpus:
    from rlm_ray.corpus.chunks import document_table
    from rlm_ray.corpus.store import put_corpus

    document_table(table)  # a table without text fails before Ray starts
    _ensure_ray(address)
    return put_corpus(table, chunk_by, chunk_size)


def _ensure_ray(address: str | None) -> None:
    from rlm_ray.runtime import ensure_ray

    ensure_ray(address)
