"""The admission actor: tree-wide budgets and cluster-wide rate limits, in one place per driver.

Gateways (on every node) ask it before each model call, and the REPL pool before each child RLM
call. One round trip answers both questions: "may this run still spend?" (`budget.Ledger`, raises
`LimitExceededError`) and "how long must this call wait for its model's rate?"
(`rate_limit.RateLimiter`). Runs with neither a budget nor a rate limit never call it.

It is an async actor with `num_cpus=0`, created on the first run that needs it and owned by the
driver (non-detached), like the gateways and the pool.
"""

from __future__ import annotations

import time
from typing import Any

import ray

from rlm_ray.limits.budget import Budget, Ledger
from rlm_ray.limits.rate_limit import RateLimit, RateLimiter


class Admission:
    def __init__(self) -> None:
        self._ledgers: dict[str, Ledger] = {}
        self._limiter = RateLimiter()

    async def open_run(
        self, run_id: str, budget: Budget, rate_limit: RateLimit, overrides: dict[str, RateLimit]
    ) -> None:
        if budget.is_set():
            self._ledgers[run_id] = Ledger(budget)
        self._limiter.configure(rate_limit, overrides, time.monotonic())

    async def close_run(self, run_id: str) -> dict[str, Any] | None:
        ledger = self._ledgers.pop(run_id, None)
        return None if ledger is None else vars(ledger.spent)

    async def admit_call(self, run_id: str) -> None:
        """A child RLM call is about to be admitted (counts as one sub-call)."""
        ledger = self._ledgers.get(run_id)
        if ledger is not None:
            ledger.admit(sub_call=True, model_call=False)

    async def admit_model_call(
        self, run_id: str, model: str, sub_call: bool, estimated_tokens: int
    ) -> float:
        """A model call is about to be sent: raise on a spent budget, else return its wait (s)."""
        ledger = self._ledgers.get(run_id)
        if ledger is not None:
            ledger.admit(sub_call=sub_call, model_call=True, estimated_tokens=estimated_tokens)
        return self._limiter.acquire(model, estimated_tokens, time.monotonic())

    async def settle_model_call(
        self, run_id: str, model: str, estimated_tokens: int, tokens: int, cost_usd: float
    ) -> None:
        ledger = self._ledgers.get(run_id)
        if ledger is not None:
            ledger.settle(estimated_tokens=estimated_tokens, tokens=tokens, cost_usd=cost_usd)
        self._limiter.correct(model, estimated_tokens, tokens)

    async def spent(self, run_id: str) -> dict[str, Any] | None:
        ledger = self._ledgers.get(run_id)
        return None if ledger is None else vars(ledger.spent)


def start_admission() -> Any:
    return ray.remote(Admission).options(num_cpus=0, max_concurrency=10_000).remote()
