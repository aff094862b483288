"""The request-weight budget that sends ccxt's requests: refills while idle, queues a burst
beyond its capacity, never spends more than the exchange's budget per window."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.brokers.ccxt.budget import RequestBudget


def waits(budget: RequestBudget, calls: list[tuple[float, float]]) -> list[float]:
    return [round(budget.reserve(cost, now), 6) for now, cost in calls]


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        # (time asked, cost) → seconds to wait; capacity 10, 5 a second
        ([(0, 4), (0, 4), (0, 2)], [0, 0, 0]),  # the burst fits
        ([(0, 8), (0, 4)], [0, 0.4]),  # 2 short: 2 / 5 a second
        ([(0, 8), (0, 4), (0, 5)], [0, 0.4, 1.4]),  # the next queues behind it
        ([(0, 10), (1, 5)], [0, 0]),  # one idle second refilled what it needs
        ([(0, 10), (3600, 10)], [0, 0]),  # an hour idle: full again, not beyond
        ([(0, 10), (3600, 10), (3600, 1)], [0, 0, 0.2]),  # … capacity caps the refill
        ([(0, 15)], [1.0]),  # one request above the capacity waits for its excess
        ([(5, 10), (4, 5)], [0, 1.0]),  # a time that goes back refills nothing
    ],
)
def test_reserve_answers_how_long_each_request_waits(calls, expected):
    assert waits(RequestBudget(per_second=5, capacity=10), calls) == expected


def test_ccxts_binance_rate_limit_is_6000_weight_a_minute_with_a_5_percent_burst():
    """ccxt's Binance `rateLimit` is 50 ms per cost unit (5 weight): 1200 units a minute."""
    budget = RequestBudget.of_ccxt_rate_limit(50)
    assert (budget.capacity, budget.per_second) == (60, 19)
    assert budget.capacity + budget.per_second * 60 == 1200


@pytest.mark.parametrize(
    "arguments", [{"per_second": 0, "capacity": 1}, {"per_second": 1, "capacity": -1}]
)
def test_a_budget_that_would_never_refill_is_refused(arguments):
    with pytest.raises(ValueError, match="request budget"):
        RequestBudget(**arguments)
    with pytest.raises(ValueError, match="rateLimit 0 ms"):
        RequestBudget.of_ccxt_rate_limit(0)


@given(
    st.lists(
        st.tuples(st.floats(0, 5, allow_nan=False), st.floats(0.01, 30, allow_nan=False)),
        min_size=1,
        max_size=40,
    ),
    st.floats(0.5, 60, allow_nan=False),
)
def test_no_window_ever_sends_more_than_the_budget(gaps_and_costs, window):
    """Whatever the requests and their spacing, what is sent within any `window` seconds costs
    at most capacity + rate * window (for a 60 s window: the exchange's budget)."""
    budget = RequestBudget.per_window(1200)
    now, sent = 0.0, []
    for gap, cost in gaps_and_costs:
        now += gap
        sent.append((now + budget.reserve(cost, now), cost))
    for start, _ in sent:
        spent = sum(cost for at, cost in sent if start <= at <= start + window)
        assert spent <= budget.capacity + budget.per_second * window + 1e-6
