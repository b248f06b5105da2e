"""Where the pool's REPL workers run: the live nodes, the workers busy and idle on each, and the
node a call goes to.

    placement = Placement(home, slots_per_node, memory_mb, idle)
    placement.live_nodes()        the nodes alive now (asked of Ray at most once a second)
    placement.capacity            slots per node x live nodes: what the pool's slot rule uses
    await placement.take(near)    a worker for a call: on a node holding its context if one has
                                  room, else on the least busy live node (counted busy there)
    placement.release(w, node)    a worker back from a call (`None`: it died, never reused)

A call goes to a node holding a copy of its context (locality), else to the least busy live
node; each node runs at most `slots_per_node` busy workers. The pool (`pool.py`) decides *when*
a call may run (its slots); this module decides *where*.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import ray

from rlm_ray import corpus
from rlm_ray.core.spec import CallSpec
from rlm_ray.corpus import store
from rlm_ray.runtime.idle_workers import IdleWorkers
from rlm_ray.runtime.worker import new_worker

_NODES_TTL_S = 1.0


class Placement:
    """The pool's workers by node: busy ones counted, idle ones kept (`IdleWorkers`)."""

    def __init__(
        self, home: str, slots_per_node: int, memory_mb: int | None, idle: IdleWorkers
    ) -> None:
        self.home = home  # the pool's own node: where calls go while no node list is known
        self.slots_per_node = slots_per_node
        self.idle = idle  # by node; spares of deep runs
        self.busy: Counter[str] = Counter()  # node id -> workers running a call
        self._memory_mb = memory_mb
        self._nodes: list[str] = []
        self._nodes_checked = 0.0

    def new_worker(self, node: str) -> Any:
        return new_worker(node, self._memory_mb)

    def live_nodes(self) -> list[str]:
        """Ids of the live nodes (asked again at most once a second); forgets the dead ones."""
        if time.monotonic() - self._nodes_checked > _NODES_TTL_S:
            self._nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
            self._nodes_checked = time.monotonic()
            self.idle.keep_nodes(self._nodes)  # the others' actors died with their node
        return self._nodes

    def nodes(self) -> list[str]:
        """The live nodes, or the pool's own while none is known."""
        return self.live_nodes() or [self.home]

    @property
    def capacity(self) -> int:
        return self.slots_per_node * max(1, len(self.live_nodes()))

    def node_stats(self) -> dict[str, dict[str, int]]:
        return {n: {"busy": self.busy[n], "idle": self.idle.count(n)} for n in self.live_nodes()}

    def room(self) -> dict[str, int]:
        """Workers each node may still start before it is full."""
        return {n: self.slots_per_node - self.busy[n] for n in self.nodes()}

    async def take(self, near: Any) -> tuple[Any, str]:
        """A warm or new worker, on a node holding the call's context if one has room."""
        holders: list[str] = []
        if near is not None and len(self.live_nodes()) > 1:
            # a blocking GCS query (up to 1 s): in a thread, so the pool's other calls go on
            holders = await asyncio.to_thread(_holders, near)
        nodes = self.nodes()  # after the await: no stale counts below
        roomy = [n for n in nodes if self.busy[n] < self.slots_per_node] or nodes
        local = [n for n in holders if n in roomy]
        node = next((n for n in local if self.idle.count(n)), None)
        if node is None:
            node = (
                local[0]
                if local
                else min(roomy, key=lambda n: (self.busy[n], not self.idle.count(n)))
            )
        self.busy[node] += 1
        worker = self.idle.take(node)
        return (self.new_worker(node) if worker is None else worker), node

    def release(self, worker: Any, node: str) -> None:
        """A worker done with its call (or its session): idle again, unless dead (`None`) or
        its node gone."""
        self.busy[node] -= 1
        if worker is not None and node in self.live_nodes():
            self.idle.put(node, worker)

    def rehome(self, node: str) -> str:
        """The node a lost session worker is replaced on: its own if alive, else the least busy
        live one (the busy count moves with it)."""
        nodes = self.nodes()
        if node in nodes:
            return node
        self.busy[node] -= 1
        node = min(nodes, key=lambda n: self.busy[n])
        self.busy[node] += 1
        return node


def near(spec: CallSpec) -> Any:
    """What the call should run next to: its context's handle, or a corpus view (its chunks)."""
    if spec.context_ref is None and isinstance(spec.context_value, corpus.Corpus):
        return spec.context_value
    return spec.context_ref


def _holders(near: Any) -> list[str]:
    """The nodes holding a copy of a context (or of a view's chunks: most bytes first) in their
    object store (none for inline values)."""
    if near is None:
        return []
    if isinstance(near, corpus.Corpus):
        refs = store.view_objects(near)[: store.MAX_LOCATED_OBJECTS]
        held = store.bytes_by_node(refs)
        return sorted(held, key=held.__getitem__, reverse=True)
    try:
        where = ray.experimental.get_object_locations([near], timeout_ms=1000)
    except Exception:  # locality is a preference: without it the call still runs
        return []
    return list(where.get(near, {}).get("node_ids") or [])
