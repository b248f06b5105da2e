"""Parallel comprehensions: the elements of one comprehension evaluated on worker threads.

The policy rewrites a comprehension whose elements make sub-calls (see
`rewrites.plan_fanout`) into ``_rlm_fanout_(kind, bindings, fn, filtered)``, which is
`FanOut.run`. Elements that wait for their sub-calls' replies (``[llm_query(p).strip() for p in
ps]``, a filter that reads a reply) then wait side by side instead of one after another. What
the model wrote still means the same: results keep their order, the error of the first failing
element is raised (FINAL() included), and a generator expression stays lazy, evaluated
`max_workers` elements at a time.

Workers join the running cell (`clock.Cell`): their running time counts toward its limit and
a timeout stops them too. A cell has a budget of ``max_workers - 1`` extra threads shared by
nested fan-outs; taking from it never blocks, so when it is used up the calling thread does the
work itself and nesting cannot deadlock. No RestrictedPython here.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rlm_ray.sandbox.clock import (
    FANOUT_STACK_BYTES,
    KICK_S,
    Cell,
    CellClock,
    CellTimeout,
    async_raise,
    start_thread,
)


class FanOut:
    """Runs one sandbox's parallel comprehensions inside the cell running now."""

    def __init__(self, clock: CellClock, max_workers: int) -> None:
        self._clock = clock
        self._max_workers = max_workers

    def run(
        self, kind: str, bindings: Iterable[tuple[Any, ...]], fn: Callable[..., Any], filtered: bool
    ) -> Any:
        """The comprehension's value: `kind` is list, set, dict or gen; `bindings` yields each
        element's loop variables, `fn` computes it (as ``(keep, value)`` when `filtered`)."""
        if kind == "gen":
            return self._lazy(bindings, fn, filtered)
        job = self._evaluate(list(bindings), fn)
        _, error = job.first_error()
        if error is not None:
            raise error
        values = [v for keep, v in job.results if keep] if filtered else job.results
        if kind == "list":
            return values
        return set(values) if kind == "set" else dict(values)

    def _lazy(
        self, bindings: Iterable[tuple[Any, ...]], fn: Callable[..., Any], filtered: bool
    ) -> Iterator[Any]:
        source = iter(bindings)
        while chunk := list(itertools.islice(source, self._max_workers)):
            job = self._evaluate(chunk, fn)
            failed_at, error = job.first_error()
            for value in job.results[:failed_at]:
                if not filtered:
                    yield value
                elif value[0]:
                    yield value[1]
            if error is not None:
                raise error

    def _evaluate(self, items: list[tuple[Any, ...]], fn: Callable[..., Any]) -> _Job:
        job = _Job(fn, items)
        cell = self._clock.current
        if cell is None:  # called outside a cell (e.g. a generator consumed later by the host)
            job.work()
            return job
        threads = self._start_workers(cell, job, min(len(items), self._max_workers) - 1)
        job.work()  # the calling thread takes elements too
        with cell.waiting():  # the workers' own time is what counts
            for thread in threads:
                while thread.is_alive():  # short joins: a stop request must get through
                    thread.join(KICK_S)
        return job

    def _start_workers(self, cell: Cell, job: _Job, wanted: int) -> list[threading.Thread]:
        threads: list[threading.Thread] = []
        # Non-blocking: when nested fan-outs have used the budget, the caller does the work.
        while len(threads) < wanted and cell.budget.acquire(blocking=False):
            thread = threading.Thread(
                target=_worker_main, args=(cell, job), name="rlm-fanout", daemon=True
            )
            cell.workers.append(thread)
            threads.append(thread)
            try:
                start_thread(thread, FANOUT_STACK_BYTES)
            except RuntimeError:  # no memory for one more thread: the caller does the work
                cell.workers.remove(thread)
                threads.remove(thread)
                cell.budget.release()
                break
        return threads


def _worker_main(cell: Cell, job: _Job) -> None:
    try:
        cell.enter()
        try:
            job.work()
        finally:
            cell.leave()
            cell.budget.release()
        async_raise(threading.get_ident(), None)
    except CellTimeout:  # arrived between elements: the cell is being stopped anyway
        pass


class _Job:
    """One parallel comprehension: elements are claimed in order by the participating threads."""

    def __init__(self, fn: Callable[..., Any], items: list[tuple[Any, ...]]) -> None:
        self.fn, self.items = fn, items
        self.results: list[Any] = [None] * len(items)
        self.errors: dict[int, BaseException] = {}
        self._claims = itertools.count()  # next() is atomic under the GIL
        self._stop = False

    def work(self) -> None:
        while not self._stop:
            i = next(self._claims)
            if i >= len(self.items):
                return
            try:
                self.results[i] = self.fn(*self.items[i])
            except BaseException as exc:  # FINAL() and timeouts too: the caller re-raises in order
                self.errors[i] = exc
                self._stop = True  # claims are in order, so every earlier element is running

    def first_error(self) -> tuple[int, BaseException | None]:
        i = min(self.errors, default=len(self.items))
        return i, self.errors.get(i)
