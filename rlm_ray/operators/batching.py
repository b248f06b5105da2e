"""How a record operator's items are sent: packed into batches that fit the sub-model's window
with room for their answers, asked again in smaller groups when answers are missing, and
identical items asked once. Pure: no model, no Ray.

    pack(sizes, op, window_tokens)     consecutive batches of item indices
    retry_groups(batch, answered)      what to ask again after a batch's reply
    distinct(keys)                     each distinct item's first position, and where each goes
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Protocol

MAX_BATCH_ITEMS = 40  # small models lose count in longer numbered lists
CHARS_PER_TOKEN = 3  # a high token estimate, as the loop's: a batch errs on the small side
WINDOW_SHARE = 0.75  # of the sub-model's window a batch may use (prompt and answers)
ITEM_OVERHEAD_TOKENS = 6  # the "[k] " marker and line breaks


class Prompted(Protocol):
    """What batching needs of an operator (`record_ops.Operator`)."""

    @property
    def answer_tokens(self) -> int: ...

    def prompt(self, items: Sequence[Any]) -> str | list[Any]: ...


def usable_tokens(window_tokens: int) -> int:
    return int(window_tokens * WINDOW_SHARE)


def max_item_chars(op: Prompted, window_tokens: int) -> int:
    """The longest item that fits a batch of its own; longer items are cut to this."""
    fixed = _tokens(len(op.prompt(["x"]))) + ITEM_OVERHEAD_TOKENS + op.answer_tokens
    return max(1, (usable_tokens(window_tokens) - fixed) * CHARS_PER_TOKEN)


def pack(
    sizes: Sequence[int],
    op: Prompted,
    window_tokens: int,
    max_items: int = MAX_BATCH_ITEMS,
) -> list[list[int]]:
    """Consecutive batches of item indices, each fitting the window with room for its answers
    and holding at most `max_items` items. `sizes` are the items' lengths in characters."""
    budget = usable_tokens(window_tokens) - _tokens(len(op.prompt([])))
    batches: list[list[int]] = []
    batch: list[int] = []
    used = 0
    for i, size in enumerate(sizes):
        cost = _tokens(size) + ITEM_OVERHEAD_TOKENS + op.answer_tokens
        if batch and (used + cost > budget or len(batch) >= max_items):
            batches.append(batch)
            batch, used = [], 0
        batch.append(i)
        used += cost
    if batch:
        batches.append(batch)
    return batches


def retry_groups(batch: list[int], answered: set[int]) -> list[list[int]]:
    """What to ask again after a batch's reply: nothing if all were answered or the batch was
    one item; its missing items if some were answered; else the batch split in two halves.
    Every group is smaller than `batch`, so the rounds end."""
    missing = [i for i in batch if i not in answered]
    if not missing or len(batch) == 1:
        return []
    if len(missing) < len(batch):
        return [missing]
    half = len(missing) // 2
    return [missing[:half], missing[half:]]


def _tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def distinct(keys: Sequence[Hashable]) -> tuple[list[int], list[int]]:
    """(the position of each distinct key's first occurrence, and for each position the index
    of its distinct item): identical records are asked once."""
    index: dict[Hashable, int] = {}
    firsts: list[int] = []
    where: list[int] = []
    for i, key in enumerate(keys):
        if key not in index:
            index[key] = len(firsts)
            firsts.append(i)
        where.append(index[key])
    return firsts, where
