"""Tree-wide budgets: one `Ledger` per run, shared by every call of its call tree.

A run may cap its sub-calls, its tokens and its cost. Every call of the tree asks the ledger
*before* its work is dispatched (`admit`) and reports what it spent when done (`settle`), so a
child simply gets what remains. Once a limit is reached the ledger stays stopped: every later
admission is refused with the same `LimitExceededError`, which stops each REPL of the tree at its
next model call or sub-call. (The wall-clock deadline, `max_time_s`, travels in each call's spec.)

How exact each limit is:

- `max_sub_calls` is exact: the (n+1)-th `llm_query` / `recursive_llm` of the tree is refused.
- `max_total_tokens` reserves each call's estimated *input* tokens at admission, so calls in
  flight cannot overshoot it with their prompts; their *outputs* are only known afterwards, so the
  total may pass the limit by the output of the calls already in flight.
- `max_cost_usd` is checked against the cost already spent; it may be passed by the cost of the
  calls in flight (prices are only known to the gateway once a call returns).

Pure Python, no Ray: `rlm_ray.runtime.admission` keeps the ledgers of a driver in one actor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rlm_ray.errors import LimitExceededError


@dataclass(frozen=True)
class Budget:
    max_sub_calls: int | None = None
    max_total_tokens: int | None = None
    max_cost_usd: float | None = None

    def is_set(self) -> bool:
        return any(v is not None for v in asdict(self).values())


@dataclass
class Spent:
    sub_calls: int = 0
    model_calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    reserved_tokens: int = 0  # estimated input of the calls admitted and not yet settled


class Ledger:
    """What one run may still spend, and what it has spent."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.spent = Spent()
        self.stopped: tuple[str, object] | None = None

    def admit(self, *, sub_call: bool, model_call: bool, estimated_tokens: int = 0) -> None:
        """Count one unit of work about to be dispatched, or raise `LimitExceededError`."""
        b, s = self.budget, self.spent
        if self.stopped is None:
            if sub_call and b.max_sub_calls is not None and s.sub_calls >= b.max_sub_calls:
                self.stopped = ("max_sub_calls", b.max_sub_calls)
            elif model_call and b.max_total_tokens is not None:
                if s.tokens + s.reserved_tokens + estimated_tokens > b.max_total_tokens:
                    self.stopped = ("max_total_tokens", b.max_total_tokens)
            if model_call and b.max_cost_usd is not None and s.cost_usd >= b.max_cost_usd:
                self.stopped = self.stopped or ("max_cost_usd", b.max_cost_usd)
        if self.stopped is not None:
            raise LimitExceededError(*self.stopped)
        s.sub_calls += sub_call
        if model_call:
            s.model_calls += 1
            s.reserved_tokens += estimated_tokens

    def settle(self, *, estimated_tokens: int, tokens: int, cost_usd: float) -> None:
        """A model call admitted with `estimated_tokens` is done (or failed) and spent this."""
        s, b = self.spent, self.budget
        s.reserved_tokens = max(0, s.reserved_tokens - estimated_tokens)
        s.tokens += tokens
        s.cost_usd += cost_usd
        if self.stopped is None:
            if b.max_total_tokens is not None and s.tokens >= b.max_total_tokens:
                self.stopped = ("max_total_tokens", b.max_total_tokens)
            elif b.max_cost_usd is not None and s.cost_usd >= b.max_cost_usd:
                self.stopped = ("max_cost_usd", b.max_cost_usd)


def estimate_input_tokens(messages: list[dict[str, str]]) -> int:
    """About 4 characters a token, the usual rate for English text and code."""
    return sum(len(m.get("content") or "") // 4 + 4 for m in messages)
