"""A cascade's proxy on Ray (docs/cascades.md): trained in one task, scoring in parallel tasks.

    train(records, labels)   -> the proxy's handle: a task trains it where its records are read;
                                its result stays in the object store, and every scoring task
                                gets it by that handle (stored once, never sent back)
    score(handle, records)   -> the scores of every record, one task per group of records:
                                str records in groups of `GROUP_RECORDS` (put in the object
                                store by the caller's process), a corpus's documents grouped by
                                the chunk they start in and read inside their task, so their
                                text never reaches the caller (the driver, or the REPL)

Waits go in short slices, so a cell timeout raised into the waiting thread lands; on any
interruption the tasks are cancelled. scikit-learn is imported only inside the tasks.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import ray

from rlm_ray import corpus
from rlm_ray.errors import LimitExceededError
from rlm_ray.runtime.ray_basics import unwrap

GROUP_RECORDS = 2_000
"""str records per scoring task (more tasks when there are more than `MAX_TASKS` groups)."""
MAX_TASKS = 64
PROXY_CHARS = 2_000
"""Characters of a record the proxy reads (cascade/proxy.py's `MAX_CHARS`): a document is
read only this far."""
_WAIT_SLICE_S = 0.2


def _texts(records: list) -> list[str]:
    return [r if isinstance(r, str) else str(r[:PROXY_CHARS]) for r in records]


def _train(records: list, labels: list, rows: Any = None) -> Any:
    from rlm_ray.cascade import proxy

    vectors = None if rows is None else rows.fetch()  # embed_tasks.Rows: read here, by handle
    return proxy.train(_texts(records), labels, vectors)


def _score(trained: Any, records: list, rows: Any = None) -> np.ndarray:
    from rlm_ray.cascade import proxy

    return proxy.score(trained, _texts(records), None if rows is None else rows.fetch())


_train_task: Any = ray.remote(_train)
_score_task: Any = ray.remote(_score)


def train(records: list, labels: list, deadline: float | None, limit: Any, rows: Any = None) -> Any:
    """The proxy trained on `records` and `labels` (and the records' embeddings, `rows`: an
    `embed_tasks.Rows`), as a handle (an `ObjectRef`)."""
    ref = _train_task.options(name="cascade proxy: train").remote(records, labels, rows)
    wait([ref], deadline, limit)
    return ref


def score(
    handle: Any, records: list, deadline: float | None, limit: Any, rows: Any = None
) -> np.ndarray:
    """Every record's scores, in order, from parallel tasks sharing the proxy's `handle` (and
    each reading its records' embeddings by handle, with `rows`)."""
    task = _score_task.options(name="cascade proxy: score")
    groups = groups_of(records)
    refs = [
        task.remote(handle, [records[i] for i in group], rows and rows.subset(group))
        for group in groups
    ]
    parts = wait(refs, deadline, limit)
    first = np.asarray(parts[0])
    scores = np.empty((len(records), *first.shape[1:]), dtype=float)
    for group, part in zip(groups, parts):
        scores[group] = part
    return scores


def groups_of(records: list) -> list[list[int]]:
    """Record positions per scoring task: a corpus's documents by the chunk they start in,
    str records in runs of `GROUP_RECORDS` (both merged down to at most `MAX_TASKS`)."""
    by_chunk: dict[Any, list[int]] = {}
    texts: list[int] = []
    for i, record in enumerate(records):
        if isinstance(record, str):
            texts.append(i)
        else:
            by_chunk.setdefault(corpus.record_chunk(record), []).append(i)
    groups = [texts[a : a + GROUP_RECORDS] for a in range(0, len(texts), GROUP_RECORDS)]
    groups += list(by_chunk.values())
    per_task = math.ceil(len(groups) / MAX_TASKS)
    return [sum(groups[a : a + per_task], []) for a in range(0, len(groups), per_task)]


def wait(refs: list, deadline: float | None, limit: Any) -> list:
    """`ray.get(refs)` in short slices, until `deadline` (then `LimitExceededError`, with
    `limit` = the run's `max_time_s`); the tasks are cancelled on any interruption."""
    try:
        waiting = list(refs)
        while waiting:
            if deadline is not None and time.time() > deadline:
                raise LimitExceededError("max_time_s", limit)
            _, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=_WAIT_SLICE_S)
        return ray.get(refs)
    except BaseException as exc:
        for ref in refs:
            ray.cancel(ref, force=True)
        if isinstance(exc, ray.exceptions.RayTaskError):
            raise unwrap(exc) from None
        raise
