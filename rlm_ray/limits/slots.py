"""`Slots`: the REPL pool's admission rule, as a pure class (no Ray, no asyncio).

Every RLM call holds one REPL slot while it runs, and a parent keeps its slot while it waits on
its children. With a plain counter, a tree of depth 3 could fill every slot with depth-0 and
depth-1 calls whose children then wait forever. The rule that prevents it: *one slot is kept
free for every depth level that holds none*, so the deepest level still missing can always start,
and its calls finish without needing another slot.

The levels counted are those of the deepest run in progress: `levels` is the largest `max_depth`
among the runs in progress (1 when none is), and a call at depth `d` may take a slot when, after
setting aside one slot for each *other* level in `range(levels)` that holds none, at least one
slot is free. The capacity may change between calls (the pool's capacity is per live node).
`RLMConfig` refuses a `max_depth` above the slots of one node, so a lone run always fits.
"""

from __future__ import annotations

from collections import Counter


class Slots:
    """Slots held per call depth, and the `max_depth` of each run in progress."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        """How many calls may hold a slot at once (the pool sets it to slots x live nodes)."""
        self.held: Counter[int] = Counter()
        """Slots held, by the depth of the call holding them."""
        self.peak = 0
        """The most slots held at once since the start or the last `reset_peak`."""
        self._run_depths: Counter[int] = Counter()  # max_depth of the runs in progress

    @property
    def in_use(self) -> int:
        return sum(self.held.values())

    @property
    def levels(self) -> int:
        """Depth levels to keep a slot for: the largest `max_depth` of the runs in progress."""
        return max((d for d, n in self._run_depths.items() if n > 0), default=1)

    def start_run(self, max_depth: int) -> None:
        self._run_depths[max_depth] += 1

    def end_run(self, max_depth: int) -> None:
        self._run_depths[max_depth] -= 1

    def can_take(self, depth: int) -> bool:
        """May a call at `depth` take a slot now without starving a level that holds none?"""
        free = self.capacity - self.in_use
        kept = sum(1 for d in range(self.levels) if d != depth and self.held[d] == 0)
        return free - kept >= 1

    def take(self, depth: int) -> None:
        """Hold a slot for a call at `depth` (the caller has checked `can_take`)."""
        self.held[depth] += 1
        self.peak = max(self.peak, self.in_use)

    def give_back(self, depth: int) -> None:
        if self.held[depth] <= 0:
            raise ValueError(f"no slot is held at depth {depth}")
        self.held[depth] -= 1

    def reset_peak(self) -> None:
        self.peak = self.in_use
