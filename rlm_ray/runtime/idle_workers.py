"""The pool's idle REPL workers: which one a call gets, how many a deeper run starts ahead of
its first `recursive_llm`, and when such a spare goes again.

    idle = IdleWorkers(kill=ray.kill, keep_s=SPARE_KEEP_S)
    idle.started(node, worker)      a worker just started (its readiness is watched)
    idle.start_spares(n, room, start)  workers started ahead of a deep run's children
    idle.put(node, worker)          a worker back from a call
    idle.take(node)                 an idle worker whose process is up, else the oldest one
    idle.hold_spares()              a deep run is live: its spares wait for its children
    idle.release_spares_later()     none is: spares never used go `keep_s` from now

Why: a REPL worker is a process of its own, and starting one (a Ray worker process, then the
REPL's modules) takes about a second of CPU; on two cores, four children started when their
parent asks for them wait seconds (docs/benchmarks.md, "First deeper run").
So a run with `max_depth > 1` has its children's workers started as it begins, while its root's
first turn runs. A call is handed a worker whose process is up before one still starting, so
the root never waits for a worker started for its children.

No Ray import here (the pool passes `kill` and `start`; readiness is the actor handle's own
`__ray_ready__`): this is bookkeeping, run on the pool's event loop only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

SPARE_KEEP_S = 30.0
"""How long spares outlive the last deep run that could use them (a next run reuses them)."""

WARM_CHILDREN_PER_CPU = 2
"""Child workers started ahead of a deep run per CPU of the cluster (4 on two cores)."""

MAX_WARM_CHILDREN = 16
"""Never more, however large the cluster: a worker is ~60 MB of memory while it waits."""


class RunLimits(Protocol):
    """The fields of `RLMConfig` that bound how many children a run can have at once."""

    @property
    def max_depth(self) -> int: ...
    @property
    def max_sub_calls(self) -> int | None: ...
    @property
    def max_concurrent_calls(self) -> int: ...


def children_to_warm(limits: RunLimits, cluster_cpus: float, capacity: int) -> int:
    """Child workers worth starting before a run's first `recursive_llm`: none unless it may
    go deeper than its root; two per CPU of the cluster (starting a process is CPU-bound),
    never more than the run could have at once (the pool's slots less the root's, its sub-call
    budget, its sub-calls in flight) nor `MAX_WARM_CHILDREN`."""
    if limits.max_depth < 2:
        return 0
    budget = limits.max_sub_calls if limits.max_sub_calls is not None else math.inf
    wanted = min(
        WARM_CHILDREN_PER_CPU * max(1, int(cluster_cpus)),
        capacity - 1,
        budget,
        limits.max_concurrent_calls,
        MAX_WARM_CHILDREN,
    )
    return max(0, int(wanted))


@dataclass
class _Idle:
    worker: Any
    ready: concurrent.futures.Future | None  # its `__ray_ready__`; None: it has run a call
    spare: bool  # started ahead of a run, never used yet
    release_at: float | None = None  # a spare's end, once no deep run holds it

    def is_up(self) -> bool:
        if self.ready is None:
            return True
        return self.ready.done() and not self.ready.cancelled() and self.ready.exception() is None


class IdleWorkers:
    """Idle REPL workers by node: up ones handed out first, unused spares released in time."""

    def __init__(self, kill: Callable[[Any], None], keep_s: float = SPARE_KEEP_S) -> None:
        self._kill = kill
        self._keep_s = keep_s
        self._by_node: dict[str, list[_Idle]] = {}

    def put(self, node: str, worker: Any) -> None:
        """A worker back from a call is idle on `node` (its process is up)."""
        self._by_node.setdefault(node, []).append(_Idle(worker, None, spare=False))

    def started(self, node: str, worker: Any, *, spare: bool = False) -> None:
        """A worker just started on `node` is idle; it counts as up once its actor answers."""
        ready = worker.__ray_ready__.remote().future()
        self._by_node.setdefault(node, []).append(_Idle(worker, ready, spare))

    def start_spares(self, wanted: int, room: dict[str, int], start: Callable[[str], Any]) -> None:
        """Start workers until `wanted` are idle, each on the node with the most `room` (free
        slots) left after its idle workers; none where no room is left."""
        for _ in range(wanted - self.count()):
            node = max(room, key=lambda n: room[n] - self.count(n))
            if room[node] - self.count(node) <= 0:
                return
            self.started(node, start(node), spare=True)

    def take(self, node: str) -> Any | None:
        """An idle worker of `node` whose process is up, else the one started first (None if
        the node has none)."""
        idle = self._by_node.get(node)
        if not idle:
            return None
        chosen = next((entry for entry in idle if entry.is_up()), idle[0])
        idle.remove(chosen)
        return chosen.worker

    def count(self, node: str | None = None) -> int:
        if node is not None:
            return len(self._by_node.get(node, ()))
        return sum(len(idle) for idle in self._by_node.values())

    def spares(self) -> int:
        return sum(entry.spare for idle in self._by_node.values() for entry in idle)

    def keep_nodes(self, alive: Iterable[str]) -> None:
        """Forget the workers of nodes no longer alive (their processes went with the node)."""
        alive = set(alive)
        for node in [n for n in self._by_node if n not in alive]:
            del self._by_node[node]

    def hold_spares(self) -> None:
        """A run that may use the spares is live: none goes while it runs."""
        for entry in self._entries(spare=True):
            entry.release_at = None

    def release_spares_later(self) -> None:
        """No run holds the spares now: the ones still unused go `keep_s` from now (on the
        running event loop's clock, which calls `expire` then)."""
        loop = asyncio.get_running_loop()
        for entry in self._entries(spare=True):
            entry.release_at = loop.time() + self._keep_s
        loop.call_later(self._keep_s, lambda: self.expire(loop.time()))

    def expire(self, now: float) -> int:
        """Kill the spares whose time has come (still idle, never used); how many went."""
        gone = 0
        for idle in self._by_node.values():
            for entry in [e for e in idle if e.release_at is not None and e.release_at <= now]:
                idle.remove(entry)
                self._kill(entry.worker)
                gone += 1
        return gone

    def _entries(self, *, spare: bool) -> list[_Idle]:
        return [e for idle in self._by_node.values() for e in idle if e.spare == spare]
