"""Action breakeven (SPEC §6): move the stops protecting a position to the average entry ± offset.

Pure tables against `make_plan`; the engine and paper broker are driven in test_engine.py.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.core.model import OrderRole, OrderType, Side
from tradepipe.core.plan import Market, Plan, Reject, RestingStop, Skip, make_plan
from tradepipe.core.resolve import resolve_signal
from tradepipe.core.signal import Action, Signal

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
STOP, STOP_LIMIT, TRAIL = OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP


def breakeven(offset: str | None = None, **settings):
    signal = Signal(
        ticker="AAPL",
        action=Action.BREAKEVEN,
        breakeven_offset=D(offset) if offset is not None else None,
    )
    return resolve_signal(signal, type("Sub", (), settings)(), None)


def stop(cid="sl", side=SELL, quantity="10", kind=STOP, price="95", limit=None) -> RestingStop:
    return RestingStop(cid, side, D(quantity), kind, D(price), D(limit) if limit else None)


def market(position="10", average="100", mark="104", stops=()) -> Market:
    return Market(
        position=D(position),
        average_price=D(average) if average else None,
        reference_price=D(mark) if mark else None,
        stops=tuple(stops),
    )


def moves(decision) -> list[tuple]:
    assert isinstance(decision, Plan), decision
    assert not decision.cancel_open_orders  # breakeven never cancels the take-profit
    return [
        (o.leg, o.side, o.quantity, o.order_type, o.stop_price, o.limit_price, o.replaces)
        for o in decision.orders
    ]


# (id, signal offset, settings, market, expected moves or Skip/Reject)
CASES = [
    (
        "flat-rejects",
        None,
        {},
        market(position="0", average=None),
        Reject("no open position to move a stop to breakeven for"),
    ),
    (
        "long-moves-its-stop-up-to-the-average",
        None,
        {},
        market(stops=[stop()]),
        [("breakeven", SELL, D(10), STOP, D(100), None, "sl")],
    ),
    (
        "short-moves-its-stop-down-to-the-average",
        None,
        {},
        market(position="-10", mark="96", stops=[stop(side=BUY, price="105")]),
        [("breakeven", BUY, D(10), STOP, D(100), None, "sl")],
    ),
    (
        "signal-offset-locks-in-profit-for-a-long",
        "0.5",
        {"breakeven_offset": D(2)},
        market(stops=[stop()]),
        [("breakeven", SELL, D(10), STOP, D("100.5"), None, "sl")],
    ),
    (
        "setting-offset-applies-below-a-short",
        None,
        {"breakeven_offset": D("0.25")},
        market(position="-10", mark="96", stops=[stop(side=BUY, price="105")]),
        [("breakeven", BUY, D(10), STOP, D("99.75"), None, "sl")],
    ),
    (
        "a-negative-offset-gives-a-little-back",
        "-1",
        {},
        market(stops=[stop()]),
        [("breakeven", SELL, D(10), STOP, D(99), None, "sl")],
    ),
    (
        "stop-limit-keeps-its-limit-distance",
        None,
        {},
        market(stops=[stop(kind=STOP_LIMIT, price="95", limit="94.5")]),
        [("breakeven", SELL, D(10), STOP_LIMIT, D(100), D("99.5"), "sl")],
    ),
    (
        "each-protecting-stop-moves-with-its-own-quantity",
        None,
        {},
        market(stops=[stop("a", quantity="4"), stop("b", quantity="6", price="97")]),
        [
            ("breakeven", SELL, D(4), STOP, D(100), None, "a"),
            ("breakeven-1", SELL, D(6), STOP, D(100), None, "b"),
        ],
    ),
    (
        "no-stop-places-one-for-the-whole-position",
        None,
        {},
        market(position="-7", mark="90"),
        [("breakeven", BUY, D(7), STOP, D(100), None, None)],
    ),
    (
        "a-buy-stop-does-not-protect-a-long",
        None,
        {},
        market(stops=[stop("entry-stop", side=BUY, price="110")]),
        [("breakeven", SELL, D(10), STOP, D(100), None, None)],
    ),
    (
        "a-stop-already-beyond-breakeven-stays",
        None,
        {},
        market(stops=[stop(price="101")]),
        Skip("the stop already stands at or beyond breakeven 100 (average 100, offset 0)"),
    ),
    (
        "only-the-stops-behind-breakeven-move",
        None,
        {},
        market(stops=[stop("a", price="101"), stop("b", price="90")]),
        [("breakeven", SELL, D(10), STOP, D(100), None, "b")],
    ),
    (
        "trailing-stops-are-left-to-trail",
        None,
        {},
        market(stops=[stop(kind=TRAIL, price="98")]),
        Skip("only trailing stops protect the long 10; breakeven leaves them to trail"),
    ),
    (
        "a-long-under-water-cannot-have-a-breakeven-stop",
        None,
        {},
        market(mark="99", stops=[stop()]),
        Reject(
            "the breakeven stop 100 (average 100, offset 0) is not below the market 99:"
            " it would fill at once"
        ),
    ),
    (
        "a-short-under-water-cannot-have-a-breakeven-stop",
        "-0.5",
        {},
        market(position="-3", mark="100.7", stops=[stop(side=BUY, price="105")]),
        Reject(
            "the breakeven stop 100.5 (average 100, offset -0.5) is not above the market"
            " 100.7: it would fill at once"
        ),
    ),
    (
        "no-average-price-rejects",
        None,
        {},
        market(average=None, stops=[stop()]),
        Reject("the broker reports no average entry price for the position"),
    ),
    (
        "sell-stop-rounds-up-to-the-tick",
        "0.333",
        {},
        market(stops=[stop()]),
        [("breakeven", SELL, D(10), STOP, D("100.34"), None, "sl")],
    ),
    (
        "buy-stop-rounds-down-to-the-tick",
        "0.333",
        {},
        market(position="-10", mark="90", stops=[stop(side=BUY, price="105")]),
        [("breakeven", BUY, D(10), STOP, D("99.66"), None, "sl")],
    ),
]


@pytest.mark.parametrize(
    ("offset", "settings", "market_now", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_breakeven_table(offset, settings, market_now, expected):
    decision = make_plan(breakeven(offset, **settings), market_now)
    if isinstance(expected, Skip | Reject):
        assert decision == expected
    else:
        assert moves(decision) == expected
        assert all(o.role is OrderRole.STOP_LOSS for o in decision.orders)


def test_the_plan_says_where_the_stop_goes_and_why():
    decision = make_plan(breakeven("0.5"), market(stops=[stop()]))
    assert decision.summary == (
        "move the stop of the long 10 from 95 to breakeven 100.5 (average 100, offset 0.5)"
    )
    resolved = breakeven("0.5")
    assert "breakeven_offset 0.5 ← signal" in resolved.explain("sub", "strat")


def test_outside_the_trading_windows_breakeven_moves_the_stop_like_an_exit():
    from datetime import UTC, datetime

    window = {"days": "mon-fri", "start": "09:30", "end": "16:00", "tz": "America/New_York"}
    saturday = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
    now = Market(**{**_fields(market(stops=[stop()])), "now": saturday})
    allowed = make_plan(breakeven(trading_windows=[window]), now)
    assert moves(allowed)[0][4] == D(100)
    refused = make_plan(breakeven(trading_windows=[window], allow_exits_outside_windows=False), now)
    assert isinstance(refused, Skip) and "allow_exits_outside_windows = false" in refused.reason


def _fields(value: Market) -> dict:
    return {name: getattr(value, name) for name in Market.__slots__}


prices = st.decimals(min_value=1, max_value=1000, places=2)


@given(
    position=st.integers(-500, 500).filter(bool).map(D),
    average=prices,
    mark=prices,
    offset=st.decimals(min_value=-5, max_value=5, places=3),
    old_stops=st.lists(prices, max_size=3),
)
def test_breakeven_never_moves_a_stop_backwards_nor_past_the_market(
    position, average, mark, offset, old_stops
):
    side = SELL if position > 0 else BUY
    stops = [stop(f"s{i}", side, str(abs(position)), STOP, str(p)) for i, p in enumerate(old_stops)]
    decision = make_plan(breakeven(str(offset)), market(position, average, mark, stops))
    if not isinstance(decision, Plan):
        assert decision.reason
        return
    old = {s.client_order_id: s.stop_price for s in stops}
    for order in decision.orders:
        assert order.side is side and order.quantity > 0
        assert order.stop_price < mark if position > 0 else order.stop_price > mark
        if order.replaces is not None:  # a long's stop only goes up, a short's only down
            moved = order.stop_price - old[order.replaces]
            assert moved > 0 if position > 0 else moved < 0
