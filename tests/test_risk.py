"""Trading windows and position caps (SPEC §5) applied to plans: pure tables and properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_plan import intent
from tradepipe.core.model import OrderRole, Side
from tradepipe.core.plan import Market, Plan, Reject, Skip, make_plan
from tradepipe.core.windows import Window, outside_windows

D = Decimal
NYSE = {"days": "mon-fri", "start": "09:30", "end": "16:00", "tz": "America/New_York"}
NIGHT = {"days": "sun-thu", "start": "18:00", "end": "02:00", "tz": "Europe/London"}
# 2026-11-20 is a Friday; New York is UTC−5 in November, London UTC+0.
FRIDAY_NOON_NY = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
FRIDAY_EVENING_NY = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
SATURDAY_NY = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "moment", "is_open"),
    [
        (NYSE, FRIDAY_NOON_NY, True),
        (NYSE, FRIDAY_EVENING_NY, False),
        (NYSE, SATURDAY_NY, False),
        (NYSE, datetime(2026, 11, 20, 14, 30, tzinfo=UTC), True),  # 09:30 opens
        (NYSE, datetime(2026, 11, 20, 21, 0, tzinfo=UTC), False),  # 16:00 is closed
        (NIGHT, datetime(2026, 11, 22, 23, 0, tzinfo=UTC), True),  # Sunday 23:00
        (NIGHT, datetime(2026, 11, 23, 1, 30, tzinfo=UTC), True),  # Monday 01:30, Sunday's session
        (NIGHT, datetime(2026, 11, 21, 1, 30, tzinfo=UTC), False),  # Saturday 01:30: Friday off
        (NIGHT, datetime(2026, 11, 20, 1, 30, tzinfo=UTC), True),  # Friday 01:30: Thursday's
        (NIGHT, datetime(2026, 11, 23, 2, 0, tzinfo=UTC), False),  # the end is exclusive
    ],
    ids=[
        "nyse-noon",
        "nyse-evening",
        "nyse-saturday",
        "nyse-open-minute",
        "nyse-close-minute",
        "midnight-sunday-night",
        "midnight-after-midnight",
        "midnight-not-friday-night",
        "midnight-thursday-session",
        "midnight-end-exclusive",
    ],
)
def test_window_is_open_at(window, moment, is_open):
    assert Window.of(window).is_open_at(moment) is is_open


def test_several_windows_any_one_is_enough():
    morning = {**NYSE, "start": "09:30", "end": "11:00"}
    afternoon = {**NYSE, "start": "14:00", "end": "16:00"}
    windows = [Window.of(morning), Window.of(afternoon)]
    assert outside_windows(windows, datetime(2026, 11, 20, 19, 30, tzinfo=UTC)) is None
    reason = outside_windows(windows, FRIDAY_NOON_NY)
    assert reason and "mon-fri 09:30–11:00 America/New_York" in reason


def plan_at(moment, action="buy", position=0, quantity="5", **settings):
    resolved = intent(action, quantity, None, trading_windows=[NYSE], **settings)
    return make_plan(resolved, Market(position=D(position), now=moment))


def roles(decision):
    assert isinstance(decision, Plan), decision
    return [(o.role, o.quantity) for o in decision.orders]


def test_entry_inside_the_window_goes_ahead():
    assert roles(plan_at(FRIDAY_NOON_NY)) == [(OrderRole.ENTRY, 5)]


def test_entry_outside_every_window_is_skipped_naming_the_window():
    decision = plan_at(FRIDAY_EVENING_NY)
    assert isinstance(decision, Skip)
    assert "outside the trading windows (mon-fri 09:30–16:00 America/New_York)" in decision.reason


def test_exit_outside_the_window_goes_ahead_by_default():
    assert roles(plan_at(FRIDAY_EVENING_NY, "exit", position=3, quantity=None)) == [
        (OrderRole.EXIT, 3)
    ]


def test_exit_outside_the_window_is_skipped_when_not_allowed():
    decision = plan_at(FRIDAY_EVENING_NY, "exit", 3, None, allow_exits_outside_windows=False)
    assert isinstance(decision, Skip) and "allow_exits_outside_windows = false" in decision.reason


def test_reversal_outside_the_window_only_exits():
    decision = plan_at(FRIDAY_EVENING_NY, "sell", position=3)
    assert roles(decision) == [(OrderRole.EXIT, 3)]
    assert not decision.orders[0].wait_for_fill and "entry dropped" in decision.summary


def test_ignore_trading_windows_in_the_signal():
    resolved = intent("buy", "5", None, trading_windows=[NYSE])
    from dataclasses import replace

    resolved = replace(resolved, ignore_trading_windows=True)
    assert roles(make_plan(resolved, Market(position=D(0), now=SATURDAY_NY))) == [
        (OrderRole.ENTRY, 5)
    ]


CAPS = [
    ("under-cap", "buy", 0, "5", {"max_position_quantity": D(10)}, [(OrderRole.ENTRY, 5)]),
    ("reduced-to-cap", "buy", 0, "15", {"max_position_quantity": D(10)}, [(OrderRole.ENTRY, 10)]),
    (
        "add-reduced",
        "buy",
        8,
        "5",
        {"max_position_quantity": D(10), "allow_add": True},
        [(OrderRole.ENTRY, 2)],
    ),
    (
        "add-at-cap-rejected",
        "buy",
        10,
        "5",
        {"max_position_quantity": D(10), "allow_add": True},
        Reject("entry of 5 rejected: the position is at max_position_quantity 10"),
    ),
    (
        "reversal-entry-reduced",
        "sell",
        4,
        "20",
        {"max_position_quantity": D(10)},
        [(OrderRole.EXIT, 4), (OrderRole.ENTRY, 10)],
    ),
    ("value-cap", "buy", 0, "50", {"max_position_value": D(1000)}, [(OrderRole.ENTRY, 10)]),
]


@pytest.mark.parametrize(
    ("action", "position", "quantity", "settings", "expected"),
    [c[1:] for c in CAPS],
    ids=[c[0] for c in CAPS],
)
def test_caps(action, position, quantity, settings, expected):
    resolved = intent(action, quantity, None, **settings)
    decision = make_plan(resolved, Market(position=D(position), reference_price=D(100)))
    if isinstance(expected, Reject):
        assert decision == expected
    else:
        assert roles(decision) == expected
        if decision.orders[-1].quantity < D(quantity):
            assert "reduced from" in decision.summary


@pytest.mark.parametrize(
    ("action", "position", "expected"),
    [("exit", 5, [(OrderRole.EXIT, 5)]), ("sell", 5, [(OrderRole.EXIT, 5)])],
    ids=["exit", "reversal-exit-kept"],
)
def test_a_value_cap_never_stops_an_exit_even_without_a_price(action, position, expected):
    settings = {"max_position_value": D(1000), "max_position_quantity": D(3)}
    if action == "sell":
        settings["sides"] = "long"  # exit only
    decision = make_plan(intent(action, None, None, **settings), Market(D(position)))
    assert roles(decision) == expected


def test_a_cancel_goes_through_a_value_cap_without_a_price():
    settings = {"max_position_value": D(1000)}
    decision = make_plan(
        intent("cancel", None, None, **settings), Market(D(5), has_open_orders=True)
    )
    assert isinstance(decision, Plan) and decision.cancel_open_orders


def test_the_value_cap_prices_a_market_entry_like_its_sizing_not_at_its_limit_price():
    # A market entry is sized at the quote (100): its cap must use the same price, not the
    # limitPrice a template happened to carry.
    signal_intent = intent("buy", "50", None, max_position_value=D(1000))
    signal_intent = replace(signal_intent, limit_price=D(10))
    decision = make_plan(signal_intent, Market(D(0), reference_price=D(100)))
    assert roles(decision) == [(OrderRole.ENTRY, 10)]


@pytest.mark.parametrize(
    ("multiplier", "position", "quantity", "allowed", "words"),
    [
        # SPEC §12: one ES at 5000 is worth 250,000; a 600,000 cap holds 2 of them (2.4)
        (D(50), 0, "5", 2, "entry reduced from 5 to 2 by max_position_value 600000 at 5000 ×50"),
        (D(50), 1, "5", 1, "entry reduced from 5 to 1"),  # one held: room for one more
        (D(5), 0, "30", 24, "entry reduced from 30 to 24"),  # MES: 25,000 each
        (D(50), 0, "2", 2, None),  # within the cap: untouched
        (D(50), 2, "1", 0, "entry of 1 rejected: the position is at max_position_value"),
    ],
    ids=["es-cap-2", "es-cap-room-1", "mes-cap-24", "es-within", "es-full"],
)
def test_a_value_cap_counts_a_units_whole_value(multiplier, position, quantity, allowed, words):
    resolved = intent("buy", quantity, None, max_position_value=D(600000), allow_add=True)
    market = Market(D(position), reference_price=D(5000), multiplier=multiplier)
    decision = make_plan(resolved, market)
    if allowed == 0:
        assert isinstance(decision, Reject) and words in decision.reason
        return
    assert roles(decision) == [(OrderRole.ENTRY, allowed)]
    if words:
        assert words in decision.summary


def test_value_cap_without_a_price_is_rejected():
    decision = make_plan(intent("buy", "1", None, max_position_value=D(1000)), Market(D(0)))
    assert decision == Reject("max_position_value needs a reference price: send signalPrice")


@given(
    action=st.sampled_from(["buy", "sell", "add", "reverse"]),
    position=st.integers(-50, 50).map(D),
    quantity=st.integers(1, 200).map(str),
    cap=st.integers(1, 60).map(D),
    allow_add=st.booleans(),
)
def test_a_plan_never_exceeds_a_configured_cap(action, position, quantity, cap, allow_add):
    resolved = intent(action, quantity, None, max_position_quantity=cap, allow_add=allow_add)
    decision = make_plan(resolved, Market(position=position, reference_price=D(10)))
    if not isinstance(decision, Plan):
        return
    after = position
    for order in decision.orders:
        after += order.quantity * order.side.sign
        if order.role is OrderRole.ENTRY:
            assert abs(after) <= max(cap, abs(position))  # entries never push past the cap
    assert all(o.side in (Side.BUY, Side.SELL) for o in decision.orders)
