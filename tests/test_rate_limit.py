"""`rate_limit.RateLimiter`, the per-model token buckets, in-process with a fake clock.

Every method takes the time as `now` (the admission actor passes `time.monotonic()`), so these
tests give the times themselves and wait for nothing. test_budgets.py shows the limiter wired
into a run, against a server that answers 429 above its rate.
"""

from __future__ import annotations

import pytest

from rlm_ray.limits.rate_limit import RateLimit, RateLimiter, TokenBucket

NO_LIMIT = RateLimit()


def limiter(default: RateLimit = NO_LIMIT, **overrides: RateLimit) -> RateLimiter:
    made = RateLimiter()
    made.configure(default, overrides, now=0.0)
    return made


def send_times(made: RateLimiter, n: int, *, model: str = "m", tokens: int = 0, at: float = 0.0):
    """When each of `n` calls asked for at time `at` may be sent."""
    return [at + made.acquire(model, tokens, at) for _ in range(n)]


def test_no_limit_never_waits():
    assert send_times(limiter(), 1000) == [0.0] * 1000


def test_requests_get_a_burst_of_one_seconds_worth_then_the_rate():
    made = limiter(RateLimit(requests_per_minute=300))  # 5 a second
    times = send_times(made, 21)
    assert times[:5] == [0.0] * 5
    assert times[5:] == pytest.approx([k / 5 for k in range(1, 17)])  # arrival order, 0.2 s apart
    assert times[-1] == pytest.approx((21 - 5) / 5)


def test_a_wide_fanout_stays_below_twice_the_rate_in_any_second():
    made = limiter(RateLimit(requests_per_minute=600))  # 10 a second
    times = send_times(made, 1000)
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t < start + 1.0)
        assert in_window <= 2 * 10
    assert times[-1] == pytest.approx((1000 - 10) / 10)  # a minute's limit plus a second's


def test_a_bucket_refills_with_time_up_to_its_capacity():
    made = limiter(RateLimit(requests_per_minute=60))  # 1 a second, a burst of 1
    assert send_times(made, 3, at=0.0) == pytest.approx([0.0, 1.0, 2.0])
    assert made.acquire("m", 0, now=2.5) == pytest.approx(0.5)  # still in debt at 2.5 s
    assert send_times(made, 2, at=100.0) == pytest.approx([100.0, 101.0])  # full, not 98 ahead


def test_a_slow_rate_still_lets_one_request_through():
    made = limiter(RateLimit(requests_per_minute=6))  # one every 10 s; the bucket holds 1
    assert send_times(made, 2) == pytest.approx([0.0, 10.0])


def test_tokens_are_paced_by_each_calls_estimate():
    made = limiter(RateLimit(tokens_per_minute=12_000))  # 200 tokens a second
    assert send_times(made, 3, tokens=100) == pytest.approx([0.0, 0.0, 0.5])


def test_a_call_larger_than_the_bucket_waits_for_a_full_bucket_not_forever():
    made = limiter(RateLimit(tokens_per_minute=12_000))  # the bucket holds 200 tokens
    assert send_times(made, 3, tokens=1000) == pytest.approx([0.0, 1.0, 2.0])


def test_the_real_token_count_corrects_the_estimate():
    made = limiter(RateLimit(tokens_per_minute=12_000))
    assert made.acquire("m", 200, now=0.0) == 0.0
    made.correct("m", estimated_tokens=200, tokens=50)  # 150 given back
    assert made.acquire("m", 150, now=0.0) == 0.0
    made.correct("m", estimated_tokens=150, tokens=550)  # 400 more than estimated: debt
    assert made.acquire("m", 0, now=0.0) == pytest.approx(2.0)


def test_requests_and_tokens_together_wait_for_the_slower():
    made = limiter(RateLimit(requests_per_minute=60, tokens_per_minute=60_000))
    assert send_times(made, 2, tokens=500) == pytest.approx([0.0, 1.0])  # the request bucket
    made = limiter(RateLimit(requests_per_minute=600, tokens_per_minute=6_000))
    assert send_times(made, 2, tokens=100) == pytest.approx([0.0, 1.0])  # the token bucket


def test_each_model_has_its_own_buckets_and_overrides_win():
    made = limiter(
        RateLimit(requests_per_minute=60), fast=RateLimit(requests_per_minute=600), free=RateLimit()
    )
    assert send_times(made, 2, model="a") == pytest.approx([0.0, 1.0])
    assert send_times(made, 2, model="b") == pytest.approx([0.0, 1.0])  # not a's debt
    assert send_times(made, 11, model="fast")[-1] == pytest.approx(0.1)
    assert send_times(made, 50, model="free") == [0.0] * 50


def test_reconfiguring_with_the_same_limits_keeps_the_debt():
    made = limiter(RateLimit(requests_per_minute=60))
    send_times(made, 5)  # 4 s of debt
    made.configure(RateLimit(requests_per_minute=60), {}, now=0.0)  # the next run, same limits
    assert made.acquire("m", 0, now=0.0) == pytest.approx(5.0)


def test_new_limits_replace_the_buckets():
    made = limiter(RateLimit(requests_per_minute=60))
    send_times(made, 5)
    made.configure(RateLimit(), {}, now=0.0)  # the next run sets no limit
    assert made.acquire("m", 0, now=0.0) == 0.0
    made.configure(RateLimit(), {"m": RateLimit(requests_per_minute=120)}, now=0.0)
    assert send_times(made, 3) == pytest.approx([0.0, 0.0, 0.5])


def test_token_bucket_give_back_never_passes_capacity():
    bucket = TokenBucket(per_minute=600, now=0.0)  # 10 a second, capacity 10
    assert bucket.take(4, now=0.0) == 0.0
    bucket.give_back(100)
    assert bucket.level == bucket.capacity == 10
