"""Records for the record operators (`llm_map`, `llm_filter`, `llm_classify`, `llm_count`):
what counts as one record, the chunk a record view begins in, and a record's identity.
"""

from __future__ import annotations

import bisect
from typing import Any

from rlm_ray.corpus.view import Corpus, Documents


def record_items(value: Any, fn: str, name: str = "items") -> list[str | Corpus]:
    """The records of an operator's `items`: a list (or tuple) of str and corpus views as it
    is; a corpus view's documents; a str's non-empty lines."""
    if isinstance(value, str):
        return [line for line in value.splitlines() if line.strip()]
    if isinstance(value, Corpus):
        return list(value.documents)
    if isinstance(value, Documents):
        return list(value)
    if isinstance(value, (dict, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(
            f"{fn}: `{name}` must be a list of str (or corpus documents), a str of lines or a "
            f"corpus, got {type(value).__name__}"
        )
    items = list(value)
    for i, item in enumerate(items):
        if not isinstance(item, (str, Corpus)):
            raise TypeError(
                f"{fn}: `{name}[{i}]` is {type(item).__name__}; records must be str or corpus "
                "documents (convert with str(x))"
            )
    return items


def record_chunk(item: Corpus) -> tuple[int, int]:
    """The stored chunk a record view begins in, as (its corpus's id in this process, chunk
    index): work over a corpus's records (a cascade's scoring) goes as one task per chunk."""
    return id(item._source), bisect.bisect_right(item._source.bounds, item._start) - 1


def record_key(item: str | Corpus) -> Any:
    """What makes two records identical without reading a view: its text for a str, its span
    of its corpus for a view."""
    if isinstance(item, str):
        return item
    return ("view", id(item._source), item._start, item._stop)
