"""What a user hands in, checked before any Ray work: the query and the context.

A context is a str, list/tuple, dict, a pyarrow.Table (one row per document), a path (read
here, see `corpus.ingest`) or a corpus loaded by `rlm_ray.load`; empty and binary input is
refused with a `ConfigError`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from rlm_ray.errors import ConfigError


def check_query(query: Any) -> str:
    if not isinstance(query, str) or not query.strip():
        raise ConfigError(f"`query` must be a non-empty str, got {query!r}")
    return query


def check_context(context: Any) -> Any:
    """Accept str, list/tuple, dict, a pyarrow.Table, a path or a loaded corpus; refuse empty
    and binary input clearly. A path is read here (a table's chunks are put after Ray starts)."""
    if isinstance(context, (bytes, bytearray, memoryview)):
        raise ConfigError("`context` is binary (bytes): decode it to str first")
    if isinstance(context, os.PathLike):
        context = read_path(context, {})
    if is_arrow_table(context):
        from rlm_ray.corpus.chunks import document_table

        document_table(context)  # checks the text column and emptiness
        return context
    if is_corpus(context):
        return context
    if isinstance(context, tuple):
        context = list(context)
    if not isinstance(context, (str, list, dict)):
        raise ConfigError(
            "`context` must be a str, list, dict, pyarrow.Table, path or loaded corpus, got "
            f"{type(context).__name__}"
        )
    if len(context) == 0 or (isinstance(context, str) and not context.strip()):
        raise ConfigError(f"`context` is empty ({type(context).__name__} of length 0)")
    if isinstance(context, str) and "\x00" in context[:1_000_000]:
        raise ConfigError("`context` contains NUL bytes: it looks binary, not text")
    return context


def read_path(source: Any, options: dict[str, Any]) -> Any:
    """The document table of a corpus path (`corpus.ingest.read_corpus`)."""
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(
            f"a corpus is loaded from a path or a pyarrow.Table, got {type(source).__name__}"
        )
    from rlm_ray.corpus.ingest import read_corpus

    table, _report = read_corpus(Path(source), **options)
    return table


# subtle: `import rlm_ray` must not import pyarrow (~0.2 s, more than the rest of the package),
# which rlm_ray.corpus needs. A table or a corpus view cannot exist before its module is imported,
# so the checks look the module up in sys.modules instead of importing it.
def is_arrow_table(value: Any) -> bool:
    pa = sys.modules.get("pyarrow")
    return pa is not None and isinstance(value, pa.Table)


def is_corpus(value: Any) -> bool:
    corpus = sys.modules.get("rlm_ray.corpus.view")
    return corpus is not None and isinstance(value, corpus.Corpus)
