"""`budget.Ledger`, the tree-wide budget of one run, in-process (no Ray, no clock).

The end-to-end tests in test_budgets.py show the ledger wired into a run; these show its rules.
"""

from __future__ import annotations

import pytest

from rlm_ray.errors import LimitExceededError
from rlm_ray.limits.budget import Budget, Ledger, estimate_input_tokens


def refused(ledger: Ledger, **admit) -> tuple[str, object]:
    with pytest.raises(LimitExceededError) as err:
        ledger.admit(**admit)
    return err.value.limit, err.value.value


def test_an_empty_budget_admits_everything_and_counts_it():
    assert not Budget().is_set() and Budget(max_cost_usd=1.0).is_set()
    ledger = Ledger(Budget())
    for _ in range(1000):
        ledger.admit(sub_call=True, model_call=True, estimated_tokens=10_000)
        ledger.settle(estimated_tokens=10_000, tokens=12_000, cost_usd=1.0)
    s = ledger.spent
    assert (s.sub_calls, s.model_calls, s.tokens, s.reserved_tokens) == (1000, 1000, 12_000_000, 0)
    assert ledger.stopped is None


def test_max_sub_calls_is_exact_and_root_turns_do_not_count():
    ledger = Ledger(Budget(max_sub_calls=3))
    for _ in range(5):
        ledger.admit(sub_call=False, model_call=True)  # the root's own turns
    ledger.admit(sub_call=True, model_call=False)  # a child RLM call
    ledger.admit(sub_call=True, model_call=True)  # two llm_query calls
    ledger.admit(sub_call=True, model_call=True)
    assert refused(ledger, sub_call=True, model_call=True) == ("max_sub_calls", 3)
    assert (ledger.spent.sub_calls, ledger.spent.model_calls) == (3, 7)  # the refused one is not


def test_once_stopped_every_later_admission_is_refused_with_the_same_limit():
    ledger = Ledger(Budget(max_sub_calls=0, max_total_tokens=10**9))
    assert refused(ledger, sub_call=True, model_call=False) == ("max_sub_calls", 0)
    # a root turn would fit every limit, but the tree is stopped
    assert refused(ledger, sub_call=False, model_call=True) == ("max_sub_calls", 0)
    ledger.settle(estimated_tokens=0, tokens=10**9, cost_usd=0.0)
    assert ledger.stopped == ("max_sub_calls", 0)  # the first limit met stays the reason


def test_max_total_tokens_reserves_the_estimated_input_of_calls_in_flight():
    ledger = Ledger(Budget(max_total_tokens=1000))
    ledger.admit(sub_call=False, model_call=True, estimated_tokens=400)
    ledger.admit(sub_call=True, model_call=True, estimated_tokens=400)
    assert ledger.spent.reserved_tokens == 800
    # a third call would reserve 1200 > 1000: refused before it is sent
    assert refused(ledger, sub_call=True, model_call=True, estimated_tokens=400) == (
        "max_total_tokens",
        1000,
    )


def test_settling_frees_the_reservation_and_counts_the_real_tokens():
    ledger = Ledger(Budget(max_total_tokens=1000))
    ledger.admit(sub_call=False, model_call=True, estimated_tokens=600)
    ledger.settle(estimated_tokens=600, tokens=300, cost_usd=0.0)  # shorter than estimated
    assert (ledger.spent.tokens, ledger.spent.reserved_tokens) == (300, 0)
    ledger.admit(sub_call=False, model_call=True, estimated_tokens=600)  # 900 <= 1000
    # outputs are only known afterwards: a call in flight may pass the limit, then it stops
    ledger.settle(estimated_tokens=600, tokens=900, cost_usd=0.0)
    assert ledger.spent.tokens == 1200 and ledger.stopped == ("max_total_tokens", 1000)
    assert refused(ledger, sub_call=False, model_call=True, estimated_tokens=1)[0] == (
        "max_total_tokens"
    )


def test_a_reservation_never_goes_negative():
    ledger = Ledger(Budget(max_total_tokens=100))
    ledger.settle(estimated_tokens=50, tokens=0, cost_usd=0.0)  # settled twice, or never admitted
    assert ledger.spent.reserved_tokens == 0


def test_max_cost_usd_is_checked_against_the_cost_already_spent():
    ledger = Ledger(Budget(max_cost_usd=0.01))
    ledger.admit(sub_call=False, model_call=True)
    ledger.admit(sub_call=True, model_call=True)  # both in flight: prices come back later
    ledger.settle(estimated_tokens=0, tokens=10, cost_usd=0.008)
    ledger.admit(sub_call=True, model_call=False)  # a child call costs nothing by itself
    ledger.settle(estimated_tokens=0, tokens=10, cost_usd=0.008)  # passed by a call in flight
    assert ledger.stopped == ("max_cost_usd", 0.01)
    assert refused(ledger, sub_call=False, model_call=True) == ("max_cost_usd", 0.01)


def test_a_child_call_alone_is_not_refused_on_cost():
    ledger = Ledger(Budget(max_cost_usd=0.01))
    ledger.spent.cost_usd = 0.5  # spent, but `settle` has not stopped the ledger
    ledger.admit(sub_call=True, model_call=False)
    assert refused(ledger, sub_call=False, model_call=True) == ("max_cost_usd", 0.01)


def test_estimate_is_about_four_characters_a_token():
    messages = [{"role": "system", "content": "x" * 400}, {"role": "user", "content": None}]
    assert estimate_input_tokens(messages) == 100 + 4 + 0 + 4  # type: ignore[list-item]
