"""A cascade's records embedded on Ray (docs/cascades.md, "Embeddings"): batches of records as
embedding calls on the run's gateways (async actors: the calls are IO, they hold no CPU), their
vectors left in the object store for the proxy's tasks.

    embedded, outcomes = embed(records, start, deadline, limit)
                         # `start(inputs)` sends one batch: (vectors handle, reply handle);
                         # outcomes: per batch (True, LLMReply) or (False, the exception)
    rows = embedded.rows(positions)      # some records' vectors, by handle (small to send)
    rows.fetch()                         # inside a task: the vectors, one row per position

A corpus's documents go as slices (handles and offsets): the gateway reads them, so their text
never reaches the REPL that asks. Waits go in short slices until the run's deadline; on any
interruption the calls are cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from rlm_ray.errors import LimitExceededError
from rlm_ray.models.embeddings import BATCH_RECORDS
from rlm_ray.runtime.proxy_tasks import PROXY_CHARS
from rlm_ray.runtime.ray_basics import unwrap

_WAIT_SLICE_S = 0.2


@dataclass(frozen=True)
class Rows:
    """Some records' vectors by handle: the batches' handles they are in, and per record
    (index into `refs`, row in that batch)."""

    refs: list
    picks: list[tuple[int, int]]

    def fetch(self) -> np.ndarray:
        parts = ray.get(list(self.refs))
        return np.stack([parts[b][r] for b, r in self.picks]).astype(np.float32)

    def subset(self, positions: list[int]) -> Rows:
        """The rows at `positions` (of this one), with only the handles they need."""
        return _rows(self.refs, [self.picks[p] for p in positions])


@dataclass(frozen=True)
class Embedded:
    """Every record's vector: batch b (handle `refs[b]`) holds the records at `batches[b]`."""

    batches: list[list[int]]
    refs: list

    def rows(self, positions: list[int]) -> Rows:
        where = {p: (b, r) for b, batch in enumerate(self.batches) for r, p in enumerate(batch)}
        return _rows(self.refs, [where[p] for p in positions])


def _rows(refs: list, picks: list[tuple[int, int]]) -> Rows:
    needed = sorted({b for b, _ in picks})
    renumber = {b: i for i, b in enumerate(needed)}
    return Rows([refs[b] for b in needed], [(renumber[b], r) for b, r in picks])


def embed(
    records: list,
    start: Callable[[list], tuple[Any, Any]],
    deadline: float | None,
    limit: Any,
) -> tuple[Embedded, list[tuple[bool, Any]]]:
    """Every record embedded, `BATCH_RECORDS` a call (see the module docstring). The first
    batch goes alone: a server without embeddings fails it, and the rest are never sent."""
    batches = [
        list(range(a, min(a + BATCH_RECORDS, len(records))))
        for a in range(0, len(records), BATCH_RECORDS)
    ]
    vectors: list = []
    replies: list = []
    try:
        for group in (batches[:1], batches[1:]):
            for batch in group:
                vector_ref, reply_ref = start([_clipped(records[i]) for i in batch])
                vectors.append(vector_ref)
                replies.append(reply_ref)
            _wait(replies, deadline, limit)
            outcomes = [_outcome(ref, vector) for ref, vector in zip(replies, vectors)]
            if not all(ok for ok, _ in outcomes):
                break
    except BaseException:
        for ref in replies:
            ray.cancel(ref)
        raise
    return Embedded(batches, vectors), outcomes


def _clipped(record: Any) -> Any:
    """What of a record is embedded: its head, as the n-gram proxy reads it (a corpus
    document as a slice, read by the gateway)."""
    return record[:PROXY_CHARS] if isinstance(record, str) else [record[:PROXY_CHARS]]


def _wait(refs: list, deadline: float | None, limit: Any) -> None:
    waiting = list(refs)
    while waiting:
        if deadline is not None and time.time() > deadline:
            raise LimitExceededError("max_time_s", limit)
        _, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=_WAIT_SLICE_S)


def _outcome(reply: Any, vectors: Any) -> tuple[bool, Any]:
    try:
        return True, ray.get(reply)
    except Exception as exc:
        try:  # the same failure: read here, so Ray does not log it again as unhandled
            ray.get(vectors)
        except Exception:
            pass
        return False, unwrap(exc)
