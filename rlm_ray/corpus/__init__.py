"""Corpora: files into Arrow, Arrow into chunks, chunks behind the view model code reads.

    ingest.py   files on disk (or stdin) -> one Arrow table, one row per document
    chunks.py   a document table cut into chunk tables; grep over a group of chunks (pure)
    view.py     `Corpus`, the view model code sees as `context`, and its documents
    prompt_parts.py  prompts whose parts are views: sized by offsets, rendered where sent
    records.py  what one record of an operator is; a record view's chunk and identity
    store.py    the Ray glue: chunks put once by the driver, read by handle everywhere
    load.py     `load_corpus`, the one way in: a table, a small local corpus read by the driver,
                a large or remote one read on the cluster
    source.py   a path, directory, glob or URI listed into its files (pyarrow's filesystems)
    cluster.py  a corpus read and cut on the cluster with Ray Data; the driver keeps the manifest

This package re-exports the names of `view`, `prompt_parts` and `records` (pyarrow only).
`ingest` (pyarrow's file readers), `store` (Ray) and the others are imported by name, e.g.
`from rlm_ray.corpus import store`, when they are needed. A corpus served from the test's own
process, without Ray, is `rlm_ray.testing.local_corpus`.
"""

from rlm_ray.corpus.prompt_parts import (
    PROMPT_CHARS_PER_TOKEN,
    check_prompt_size,
    max_prompt_chars,
    preview,
    prompt_chars,
    prompt_parts,
    render,
)
from rlm_ray.corpus.records import record_chunk, record_items, record_key
from rlm_ray.corpus.view import (
    MAX_MATERIALISE_CHARS,
    ChunkSource,
    Corpus,
    CorpusShape,
    Document,
    Documents,
    Match,
    check_read_size,
    rebuild_view,
    trust_source,
)

__all__ = [
    "MAX_MATERIALISE_CHARS",
    "PROMPT_CHARS_PER_TOKEN",
    "ChunkSource",
    "Corpus",
    "CorpusShape",
    "Document",
    "Documents",
    "Match",
    "check_prompt_size",
    "check_read_size",
    "max_prompt_chars",
    "preview",
    "prompt_chars",
    "prompt_parts",
    "rebuild_view",
    "record_chunk",
    "record_items",
    "record_key",
    "render",
    "trust_source",
]
