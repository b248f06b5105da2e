"""Per-model rate limits (requests/min, tokens/min) as token buckets. Pure Python, no Ray.

`rlm_ray.runtime.admission` keeps one `RateLimiter` per driver in one actor, which every gateway
on every node asks before a model call: that makes the limit cluster-wide. A call takes its share at once
and is told how long to wait before sending (a bucket may go into debt), so callers queue in
arrival order without the limiter holding a coroutine per waiting call.

Each bucket holds at most one second's worth of its rate (at least one request, or one call's
tokens), so a 1000-wide fan-out is spread evenly over time instead of bursting into 429s.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


class TokenBucket:
    def __init__(self, per_minute: int, now: float) -> None:
        self.rate_per_s = per_minute / 60.0
        self.capacity = max(1.0, self.rate_per_s)
        self.level = self.capacity
        self.updated = now

    def take(self, amount: float, now: float) -> float:
        """Take `amount` now; return the seconds the caller must wait before using it."""
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate_per_s)
        self.updated = now
        self.level -= amount
        return 0.0 if self.level >= 0 else -self.level / self.rate_per_s

    def give_back(self, amount: float) -> None:
        """Correct an estimate: return tokens taken but not used (negative: take more)."""
        self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    """Buckets per model; `acquire` returns the wait before the call may be sent.

    Models without a limit of their own get the default limit (each its own buckets).
    """

    def __init__(self) -> None:
        self._default = RateLimit()
        self._limits: dict[str, RateLimit] = {}
        self._requests: dict[str, TokenBucket] = {}
        self._tokens: dict[str, TokenBucket] = {}

    def configure(self, default: RateLimit, overrides: dict[str, RateLimit], now: float) -> None:
        """Set the limits (a later run's settings replace an earlier run's)."""
        self._default = default
        for model in list(self._limits):
            self._set(model, overrides.get(model, default), now)
        for model, limit in overrides.items():
            self._set(model, limit, now)

    def _set(self, model: str, limit: RateLimit, now: float) -> None:
        if self._limits.get(model) == limit:
            return  # unchanged: keep the buckets (and their debt)
        self._limits[model] = limit
        self._requests.pop(model, None)
        self._tokens.pop(model, None)
        if limit.requests_per_minute:
            self._requests[model] = TokenBucket(limit.requests_per_minute, now)
        if limit.tokens_per_minute:
            self._tokens[model] = TokenBucket(limit.tokens_per_minute, now)

    def acquire(self, model: str, estimated_tokens: int, now: float) -> float:
        if model not in self._limits:
            self._set(model, self._default, now)
        wait = 0.0
        if model in self._requests:
            wait = self._requests[model].take(1, now)
        if model in self._tokens:
            # a single call larger than the bucket waits for the bucket to fill, not forever
            bucket = self._tokens[model]
            wait = max(wait, bucket.take(min(estimated_tokens, bucket.capacity), now))
        return wait

    def correct(self, model: str, estimated_tokens: int, tokens: int) -> None:
        """A call is done: settle the difference between its estimate and its real tokens."""
        if model in self._tokens:
            bucket = self._tokens[model]
            bucket.give_back(min(estimated_tokens, bucket.capacity) - tokens)
