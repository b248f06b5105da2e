"""The REPL pool's slot rule (`rlm_ray.limits.slots.Slots`): one slot kept free per level
holding none."""

from __future__ import annotations

import pytest

from rlm_ray.limits.slots import Slots


def test_the_pool_admits_by_the_slot_rule_at_its_current_capacity():
    """The pool holds a `Slots` and refreshes its capacity (slots x live nodes) before asking."""
    import random
    from types import SimpleNamespace

    from rlm_ray.runtime.pool import REPLPool

    rng = random.Random(13)
    for _ in range(2000):
        slots = Slots(capacity=rng.randint(0, 8))
        for _ in range(rng.randint(0, 3)):
            slots.start_run(max_depth=rng.randint(0, 4))
        for _ in range(rng.randint(0, 6)):
            slots.take(rng.randint(0, 4))
        capacity = rng.randint(0, 8)  # nodes joined or left since the last call
        pool = SimpleNamespace(_capacity=capacity, _slots=slots)
        for depth in range(5):
            expected = Slots(capacity)
            expected.held, expected._run_depths = slots.held, slots._run_depths
            assert REPLPool._has_room(pool, depth) == expected.can_take(depth), (pool, depth)
            assert slots.capacity == capacity


def test_with_no_run_in_progress_one_level_is_assumed():
    slots = Slots(capacity=1)
    assert slots.levels == 1
    assert slots.can_take(0)
    slots.take(0)
    assert not slots.can_take(0)


def test_a_slot_is_kept_for_each_other_level_that_holds_none():
    slots = Slots(capacity=3)
    slots.start_run(max_depth=3)  # levels 0, 1, 2
    assert slots.can_take(0)  # 3 free, 2 kept (depths 1 and 2)
    slots.take(0)
    assert not slots.can_take(0)  # 2 free, 2 kept
    assert slots.can_take(1)  # 2 free, 1 kept (depth 2)
    slots.take(1)
    assert not slots.can_take(1)
    assert slots.can_take(2)  # the deepest level can always start
    slots.take(2)
    assert not any(slots.can_take(d) for d in range(3))


def test_a_level_that_holds_a_slot_needs_nothing_kept():
    slots = Slots(capacity=4)
    slots.start_run(max_depth=2)
    slots.take(0)
    slots.take(1)
    assert slots.can_take(0) and slots.can_take(1)  # 2 free, nothing kept
    slots.take(0)
    assert slots.can_take(0)  # 1 free, nothing kept: depth 1 holds one already
    slots.take(0)
    assert not slots.can_take(1)


def test_levels_follow_the_deepest_run_in_progress():
    slots = Slots(capacity=3)
    slots.start_run(max_depth=1)
    slots.start_run(max_depth=3)
    assert slots.levels == 3
    slots.take(0)
    assert not slots.can_take(0)  # depths 1 and 2 keep a slot each
    slots.end_run(max_depth=3)
    assert slots.levels == 1
    assert slots.can_take(0)  # the shallow run alone: nothing kept
    slots.end_run(max_depth=1)
    assert slots.levels == 1  # the default again


def test_a_run_without_repl_levels_keeps_nothing():
    slots = Slots(capacity=2)
    slots.start_run(max_depth=0)  # max_depth=0: one plain model call, no REPL
    assert slots.levels == 0
    slots.take(0)
    assert slots.can_take(0)


def test_capacity_may_shrink_while_slots_are_held():
    slots = Slots(capacity=4)
    slots.start_run(max_depth=2)
    slots.take(0)
    slots.take(0)
    slots.capacity = 2  # a node was lost
    assert not slots.can_take(0) and not slots.can_take(1)
    slots.give_back(0)
    assert slots.can_take(1) and not slots.can_take(0)


def test_peak_counts_the_most_held_at_once():
    slots = Slots(capacity=4)
    for depth in (0, 1, 1):
        slots.take(depth)
    slots.give_back(1)
    assert (slots.in_use, slots.peak) == (2, 3)
    slots.reset_peak()
    assert slots.peak == 2
    slots.give_back(0)
    assert slots.peak == 2


def test_giving_back_a_slot_never_taken_is_a_bug():
    with pytest.raises(ValueError, match="depth 1"):
        Slots(capacity=1).give_back(1)


def _run_trees(can_take, take, give_back, *, roots: int, levels: int, fanout: int) -> bool:
    """Step a set of call trees to the end; False if they deadlock.

    A call at depth d < levels - 1 starts `fanout` children once admitted and keeps its slot
    until they are all done; a call at the last level is done one step after it is admitted.
    Every waiting call is checked each step, like the pool's waiters on one condition.
    """
    waiting = [(0, None)] * roots
    running: dict[int, tuple[int, int | None]] = {}  # call id -> (depth, parent)
    children: dict[int, int] = {}  # call id -> children not yet done
    ids = 0
    while waiting or running:
        progressed = False
        for depth, parent in list(waiting):
            if can_take(depth):
                waiting.remove((depth, parent))
                take(depth)
                ids += 1
                running[ids] = (depth, parent)
                children[ids] = fanout if depth < levels - 1 else 0
                waiting += [(depth + 1, ids)] * children[ids]
                progressed = True
        for call, (depth, parent) in list(running.items()):
            if children[call] == 0:
                del running[call]
                give_back(depth)
                if parent is not None:
                    children[parent] -= 1
                progressed = True
        if not progressed:
            return False
    return True


@pytest.mark.parametrize("levels", [1, 2, 3, 4])
@pytest.mark.parametrize("roots", [1, 3, 8])
@pytest.mark.parametrize("extra", [0, 1, 5])
def test_trees_never_deadlock(levels, roots, extra):
    slots = Slots(capacity=levels + extra)
    for _ in range(roots):
        slots.start_run(max_depth=levels)
    assert _run_trees(
        slots.can_take, slots.take, slots.give_back, roots=roots, levels=levels, fanout=3
    )
    assert slots.in_use == 0 and slots.peak <= slots.capacity


def test_a_plain_counter_would_deadlock():
    """The control: without the kept slots, roots fill the pool and their children wait forever."""
    held = [0]

    def take(depth: int) -> None:
        held[0] += 1

    def give_back(depth: int) -> None:
        held[0] -= 1

    assert not _run_trees(lambda depth: held[0] < 3, take, give_back, roots=3, levels=2, fanout=2)
